//! The regular grant flow's happy path, one case to payment: a case routed REGULAR (the
//! employer's own expert, Lillehammer) → the employer applies → the caseworker reviews the five
//! conditions and recommends a grant → the decider confirms → budget reserves (GRANTED) → the
//! employer claims the refund → recommended and approved by the same two people → budget
//! disburses the payout and releases the rest → the payment system answers.
//!
//! Any answer that is not what the contract says at that step ends the walk with an error. The
//! steps' reads and waits are public for the tests that leave the happy path.

use anyhow::{Context, ensure};
use ekb_proto::v1::{self, ApplicationStatus, RefundClaimStatus, RefundPaymentStatus};

use super::{
    Clients, Narrator, People, Step,
    both_flows::{open_case, settled},
    requests,
    waits::{answer, until, when_known},
};
use crate::{
    fixtures::{EMPLOYER_ORGNR, LILLEHAMMER, case_facts},
    services::with_bearer,
};

/// What the employer estimates the assistance costs, gross.
pub const ESTIMATED_ORE: i64 = 2_000_000;
/// What is recommended and granted, gross (below the estimate and the max rate).
pub const GRANTED_ORE: i64 = 1_800_000;
/// What the expert's invoice came to, gross: below the grant, so the rest is released.
pub const INVOICED_ORE: i64 = 1_500_000;
// The grant stays within the estimate, and the invoice below the grant, so the rest is released.
const _: () = assert!(INVOICED_ORE < GRANTED_ORE && GRANTED_ORE <= ESTIMATED_ORE);

/// Where the walk's case is, and the expert its employer chose.
pub const PLACE: &str = "3405 Lillehammer, own expert";

/// The case of the walk: its employee and the day it happens on.
#[derive(Debug, Clone, Copy)]
pub struct RegularCase<'a> {
    /// The employee's fødselsnummer (synthetic: the services must accept them).
    pub employee: &'a str,
    /// Today, `YYYY-MM-DD`: the case date, the planned start, the invoice and the assistance.
    pub today: &'a str,
}

/// Where the walk ended: everything paid.
#[derive(Debug, Clone)]
pub struct RegularPaid {
    /// The case, routed REGULAR.
    pub case: v1::Case,
    /// The application, GRANTED.
    pub application: v1::Application,
    /// The claim, APPROVED.
    pub claim: v1::RefundClaim,
    /// Budget's reservation for the grant, SETTLED.
    pub reservation: v1::Reservation,
    /// The claim's payment as the payment system left it (PAID or FAILED).
    pub payment: v1::RefundPayment,
}

impl RegularPaid {
    /// The grant's id.
    pub fn grant_id(&self) -> &str {
        self.application
            .grant
            .as_ref()
            .map_or("", |grant| grant.grant_id.as_str())
    }
}

/// Walks `case` to payment, telling `narrator` each step.
pub async fn walk(
    clients: &Clients,
    people: &People<'_>,
    case: RegularCase<'_>,
    narrator: &mut impl Narrator,
) -> anyhow::Result<RegularPaid> {
    let today = case.today;
    let opened = open_case(clients, people, case_facts(LILLEHAMMER, None, today)).await?;
    narrator
        .step(Step::CaseOpened {
            case: &opened,
            place: PLACE,
        })
        .await?;
    let flow = opened.decision.unwrap_or_default().flow();
    ensure!(
        flow == v1::Flow::Regular,
        "the case was routed {flow:?}, not REGULAR"
    );

    let submitted =
        submit_application(clients, people, &opened.case_id, case.employee, today).await?;
    narrator
        .step(Step::ApplicationSubmitted {
            application: &submitted,
        })
        .await?;
    let application_id = submitted.application_id.clone();

    let caseworker = people.caseworker();
    let recommended = recommend_grant(clients, &caseworker, &application_id, GRANTED_ORE).await?;
    narrator
        .step(Step::GrantRecommended {
            application: &recommended,
        })
        .await?;

    let decided = decide(
        clients,
        &people.decider(),
        &application_id,
        requests::current_version(&recommended.recommendations),
    )
    .await?;
    ensure!(
        decided.status() == ApplicationStatus::GrantPendingFunds,
        "the decision left the application {}",
        status_name(decided.status())
    );
    narrator
        .step(Step::ApplicationDecided {
            application: &decided,
        })
        .await?;

    let granted = until("budget's answer to the grant (FundsReserved)", || async {
        let application = application(clients, &caseworker, &application_id).await?;
        match application.status() {
            ApplicationStatus::GrantPendingFunds => Ok(None),
            ApplicationStatus::Granted => Ok(Some(application)),
            other => Err(anyhow::anyhow!(
                "the application went {} instead of GRANTED ({:?})",
                status_name(other),
                application.rejection
            )),
        }
    })
    .await?;
    narrator
        .step(Step::Granted {
            application: &granted,
        })
        .await?;
    let grant_id = granted.grant.clone().unwrap_or_default().grant_id;

    let submitted = submit_claim(clients, people, &grant_id, today).await?;
    narrator
        .step(Step::ClaimSubmitted { claim: &submitted })
        .await?;

    let recommended = recommend_refund(
        clients,
        &caseworker,
        requests::refund_approval(&submitted.claim_id, INVOICED_ORE),
    )
    .await?;
    narrator
        .step(Step::ClaimRecommended {
            claim: &recommended,
        })
        .await?;
    let approved = decide_refund(
        clients,
        &people.decider(),
        requests::refund_verdict(&recommended, v1::DeciderVerdict::Confirm, ""),
    )
    .await?;
    ensure!(
        approved.status() == RefundClaimStatus::Approved,
        "the claim is {:?}, not APPROVED",
        approved.status()
    );
    narrator
        .step(Step::ClaimApproved { claim: &approved })
        .await?;

    let reservation = settled(
        clients,
        narrator,
        &caseworker,
        v1::CommitmentKind::Grant,
        &grant_id,
    )
    .await?;

    let claim_id = approved.claim_id.clone();
    let payment = until("the payment system's answer (PaymentCompleted)", || async {
        let payment = claim(clients, &caseworker, &claim_id)
            .await?
            .payment
            .unwrap_or_default();
        Ok(matches!(
            payment.status(),
            RefundPaymentStatus::Paid | RefundPaymentStatus::Failed
        )
        .then_some(payment))
    })
    .await?;
    narrator
        .step(Step::RefundPaid { payment: &payment })
        .await?;
    Ok(RegularPaid {
        case: opened,
        application: granted,
        claim: approved,
        reservation,
        payment,
    })
}

/// The employer ([`EMPLOYER_ORGNR`]) applies for `case_id` about `employee`, starting `today`,
/// retrying while applications has not the case yet; returns the application SUBMITTED.
pub async fn submit_application(
    clients: &Clients,
    people: &People<'_>,
    case_id: &str,
    employee: &str,
    today: &str,
) -> anyhow::Result<v1::Application> {
    let employer = people.employer(&[EMPLOYER_ORGNR]);
    let request = requests::application(case_id, employee, today, ESTIMATED_ORE);
    let response = when_known(
        "SubmitApplication",
        "applications to know the case (CaseRouted)",
        || {
            let mut applications = clients.applications.clone();
            let request = with_bearer(request.clone(), &employer);
            async move { applications.submit_application(request).await }
        },
    )
    .await?;
    ensure!(response.created, "SubmitApplication created nothing");
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

/// The caseworker (`token`) starts the review, assesses all five conditions as met and
/// recommends a grant of `amount_ore`; returns the application RECOMMENDED.
pub async fn recommend_grant(
    clients: &Clients,
    token: &str,
    application_id: &str,
    amount_ore: i64,
) -> anyhow::Result<v1::Application> {
    let mut applications = clients.applications.clone();
    let review = with_bearer(requests::start_review(application_id), token);
    answer("StartReview", applications.start_review(review).await)?;
    for condition in requests::CONDITIONS {
        let assessment = with_bearer(requests::condition_met(application_id, condition), token);
        answer(
            "AssessCondition",
            applications.assess_condition(assessment).await,
        )?;
    }
    let recommendation = with_bearer(
        requests::grant_recommendation(application_id, amount_ore),
        token,
    );
    let recommended = answer(
        "RecommendDecision",
        applications.recommend_decision(recommendation).await,
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

/// The decider (`token`) confirms recommendation `version`; returns the application as the
/// decision left it.
pub async fn decide(
    clients: &Clients,
    token: &str,
    application_id: &str,
    version: i32,
) -> anyhow::Result<v1::Application> {
    let request = with_bearer(requests::confirmation(application_id, version), token);
    answer(
        "DecideApplication",
        clients
            .applications
            .clone()
            .decide_application(request)
            .await,
    )?
    .application
    .context("DecideApplication answered without the application")
}

/// Application `application_id` as `token`'s holder reads it for case processing.
pub async fn application(
    clients: &Clients,
    token: &str,
    application_id: &str,
) -> anyhow::Result<v1::Application> {
    let request = with_bearer(requests::get_application(application_id), token);
    answer(
        "GetApplication",
        clients.applications.clone().get_application(request).await,
    )?
    .application
    .context("GetApplication answered without the application")
}

/// Waits until application `application_id` satisfies `done` (`what`), and returns it.
pub async fn application_when(
    clients: &Clients,
    token: &str,
    application_id: &str,
    what: &str,
    done: impl Fn(&v1::Application) -> bool,
) -> anyhow::Result<v1::Application> {
    until(what, || async {
        let found = application(clients, token, application_id).await?;
        Ok(done(&found).then_some(found))
    })
    .await
}

/// The employer ([`EMPLOYER_ORGNR`]) claims [`INVOICED_ORE`] against `grant_id` (invoiced and
/// given `today`), retrying while refunds has not the grant yet; returns the claim SUBMITTED.
pub async fn submit_claim(
    clients: &Clients,
    people: &People<'_>,
    grant_id: &str,
    today: &str,
) -> anyhow::Result<v1::RefundClaim> {
    let employer = people.employer(&[EMPLOYER_ORGNR]);
    let request = requests::refund_claim(grant_id, INVOICED_ORE, today);
    let response = when_known(
        "SubmitRefundClaim",
        "refunds to know the grant (GrantApproved)",
        || {
            let mut refunds = clients.refunds.clone();
            let request = with_bearer(request.clone(), &employer);
            async move { refunds.submit_refund_claim(request).await }
        },
    )
    .await?;
    ensure!(response.created, "SubmitRefundClaim created nothing");
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

/// The caseworker (`token`) recommends `request`; returns the claim as refunds left it.
pub async fn recommend_refund(
    clients: &Clients,
    token: &str,
    request: v1::RecommendRefundDecisionRequest,
) -> anyhow::Result<v1::RefundClaim> {
    let request = with_bearer(request, token);
    answer(
        "RecommendRefundDecision",
        clients
            .refunds
            .clone()
            .recommend_refund_decision(request)
            .await,
    )?
    .claim
    .context("RecommendRefundDecision answered without the claim")
}

/// The decider (`token`) decides with `request`; returns the claim as refunds left it.
pub async fn decide_refund(
    clients: &Clients,
    token: &str,
    request: v1::DecideRefundClaimRequest,
) -> anyhow::Result<v1::RefundClaim> {
    let request = with_bearer(request, token);
    answer(
        "DecideRefundClaim",
        clients.refunds.clone().decide_refund_claim(request).await,
    )?
    .claim
    .context("DecideRefundClaim answered without the claim")
}

/// Claim `claim_id` as `token`'s holder reads it for case processing.
pub async fn claim(
    clients: &Clients,
    token: &str,
    claim_id: &str,
) -> anyhow::Result<v1::RefundClaim> {
    let request = with_bearer(requests::get_claim(claim_id), token);
    answer(
        "GetRefundClaim",
        clients.refunds.clone().get_refund_claim(request).await,
    )?
    .claim
    .context("GetRefundClaim answered without the claim")
}

/// `APPLICATION_STATUS_GRANTED` → `GRANTED`.
pub fn status_name(status: ApplicationStatus) -> &'static str {
    let name = status.as_str_name();
    name.strip_prefix("APPLICATION_STATUS_").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_named_without_their_prefix() {
        assert_eq!(status_name(ApplicationStatus::Granted), "GRANTED");
    }
}
