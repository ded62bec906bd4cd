-- A PILOT case may fall back to the regular flow (ADR 0022). The case keeps its row: its id, its
-- opened-at and its routing decision (`flow`, `reason`) never change. `current_flow` is the flow
-- it follows now, and every change is one row of `case_flow_changes`.

ALTER TABLE cases ADD COLUMN current_flow TEXT;
UPDATE cases SET current_flow = flow;
ALTER TABLE cases
    ALTER COLUMN current_flow SET NOT NULL,
    ADD CONSTRAINT cases_current_flow_known CHECK (current_flow IN ('REGULAR', 'PILOT'));

-- The day an expert started on one of the case's pilot orders (pilot-ordering's OrderStarted):
-- from then on a caseworker can no longer send the case to the regular flow.
ALTER TABLE cases ADD COLUMN pilot_expert_started_date DATE;

CREATE TABLE case_flow_changes (
    case_id           UUID        NOT NULL REFERENCES cases (case_id),
    -- 1 for the case's first change, then 2, …
    sequence          INTEGER     NOT NULL CHECK (sequence > 0),
    from_flow         TEXT        NOT NULL CHECK (from_flow IN ('REGULAR', 'PILOT')),
    to_flow           TEXT        NOT NULL CHECK (to_flow IN ('REGULAR', 'PILOT')),
    -- FlowChangeReason without its prefix, e.g. NO_SUPPLIER_AVAILABLE.
    reason            TEXT        NOT NULL,
    source            TEXT        NOT NULL CHECK (source IN ('CASEWORKER', 'PILOT_ORDERING')),
    -- The caseworker's NAV ident (token subject), or `pilot-ordering`.
    changed_by        TEXT        NOT NULL,
    -- The caseworker's note; never published.
    note              TEXT        NOT NULL DEFAULT '',
    -- The PilotFallbackRequested event that asked for it; NULL for a caseworker's change.
    fallback_event_id UUID,
    changed_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (case_id, sequence),
    CHECK (from_flow <> to_flow)
);
