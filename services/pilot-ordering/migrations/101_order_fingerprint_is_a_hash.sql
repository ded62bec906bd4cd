-- An order's request fingerprint is the SHA-256 of the request with the fødselsnummer replaced by
-- its pseudonym (ekb_platform::idempotency), hex. It was the contact person's name, phone and
-- e-mail in clear; those are hashed here so no copy stays beside the order. (A PlaceOrder sent
-- before this migration and retried after it is refused as a reuse of its request id: retries
-- come within seconds, a deploy is rare, and the first answer stays readable with GetOrder.)
UPDATE orders
SET request_fingerprint = encode(sha256(convert_to(request_fingerprint, 'UTF8')), 'hex')
WHERE request_fingerprint IS NOT NULL;
