//! The part of `make run` that walks one case through the § 9a pilot flow to payment, printing
//! each step: the fixture's suppliers for the area by rank, then a Hamar case from order to
//! payment. The walk itself is the scenario library's (`ekb_testkit::scenarios::pilot`), the one
//! the end-to-end tests assert on; this module prints its steps as numbered lines ([`Printer`]).
//!
//! Data is kept between runs, and every run's order counts against its agreement's monthly
//! capacity, so after some runs in one month the order goes to the next supplier, and at last
//! PlaceOrder refuses (AGREEMENTS_FULL); an agreement registered by hand may rank above the
//! fixture's. The walk prints what it got and, when it cannot go on, why — a note, not a
//! refusal to serve (see `demo_callers::stopped`).

use std::future::Future;

use ekb_domain::Money;
use ekb_platform::clock::Clock;
use ekb_proto::v1::{self, CompetenceArea};
use ekb_testkit::{
    issuer::TestIssuer,
    scenarios::{
        Clients, Narrator, People, Step,
        personas::{CASEWORKER, DECIDER},
        pilot::{self, PilotCase, PilotOutcome, rank_of},
    },
    services::ServiceProcess,
};

use crate::{
    demo_callers::{case_opened, oslo_today, settled, step, stopped, synthetic_fodselsnummer},
    fixture::{self, area_name},
};

/// The area of the walk: two fixture suppliers cover it, ranked 2 and 3.
pub const AREA: CompetenceArea = CompetenceArea::ConflictHandling;

/// Prints the suppliers for [`AREA`] by rank and walks one pilot case to payment; true when the
/// invoice was paid. `fresh`: the databases were empty when this run started.
pub async fn run(
    services: &[ServiceProcess],
    issuer: &TestIssuer,
    fresh: bool,
    clock: &dyn Clock,
) -> anyhow::Result<bool> {
    let clients = Clients::connect(services).await?;
    println!(
        "\nPilot flow (§ 9a), one case to payment (caseworker {CASEWORKER} orders and attests, \
         {DECIDER} approves, the supplier answers and invoices with its own token):"
    );
    let today = oslo_today(clock);
    let employee = synthetic_fodselsnummer();
    let case = PilotCase::hamar(AREA, &employee, &today);
    match pilot::walk(&clients, &People::new(issuer), case, &mut Printer).await {
        // Not a fault: the fixture's agreements are valid for a period, which may be over.
        Ok(PilotOutcome::NoAgreement) => println!(
            "  No agreement covers {} in county {} today (the fixture's are valid {}..{}), so \
             no case goes to the pilot: nothing to walk.",
            area_name(AREA),
            fixture::COUNTY,
            fixture::VALID_FROM,
            fixture::VALID_TO
        ),
        // Not a fault: routing's pilot counties and periods are configuration.
        Ok(PilotOutcome::NotPilot) => {
            println!("  The case went to the regular flow (routing's settings): nothing to walk.")
        }
        Ok(PilotOutcome::Paid(_)) => return Ok(true),
        Err(error) => return stopped("pilot-flow", error, fresh).map(|()| false),
    }
    Ok(false)
}

/// Prints the pilot walk's steps as `make run` shows them: the suppliers, then numbered 1 to 9.
pub struct Printer;

impl Printer {
    /// The lines for `step`: `(Some(number), text)` for a numbered step, `(None, text)` for
    /// the suppliers' list; empty for a step shown within another's line.
    pub fn lines(step: &Step<'_>) -> Vec<(Option<usize>, String)> {
        let numbered = |number: usize, text: String| vec![(Some(number), text)];
        match *step {
            Step::Suppliers {
                agreements,
                county,
                area,
                date,
            } => {
                let mut lines = vec![(
                    None,
                    format!(
                        "  Suppliers for {} in county {county} on {date}, by rank \
                         (FindAgreements):",
                        area_name(area)
                    ),
                )];
                lines.extend(
                    agreements
                        .iter()
                        .map(|agreement| (None, supplier_line(agreement))),
                );
                lines
            }
            Step::CaseOpened { case, place } => numbered(1, case_opened(case, place)),
            Step::OrderRequested { order, agreements } => numbered(
                2,
                format!(
                    "PlaceOrder by {CASEWORKER}: order {} with {} ({}, {}) at {}; \
                     OrderRequested to budget",
                    order.order_id,
                    order.supplier_name,
                    order.agreement_reference,
                    rank_of(agreements, &order.agreement_reference),
                    Money::from_ore(order.price_ore)
                ),
            ),
            Step::OrderPlaced { order } => numbered(
                3,
                format!(
                    "Budget reserved {} (FundsReserved) → PLACED; sent to the supplier \
                     (SupplierNotifier)",
                    Money::from_ore(order.price_ore)
                ),
            ),
            Step::SupplierAccepted { order } => numbered(
                4,
                format!(
                    "RecordSupplierResponse by supplier {}: ACCEPTED (OrderAccepted)",
                    order.supplier_organisation_number
                ),
            ),
            Step::OrderCompleted { order, date } => numbered(
                5,
                format!(
                    "RecordExpertStarted {date} (OrderStarted: 0 days from case opened), \
                     CompleteOrder with the expert's report (OrderCompleted); invoice by {}",
                    order.invoice_deadline_date
                ),
            ),
            Step::InvoiceSubmitted {
                invoice,
                supplier,
                price_ore,
            } => numbered(
                6,
                format!(
                    "SubmitInvoice by supplier {supplier}: invoice {}, {} (price {})",
                    invoice.invoice_id,
                    Money::from_ore(invoice.amount_ore),
                    Money::from_ore(price_ore)
                ),
            ),
            Step::InvoiceApproved { .. } => numbered(
                7,
                format!(
                    "AttestInvoice by {CASEWORKER}, ApproveInvoice by {DECIDER}: APPROVED; \
                     InvoiceApproved to budget"
                ),
            ),
            Step::Settled { reservation } => numbered(8, settled(reservation)),
            Step::InvoicePaid { invoice } => numbered(
                9,
                format!(
                    "Payment (recording fake payment system): {} {} (InvoicePaymentRecorded)",
                    invoice
                        .payment_status()
                        .as_str_name()
                        .trim_start_matches("INVOICE_PAYMENT_STATUS_"),
                    if invoice.payment_reference.is_empty() {
                        String::new()
                    } else {
                        format!("reference {}", invoice.payment_reference)
                    }
                ),
            ),
            _ => Vec::new(),
        }
    }
}

impl Narrator for Printer {
    fn step(&mut self, walked: Step<'_>) -> impl Future<Output = anyhow::Result<()>> {
        for (number, text) in Printer::lines(&walked) {
            match number {
                Some(number) => step(number, text),
                None => println!("{text}"),
            }
        }
        std::future::ready(Ok(()))
    }
}

/// One supplier of the list: rank, agreement, supplier, whether the fixture's, price, capacity.
fn supplier_line(agreement: &v1::Agreement) -> String {
    let terms = agreement.terms.clone().unwrap_or_default();
    format!(
        "    rank {}  {}  {}  {} ({}), {} per assignment, {} a month",
        terms.ranking,
        agreement.agreement_reference,
        agreement.supplier_organisation_number,
        agreement.supplier_name,
        if fixture::is_fixture_agreement(&agreement.agreement_reference) {
            "fixture"
        } else {
            "registered in an earlier run"
        },
        Money::from_ore(terms.price_per_assignment_ore),
        terms.monthly_capacity,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suppliers_list_comes_before_the_numbered_steps() {
        let agreement = v1::Agreement {
            agreement_reference: "RA-X".to_owned(),
            terms: Some(v1::AgreementTerms {
                ranking: 2,
                price_per_assignment_ore: 2_150_000,
                monthly_capacity: 10,
                ..v1::AgreementTerms::default()
            }),
            ..v1::Agreement::default()
        };
        let lines = Printer::lines(&Step::Suppliers {
            agreements: &[agreement],
            county: "34",
            area: AREA,
            date: "2027-06-01",
        });
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|(number, _)| number.is_none()));
        assert!(lines[1].1.contains("rank 2  RA-X"), "{}", lines[1].1);
        assert!(lines[1].1.contains("registered in an earlier run"));
        let invoice = v1::SupplierInvoice::default();
        assert!(Printer::lines(&Step::InvoiceAttested { invoice: &invoice }).is_empty());
    }
}
