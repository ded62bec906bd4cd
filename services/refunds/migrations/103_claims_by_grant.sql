-- A grant's claims are read by grant (GetClaimableGrant, a new claim's checks, erasure of a
-- grant's free text), oldest first. The only index on grant_id was the partial unique one for
-- live claims, so every such read scanned the whole table: in the national year simulation
-- refunds read 56 million claim rows that way, and the table keeps ten years of grants.
CREATE INDEX claims_by_grant ON claims (grant_id, sequence);
