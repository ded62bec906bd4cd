-- Every enum pilot-ordering stores moves to the one storage rule (ADR 0028): a short UPPER_SNAKE
-- code in a TEXT column with a CHECK constraint listing the codes (src/codes.rs), instead of the
-- contract's number in an INT column. A reason that is not set was 0 (UNSPECIFIED) and is NULL
-- now. Existing rows are converted in place; a number outside the contract is kept as its digits,
-- which the CHECK refuses, so the migration fails rather than guess.

-- Its predicate compares with a number; recreated below with the code.
DROP INDEX invoices_payment_pending;

ALTER TABLE orders
    ALTER COLUMN status TYPE TEXT USING CASE status
            WHEN 1 THEN 'FUNDS_PENDING'
            WHEN 2 THEN 'PLACED'
            WHEN 3 THEN 'ACCEPTED'
            WHEN 4 THEN 'DECLINED'
            WHEN 5 THEN 'STARTED'
            WHEN 6 THEN 'COMPLETED'
            WHEN 7 THEN 'CANCELLED'
            WHEN 8 THEN 'ABORTED'
            WHEN 9 THEN 'EXPIRED'
            ELSE status::TEXT
        END,
    ALTER COLUMN decline_reason_code DROP DEFAULT,
    ALTER COLUMN decline_reason_code DROP NOT NULL,
    ALTER COLUMN decline_reason_code TYPE TEXT USING CASE decline_reason_code
            WHEN 0 THEN NULL
            WHEN 1 THEN 'NO_CAPACITY'
            WHEN 2 THEN 'NO_QUALIFIED_EXPERT'
            WHEN 3 THEN 'CONFLICT_OF_INTEREST'
            WHEN 4 THEN 'OTHER'
            ELSE decline_reason_code::TEXT
        END,
    ALTER COLUMN cancellation_reason DROP DEFAULT,
    ALTER COLUMN cancellation_reason DROP NOT NULL,
    ALTER COLUMN cancellation_reason TYPE TEXT USING CASE cancellation_reason
            WHEN 0 THEN NULL
            WHEN 1 THEN 'EMPLOYER_WITHDREW'
            WHEN 2 THEN 'NO_LONGER_NEEDED'
            WHEN 3 THEN 'FUNDS_DENIED'
            WHEN 4 THEN 'OTHER'
            WHEN 5 THEN 'CASE_LEFT_PILOT'
            WHEN 6 THEN 'AGREEMENT_ENDED'
            ELSE cancellation_reason::TEXT
        END,
    ALTER COLUMN funds_denied_reason DROP DEFAULT,
    ALTER COLUMN funds_denied_reason DROP NOT NULL,
    ALTER COLUMN funds_denied_reason TYPE TEXT USING CASE funds_denied_reason
            WHEN 0 THEN NULL
            WHEN 1 THEN 'INSUFFICIENT_FUNDS'
            WHEN 2 THEN 'NO_APPROPRIATION'
            WHEN 3 THEN 'INVALID_REQUEST'
            ELSE funds_denied_reason::TEXT
        END,
    ALTER COLUMN abort_reason DROP DEFAULT,
    ALTER COLUMN abort_reason DROP NOT NULL,
    ALTER COLUMN abort_reason TYPE TEXT USING CASE abort_reason
            WHEN 0 THEN NULL
            WHEN 1 THEN 'EXPERT_UNAVAILABLE'
            WHEN 2 THEN 'EMPLOYER_WITHDREW'
            WHEN 3 THEN 'EMPLOYEE_WITHDREW'
            WHEN 4 THEN 'SUPPLIER_BREACH'
            WHEN 5 THEN 'OTHER'
            ELSE abort_reason::TEXT
        END,
    ALTER COLUMN abort_previous_status DROP DEFAULT,
    ALTER COLUMN abort_previous_status DROP NOT NULL,
    ALTER COLUMN abort_previous_status TYPE TEXT USING CASE abort_previous_status
            WHEN 0 THEN NULL
            WHEN 1 THEN 'FUNDS_PENDING'
            WHEN 2 THEN 'PLACED'
            WHEN 3 THEN 'ACCEPTED'
            WHEN 4 THEN 'DECLINED'
            WHEN 5 THEN 'STARTED'
            WHEN 6 THEN 'COMPLETED'
            WHEN 7 THEN 'CANCELLED'
            WHEN 8 THEN 'ABORTED'
            WHEN 9 THEN 'EXPIRED'
            ELSE abort_previous_status::TEXT
        END,
    ALTER COLUMN expiry_reason DROP DEFAULT,
    ALTER COLUMN expiry_reason DROP NOT NULL,
    ALTER COLUMN expiry_reason TYPE TEXT USING CASE expiry_reason
            WHEN 0 THEN NULL
            WHEN 1 THEN 'SUPPLIER_DID_NOT_ANSWER'
            WHEN 2 THEN 'NOT_STARTED_IN_TIME'
            WHEN 3 THEN 'INVOICE_DEADLINE_PASSED'
            ELSE expiry_reason::TEXT
        END,
    ADD CONSTRAINT orders_status_known CHECK (status IN (
        'FUNDS_PENDING', 'PLACED', 'ACCEPTED', 'DECLINED', 'STARTED', 'COMPLETED', 'CANCELLED', 'ABORTED', 'EXPIRED')),
    ADD CONSTRAINT orders_decline_reason_code_known CHECK (decline_reason_code IN (
        'NO_CAPACITY', 'NO_QUALIFIED_EXPERT', 'CONFLICT_OF_INTEREST', 'OTHER')),
    ADD CONSTRAINT orders_cancellation_reason_known CHECK (cancellation_reason IN (
        'EMPLOYER_WITHDREW', 'NO_LONGER_NEEDED', 'FUNDS_DENIED', 'OTHER', 'CASE_LEFT_PILOT', 'AGREEMENT_ENDED')),
    ADD CONSTRAINT orders_funds_denied_reason_known CHECK (funds_denied_reason IN (
        'INSUFFICIENT_FUNDS', 'NO_APPROPRIATION', 'INVALID_REQUEST')),
    ADD CONSTRAINT orders_abort_reason_known CHECK (abort_reason IN (
        'EXPERT_UNAVAILABLE', 'EMPLOYER_WITHDREW', 'EMPLOYEE_WITHDREW', 'SUPPLIER_BREACH', 'OTHER')),
    ADD CONSTRAINT orders_abort_previous_status_known CHECK (abort_previous_status IN (
        'FUNDS_PENDING', 'PLACED', 'ACCEPTED', 'DECLINED', 'STARTED', 'COMPLETED', 'CANCELLED', 'ABORTED', 'EXPIRED')),
    ADD CONSTRAINT orders_expiry_reason_known CHECK (expiry_reason IN (
        'SUPPLIER_DID_NOT_ANSWER', 'NOT_STARTED_IN_TIME', 'INVOICE_DEADLINE_PASSED'));

ALTER TABLE invoices
    ALTER COLUMN status TYPE TEXT USING CASE status
            WHEN 1 THEN 'SUBMITTED'
            WHEN 2 THEN 'APPROVED'
            WHEN 3 THEN 'REJECTED'
            WHEN 4 THEN 'ATTESTED'
            ELSE status::TEXT
        END,
    ALTER COLUMN rejection_reason DROP DEFAULT,
    ALTER COLUMN rejection_reason DROP NOT NULL,
    ALTER COLUMN rejection_reason TYPE TEXT USING CASE rejection_reason
            WHEN 0 THEN NULL
            WHEN 1 THEN 'NOT_DELIVERED_AS_AGREED'
            WHEN 2 THEN 'INVOICE_INVALID'
            WHEN 3 THEN 'DUPLICATE'
            WHEN 4 THEN 'OTHER'
            WHEN 5 THEN 'PRICE_ABOVE_AGREEMENT'
            ELSE rejection_reason::TEXT
        END,
    ALTER COLUMN payment_status DROP DEFAULT,
    ALTER COLUMN payment_status DROP NOT NULL,
    ALTER COLUMN payment_status TYPE TEXT USING CASE payment_status
            WHEN 0 THEN NULL
            WHEN 1 THEN 'PENDING'
            WHEN 2 THEN 'PAID'
            WHEN 3 THEN 'FAILED'
            ELSE payment_status::TEXT
        END,
    ADD CONSTRAINT invoices_status_known CHECK (status IN (
        'SUBMITTED', 'APPROVED', 'REJECTED', 'ATTESTED')),
    ADD CONSTRAINT invoices_rejection_reason_known CHECK (rejection_reason IN (
        'NOT_DELIVERED_AS_AGREED', 'INVOICE_INVALID', 'DUPLICATE', 'OTHER', 'PRICE_ABOVE_AGREEMENT')),
    ADD CONSTRAINT invoices_payment_status_known CHECK (payment_status IN (
        'PENDING', 'PAID', 'FAILED'));

CREATE INDEX invoices_payment_pending ON invoices (payment_handed_at) WHERE payment_status = 'PENDING';
