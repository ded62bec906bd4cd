-- A claim's request fingerprint is the SHA-256 of the request (ekb_platform::idempotency), hex,
-- not the request itself: the request carries a contact person's name, phone and e-mail, which
-- must not be kept in clear beside the claim. Existing rows get the hash of what they stored,
-- which is the same fingerprint, so a retry across this migration is still recognised.
ALTER TABLE claims
    ALTER COLUMN request_digest TYPE text USING encode(sha256(request_digest), 'hex');
