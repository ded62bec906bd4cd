//! The regular grant flow with every service running as its own process over the broker:
//! a case routed REGULAR → application → review of the five conditions → recommendation by one
//! caseworker, decision by another → budget reserves → grant → refund claim → recommended and
//! decided by two people → budget disburses the payout and releases the rest → the payment is
//! recorded. And the paths that end early — withdrawal while budget has not answered, a funds
//! denial (made final, or asked again), an unused grant cancelled — each of which must give its
//! money back to the last øre.
//!
//! Each step is asserted on the state the services return over gRPC and on the events read back
//! from the broker; each test ends with budget's ledger check and a scan of every topic and log
//! for the run's fødselsnumre.
//!
//! The expiry of an unclaimed grant and a late claim need the refund deadline in the past, and
//! the services take "now" from the system clock. Those two tests simulate the passing of time
//! instead of waiting for it: once the grant has reached refunds through the real flow, they move
//! the one date refunds stores for it — the grant row's refund deadline, from which it derives the
//! last claim date — back in refunds' own database, and let the services do the rest (refunds'
//! expiry job runs every second in the test stack). Refunds' service tests move its injected clock
//! across the day boundaries instead.

use std::{future::Future, time::Duration};

use ekb_proto::v1::{
    self, ApplicationStatus, ClaimableGrantStatus, CommitmentKind, Flow, GrantStatus,
    RefundClaimStatus, RefundPaymentStatus, RefundRejectionReason, ReservationStatus,
};
use ekb_testkit::{
    events::EventFeed,
    scenarios::{
        Narrator, Step,
        personas::{CASEWORKER, DECIDER},
        regular::{
            self, ESTIMATED_ORE, GRANTED_ORE, INVOICED_ORE, RegularCase, decide_refund,
            recommend_refund,
        },
        requests,
        waits::until,
    },
    services::with_bearer,
};
use ekb_tests::{
    EMPLOYER_ORGNR, LILLEHAMMER, case_facts,
    ledger::{
        assert_money_kept, assert_no_fodselsnummer, finished_reservation, reservation_in,
        set_appropriation,
    },
    people::{iso, oslo_today, parse_iso, synthetic_fodselsnummer, today},
    system::{SystemStack, assert_refused},
};
use sqlx::Connection as _;
use tonic::Code;

/// Fifty million kroner, in øre: more than any test asks for.
const PLENTY_ORE: i64 = 5_000_000_000;
/// How long the consumers get to (not) act on a redelivered event.
const REDELIVERY_GRACE: Duration = Duration::from_secs(4);
/// Another employer, which the employer's representative does not act for.
const OTHER_EMPLOYER: &str = "923609016";

/// Opens a case routed REGULAR (own expert, Lillehammer, today) and returns it.
pub async fn open_regular_case(stack: &SystemStack) -> anyhow::Result<v1::Case> {
    stack
        .open_routed_case(case_facts(LILLEHAMMER, None, &today()), Flow::Regular)
        .await
}

/// Submits an application for `case_id` as the employer (the walk's request), retrying while
/// the case has not reached applications yet; returns it SUBMITTED.
pub async fn submit_application(
    stack: &SystemStack,
    case_id: &str,
    fodselsnummer: &str,
) -> anyhow::Result<v1::Application> {
    let clients = stack.clients().await?;
    regular::submit_application(&clients, &stack.people(), case_id, fodselsnummer, &today()).await
}

/// Waits until the application satisfies `done` (`what`; it changes on events), and returns it.
async fn application_when(
    stack: &SystemStack,
    application_id: &str,
    what: &str,
    done: impl Fn(&v1::Application) -> bool,
) -> anyhow::Result<v1::Application> {
    let clients = stack.clients().await?;
    let caseworker = stack.people().caseworker();
    regular::application_when(&clients, &caseworker, application_id, what, done).await
}

/// Waits until the application is in `status`, and returns it.
async fn application_in(
    stack: &SystemStack,
    application_id: &str,
    status: ApplicationStatus,
) -> anyhow::Result<v1::Application> {
    let what = format!("the application {}", regular::status_name(status));
    application_when(stack, application_id, &what, |app| app.status() == status).await
}

/// Waits until the application's grant is in `status`, and returns the application.
async fn grant_in(
    stack: &SystemStack,
    application_id: &str,
    status: GrantStatus,
) -> anyhow::Result<v1::Application> {
    let name = status.as_str_name();
    let what = format!(
        "the grant {}",
        name.strip_prefix("GRANT_STATUS_").unwrap_or(name)
    );
    application_when(stack, application_id, &what, |app| {
        app.grant.as_ref().map(|grant| grant.status()) == Some(status)
    })
    .await
}

/// Whether `commitment` is grant `grant_id`'s.
fn for_grant(commitment: &Option<v1::Commitment>, grant_id: &str) -> bool {
    commitment
        .as_ref()
        .is_some_and(|commitment| commitment.commitment_id == grant_id)
}

/// Submit → review → recommend → confirm a grant of `amount_ore` for a new REGULAR case, as in
/// the walk; returns the application as the decision left it (GRANT_PENDING_FUNDS) and its
/// grant id.
pub async fn decided_grant(
    stack: &SystemStack,
    fodselsnummer: &str,
    amount_ore: i64,
) -> anyhow::Result<(v1::Application, String)> {
    let clients = stack.clients().await?;
    let people = stack.people();
    let case = open_regular_case(stack).await?;
    let submitted = submit_application(stack, &case.case_id, fodselsnummer).await?;
    let recommended = regular::recommend_grant(
        &clients,
        &people.caseworker(),
        &submitted.application_id,
        amount_ore,
    )
    .await?;
    let decided = regular::decide(
        &clients,
        &people.decider(),
        &submitted.application_id,
        requests::current_version(&recommended.recommendations),
    )
    .await?;
    assert_eq!(decided.status(), ApplicationStatus::GrantPendingFunds);
    let grant_id = decided.grant.clone().unwrap_or_default().grant_id;
    assert!(!grant_id.is_empty(), "a confirmed grant has a grant id");
    Ok((decided, grant_id))
}

/// What the happy-path test checks at the walk's steps, beyond what the walk itself requires:
/// who may not do what at that point (another organisation, a second claim, the recommender
/// deciding), and what each answer records. It also notes the steps, in order.
struct RegularChecks<'a> {
    stack: &'a SystemStack,
    steps: Vec<&'static str>,
}

impl Narrator for RegularChecks<'_> {
    fn step(&mut self, step: Step<'_>) -> impl Future<Output = anyhow::Result<()>> {
        self.steps.push(step.name());
        let stack = self.stack;
        async move {
            let people = stack.people();
            match step {
                Step::ApplicationSubmitted { application } => {
                    assert_eq!(application.county_code, "34");
                    assert!(!application.employee_pseudonym.is_empty());
                    // Another organisation's representative cannot read it.
                    let foreign = stack
                        .applications()
                        .await?
                        .get_application(with_bearer(
                            v1::GetApplicationRequest {
                                application_id: application.application_id.clone(),
                                purpose: v1::AccessPurpose::Unspecified as i32,
                            },
                            &people.employer(&[OTHER_EMPLOYER]),
                        ))
                        .await;
                    assert_refused(
                        foreign,
                        Code::PermissionDenied,
                        "ORGANISATION_NOT_REPRESENTED",
                    );
                }
                Step::GrantRecommended { application } => {
                    assert_eq!(application.reviewed_by, CASEWORKER);
                    assert_eq!(application.conditions.len(), 5);
                    let current = application
                        .recommendations
                        .last()
                        .cloned()
                        .unwrap_or_default();
                    assert_eq!(current.recommended_by, CASEWORKER);
                    // Four eyes: the caseworker holding the decider role too may not decide
                    // their own recommendation.
                    let own = stack
                        .applications()
                        .await?
                        .decide_application(with_bearer(
                            requests::confirmation(&application.application_id, current.version),
                            &people.caseworker_as_decider(),
                        ))
                        .await;
                    assert_refused(own, Code::PermissionDenied, "DECIDER_IS_RECOMMENDER");
                }
                Step::ClaimSubmitted { claim } => {
                    assert_eq!(claim.payable_amount.unwrap_or_default().ore, INVOICED_ORE);
                    assert!(!claim.late, "claimed on the grant day: on time");
                    // A second claim on the same grant is refused while this one lives.
                    let second = stack
                        .refunds()
                        .await?
                        .submit_refund_claim(with_bearer(
                            requests::refund_claim(&claim.grant_id, INVOICED_ORE, &today()),
                            &people.employer(&[EMPLOYER_ORGNR]),
                        ))
                        .await;
                    assert_refused(second, Code::FailedPrecondition, "CLAIM_EXISTS");
                }
                Step::ClaimRecommended { claim } => {
                    assert_eq!(claim.status(), RefundClaimStatus::Recommended);
                    let confirm = requests::refund_verdict(claim, v1::DeciderVerdict::Confirm, "");
                    let own = stack
                        .refunds()
                        .await?
                        .decide_refund_claim(with_bearer(confirm, &people.caseworker_as_decider()))
                        .await;
                    assert_refused(own, Code::PermissionDenied, "DECIDER_IS_RECOMMENDER");
                }
                Step::ClaimApproved { claim } => {
                    assert_eq!(claim.decided_by, DECIDER);
                    assert_eq!(claim.recommended_by, CASEWORKER);
                    assert_eq!(claim.payout_amount.unwrap_or_default().ore, INVOICED_ORE);
                }
                _ => {}
            }
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regular_case_goes_from_application_to_payment() -> anyhow::Result<()> {
    let stack = SystemStack::start("e2e_regular").await?;
    set_appropriation(&stack, PLENTY_ORE).await?;
    let fodselsnummer = synthetic_fodselsnummer(15, 3, 85, 0);

    // make run's walk: OpenCase (REGULAR) → SubmitApplication → StartReview, AssessCondition ×5,
    // RecommendDecision (caseworker A) → DecideApplication (decider B) → budget's FundsReserved
    // → GRANTED → SubmitRefundClaim → RecommendRefundDecision (A) → DecideRefundClaim (B) →
    // budget settles → the payment system pays; checked at each step by `RegularChecks`.
    let today = today();
    let mut checks = RegularChecks {
        stack: &stack,
        steps: Vec::new(),
    };
    let paid = regular::walk(
        &stack.clients().await?,
        &stack.people(),
        RegularCase {
            employee: &fodselsnummer,
            today: &today,
        },
        &mut checks,
    )
    .await?;
    assert_eq!(
        checks.steps,
        [
            "CaseOpened",
            "ApplicationSubmitted",
            "GrantRecommended",
            "ApplicationDecided",
            "Granted",
            "ClaimSubmitted",
            "ClaimRecommended",
            "ClaimApproved",
            "Settled",
            "RefundPaid",
        ]
    );
    let case = &paid.case;
    let application_id = paid.application.application_id.clone();
    let grant_id = paid.grant_id().to_owned();
    let claim_id = paid.claim.claim_id.clone();
    assert_eq!(paid.application.case_id, case.case_id);

    // The events of the application and the grant.
    let event = stack
        .events
        .wait_for(|event: &v1::ApplicationSubmitted| event.application_id == application_id)
        .await?;
    assert_eq!(
        event.employee_pseudonym,
        paid.application.employee_pseudonym
    );
    assert_eq!(event.estimated_cost_ore, ESTIMATED_ORE);
    let requested = stack
        .events
        .wait_for(|event: &v1::GrantRequested| event.grant_id == grant_id)
        .await?;
    assert_eq!(requested.amount_ore, GRANTED_ORE);
    assert_eq!(requested.case_id, case.case_id);
    let reserved = stack
        .events
        .wait_for(|event: &v1::FundsReserved| {
            event.commitment.as_ref().is_some_and(|commitment| {
                commitment.commitment_id == grant_id
                    && commitment.kind == CommitmentKind::Grant as i32
            })
        })
        .await?;
    assert_eq!(reserved.amount_ore, GRANTED_ORE);
    assert_eq!(reserved.flow(), Flow::Regular);
    let approved = stack
        .events
        .wait_for(|event: &v1::GrantApproved| event.grant_id == grant_id)
        .await?;
    assert_eq!(approved.granted_amount_ore, GRANTED_ORE);
    assert_eq!(approved.reservation_id, reserved.reservation_id);
    assert_eq!(approved.employer_organisation_number, EMPLOYER_ORGNR);
    assert_eq!(approved.grant_date, today);
    assert!(!approved.refund_deadline_date.is_empty());
    assert!(approved.refund_deadline_date >= today);
    let granted = &paid.application;
    assert_eq!(granted.status(), ApplicationStatus::Granted);
    let decision = granted.decision.clone().unwrap_or_default();
    assert_eq!(
        (
            decision.recommended_by.as_str(),
            decision.decided_by.as_str()
        ),
        (CASEWORKER, DECIDER),
        "who recommended and who decided are recorded"
    );
    assert_eq!(decision.conditions.len(), 5, "the assessment is frozen in");
    let grant = granted.grant.clone().unwrap_or_default();
    assert_eq!(grant.granted_amount.unwrap_or_default().ore, GRANTED_ORE);
    assert_eq!(grant.refund_deadline_date, approved.refund_deadline_date);
    assert!(
        grant.applied_max_rate.is_some(),
        "the max rate is frozen into the grant"
    );

    // The claim.
    let claimed = stack
        .events
        .wait_for(|event: &v1::RefundClaimSubmitted| event.claim_id == claim_id)
        .await?;
    assert_eq!(claimed.payable_amount_ore, INVOICED_ORE);
    assert_eq!(claimed.days_from_case_opened_to_expert_start, 0);

    // RefundApproved → budget: FundsDisbursed (the payout) + FundsReleased (the remainder);
    // the payment system pays and PaymentCompleted is published; the grant's reservation is
    // settled — disbursed + released = reserved.
    let (_, source, completed) =
        assert_paid_out(&stack, &application_id, &grant_id, &claim_id).await?;
    assert_eq!(source.kind(), v1::DisbursementSourceKind::RefundClaim);
    assert!(!completed.payment_reference.is_empty());
    assert_eq!(paid.payment.status(), RefundPaymentStatus::Paid);
    assert_eq!(paid.payment.payment_reference, completed.payment_reference);
    assert_eq!(paid.reservation.disbursed_ore, INVOICED_ORE);

    // Redelivery at the money hops is applied once: the same envelopes again (same event ids)
    // move no money and publish nothing new.
    redeliver_money_events(&stack, &grant_id, &claim_id).await?;
    assert_eq!(
        stack
            .events
            .matching(|event: &v1::FundsDisbursed| for_grant(&event.commitment, &grant_id))
            .len(),
        1
    );
    assert_eq!(
        stack
            .events
            .matching(|event: &v1::GrantApproved| event.grant_id == grant_id)
            .len(),
        1
    );
    assert_eq!(
        stack
            .events
            .matching(|event: &v1::PaymentCompleted| event.claim_id == claim_id)
            .len(),
        1
    );
    finished_reservation(
        &stack,
        CommitmentKind::Grant,
        &grant_id,
        ReservationStatus::Settled,
        INVOICED_ORE,
    )
    .await?;

    // The case's story on the broker, and what no event may carry.
    let types = stack.events.assert_case_story(
        &case.case_id,
        &[
            "CaseRouted",
            "ApplicationSubmitted",
            "GrantRequested",
            "FundsReserved",
            "GrantApproved",
            "RefundClaimSubmitted",
            "RefundApproved",
            "FundsDisbursed",
            "FundsReleased",
            "PaymentCompleted",
        ],
    );
    assert_money_kept(&stack).await?;
    let scanned = assert_no_fodselsnummer(&stack, &[&fodselsnummer]);
    assert!(scanned >= types.len());
    Ok(())
}

/// After claim `claim_id` against grant `grant_id` (of `GRANTED_ORE`) was approved for
/// `INVOICED_ORE`: waits for and checks RefundApproved (payout and grant), budget's
/// FundsDisbursed (the payout, for the claim) and FundsReleased (the remainder), the payment
/// system's PaymentCompleted (first attempt), the grant SETTLED in applications and its
/// reservation settled to the øre. Returns RefundApproved, the disbursement's source and
/// PaymentCompleted for the test's own checks.
async fn assert_paid_out(
    stack: &SystemStack,
    application_id: &str,
    grant_id: &str,
    claim_id: &str,
) -> anyhow::Result<(
    v1::RefundApproved,
    v1::DisbursementSource,
    v1::PaymentCompleted,
)> {
    let refund = stack
        .events
        .wait_for(|event: &v1::RefundApproved| event.claim_id == claim_id)
        .await?;
    assert_eq!(
        (refund.payout_amount_ore, refund.granted_amount_ore),
        (INVOICED_ORE, GRANTED_ORE)
    );
    let disbursed = stack
        .events
        .wait_for(|event: &v1::FundsDisbursed| for_grant(&event.commitment, grant_id))
        .await?;
    assert_eq!(disbursed.amount_ore, INVOICED_ORE);
    let source = disbursed.source.unwrap_or_default();
    assert_eq!(source.source_id, claim_id, "disbursed for the claim");
    let released = stack
        .events
        .wait_for(|event: &v1::FundsReleased| for_grant(&event.commitment, grant_id))
        .await?;
    assert_eq!(
        (released.amount_ore, released.cause()),
        (
            GRANTED_ORE - INVOICED_ORE,
            v1::ReleaseCause::SettlementRemainder
        )
    );
    let paid = stack
        .events
        .wait_for(|event: &v1::PaymentCompleted| event.claim_id == claim_id)
        .await?;
    assert_eq!((paid.amount_ore, paid.attempt), (INVOICED_ORE, 1));
    grant_in(stack, application_id, GrantStatus::Settled).await?;
    let settled = finished_reservation(
        stack,
        CommitmentKind::Grant,
        grant_id,
        ReservationStatus::Settled,
        INVOICED_ORE,
    )
    .await?;
    assert_eq!(settled.reserved_ore, GRANTED_ORE);
    Ok((refund, source, paid))
}

/// Publishes again, with their original event ids, the FundsReserved, GrantApproved and
/// RefundApproved of `grant_id` / `claim_id` as their producers' relays would after a crash
/// between send and commit, then gives the consumers time to see them.
async fn redeliver_money_events(
    stack: &SystemStack,
    grant_id: &str,
    claim_id: &str,
) -> anyhow::Result<()> {
    let feed = EventFeed::new(stack.broker.bootstrap_servers(), &stack.topic_prefix)?;
    stack
        .events
        .redeliver(&feed, "budget", |event: &v1::FundsReserved| {
            for_grant(&event.commitment, grant_id)
        })
        .await?;
    stack
        .events
        .redeliver(&feed, "applications", |event: &v1::GrantApproved| {
            event.grant_id == grant_id
        })
        .await?;
    stack
        .events
        .redeliver(&feed, "refunds", |event: &v1::RefundApproved| {
            event.claim_id == claim_id
        })
        .await?;
    tokio::time::sleep(REDELIVERY_GRACE).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_funds_denial_and_cancellation_give_the_money_back() -> anyhow::Result<()> {
    let stack = SystemStack::start("e2e_regular_ends").await?;
    let people: Vec<String> = (0..3)
        .map(|nth| synthetic_fodselsnummer(2, 11, 79, nth))
        .collect();
    let employer = stack.people().employer(&[EMPLOYER_ORGNR]);
    let mut applications = stack.applications().await?;

    // Withdrawal while budget has not answered: no appropriation for the year yet, so the
    // request waits PENDING; the withdrawal withdraws it and nothing is ever reserved.
    let (waiting, waiting_grant) = decided_grant(&stack, &people[0], GRANTED_ORE).await?;
    reservation_in(
        &stack,
        CommitmentKind::Grant,
        &waiting_grant,
        ReservationStatus::Pending,
    )
    .await?;
    let withdraw = |token: &str| {
        with_bearer(
            v1::WithdrawApplicationRequest {
                application_id: waiting.application_id.clone(),
                reason: "Arbeidstakeren er tilbake i full jobb.".to_owned(),
            },
            token,
        )
    };
    let foreign = applications
        .withdraw_application(withdraw(&stack.people().employer(&[OTHER_EMPLOYER])))
        .await;
    assert_refused(
        foreign,
        Code::PermissionDenied,
        "ORGANISATION_NOT_REPRESENTED",
    );
    let withdrawn = applications
        .withdraw_application(withdraw(&employer))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(withdrawn.status(), ApplicationStatus::Withdrawn);
    let event = stack
        .events
        .wait_for(|event: &v1::ApplicationWithdrawn| event.application_id == waiting.application_id)
        .await?;
    assert_eq!(event.grant_id, waiting_grant);
    assert_eq!(
        event.previous_status(),
        ApplicationStatus::GrantPendingFunds
    );
    let withdrawn_request = reservation_in(
        &stack,
        CommitmentKind::Grant,
        &waiting_grant,
        ReservationStatus::Released,
    )
    .await?;
    assert_eq!(
        withdrawn_request.reserved_ore, 0,
        "nothing was ever reserved"
    );

    // Lack of funds: 10 000 kr appropriated, 18 000 kr asked → FundsDenied → FUNDS_DENIED,
    // shown as rejected for lack of funds but not final.
    set_appropriation(&stack, 1_000_000).await?;
    let (denied, denied_grant) = decided_grant(&stack, &people[1], GRANTED_ORE).await?;
    let (final_case, final_grant) = decided_grant(&stack, &people[2], GRANTED_ORE).await?;
    for (application, grant_id) in [(&denied, &denied_grant), (&final_case, &final_grant)] {
        let event = stack
            .events
            .wait_for(|event: &v1::GrantFundsDenied| event.grant_id == *grant_id)
            .await?;
        assert_eq!(event.reason(), v1::FundsDeniedReason::InsufficientFunds);
        assert_eq!(event.requested_ore, GRANTED_ORE);
        let shown = application_in(
            &stack,
            &application.application_id,
            ApplicationStatus::FundsDenied,
        )
        .await?;
        let rejection = shown.rejection.unwrap_or_default();
        assert_eq!(
            rejection.reason(),
            v1::ApplicationRejectionReason::FundsDenied
        );
        assert_eq!(
            rejection.funds_denied_reason(),
            v1::FundsDeniedReason::InsufficientFunds
        );
        assert!(!rejection.is_final, "a funds denial is not final by itself");
        reservation_in(
            &stack,
            CommitmentKind::Grant,
            grant_id,
            ReservationStatus::Denied,
        )
        .await?;
    }
    // One is made final by a decider: REJECTED, ApplicationRejected (FUNDS_DENIED).
    let rejected = applications
        .reject_for_lack_of_funds(with_bearer(
            v1::RejectForLackOfFundsRequest {
                application_id: final_case.application_id.clone(),
                explanation: "Ingen midler igjen i år.".to_owned(),
            },
            &stack.people().decider(),
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(rejected.status(), ApplicationStatus::Rejected);
    assert!(rejected.rejection.unwrap_or_default().is_final);
    let event = stack
        .events
        .wait_for(|event: &v1::ApplicationRejected| {
            event.application_id == final_case.application_id
        })
        .await?;
    assert_eq!(event.reason(), v1::ApplicationRejectionReason::FundsDenied);
    // The other is asked again after the appropriation is raised: a new grant id, reserved.
    set_appropriation(&stack, PLENTY_ORE).await?;
    let again = applications
        .request_funds_again(with_bearer(
            v1::RequestFundsAgainRequest {
                application_id: denied.application_id.clone(),
            },
            &stack.people().caseworker(),
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(again.status(), ApplicationStatus::GrantPendingFunds);
    let new_grant = again.grant.clone().unwrap_or_default().grant_id;
    assert_ne!(new_grant, denied_grant, "asked again under a new grant id");
    let granted =
        application_in(&stack, &denied.application_id, ApplicationStatus::Granted).await?;
    assert_eq!(
        granted
            .grant
            .clone()
            .unwrap_or_default()
            .funds_requests
            .len(),
        2,
        "the grant keeps every funds request"
    );
    stack
        .events
        .wait_for(|event: &v1::GrantApproved| event.grant_id == new_grant)
        .await?;

    // Early cancellation of the unused grant (employer): refunds accepts, applications
    // publishes GrantCancelled, budget releases all of it.
    let mut refunds = stack.refunds().await?;
    until("refunds to know the grant", || async {
        Ok(claimable_grant(&stack, &new_grant).await.ok().map(|_| ()))
    })
    .await?;
    let cancelling = applications
        .cancel_grant(with_bearer(
            requests::employer_cancellation(&denied.application_id),
            &employer,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(
        cancelling.grant.unwrap_or_default().status(),
        GrantStatus::CancellationRequested
    );
    stack
        .events
        .wait_for(|event: &v1::GrantCancellationAccepted| event.grant_id == new_grant)
        .await?;
    let cancelled = stack
        .events
        .wait_for(|event: &v1::GrantCancelled| event.grant_id == new_grant)
        .await?;
    assert_eq!(cancelled.granted_amount_ore, GRANTED_ORE);
    assert!(cancelled.requested_by_employer);
    let released = stack
        .events
        .wait_for(|event: &v1::FundsReleased| for_grant(&event.commitment, &new_grant))
        .await?;
    assert_eq!(
        (released.amount_ore, released.cause()),
        (GRANTED_ORE, v1::ReleaseCause::GrantCancelled)
    );
    grant_in(&stack, &denied.application_id, GrantStatus::Cancelled).await?;
    let late_claim = refunds
        .submit_refund_claim(with_bearer(
            requests::refund_claim(&new_grant, INVOICED_ORE, &today()),
            &employer,
        ))
        .await;
    assert_refused(late_claim, Code::FailedPrecondition, "GRANT_CANCELLED");
    let released = finished_reservation(
        &stack,
        CommitmentKind::Grant,
        &new_grant,
        ReservationStatus::Released,
        0,
    )
    .await?;
    assert_eq!(released.reserved_ore, GRANTED_ORE);

    assert_money_kept(&stack).await?;
    let numbers: Vec<&str> = people.iter().map(String::as_str).collect();
    assert_no_fodselsnummer(&stack, &numbers);
    Ok(())
}

/// Grant `GRANTED_ORE` to a new case, wait for it, and have its claim for `INVOICED_ORE`
/// approved by two people; returns the grant id and the approved claim.
async fn approved_claim(
    stack: &SystemStack,
    fodselsnummer: &str,
) -> anyhow::Result<(String, v1::RefundClaim)> {
    let (application, grant_id) = decided_grant(stack, fodselsnummer, GRANTED_ORE).await?;
    application_in(
        stack,
        &application.application_id,
        ApplicationStatus::Granted,
    )
    .await?;
    let claim = submit_claim(stack, &grant_id).await?;
    let clients = stack.clients().await?;
    let people = stack.people();
    let recommended = recommend_refund(
        &clients,
        &people.caseworker(),
        requests::refund_approval(&claim.claim_id, INVOICED_ORE),
    )
    .await?;
    let approved = decide_refund(
        &clients,
        &people.decider(),
        requests::refund_verdict(&recommended, v1::DeciderVerdict::Confirm, ""),
    )
    .await?;
    assert_eq!(approved.status(), RefundClaimStatus::Approved);
    Ok((grant_id, approved))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_fails_is_retried_and_its_outcome_reported_later() -> anyhow::Result<()> {
    // The payment system accepts payment orders and reports their outcome later, through
    // RecordPaymentOutcome (role refund-payment-system).
    let stack = SystemStack::start_with(
        "e2e_payment",
        &[("refunds", "payment.fake_outcome", "deferred")],
    )
    .await?;
    set_appropriation(&stack, PLENTY_ORE).await?;
    let fodselsnummer = synthetic_fodselsnummer(30, 1, 70, 0);
    let (grant_id, claim) = approved_claim(&stack, &fodselsnummer).await?;
    let claim_id = claim.claim_id.clone();
    let payment = claim.payment.clone().unwrap_or_default();
    assert_eq!(
        (payment.status(), payment.attempt),
        (RefundPaymentStatus::Pending, 1)
    );
    // Budget books the disbursement at approval, whatever the payment does.
    finished_reservation(
        &stack,
        CommitmentKind::Grant,
        &grant_id,
        ReservationStatus::Settled,
        INVOICED_ORE,
    )
    .await?;

    let payment_system = stack.people().payment_system();
    let mut refunds = stack.refunds().await?;
    let outcome = |attempt: i32, outcome: v1::record_payment_outcome_request::Outcome| {
        with_bearer(
            v1::RecordPaymentOutcomeRequest {
                claim_id: claim_id.clone(),
                attempt,
                outcome: Some(outcome),
            },
            &payment_system,
        )
    };
    let failure = || {
        v1::record_payment_outcome_request::Outcome::Failed(v1::RefundPaymentFailure {
            reason: v1::RefundPaymentFailureReason::NoRefundAccount as i32,
            detail: "Ingen kontonummer for refusjon registrert.".to_owned(),
        })
    };
    let failed = refunds
        .record_payment_outcome(outcome(1, failure()))
        .await?
        .into_inner()
        .claim
        .unwrap_or_default();
    assert_eq!(
        failed.payment.unwrap_or_default().status(),
        RefundPaymentStatus::Failed
    );
    let event = stack
        .events
        .wait_for(|event: &v1::PaymentFailed| event.claim_id == claim_id)
        .await?;
    assert_eq!(
        (event.attempt, event.reason()),
        (1, v1::RefundPaymentFailureReason::NoRefundAccount)
    );
    // The same outcome again is a no-op; another one for that attempt is a conflict.
    refunds
        .record_payment_outcome(outcome(1, failure()))
        .await?;
    let paid_instead = v1::record_payment_outcome_request::Outcome::Paid(v1::RefundPaymentPaid {
        payment_reference: "UR-2026-0001".to_owned(),
        paid_date: today(),
    });
    let conflict = refunds
        .record_payment_outcome(outcome(1, paid_instead.clone()))
        .await;
    assert_refused(
        conflict,
        Code::FailedPrecondition,
        "PAYMENT_OUTCOME_CONFLICT",
    );

    // A caseworker retries once the account is registered: attempt 2, then paid.
    let retried = refunds
        .retry_payment(with_bearer(
            v1::RetryPaymentRequest {
                claim_id: claim_id.clone(),
                note: "Kontonummer registrert.".to_owned(),
            },
            &stack.people().caseworker(),
        ))
        .await?
        .into_inner()
        .claim
        .unwrap_or_default();
    let payment = retried.payment.unwrap_or_default();
    assert_eq!(
        (payment.status(), payment.attempt),
        (RefundPaymentStatus::Pending, 2)
    );
    let stale = refunds
        .record_payment_outcome(outcome(1, paid_instead.clone()))
        .await;
    assert_refused(stale, Code::FailedPrecondition, "NOT_CURRENT_ATTEMPT");
    let paid = refunds
        .record_payment_outcome(outcome(2, paid_instead))
        .await?
        .into_inner()
        .claim
        .unwrap_or_default()
        .payment
        .unwrap_or_default();
    assert_eq!(
        (paid.status(), paid.payment_reference.as_str()),
        (RefundPaymentStatus::Paid, "UR-2026-0001")
    );
    let event = stack
        .events
        .wait_for(|event: &v1::PaymentCompleted| event.claim_id == claim_id)
        .await?;
    assert_eq!((event.attempt, event.amount_ore), (2, INVOICED_ORE));
    assert_eq!(
        stack
            .events
            .count(|event: &v1::PaymentFailed| event.claim_id == claim_id),
        1,
        "the repeated outcome published nothing"
    );
    // The payments moved no budget money: still disbursed once.
    assert_eq!(
        stack
            .events
            .count(|event: &v1::FundsDisbursed| for_grant(&event.commitment, &grant_id)),
        1
    );
    assert_money_kept(&stack).await?;
    assert_no_fodselsnummer(&stack, &[&fodselsnummer]);
    Ok(())
}

/// How many days before today a late claim's deadline lies (within the grace days).
pub const LATE_DAYS: i64 = 3;
/// How long a test lets refunds' expiry job (every second in the stack) run over a grant.
const EXPIRY_JOB_RUNS: Duration = Duration::from_secs(3);

/// Submit → review → recommend → confirm a grant of `GRANTED_ORE` for a new REGULAR case, and
/// wait until budget has reserved it (FundsReserved read back), applications shows it GRANTED and
/// refunds has it ACTIVE; returns the application and refunds' view of the grant.
pub async fn claimable_grant_for(
    stack: &SystemStack,
    fodselsnummer: &str,
) -> anyhow::Result<(v1::Application, v1::ClaimableGrant)> {
    let (application, grant_id) = decided_grant(stack, fodselsnummer, GRANTED_ORE).await?;
    let reserved = stack
        .events
        .wait_for(|event: &v1::FundsReserved| for_grant(&event.commitment, &grant_id))
        .await?;
    assert_eq!(reserved.amount_ore, GRANTED_ORE);
    let approved = stack
        .events
        .wait_for(|event: &v1::GrantApproved| event.grant_id == grant_id)
        .await?;
    assert_eq!(approved.reservation_id, reserved.reservation_id);
    let application = application_in(
        stack,
        &application.application_id,
        ApplicationStatus::Granted,
    )
    .await?;
    let grant = until("refunds to know the grant", || async {
        Ok(claimable_grant(stack, &grant_id).await.ok())
    })
    .await?;
    assert_eq!(grant.status(), ClaimableGrantStatus::Active);
    assert_eq!(grant.refund_deadline_date, approved.refund_deadline_date);
    assert_eq!(
        grant.original_refund_deadline_date,
        approved.refund_deadline_date
    );
    Ok((application, grant))
}

/// Refunds' view of grant `grant_id`, as a caseworker reads it.
async fn claimable_grant(
    stack: &SystemStack,
    grant_id: &str,
) -> anyhow::Result<v1::ClaimableGrant> {
    stack
        .refunds()
        .await?
        .get_claimable_grant(with_bearer(
            requests::get_claimable_grant(grant_id),
            &stack.people().caseworker(),
        ))
        .await?
        .into_inner()
        .grant
        .ok_or_else(|| anyhow::anyhow!("GetClaimableGrant answered without the grant"))
}

/// The days after its deadline that refunds still accepts a claim against `grant` (its
/// `refunds.late_claim_grace`): last claim date − deadline.
pub fn grace_days(grant: &v1::ClaimableGrant) -> anyhow::Result<i64> {
    Ok((parse_iso(&grant.last_claim_date)? - parse_iso(&grant.refund_deadline_date)?).whole_days())
}

/// Simulates the passing of time for grant `grant_id`: moves the refund deadline refunds stored
/// from GrantApproved to `deadline`, in refunds' own database, as if the days between had passed.
/// The original deadline moves with it (no extension was made, so the two are the same date);
/// the last claim date is not stored but derived from the deadline. Only an ACTIVE grant is moved.
pub async fn move_refund_deadline(
    stack: &SystemStack,
    grant_id: &str,
    deadline: time::Date,
) -> anyhow::Result<()> {
    let mut db = sqlx::PgConnection::connect(stack.database_url("refunds")?).await?;
    let moved = sqlx::query(
        "UPDATE grants SET refund_deadline = $2, original_deadline = $2 \
         WHERE grant_id = $1 AND status = 'ACTIVE' \
           AND refund_deadline = original_deadline",
    )
    .bind(uuid::Uuid::parse_str(grant_id)?)
    .bind(deadline)
    .execute(&mut db)
    .await?;
    anyhow::ensure!(
        moved.rows_affected() == 1,
        "grant {grant_id} is not an ACTIVE grant without extension in refunds"
    );
    db.close().await?;
    Ok(())
}

/// The employer claims `INVOICED_ORE` against `grant_id` (today's dates), as in the walk;
/// returns the claim as refunds accepted it (SUBMITTED).
async fn submit_claim(stack: &SystemStack, grant_id: &str) -> anyhow::Result<v1::RefundClaim> {
    let clients = stack.clients().await?;
    regular::submit_claim(&clients, &stack.people(), grant_id, &today()).await
}

/// The expiry path. A grant is made through the real flow (application → decision →
/// FundsReserved → GrantApproved) and never claimed. Time is simulated, not waited for: the test
/// moves the grant's refund deadline in refunds' own database (see [`move_refund_deadline`]) to
/// one day more than the grace days for late claims before today, so its last claim date is
/// yesterday. Refunds' expiry job (every second here) publishes GrantExpired; budget releases the
/// whole reservation (FundsReleased, cause GRANT_EXPIRED); applications shows the grant EXPIRED;
/// a claim and a cancellation are refused afterwards, and the job's later runs change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclaimed_grant_expires_and_its_money_is_released() -> anyhow::Result<()> {
    let stack = SystemStack::start("e2e_expiry").await?;
    set_appropriation(&stack, PLENTY_ORE).await?;
    let fodselsnummer = synthetic_fodselsnummer(21, 6, 88, 0);
    let (application, grant) = claimable_grant_for(&stack, &fodselsnummer).await?;
    let grant_id = grant.grant_id.clone();
    let grace = grace_days(&grant)?;
    assert!(grace >= 0, "{grant:?}");
    reservation_in(
        &stack,
        CommitmentKind::Grant,
        &grant_id,
        ReservationStatus::Reserved,
    )
    .await?;

    // The deadline and the grace days pass.
    let deadline = oslo_today() - time::Duration::days(grace + 1);
    move_refund_deadline(&stack, &grant_id, deadline).await?;

    // Refunds' expiry job → GrantExpired.
    let expired = stack
        .events
        .wait_for(|event: &v1::GrantExpired| event.grant_id == grant_id)
        .await?;
    assert_eq!(expired.granted_amount_ore, GRANTED_ORE);
    assert_eq!(expired.application_id, application.application_id);
    assert_eq!(expired.case_id, application.case_id);
    assert_eq!(expired.county_code, application.county_code);
    assert_eq!(expired.refund_deadline_date, iso(deadline));
    assert_eq!(expired.original_refund_deadline_date, iso(deadline));
    assert!(!expired.had_rejected_claim, "no claim was ever made");
    assert!(expired.expired_at.is_some());
    let shown = claimable_grant(&stack, &grant_id).await?;
    assert_eq!(shown.status(), ClaimableGrantStatus::Expired);
    assert!(shown.expired_at.is_some());

    // Budget releases the whole reservation.
    let released = stack
        .events
        .wait_for(|event: &v1::FundsReleased| for_grant(&event.commitment, &grant_id))
        .await?;
    assert_eq!(
        (released.amount_ore, released.cause()),
        (GRANTED_ORE, v1::ReleaseCause::GrantExpired)
    );
    let reservation = finished_reservation(
        &stack,
        CommitmentKind::Grant,
        &grant_id,
        ReservationStatus::Released,
        0,
    )
    .await?;
    assert_eq!(
        (reservation.reserved_ore, reservation.released_ore),
        (GRANTED_ORE, GRANTED_ORE)
    );

    // Applications shows the grant EXPIRED (its contract: ACTIVE ─GrantExpired─▶ EXPIRED).
    grant_in(&stack, &application.application_id, GrantStatus::Expired).await?;

    // Nothing reaches the expired grant any more: no claim, no cancellation (which would release
    // the money a second time).
    let employer = stack.people().employer(&[EMPLOYER_ORGNR]);
    let claim = stack
        .refunds()
        .await?
        .submit_refund_claim(with_bearer(
            requests::refund_claim(&grant_id, INVOICED_ORE, &today()),
            &employer,
        ))
        .await;
    assert_refused(claim, Code::FailedPrecondition, "GRANT_EXPIRED");
    let cancellation = stack
        .applications()
        .await?
        .cancel_grant(with_bearer(
            requests::employer_cancellation(&application.application_id),
            &employer,
        ))
        .await;
    assert_refused(cancellation, Code::FailedPrecondition, "GRANT_EXPIRED");

    // The job keeps running; a grant expires once and its money is released once.
    tokio::time::sleep(EXPIRY_JOB_RUNS).await;
    assert_eq!(
        stack
            .events
            .count(|event: &v1::GrantExpired| event.grant_id == grant_id),
        1
    );
    assert_eq!(
        stack
            .events
            .count(|event: &v1::FundsReleased| for_grant(&event.commitment, &grant_id)),
        1
    );
    let types = stack.events.assert_case_story(
        &application.case_id,
        &[
            "GrantRequested",
            "FundsReserved",
            "GrantApproved",
            "GrantExpired",
            "FundsReleased",
        ],
    );
    assert!(
        !types.iter().any(|seen| seen == "RefundClaimSubmitted"),
        "{types:?}"
    );

    assert_money_kept(&stack).await?;
    assert_no_fodselsnummer(&stack, &[&fodselsnummer]);
    Ok(())
}

/// A late claim. A grant is made through the real flow and first claimed on time: LATE_CLAIM is
/// refused as a reason for that claim (CLAIM_NOT_LATE), and it is rejected for another reason,
/// which opens the grant again. Then time is simulated, not waited for: the test moves the
/// grant's refund deadline in refunds' own database (see [`move_refund_deadline`]) to
/// `LATE_DAYS` days before today — within the grace days, so the expiry job leaves it alone. A
/// new claim is accepted, flagged late with its days late; a LATE_CLAIM rejection may now be
/// recommended, the decider returns it, and the approval recommended instead is confirmed:
/// RefundApproved (late) → FundsDisbursed + the remainder released → PaymentCompleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_claim_is_accepted_flagged_and_paid() -> anyhow::Result<()> {
    let stack = SystemStack::start("e2e_late_claim").await?;
    set_appropriation(&stack, PLENTY_ORE).await?;
    let fodselsnummer = synthetic_fodselsnummer(9, 9, 91, 0);
    let (application, grant) = claimable_grant_for(&stack, &fodselsnummer).await?;
    let grant_id = grant.grant_id.clone();
    let grace = grace_days(&grant)?;
    assert!(
        grace > LATE_DAYS,
        "the test needs more than {LATE_DAYS} grace days: {grant:?}"
    );
    let clients = stack.clients().await?;
    let mut refunds = stack.refunds().await?;
    let caseworker = stack.people().caseworker();
    let decider = stack.people().decider();

    // On time: LATE_CLAIM is not a reason for this claim; rejected for an invalid invoice.
    let on_time = submit_claim(&stack, &grant_id).await?;
    assert_eq!((on_time.late, on_time.days_late), (false, 0));
    let refused = refunds
        .recommend_refund_decision(with_bearer(
            requests::refund_rejection(&on_time.claim_id, RefundRejectionReason::LateClaim),
            &caseworker,
        ))
        .await;
    assert_refused(refused, Code::FailedPrecondition, "CLAIM_NOT_LATE");
    let recommended = recommend_refund(
        &clients,
        &caseworker,
        requests::refund_rejection(&on_time.claim_id, RefundRejectionReason::InvoiceInvalid),
    )
    .await?;
    let rejected = decide_refund(
        &clients,
        &decider,
        requests::refund_verdict(&recommended, v1::DeciderVerdict::Confirm, ""),
    )
    .await?;
    assert_eq!(rejected.status(), RefundClaimStatus::Rejected);
    let event = stack
        .events
        .wait_for(|event: &v1::RefundRejected| event.claim_id == on_time.claim_id)
        .await?;
    assert_eq!(
        (event.reason(), event.late),
        (RefundRejectionReason::InvoiceInvalid, false)
    );
    assert_eq!(
        claimable_grant(&stack, &grant_id).await?.status(),
        ClaimableGrantStatus::Active,
        "a rejection opens the grant again"
    );
    grant_in(&stack, &application.application_id, GrantStatus::Active).await?;

    // The deadline passes, but not the grace days: the expiry job leaves the grant alone.
    let deadline = oslo_today() - time::Duration::days(LATE_DAYS);
    move_refund_deadline(&stack, &grant_id, deadline).await?;
    tokio::time::sleep(EXPIRY_JOB_RUNS).await;
    let moved = claimable_grant(&stack, &grant_id).await?;
    assert_eq!(moved.status(), ClaimableGrantStatus::Active, "{moved:?}");
    assert_eq!(moved.refund_deadline_date, iso(deadline));
    assert_eq!(
        moved.last_claim_date,
        iso(deadline + time::Duration::days(grace))
    );
    assert_eq!(
        stack
            .events
            .count(|event: &v1::GrantExpired| event.grant_id == grant_id),
        0
    );

    // SubmitRefundClaim after the deadline: accepted, flagged late.
    let late = submit_claim(&stack, &grant_id).await?;
    let claim_id = late.claim_id.clone();
    assert_eq!(
        (late.late, i64::from(late.days_late)),
        (true, LATE_DAYS),
        "{late:?}"
    );
    assert_eq!(late.refund_deadline_date, iso(deadline));
    assert_eq!(late.payable_amount.unwrap_or_default().ore, INVOICED_ORE);
    let submitted = stack
        .events
        .wait_for(|event: &v1::RefundClaimSubmitted| event.claim_id == claim_id)
        .await?;
    assert_eq!(
        (submitted.late, i64::from(submitted.days_late)),
        (true, LATE_DAYS)
    );
    assert_eq!(submitted.refund_deadline_date, iso(deadline));
    assert_eq!(submitted.submitted_date, today());

    // LATE_CLAIM may be recommended for it; the decider returns that, and confirms an approval.
    let recommended = recommend_refund(
        &clients,
        &caseworker,
        requests::refund_rejection(&claim_id, RefundRejectionReason::LateClaim),
    )
    .await?;
    assert_eq!(recommended.status(), RefundClaimStatus::Recommended);
    let returned = decide_refund(
        &clients,
        &decider,
        requests::refund_verdict(
            &recommended,
            v1::DeciderVerdict::Return,
            "Forsinkelsen er kort og begrunnet.",
        ),
    )
    .await?;
    assert_eq!(returned.status(), RefundClaimStatus::Submitted);
    let recommended = recommend_refund(
        &clients,
        &caseworker,
        requests::refund_approval(&claim_id, INVOICED_ORE),
    )
    .await?;
    assert_eq!(recommended.recommendations.len(), 2, "{recommended:?}");
    let approved = decide_refund(
        &clients,
        &decider,
        requests::refund_verdict(&recommended, v1::DeciderVerdict::Confirm, ""),
    )
    .await?;
    assert_eq!(approved.status(), RefundClaimStatus::Approved);
    assert!(approved.late, "the flag stays with the claim");
    assert_eq!(approved.payout_amount.unwrap_or_default().ore, INVOICED_ORE);

    // RefundApproved (late) → budget disburses the payout and releases the rest → paid.
    let (refund, _, _) =
        assert_paid_out(&stack, &application.application_id, &grant_id, &claim_id).await?;
    assert!(refund.late);
    assert_eq!(
        stack
            .events
            .count(|event: &v1::RefundClaimSubmitted| event.grant_id == grant_id),
        2,
        "the rejected claim and the late one"
    );
    assert_eq!(
        stack
            .events
            .count(|event: &v1::GrantExpired| event.grant_id == grant_id),
        0,
        "a grant within its grace days never expires"
    );

    assert_money_kept(&stack).await?;
    assert_no_fodselsnummer(&stack, &[&fodselsnummer]);
    Ok(())
}
