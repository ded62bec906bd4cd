//! Service tests of refunds: the real service in-process on port 0 with authentication, a fresh
//! PostgreSQL database and the broker process. Refunds is driven by applications' real event
//! types (GrantApproved, GrantCancellationRequested, GrantCancelled) published on applications'
//! real topic, and by its RPCs with tokens per role; what it publishes is read back from its
//! topic and outbox. The jobs run with a moved clock against the service's database.

mod support;

#[path = "service/migrations.rs"]
mod migrations;

use ekb_proto::convert::gross_to_wire;
use ekb_proto::v1;
use std::sync::Arc;

use ekb_domain::CalendarMonths;
use ekb_platform::{
    payment::{FakeOutcome, RecordingPaymentPort},
    retention::RetentionSection,
};
use ekb_refunds::{jobs, payment::Payments};
use ekb_testkit::services::with_bearer;
use support::{
    EMPLOYER_ORG, Grant, Harness, OTHER_ORG, approval, has, iso, new_id, of_type, read_until,
    reason, today, violated_fields,
};
use time::{Duration as Days, OffsetDateTime, macros::datetime};
use tonic::Code;

use v1::recommend_refund_decision_request::Recommendation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_is_claimed_recommended_decided_paid_and_audited() -> anyhow::Result<()> {
    let harness = Harness::start("happy", |settings| settings).await?;
    let topic = harness.refunds_topic()?;
    let grant = Grant::new(2_000_000);
    let envelope = harness.approve(&grant).await?;

    // A redelivered GrantApproved (same envelope) and a repeat (new envelope) change nothing.
    harness
        .stack
        .feed
        .publish_envelope("applications", &grant.case_id, &envelope)
        .await?;
    harness
        .publish_from_applications(&grant.subject(), &grant.approved())
        .await?;

    harness
        .wait_for_inbox("three deliveries in the inbox", 2)
        .await?;
    assert_eq!(harness.count("SELECT count(*) FROM grants").await?, 1);
    let known = harness.grant(&grant.grant_id).await?.unwrap_or_default();
    assert_eq!(known.status(), v1::ClaimableGrantStatus::Active);
    assert_eq!(known.granted_amount, Some(gross_to_wire(2_000_000)));
    assert_eq!(known.last_claim_date, iso(grant.deadline + Days::days(90)));

    // The invoice is above the grant: payable = min(invoice, granted).
    let request = grant.claim(2_500_000);
    let claim = harness.submit(request.clone()).await?;
    assert_eq!(claim.status(), v1::RefundClaimStatus::Submitted);
    assert_eq!(claim.payable_amount, Some(gross_to_wire(2_000_000)));
    assert!(!claim.late);
    let again = harness
        .client
        .clone()
        .submit_refund_claim(with_bearer(request.clone(), &harness.employer))
        .await?
        .into_inner();
    assert!(!again.created, "a retry returns the first claim");
    assert_eq!(again.claim.unwrap_or_default().claim_id, claim.claim_id);
    let changed = v1::SubmitRefundClaimRequest {
        invoice_reference: "F-other".to_owned(),
        ..request
    };
    let conflict = harness
        .submit(changed)
        .await
        .expect_err("same id, other content");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    let second = harness
        .submit(grant.claim(100_000))
        .await
        .expect_err("one live claim per grant");
    assert_eq!(reason(&second), "CLAIM_EXISTS");

    let recommended = harness
        .recommend_approval(&claim.claim_id, 2_000_000)
        .await?;
    assert_eq!(recommended.status(), v1::RefundClaimStatus::Recommended);
    let decided = harness.confirm(&claim.claim_id, 1).await?;
    assert_eq!(decided.status(), v1::RefundClaimStatus::Approved);
    assert_eq!(decided.payout_amount, Some(gross_to_wire(2_000_000)));
    assert_eq!(decided.decided_by, "Z990002");
    assert_eq!(decided.recommended_by, "Z990001");
    let payment = decided.payment.clone().unwrap_or_default();
    assert_eq!(
        payment.status(),
        v1::RefundPaymentStatus::Paid,
        "{payment:?}"
    );
    assert_eq!(payment.attempt, 1);
    assert!(payment.payment_reference.starts_with("FAKE-"));

    // Deciding again is a no-op returning the claim.
    let repeat = harness.confirm(&claim.claim_id, 1).await?;
    assert_eq!(repeat.status(), v1::RefundClaimStatus::Approved);
    assert_eq!(harness.outbox("RefundApproved").await?, 1);

    let events = read_until(&topic, "approval and payment", |received| {
        has::<v1::PaymentCompleted>(received, 1)
    })
    .await?;
    let submitted = of_type::<v1::RefundClaimSubmitted>(&events);
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].days_from_case_opened_to_expert_start, 40);
    let approved = of_type::<v1::RefundApproved>(&events);
    assert_eq!(approved.len(), 1);
    assert_eq!(
        (
            approved[0].payout_amount_ore,
            approved[0].granted_amount_ore,
            approved[0].invoice_amount_ore
        ),
        (2_000_000, 2_000_000, 2_500_000)
    );
    let paid = of_type::<v1::PaymentCompleted>(&events);
    assert_eq!((paid[0].amount_ore, paid[0].attempt), (2_000_000, 1));
    assert_eq!(paid[0].claim_id, claim.claim_id);

    assert_eq!(
        harness.grant_status(&grant.grant_id).await?,
        v1::ClaimableGrantStatus::Settled
    );
    assert_eq!(harness.count("SELECT count(*) FROM grants").await?, 1);

    // The trail: the grant once, the submission, recommendation, decision, payment and reads.
    let trail_of_case = |token: &str| {
        with_bearer(
            v1::ListAuditEntriesRequest {
                case_id: grant.case_id.clone(),
                ..Default::default()
            },
            token,
        )
    };
    let trail = harness
        .client
        .clone()
        .list_audit_entries(trail_of_case(&harness.auditor))
        .await?
        .into_inner()
        .entries;
    let actions: Vec<&str> = trail.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|action| **action == "GrantApproved")
            .count(),
        1,
        "{actions:?}"
    );
    for action in [
        "SubmitRefundClaim",
        "RecommendRefundDecision",
        "DecideRefundClaim",
        "PaymentSystem",
        "GetClaimableGrant",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let decision = trail
        .iter()
        .find(|entry| entry.action == "DecideRefundClaim")
        .cloned()
        .unwrap_or_default();
    assert_eq!(decision.actor, "Z990002");
    assert_eq!(decision.kind(), v1::AuditEntryKind::Decision);
    let denied = harness
        .client
        .clone()
        .list_audit_entries(trail_of_case(&harness.caseworker))
        .await
        .expect_err("only auditors");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Retention: free text goes 15 months after the grant ended, the record after 10 years.
    let rules = RetentionSection {
        personal_data: CalendarMonths::new(15),
        records: CalendarMonths::years(10),
    };
    let later = OffsetDateTime::now_utc() + Days::days(460);
    let retained = jobs::apply_retention(&harness.db, &rules, later).await?;
    assert_eq!(
        retained,
        jobs::Retained {
            erased: 1,
            deleted: 0
        }
    );
    let kept = harness.grant(&grant.grant_id).await?.unwrap_or_default();
    assert_eq!(kept.granted_amount, Some(gross_to_wire(2_000_000)));
    assert_eq!(
        kept.expert.unwrap_or_default().name,
        "",
        "the expert's name is erased"
    );
    let notes: i64 = harness
        .count("SELECT count(*) FROM recommendations WHERE note <> ''")
        .await?;
    assert_eq!(notes, 0);
    let much_later = OffsetDateTime::now_utc() + Days::days(366 * 10 + 5);
    let retained = jobs::apply_retention(&harness.db, &rules, much_later).await?;
    assert_eq!(retained.deleted, 1);
    assert!(harness.grant(&grant.grant_id).await?.is_none());
    assert_eq!(harness.count("SELECT count(*) FROM claims").await?, 0);
    harness.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payout_is_at_most_min_of_claimed_and_granted_or_lower_with_a_reason()
-> anyhow::Result<()> {
    let harness = Harness::start("payout", |settings| settings).await?;
    for (invoice, granted, payout, reduction) in [
        (1_500_000, 2_000_000, 1_500_000, None),
        (3_000_000, 2_000_000, 2_000_000, None),
        (
            1_500_000,
            2_000_000,
            1_000_000,
            Some(v1::PayoutReductionReason::CostsNotCovered),
        ),
    ] {
        let grant = Grant::new(granted);
        harness.approve(&grant).await?;
        let claim = harness.submit(grant.claim(invoice)).await?;
        assert_eq!(
            claim.payable_amount,
            Some(gross_to_wire(invoice.min(granted)))
        );
        // Above the payable amount is refused, as is a reduction without a reason.
        let above = harness
            .recommend_approval(&claim.claim_id, invoice.min(granted) + 1)
            .await
            .expect_err("above payable");
        assert_eq!(violated_fields(&above), ["approval.payout.ore"]);
        let recommendation = match reduction {
            None => approval(payout),
            Some(reason) => {
                let unexplained = harness
                    .recommend_approval(&claim.claim_id, payout)
                    .await
                    .expect_err("a reduction needs a reason");
                assert_eq!(violated_fields(&unexplained), ["approval.reduction_reason"]);
                Recommendation::Approval(v1::RefundApprovalRecommendation {
                    payout: Some(gross_to_wire(payout)),
                    reduction_reason: reason as i32,
                    reduction_explanation: "timer til behandling dekkes ikke".to_owned(),
                })
            }
        };
        harness
            .recommend(&harness.caseworker, &claim.claim_id, recommendation)
            .await?;
        let decided = harness.confirm(&claim.claim_id, 1).await?;
        assert_eq!(decided.payout_amount, Some(gross_to_wire(payout)));
        assert_eq!(
            decided.payout_reduction_reason,
            reduction.map_or(0, |r| r as i32)
        );
    }
    let payouts: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT payout_amount_ore FROM claims ORDER BY sequence")
            .fetch_all(&harness.pool)
            .await?;
    assert_eq!(payouts, [Some(1_500_000), Some(2_000_000), Some(1_000_000)]);
    assert_eq!(harness.outbox("RefundApproved").await?, 3);
    harness.stack.stop().await
}

/// A portal retrying after a timeout, many copies at once: every copy of one claim gets the
/// first claim (one `created`), never CLAIM_EXISTS for its own claim; different claims racing
/// for one grant get one claim and, for the others, FAILED_PRECONDITION CLAIM_EXISTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_get_the_first_claim_and_racing_claims_the_contract_s_refusal()
-> anyhow::Result<()> {
    use ekb_testkit::concurrency::{
        assert_copies_got_the_first, assert_one_won_and_the_rest_were_refused, at_once,
    };
    const COPIES: usize = 8;
    let harness = Harness::start("claim-race", |settings| settings).await?;
    let submit = |request: v1::SubmitRefundClaimRequest| {
        let mut client = harness.client.clone();
        let request = with_bearer(request, &harness.employer);
        async move { client.submit_refund_claim(request).await }
    };
    let created = |answer: &v1::SubmitRefundClaimResponse| answer.created;
    for _ in 0..3 {
        let grant = Grant::new(2_000_000);
        harness.approve(&grant).await?;
        let request = grant.claim(1_500_000);
        let copies = at_once((0..COPIES).map(|_| submit(request.clone()))).await?;
        assert_copies_got_the_first(&copies, created, |answer| {
            answer.claim.clone().unwrap_or_default().claim_id
        })?;
        let grant = Grant::new(2_000_000);
        harness.approve(&grant).await?;
        let racing = at_once((0..COPIES).map(|_| submit(grant.claim(1_500_000)))).await?;
        assert_one_won_and_the_rest_were_refused(&racing, created, "CLAIM_EXISTS")?;
    }
    assert_eq!(harness.count("SELECT count(*) FROM claims").await?, 6);
    harness.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_claim_is_flagged_and_only_it_may_be_rejected_for_lateness() -> anyhow::Result<()> {
    let harness = Harness::start("late", |settings| settings).await?;
    let topic = harness.refunds_topic()?;
    let late_grant = Grant::new(1_000_000).with_deadline(today() - Days::days(5));
    harness.approve(&late_grant).await?;
    let late = harness.submit(late_grant.claim(800_000)).await?;
    assert!(late.late);
    assert_eq!(late.days_late, 5);
    assert_eq!(late.refund_deadline_date, iso(today() - Days::days(5)));

    let on_time_grant = Grant::new(1_000_000);
    harness.approve(&on_time_grant).await?;
    let on_time = harness.submit(on_time_grant.claim(800_000)).await?;
    assert!(!on_time.late);
    let for_lateness = || {
        Recommendation::Rejection(v1::RefundRejection {
            reason: v1::RefundRejectionReason::LateClaim as i32,
            explanation: String::new(),
        })
    };
    let refused = harness
        .recommend(&harness.caseworker, &on_time.claim_id, for_lateness())
        .await
        .expect_err("not late");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "CLAIM_NOT_LATE");

    harness
        .recommend(&harness.caseworker, &late.claim_id, for_lateness())
        .await?;
    let rejected = harness.confirm(&late.claim_id, 1).await?;
    assert_eq!(rejected.status(), v1::RefundClaimStatus::Rejected);
    assert_eq!(
        rejected.rejection.unwrap_or_default().reason(),
        v1::RefundRejectionReason::LateClaim
    );
    assert_eq!(
        harness.grant_status(&late_grant.grant_id).await?,
        v1::ClaimableGrantStatus::Active
    );
    let events = read_until(&topic, "the rejection", |received| {
        has::<v1::RefundRejected>(received, 1)
    })
    .await?;
    let event = &of_type::<v1::RefundRejected>(&events)[0];
    assert!(event.late);
    assert_eq!(
        event.last_claim_date,
        iso(today() - Days::days(5) + Days::days(90))
    );

    // Decided twice: refused with the reason; a new claim against the open grant is accepted.
    let twice = harness
        .confirm(&late.claim_id, 2)
        .await
        .expect_err("decided already");
    assert_eq!(reason(&twice), "CLAIM_NOT_RECOMMENDED");
    let again = harness.submit(late_grant.claim(700_000)).await?;
    assert!(again.late);

    // The work list: late claims, oldest first, one per page; by status.
    let mut client = harness.client.clone();
    let list = |page_token: String, statuses: Vec<i32>| {
        with_bearer(
            v1::ListRefundClaimsRequest {
                statuses,
                county_codes: vec!["34".to_owned()],
                late_only: true,
                page_size: 1,
                page_token,
                ..Default::default()
            },
            &harness.reader,
        )
    };
    let first = client
        .list_refund_claims(list(String::new(), Vec::new()))
        .await?
        .into_inner();
    assert_eq!(first.claims.len(), 1);
    assert_eq!(first.claims[0].claim_id, late.claim_id);
    assert!(!first.next_page_token.is_empty());
    let next = client
        .list_refund_claims(list(first.next_page_token, Vec::new()))
        .await?
        .into_inner();
    assert_eq!(next.claims.len(), 1);
    assert_eq!(next.claims[0].claim_id, again.claim_id);
    assert!(next.next_page_token.is_empty());
    let rejected_only = client
        .list_refund_claims(list(
            String::new(),
            vec![v1::RefundClaimStatus::Rejected as i32],
        ))
        .await?
        .into_inner();
    assert_eq!(rejected_only.claims.len(), 1);
    assert_eq!(rejected_only.claims[0].claim_id, late.claim_id);

    // Past the grace period a claim is refused even before the expiry job has run.
    let past_grace = Grant::new(1_000_000).with_deadline(today() - Days::days(91));
    harness.approve(&past_grace).await?;
    let too_late = harness
        .submit(past_grace.claim(100_000))
        .await
        .expect_err("past the last claim date");
    assert_eq!(reason(&too_late), "GRANT_EXPIRED");
    harness.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_refuses_the_recommender_and_stale_versions() -> anyhow::Result<()> {
    let harness = Harness::start("four-eyes", |settings| settings).await?;
    let grant = Grant::new(1_000_000);
    harness.approve(&grant).await?;
    let claim = harness.submit(grant.claim(900_000)).await?;
    let both = harness
        .issuer
        .token("Z990001", &["refund-caseworker", "refund-decider"]);
    harness.recommend_approval(&claim.claim_id, 900_000).await?;
    let own = harness
        .decide(&both, &claim.claim_id, 1, v1::DeciderVerdict::Confirm)
        .await
        .expect_err("own recommendation");
    assert_eq!(own.code(), Code::PermissionDenied);
    assert_eq!(reason(&own), "DECIDER_IS_RECOMMENDER");
    let stale = harness
        .confirm(&claim.claim_id, 2)
        .await
        .expect_err("no version 2");
    assert_eq!(reason(&stale), "RECOMMENDATION_CHANGED");

    // A return sends it back; the next recommendation is version 2 by another caseworker.
    let returned = harness
        .decide(
            &harness.decider,
            &claim.claim_id,
            1,
            v1::DeciderVerdict::Return,
        )
        .await?;
    assert_eq!(returned.status(), v1::RefundClaimStatus::Submitted);
    assert_eq!(returned.recommendations[0].returned_by, "Z990002");
    let not_recommended = harness
        .confirm(&claim.claim_id, 1)
        .await
        .expect_err("returned");
    assert_eq!(reason(&not_recommended), "CLAIM_NOT_RECOMMENDED");
    let second = harness
        .recommend(&harness.caseworker2, &claim.claim_id, approval(900_000))
        .await?;
    assert_eq!(second.recommendations.len(), 2);
    let not_submitted = harness
        .recommend_approval(&claim.claim_id, 900_000)
        .await
        .expect_err("recommended already");
    assert_eq!(not_submitted.code(), Code::FailedPrecondition);
    assert_eq!(reason(&not_submitted), "CLAIM_NOT_SUBMITTED");
    // The same recommendation again by its caseworker is a no-op.
    let repeat = harness
        .recommend(&harness.caseworker2, &claim.claim_id, approval(900_000))
        .await?;
    assert_eq!(repeat.recommendations.len(), 2);
    // Z990001 recommended version 1: still refused on version 2.
    let earlier = harness
        .decide(&both, &claim.claim_id, 2, v1::DeciderVerdict::Confirm)
        .await
        .expect_err("recommended an earlier version");
    assert_eq!(reason(&earlier), "DECIDER_IS_RECOMMENDER");
    let decided = harness.confirm(&claim.claim_id, 2).await?;
    assert_eq!(decided.status(), v1::RefundClaimStatus::Approved);
    assert_eq!(decided.recommended_by, "Z990003");
    // Another decider cannot decide it again.
    let other_decider = harness.issuer.token("Z990009", &["refund-decider"]);
    let again = harness
        .decide(
            &other_decider,
            &claim.claim_id,
            2,
            v1::DeciderVerdict::Confirm,
        )
        .await
        .expect_err("decided");
    assert_eq!(reason(&again), "CLAIM_NOT_RECOMMENDED");
    assert_eq!(harness.outbox("RefundApproved").await?, 1);
    harness.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn employers_act_only_for_the_organisations_they_represent() -> anyhow::Result<()> {
    let harness = Harness::start("organisations", |settings| settings).await?;
    let grant = Grant::new(1_000_000);
    harness.approve(&grant).await?;
    let foreign = Grant {
        employer: OTHER_ORG.to_owned(),
        ..Grant::new(1_000_000)
    };
    harness.approve(&foreign).await?;
    let claim = harness.submit(grant.claim(500_000)).await?;
    let other_employer =
        harness
            .issuer
            .token_for_organisations("someone-else", &["refund-employer"], &[OTHER_ORG]);
    let mut client = harness.client.clone();
    let read_claim = |token: &str| {
        with_bearer(
            v1::GetRefundClaimRequest {
                claim_id: claim.claim_id.clone(),
                purpose: 0,
            },
            token,
        )
    };
    let mut denials = Vec::new();
    // Naming another organisation.
    denials.push(
        harness
            .submit(foreign.claim(500_000))
            .await
            .expect_err("another organisation"),
    );
    // Naming its own organisation against another's grant.
    let mut own_org_foreign_grant = foreign.claim(500_000);
    own_org_foreign_grant.employer_organisation_number = EMPLOYER_ORG.to_owned();
    denials.push(
        harness
            .submit(own_org_foreign_grant)
            .await
            .expect_err("not the grant's employer"),
    );
    denials.push(
        client
            .get_refund_claim(read_claim(&other_employer))
            .await
            .expect_err("another's claim"),
    );
    denials.push(
        client
            .get_claimable_grant(with_bearer(
                v1::GetClaimableGrantRequest {
                    grant_id: grant.grant_id.clone(),
                    purpose: 0,
                },
                &other_employer,
            ))
            .await
            .expect_err("another's grant"),
    );
    denials.push(
        client
            .list_grants_for_employer(with_bearer(
                v1::ListGrantsForEmployerRequest {
                    employer_organisation_number: OTHER_ORG.to_owned(),
                    ..Default::default()
                },
                &harness.employer,
            ))
            .await
            .expect_err("another's list"),
    );
    for denial in &denials {
        assert_eq!(denial.code(), Code::PermissionDenied, "{denial:?}");
        assert_eq!(reason(denial), "ORGANISATION_NOT_REPRESENTED", "{denial:?}");
    }
    // Its own: allowed, without a purpose; the read is audited as self-service.
    let own = client
        .get_refund_claim(read_claim(&harness.employer))
        .await?
        .into_inner();
    assert_eq!(own.claim.unwrap_or_default().claim_id, claim.claim_id);
    let listed = client
        .list_grants_for_employer(with_bearer(
            v1::ListGrantsForEmployerRequest {
                employer_organisation_number: EMPLOYER_ORG.to_owned(),
                page_size: 1,
                ..Default::default()
            },
            &harness.employer,
        ))
        .await?
        .into_inner();
    assert_eq!(listed.grants.len(), 1);
    assert_eq!(listed.grants[0].grant_id, grant.grant_id);
    // A NAV reader must say why it reads.
    let no_purpose = client
        .get_refund_claim(read_claim(&harness.reader))
        .await
        .expect_err("purpose required");
    assert_eq!(violated_fields(&no_purpose), ["purpose"]);
    // Roles: an employer may not recommend; no token is UNAUTHENTICATED.
    let wrong_role = harness
        .recommend(&harness.employer, &claim.claim_id, approval(500_000))
        .await
        .expect_err("employer cannot recommend");
    assert_eq!(wrong_role.code(), Code::PermissionDenied);
    let anonymous = client
        .list_refund_claims(v1::ListRefundClaimsRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(harness.count("SELECT count(*) FROM claims").await?, 1);
    harness.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_stores_nothing() -> anyhow::Result<()> {
    let harness = Harness::start("bad-input", |settings| settings).await?;
    let grant = Grant::new(1_000_000);
    harness.approve(&grant).await?;
    let good = grant.claim(500_000);
    type Edit = fn(&mut v1::SubmitRefundClaimRequest);
    let corpus: Vec<(&str, Edit)> = vec![
        ("request_id", |r| r.request_id = "nope".to_owned()),
        ("grant_id", |r| r.grant_id = String::new()),
        ("employer_organisation_number", |r| {
            r.employer_organisation_number = "974760674".to_owned();
        }),
        ("invoice_date", |r| r.invoice_date = "2026-02-30".to_owned()),
        ("invoice_date", |r| {
            r.invoice_date = iso(today() + Days::days(1));
        }),
        ("invoice_reference", |r| {
            r.invoice_reference = " ".to_owned()
        }),
        ("invoice_reference", |r| {
            r.invoice_reference = "x".repeat(65)
        }),
        ("invoice_document_id", |r| {
            r.invoice_document_id = String::new()
        }),
        ("expert_report_document_id", |r| {
            r.expert_report_document_id = String::new();
        }),
        ("invoice_amount", |r| r.invoice_amount = None),
        ("invoice_amount.ore", |r| {
            r.invoice_amount = Some(gross_to_wire(0))
        }),
        ("invoice_amount.vat", |r| {
            r.invoice_amount = Some(v1::Amount {
                ore: 1_000,
                vat: v1::VatTreatment::Excluded as i32,
            });
        }),
        ("assistance_end_date", |r| {
            r.assistance_end_date = iso(today() + Days::days(1));
        }),
        ("assistance_start_date", |r| {
            r.assistance_start_date = iso(today() + Days::days(1));
            r.assistance_end_date = iso(today());
        }),
        ("assistance_start_date", |r| {
            r.assistance_start_date = iso(today() - Days::days(11));
        }),
    ];
    for (field, edit) in corpus {
        let mut request = good.clone();
        edit(&mut request);
        let status = harness.submit(request).await.expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            violated_fields(&status).contains(&field.to_owned()),
            "{field}: {:?}",
            violated_fields(&status)
        );
    }
    // Other RPCs' bad input.
    let mut client = harness.client.clone();
    let bad_recommendation = harness
        .recommend(
            &harness.caseworker,
            "not-a-uuid",
            Recommendation::Rejection(v1::RefundRejection {
                reason: v1::RefundRejectionReason::Other as i32,
                explanation: String::new(),
            }),
        )
        .await
        .expect_err("bad");
    assert_eq!(
        violated_fields(&bad_recommendation),
        ["claim_id", "rejection.explanation"]
    );
    let bad_decision = harness
        .decide(
            &harness.decider,
            &new_id(),
            0,
            v1::DeciderVerdict::Unspecified,
        )
        .await
        .expect_err("bad");
    assert_eq!(
        violated_fields(&bad_decision),
        ["recommendation_version", "verdict"]
    );
    let bad_extension = client
        .extend_refund_deadline(with_bearer(
            v1::ExtendRefundDeadlineRequest {
                grant_id: grant.grant_id.clone(),
                new_deadline_date: "tomorrow".to_owned(),
                reason: 0,
                explanation: String::new(),
            },
            &harness.caseworker,
        ))
        .await
        .expect_err("bad");
    assert_eq!(
        violated_fields(&bad_extension),
        ["new_deadline_date", "reason"]
    );
    let bad_outcome = client
        .record_payment_outcome(with_bearer(
            v1::RecordPaymentOutcomeRequest {
                claim_id: new_id(),
                attempt: 1,
                outcome: Some(v1::record_payment_outcome_request::Outcome::Failed(
                    v1::RefundPaymentFailure::default(),
                )),
            },
            &harness.payment_system,
        ))
        .await
        .expect_err("bad");
    assert_eq!(violated_fields(&bad_outcome), ["failed.reason"]);
    let bad_list = client
        .list_refund_claims(with_bearer(
            v1::ListRefundClaimsRequest {
                statuses: vec![0],
                county_codes: vec!["3".to_owned()],
                page_size: 501,
                page_token: "zz".to_owned(),
                ..Default::default()
            },
            &harness.reader,
        ))
        .await
        .expect_err("bad");
    assert_eq!(
        violated_fields(&bad_list),
        ["statuses[0]", "county_codes[0]", "page_size", "page_token"]
    );
    let bad_expiring = client
        .list_expiring_grants(with_bearer(
            v1::ListExpiringGrantsRequest {
                deadline_on_or_before_date: String::new(),
                ..Default::default()
            },
            &harness.reader,
        ))
        .await
        .expect_err("bad");
    assert_eq!(
        violated_fields(&bad_expiring),
        ["deadline_on_or_before_date"]
    );
    for (purpose, fields) in [
        (0, vec!["claim_id", "purpose"]),
        (
            v1::AccessPurpose::System as i32,
            vec!["claim_id", "purpose"],
        ),
    ] {
        let bad_read = client
            .get_refund_claim(with_bearer(
                v1::GetRefundClaimRequest {
                    claim_id: "x".to_owned(),
                    purpose,
                },
                &harness.reader,
            ))
            .await
            .expect_err("bad");
        assert_eq!(violated_fields(&bad_read), fields);
    }
    // A grant that has not arrived yet: UNAVAILABLE, retry.
    let unknown = harness
        .submit(Grant::new(1_000).claim(500))
        .await
        .expect_err("not arrived");
    assert_eq!(unknown.code(), Code::Unavailable);
    assert_eq!(harness.count("SELECT count(*) FROM claims").await?, 0);
    assert_eq!(harness.count("SELECT count(*) FROM outbox").await?, 0);
    // A GrantApproved refunds cannot use is dead-lettered, and the consumer goes on.
    let broken = v1::GrantApproved {
        granted_amount_ore: 0,
        ..Grant::new(1).approved()
    };
    let after = Grant::new(5_000);
    harness
        .publish_from_applications(&after.subject(), &broken)
        .await?;
    harness.approve(&after).await?;
    assert_eq!(harness.count("SELECT count(*) FROM grants").await?, 2);
    harness.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_is_accepted_for_an_unused_grant_and_refused_for_a_claimed_one()
-> anyhow::Result<()> {
    let harness = Harness::start("cancellation", |settings| settings).await?;
    let topic = harness.refunds_topic()?;
    let unused = Grant::new(1_000_000);
    let claimed = Grant::new(1_000_000);
    harness.approve(&unused).await?;
    harness.approve(&claimed).await?;
    harness.submit(claimed.claim(400_000)).await?;
    let request = |grant: &Grant| v1::GrantCancellationRequested {
        grant_id: grant.grant_id.clone(),
        application_id: grant.application_id.clone(),
        case_id: grant.case_id.clone(),
        county_code: "34".to_owned(),
        reason: v1::GrantCancellationReason::EmployerRequest as i32,
        requested_by_employer: true,
        requested_at: Some(ekb_proto::convert::timestamp_to_wire(
            OffsetDateTime::now_utc(),
        )),
    };
    for grant in [&unused, &claimed] {
        harness
            .publish_from_applications(&grant.subject(), &request(grant))
            .await?;
    }
    let events = read_until(&topic, "both answers", |received| {
        has::<v1::GrantCancellationAccepted>(received, 1)
            && has::<v1::GrantCancellationRefused>(received, 1)
    })
    .await?;
    let accepted = of_type::<v1::GrantCancellationAccepted>(&events);
    assert_eq!(accepted[0].grant_id, unused.grant_id);
    let refused = of_type::<v1::GrantCancellationRefused>(&events);
    assert_eq!(refused[0].grant_id, claimed.grant_id);
    assert_eq!(
        refused[0].reason(),
        v1::GrantCancellationRefusalReason::ClaimPending
    );
    assert_eq!(
        harness.grant_status(&unused.grant_id).await?,
        v1::ClaimableGrantStatus::Cancelled
    );
    let late_claim = harness
        .submit(unused.claim(100_000))
        .await
        .expect_err("cancelled");
    assert_eq!(reason(&late_claim), "GRANT_CANCELLED");
    // applications' GrantCancelled confirms it; nothing changes.
    harness
        .publish_from_applications(
            &unused.subject(),
            &v1::GrantCancelled {
                grant_id: unused.grant_id.clone(),
                case_id: unused.case_id.clone(),
                county_code: "34".to_owned(),
                granted_amount_ore: 1_000_000,
                ..Default::default()
            },
        )
        .await?;
    harness
        .wait_for_inbox("three events in the inbox", 5)
        .await?;
    assert_eq!(
        harness.grant_status(&unused.grant_id).await?,
        v1::ClaimableGrantStatus::Cancelled
    );
    harness.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_crosses_midnight_dst_and_the_year_once_with_two_replicas() -> anyhow::Result<()> {
    let harness = Harness::start("expiry", |settings| settings).await?;
    let grace = 90;
    // Last claim day 2027-12-31 (deadline + 90): expires at Oslo midnight into 2028.
    let new_year = Grant::new(1_000_000).with_deadline(time::macros::date!(2027 - 10 - 02));
    // Last claim day 2028-03-26, the day summer time begins: Oslo midnight is 22:00 UTC.
    let dst = Grant::new(1_000_000).with_deadline(time::macros::date!(2027 - 12 - 27));
    // Claimed: never expires while the claim is pending.
    let claimed = Grant::new(1_000_000).with_deadline(time::macros::date!(2027 - 10 - 01));
    for grant in [&new_year, &dst, &claimed] {
        harness.approve(grant).await?;
    }
    harness.submit(claimed.claim(10_000)).await?;

    let expire = |at| jobs::expire_due(&harness.db, grace, at);
    for (at, expired, when) in [
        (datetime!(2027-12-31 22:59:59 UTC), 0, "23:59:59 in Oslo"),
        (datetime!(2027-12-31 23:00:00 UTC), 1, "00:00 on 1 January"),
        (datetime!(2028-01-01 12:00:00 UTC), 0, "idempotent"),
    ] {
        assert_eq!(expire(at).await?, expired, "{when}");
    }
    assert_eq!(
        harness.grant_status(&new_year.grant_id).await?,
        v1::ClaimableGrantStatus::Expired
    );
    for (at, expired, when) in [
        (datetime!(2028-03-26 21:59:59 UTC), 0, "23:59:59 CEST"),
        (datetime!(2028-03-26 22:00:00 UTC), 1, "00:00 CEST"),
    ] {
        assert_eq!(expire(at).await?, expired, "{when}");
    }
    assert_eq!(
        harness.grant_status(&claimed.grant_id).await?,
        v1::ClaimableGrantStatus::ClaimPending
    );
    assert_eq!(harness.outbox("GrantExpired").await?, 2);
    let expired = harness
        .submit(new_year.claim(10_000))
        .await
        .expect_err("expired");
    assert_eq!(reason(&expired), "GRANT_EXPIRED");

    // Deadline extensions: bounded and refused for a closed grant.
    let mut client = harness.client.clone();
    let extend = |grant: &Grant, date: &str| {
        with_bearer(
            v1::ExtendRefundDeadlineRequest {
                grant_id: grant.grant_id.clone(),
                new_deadline_date: date.to_owned(),
                reason: v1::RefundDeadlineExtensionReason::ReportDelayed as i32,
                explanation: String::new(),
            },
            &harness.caseworker,
        )
    };
    let closed = client
        .extend_refund_deadline(extend(&new_year, "2028-06-01"))
        .await
        .expect_err("expired");
    assert_eq!(reason(&closed), "GRANT_CLOSED");
    let fresh = Grant::new(1_000_000);
    harness.approve(&fresh).await?;
    let earlier = client
        .extend_refund_deadline(extend(&fresh, &iso(fresh.deadline)))
        .await
        .expect_err("not later");
    assert_eq!(reason(&earlier), "NOT_LATER_THAN_CURRENT_DEADLINE");
    let beyond = client
        .extend_refund_deadline(extend(&fresh, &iso(fresh.deadline + Days::days(181))))
        .await
        .expect_err("beyond the limit");
    assert_eq!(reason(&beyond), "EXTENSION_BEYOND_LIMIT");
    let extended = client
        .extend_refund_deadline(extend(&fresh, &iso(fresh.deadline + Days::days(180))))
        .await?
        .into_inner()
        .grant
        .unwrap_or_default();
    assert_eq!(
        extended.refund_deadline_date,
        iso(fresh.deadline + Days::days(180))
    );
    assert_eq!(extended.original_refund_deadline_date, iso(fresh.deadline));
    assert_eq!(extended.deadline_extensions.len(), 1);
    assert_eq!(harness.outbox("RefundDeadlineExtended").await?, 1);
    let listed = client
        .list_expiring_grants(with_bearer(
            v1::ListExpiringGrantsRequest {
                deadline_on_or_before_date: "2027-12-31".to_owned(),
                ..Default::default()
            },
            &harness.reader,
        ))
        .await?
        .into_inner();
    assert_eq!(
        listed
            .grants
            .iter()
            .map(|grant| grant.grant_id.as_str())
            .collect::<Vec<_>>(),
        [fresh.grant_id.as_str()],
        "only ACTIVE grants due by then: not the expired or the claimed ones"
    );

    // Two replicas at once: 20 due grants expire once each.
    let many: Vec<Grant> = (0..20)
        .map(|_| Grant::new(1_000).with_deadline(time::macros::date!(2028 - 06 - 01)))
        .collect();
    for grant in &many {
        harness
            .publish_from_applications(&grant.subject(), &grant.approved())
            .await?;
    }
    for grant in &many {
        harness.wait_for_grant(&grant.grant_id).await?;
    }
    let other_replica = ekb_platform::messaging::Db::new(
        sqlx::PgPool::connect(harness.stack.database_url()).await?,
        ekb_platform::messaging::Outbox::for_service(&harness.stack.topic_prefix, "refunds"),
    );
    let at = datetime!(2028-12-01 12:00 UTC);
    let (first, second) = tokio::join!(
        jobs::expire_due(&harness.db, grace, at),
        jobs::expire_due(&other_replica, grace, at)
    );
    assert_eq!(
        first? + second?,
        20 + 1,
        "the 20 and the extended fresh grant's first deadline"
    );
    assert_eq!(harness.outbox("GrantExpired").await?, 23);
    let topic = harness.refunds_topic()?;
    let events = read_until(&topic, "every expiry", |received| {
        has::<v1::GrantExpired>(received, 23)
    })
    .await?;
    let new_year_expiry = of_type::<v1::GrantExpired>(&events)
        .into_iter()
        .find(|event| event.grant_id == new_year.grant_id)
        .unwrap_or_default();
    assert_eq!(new_year_expiry.granted_amount_ore, 1_000_000);
    assert_eq!(new_year_expiry.refund_deadline_date, "2027-10-02");
    harness.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_payment_is_retried_and_outcomes_are_recorded_once() -> anyhow::Result<()> {
    let harness = Harness::start("payment", |settings| {
        settings.with("payment.fake_outcome", "deferred")
    })
    .await?;
    let grant = Grant::new(1_000_000);
    harness.approve(&grant).await?;
    let claim = harness.submit(grant.claim(600_000)).await?;
    harness.recommend_approval(&claim.claim_id, 600_000).await?;
    let approved = harness.confirm(&claim.claim_id, 1).await?;
    let payment = approved.payment.unwrap_or_default();
    assert_eq!(payment.status(), v1::RefundPaymentStatus::Pending);
    assert!(payment.sent_at.is_some(), "handed over after commit");

    let mut client = harness.client.clone();
    let record = |attempt, outcome| {
        with_bearer(
            v1::RecordPaymentOutcomeRequest {
                claim_id: claim.claim_id.clone(),
                attempt,
                outcome: Some(outcome),
            },
            &harness.payment_system,
        )
    };
    use v1::record_payment_outcome_request::Outcome;
    let failed = || {
        Outcome::Failed(v1::RefundPaymentFailure {
            reason: v1::RefundPaymentFailureReason::NoRefundAccount as i32,
            detail: "ingen konto".to_owned(),
        })
    };
    let paid = |reference: &str| {
        Outcome::Paid(v1::RefundPaymentPaid {
            payment_reference: reference.to_owned(),
            paid_date: iso(today()),
        })
    };
    let retry = |note: &str| {
        with_bearer(
            v1::RetryPaymentRequest {
                claim_id: claim.claim_id.clone(),
                note: note.to_owned(),
            },
            &harness.caseworker,
        )
    };
    let retry_too_early = client
        .retry_payment(retry(""))
        .await
        .expect_err("not failed");
    assert_eq!(reason(&retry_too_early), "PAYMENT_NOT_FAILED");
    let after_failure = client
        .record_payment_outcome(record(1, failed()))
        .await?
        .into_inner();
    let payment = after_failure
        .claim
        .unwrap_or_default()
        .payment
        .unwrap_or_default();
    assert_eq!(payment.status(), v1::RefundPaymentStatus::Failed);
    client.record_payment_outcome(record(1, failed())).await?;
    let conflict = client
        .record_payment_outcome(record(1, paid("P-1")))
        .await
        .expect_err("conflict");
    assert_eq!(reason(&conflict), "PAYMENT_OUTCOME_CONFLICT");
    assert_eq!(harness.outbox("PaymentFailed").await?, 1);

    let retried = client
        .retry_payment(retry("konto registrert"))
        .await?
        .into_inner()
        .claim
        .unwrap_or_default()
        .payment
        .unwrap_or_default();
    assert_eq!(
        (retried.status(), retried.attempt),
        (v1::RefundPaymentStatus::Pending, 2)
    );
    let stale = client
        .record_payment_outcome(record(1, paid("P-1")))
        .await
        .expect_err("attempt 1 is superseded");
    assert_eq!(reason(&stale), "NOT_CURRENT_ATTEMPT");
    let done = client
        .record_payment_outcome(record(2, paid("P-2")))
        .await?
        .into_inner()
        .claim
        .unwrap_or_default();
    let payment = done.payment.unwrap_or_default();
    assert_eq!(
        (payment.status(), payment.payment_reference.as_str()),
        (v1::RefundPaymentStatus::Paid, "P-2")
    );
    client
        .record_payment_outcome(record(2, paid("P-2")))
        .await?;
    assert_eq!(harness.outbox("PaymentCompleted").await?, 1);
    let topic = harness.refunds_topic()?;
    let events = read_until(&topic, "the payment", |received| {
        has::<v1::PaymentCompleted>(received, 1) && has::<v1::PaymentFailed>(received, 1)
    })
    .await?;
    assert_eq!(of_type::<v1::PaymentCompleted>(&events)[0].attempt, 2);
    assert_eq!(
        of_type::<v1::PaymentFailed>(&events)[0].reason(),
        v1::RefundPaymentFailureReason::NoRefundAccount
    );
    // The work list: by payment status.
    let paid_list = client
        .list_refund_claims(with_bearer(
            v1::ListRefundClaimsRequest {
                payment_statuses: vec![v1::RefundPaymentStatus::Paid as i32],
                ..Default::default()
            },
            &harness.caseworker,
        ))
        .await?
        .into_inner();
    assert_eq!(paid_list.claims.len(), 1);
    assert_eq!(paid_list.claims[0].claim_id, claim.claim_id);
    let read = harness.claim(&claim.claim_id).await?;
    assert_eq!(read.payment.unwrap_or_default().attempt, 2);

    // A payment handed over but never answered is handed over again by the worker, with the
    // same key, and the answer recorded and published.
    let unanswered_grant = Grant::new(1_000_000);
    harness.approve(&unanswered_grant).await?;
    let unanswered = harness.submit(unanswered_grant.claim(300_000)).await?;
    harness
        .recommend_approval(&unanswered.claim_id, 300_000)
        .await?;
    harness.confirm(&unanswered.claim_id, 1).await?;
    let port = Arc::new(RecordingPaymentPort::new(FakeOutcome::Paid));
    let payments = Payments::new(harness.db.clone(), port.clone());
    let now = OffsetDateTime::now_utc;
    assert_eq!(
        payments.resend_unanswered(Days::minutes(5), now()).await?,
        0,
        "not due yet"
    );
    assert_eq!(payments.resend_unanswered(Days::ZERO, now()).await?, 1);
    assert_eq!(
        port.instructions()
            .iter()
            .map(|instruction| (instruction.payment_key.clone(), instruction.amount_ore))
            .collect::<Vec<_>>(),
        [(format!("{}/1", unanswered.claim_id), 300_000)]
    );
    let settled = harness.claim(&unanswered.claim_id).await?;
    assert_eq!(
        settled.payment.unwrap_or_default().status(),
        v1::RefundPaymentStatus::Paid
    );
    assert_eq!(
        payments.resend_unanswered(Days::ZERO, now()).await?,
        0,
        "answered"
    );
    assert_eq!(harness.outbox("PaymentCompleted").await?, 2);
    harness.stack.stop().await
}

#[test]
fn the_catalog_entry_matches_the_description() -> anyhow::Result<()> {
    ekb_testkit::catalog::check_entry_of::<ekb_refunds::Refunds>()
}

/// What one decision call (with its retries) came to, as a NAV client retrying UNAVAILABLE
/// would see it.
#[derive(Debug)]
struct DecisionCall {
    claim_id: String,
    /// The final answer: the claim, or the status that was not UNAVAILABLE.
    answer: Result<v1::RefundClaim, tonic::Status>,
    /// UNAVAILABLE answers before it, and how many of them lacked RetryInfo.
    unavailable: usize,
    without_retry_info: usize,
    /// Whether the claim was decided before the last attempt started: an earlier attempt
    /// committed and its answer was lost; the retry got the contract's repeat answer.
    answered_by_repeat: bool,
    /// From the first attempt to the final answer.
    took: std::time::Duration,
}

/// Decides `request` as `token`, retrying UNAVAILABLE after the RetryInfo delay, until a final
/// answer or `deadline`.
async fn decide_until_answered(
    mut client: support::Client,
    token: String,
    request: v1::DecideRefundClaimRequest,
    deadline: std::time::Duration,
) -> DecisionCall {
    use std::time::{Duration, Instant};
    use tonic_types::StatusExt;
    let started = Instant::now();
    let (mut unavailable, mut without_retry_info) = (0, 0);
    loop {
        let attempt_started = OffsetDateTime::now_utc();
        let answer = client
            .decide_refund_claim(with_bearer(request.clone(), &token))
            .await;
        match answer {
            Err(status) if status.code() == Code::Unavailable && started.elapsed() < deadline => {
                unavailable += 1;
                let delay = match status.get_error_details().retry_info() {
                    Some(info) => info.retry_delay.unwrap_or(Duration::from_secs(1)),
                    None => {
                        without_retry_info += 1;
                        Duration::from_secs(1)
                    }
                };
                tokio::time::sleep(delay).await;
            }
            answer => {
                let answer = answer.map(|response| response.into_inner().claim.unwrap_or_default());
                let answered_by_repeat = answer.as_ref().is_ok_and(|claim| {
                    claim.decided_at.as_ref().is_some_and(|at| {
                        i128::from(at.seconds) * 1_000_000_000 + i128::from(at.nanos)
                            < attempt_started.unix_timestamp_nanos()
                    })
                });
                return DecisionCall {
                    claim_id: request.claim_id.clone(),
                    answer,
                    unavailable,
                    without_retry_info,
                    answered_by_repeat,
                    took: started.elapsed(),
                };
            }
        }
    }
}

/// 30 recommended claims are decided at once while refunds' database backends are terminated:
/// once for certain mid-decision (every claim row locked, so the decisions wait inside their
/// transactions; then every other backend is terminated), then five more times, 250 ms apart,
/// while the decisions are retried, the payments handed over and applications' GrantApproved
/// consumed. Callers get only OK or UNAVAILABLE with RetryInfo (never INTERNAL); a retry after
/// a lost answer gets the contract's answer to a repeated verdict (OK, the claim as decided);
/// every claim is decided once, paid once and published once; nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_decisions_survives_terminated_database_backends()
-> anyhow::Result<()> {
    use std::{
        collections::{HashMap, HashSet},
        time::{Duration, Instant},
    };

    use ekb_testkit::{
        faults::{BackendTerminator, metric_in_process},
        service_under_test::eventually,
    };
    use support::WAIT;
    use tokio::task::JoinSet;
    const CLAIMS: usize = 30;
    const LATE_GRANTS: usize = 10;
    // The production pool size (the harness's default is 3), so the row lock below holds up to
    // ten decisions inside their transactions.
    let harness = Harness::start("decision-burst", |settings| {
        settings
            .with("database.max_connections", "10")
            .with("payment.resend_after", "1s")
            .with("refunds.payment_worker_interval", "1s")
    })
    .await?;
    let topic = harness.refunds_topic()?;

    // N grants, each with a claim a caseworker recommended approving.
    let grants: Vec<Grant> = (0..CLAIMS)
        .map(|i| Grant::new(1_000_000 + 10_000 * i as i64))
        .collect();
    for grant in &grants {
        harness
            .publish_from_applications(&grant.subject(), &grant.approved())
            .await?;
    }
    let mut payouts: HashMap<String, i64> = HashMap::new();
    for grant in &grants {
        harness.wait_for_grant(&grant.grant_id).await?;
        let payout = grant.granted_ore - 100_000;
        let claim = harness.submit(grant.claim(payout)).await?;
        let recommended = harness.recommend_approval(&claim.claim_id, payout).await?;
        assert_eq!(recommended.status(), v1::RefundClaimStatus::Recommended);
        payouts.insert(claim.claim_id, payout);
    }

    // Every claim row locked: the decisions wait inside their transactions.
    let mut blocker = harness.pool.begin().await?;
    sqlx::query("SELECT 1 FROM claims FOR UPDATE")
        .execute(&mut *blocker)
        .await?;
    let started = Instant::now();
    let mut decisions = JoinSet::new();
    for claim_id in payouts.keys() {
        let request = v1::DecideRefundClaimRequest {
            claim_id: claim_id.clone(),
            recommendation_version: 1,
            verdict: v1::DeciderVerdict::Confirm as i32,
            note: String::new(),
        };
        decisions.spawn(decide_until_answered(
            harness.client.clone(),
            harness.decider.clone(),
            request,
            Duration::from_secs(60),
        ));
    }
    let lock_waiters = || async {
        harness
            .count(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await
    };
    eventually(
        "decisions waiting inside their transactions",
        WAIT,
        || async { Ok((lock_waiters().await? > 0).then_some(())) },
    )
    .await?;
    // A moment for the pool to open connections for more of them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = lock_waiters().await?;
    let mid_decision = ekb_testkit::faults::terminate_others(&mut blocker).await?;
    blocker.commit().await?;
    // Then five more times while the decisions are retried, payments handed over and
    // applications' events consumed.
    let terminator =
        BackendTerminator::start(harness.stack.database_url(), 5, Duration::from_millis(250));
    let late_grants: Vec<Grant> = (0..LATE_GRANTS).map(|_| Grant::new(500_000)).collect();
    for grant in &late_grants {
        harness
            .publish_from_applications(&grant.subject(), &grant.approved())
            .await?;
    }
    let mut calls = Vec::new();
    while let Some(call) = decisions.join_next().await {
        calls.push(call?);
    }
    let all_answered = started.elapsed();
    let terminated = terminator.finish().await? + mid_decision;

    // Payments and events complete (the payment worker hands over what a handler could not).
    eventually(
        "every payment recorded",
        Duration::from_secs(60),
        || async {
            let paid = harness
                .count("SELECT count(*) FROM claims WHERE payment_status = 'PAID'")
                .await?;
            Ok((paid == CLAIMS as i64).then_some(()))
        },
    )
    .await?;
    for grant in &late_grants {
        harness.wait_for_grant(&grant.grant_id).await?;
    }
    eventually("the outbox published", Duration::from_secs(60), || async {
        let unpublished = harness
            .count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .await?;
        Ok((unpublished == 0).then_some(()))
    })
    .await?;
    let published = started.elapsed();
    let events = read_until(&topic, "every approval and payment", |received| {
        let event_ids_of = |event_type: &str| {
            received
                .iter()
                .filter(|message| message.event_type() == event_type)
                .filter_map(|message| message.envelope.as_ref())
                .map(|envelope| envelope.event_id.clone())
                .collect::<HashSet<_>>()
                .len()
        };
        event_ids_of("ekspertbistand.v1.RefundApproved") >= CLAIMS
            && event_ids_of("ekspertbistand.v1.PaymentCompleted") >= CLAIMS
    })
    .await?;
    let total = started.elapsed();

    // The figures.
    let unavailable: usize = calls.iter().map(|call| call.unavailable).sum();
    let by_repeat = calls.iter().filter(|call| call.answered_by_repeat).count();
    let left_pending = calls
        .iter()
        .filter(|call| {
            call.answer.as_ref().is_ok_and(|claim| {
                claim.payment.clone().unwrap_or_default().status() != v1::RefundPaymentStatus::Paid
            })
        })
        .count();
    let longest = calls.iter().map(|call| call.took).max().unwrap_or_default();
    let consumer_retries = metric_in_process("ekb_consumer_transient_failures_total", "")?;
    let consumer_failures = metric_in_process("ekb_consumer_retries_total", "")?;
    let dead_lettered = metric_in_process("ekb_consumer_dead_lettered_total", "")?;
    let dead_letter_rows = harness
        .count("SELECT count(*) FROM inbox WHERE outcome = 'dead_lettered'")
        .await?;
    let decided = harness
        .count(
            "SELECT count(*) FROM claims WHERE status = 'APPROVED' \
             AND decided_by = 'Z990002' AND decided_at IS NOT NULL",
        )
        .await?;
    let lost = CLAIMS as i64 - decided;
    eprintln!(
        "{terminated} backends terminated ({mid_decision} by the row lock with {waiting} decisions \
         waiting on it, then 5 rounds 250 ms apart); {CLAIMS} decisions answered in {all_answered:?} after \
         {unavailable} UNAVAILABLE retries ({by_repeat} answered by the repeat after a lost \
         answer, {left_pending} left to the payment worker); consumer: {consumer_retries} \
         retries of lost connections, {consumer_failures} other failures; \
         {dead_lettered} dead letters ({dead_letter_rows} in the inbox); {lost} lost; longest \
         decision call incl. retries {longest:?}; every payment and event \
         published after {published:?}; total {total:?}"
    );

    // Only OK or UNAVAILABLE with RetryInfo; the final answer is the decided claim.
    for call in &calls {
        assert_eq!(
            call.without_retry_info, 0,
            "{}: UNAVAILABLE without RetryInfo",
            call.claim_id
        );
        match &call.answer {
            Ok(claim) => {
                assert_eq!(claim.claim_id, call.claim_id);
                assert_eq!(claim.status(), v1::RefundClaimStatus::Approved, "{claim:?}");
                assert_eq!(claim.decided_by, "Z990002");
                assert_eq!(
                    claim.payout_amount,
                    Some(gross_to_wire(payouts[&call.claim_id]))
                );
            }
            Err(status) => panic!(
                "{}: the decision answered {:?} ({:?}, reason {:?}) after {} UNAVAILABLE",
                call.claim_id,
                status.code(),
                status.message(),
                reason(status),
                call.unavailable
            ),
        }
    }
    assert!(terminated >= 6, "backends were terminated ({terminated})");
    assert!(waiting >= 1, "a decision was waiting when terminated");
    assert!(
        unavailable >= 1,
        "a decision terminated mid-handling was retried"
    );

    // Decided exactly once: approved, audited once, RefundApproved once per claim.
    assert_eq!(lost, 0, "claims not decided");
    assert_eq!(
        harness
            .count("SELECT count(*) FROM grants WHERE status = 'SETTLED'")
            .await?,
        CLAIMS as i64
    );
    let audited: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT subject_id, action, count(*) FROM audit_entries \
         WHERE action IN ('DecideRefundClaim', 'PaymentSystem') GROUP BY 1, 2",
    )
    .fetch_all(&harness.pool)
    .await?;
    for action in ["DecideRefundClaim", "PaymentSystem"] {
        let per_claim: Vec<i64> = audited
            .iter()
            .filter(|(_, entry_action, _)| entry_action == action)
            .map(|(_, _, count)| *count)
            .collect();
        assert_eq!(per_claim.len(), CLAIMS, "{action} audited for every claim");
        assert!(
            per_claim.iter().all(|count| *count == 1),
            "{action} audited once per claim: {per_claim:?}"
        );
    }
    assert_eq!(harness.outbox("RefundApproved").await?, CLAIMS as i64);
    assert_eq!(harness.outbox("PaymentCompleted").await?, CLAIMS as i64);
    // On the topic (at least once): one event id per claim, with the payout.
    let approved_events: HashMap<String, (String, i64)> = events
        .iter()
        .filter(|message| message.event_type() == "ekspertbistand.v1.RefundApproved")
        .map(|message| {
            let event = message.decode::<v1::RefundApproved>()?;
            let event_id = message.envelope.clone().unwrap_or_default().event_id;
            Ok((event_id, (event.claim_id, event.payout_amount_ore)))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut approved_claims: Vec<&String> = approved_events
        .values()
        .map(|(claim_id, _)| claim_id)
        .collect();
    approved_claims.sort();
    approved_claims.dedup();
    assert_eq!(
        approved_claims.len(),
        approved_events.len(),
        "one RefundApproved event per claim"
    );
    assert_eq!(approved_events.len(), CLAIMS);
    for (claim_id, payout) in approved_events.values() {
        assert_eq!(payouts.get(claim_id), Some(payout), "{claim_id}");
    }

    // Paid once: attempt 1 (one payment key per claim), one reference each, one
    // PaymentCompleted each.
    let payments: Vec<(String, i32, String, Option<i64>)> = sqlx::query_as(
        "SELECT claim_id::text, payment_attempt, payment_reference, payout_amount_ore FROM claims",
    )
    .fetch_all(&harness.pool)
    .await?;
    let references: HashSet<&String> = payments
        .iter()
        .map(|(_, _, reference, _)| reference)
        .collect();
    assert_eq!(references.len(), CLAIMS, "one payment reference per claim");
    for (claim_id, attempt, reference, payout) in &payments {
        assert_eq!(*attempt, 1, "{claim_id}: paid on the first attempt");
        assert!(reference.starts_with("FAKE-"), "{claim_id}: {reference}");
        assert_eq!(payout.as_ref(), payouts.get(claim_id), "{claim_id}");
    }
    let completed_events: HashMap<String, String> = events
        .iter()
        .filter(|message| message.event_type() == "ekspertbistand.v1.PaymentCompleted")
        .map(|message| {
            let event = message.decode::<v1::PaymentCompleted>()?;
            let event_id = message.envelope.clone().unwrap_or_default().event_id;
            Ok((event_id, event.claim_id))
        })
        .collect::<anyhow::Result<_>>()?;
    let completed_claims: HashSet<&String> = completed_events.values().collect();
    assert_eq!(
        completed_events.len(),
        CLAIMS,
        "one PaymentCompleted event per claim"
    );
    assert_eq!(completed_claims.len(), CLAIMS);

    // The consumer: every GrantApproved applied, none dead-lettered.
    assert_eq!(dead_lettered, 0.0, "a lost connection never dead-letters");
    assert_eq!(dead_letter_rows, 0);
    assert_eq!(
        consumer_failures, 0.0,
        "a lost connection is not counted as a failure"
    );
    assert_eq!(
        harness
            .count("SELECT count(*) FROM inbox WHERE outcome = 'applied'")
            .await?,
        (CLAIMS + LATE_GRANTS) as i64
    );
    assert_eq!(
        harness.count("SELECT count(*) FROM grants").await?,
        (CLAIMS + LATE_GRANTS) as i64
    );
    harness.stack.stop().await
}
