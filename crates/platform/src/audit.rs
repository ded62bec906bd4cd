//! The audit trail: who read or changed what, when and why (ADR 0021 §12).
//!
//! NAV must be able to say who saw an employee's personal data and who took each decision.
//! Every service writes its trail the same way, into the platform's `audit_entries` table
//! (migration 3), in the unit of work of the change it records — so an entry exists if and only
//! if the change does — or, for a read, before the response leaves. Entries are never changed.
//! Actors come from the token: the NAV ident or the portal's subject, never a fødselsnummer.

use ekb_proto::v1;
use sqlx::{PgConnection, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ApiError, Violations, auth::Caller, messaging::Db, validate::Page};

/// Who acted, as the trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    kind: v1::AuditActorKind,
    actor: String,
    client_id: String,
    organisation_number: String,
}

impl AuditActor {
    /// A NAV employee (caseworker, decider, reader, auditor) calling with their token.
    pub fn nav_employee(caller: &Caller) -> Self {
        Self::from_caller(v1::AuditActorKind::NavEmployee, caller, "")
    }

    /// An employer's (or a supplier's) representative acting for `organisation_number`.
    pub fn organisation(caller: &Caller, organisation_number: &str) -> Self {
        Self::from_caller(v1::AuditActorKind::Employer, caller, organisation_number)
    }

    /// Another system calling with its own token (e.g. the payment system).
    pub fn system_client(caller: &Caller) -> Self {
        Self::from_caller(v1::AuditActorKind::SystemClient, caller, "")
    }

    /// The service itself, applying an event or running a job.
    pub fn service() -> Self {
        AuditActor {
            kind: v1::AuditActorKind::Service,
            actor: String::new(),
            client_id: String::new(),
            organisation_number: String::new(),
        }
    }

    fn from_caller(kind: v1::AuditActorKind, caller: &Caller, organisation_number: &str) -> Self {
        AuditActor {
            kind,
            actor: caller.subject.clone(),
            client_id: caller.client_id.clone().unwrap_or_default(),
            organisation_number: organisation_number.to_owned(),
        }
    }
}

/// One thing to record: what was read or changed, by whom and why.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// The case.
    pub case_id: Uuid,
    /// What was read or changed (an application, grant, claim or order id).
    pub subject_id: Uuid,
    /// Read, decision or other change.
    pub kind: v1::AuditEntryKind,
    /// The RPC's method name, or the event or job that made the change.
    pub action: &'a str,
    /// Who.
    pub actor: &'a AuditActor,
    /// Why.
    pub purpose: v1::AccessPurpose,
    /// When, by the service's clock.
    pub at: OffsetDateTime,
}

/// Records `event` on `connection` (inside the unit of work of the change); returns the entry id.
pub async fn record(
    connection: &mut PgConnection,
    event: &AuditEvent<'_>,
) -> Result<Uuid, sqlx::Error> {
    let entry_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO audit_entries (entry_id, case_id, subject_id, kind, action, actor_kind, \
         actor, client_id, organisation_number, purpose, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(entry_id)
    .bind(event.case_id)
    .bind(event.subject_id)
    .bind(event.kind.as_str_name())
    .bind(event.action)
    .bind(event.actor.kind.as_str_name())
    .bind(&event.actor.actor)
    .bind(&event.actor.client_id)
    .bind(&event.actor.organisation_number)
    .bind(event.purpose.as_str_name())
    .bind(event.at)
    .execute(connection)
    .await?;
    Ok(entry_id)
}

/// One page of `case_id`'s trail, oldest first, and the next page's token (empty at the end).
pub async fn list_for_case(
    connection: &mut PgConnection,
    case_id: Uuid,
    page: Page,
) -> Result<(Vec<v1::AuditEntry>, String), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sequence, entry_id, case_id, subject_id, kind, action, actor_kind, actor, \
         client_id, organisation_number, purpose, occurred_at FROM audit_entries \
         WHERE case_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(case_id)
    .bind(page.after.unwrap_or(0))
    .bind(page.fetch_limit())
    .fetch_all(connection)
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let occurred_at: OffsetDateTime = row.try_get("occurred_at")?;
        let kind: String = row.try_get("kind")?;
        let actor_kind: String = row.try_get("actor_kind")?;
        let purpose: String = row.try_get("purpose")?;
        let entry = v1::AuditEntry {
            entry_id: row.try_get::<Uuid, _>("entry_id")?.to_string(),
            case_id: row.try_get::<Uuid, _>("case_id")?.to_string(),
            subject_id: row.try_get::<Uuid, _>("subject_id")?.to_string(),
            kind: v1::AuditEntryKind::from_str_name(&kind).unwrap_or_default() as i32,
            action: row.try_get("action")?,
            actor_kind: v1::AuditActorKind::from_str_name(&actor_kind).unwrap_or_default() as i32,
            actor: row.try_get("actor")?,
            client_id: row.try_get("client_id")?,
            organisation_number: row.try_get("organisation_number")?,
            purpose: v1::AccessPurpose::from_str_name(&purpose).unwrap_or_default() as i32,
            occurred_at: Some(ekb_proto::convert::timestamp_to_wire(occurred_at)),
        };
        entries.push((row.try_get::<i64, _>("sequence")?, entry));
    }
    let (page_rows, next) = page.finish(entries, |(sequence, _)| *sequence);
    Ok((
        page_rows.into_iter().map(|(_, entry)| entry).collect(),
        next,
    ))
}

/// One read of a case's personal data: what was read, by whom, why.
#[derive(Debug, Clone)]
pub struct Read<'a> {
    /// The case.
    pub case_id: Uuid,
    /// What was read (an application, grant, claim or order id).
    pub subject_id: Uuid,
    /// The RPC.
    pub action: &'a str,
    /// Who read it.
    pub actor: AuditActor,
    /// Why.
    pub purpose: v1::AccessPurpose,
}

/// Records `reads` (kind READ), all at the service clock's now, in one unit of work committed
/// before the caller answers: the one policy for reads of personal data in every service. A
/// read that cannot be recorded is not answered.
pub async fn record_reads(db: &Db, reads: &[Read<'_>]) -> Result<(), ApiError> {
    if reads.is_empty() {
        return Ok(());
    }
    let mut work = db.begin().await?;
    let at = work.now();
    for read in reads {
        record(
            work.db(),
            &AuditEvent {
                case_id: read.case_id,
                subject_id: read.subject_id,
                kind: v1::AuditEntryKind::Read,
                action: read.action,
                actor: &read.actor,
                purpose: read.purpose,
                at,
            },
        )
        .await?;
    }
    work.commit().await?;
    Ok(())
}

/// ListAuditEntries, the same in every service that keeps a trail: one page of the case's
/// trail, and the read itself recorded (purpose CONTROL) in the same unit of work, so an
/// auditor's read is audited wherever it happens.
pub async fn list_audit_entries(
    db: &Db,
    caller: &Caller,
    request: &v1::ListAuditEntriesRequest,
) -> Result<v1::ListAuditEntriesResponse, ApiError> {
    let mut check = Violations::new();
    let case_id = check.uuid("case_id", &request.case_id);
    let page = check.page(request.page_size, &request.page_token, &case_id);
    let (case_id, page) = check.finish_with(|| Some((case_id?, page?)))?;
    let mut work = db.begin().await?;
    let (entries, next_page_token) = list_for_case(work.db(), case_id, page).await?;
    record(
        work.db(),
        &AuditEvent {
            case_id,
            subject_id: case_id,
            kind: v1::AuditEntryKind::Read,
            action: "ListAuditEntries",
            actor: &AuditActor::nav_employee(caller),
            purpose: v1::AccessPurpose::Control,
            at: db.clock().now(),
        },
    )
    .await?;
    work.commit().await?;
    Ok(v1::ListAuditEntriesResponse {
        entries,
        next_page_token,
    })
}
