-- Refunds' enums move to the one storage rule (ADR 0028): a short UPPER_SNAKE code in a TEXT
-- column with a CHECK constraint listing the codes (src/codes.rs), instead of the contract's
-- full names. A code is the contract name without its enum's prefix
-- ('CLAIMABLE_GRANT_STATUS_ACTIVE' becomes 'ACTIVE'); the competence area takes the domain's
-- code. A reason that may be absent (UNSPECIFIED in the contract) is NULL, never stored as a
-- value. The partial indexes that named the old values are rebuilt under their names.

DROP INDEX grants_active_deadline;
DROP INDEX claims_one_live_per_grant;
DROP INDEX claims_payment_pending;

ALTER TABLE grants ALTER COLUMN competence_area DROP NOT NULL;
UPDATE grants SET
    status = regexp_replace(status, '^CLAIMABLE_GRANT_STATUS_', ''),
    competence_area = NULLIF(
        NULLIF(regexp_replace(competence_area, '^COMPETENCE_AREA_', ''), 'UNSPECIFIED'), '');

UPDATE deadline_extensions
    SET reason = regexp_replace(reason, '^REFUND_DEADLINE_EXTENSION_REASON_', '');

ALTER TABLE claims ALTER COLUMN payout_reduction_reason DROP NOT NULL;
ALTER TABLE claims ALTER COLUMN payout_reduction_reason DROP DEFAULT;
UPDATE claims SET
    status = regexp_replace(status, '^REFUND_CLAIM_STATUS_', ''),
    rejection_reason = NULLIF(
        regexp_replace(rejection_reason, '^REFUND_REJECTION_REASON_', ''), 'UNSPECIFIED'),
    payout_reduction_reason = NULLIF(
        regexp_replace(payout_reduction_reason, '^PAYOUT_REDUCTION_REASON_', ''), 'UNSPECIFIED'),
    payment_status = regexp_replace(payment_status, '^REFUND_PAYMENT_STATUS_', ''),
    failure_reason = NULLIF(
        regexp_replace(failure_reason, '^REFUND_PAYMENT_FAILURE_REASON_', ''), 'UNSPECIFIED');

ALTER TABLE recommendations ALTER COLUMN reduction_reason DROP NOT NULL;
ALTER TABLE recommendations ALTER COLUMN rejection_reason DROP NOT NULL;
UPDATE recommendations SET
    reduction_reason = NULLIF(
        regexp_replace(reduction_reason, '^PAYOUT_REDUCTION_REASON_', ''), 'UNSPECIFIED'),
    rejection_reason = NULLIF(
        regexp_replace(rejection_reason, '^REFUND_REJECTION_REASON_', ''), 'UNSPECIFIED');

ALTER TABLE grants
    ADD CONSTRAINT grants_status_known CHECK (status IN
        ('ACTIVE', 'CLAIM_PENDING', 'SETTLED', 'EXPIRED', 'CANCELLED')),
    ADD CONSTRAINT grants_competence_area_known CHECK (competence_area IN
        ('WORKPLACE_RELATIONS', 'SICK_LEAVE_FOLLOW_UP', 'CONFLICT_HANDLING', 'RESTRUCTURING',
         'WORK_CAPACITY_ASSESSMENT', 'CAREER_GUIDANCE'));

ALTER TABLE deadline_extensions
    ADD CONSTRAINT deadline_extensions_reason_known CHECK (reason IN
        ('ASSISTANCE_DELAYED', 'REPORT_DELAYED', 'INVOICE_DELAYED', 'OTHER'));

ALTER TABLE claims
    ADD CONSTRAINT claims_status_known CHECK (status IN
        ('SUBMITTED', 'RECOMMENDED', 'APPROVED', 'REJECTED')),
    ADD CONSTRAINT claims_rejection_reason_known CHECK (rejection_reason IN
        ('EXPERT_REPORT_INADEQUATE', 'INVOICE_INVALID', 'EXPERT_NOT_AS_GRANTED',
         'TREATMENT_INVOICED', 'OTHER', 'LATE_CLAIM', 'STARTED_BEFORE_GRANT',
         'MEASURE_NOT_CARRIED_OUT')),
    ADD CONSTRAINT claims_payout_reduction_reason_known CHECK (payout_reduction_reason IN
        ('COSTS_NOT_DOCUMENTED', 'COSTS_NOT_COVERED', 'BEYOND_GRANTED_ASSISTANCE', 'OTHER')),
    ADD CONSTRAINT claims_payment_status_known CHECK (payment_status IN
        ('PENDING', 'PAID', 'FAILED')),
    ADD CONSTRAINT claims_failure_reason_known CHECK (failure_reason IN
        ('NO_REFUND_ACCOUNT', 'ACCOUNT_INVALID', 'REJECTED', 'OTHER'));

ALTER TABLE recommendations
    ADD CONSTRAINT recommendations_reduction_reason_known CHECK (reduction_reason IN
        ('COSTS_NOT_DOCUMENTED', 'COSTS_NOT_COVERED', 'BEYOND_GRANTED_ASSISTANCE', 'OTHER')),
    ADD CONSTRAINT recommendations_rejection_reason_known CHECK (rejection_reason IN
        ('EXPERT_REPORT_INADEQUATE', 'INVOICE_INVALID', 'EXPERT_NOT_AS_GRANTED',
         'TREATMENT_INVOICED', 'OTHER', 'LATE_CLAIM', 'STARTED_BEFORE_GRANT',
         'MEASURE_NOT_CARRIED_OUT')),
    -- A recommendation to reject says why.
    ADD CONSTRAINT recommendations_rejection_has_reason CHECK (approve OR rejection_reason IS NOT NULL);

CREATE INDEX grants_active_deadline ON grants (refund_deadline, grant_id)
    WHERE status = 'ACTIVE';
-- At most one live claim (submitted, recommended or approved) per grant.
CREATE UNIQUE INDEX claims_one_live_per_grant ON claims (grant_id)
    WHERE status IN ('SUBMITTED', 'RECOMMENDED', 'APPROVED');
CREATE INDEX claims_payment_pending ON claims (payment_sent_at)
    WHERE payment_status = 'PENDING';
