-- Transactional outbox and consumer inbox, shared by every service (crates/platform).
-- Service migrations are numbered from 100 so they never collide with these.

CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    event_id       UUID        NOT NULL UNIQUE,
    topic          TEXT        NOT NULL,
    message_key    TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    payload        BYTEA       NOT NULL,
    trace_context  JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at   TIMESTAMPTZ
);

-- The relay reads only unpublished rows, oldest first.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE inbox (
    event_id      UUID        PRIMARY KEY,
    event_type    TEXT        NOT NULL,
    topic         TEXT        NOT NULL,
    kafka_partition INTEGER   NOT NULL,
    kafka_offset  BIGINT      NOT NULL,
    outcome       TEXT        NOT NULL CHECK (outcome IN ('applied', 'skipped_unknown_type', 'dead_lettered')),
    detail        TEXT,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
