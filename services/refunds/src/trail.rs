//! Writing refunds' audit trail: one entry per decision, change and read of a claim, in the
//! unit of work of the change (ADR 0021 §12). Actors come from the token, never a fødselsnummer.

use ekb_platform::audit::{self, AuditActor, AuditEvent};
use ekb_proto::v1;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{ClaimRow, GrantRow};

/// What one entry records, besides who.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The case.
    pub case_id: Uuid,
    /// The grant or claim.
    pub subject_id: Uuid,
    /// Read, decision or change.
    pub kind: v1::AuditEntryKind,
    /// The RPC, event or job.
    pub action: &'a str,
}

impl<'a> Entry<'a> {
    /// An entry about `claim` (its case; the claim is the subject).
    pub fn of_claim(claim: &ClaimRow, kind: v1::AuditEntryKind, action: &'a str) -> Self {
        Entry {
            case_id: claim.case_id,
            subject_id: claim.claim_id,
            kind,
            action,
        }
    }

    /// An entry about `grant` (its case; the grant is the subject).
    pub fn of_grant(grant: &GrantRow, kind: v1::AuditEntryKind, action: &'a str) -> Self {
        Entry {
            case_id: grant.case_id,
            subject_id: grant.grant_id,
            kind,
            action,
        }
    }
}

/// Records `entry` by `actor` for `purpose`.
pub async fn record(
    db: &mut PgConnection,
    entry: Entry<'_>,
    actor: &AuditActor,
    purpose: v1::AccessPurpose,
    at: time::OffsetDateTime,
) -> Result<(), sqlx::Error> {
    audit::record(
        db,
        &AuditEvent {
            case_id: entry.case_id,
            subject_id: entry.subject_id,
            kind: entry.kind,
            action: entry.action,
            actor,
            purpose,
            at,
        },
    )
    .await
    .map(|_| ())
}

/// A change the service made on its own (an event applied, a job).
pub async fn by_service(
    db: &mut PgConnection,
    entry: Entry<'_>,
    at: time::OffsetDateTime,
) -> Result<(), sqlx::Error> {
    record(
        db,
        entry,
        &AuditActor::service(),
        v1::AccessPurpose::System,
        at,
    )
    .await
}
