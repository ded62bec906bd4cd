//! The claim's decisions without a database: each allowed change, each refusal with its
//! contract reason, repeats that change nothing, and four eyes.

use ekb_platform::{ApiError, change::Decision, payment::PaymentOutcome};
use ekb_proto::v1;
use time::{Date, OffsetDateTime, macros::date, macros::datetime};
use uuid::Uuid;

use super::{Claim, DECIDER_IS_RECOMMENDER};
use crate::{
    codes::{ClaimStatus, FailureReason, GrantStatus, PaymentStatus, RejectionReason},
    commands::{Decide, Outcome, Recommend, Recommendation, RecordOutcome, SubmitClaim},
    model::ClaimRow,
    test_fixtures::{grant_row, person},
};

const NOW: OffsetDateTime = datetime!(2027-03-01 10:00 UTC);
const GRACE_DAYS: i64 = 90;
const CASEWORKER: &str = "Z990001";
const OTHER_CASEWORKER: &str = "Z990003";
const DECIDER: &str = "Z990002";

/// A SUBMITTED claim of 800 000 øre against a grant of 1 000 000 øre.
fn submitted() -> Claim {
    let grant = grant_row(GrantStatus::ClaimPending);
    let command = SubmitClaim {
        request_id: Uuid::now_v7(),
        grant_id: grant.grant_id,
        employer: grant
            .employer_organisation_number
            .parse()
            .expect("a valid organisation number"),
        invoice_date: date!(2027 - 02 - 20),
        invoice_reference: "F-1".to_owned(),
        invoice_document_id: Uuid::now_v7(),
        expert_report_document_id: Uuid::now_v7(),
        invoice_amount_ore: 800_000,
        start: date!(2027 - 01 - 10),
        end: date!(2027 - 02 - 15),
    };
    let row = ClaimRow {
        sequence: 1,
        ..ClaimRow::submitted(
            &grant,
            command,
            String::new(),
            datetime!(2027-02-25 08:00 UTC),
            date!(2027 - 02 - 25),
        )
    };
    Claim {
        row,
        recommendations: Vec::new(),
        grant,
    }
}

fn approve(claim: &Claim, payout_ore: i64) -> Recommend {
    Recommend {
        claim_id: claim.row.claim_id,
        recommendation: Recommendation::Approve {
            payout_ore,
            reduction_reason: None,
            explanation: String::new(),
        },
        note: "ok".to_owned(),
    }
}

fn reject(claim: &Claim, reason: RejectionReason) -> Recommend {
    Recommend {
        claim_id: claim.row.claim_id,
        recommendation: Recommendation::Reject {
            reason,
            explanation: "no report".to_owned(),
        },
        note: String::new(),
    }
}

fn verdict(claim: &Claim, version: i32, verdict: v1::DeciderVerdict, note: &str) -> Decide {
    Decide {
        claim_id: claim.row.claim_id,
        version,
        verdict,
        note: note.to_owned(),
    }
}

fn confirm(claim: &Claim, version: i32) -> Decide {
    verdict(claim, version, v1::DeciderVerdict::Confirm, "")
}

/// A claim the caseworker recommended approving in full.
fn recommended() -> Claim {
    let mut claim = submitted();
    let command = approve(&claim, 800_000);
    claim
        .recommend(&person(CASEWORKER), &command, NOW)
        .expect("recommended");
    claim
}

/// A claim approved by the decider, its first payment attempt pending.
fn approved() -> Claim {
    let mut claim = recommended();
    let command = confirm(&claim, 1);
    claim
        .decide(&person(DECIDER), &command, GRACE_DAYS, NOW)
        .expect("approved");
    claim
}

fn outcome(claim: &Claim, attempt: i32, outcome: Outcome) -> RecordOutcome {
    RecordOutcome {
        claim_id: claim.row.claim_id,
        attempt,
        outcome,
    }
}

fn paid(reference: &str) -> Outcome {
    Outcome::Paid {
        reference: reference.to_owned(),
        paid_date: date!(2027 - 03 - 01),
    }
}

fn failed() -> Outcome {
    Outcome::Failed {
        reason: FailureReason::NoRefundAccount,
        detail: "ingen konto".to_owned(),
    }
}

/// The effects of a change, as their debug text (audit actions and event types).
fn changed(decision: Result<Decision, ApiError>) -> String {
    match decision.expect("allowed") {
        Decision::Changed(effects) => format!("{effects:?}"),
        Decision::Unchanged => panic!("expected a change"),
    }
}

fn unchanged(decision: Result<Decision, ApiError>) {
    assert!(matches!(decision.expect("allowed"), Decision::Unchanged));
}

/// The contract reason of a refusal.
fn reason(decision: Result<Decision, ApiError>) -> &'static str {
    match decision.expect_err("refused") {
        ApiError::FailedPrecondition { reason, .. } | ApiError::PermissionDenied { reason, .. } => {
            reason
        }
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn a_caseworker_recommends_a_submitted_claim_once() {
    let mut claim = submitted();
    let command = approve(&claim, 800_000);
    let effects = changed(claim.recommend(&person(CASEWORKER), &command, NOW));
    assert!(effects.contains("RecommendRefundDecision"), "{effects}");
    assert_eq!(claim.row.status, ClaimStatus::Recommended);
    assert_eq!(claim.recommendations.len(), 1);
    assert_eq!(claim.recommendations[0].version, 1);
    assert_eq!(claim.recommendations[0].recommended_by, CASEWORKER);
    assert_eq!(claim.recommendations[0].recommended_at, NOW);

    unchanged(claim.recommend(&person(CASEWORKER), &command, NOW));
    assert_eq!(claim.recommendations.len(), 1, "a repeat adds nothing");
    let other = reject(&claim, RejectionReason::Other);
    assert_eq!(
        reason(claim.recommend(&person(CASEWORKER), &other, NOW)),
        "CLAIM_NOT_SUBMITTED"
    );
}

#[test]
fn a_recommendation_is_refused_for_a_wrong_payout_or_lateness_of_a_timely_claim() {
    let mut claim = submitted();
    let above = approve(&claim, 800_001);
    assert!(matches!(
        claim.recommend(&person(CASEWORKER), &above, NOW),
        Err(ApiError::InvalidArgument(_))
    ));
    let below_without_reason = approve(&claim, 700_000);
    assert!(matches!(
        claim.recommend(&person(CASEWORKER), &below_without_reason, NOW),
        Err(ApiError::InvalidArgument(_))
    ));
    let late = reject(&claim, RejectionReason::LateClaim);
    assert_eq!(
        reason(claim.recommend(&person(CASEWORKER), &late, NOW)),
        "CLAIM_NOT_LATE"
    );
    assert_eq!(claim.row.status, ClaimStatus::Submitted);
    assert!(claim.recommendations.is_empty());

    claim.row.late = true;
    changed(claim.recommend(&person(CASEWORKER), &late, NOW));
}

#[test]
fn a_confirmed_approval_settles_the_grant_and_starts_the_payment() {
    let mut claim = recommended();
    let command = confirm(&claim, 1);
    let effects = changed(claim.decide(&person(DECIDER), &command, GRACE_DAYS, NOW));
    assert!(effects.contains("DecideRefundClaim"), "{effects}");
    assert!(
        effects.contains("ekspertbistand.v1.RefundApproved"),
        "{effects}"
    );
    assert_eq!(claim.row.status, ClaimStatus::Approved);
    assert_eq!(claim.row.payout_amount_ore, Some(800_000));
    assert_eq!(
        (claim.row.decided_by.as_str(), claim.row.decided_at),
        (DECIDER, Some(NOW))
    );
    assert_eq!(claim.row.recommended_by, CASEWORKER);
    assert_eq!(claim.row.payment_status, Some(PaymentStatus::Pending));
    assert_eq!(claim.row.payment_attempt, 1);
    assert_eq!(claim.grant.status, GrantStatus::Settled);

    unchanged(claim.decide(&person(DECIDER), &command, GRACE_DAYS, NOW));
    let other_decider = person("Z990009");
    assert_eq!(
        reason(claim.decide(&other_decider, &command, GRACE_DAYS, NOW)),
        "CLAIM_NOT_RECOMMENDED"
    );
}

#[test]
fn a_confirmed_rejection_opens_the_grant_again() {
    let mut claim = submitted();
    let command = reject(&claim, RejectionReason::Other);
    changed(claim.recommend(&person(CASEWORKER), &command, NOW));
    let effects = changed(claim.decide(&person(DECIDER), &confirm(&claim, 1), GRACE_DAYS, NOW));
    assert!(
        effects.contains("ekspertbistand.v1.RefundRejected"),
        "{effects}"
    );
    assert_eq!(claim.row.status, ClaimStatus::Rejected);
    assert_eq!(claim.row.rejection_reason, Some(RejectionReason::Other));
    assert_eq!(claim.grant.status, GrantStatus::Active);
    assert!(claim.grant.had_rejected_claim);
    assert_eq!(claim.row.payment_status, None);
}

#[test]
fn a_returned_recommendation_goes_back_to_the_caseworker_once() {
    let mut claim = recommended();
    let command = verdict(&claim, 1, v1::DeciderVerdict::Return, "check the invoice");
    changed(claim.decide(&person(DECIDER), &command, GRACE_DAYS, NOW));
    assert_eq!(claim.row.status, ClaimStatus::Submitted);
    let returned = &claim.recommendations[0];
    assert_eq!(
        (
            returned.returned_by.as_str(),
            returned.returned_at,
            returned.return_note.as_str()
        ),
        (DECIDER, Some(NOW), "check the invoice")
    );
    unchanged(claim.decide(&person(DECIDER), &command, GRACE_DAYS, NOW));

    // The caseworker recommends again: version 2.
    let again = approve(&claim, 800_000);
    changed(claim.recommend(&person(CASEWORKER), &again, NOW));
    assert_eq!(claim.recommendations.len(), 2);
    assert_eq!(claim.recommendations[1].version, 2);
}

#[test]
fn a_decision_on_a_stale_version_is_refused() {
    let mut claim = recommended();
    assert_eq!(
        reason(claim.decide(&person(DECIDER), &confirm(&claim, 2), GRACE_DAYS, NOW)),
        "RECOMMENDATION_CHANGED"
    );
    let mut submitted = submitted();
    assert_eq!(
        reason(submitted.decide(&person(DECIDER), &confirm(&submitted, 1), GRACE_DAYS, NOW)),
        "CLAIM_NOT_RECOMMENDED"
    );
    assert_eq!(claim.row.status, ClaimStatus::Recommended);
}

#[test]
fn nobody_who_recommended_in_any_round_may_decide() {
    let mut claim = recommended();
    let command = confirm(&claim, 1);
    let refused = claim.decide(&person(CASEWORKER), &command, GRACE_DAYS, NOW);
    assert!(matches!(
        refused,
        Err(ApiError::PermissionDenied {
            reason: DECIDER_IS_RECOMMENDER,
            ..
        })
    ));
    assert_eq!(claim.row.status, ClaimStatus::Recommended);

    // Returned, then recommended by another caseworker: the first may still not decide.
    let returned = verdict(&claim, 1, v1::DeciderVerdict::Return, "again");
    changed(claim.decide(&person(DECIDER), &returned, GRACE_DAYS, NOW));
    let again = approve(&claim, 800_000);
    changed(claim.recommend(&person(OTHER_CASEWORKER), &again, NOW));
    assert_eq!(
        reason(claim.decide(&person(CASEWORKER), &confirm(&claim, 2), GRACE_DAYS, NOW)),
        DECIDER_IS_RECOMMENDER
    );
    changed(claim.decide(&person(DECIDER), &confirm(&claim, 2), GRACE_DAYS, NOW));
}

#[test]
fn a_reported_outcome_is_recorded_once_for_the_current_attempt() {
    let mut claim = approved();
    let payment_system = person("payment-adapter");
    let first = outcome(&claim, 1, paid("P-1"));
    let effects = changed(claim.record_outcome(&payment_system, &first, NOW));
    assert!(
        effects.contains("ekspertbistand.v1.PaymentCompleted"),
        "{effects}"
    );
    assert!(effects.contains("RecordPaymentOutcome"), "{effects}");
    assert_eq!(claim.row.payment_status, Some(PaymentStatus::Paid));
    assert_eq!(claim.row.payment_reference, "P-1");
    assert_eq!(claim.row.payment_outcome_at, Some(NOW));
    assert_eq!(
        claim.grant.ended_at,
        Some(NOW),
        "retention counts from here"
    );

    unchanged(claim.record_outcome(&payment_system, &first, NOW));
    let other = outcome(&claim, 1, paid("P-2"));
    assert_eq!(
        reason(claim.record_outcome(&payment_system, &other, NOW)),
        "PAYMENT_OUTCOME_CONFLICT"
    );
    let stale = outcome(&claim, 2, paid("P-1"));
    assert_eq!(
        reason(claim.record_outcome(&payment_system, &stale, NOW)),
        "NOT_CURRENT_ATTEMPT"
    );
    let mut pending = recommended();
    let early = outcome(&pending, 1, paid("P-1"));
    assert_eq!(
        reason(pending.record_outcome(&payment_system, &early, NOW)),
        "CLAIM_NOT_APPROVED"
    );
}

#[test]
fn a_failed_payment_is_retried_as_the_next_attempt() {
    let mut claim = approved();
    let caseworker = person(CASEWORKER);
    assert_eq!(
        reason(claim.retry_payment(&caseworker)),
        "PAYMENT_NOT_FAILED"
    );
    let failure = outcome(&claim, 1, failed());
    let effects = changed(claim.record_outcome(&person("payment-adapter"), &failure, NOW));
    assert!(
        effects.contains("ekspertbistand.v1.PaymentFailed"),
        "{effects}"
    );
    claim.row.payment_sent_at = Some(NOW);
    claim.row.payment_handed_at = Some(NOW);

    let effects = changed(claim.retry_payment(&caseworker));
    assert!(effects.contains("RetryPayment"), "{effects}");
    assert!(effects.contains("Change"), "audited as a change: {effects}");
    assert_eq!(claim.row.payment_attempt, 2);
    assert_eq!(claim.row.payment_status, Some(PaymentStatus::Pending));
    assert_eq!(claim.row.failure_reason, None);
    assert_eq!(claim.row.failure_detail, "");
    assert_eq!(
        (
            claim.row.payment_sent_at,
            claim.row.payment_outcome_at,
            claim.row.payment_handed_at
        ),
        (None, None, None),
        "the next attempt is handed over afresh"
    );
    assert_eq!(
        reason(claim.retry_payment(&caseworker)),
        "PAYMENT_NOT_FAILED"
    );
}

#[test]
fn the_payment_system_s_answer_is_recorded_for_the_current_pending_attempt_only() {
    let mut claim = approved();
    // Accepted: handed over, the outcome comes later.
    let effects = changed(Ok(claim.payment_answered(
        1,
        Some(&PaymentOutcome::Accepted),
        NOW,
    )));
    assert!(!effects.contains("PaymentSystem"), "{effects}");
    assert_eq!(
        (claim.row.payment_sent_at, claim.row.payment_handed_at),
        (Some(NOW), Some(NOW))
    );
    // Unreachable, later: handed over again; the first hand-over is kept.
    let later = NOW + time::Duration::minutes(5);
    changed(Ok(claim.payment_answered(1, None, later)));
    assert_eq!(
        (claim.row.payment_sent_at, claim.row.payment_handed_at),
        (Some(NOW), Some(later))
    );
    // Paid: recorded on the day paid in Oslo.
    let midnight_in_oslo = datetime!(2027-03-01 23:30 UTC);
    let answer = PaymentOutcome::Paid {
        payment_reference: "FAKE-1".to_owned(),
    };
    let effects = changed(Ok(claim.payment_answered(
        1,
        Some(&answer),
        midnight_in_oslo,
    )));
    assert!(effects.contains("PaymentSystem"), "{effects}");
    assert!(
        effects.contains("ekspertbistand.v1.PaymentCompleted"),
        "{effects}"
    );
    assert_eq!(claim.row.payment_status, Some(PaymentStatus::Paid));
    assert_eq!(
        claim.row.paid_date,
        Some(Date::from_calendar_date(2027, time::Month::March, 2).expect("date"))
    );
    // Answered: a second answer to the same attempt changes nothing.
    unchanged(Ok(claim.payment_answered(1, Some(&answer), later)));
    // An answer to an attempt that is no longer current changes nothing.
    let mut retried = approved();
    unchanged(Ok(retried.payment_answered(2, Some(&answer), NOW)));
    assert_eq!(retried.row.payment_sent_at, None);
}

#[test]
fn a_refused_payment_records_the_failure_with_its_detail_cut_to_the_contract_s_bound() {
    let mut claim = approved();
    let answer = PaymentOutcome::Failed {
        reason: "x".repeat(crate::commands::MAX_DETAIL + 10),
    };
    let effects = changed(Ok(claim.payment_answered(1, Some(&answer), NOW)));
    assert!(
        effects.contains("ekspertbistand.v1.PaymentFailed"),
        "{effects}"
    );
    assert_eq!(claim.row.payment_status, Some(PaymentStatus::Failed));
    assert_eq!(claim.row.failure_reason, Some(FailureReason::Rejected));
    assert_eq!(
        claim.row.failure_detail.chars().count(),
        crate::commands::MAX_DETAIL
    );
    assert_eq!(claim.grant.ended_at, None);
}
