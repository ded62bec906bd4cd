-- The evaluation's read model (docs/adr/0033-evaluation-read-model.md). One row per fact an
-- event established about a case, keyed by (case, kind, subject) so a repeated or re-sent event
-- adds nothing; the figures are folded from these rows at query time, so the order events
-- arrive in never matters. No personal data: the case and every grant, order, claim and
-- application are kept only as keyed fingerprints (HMAC-SHA256), no organisation number,
-- pseudonym or name is stored, and agreements appear by their registry id only.
CREATE TABLE case_facts (
    -- Fingerprint of the case id.
    case_key text NOT NULL,
    -- What happened, e.g. CASE_ROUTED, GRANT_APPROVED, ORDER_ACCEPTED.
    kind text NOT NULL,
    -- Fingerprint of what it happened to within the case (a grant, order, claim…), or another
    -- de-duplicating key; '' for a fact a case has once.
    subject text NOT NULL,
    -- Fingerprint of the application a grant belongs to (GRANT_REQUESTED), else ''.
    parent text NOT NULL DEFAULT '',
    -- County code (CASE_ROUTED).
    county_code text NOT NULL DEFAULT '',
    -- A contract enum's value name (flow, reason, cause), without its prefix.
    code text NOT NULL DEFAULT '',
    -- A second code (CASE_ROUTED: the routing reason; CASE_FLOW_CHANGED: the source).
    detail text NOT NULL DEFAULT '',
    -- The fact's day (Europe/Oslo).
    on_date date,
    -- A second day (CLAIM_SUBMITTED: the first day of the assistance, the expert's start).
    second_date date,
    -- An amount in øre.
    amount_ore bigint,
    -- A second amount in øre (GRANT_APPROVED: the max rate frozen at the decision).
    limit_ore bigint,
    -- A yes/no the fact carries (REFUND_CLAIM_SUBMITTED: late; CANCELLATION_REQUESTED: by the
    -- employer; ORDER_REQUESTED: a follow-up order).
    flag boolean NOT NULL DEFAULT false,
    -- The framework agreement (ORDER_ACCEPTED), by its registry id.
    agreement_id uuid,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_key, kind, subject)
);

-- Cohorts are chosen by the month the case was opened.
CREATE INDEX case_facts_routed_on ON case_facts (on_date) WHERE kind = 'CASE_ROUTED';
-- Capacity use per agreement and month.
CREATE INDEX case_facts_accepted ON case_facts (agreement_id, on_date) WHERE kind = 'ORDER_ACCEPTED';

-- Framework agreements as the registry last described them: the county and monthly capacity
-- per month of validity. A newer version replaces an older, never the reverse.
CREATE TABLE agreements (
    agreement_id uuid PRIMARY KEY,
    county_code text NOT NULL,
    monthly_capacity integer NOT NULL CHECK (monthly_capacity > 0),
    -- The first and last day it covers (validity cut at an early end); NULL covered_to when it
    -- was ended before it started.
    covered_from date NOT NULL,
    covered_to date,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
