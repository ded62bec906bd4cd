-- The audit trail (ekb_platform::audit): who read or changed what, when and why. Every service
-- that handles personal data or decisions writes it in the unit of work of the change (for a
-- read, before the response); nothing updates or deletes a row (kept as long as the record it
-- describes: retention jobs of the services remove neither).
CREATE TABLE audit_entries (
    sequence            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    entry_id            uuid PRIMARY KEY,
    case_id             uuid NOT NULL,
    subject_id          uuid NOT NULL,
    -- The proto enum names (AuditEntryKind, AuditActorKind, AccessPurpose).
    kind                text NOT NULL,
    action              text NOT NULL,
    actor_kind          text NOT NULL,
    actor               text NOT NULL,
    client_id           text NOT NULL,
    organisation_number text NOT NULL,
    purpose             text NOT NULL,
    occurred_at         timestamptz NOT NULL
);

CREATE INDEX audit_entries_by_case ON audit_entries (case_id, sequence);
