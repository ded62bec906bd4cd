-- Budget's tables: appropriations per budget year and account, one reservation per commitment
-- (grant or pilot order), the immutable ledger of money movements, releases that arrived before
-- their reservation, and the audit trail of SetAppropriation. Nobody but budget writes them.
--
-- Balances: an appropriation's and a reservation's reserved/disbursed/released figures are the
-- sums of their ledger entries. They are kept beside the entries, changed only in the statement
-- that inserts the entry (so readers need no sums), and Reconcile recomputes them from the
-- entries. The CHECK constraints are the ledger's invariants; a bug that breaks one fails its
-- transaction instead of booking it.

CREATE TABLE appropriations (
    appropriation_id           UUID        PRIMARY KEY,
    budget_year                INTEGER     NOT NULL CHECK (budget_year BETWEEN 2000 AND 2100),
    chapter                    INTEGER     NOT NULL CHECK (chapter BETWEEN 1 AND 9999),
    post                       INTEGER     NOT NULL CHECK (post BETWEEN 1 AND 99),
    appropriated_ore           BIGINT      NOT NULL CHECK (appropriated_ore >= 0),
    threshold_percents         INTEGER[]   NOT NULL,
    -- Levels whose ThresholdCrossed has been published (re-armed by a raise).
    crossed_threshold_percents INTEGER[]   NOT NULL DEFAULT '{}',
    reserved_ore               BIGINT      NOT NULL DEFAULT 0 CHECK (reserved_ore >= 0),
    disbursed_ore              BIGINT      NOT NULL DEFAULT 0 CHECK (disbursed_ore >= 0),
    released_ore               BIGINT      NOT NULL DEFAULT 0 CHECK (released_ore >= 0),
    note                       TEXT        NOT NULL DEFAULT '',
    version                    BIGINT      NOT NULL,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT appropriations_year_account_unique UNIQUE (budget_year, chapter, post),
    CONSTRAINT appropriations_outstanding_not_negative
        CHECK (reserved_ore - disbursed_ore - released_ore >= 0),
    -- Available = appropriated − committed (reserved − released) is never below zero.
    CONSTRAINT appropriations_never_overdrawn
        CHECK (reserved_ore - released_ore <= appropriated_ore)
);

-- Every SetAppropriation that changed something, with who did it: the audit trail.
CREATE TABLE appropriation_changes (
    change_id                  BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appropriation_id           UUID        NOT NULL REFERENCES appropriations (appropriation_id),
    version                    BIGINT      NOT NULL,
    previous_appropriated_ore  BIGINT,
    appropriated_ore           BIGINT      NOT NULL,
    threshold_percents         INTEGER[]   NOT NULL,
    note                       TEXT        NOT NULL,
    changed_by                 TEXT        NOT NULL,
    changed_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (appropriation_id, version)
);

CREATE TABLE reservations (
    reservation_id             UUID        PRIMARY KEY,
    -- Order of arrival: PENDING requests are answered in this order; the listing's keyset.
    sequence                   BIGINT      GENERATED ALWAYS AS IDENTITY UNIQUE,
    commitment_kind            TEXT        NOT NULL CHECK (commitment_kind IN ('GRANT', 'PILOT_ORDER')),
    commitment_id              UUID        NOT NULL,
    case_id                    UUID        NOT NULL,
    -- As the request gave them; a malformed one is denied (INVALID_REQUEST) and kept as given.
    county_code                TEXT        NOT NULL,
    flow                       TEXT        NOT NULL CHECK (flow IN ('REGULAR', 'PILOT')),
    budget_year                INTEGER     NOT NULL,
    chapter                    INTEGER     NOT NULL,
    post                       INTEGER     NOT NULL,
    status                     TEXT        NOT NULL
        CHECK (status IN ('PENDING', 'RESERVED', 'SETTLED', 'RELEASED', 'DENIED')),
    requested_ore              BIGINT      NOT NULL,
    reserved_ore               BIGINT      NOT NULL DEFAULT 0 CHECK (reserved_ore >= 0),
    disbursed_ore              BIGINT      NOT NULL DEFAULT 0 CHECK (disbursed_ore >= 0),
    released_ore               BIGINT      NOT NULL DEFAULT 0 CHECK (released_ore >= 0),
    denied_reason              TEXT        CHECK (denied_reason IN ('INSUFFICIENT_FUNDS', 'INVALID_REQUEST')),
    available_when_denied_ore  BIGINT,
    release_cause              TEXT,
    request_event_id           UUID        NOT NULL,
    created_at                 TIMESTAMPTZ NOT NULL,
    answered_at                TIMESTAMPTZ,
    -- Europe/Oslo month of the answer (usage counts denials by it).
    answered_month             TEXT,
    updated_at                 TIMESTAMPTZ NOT NULL,
    -- At most one reservation per commitment, ever.
    CONSTRAINT reservations_commitment_unique UNIQUE (commitment_kind, commitment_id),
    CONSTRAINT reservations_outstanding_not_negative
        CHECK (reserved_ore - disbursed_ore - released_ore >= 0),
    CONSTRAINT reservations_denied_has_reason CHECK ((status = 'DENIED') = (denied_reason IS NOT NULL)),
    -- Answered unless still PENDING, or withdrawn while PENDING (RELEASED, nothing reserved).
    CONSTRAINT reservations_answered_unless_pending
        CHECK (answered_at IS NOT NULL OR status = 'PENDING' OR (status = 'RELEASED' AND reserved_ore = 0)),
    CONSTRAINT reservations_pending_is_unanswered
        CHECK (status <> 'PENDING' OR (answered_at IS NULL AND release_cause IS NULL)),
    CONSTRAINT reservations_nothing_reserved_unless_answered
        CHECK (status NOT IN ('PENDING', 'DENIED') OR reserved_ore = 0)
);

CREATE INDEX reservations_pending ON reservations (budget_year, chapter, post, sequence)
    WHERE status = 'PENDING';
CREATE INDEX reservations_by_year ON reservations (budget_year, sequence DESC);
CREATE INDEX reservations_by_case ON reservations (case_id);

CREATE TABLE ledger_entries (
    entry_id                   BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id             UUID        NOT NULL REFERENCES reservations (reservation_id),
    movement                   TEXT        NOT NULL CHECK (movement IN ('RESERVE', 'RELEASE', 'DISBURSE')),
    amount_ore                 BIGINT      NOT NULL CHECK (amount_ore > 0),
    -- Copies of the reservation's facts, so every entry stands on its own.
    commitment_kind            TEXT        NOT NULL,
    commitment_id              UUID        NOT NULL,
    case_id                    UUID        NOT NULL,
    county_code                TEXT        NOT NULL,
    flow                       TEXT        NOT NULL,
    budget_year                INTEGER     NOT NULL,
    chapter                    INTEGER     NOT NULL,
    post                       INTEGER     NOT NULL,
    release_cause              TEXT,
    disbursement_source_kind   TEXT        CHECK (disbursement_source_kind IN ('REFUND_CLAIM', 'SUPPLIER_INVOICE')),
    disbursement_source_id     UUID,
    -- The event that caused it (for a PENDING request answered by SetAppropriation: the request).
    event_id                   UUID        NOT NULL,
    booked_at                  TIMESTAMPTZ NOT NULL,
    -- Europe/Oslo calendar month of booked_at, `YYYY-MM`: the month usage reports it under.
    booked_month               TEXT        NOT NULL CHECK (booked_month ~ '^[0-9]{4}-[0-9]{2}$'),
    CONSTRAINT ledger_entries_release_has_cause CHECK ((movement = 'RELEASE') = (release_cause IS NOT NULL)),
    CONSTRAINT ledger_entries_disbursement_has_source
        CHECK ((movement = 'DISBURSE') = (disbursement_source_id IS NOT NULL AND disbursement_source_kind IS NOT NULL)),
    -- A claim or invoice is paid once.
    CONSTRAINT ledger_entries_source_paid_once UNIQUE (disbursement_source_kind, disbursement_source_id)
);

CREATE INDEX ledger_entries_by_year ON ledger_entries (budget_year, chapter, post);
CREATE INDEX ledger_entries_by_reservation ON ledger_entries (reservation_id);

-- The ledger is append-only: a correction is a new entry, never a changed or deleted one.
CREATE FUNCTION ledger_entries_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER ledger_entries_no_update_or_delete
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_are_immutable();

CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_are_immutable();

-- A release for a commitment budget has not seen a request for yet: kept (not lost) so the
-- request, when it comes, is denied instead of reserving money nobody would release.
CREATE TABLE parked_releases (
    commitment_kind            TEXT        NOT NULL,
    commitment_id              UUID        NOT NULL,
    case_id                    UUID        NOT NULL,
    release_cause              TEXT        NOT NULL,
    event_id                   UUID        NOT NULL,
    parked_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when the request arrived and was denied because of it.
    resolved_at                TIMESTAMPTZ,
    PRIMARY KEY (commitment_kind, commitment_id)
);
