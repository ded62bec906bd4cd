//! Migration 102 moves every stored enum from the contract's full name to its short code: rows
//! stored before it read the same after it through the service's own store, an UNSPECIFIED
//! reason becomes NULL, and the CHECK constraints it adds refuse a contract name afterwards.

use ekb_domain::CompetenceArea;
use ekb_refunds::{
    codes::{
        ClaimStatus, ExtensionReason, FailureReason, GrantStatus, PaymentStatus, ReductionReason,
        RejectionReason,
    },
    store,
};
use ekb_testkit::postgres::{database_at, drop_database};
use sqlx::{Connection, PgConnection, types::Text};
use uuid::Uuid;

/// The migrations before the codes.
const BEFORE: [&str; 2] = [
    include_str!("../../migrations/100_grants_claims_and_payments.sql"),
    include_str!("../../migrations/101_claim_fingerprint_is_a_hash.sql"),
];

/// The migration under test.
const CODES: &str = include_str!("../../migrations/102_enums_as_short_codes.sql");

/// A database at the schema before migration 102; its name and a connection.
async fn before_codes(purpose: &str) -> anyhow::Result<(String, PgConnection)> {
    database_at(purpose, &BEFORE).await
}

/// Inserts a grant as the schema before 102 stored it: `status` and `area` contract names.
async fn insert_grant(db: &mut PgConnection, status: &str, area: &str) -> anyhow::Result<Uuid> {
    let grant_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO grants (grant_id, application_id, case_id, employer_organisation_number, \
         county_code, employee_pseudonym, granted_amount_ore, grant_date, original_deadline, \
         refund_deadline, granted_at, competence_area, expert, status) \
         VALUES ($1, $2, $3, '974760673', '34', 'p', 1000000, '2027-01-04', '2027-06-30', \
         '2027-06-30', now(), $4, '', $5)",
    )
    .bind(grant_id)
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(area)
    .bind(status)
    .execute(db)
    .await?;
    Ok(grant_id)
}

/// Inserts a claim against `grant_id` with the enum columns `names` (status, rejection reason,
/// payout reduction reason, payment status, failure reason) as contract names, and one
/// recommendation with `recommended` (approve, reduction reason, rejection reason).
async fn insert_claim(
    db: &mut PgConnection,
    grant_id: Uuid,
    names: [Option<&str>; 5],
    recommended: (bool, &str, &str),
) -> anyhow::Result<Uuid> {
    let claim_id = Uuid::now_v7();
    let [status, rejection, reduction, payment, failure] = names;
    sqlx::query(
        "INSERT INTO claims (claim_id, grant_id, case_id, request_id, request_digest, \
         employer_organisation_number, county_code, invoice_date, invoice_reference, \
         invoice_document_id, expert_report_document_id, invoice_amount_ore, payable_amount_ore, \
         assistance_start_date, assistance_end_date, submitted_at, submitted_date, \
         refund_deadline_date, late, days_late, status, rejection_reason, \
         payout_reduction_reason, payment_status, failure_reason) \
         SELECT $1, $2, case_id, $3, 'f', '974760673', '34', '2027-02-20', 'F-1', $4, $5, \
         800000, 800000, '2027-01-10', '2027-02-15', now(), '2027-02-25', '2027-06-30', \
         false, 0, $6, $7, COALESCE($8, 'PAYOUT_REDUCTION_REASON_UNSPECIFIED'), $9, $10 \
         FROM grants WHERE grant_id = $2",
    )
    .bind(claim_id)
    .bind(grant_id)
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(status)
    .bind(rejection)
    .bind(reduction)
    .bind(payment)
    .bind(failure)
    .execute(&mut *db)
    .await?;
    let (approve, reduction_reason, rejection_reason) = recommended;
    sqlx::query(
        "INSERT INTO recommendations (claim_id, version, approve, payout_ore, reduction_reason, \
         reduction_explanation, rejection_reason, rejection_explanation, note, recommended_by, \
         recommended_at) VALUES ($1, 1, $2, 700000, $3, '', $4, '', '', 'Z990001', now())",
    )
    .bind(claim_id)
    .bind(approve)
    .bind(reduction_reason)
    .bind(rejection_reason)
    .execute(db)
    .await?;
    Ok(claim_id)
}

#[tokio::test]
async fn stored_names_become_codes_and_unspecified_reasons_become_null() -> anyhow::Result<()> {
    let (name, mut db) = before_codes("refunds_codes").await?;
    let settled = insert_grant(
        &mut db,
        "CLAIMABLE_GRANT_STATUS_SETTLED",
        "COMPETENCE_AREA_CONFLICT_HANDLING",
    )
    .await?;
    let active = insert_grant(
        &mut db,
        "CLAIMABLE_GRANT_STATUS_ACTIVE",
        "COMPETENCE_AREA_UNSPECIFIED",
    )
    .await?;
    sqlx::query(
        "INSERT INTO deadline_extensions (grant_id, previous_deadline, new_deadline, reason, \
         explanation, extended_by, extended_at) VALUES ($1, '2027-06-30', '2027-07-30', \
         'REFUND_DEADLINE_EXTENSION_REASON_REPORT_DELAYED', '', 'Z990001', now())",
    )
    .bind(settled)
    .execute(&mut db)
    .await?;
    let approved = insert_claim(
        &mut db,
        settled,
        [
            Some("REFUND_CLAIM_STATUS_APPROVED"),
            None,
            Some("PAYOUT_REDUCTION_REASON_COSTS_NOT_COVERED"),
            Some("REFUND_PAYMENT_STATUS_FAILED"),
            Some("REFUND_PAYMENT_FAILURE_REASON_NO_REFUND_ACCOUNT"),
        ],
        (
            true,
            "PAYOUT_REDUCTION_REASON_COSTS_NOT_COVERED",
            "REFUND_REJECTION_REASON_UNSPECIFIED",
        ),
    )
    .await?;
    let rejected = insert_claim(
        &mut db,
        active,
        [
            Some("REFUND_CLAIM_STATUS_REJECTED"),
            Some("REFUND_REJECTION_REASON_LATE_CLAIM"),
            None,
            None,
            None,
        ],
        (
            false,
            "PAYOUT_REDUCTION_REASON_UNSPECIFIED",
            "REFUND_REJECTION_REASON_LATE_CLAIM",
        ),
    )
    .await?;

    sqlx::raw_sql(CODES).execute(&mut db).await?;

    let grant = store::find_grant(&mut db, settled, false)
        .await?
        .expect("kept");
    assert_eq!(grant.status, GrantStatus::Settled);
    assert_eq!(
        grant.competence_area,
        Some(Text(CompetenceArea::ConflictHandling))
    );
    let open = store::find_grant(&mut db, active, false)
        .await?
        .expect("kept");
    assert_eq!(
        (open.status, open.competence_area),
        (GrantStatus::Active, None)
    );
    let extensions = store::extensions(&mut db, settled).await?;
    assert_eq!(extensions[0].reason, ExtensionReason::ReportDelayed);

    let claim = store::find_claim(&mut db, approved, false)
        .await?
        .expect("kept");
    assert_eq!(
        (
            claim.status,
            claim.rejection_reason,
            claim.payout_reduction_reason,
            claim.payment_status,
            claim.failure_reason
        ),
        (
            ClaimStatus::Approved,
            None,
            Some(ReductionReason::CostsNotCovered),
            Some(PaymentStatus::Failed),
            Some(FailureReason::NoRefundAccount)
        )
    );
    let recommendation = &store::recommendations(&mut db, approved).await?[0];
    assert_eq!(
        (
            recommendation.reduction_reason,
            recommendation.rejection_reason
        ),
        (Some(ReductionReason::CostsNotCovered), None)
    );
    let claim = store::find_claim(&mut db, rejected, false)
        .await?
        .expect("kept");
    assert_eq!(
        (
            claim.status,
            claim.rejection_reason,
            claim.payout_reduction_reason,
            claim.payment_status
        ),
        (
            ClaimStatus::Rejected,
            Some(RejectionReason::LateClaim),
            None,
            None
        )
    );
    let recommendation = &store::recommendations(&mut db, rejected).await?[0];
    assert_eq!(
        (
            recommendation.reduction_reason,
            recommendation.rejection_reason
        ),
        (None, Some(RejectionReason::LateClaim))
    );

    // A contract name is no code: the CHECK constraints refuse it.
    let refused = sqlx::query(
        "UPDATE grants SET status = 'CLAIMABLE_GRANT_STATUS_ACTIVE' WHERE grant_id = $1",
    )
    .bind(active)
    .execute(&mut db)
    .await
    .expect_err("a contract name is refused");
    assert!(
        refused.to_string().contains("grants_status_known"),
        "{refused}"
    );
    // The partial indexes compare with the codes now.
    let live: Option<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'claims_one_live_per_grant'",
    )
    .fetch_optional(&mut db)
    .await?;
    assert!(
        live.is_some_and(|definition| definition.contains("'SUBMITTED'::text")),
        "the one-live-claim index is rebuilt with the codes"
    );

    db.close().await?;
    drop_database(&name).await
}
