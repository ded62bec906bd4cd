//! Refunds' SQL: grants, extensions, claims and recommendations. Every function runs on the
//! connection it is given — a unit of work for writes, a pooled connection for reads. A
//! [`Claim`] and a [`Grant`] are loaded under lock and saved here as `change::Record`s, so their
//! decisions never touch the database.

use ekb_platform::{ApiError, change::Record, messaging::UnitOfWork};
use sqlx::{AssertSqlSafe, PgConnection};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{
    claim::Claim,
    codes::GrantStatus,
    grant::Grant,
    model::{ClaimRow, ExtensionRow, GrantRow, RecommendationRow},
};

const GRANT_COLUMNS: &str = "grant_id, application_id, case_id, employer_organisation_number, \
     county_code, employee_pseudonym, granted_amount_ore, grant_date, application_submitted_date, \
     planned_start_date, case_opened_date, original_deadline, refund_deadline, granted_at, \
     competence_area, expert, status, expired_at, cancelled_at, had_rejected_claim, ended_at";

/// Stores a grant from GrantApproved; `false` if it was known already (a repeat).
pub async fn insert_grant(db: &mut PgConnection, grant: &GrantRow) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO grants (grant_id, application_id, case_id, employer_organisation_number, \
         county_code, employee_pseudonym, granted_amount_ore, grant_date, \
         application_submitted_date, planned_start_date, case_opened_date, original_deadline, \
         refund_deadline, granted_at, competence_area, expert, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (grant_id) DO NOTHING",
    )
    .bind(grant.grant_id)
    .bind(grant.application_id)
    .bind(grant.case_id)
    .bind(&grant.employer_organisation_number)
    .bind(&grant.county_code)
    .bind(&grant.employee_pseudonym)
    .bind(grant.granted_amount_ore)
    .bind(grant.grant_date)
    .bind(grant.application_submitted_date)
    .bind(grant.planned_start_date)
    .bind(grant.case_opened_date)
    .bind(grant.original_deadline)
    .bind(grant.refund_deadline)
    .bind(grant.granted_at)
    .bind(grant.competence_area)
    .bind(&grant.expert)
    .bind(grant.status)
    .execute(db)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// One grant; `lock` takes its row lock for the rest of the unit of work.
pub async fn find_grant(
    db: &mut PgConnection,
    grant_id: Uuid,
    lock: bool,
) -> Result<Option<GrantRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM grants WHERE grant_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(grant_id)
        .fetch_optional(db)
        .await
}

/// Sets a grant's status (a claim against it is pending).
pub async fn set_grant_status(
    db: &mut PgConnection,
    grant_id: Uuid,
    status: GrantStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE grants SET status = $2 WHERE grant_id = $1")
        .bind(grant_id)
        .bind(status)
        .execute(db)
        .await?;
    Ok(())
}

/// Writes back a grant's mutable columns (status, deadline and the instants of its end).
pub async fn update_grant(db: &mut PgConnection, grant: &GrantRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE grants SET status = $2, refund_deadline = $3, expired_at = $4, \
         cancelled_at = $5, had_rejected_claim = $6, ended_at = $7 WHERE grant_id = $1",
    )
    .bind(grant.grant_id)
    .bind(grant.status)
    .bind(grant.refund_deadline)
    .bind(grant.expired_at)
    .bind(grant.cancelled_at)
    .bind(grant.had_rejected_claim)
    .bind(grant.ended_at)
    .execute(db)
    .await?;
    Ok(())
}

/// A grant's deadline extensions, oldest first.
pub async fn extensions(
    db: &mut PgConnection,
    grant_id: Uuid,
) -> Result<Vec<ExtensionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT previous_deadline, new_deadline, reason, explanation, extended_by, extended_at \
         FROM deadline_extensions WHERE grant_id = $1 ORDER BY position",
    )
    .bind(grant_id)
    .fetch_all(db)
    .await
}

/// Records a deadline extension of `grant_id`.
pub async fn insert_extension(
    db: &mut PgConnection,
    grant_id: Uuid,
    extension: &ExtensionRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deadline_extensions (grant_id, previous_deadline, new_deadline, reason, \
         explanation, extended_by, extended_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(grant_id)
    .bind(extension.previous_deadline)
    .bind(extension.new_deadline)
    .bind(extension.reason)
    .bind(&extension.explanation)
    .bind(&extension.extended_by)
    .bind(extension.extended_at)
    .execute(db)
    .await?;
    Ok(())
}

/// One page of an employer's grants (optionally by status), earliest deadline first;
/// `offset` rows skipped, `limit` rows at most.
pub async fn grants_of_employer(
    db: &mut PgConnection,
    organisation_number: &str,
    statuses: &[GrantStatus],
    offset: i64,
    limit: i64,
) -> Result<Vec<GrantRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM grants WHERE employer_organisation_number = $1 \
         AND (cardinality($2::text[]) = 0 OR status = ANY($2)) \
         ORDER BY refund_deadline, grant_id OFFSET $3 LIMIT $4"
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(organisation_number)
        .bind(statuses)
        .bind(offset)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// One page of ACTIVE grants whose deadline is on or before `date`, earliest deadline first.
pub async fn expiring_grants(
    db: &mut PgConnection,
    date: Date,
    county_code: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Vec<GrantRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM grants WHERE status = 'ACTIVE' \
         AND refund_deadline <= $1 AND ($2::text IS NULL OR county_code = $2) \
         ORDER BY refund_deadline, grant_id OFFSET $3 LIMIT $4"
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(date)
        .bind(county_code)
        .bind(offset)
        .bind(limit)
        .fetch_all(db)
        .await
}

const CLAIM_COLUMNS: &str = "claim_id, grant_id, case_id, request_id, request_digest, \
     employer_organisation_number, county_code, invoice_date, invoice_reference, \
     invoice_document_id, expert_report_document_id, invoice_amount_ore, payable_amount_ore, \
     assistance_start_date, assistance_end_date, submitted_at, submitted_date, \
     refund_deadline_date, late, days_late, status, rejection_reason, rejection_explanation, \
     decided_at, decided_by, recommended_by, payout_amount_ore, payout_reduction_reason, \
     payout_reduction_explanation, payment_status, payment_attempt, payment_reference, paid_date, \
     failure_reason, failure_detail, payment_sent_at, payment_outcome_at, payment_handed_at, sequence";

/// One claim; `lock` takes its row lock.
pub async fn find_claim(
    db: &mut PgConnection,
    claim_id: Uuid,
    lock: bool,
) -> Result<Option<ClaimRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CLAIM_COLUMNS} FROM claims WHERE claim_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(claim_id)
        .fetch_optional(db)
        .await
}

/// The claim an earlier SubmitRefundClaim with `request_id` created.
pub async fn find_claim_by_request(
    db: &mut PgConnection,
    request_id: Uuid,
) -> Result<Option<ClaimRow>, sqlx::Error> {
    let sql = format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE request_id = $1");
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(request_id)
        .fetch_optional(db)
        .await
}

/// A grant's claims, oldest first.
pub async fn claims_of_grant(
    db: &mut PgConnection,
    grant_id: Uuid,
) -> Result<Vec<ClaimRow>, sqlx::Error> {
    let sql = format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE grant_id = $1 ORDER BY sequence");
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(grant_id)
        .fetch_all(db)
        .await
}

/// Stores a new claim.
pub async fn insert_claim(db: &mut PgConnection, claim: &ClaimRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO claims (claim_id, grant_id, case_id, request_id, request_digest, \
         employer_organisation_number, county_code, invoice_date, invoice_reference, \
         invoice_document_id, expert_report_document_id, invoice_amount_ore, payable_amount_ore, \
         assistance_start_date, assistance_end_date, submitted_at, submitted_date, \
         refund_deadline_date, late, days_late, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21)",
    )
    .bind(claim.claim_id)
    .bind(claim.grant_id)
    .bind(claim.case_id)
    .bind(claim.request_id)
    .bind(&claim.request_digest)
    .bind(&claim.employer_organisation_number)
    .bind(&claim.county_code)
    .bind(claim.invoice_date)
    .bind(&claim.invoice_reference)
    .bind(claim.invoice_document_id)
    .bind(claim.expert_report_document_id)
    .bind(claim.invoice_amount_ore)
    .bind(claim.payable_amount_ore)
    .bind(claim.assistance_start_date)
    .bind(claim.assistance_end_date)
    .bind(claim.submitted_at)
    .bind(claim.submitted_date)
    .bind(claim.refund_deadline_date)
    .bind(claim.late)
    .bind(claim.days_late)
    .bind(claim.status)
    .execute(db)
    .await?;
    Ok(())
}

/// Writes back a claim's mutable columns (status, decision and payment).
pub async fn update_claim(db: &mut PgConnection, claim: &ClaimRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE claims SET status = $2, rejection_reason = $3, rejection_explanation = $4, \
         decided_at = $5, decided_by = $6, recommended_by = $7, payout_amount_ore = $8, \
         payout_reduction_reason = $9, payout_reduction_explanation = $10, payment_status = $11, \
         payment_attempt = $12, payment_reference = $13, paid_date = $14, failure_reason = $15, \
         failure_detail = $16, payment_sent_at = $17, payment_outcome_at = $18, \
         payment_handed_at = $19 WHERE claim_id = $1",
    )
    .bind(claim.claim_id)
    .bind(claim.status)
    .bind(claim.rejection_reason)
    .bind(&claim.rejection_explanation)
    .bind(claim.decided_at)
    .bind(&claim.decided_by)
    .bind(&claim.recommended_by)
    .bind(claim.payout_amount_ore)
    .bind(claim.payout_reduction_reason)
    .bind(&claim.payout_reduction_explanation)
    .bind(claim.payment_status)
    .bind(claim.payment_attempt)
    .bind(&claim.payment_reference)
    .bind(claim.paid_date)
    .bind(claim.failure_reason)
    .bind(&claim.failure_detail)
    .bind(claim.payment_sent_at)
    .bind(claim.payment_outcome_at)
    .bind(claim.payment_handed_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks that the claim's current payment attempt is handed over (again) at `at`.
pub async fn mark_handed_over(
    db: &mut PgConnection,
    claim_id: Uuid,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE claims SET payment_handed_at = $2 WHERE claim_id = $1")
        .bind(claim_id)
        .bind(at)
        .execute(db)
        .await?;
    Ok(())
}

/// Approved claims whose current payment attempt is PENDING and was not handed over since
/// `handed_before` (or never), oldest first, locked and skipped by other replicas.
pub async fn unanswered_payments(
    db: &mut PgConnection,
    handed_before: OffsetDateTime,
    limit: i64,
) -> Result<Vec<ClaimRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CLAIM_COLUMNS} FROM claims WHERE payment_status = 'PENDING' \
         AND (payment_handed_at IS NULL OR payment_handed_at < $1) \
         ORDER BY sequence LIMIT $2 FOR UPDATE SKIP LOCKED"
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(handed_before)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// One page of the work list, oldest submission first (keyset on the row sequence).
pub async fn work_list(
    db: &mut PgConnection,
    filter: &crate::commands::ListClaims,
) -> Result<Vec<ClaimRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {CLAIM_COLUMNS} FROM claims WHERE sequence > $1 \
         AND (cardinality($2::text[]) = 0 OR status = ANY($2)) \
         AND (cardinality($3::text[]) = 0 OR county_code = ANY($3)) \
         AND (NOT $4 OR late) \
         AND (cardinality($5::text[]) = 0 OR payment_status = ANY($5)) \
         ORDER BY sequence LIMIT $6"
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(filter.page.after.unwrap_or(0))
        .bind(&filter.statuses)
        .bind(&filter.county_codes)
        .bind(filter.late_only)
        .bind(&filter.payment_statuses)
        .bind(filter.page.fetch_limit())
        .fetch_all(db)
        .await
}

/// A claim's recommendations, oldest first.
pub async fn recommendations(
    db: &mut PgConnection,
    claim_id: Uuid,
) -> Result<Vec<RecommendationRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT claim_id, version, approve, payout_ore, reduction_reason, reduction_explanation, \
         rejection_reason, rejection_explanation, note, recommended_by, recommended_at, \
         returned_by, returned_at, return_note FROM recommendations WHERE claim_id = $1 \
         ORDER BY version",
    )
    .bind(claim_id)
    .fetch_all(db)
    .await
}

/// Stores a recommendation version, or its return by a decider if it is stored already.
pub async fn save_recommendation(
    db: &mut PgConnection,
    row: &RecommendationRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recommendations (claim_id, version, approve, payout_ore, reduction_reason, \
         reduction_explanation, rejection_reason, rejection_explanation, note, recommended_by, \
         recommended_at, returned_by, returned_at, return_note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (claim_id, version) DO UPDATE SET returned_by = excluded.returned_by, \
         returned_at = excluded.returned_at, return_note = excluded.return_note",
    )
    .bind(row.claim_id)
    .bind(row.version)
    .bind(row.approve)
    .bind(row.payout_ore)
    .bind(row.reduction_reason)
    .bind(&row.reduction_explanation)
    .bind(row.rejection_reason)
    .bind(&row.rejection_explanation)
    .bind(&row.note)
    .bind(&row.recommended_by)
    .bind(row.recommended_at)
    .bind(&row.returned_by)
    .bind(row.returned_at)
    .bind(&row.return_note)
    .execute(db)
    .await?;
    Ok(())
}

impl Record for Claim {
    type Key = Uuid;

    /// The claim, its recommendations and its grant, each row locked (claim first).
    async fn load_locked(work: &mut UnitOfWork, claim_id: &Uuid) -> Result<Self, ApiError> {
        let row = find_claim(work.db(), *claim_id, true)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no refund claim {claim_id}")))?;
        let recommendations = recommendations(work.db(), row.claim_id).await?;
        let grant = find_grant(work.db(), row.grant_id, true)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("claim without grant")))?;
        Ok(Claim {
            row,
            recommendations,
            grant,
        })
    }

    async fn save(&self, work: &mut UnitOfWork) -> Result<(), ApiError> {
        update_claim(work.db(), &self.row).await?;
        for recommendation in &self.recommendations {
            save_recommendation(work.db(), recommendation).await?;
        }
        update_grant(work.db(), &self.grant).await?;
        Ok(())
    }
}

impl Record for Grant {
    type Key = Uuid;

    /// The grant, locked, with its extensions; NOT_FOUND (for an event: permanent) when
    /// refunds has had no GrantApproved for it.
    async fn load_locked(work: &mut UnitOfWork, grant_id: &Uuid) -> Result<Self, ApiError> {
        let row = find_grant(work.db(), *grant_id, true)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "refunds does not know grant {grant_id} (no GrantApproved)"
                ))
            })?;
        let extensions = extensions(work.db(), row.grant_id).await?;
        Ok(Grant::new(row, extensions))
    }

    async fn save(&self, work: &mut UnitOfWork) -> Result<(), ApiError> {
        update_grant(work.db(), &self.row).await?;
        for extension in self.new_extensions() {
            insert_extension(work.db(), self.row.grant_id, extension).await?;
        }
        Ok(())
    }
}
