-- Refunds' tables: the grants it learnt from GrantApproved, their deadline extensions, the
-- refund claims against them with their payment, and every recommendation on a claim.
-- Enum values are stored as the contract's names (e.g. CLAIMABLE_GRANT_STATUS_ACTIVE).

CREATE TABLE grants (
    grant_id uuid PRIMARY KEY,
    application_id uuid NOT NULL,
    case_id uuid NOT NULL,
    employer_organisation_number text NOT NULL,
    county_code text NOT NULL,
    employee_pseudonym text NOT NULL,
    granted_amount_ore bigint NOT NULL CHECK (granted_amount_ore > 0),
    grant_date date NOT NULL,
    application_submitted_date date,
    planned_start_date date,
    case_opened_date date,
    original_deadline date NOT NULL,
    refund_deadline date NOT NULL,
    granted_at timestamptz NOT NULL,
    competence_area text NOT NULL,
    -- The expert granted for (ProposedExpert, protobuf-encoded); the name is erased by retention.
    expert bytea NOT NULL,
    status text NOT NULL,
    expired_at timestamptz,
    cancelled_at timestamptz,
    had_rejected_claim boolean NOT NULL DEFAULT false,
    -- When the grant ended (settled and paid, expired or cancelled): retention counts from here.
    ended_at timestamptz,
    personal_data_erased_at timestamptz,
    sequence bigint GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX grants_employer ON grants (employer_organisation_number, refund_deadline, grant_id);
CREATE INDEX grants_active_deadline ON grants (refund_deadline, grant_id)
    WHERE status = 'CLAIMABLE_GRANT_STATUS_ACTIVE';
CREATE INDEX grants_ended ON grants (ended_at) WHERE personal_data_erased_at IS NULL;

CREATE TABLE deadline_extensions (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    grant_id uuid NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    previous_deadline date NOT NULL,
    new_deadline date NOT NULL,
    reason text NOT NULL,
    explanation text NOT NULL,
    extended_by text NOT NULL,
    extended_at timestamptz NOT NULL
);

CREATE INDEX deadline_extensions_grant ON deadline_extensions (grant_id, position);

CREATE TABLE claims (
    claim_id uuid PRIMARY KEY,
    grant_id uuid NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    case_id uuid NOT NULL,
    request_id uuid NOT NULL,
    -- The submitting request, encoded: a retry with other content is ALREADY_EXISTS.
    request_digest bytea NOT NULL,
    employer_organisation_number text NOT NULL,
    county_code text NOT NULL,
    invoice_date date NOT NULL,
    invoice_reference text NOT NULL,
    invoice_document_id uuid NOT NULL,
    expert_report_document_id uuid NOT NULL,
    invoice_amount_ore bigint NOT NULL CHECK (invoice_amount_ore > 0),
    payable_amount_ore bigint NOT NULL CHECK (payable_amount_ore > 0),
    assistance_start_date date NOT NULL,
    assistance_end_date date NOT NULL,
    submitted_at timestamptz NOT NULL,
    submitted_date date NOT NULL,
    refund_deadline_date date NOT NULL,
    late boolean NOT NULL,
    days_late integer NOT NULL,
    status text NOT NULL,
    rejection_reason text,
    rejection_explanation text NOT NULL DEFAULT '',
    decided_at timestamptz,
    decided_by text NOT NULL DEFAULT '',
    recommended_by text NOT NULL DEFAULT '',
    payout_amount_ore bigint CHECK (payout_amount_ore IS NULL OR
        (payout_amount_ore > 0 AND payout_amount_ore <= payable_amount_ore)),
    payout_reduction_reason text NOT NULL DEFAULT 'PAYOUT_REDUCTION_REASON_UNSPECIFIED',
    payout_reduction_explanation text NOT NULL DEFAULT '',
    payment_status text,
    payment_attempt integer NOT NULL DEFAULT 0,
    payment_reference text NOT NULL DEFAULT '',
    paid_date date,
    failure_reason text,
    failure_detail text NOT NULL DEFAULT '',
    payment_sent_at timestamptz,
    payment_outcome_at timestamptz,
    -- When the current attempt was last handed to the payment system (the resend worker's
    -- clock); payment_sent_at keeps the first hand-over.
    payment_handed_at timestamptz,
    sequence bigint GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT claims_request_unique UNIQUE (request_id)
);

-- At most one live claim (submitted, recommended or approved) per grant.
CREATE UNIQUE INDEX claims_one_live_per_grant ON claims (grant_id)
    WHERE status IN ('REFUND_CLAIM_STATUS_SUBMITTED', 'REFUND_CLAIM_STATUS_RECOMMENDED',
                     'REFUND_CLAIM_STATUS_APPROVED');
CREATE INDEX claims_work_list ON claims (sequence);
CREATE INDEX claims_payment_pending ON claims (payment_sent_at)
    WHERE payment_status = 'REFUND_PAYMENT_STATUS_PENDING';

CREATE TABLE recommendations (
    claim_id uuid NOT NULL REFERENCES claims (claim_id) ON DELETE CASCADE,
    version integer NOT NULL,
    approve boolean NOT NULL,
    payout_ore bigint,
    reduction_reason text NOT NULL,
    reduction_explanation text NOT NULL,
    rejection_reason text NOT NULL,
    rejection_explanation text NOT NULL,
    note text NOT NULL,
    recommended_by text NOT NULL,
    recommended_at timestamptz NOT NULL,
    returned_by text NOT NULL DEFAULT '',
    returned_at timestamptz,
    return_note text NOT NULL DEFAULT '',
    PRIMARY KEY (claim_id, version)
);

