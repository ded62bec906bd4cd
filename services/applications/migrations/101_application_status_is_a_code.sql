-- applications.status moves to the one storage rule (ADR 0028): a short UPPER_SNAKE code with a
-- CHECK constraint listing the codes (src/codes.rs), instead of the contract's full enum name
-- (APPLICATION_STATUS_SUBMITTED). Existing rows are rewritten in place; a value that is neither
-- is left as it is, which the CHECK refuses, so the migration fails rather than guess.
-- cases.flow already follows the rule (migration 100).

UPDATE applications
SET status = substr(status, length('APPLICATION_STATUS_') + 1)
WHERE status LIKE 'APPLICATION\_STATUS\_%';

ALTER TABLE applications
    ADD CONSTRAINT applications_status_code CHECK (status IN (
        'SUBMITTED',
        'UNDER_REVIEW',
        'RECOMMENDED',
        'GRANT_PENDING_FUNDS',
        'GRANTED',
        'FUNDS_DENIED',
        'REJECTED',
        'WITHDRAWN'
    ));
