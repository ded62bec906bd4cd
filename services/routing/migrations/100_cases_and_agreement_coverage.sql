-- Routing's own tables: the routed cases, and a read model of framework-agreement coverage fed
-- by expert-registry events (so routing never calls the registry on its hot path).

CREATE TABLE cases (
    case_id                      UUID        PRIMARY KEY,
    -- Client idempotency key: a retried OpenCase finds its case here.
    request_id                   UUID        NOT NULL UNIQUE,
    -- The facts in canonical form, to tell a retry from a different request reusing an id.
    facts_fingerprint            TEXT        NOT NULL,
    employer_organisation_number CHAR(9)     NOT NULL,
    municipality_number          CHAR(4)     NOT NULL,
    county_code                  CHAR(2)     NOT NULL,
    -- NULL when the employer chose its own expert.
    competence_area              TEXT,
    case_date                    DATE        NOT NULL,
    flow                         TEXT        NOT NULL CHECK (flow IN ('REGULAR', 'PILOT')),
    reason                       TEXT        NOT NULL,
    opened_at                    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Evaluation figures per county, flow and month.
CREATE INDEX cases_by_county_and_date ON cases (county_code, case_date);

CREATE TABLE agreement_coverage (
    agreement_id      UUID        PRIMARY KEY,
    county_code       CHAR(2)     NOT NULL,
    competence_areas  TEXT[]      NOT NULL,
    valid_from        DATE        NOT NULL,
    -- The last day covered: the validity end, or the end date if the agreement was ended early.
    valid_to          DATE        NOT NULL,
    -- The registry's version of the agreement; older events never overwrite newer state.
    version           BIGINT      NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX agreement_coverage_by_county ON agreement_coverage (county_code, valid_from, valid_to);
