//! The grant's decisions without a database: deadline extensions (allowed, refused with their
//! contract reasons, repeated) and applications' cancellations.

use ekb_platform::{ApiError, auth::Caller, change::Decision};
use time::{Duration, OffsetDateTime, macros::date, macros::datetime};

use super::Grant;
use crate::{
    codes::{ExtensionReason, GrantStatus},
    commands::Extend,
    test_fixtures::{grant_row, person},
};

const NOW: OffsetDateTime = datetime!(2027-03-01 10:00 UTC);
const MAX_EXTENSION_DAYS: i64 = 180;

fn caseworker() -> Caller {
    person("Z990001")
}

/// A grant in `status`, deadline 2027-06-30, with no extension.
fn grant(status: GrantStatus) -> Grant {
    Grant::new(grant_row(status), Vec::new())
}

fn extend(grant: &Grant, days_after_original: i64) -> Extend {
    Extend {
        grant_id: grant.row.grant_id,
        new_deadline: grant.row.original_deadline + Duration::days(days_after_original),
        reason: ExtensionReason::ReportDelayed,
        explanation: String::new(),
    }
}

fn changed(decision: Result<Decision, ApiError>) -> String {
    match decision.expect("allowed") {
        Decision::Changed(effects) => format!("{effects:?}"),
        Decision::Unchanged => panic!("expected a change"),
    }
}

fn reason(decision: Result<Decision, ApiError>) -> &'static str {
    match decision.expect_err("refused") {
        ApiError::FailedPrecondition { reason, .. } => reason,
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn a_deadline_is_extended_once_and_the_extension_is_new() {
    let mut grant = grant(GrantStatus::Active);
    let command = extend(&grant, 30);
    let effects = changed(grant.extend_deadline(&caseworker(), &command, MAX_EXTENSION_DAYS, NOW));
    assert!(effects.contains("ExtendRefundDeadline"), "{effects}");
    assert!(
        effects.contains("ekspertbistand.v1.RefundDeadlineExtended"),
        "{effects}"
    );
    assert_eq!(grant.row.refund_deadline, date!(2027 - 07 - 30));
    assert_eq!(grant.row.original_deadline, date!(2027 - 06 - 30));
    let added = grant.new_extensions();
    assert_eq!(added.len(), 1);
    assert_eq!(
        (added[0].previous_deadline, added[0].new_deadline),
        (date!(2027 - 06 - 30), date!(2027 - 07 - 30))
    );
    assert_eq!(
        (added[0].extended_by.as_str(), added[0].extended_at),
        ("Z990001", NOW)
    );

    let decision = grant.extend_deadline(&caseworker(), &command, MAX_EXTENSION_DAYS, NOW);
    assert!(matches!(decision, Ok(Decision::Unchanged)), "a repeat");
    assert_eq!(grant.extensions.len(), 1);
    // As loaded again: nothing new to save.
    let stored = Grant::new(grant.row.clone(), grant.extensions.clone());
    assert!(stored.new_extensions().is_empty());
}

#[test]
fn an_extension_is_refused_for_a_closed_grant_an_earlier_date_or_beyond_the_limit() {
    for status in [
        GrantStatus::Settled,
        GrantStatus::Expired,
        GrantStatus::Cancelled,
    ] {
        let mut closed = grant(status);
        let command = extend(&closed, 30);
        assert_eq!(
            reason(closed.extend_deadline(&caseworker(), &command, MAX_EXTENSION_DAYS, NOW)),
            "GRANT_CLOSED"
        );
    }
    let mut open = grant(GrantStatus::ClaimPending);
    let same = extend(&open, 0);
    assert_eq!(
        reason(open.extend_deadline(&caseworker(), &same, MAX_EXTENSION_DAYS, NOW)),
        "NOT_LATER_THAN_CURRENT_DEADLINE"
    );
    let beyond = extend(&open, MAX_EXTENSION_DAYS + 1);
    assert_eq!(
        reason(open.extend_deadline(&caseworker(), &beyond, MAX_EXTENSION_DAYS, NOW)),
        "EXTENSION_BEYOND_LIMIT"
    );
    assert!(open.extensions.is_empty());
    let at_limit = extend(&open, MAX_EXTENSION_DAYS);
    changed(open.extend_deadline(&caseworker(), &at_limit, MAX_EXTENSION_DAYS, NOW));
}

#[test]
fn an_unused_grant_is_cancelled_on_request_and_a_repeat_is_accepted_again() {
    let mut grant = grant(GrantStatus::Active);
    let effects = changed(grant.answer_cancellation(None, NOW));
    assert!(effects.contains("GrantCancellationRequested"), "{effects}");
    assert!(
        effects.contains("ekspertbistand.v1.GrantCancellationAccepted"),
        "{effects}"
    );
    assert_eq!(grant.row.status, GrantStatus::Cancelled);
    assert_eq!(
        (grant.row.cancelled_at, grant.row.ended_at),
        (Some(NOW), Some(NOW))
    );

    // A repeat (a new request id) is answered again, and the grant stays as it was.
    let later = NOW + Duration::hours(1);
    let effects = changed(grant.answer_cancellation(None, later));
    assert!(
        effects.contains("ekspertbistand.v1.GrantCancellationAccepted"),
        "{effects}"
    );
    assert!(
        !effects.contains("GrantCancellationRequested"),
        "no new audit: {effects}"
    );
    assert_eq!(grant.row.cancelled_at, Some(NOW));
}

#[test]
fn a_used_grant_is_not_cancelled_and_the_refusal_says_why() {
    for status in [
        GrantStatus::ClaimPending,
        GrantStatus::Settled,
        GrantStatus::Expired,
    ] {
        let mut used = grant(status);
        let effects = changed(used.answer_cancellation(None, NOW));
        assert!(
            effects.contains("ekspertbistand.v1.GrantCancellationRefused"),
            "{effects}"
        );
        assert_eq!(used.row.status, status, "unchanged");
        assert_eq!(used.row.cancelled_at, None);
    }
}

#[test]
fn applications_cancelling_a_grant_cancels_an_active_one_and_confirms_a_cancelled_one() {
    let mut active = grant(GrantStatus::Active);
    let effects = changed(active.confirm_cancelled(NOW));
    assert!(effects.contains("GrantCancelled"), "{effects}");
    assert!(effects.contains("Change"), "audited as a change: {effects}");
    assert_eq!(active.row.status, GrantStatus::Cancelled);
    assert_eq!(active.row.cancelled_at, Some(NOW));
    let again = active.confirm_cancelled(NOW + Duration::hours(1));
    assert!(matches!(again, Ok(Decision::Unchanged)));
    assert_eq!(active.row.cancelled_at, Some(NOW));

    let mut settled = grant(GrantStatus::Settled);
    assert_eq!(
        reason(settled.confirm_cancelled(NOW)),
        "GRANT_NOT_CANCELLABLE"
    );
}
