//! The part of `make run` that walks one case through the § 9a pilot flow to payment, printing
//! each step: the fixture's suppliers for the area by rank → a Hamar case routed PILOT → NAV
//! orders from the best-ranked supplier with capacity left this month → budget reserves →
//! placed → the supplier accepts → expert started → completed (report delivered) → the supplier
//! invoices below the price → attested by a caseworker, approved by someone else → budget
//! disburses the invoice and releases the rest → the payment system pays.
//!
//! Data is kept between runs, and every run's order counts against its agreement's monthly
//! capacity, so after some runs in one month the order goes to the next supplier, and at last
//! PlaceOrder refuses (AGREEMENTS_FULL); an agreement registered by hand may rank above the
//! fixture's. The walk prints what it got and, when it cannot go on, why — a note, not a
//! refusal to serve (see `demo_callers::stopped`).

use ekb_platform::clock::Clock;
use ekb_domain::Money;
use ekb_proto::v1::{
    self, CommitmentKind, CompetenceArea, OrderStatus, budget_service_client::BudgetServiceClient,
    expert_registry_service_client::ExpertRegistryServiceClient,
    pilot_ordering_service_client::PilotOrderingServiceClient,
    routing_service_client::RoutingServiceClient,
};
use ekb_testkit::{
    fixtures::{HAMAR, case_facts},
    issuer::TestIssuer,
    services::ServiceProcess,
};
use tonic::transport::Channel;

use crate::{
    budget_demo::BUDGET,
    demo::{REGISTRY, ROUTING, connect},
    demo_callers::{
        CASEWORKER, Callers, DECIDER, as_caller, open_case_step, oslo_today, refusal, settled_step,
        step, stopped, synthetic_fodselsnummer, wait_for, when_known,
    },
    fixture::{self, area_name},
};

/// Pilot-ordering's name (its catalog entry and binary).
pub const PILOT_ORDERING: &str = "pilot-ordering";
/// The area of the walk: two fixture suppliers cover it, ranked 2 and 3.
pub const AREA: CompetenceArea = CompetenceArea::ConflictHandling;
/// How much below the order's price the supplier invoices, in øre (the rest is released).
const INVOICE_DISCOUNT_ORE: i64 = 150_000;

/// The clients of the walk.
struct Clients {
    routing: RoutingServiceClient<Channel>,
    registry: ExpertRegistryServiceClient<Channel>,
    ordering: PilotOrderingServiceClient<Channel>,
    budget: BudgetServiceClient<Channel>,
}

/// Prints the suppliers for [`AREA`] by rank and walks one pilot case to payment. `fresh`: the
/// databases were empty when this run started.
pub async fn run(
    services: &[ServiceProcess],
    issuer: &TestIssuer,
    fresh: bool,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let mut clients = Clients {
        routing: RoutingServiceClient::new(connect(services, ROUTING).await?),
        registry: ExpertRegistryServiceClient::new(connect(services, REGISTRY).await?),
        ordering: PilotOrderingServiceClient::new(connect(services, PILOT_ORDERING).await?),
        budget: BudgetServiceClient::new(connect(services, BUDGET).await?),
    };
    println!(
        "\nPilot flow (§ 9a), one case to payment (caseworker {CASEWORKER} orders and attests, \
         {DECIDER} approves, the supplier answers and invoices with its own token):"
    );
    match walk(&mut clients, &Callers::new(issuer), &oslo_today(clock)).await {
        Ok(()) => Ok(()),
        Err(error) => stopped("pilot-flow", error, fresh),
    }
}

/// The suppliers for [`AREA`] in the fixture's county on `date`, by rank (FindAgreements).
async fn suppliers_by_rank(
    registry: &mut ExpertRegistryServiceClient<Channel>,
    date: &str,
) -> anyhow::Result<Vec<v1::Agreement>> {
    fixture::covering_agreements(registry, fixture::COUNTY, AREA, date).await
}

/// The walk itself; any step that does not go as the contract says ends it with an error.
async fn walk(clients: &mut Clients, callers: &Callers<'_>, today: &str) -> anyhow::Result<()> {
    let today = today.to_owned();
    let agreements = suppliers_by_rank(&mut clients.registry, &today).await?;
    println!(
        "  Suppliers for {} in county {} on {today}, by rank (FindAgreements):",
        area_name(AREA),
        fixture::COUNTY
    );
    for agreement in &agreements {
        let terms = agreement.terms.clone().unwrap_or_default();
        println!(
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
        );
    }
    if agreements.is_empty() {
        // Not a fault: the fixture's agreements are valid for a period, which may be over.
        println!(
            "  No agreement covers {} in county {} today (the fixture's are valid {}..{}), so \
             no case goes to the pilot: nothing to walk.",
            area_name(AREA),
            fixture::COUNTY,
            fixture::VALID_FROM,
            fixture::VALID_TO
        );
        return Ok(());
    }

    let case = open_case_step(
        &mut clients.routing,
        case_facts(HAMAR, Some(AREA), &today),
        &format!("3403 Hamar, framework expert for {}", area_name(AREA)),
    )
    .await?;
    let decision = case.decision.unwrap_or_default();
    if decision.flow() != v1::Flow::Pilot {
        // Not a fault: routing's pilot counties and periods are configuration.
        println!("  The case went to the regular flow (routing's settings): nothing to walk.");
        return Ok(());
    }

    let caseworker = callers.caseworker();
    let request = v1::PlaceOrderRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        case_id: case.case_id.clone(),
        contact_person: Some(v1::ContactPerson {
            name: "Kari Kontakt".to_owned(),
            phone_number: "+4791234567".to_owned(),
            email: "kari.kontakt@example.no".to_owned(),
        }),
        assignment_description: "Konflikthåndtering i avdelingen: samtaler og tiltaksplan."
            .to_owned(),
        employee_fodselsnummer: synthetic_fodselsnummer(),
    };
    let order = when_known(
        "pilot-ordering to know the case (CaseRouted)",
        "PlaceOrder",
        || {
            let mut ordering = clients.ordering.clone();
            let request = as_caller(request.clone(), &caseworker);
            async move { ordering.place_order(request).await }
        },
        |response| response.order,
    )
    .await?;
    let order_id = order.order_id.clone();
    let supplier = order.supplier_organisation_number.clone();
    step(
        2,
        format!(
            "PlaceOrder by {CASEWORKER}: order {order_id} with {} ({}, {}) at {}; \
             OrderRequested to budget",
            order.supplier_name,
            order.agreement_reference,
            rank_of(&agreements, &order.agreement_reference),
            Money::from_ore(order.price_ore)
        ),
    );

    let placed = order_in(clients, &caseworker, &order_id, OrderStatus::Placed).await?;
    step(
        3,
        format!(
            "Budget reserved {} (FundsReserved) → PLACED; sent to the supplier \
             (SupplierNotifier)",
            Money::from_ore(placed.price_ore)
        ),
    );

    let supplier_token = callers.supplier(&supplier);
    clients
        .ordering
        .record_supplier_response(as_caller(
            v1::RecordSupplierResponseRequest {
                order_id: order_id.clone(),
                response: v1::SupplierResponse::Accepted as i32,
                responded_date: today.clone(),
                decline_reason: String::new(),
                decline_reason_code: v1::SupplierDeclineReason::Unspecified as i32,
            },
            &supplier_token,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("RecordSupplierResponse: {}", refusal(&status)))?;
    step(
        4,
        format!("RecordSupplierResponse by supplier {supplier}: ACCEPTED (OrderAccepted)"),
    );

    clients
        .ordering
        .record_expert_started(as_caller(
            v1::RecordExpertStartedRequest {
                order_id: order_id.clone(),
                started_date: today.clone(),
                expert_id: String::new(),
            },
            &caseworker,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("RecordExpertStarted: {}", refusal(&status)))?;
    let completed = clients
        .ordering
        .complete_order(as_caller(
            v1::CompleteOrderRequest {
                order_id: order_id.clone(),
                completed_date: today.clone(),
                report_document_id: uuid::Uuid::new_v4().to_string(),
            },
            &caseworker,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("CompleteOrder: {}", refusal(&status)))?
        .into_inner()
        .order
        .unwrap_or_default();
    step(
        5,
        format!(
            "RecordExpertStarted {today} (OrderStarted: 0 days from case opened), CompleteOrder \
             with the expert's report (OrderCompleted); invoice by {}",
            completed.invoice_deadline_date
        ),
    );

    let amount_ore = if placed.price_ore > INVOICE_DISCOUNT_ORE {
        placed.price_ore - INVOICE_DISCOUNT_ORE
    } else {
        placed.price_ore
    };
    let invoice = clients
        .ordering
        .submit_invoice(as_caller(
            v1::SubmitInvoiceRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                order_id: order_id.clone(),
                invoice_number: "INV-2026-117".to_owned(),
                invoice_date: today.clone(),
                amount_ore,
                invoice_document_id: uuid::Uuid::new_v4().to_string(),
            },
            &supplier_token,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("SubmitInvoice: {}", refusal(&status)))?
        .into_inner()
        .invoice
        .unwrap_or_default();
    let invoice_id = invoice.invoice_id.clone();
    step(
        6,
        format!(
            "SubmitInvoice by supplier {supplier}: invoice {invoice_id}, {} (price {})",
            Money::from_ore(amount_ore),
            Money::from_ore(placed.price_ore)
        ),
    );

    clients
        .ordering
        .attest_invoice(as_caller(
            v1::AttestInvoiceRequest {
                invoice_id: invoice_id.clone(),
            },
            &caseworker,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("AttestInvoice: {}", refusal(&status)))?;
    clients
        .ordering
        .approve_invoice(as_caller(
            v1::ApproveInvoiceRequest {
                invoice_id: invoice_id.clone(),
            },
            &callers.decider(),
        ))
        .await
        .map_err(|status| anyhow::anyhow!("ApproveInvoice: {}", refusal(&status)))?;
    step(
        7,
        format!(
            "AttestInvoice by {CASEWORKER}, ApproveInvoice by {DECIDER}: APPROVED; \
             InvoiceApproved to budget"
        ),
    );

    settled_step(&clients.budget, 8, CommitmentKind::PilotOrder, &order_id).await?;

    let paid = wait_for(
        "the payment system's answer (InvoicePaymentRecorded)",
        || {
            let mut ordering = clients.ordering.clone();
            let request = as_caller(
                v1::GetOrderRequest {
                    order_id: order_id.clone(),
                },
                &caseworker,
            );
            let invoice_id = invoice_id.clone();
            async move {
                let order = ordering
                    .get_order(request)
                    .await
                    .map_err(|status| anyhow::anyhow!("GetOrder: {}", refusal(&status)))?
                    .into_inner()
                    .order
                    .unwrap_or_default();
                Ok(order
                    .invoices
                    .into_iter()
                    .find(|invoice| invoice.invoice_id == invoice_id)
                    .filter(|invoice| {
                        matches!(
                            invoice.payment_status(),
                            v1::InvoicePaymentStatus::Paid | v1::InvoicePaymentStatus::Failed
                        )
                    }))
            }
        },
    )
    .await?;
    step(
        9,
        format!(
            "Payment (recording fake payment system): {} {} (InvoicePaymentRecorded)",
            paid.payment_status()
                .as_str_name()
                .trim_start_matches("INVOICE_PAYMENT_STATUS_"),
            if paid.payment_reference.is_empty() {
                String::new()
            } else {
                format!("reference {}", paid.payment_reference)
            }
        ),
    );
    Ok(())
}

/// Waits until order `order_id` is in `status`.
async fn order_in(
    clients: &Clients,
    token: &str,
    order_id: &str,
    status: OrderStatus,
) -> anyhow::Result<v1::Order> {
    wait_for(&format!("order {order_id} to be {status:?}"), || {
        let mut ordering = clients.ordering.clone();
        let request = as_caller(
            v1::GetOrderRequest {
                order_id: order_id.to_owned(),
            },
            token,
        );
        async move {
            let order = ordering
                .get_order(request)
                .await
                .map_err(|status| anyhow::anyhow!("GetOrder: {}", refusal(&status)))?
                .into_inner()
                .order
                .unwrap_or_default();
            if order.status() == OrderStatus::Cancelled {
                anyhow::bail!(
                    "the order was CANCELLED ({:?}): budget denied the funds?",
                    order.cancellation
                );
            }
            Ok((order.status() == status).then_some(order))
        }
    })
    .await
}

/// `rank 2` for the agreement with `reference` among `agreements`, or `rank ?`.
fn rank_of(agreements: &[v1::Agreement], reference: &str) -> String {
    agreements
        .iter()
        .find(|agreement| agreement.agreement_reference == reference)
        .and_then(|agreement| agreement.terms.as_ref())
        .map_or_else(
            || "rank ?".to_owned(),
            |terms| format!("rank {}", terms.ranking),
        )
}

#[cfg(test)]
mod tests {
    use ekb_testkit::catalog;

    use super::*;

    #[test]
    fn pilot_ordering_is_in_the_catalog() {
        assert!(catalog::entry(PILOT_ORDERING).is_some());
    }

    #[test]
    fn ranks_are_found_by_reference() {
        let agreement = v1::Agreement {
            agreement_reference: "RA-2022-34-002".to_owned(),
            terms: Some(v1::AgreementTerms {
                ranking: 2,
                ..v1::AgreementTerms::default()
            }),
            ..v1::Agreement::default()
        };
        assert_eq!(rank_of(&[agreement], "RA-2022-34-002"), "rank 2");
        assert_eq!(rank_of(&[], "RA-X"), "rank ?");
    }
}
