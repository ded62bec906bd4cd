-- Pilot-ordering's tables: read models of routed cases and of the registry's agreements and
-- experts (fed by events, so ordering never calls another service), the call-off orders and
-- the suppliers' invoices. Enum columns hold the contract's enum numbers (stable across
-- versions, pilot_ordering.proto); dates are Europe/Oslo calendar dates.

-- Cases routing published (CaseRouted); `flow` becomes REGULAR on CaseFlowChanged.
CREATE TABLE cases (
    case_id                      UUID        PRIMARY KEY,
    -- Work-list paging (oldest opened first, by this sequence after opened_at).
    sequence                     BIGINT      GENERATED ALWAYS AS IDENTITY UNIQUE,
    county_code                  CHAR(2)     NOT NULL,
    employer_organisation_number TEXT        NOT NULL,
    -- CompetenceArea number; 0 when the employer chose its own expert.
    competence_area              INT         NOT NULL,
    flow                         TEXT        NOT NULL CHECK (flow IN ('PILOT', 'REGULAR')),
    opened_at                    TIMESTAMPTZ NOT NULL,
    -- Set when PilotFallbackRequested was published for the case (asked once).
    fallback_requested_at        TIMESTAMPTZ,
    received_at                  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX cases_awaiting ON cases (opened_at, sequence) WHERE flow = 'PILOT';

-- Framework agreements as the registry's events carry them; an older version never
-- overwrites a newer one.
CREATE TABLE agreements (
    agreement_id                 UUID        PRIMARY KEY,
    agreement_reference          TEXT        NOT NULL,
    supplier_organisation_number TEXT        NOT NULL,
    supplier_name                TEXT        NOT NULL,
    county_code                  CHAR(2)     NOT NULL,
    competence_areas             INT[]       NOT NULL,
    price_ore                    BIGINT      NOT NULL,
    ranking                      INT         NOT NULL,
    monthly_capacity             INT         NOT NULL,
    valid_from                   DATE        NOT NULL,
    valid_to                     DATE        NOT NULL,
    -- Set when ended early: the last day covered.
    ended_on                     DATE,
    version                      BIGINT      NOT NULL,
    updated_at                   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX agreements_by_county ON agreements (county_code);

-- One row per agreement and calendar month, locked (SELECT … FOR UPDATE) while an order is
-- counted against the agreement's monthly capacity: concurrent orders queue on it, so the
-- capacity is never exceeded. The month's use is counted from the orders under the lock.
CREATE TABLE agreement_months (
    agreement_id UUID NOT NULL,
    month        DATE NOT NULL,
    PRIMARY KEY (agreement_id, month)
);

-- Experts as the registry's events carry them (the part ordering uses).
CREATE TABLE experts (
    expert_id                    UUID        PRIMARY KEY,
    supplier_organisation_number TEXT        NOT NULL,
    version                      BIGINT      NOT NULL
);

CREATE TABLE orders (
    order_id                     UUID        PRIMARY KEY,
    sequence                     BIGINT      GENERATED ALWAYS AS IDENTITY UNIQUE,
    -- PlaceOrder's idempotency key; NULL for follow-up orders the service placed itself.
    request_id                   UUID        CONSTRAINT orders_request_id_unique UNIQUE,
    request_fingerprint          TEXT,
    case_id                      UUID        NOT NULL REFERENCES cases (case_id),
    county_code                  CHAR(2)     NOT NULL,
    competence_area              INT         NOT NULL,
    agreement_id                 UUID        NOT NULL,
    agreement_reference          TEXT        NOT NULL,
    supplier_organisation_number TEXT        NOT NULL,
    supplier_name                TEXT        NOT NULL,
    price_ore                    BIGINT      NOT NULL CHECK (price_ore > 0),
    budget_year                  INT         NOT NULL,
    account_chapter              INT         NOT NULL,
    account_post                 INT         NOT NULL,
    -- OrderStatus number.
    status                       INT         NOT NULL,
    -- The first day of the month (Europe/Oslo) the order was requested in: capacity month.
    usage_month                  DATE        NOT NULL,
    contact_name                 TEXT        NOT NULL,
    contact_phone                TEXT        NOT NULL,
    contact_email                TEXT        NOT NULL,
    assignment_description       TEXT        NOT NULL,
    -- The employee's fødselsnummer, sealed with the configured key (never in clear).
    employee_fodselsnummer_sealed TEXT       NOT NULL,
    employee_pseudonym           TEXT        NOT NULL,
    previous_order_id            UUID,
    next_order_id                UUID,
    reservation_id               TEXT        NOT NULL DEFAULT '',
    case_opened_at               TIMESTAMPTZ NOT NULL,
    requested_at                 TIMESTAMPTZ NOT NULL,
    placed_at                    TIMESTAMPTZ,
    -- When the SupplierNotifier took the order (NULL: still to send).
    supplier_notified_at         TIMESTAMPTZ,
    supplier_responded_date      DATE,
    accepted_at                  TIMESTAMPTZ,
    decline_reason               TEXT        NOT NULL DEFAULT '',
    decline_reason_code          INT         NOT NULL DEFAULT 0,
    expert_id                    UUID,
    started_date                 DATE,
    completed_date               DATE,
    report_document_id           UUID,
    cancellation_reason          INT         NOT NULL DEFAULT 0,
    funds_denied_reason          INT         NOT NULL DEFAULT 0,
    cancellation_explanation     TEXT        NOT NULL DEFAULT '',
    cancelled_at                 TIMESTAMPTZ,
    abort_reason                 INT         NOT NULL DEFAULT 0,
    abort_explanation            TEXT        NOT NULL DEFAULT '',
    abort_previous_status        INT         NOT NULL DEFAULT 0,
    aborted_date                 DATE,
    aborted_at                   TIMESTAMPTZ,
    invoice_deadline_date        DATE,
    expiry_reason                INT         NOT NULL DEFAULT 0,
    expired_at                   TIMESTAMPTZ,
    updated_at                   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX orders_by_case ON orders (case_id, sequence);
CREATE INDEX orders_by_status ON orders (status, county_code, sequence);
CREATE INDEX orders_by_agreement_month ON orders (agreement_id, usage_month);
CREATE INDEX orders_to_notify ON orders (placed_at) WHERE supplier_notified_at IS NULL AND placed_at IS NOT NULL;

CREATE TABLE invoices (
    invoice_id                   UUID        PRIMARY KEY,
    sequence                     BIGINT      GENERATED ALWAYS AS IDENTITY UNIQUE,
    request_id                   UUID        NOT NULL CONSTRAINT invoices_request_id_unique UNIQUE,
    request_fingerprint          TEXT        NOT NULL,
    order_id                     UUID        NOT NULL REFERENCES orders (order_id),
    invoice_number               TEXT        NOT NULL,
    invoice_date                 DATE        NOT NULL,
    amount_ore                   BIGINT      NOT NULL CHECK (amount_ore > 0),
    invoice_document_id          UUID        NOT NULL,
    -- InvoiceStatus number.
    status                       INT         NOT NULL,
    rejection_reason             INT         NOT NULL DEFAULT 0,
    rejection_explanation        TEXT        NOT NULL DEFAULT '',
    submitted_at                 TIMESTAMPTZ NOT NULL,
    decided_at                   TIMESTAMPTZ,
    decided_by                   TEXT        NOT NULL DEFAULT '',
    attested_by                  TEXT        NOT NULL DEFAULT '',
    attested_at                  TIMESTAMPTZ,
    -- InvoicePaymentStatus number.
    payment_status               INT         NOT NULL DEFAULT 0,
    payment_reference            TEXT        NOT NULL DEFAULT '',
    payment_recorded_at          TIMESTAMPTZ,
    -- Hand-overs to the payment system so far (the payment key is `<invoice id>/<attempt>`).
    payment_attempt              INT         NOT NULL DEFAULT 0,
    payment_handed_at            TIMESTAMPTZ
);

CREATE INDEX invoices_by_order ON invoices (order_id, sequence);
CREATE INDEX invoices_payment_pending ON invoices (payment_handed_at) WHERE payment_status = 1;
