//! Refunds' scheduled jobs, each a function of the instant it runs at (`ekb_platform::jobs::every`
//! passes the service clock's, lib.rs; tests pass a moved one):
//!
//! - expiry: an ACTIVE grant whose deadline lies more than `refunds.late_claim_grace` before today
//!   (Europe/Oslo) expires and GrantExpired is published, on which budget releases it. A
//!   conditional UPDATE over rows claimed with `FOR UPDATE SKIP LOCKED` makes two replicas
//!   running at once share the grants rather than expire one twice; a rerun finds nothing.
//! - retention: free text (explanations, notes, failure details) and the expert's name are
//!   erased `retention.personal_data` (calendar months) after the day the grant ended; the
//!   grant, its claims and its audit trail are deleted `retention.records` after the day of the
//!   grant (§ 5), once it has ended. Days are Europe/Oslo days.

use ekb_domain::{oslo_date, oslo_start_of_day};
use ekb_platform::{messaging::Db, retention::RetentionSection};
use ekb_proto::v1;
use prost::Message as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    published::{self, subject},
    store,
    trail::{self, Entry},
};

/// Grants one unit of work handles.
const BATCH: i64 = 200;

/// Expires every grant due at `now`; returns how many this call expired.
pub async fn expire_due(db: &Db, grace_days: i64, now: OffsetDateTime) -> anyhow::Result<usize> {
    let last_unexpired_deadline = oslo_date(now) - time::Duration::days(grace_days);
    let mut total = 0;
    loop {
        let mut work = db.begin().await?;
        let expired: Vec<Uuid> = sqlx::query_scalar(
            "WITH due AS (SELECT grant_id FROM grants \
               WHERE status = 'ACTIVE' AND refund_deadline < $1 \
               ORDER BY refund_deadline, grant_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE grants SET status = 'EXPIRED', expired_at = $2, ended_at = $2 \
             FROM due WHERE grants.grant_id = due.grant_id AND grants.status = 'ACTIVE' \
             RETURNING grants.grant_id",
        )
        .bind(last_unexpired_deadline)
        .bind(now)
        .bind(BATCH)
        .fetch_all(work.db())
        .await?;
        for grant_id in &expired {
            let Some(grant) = store::find_grant(work.db(), *grant_id, false).await? else {
                continue;
            };
            work.publish(
                &subject(grant.case_id, grant.grant_id),
                &published::grant_expired(&grant, now),
            )
            .await?;
            let entry = Entry::of_grant(&grant, v1::AuditEntryKind::Decision, "ExpiryJob");
            trail::by_service(work.db(), entry, now).await?;
        }
        work.commit().await?;
        total += expired.len();
        if i64::try_from(expired.len()).unwrap_or(0) < BATCH {
            break;
        }
    }
    if total > 0 {
        tracing::info!(expired = total, "grants expired");
    }
    Ok(total)
}

/// What one retention run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    /// Grants whose personal data was erased.
    pub erased: usize,
    /// Grants deleted with their claims and trail.
    pub deleted: usize,
}

/// Applies `retention` at `now`.
pub async fn apply_retention(
    db: &Db,
    retention: &RetentionSection,
    now: OffsetDateTime,
) -> anyhow::Result<Retained> {
    let today = oslo_date(now);
    let erase_ended_before = oslo_start_of_day(retention.personal_data.before(today));
    let mut work = db.begin().await?;
    let due: Vec<(Uuid, Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT grant_id, case_id, expert FROM grants WHERE personal_data_erased_at IS NULL \
         AND ended_at < $1 ORDER BY ended_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(erase_ended_before)
    .bind(BATCH)
    .fetch_all(work.db())
    .await?;
    for (grant_id, case_id, expert) in &due {
        let expert = v1::ProposedExpert::decode(expert.as_slice())
            .map(|expert| {
                v1::ProposedExpert {
                    name: String::new(),
                    ..expert
                }
                .encode_to_vec()
            })
            .unwrap_or_default();
        sqlx::query(
            "UPDATE grants SET expert = $2, personal_data_erased_at = $3 WHERE grant_id = $1",
        )
        .bind(grant_id)
        .bind(expert)
        .bind(now)
        .execute(work.db())
        .await?;
        for statement in [
            "UPDATE claims SET rejection_explanation = '', payout_reduction_explanation = '', \
             failure_detail = '' WHERE grant_id = $1",
            "UPDATE recommendations SET reduction_explanation = '', rejection_explanation = '', \
             note = '', return_note = '' \
             WHERE claim_id IN (SELECT claim_id FROM claims WHERE grant_id = $1)",
            "UPDATE deadline_extensions SET explanation = '' WHERE grant_id = $1",
        ] {
            sqlx::query(statement)
                .bind(grant_id)
                .execute(work.db())
                .await?;
        }
        let entry = Entry {
            case_id: *case_id,
            subject_id: *grant_id,
            kind: v1::AuditEntryKind::Change,
            action: "RetentionJob",
        };
        trail::by_service(work.db(), entry, now).await?;
    }
    let keep_from = oslo_start_of_day(retention.records.before(today));
    let deleted: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM grants WHERE grant_id IN (SELECT grant_id FROM grants \
           WHERE granted_at < $1 AND ended_at IS NOT NULL LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING case_id",
    )
    .bind(keep_from)
    .bind(BATCH)
    .fetch_all(work.db())
    .await?;
    sqlx::query(
        "DELETE FROM audit_entries WHERE case_id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM grants WHERE grants.case_id = audit_entries.case_id)",
    )
    .bind(&deleted)
    .execute(work.db())
    .await?;
    work.commit().await?;
    let retained = Retained {
        erased: due.len(),
        deleted: deleted.len(),
    };
    if retained != Retained::default() {
        tracing::info!(
            erased = retained.erased,
            deleted = retained.deleted,
            "retention applied"
        );
    }
    Ok(retained)
}
