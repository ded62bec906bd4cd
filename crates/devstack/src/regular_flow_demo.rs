//! The part of `make run` that walks one case through the regular grant flow to payment,
//! printing each step. The walk itself is the scenario library's
//! (`ekb_testkit::scenarios::regular`), the one the end-to-end tests assert on; this module
//! prints its steps as numbered lines ([`Printer`]).
//!
//! It runs after the budget demo, which sets the year's appropriation when there is none. Data
//! is kept between runs, so each run adds one more case (they show in budget's usage); a kept
//! appropriation set too low by hand stops the walk at the funds request, and the walk then
//! says so instead of refusing to serve (see `demo_callers::stopped`).

use std::future::Future;

use ekb_domain::Money;
use ekb_platform::clock::Clock;
use ekb_proto::v1::RefundPaymentStatus;
use ekb_testkit::{
    fixtures::EMPLOYER_ORGNR,
    issuer::TestIssuer,
    scenarios::{
        Clients, Narrator, People, Step,
        personas::{CASEWORKER, DECIDER},
        regular::{self, ESTIMATED_ORE, GRANTED_ORE, INVOICED_ORE, RegularCase, status_name},
    },
    services::ServiceProcess,
};

use crate::demo_callers::{
    case_opened, oslo_today, settled, step, stopped, synthetic_fodselsnummer,
};

/// Walks one regular case to payment, printing each step; true when the refund was paid.
/// `fresh`: the databases were empty when this run started (a walk that stops is then a fault,
/// otherwise a note).
pub async fn run(
    services: &[ServiceProcess],
    issuer: &TestIssuer,
    fresh: bool,
    clock: &dyn Clock,
) -> anyhow::Result<bool> {
    let clients = Clients::connect(services).await?;
    println!(
        "\nRegular flow, one case to payment (caseworker {CASEWORKER} recommends, decider \
         {DECIDER} decides; tokens from the local issuer):"
    );
    let today = oslo_today(clock);
    let employee = synthetic_fodselsnummer();
    let case = RegularCase {
        employee: &employee,
        today: &today,
    };
    match regular::walk(&clients, &People::new(issuer), case, &mut Printer).await {
        Ok(_) => Ok(true),
        Err(error) => stopped("regular-flow", error, fresh).map(|()| false),
    }
}

/// Prints the regular walk's steps as `make run` shows them, numbered 1 to 9.
pub struct Printer;

impl Printer {
    /// The numbered line for `step`, or `None` for a step shown within another's line.
    pub fn line(step: &Step<'_>) -> Option<(usize, String)> {
        let line = match *step {
            Step::CaseOpened { case, place } => (1, case_opened(case, place)),
            Step::ApplicationSubmitted { application } => (
                2,
                format!(
                    "SubmitApplication (employer {EMPLOYER_ORGNR}): application {} {}, \
                     estimated {}, employee pseudonym {}…",
                    application.application_id,
                    status_name(application.status()),
                    Money::from_ore(ESTIMATED_ORE),
                    application.employee_pseudonym.get(..12).unwrap_or_default()
                ),
            ),
            Step::GrantRecommended { application } => (
                3,
                format!(
                    "StartReview, AssessCondition ×5 (all met), RecommendDecision by \
                     {CASEWORKER}: grant {} → {}",
                    Money::from_ore(GRANTED_ORE),
                    status_name(application.status())
                ),
            ),
            Step::ApplicationDecided { application } => (
                4,
                format!(
                    "DecideApplication by {DECIDER} (CONFIRM): {}, grant {}; GrantRequested \
                     to budget",
                    status_name(application.status()),
                    application.grant.clone().unwrap_or_default().grant_id
                ),
            ),
            Step::Granted { application } => {
                let grant = application.grant.clone().unwrap_or_default();
                (
                    5,
                    format!(
                        "Budget reserved {} (FundsReserved) → GRANTED; GrantApproved to \
                         refunds, refund deadline {}",
                        Money::from_ore(grant.granted_amount.unwrap_or_default().ore),
                        grant.refund_deadline_date
                    ),
                )
            }
            Step::ClaimSubmitted { claim } => (
                6,
                format!(
                    "SubmitRefundClaim (employer): claim {}, invoice {}, payable {}{}",
                    claim.claim_id,
                    Money::from_ore(INVOICED_ORE),
                    Money::from_ore(claim.payable_amount.unwrap_or_default().ore),
                    if claim.late { ", LATE" } else { ", on time" }
                ),
            ),
            Step::ClaimApproved { claim } => (
                7,
                format!(
                    "RecommendRefundDecision by {CASEWORKER}, DecideRefundClaim by {DECIDER}: \
                     APPROVED, payout {}; RefundApproved to budget",
                    Money::from_ore(claim.payout_amount.unwrap_or_default().ore)
                ),
            ),
            Step::Settled { reservation } => (8, settled(reservation)),
            Step::RefundPaid { payment } => (
                9,
                match payment.status() {
                    RefundPaymentStatus::Paid => format!(
                        "Payment (recording fake payment system): PAID {}, reference {} \
                         (PaymentCompleted)",
                        payment.paid_date, payment.payment_reference
                    ),
                    _ => format!(
                        "Payment (recording fake payment system): FAILED {:?} \
                         (PaymentFailed; payment.fake_outcome is set to fail)",
                        payment.failure_reason()
                    ),
                },
            ),
            _ => return None,
        };
        Some(line)
    }
}

impl Narrator for Printer {
    fn step(&mut self, walked: Step<'_>) -> impl Future<Output = anyhow::Result<()>> {
        if let Some((number, text)) = Printer::line(&walked) {
            step(number, text);
        }
        std::future::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use ekb_proto::v1;

    use super::*;

    #[test]
    fn steps_are_numbered_as_make_run_prints_them() {
        let application = v1::Application {
            application_id: "a-1".to_owned(),
            status: v1::ApplicationStatus::Submitted as i32,
            employee_pseudonym: "0123456789abcdef".to_owned(),
            ..v1::Application::default()
        };
        let (number, text) = Printer::line(&Step::ApplicationSubmitted {
            application: &application,
        })
        .expect("a numbered line");
        assert_eq!(number, 2);
        assert!(
            text.contains("application a-1 SUBMITTED") && text.ends_with("0123456789ab…"),
            "{text}"
        );
        let claim = v1::RefundClaim::default();
        assert!(Printer::line(&Step::ClaimRecommended { claim: &claim }).is_none());
    }
}
