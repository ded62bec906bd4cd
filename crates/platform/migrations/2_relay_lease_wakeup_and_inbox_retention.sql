-- The outbox relay publishes without holding a transaction or a lock while Kafka acknowledges
-- (docs/adr/0017-outbox-relay-lease-and-wakeup.md):
--   * one relay per database publishes, the holder of this lease row; it renews the lease every
--     round and another replica takes over once it has expired;
--   * every insert into the outbox notifies channel ekb_outbox at commit, so the relay wakes at
--     once instead of polling.
CREATE TABLE outbox_relay_lease (
    singleton   BOOLEAN     PRIMARY KEY DEFAULT true CHECK (singleton),
    holder      UUID        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION outbox_notify_relay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ekb_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify_relay AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_relay();

-- The inbox is pruned like the outbox (consumer.inbox_retention_hours).
CREATE INDEX inbox_received_at ON inbox (received_at);
