-- Applications' tables: the read model of routing's cases, the applications (one document per
-- application, encoded as the contract's Application message, beside the columns the lists,
-- the jobs and the one-live-application rule need), and the grant ids minted for them (so a
-- budget or refunds answer finds its application). Nobody but applications writes them.

CREATE TABLE cases (
    case_id                      UUID        PRIMARY KEY,
    flow                         TEXT        NOT NULL CHECK (flow IN ('REGULAR', 'PILOT')),
    county_code                  TEXT        NOT NULL,
    employer_organisation_number TEXT        NOT NULL,
    opened_at                    TIMESTAMPTZ NOT NULL,
    -- The highest CaseFlowChanged sequence applied (0: none).
    flow_sequence                INTEGER     NOT NULL DEFAULT 0,
    updated_at                   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE applications (
    application_id               UUID        PRIMARY KEY,
    sequence                     BIGINT      GENERATED ALWAYS AS IDENTITY UNIQUE,
    request_id                   UUID        NOT NULL,
    -- SHA-256 of the request with the fødselsnummer replaced by its pseudonym (idempotency).
    request_digest               TEXT        NOT NULL,
    case_id                      UUID        NOT NULL REFERENCES cases (case_id),
    employer_organisation_number TEXT        NOT NULL,
    county_code                  TEXT        NOT NULL,
    status                       TEXT        NOT NULL,
    -- Whether it is the case's live application (see applications.proto's header).
    live                         BOOLEAN     NOT NULL,
    submitted_at                 TIMESTAMPTZ NOT NULL,
    status_changed_at            TIMESTAMPTZ NOT NULL,
    current_grant_id             UUID,
    -- When the case ended here (terminal status or ended grant); starts the retention clock.
    ended_at                     TIMESTAMPTZ,
    personal_data_erased_at      TIMESTAMPTZ,
    -- The fødselsnummer sealed with the personal-data cipher; NULL once erased.
    fodselsnummer_sealed         TEXT,
    -- When an unanswered GrantRequested is next re-sent, and the wait after that.
    resend_at                    TIMESTAMPTZ,
    resend_interval_seconds      BIGINT,
    -- The Application message (prost encoding), without any fødselsnummer.
    document                     BYTEA       NOT NULL,
    CONSTRAINT applications_request_id_unique UNIQUE (request_id)
);

CREATE UNIQUE INDEX applications_one_live_per_case ON applications (case_id) WHERE live;
CREATE INDEX applications_work_list ON applications (status, county_code, sequence);
CREATE INDEX applications_by_employer ON applications (employer_organisation_number, sequence);
CREATE INDEX applications_resend_due ON applications (resend_at) WHERE resend_at IS NOT NULL;
CREATE INDEX applications_retention_due ON applications (ended_at)
    WHERE ended_at IS NOT NULL AND personal_data_erased_at IS NULL;

CREATE TABLE grant_ids (
    grant_id       UUID        PRIMARY KEY,
    application_id UUID        NOT NULL REFERENCES applications (application_id),
    minted_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
