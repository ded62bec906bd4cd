//! The steps of the regular flow as the simulator's people take them, one RPC (or one wait for
//! an event's effect) each, with the case's own employer and the callers' cached tokens.
//!
//! Why public: a pilot case that falls back to the regular flow continues here on the same
//! case, so the pilot's paths call these steps (or [`super::walk`]) rather than write them again.
//! Where the scenario library has the step as a simulated case needs it (the five conditions
//! and the recommendation, the decision, the refund decision) it is called; the rest differ
//! only in whose organisation and which days, and are here.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use ekb_domain::parse_iso_date;
use ekb_proto::v1::{
    self, ApplicationStatus, ClaimableGrantStatus, RefundClaimStatus, RefundPaymentStatus,
    ReservationStatus,
};
use ekb_testkit::{
    scenarios::{
        both_flows::reservation,
        regular::{self as library, status_name},
        requests as library_requests,
        waits::{STEP_TIMEOUT, answer, refusal, until, when_known},
    },
    services::with_bearer,
    status::reason,
};
use time::Date;

use super::{requests, schedule::GrantDates};
use crate::{
    plan::CasePlan,
    timeline::{Caller, Sim},
};

/// How often a step looks again for an event's effect.
const POLL: Duration = Duration::from_millis(150);
/// How many simulated days a grant may wait for its budget year's appropriation (budget keeps
/// the request PENDING until one is set) before the case gives up.
const MAX_DAYS_WITHOUT_APPROPRIATION: u32 = 60;

/// Budget's answer to a decided grant, as applications shows it.
#[derive(Debug, Clone)]
pub enum Funds {
    /// FundsReserved: the application is GRANTED.
    Granted(v1::Application),
    /// FundsDenied: the application is FUNDS_DENIED (rejected for lack of funds, not final).
    Denied(v1::Application),
}

/// Opens `case` at routing on the simulated day, as the NAV system that takes in cases, and
/// checks that routing sent it to `flow` (either flow's walk starts here).
pub async fn open_case(sim: &Sim, case: &CasePlan, flow: v1::Flow) -> anyhow::Result<v1::Case> {
    let request = with_bearer(
        ekb_testkit::fixtures::open_case(requests::case_facts(case, sim.today())),
        &sim.token(&Caller::System),
    );
    let opened = answer(
        "OpenCase",
        sim.clients.routing.clone().open_case(request).await,
    )?
    .case
    .context("OpenCase answered without the case")?;
    let decision = opened.decision.unwrap_or_default();
    ensure!(
        decision.flow() == flow,
        "routing sent case {} to {:?} ({}), not {flow:?}: check the pilot's agreements and \
         routing's pilot counties and period",
        case.number,
        decision.flow(),
        decision.reason().as_str_name()
    );
    Ok(opened)
}

/// `case`'s employer applies for `case_id` in `area`, the assistance planned from
/// `planned_start`, estimated at `estimated_ore`; returns the application SUBMITTED. Retries
/// while applications has not had the case (UNAVAILABLE), and while it still holds a case that
/// fell back from the pilot as a pilot case (CASE_IN_PILOT_FLOW until CaseFlowChanged arrives).
pub async fn submit_application(
    sim: &Sim,
    case: &CasePlan,
    case_id: &str,
    area: v1::CompetenceArea,
    planned_start: Date,
    estimated_ore: i64,
) -> anyhow::Result<v1::Application> {
    let token = sim.token(&Caller::Employer(case.employer.clone()));
    let request = requests::application(case, case_id, area, planned_start, estimated_ore);
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let response = loop {
        let call = when_known(
            "SubmitApplication",
            "applications to know the case (CaseRouted)",
            || {
                let mut applications = sim.clients.applications.clone();
                let request = with_bearer(request.clone(), &token);
                async move { applications.submit_application(request).await }
            },
        )
        .await;
        match call {
            Err(error)
                if error.to_string().contains("CASE_IN_PILOT_FLOW")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(POLL).await;
            }
            result => break result?,
        }
    };
    let application = response
        .application
        .context("SubmitApplication answered without the application")?;
    ensure!(
        application.status() == ApplicationStatus::Submitted,
        "the new application is {}",
        status_name(application.status())
    );
    Ok(application)
}

/// The caseworker starts the review of `application_id`.
pub async fn start_review(sim: &Sim, application_id: &str) -> anyhow::Result<v1::Application> {
    let request = with_bearer(
        library_requests::start_review(application_id),
        &sim.token(&Caller::Caseworker),
    );
    answer(
        "StartReview",
        sim.clients.applications.clone().start_review(request).await,
    )?
    .application
    .context("StartReview answered without the application")
}

/// The caseworker reviews `application_id`, finds all five conditions met and recommends a
/// grant of `amount_ore`; returns the application RECOMMENDED.
pub async fn recommend_grant(
    sim: &Sim,
    application_id: &str,
    amount_ore: i64,
) -> anyhow::Result<v1::Application> {
    library::recommend_grant(
        &sim.clients,
        &sim.token(&Caller::Caseworker),
        application_id,
        amount_ore,
    )
    .await
}

/// The caseworker reviews `application_id`, finds the sick-leave history not documented and
/// recommends a rejection; returns the application RECOMMENDED.
pub async fn recommend_rejection(
    sim: &Sim,
    application_id: &str,
) -> anyhow::Result<v1::Application> {
    let token = sim.token(&Caller::Caseworker);
    let mut applications = sim.clients.applications.clone();
    start_review(sim, application_id).await?;
    for condition in library_requests::CONDITIONS {
        let assessment = if condition == v1::ApplicationCondition::SickLeaveHistory {
            requests::condition_not_met(application_id, condition)
        } else {
            library_requests::condition_met(application_id, condition)
        };
        answer(
            "AssessCondition",
            applications
                .assess_condition(with_bearer(assessment, &token))
                .await,
        )?;
    }
    let recommended = answer(
        "RecommendDecision",
        applications
            .recommend_decision(with_bearer(
                requests::rejection_recommendation(application_id),
                &token,
            ))
            .await,
    )?
    .application
    .context("RecommendDecision answered without the application")?;
    ensure!(
        recommended.status() == ApplicationStatus::Recommended,
        "the recommendation left the application {}",
        status_name(recommended.status())
    );
    Ok(recommended)
}

/// The decider confirms the current recommendation on `recommended`; returns the application
/// as the decision left it (GRANT_PENDING_FUNDS or REJECTED).
pub async fn decide(sim: &Sim, recommended: &v1::Application) -> anyhow::Result<v1::Application> {
    library::decide(
        &sim.clients,
        &sim.token(&Caller::Decider),
        &recommended.application_id,
        library_requests::current_version(&recommended.recommendations),
    )
    .await
}

/// Waits for budget's answer to the grant of `application_id` (GRANT_PENDING_FUNDS after the
/// decision), then for applications to apply it. Budget is polled: its reads leave no audit
/// entry, while every read of the application does. While budget holds the request PENDING —
/// no appropriation for its budget year yet — the case waits for the next simulated day (the
/// day stands still while it polls), for at most [`MAX_DAYS_WITHOUT_APPROPRIATION`] days.
pub async fn funds_answer(sim: &Sim, application_id: &str) -> anyhow::Result<Funds> {
    let token = sim.token(&Caller::Caseworker);
    let decided = library::application(&sim.clients, &token, application_id).await?;
    match decided.status() {
        ApplicationStatus::Granted => return Ok(Funds::Granted(decided)),
        ApplicationStatus::FundsDenied => return Ok(Funds::Denied(decided)),
        _ => {}
    }
    let grant = decided.grant.clone().unwrap_or_default();
    ensure!(
        decided.status() == ApplicationStatus::GrantPendingFunds && !grant.grant_id.is_empty(),
        "the application is {}, not awaiting budget's answer to a grant",
        status_name(decided.status())
    );
    let mut days_waited = 0;
    let mut deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let status = reservation(
            &sim.clients,
            &token,
            v1::CommitmentKind::Grant,
            &grant.grant_id,
        )
        .await?
        .map(|found| found.status());
        match status {
            Some(ReservationStatus::Pending) => {
                ensure!(
                    days_waited < MAX_DAYS_WITHOUT_APPROPRIATION,
                    "budget has had no appropriation for budget year {} for {days_waited} days",
                    grant.budget_year
                );
                sim.after_days(1).await;
                days_waited += 1;
                deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
            }
            Some(_) => break,
            None if tokio::time::Instant::now() >= deadline => {
                bail!("budget did not have the grant's request within {STEP_TIMEOUT:?}")
            }
            None => tokio::time::sleep(POLL).await,
        }
    }
    until("applications to apply budget's answer", || async {
        let found = library::application(&sim.clients, &token, application_id).await?;
        match found.status() {
            ApplicationStatus::Granted => Ok(Some(Funds::Granted(found))),
            ApplicationStatus::FundsDenied => Ok(Some(Funds::Denied(found))),
            ApplicationStatus::GrantPendingFunds => Ok(None),
            other => Err(anyhow::anyhow!(
                "the application went {} while awaiting budget's answer",
                status_name(other)
            )),
        }
    })
    .await
}

/// Waits until refunds' expiry job has expired grant `grant_id`, unclaimed after its last claim
/// day: parks until the day it expires on (`expires_on`), or the next day if that has come
/// already — the job runs when the clock moves, so it must move after this case's last step —
/// and polls.
pub async fn expired(
    sim: &Sim,
    grant_id: &str,
    expires_on: Date,
) -> anyhow::Result<v1::GetClaimableGrantResponse> {
    sim.on(expires_on.max(sim.today() + time::Duration::days(1)))
        .await;
    grant_in(sim, grant_id, ClaimableGrantStatus::Expired).await
}

/// The decider makes the funds denial of `application_id` final; returns it REJECTED.
pub async fn reject_for_lack_of_funds(
    sim: &Sim,
    application_id: &str,
) -> anyhow::Result<v1::Application> {
    let request = with_bearer(
        requests::final_funds_rejection(application_id),
        &sim.token(&Caller::Decider),
    );
    answer(
        "RejectForLackOfFunds",
        sim.clients
            .applications
            .clone()
            .reject_for_lack_of_funds(request)
            .await,
    )?
    .application
    .context("RejectForLackOfFunds answered without the application")
}

/// `case`'s employer withdraws `application_id`; returns it WITHDRAWN.
pub async fn withdraw(
    sim: &Sim,
    case: &CasePlan,
    application_id: &str,
) -> anyhow::Result<v1::Application> {
    let request = with_bearer(
        requests::withdrawal(application_id),
        &sim.token(&Caller::Employer(case.employer.clone())),
    );
    answer(
        "WithdrawApplication",
        sim.clients
            .applications
            .clone()
            .withdraw_application(request)
            .await,
    )?
    .application
    .context("WithdrawApplication answered without the application")
}

/// `case`'s employer asks to cancel the unused grant of `application_id`; returns the
/// application, its grant CANCELLATION_REQUESTED (refunds answers by event).
pub async fn cancel_grant(
    sim: &Sim,
    case: &CasePlan,
    application_id: &str,
) -> anyhow::Result<v1::Application> {
    let request = with_bearer(
        library_requests::employer_cancellation(application_id),
        &sim.token(&Caller::Employer(case.employer.clone())),
    );
    answer(
        "CancelGrant",
        sim.clients.applications.clone().cancel_grant(request).await,
    )?
    .application
    .context("CancelGrant answered without the application")
}

/// Refunds' view of grant `grant_id` with its claims, read by the caseworker; `None` while
/// refunds has not had GrantApproved.
pub async fn claimable_grant(
    sim: &Sim,
    grant_id: &str,
) -> anyhow::Result<Option<v1::GetClaimableGrantResponse>> {
    let request = with_bearer(
        library_requests::get_claimable_grant(grant_id),
        &sim.token(&Caller::Caseworker),
    );
    match sim
        .clients
        .refunds
        .clone()
        .get_claimable_grant(request)
        .await
    {
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        answered => answer("GetClaimableGrant", answered).map(Some),
    }
}

/// Waits until refunds' grant `grant_id` satisfies `done` (`what`), and returns it.
pub async fn grant_when(
    sim: &Sim,
    grant_id: &str,
    what: &str,
    done: impl Fn(&v1::ClaimableGrant) -> bool,
) -> anyhow::Result<v1::GetClaimableGrantResponse> {
    until(what, || async {
        let found = claimable_grant(sim, grant_id).await?;
        Ok(found.filter(|found| found.grant.as_ref().is_some_and(&done)))
    })
    .await
}

/// Waits until refunds' grant `grant_id` is in `status`.
pub async fn grant_in(
    sim: &Sim,
    grant_id: &str,
    status: ClaimableGrantStatus,
) -> anyhow::Result<v1::GetClaimableGrantResponse> {
    let what = format!(
        "refunds to hold the grant {}",
        status
            .as_str_name()
            .trim_start_matches("CLAIMABLE_GRANT_STATUS_")
    );
    grant_when(sim, grant_id, &what, |grant| grant.status() == status).await
}

/// The dates of `granted`'s grant a claim is timed by: grant date, planned start and deadline
/// from applications, the last claim date from refunds (waiting until refunds knows the grant).
pub async fn grant_dates(sim: &Sim, granted: &v1::Application) -> anyhow::Result<GrantDates> {
    let grant = granted.grant.clone().unwrap_or_default();
    let known = grant_when(
        sim,
        &grant.grant_id,
        "refunds to know the grant (GrantApproved)",
        |_| true,
    )
    .await?
    .grant
    .unwrap_or_default();
    let planned_start = granted
        .details
        .as_ref()
        .map(|details| details.planned_start_date.as_str())
        .unwrap_or_default();
    Ok(GrantDates {
        grant_date: date("grant date", &grant.grant_date)?,
        planned_start: date("planned start date", planned_start)?,
        deadline: date("refund deadline", &known.refund_deadline_date)?,
        last_claim_date: date("last claim date", &known.last_claim_date)?,
    })
}

/// A contract date, or an error naming `what`.
fn date(what: &str, text: &str) -> anyhow::Result<Date> {
    parse_iso_date(text).with_context(|| format!("the {what} {text:?} is not a date"))
}

/// The caseworker extends grant `grant_id`'s refund deadline to `new_deadline`.
pub async fn extend_deadline(
    sim: &Sim,
    grant_id: &str,
    new_deadline: Date,
) -> anyhow::Result<v1::ClaimableGrant> {
    let request = with_bearer(
        requests::extension(grant_id, new_deadline),
        &sim.token(&Caller::Caseworker),
    );
    answer(
        "ExtendRefundDeadline",
        sim.clients
            .refunds
            .clone()
            .extend_refund_deadline(request)
            .await,
    )?
    .grant
    .context("ExtendRefundDeadline answered without the grant")
}

/// `case`'s employer submits `request` (a claim against a grant refunds may not know yet);
/// returns the claim SUBMITTED.
pub async fn submit_claim(
    sim: &Sim,
    case: &CasePlan,
    request: v1::SubmitRefundClaimRequest,
) -> anyhow::Result<v1::RefundClaim> {
    let token = sim.token(&Caller::Employer(case.employer.clone()));
    let response = when_known(
        "SubmitRefundClaim",
        "refunds to know the grant (GrantApproved)",
        || {
            let mut refunds = sim.clients.refunds.clone();
            let request = with_bearer(request.clone(), &token);
            async move { refunds.submit_refund_claim(request).await }
        },
    )
    .await?;
    let claim = response
        .claim
        .context("SubmitRefundClaim answered without the claim")?;
    ensure!(
        claim.status() == RefundClaimStatus::Submitted,
        "the new claim is {:?}",
        claim.status()
    );
    Ok(claim)
}

/// The caseworker recommends approving `claim` with its payable amount and the decider
/// confirms; returns the claim APPROVED (its payment PENDING).
pub async fn approve_claim(sim: &Sim, claim: &v1::RefundClaim) -> anyhow::Result<v1::RefundClaim> {
    let payable = claim.payable_amount.unwrap_or_default().ore;
    let recommendation = library_requests::refund_approval(&claim.claim_id, payable);
    decide_claim(sim, recommendation, RefundClaimStatus::Approved).await
}

/// The caseworker recommends rejecting the late `claim` for its lateness and the decider
/// confirms; returns the claim REJECTED (the grant open again until it expires).
pub async fn refuse_late_claim(
    sim: &Sim,
    claim: &v1::RefundClaim,
) -> anyhow::Result<v1::RefundClaim> {
    let recommendation =
        library_requests::refund_rejection(&claim.claim_id, v1::RefundRejectionReason::LateClaim);
    decide_claim(sim, recommendation, RefundClaimStatus::Rejected).await
}

/// Four eyes on a claim: the caseworker recommends `recommendation`, the decider confirms;
/// fails unless the claim ends `expected`.
async fn decide_claim(
    sim: &Sim,
    recommendation: v1::RecommendRefundDecisionRequest,
    expected: RefundClaimStatus,
) -> anyhow::Result<v1::RefundClaim> {
    let recommended = library::recommend_refund(
        &sim.clients,
        &sim.token(&Caller::Caseworker),
        recommendation,
    )
    .await?;
    let decided = library::decide_refund(
        &sim.clients,
        &sim.token(&Caller::Decider),
        library_requests::refund_verdict(&recommended, v1::DeciderVerdict::Confirm, ""),
    )
    .await?;
    ensure!(
        decided.status() == expected,
        "the decision left the claim {:?}, not {expected:?}",
        decided.status()
    );
    Ok(decided)
}

/// The claim's payment as refunds holds it, read by the caseworker.
async fn payment(sim: &Sim, claim_id: &str) -> anyhow::Result<v1::RefundPayment> {
    Ok(
        library::claim(&sim.clients, &sim.token(&Caller::Caseworker), claim_id)
            .await?
            .payment
            .unwrap_or_default(),
    )
}

/// The current attempt of claim `claim_id`'s payment, which must await the payment system's
/// answer (PENDING). Already answered means refunds' own fake payment system answered: the
/// simulation needs `payment.fake_outcome = "deferred"` in refunds.
async fn pending_attempt(sim: &Sim, claim_id: &str) -> anyhow::Result<i32> {
    let payment = payment(sim, claim_id).await?;
    ensure!(
        payment.status() == RefundPaymentStatus::Pending,
        "the payment of attempt {} is already {:?}: refunds' fake payment system answered \
         (set EKB__PAYMENT__FAKE_OUTCOME=deferred for refunds, the simulator is the payment \
         system)",
        payment.attempt,
        payment.status()
    );
    Ok(payment.attempt)
}

/// As the payment system: records the current attempt of claim `claim_id` as paid today;
/// returns the claim PAID.
pub async fn record_paid(sim: &Sim, claim_id: &str) -> anyhow::Result<v1::RefundClaim> {
    let attempt = pending_attempt(sim, claim_id).await?;
    let claim = record_outcome(sim, requests::paid(claim_id, attempt, sim.today())).await?;
    let payout = claim.payout_amount.as_ref().map_or(0, |amount| amount.ore);
    sim.record_paid(v1::CommitmentKind::Grant, &claim.grant_id, payout);
    Ok(claim)
}

/// As the payment system: records the current attempt of claim `claim_id` as failed (no
/// refund account); returns the claim, its payment FAILED.
pub async fn record_failed(sim: &Sim, claim_id: &str) -> anyhow::Result<v1::RefundClaim> {
    let attempt = pending_attempt(sim, claim_id).await?;
    record_outcome(sim, requests::failed(claim_id, attempt)).await
}

/// Sends the payment system's outcome `request` to refunds.
async fn record_outcome(
    sim: &Sim,
    request: v1::RecordPaymentOutcomeRequest,
) -> anyhow::Result<v1::RefundClaim> {
    let request = with_bearer(request, &sim.token(&Caller::PaymentSystem));
    let recorded = sim
        .clients
        .refunds
        .clone()
        .record_payment_outcome(request)
        .await;
    if let Err(status) = &recorded
        && reason(status) == "PAYMENT_OUTCOME_CONFLICT"
    {
        bail!(
            "RecordPaymentOutcome: {}: refunds' fake payment system answered first (set \
             EKB__PAYMENT__FAKE_OUTCOME=deferred for refunds)",
            refusal(status)
        );
    }
    answer("RecordPaymentOutcome", recorded)?
        .claim
        .context("RecordPaymentOutcome answered without the claim")
}

/// The caseworker retries the failed payment of claim `claim_id`; returns the claim, its
/// payment PENDING with the next attempt.
pub async fn retry_payment(sim: &Sim, claim_id: &str) -> anyhow::Result<v1::RefundClaim> {
    let request = with_bearer(
        requests::payment_retry(claim_id),
        &sim.token(&Caller::Caseworker),
    );
    answer(
        "RetryPayment",
        sim.clients.refunds.clone().retry_payment(request).await,
    )?
    .claim
    .context("RetryPayment answered without the claim")
}
