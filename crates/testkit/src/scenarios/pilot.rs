//! The § 9a pilot flow's happy path, one case to payment: the framework agreements covering the
//! area, by rank → a case routed PILOT → the caseworker orders from the best-ranked supplier
//! with capacity left this month → budget reserves (PLACED) → the supplier accepts → the expert
//! starts → the order is completed with the report → the supplier invoices below the price →
//! attested by the caseworker, approved by the decider → budget disburses the invoice and
//! releases the rest → the payment system answers.
//!
//! Two ends are not faults, since they follow from configuration and data rather than from the
//! services misbehaving: no agreement covers the area that day, or routing sends the case to
//! the regular flow; the walk then ends early and says which ([`PilotOutcome`]).

use anyhow::{Context, ensure};
use ekb_proto::v1::{self, CompetenceArea, InvoicePaymentStatus, InvoiceStatus, OrderStatus};

use super::{
    Clients, Narrator, People, Step,
    both_flows::{open_case, settled},
    requests,
    waits::{answer, until, when_known},
};
use crate::{
    fixtures::{HAMAR, INNLANDET, case_facts},
    services::with_bearer,
};

/// How much below the order's price the supplier invoices, in øre (the rest is released).
pub const INVOICE_DISCOUNT_ORE: i64 = 150_000;
/// The supplier's invoice number.
pub const INVOICE_NUMBER: &str = "INV-2026-117";
/// What the order asks the expert to do.
pub const ASSIGNMENT: &str = "Kartlegging av arbeidsmiljø og forslag til tilrettelegging.";

/// The case of the walk: where, which area, whose, and on what day.
#[derive(Debug, Clone, Copy)]
pub struct PilotCase<'a> {
    /// The county whose agreements are searched (the municipality's).
    pub county: &'a str,
    /// The employer's municipality.
    pub municipality: &'a str,
    /// The municipality in words (`3403 Hamar`).
    pub place: &'a str,
    /// The framework-agreement area the employer chose.
    pub area: CompetenceArea,
    /// The employee's fødselsnummer (synthetic: the services must accept them).
    pub employee: &'a str,
    /// Today, `YYYY-MM-DD`.
    pub today: &'a str,
}

impl<'a> PilotCase<'a> {
    /// A Hamar case (Innlandet, the pilot county) in `area` about `employee` on `today`.
    pub fn hamar(area: CompetenceArea, employee: &'a str, today: &'a str) -> Self {
        PilotCase {
            county: INNLANDET,
            municipality: HAMAR,
            place: "3403 Hamar",
            area,
            employee,
            today,
        }
    }
}

/// How the walk ended.
#[derive(Debug, Clone)]
pub enum PilotOutcome {
    /// No agreement covers the area in the county that day: no case was opened.
    NoAgreement,
    /// Routing sent the case to the regular flow (its pilot settings): nothing was ordered.
    NotPilot,
    /// Everything paid.
    Paid(Box<PilotPaid>),
}

/// A pilot case walked to payment.
#[derive(Debug, Clone)]
pub struct PilotPaid {
    /// The agreements covering the area, by rank, when the walk began.
    pub agreements: Vec<v1::Agreement>,
    /// The case, routed PILOT.
    pub case: v1::Case,
    /// The order, COMPLETED.
    pub order: v1::Order,
    /// The invoice with its payment status (PAID or FAILED).
    pub invoice: v1::SupplierInvoice,
    /// Budget's reservation for the order, SETTLED.
    pub reservation: v1::Reservation,
}

/// Walks `case` to payment, telling `narrator` each step.
pub async fn walk(
    clients: &Clients,
    people: &People<'_>,
    case: PilotCase<'_>,
    narrator: &mut impl Narrator,
) -> anyhow::Result<PilotOutcome> {
    let today = case.today;
    let agreements = suppliers_by_rank(clients, people, case.county, case.area, today).await?;
    narrator
        .step(Step::Suppliers {
            agreements: &agreements,
            county: case.county,
            area: case.area,
            date: today,
        })
        .await?;
    if agreements.is_empty() {
        return Ok(PilotOutcome::NoAgreement);
    }

    let opened = open_case(
        clients,
        people,
        case_facts(case.municipality, Some(case.area), today),
    )
    .await?;
    let place = format!(
        "{}, framework expert for {}",
        case.place,
        case.area
            .as_str_name()
            .trim_start_matches("COMPETENCE_AREA_")
    );
    narrator
        .step(Step::CaseOpened {
            case: &opened,
            place: &place,
        })
        .await?;
    if opened.decision.unwrap_or_default().flow() != v1::Flow::Pilot {
        return Ok(PilotOutcome::NotPilot);
    }

    let caseworker = people.caseworker();
    let requested = place_order(clients, &caseworker, &opened.case_id, case.employee).await?;
    narrator
        .step(Step::OrderRequested {
            order: &requested,
            agreements: &agreements,
        })
        .await?;
    let order_id = requested.order_id.clone();
    let placed = order_in(clients, &caseworker, &order_id, OrderStatus::Placed).await?;
    narrator.step(Step::OrderPlaced { order: &placed }).await?;

    let supplier = people.supplier(&placed.supplier_organisation_number);
    let accepted = answer_order(
        clients,
        &supplier,
        requests::supplier_answer(&order_id, v1::SupplierResponse::Accepted, today),
    )
    .await?;
    narrator
        .step(Step::SupplierAccepted { order: &accepted })
        .await?;

    let mut ordering = clients.ordering.clone();
    let started = answer(
        "RecordExpertStarted",
        ordering
            .record_expert_started(with_bearer(
                requests::expert_started(&order_id, today),
                &caseworker,
            ))
            .await,
    )?
    .order
    .context("RecordExpertStarted answered without the order")?;
    ensure_order(&started, OrderStatus::Started)?;
    narrator
        .step(Step::ExpertStarted { order: &started })
        .await?;
    let completed = answer(
        "CompleteOrder",
        ordering
            .complete_order(with_bearer(
                requests::order_completed(&order_id, today),
                &caseworker,
            ))
            .await,
    )?
    .order
    .context("CompleteOrder answered without the order")?;
    ensure_order(&completed, OrderStatus::Completed)?;
    narrator
        .step(Step::OrderCompleted {
            order: &completed,
            date: today,
        })
        .await?;

    let price_ore = placed.price_ore;
    let amount_ore = if price_ore > INVOICE_DISCOUNT_ORE {
        price_ore - INVOICE_DISCOUNT_ORE
    } else {
        price_ore
    };
    let submitted = invoice_answer(
        "SubmitInvoice",
        ordering
            .submit_invoice(with_bearer(
                requests::invoice(&order_id, INVOICE_NUMBER, today, amount_ore),
                &supplier,
            ))
            .await
            .map(|response| response.map(|answer| answer.invoice)),
        InvoiceStatus::Submitted,
    )?;
    narrator
        .step(Step::InvoiceSubmitted {
            invoice: &submitted,
            supplier: &placed.supplier_organisation_number,
            price_ore,
        })
        .await?;
    let invoice_id = submitted.invoice_id.clone();
    let attested = invoice_answer(
        "AttestInvoice",
        ordering
            .attest_invoice(with_bearer(requests::attestation(&invoice_id), &caseworker))
            .await
            .map(|response| response.map(|answer| answer.invoice)),
        InvoiceStatus::Attested,
    )?;
    narrator
        .step(Step::InvoiceAttested { invoice: &attested })
        .await?;
    let approved = invoice_answer(
        "ApproveInvoice",
        ordering
            .approve_invoice(with_bearer(
                requests::approval(&invoice_id),
                &people.decider(),
            ))
            .await
            .map(|response| response.map(|answer| answer.invoice)),
        InvoiceStatus::Approved,
    )?;
    narrator
        .step(Step::InvoiceApproved { invoice: &approved })
        .await?;

    let reservation = settled(
        clients,
        narrator,
        &caseworker,
        v1::CommitmentKind::PilotOrder,
        &order_id,
    )
    .await?;

    let paid = until(
        "the payment system's answer (InvoicePaymentRecorded)",
        || async {
            Ok(order(clients, &caseworker, &order_id)
                .await?
                .invoices
                .into_iter()
                .find(|invoice| invoice.invoice_id == invoice_id)
                .filter(|invoice| {
                    matches!(
                        invoice.payment_status(),
                        InvoicePaymentStatus::Paid | InvoicePaymentStatus::Failed
                    )
                }))
        },
    )
    .await?;
    narrator.step(Step::InvoicePaid { invoice: &paid }).await?;
    Ok(PilotOutcome::Paid(Box::new(PilotPaid {
        agreements,
        case: opened,
        order: completed,
        invoice: paid,
        reservation,
    })))
}

/// The agreements covering `area` in `county` on `date`, best-ranked first (FindAgreements, as
/// the NAV system).
pub async fn suppliers_by_rank(
    clients: &Clients,
    people: &People<'_>,
    county: &str,
    area: CompetenceArea,
    date: &str,
) -> anyhow::Result<Vec<v1::Agreement>> {
    let request = with_bearer(
        v1::FindAgreementsRequest {
            county_code: county.to_owned(),
            competence_area: area as i32,
            on_date: date.to_owned(),
        },
        &people.system(),
    );
    Ok(answer(
        "FindAgreements",
        clients.registry.clone().find_agreements(request).await,
    )?
    .agreements)
}

/// The caseworker (`token`) orders for `case_id` about `employee`, retrying while
/// pilot-ordering has not the case yet; returns the order FUNDS_PENDING.
pub async fn place_order(
    clients: &Clients,
    token: &str,
    case_id: &str,
    employee: &str,
) -> anyhow::Result<v1::Order> {
    let request = requests::order(case_id, employee, ASSIGNMENT);
    let response = when_known(
        "PlaceOrder",
        "pilot-ordering to know the case (CaseRouted)",
        || {
            let mut ordering = clients.ordering.clone();
            let request = with_bearer(request.clone(), token);
            async move { ordering.place_order(request).await }
        },
    )
    .await?;
    ensure!(response.created, "PlaceOrder created nothing");
    let order = response
        .order
        .context("PlaceOrder answered without the order")?;
    ensure_order(&order, OrderStatus::FundsPending)?;
    Ok(order)
}

/// The supplier (`token`) answers with `request`; returns the order it answered as
/// pilot-ordering left it.
pub async fn answer_order(
    clients: &Clients,
    token: &str,
    request: v1::RecordSupplierResponseRequest,
) -> anyhow::Result<v1::Order> {
    let accepted = request.response == v1::SupplierResponse::Accepted as i32;
    let order = answer(
        "RecordSupplierResponse",
        clients
            .ordering
            .clone()
            .record_supplier_response(with_bearer(request, token))
            .await,
    )?
    .order
    .context("RecordSupplierResponse answered without the order")?;
    if accepted {
        ensure_order(&order, OrderStatus::Accepted)?;
    }
    Ok(order)
}

/// Order `order_id` as `token`'s holder reads it.
pub async fn order(clients: &Clients, token: &str, order_id: &str) -> anyhow::Result<v1::Order> {
    let request = with_bearer(requests::get_order(order_id), token);
    answer(
        "GetOrder",
        clients.ordering.clone().get_order(request).await,
    )?
    .order
    .context("GetOrder answered without the order")
}

/// Waits until order `order_id` is in `status` (it moves on budget's answer); a CANCELLED
/// order ends the wait unless that is the status waited for.
pub async fn order_in(
    clients: &Clients,
    token: &str,
    order_id: &str,
    status: OrderStatus,
) -> anyhow::Result<v1::Order> {
    until(&format!("order {order_id} to be {status:?}"), || async {
        let found = order(clients, token, order_id).await?;
        if found.status() == OrderStatus::Cancelled && status != OrderStatus::Cancelled {
            anyhow::bail!(
                "the order was CANCELLED ({:?}): budget denied the funds?",
                found.cancellation
            );
        }
        Ok((found.status() == status).then_some(found))
    })
    .await
}

/// `rank 2` for the agreement with `reference` among `agreements`, or `rank ?`.
pub fn rank_of(agreements: &[v1::Agreement], reference: &str) -> String {
    agreements
        .iter()
        .find(|agreement| agreement.agreement_reference == reference)
        .and_then(|agreement| agreement.terms.as_ref())
        .map_or_else(
            || "rank ?".to_owned(),
            |terms| format!("rank {}", terms.ranking),
        )
}

/// Fails unless `order` is in `status`.
fn ensure_order(order: &v1::Order, status: OrderStatus) -> anyhow::Result<()> {
    ensure!(
        order.status() == status,
        "order {} is {:?}, not {status:?} ({:?})",
        order.order_id,
        order.status(),
        order.cancellation
    );
    Ok(())
}

/// The invoice RPC `rpc` answered with, which must be in `status`.
fn invoice_answer(
    rpc: &str,
    result: Result<tonic::Response<Option<v1::SupplierInvoice>>, tonic::Status>,
    status: InvoiceStatus,
) -> anyhow::Result<v1::SupplierInvoice> {
    let invoice =
        answer(rpc, result)?.with_context(|| format!("{rpc} answered without the invoice"))?;
    ensure!(
        invoice.status() == status,
        "{rpc} left invoice {} {:?}, not {status:?}",
        invoice.invoice_id,
        invoice.status()
    );
    Ok(invoice)
}

#[cfg(test)]
mod tests {
    use super::*;

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
