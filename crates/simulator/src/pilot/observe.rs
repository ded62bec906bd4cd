//! What happened to a pilot case, read from the services at its end: routing's flow, the
//! case's orders and invoices in pilot-ordering, the registry's agreements on each order's day
//! and budget's reservations — never from what the case task meant to do.
//!
//! Why read rather than remember: the summary compares the model's plan with what the system
//! did, and a case whose plan capacity made impossible (the best supplier full, every supplier
//! full) must show what it became. The classification is a pure function of what was read
//! ([`classify`]), so the rules can be tested without a running system.

use anyhow::anyhow;
use ekb_domain::oslo_date;
use ekb_proto::v1::{
    self, FlowChangeReason, InvoicePaymentStatus, InvoiceRejectionReason, InvoiceStatus,
    OrderAbortReason, OrderCancellationReason, OrderExpiryReason, OrderStatus,
};
use time::{Date, OffsetDateTime};

use super::{PilotPath, agreements::find_agreements, fallback::routed, orders, walk::Walked};
use crate::{
    plan::{CaseMoney, CaseOutcome, CasePlan, Path},
    timeline::Sim,
};

/// What the services show for `case`, walked on `planned` as `walked` says: the path its
/// states are on and the money it moved.
pub(super) async fn outcome(
    sim: &Sim,
    case: &CasePlan,
    planned: PilotPath,
    walked: Walked,
) -> anyhow::Result<CaseOutcome> {
    let routed = routed(sim, &walked.case_id).await?;
    let flow_change = routed.flow_changes.first().map(v1::FlowChange::reason);
    let orders = orders::of_case(sim, &walked.case_id).await?;
    let seen = orders_with_candidates(sim, orders.clone()).await?;
    let observed = classify(
        routed.current_flow(),
        flow_change,
        &orders,
        capacity_skipped(&seen),
    )
    .map_err(|state| anyhow!("pilot case {} fits no path: {state}", case.number))?;
    let money = money(sim, &orders, walked.regular, walked.paid_ore).await?;
    Ok(CaseOutcome {
        number: case.number,
        planned: Path::Pilot(planned),
        observed: Path::Pilot(observed),
        case_id: walked.case_id,
        fell_back: routed.current_flow() == v1::Flow::Regular,
        money,
    })
}

/// An agreement as the choice of supplier weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The registry's id (also the order's `agreement_id`).
    pub agreement_id: String,
    /// Rank, 1 first.
    pub ranking: i32,
    /// Price per assignment.
    pub price_ore: i64,
    /// NAV's reference.
    pub reference: String,
}

impl Candidate {
    fn from_wire(agreement: &v1::Agreement) -> Self {
        let terms = agreement.terms.clone().unwrap_or_default();
        Candidate {
            agreement_id: agreement.agreement_id.clone(),
            ranking: terms.ranking,
            price_ore: terms.price_per_assignment_ore,
            reference: agreement.agreement_reference.clone(),
        }
    }
}

/// The candidate pilot-ordering would choose with every month free: the best ranking, then the
/// lower price, then the lower reference (bytes), among `active` not in `failed`.
pub fn best_untried<'a>(active: &'a [Candidate], failed: &[String]) -> Option<&'a Candidate> {
    active
        .iter()
        .filter(|candidate| !failed.contains(&candidate.agreement_id))
        .min_by(|a, b| {
            a.ranking
                .cmp(&b.ranking)
                .then(a.price_ore.cmp(&b.price_ore))
                .then(a.reference.as_bytes().cmp(b.reference.as_bytes()))
        })
}

/// Whether `order`'s agreement has failed its case, as pilot-ordering counts it: declined,
/// expired before the expert started, aborted for the supplier's sake, or cancelled because the
/// agreement ended.
pub fn failed_the_case(order: &v1::Order) -> bool {
    match order.status() {
        OrderStatus::Declined => true,
        OrderStatus::Expired => matches!(
            order.expiry_reason(),
            OrderExpiryReason::SupplierDidNotAnswer | OrderExpiryReason::NotStartedInTime
        ),
        OrderStatus::Cancelled => order
            .cancellation
            .as_ref()
            .is_some_and(|c| c.reason() == OrderCancellationReason::AgreementEnded),
        _ => order.abort.as_ref().is_some_and(|abort| {
            matches!(
                abort.reason(),
                OrderAbortReason::ExpertUnavailable | OrderAbortReason::SupplierBreach
            )
        }),
    }
}

/// Whether an order of the case went past a better supplier it had not tried — the month of
/// that supplier's agreement was full. `orders` oldest first, each with the agreements active
/// on the day it was requested.
pub fn capacity_skipped(orders: &[(v1::Order, Vec<Candidate>)]) -> bool {
    let mut failed: Vec<String> = Vec::new();
    for (order, active) in orders {
        if let Some(best) = best_untried(active, &failed)
            && best.agreement_id != order.agreement_id
        {
            return true;
        }
        if failed_the_case(order) {
            failed.push(order.agreement_id.clone());
        }
    }
    false
}

/// The path a case took, from what was read at its end: the case's current flow and the
/// reason of its (first) flow change, its orders oldest first, and whether an order went past a
/// full supplier. An error says what state the case was left in when it fits no path.
pub fn classify(
    flow: v1::Flow,
    flow_change: Option<FlowChangeReason>,
    orders: &[v1::Order],
    skipped_full: bool,
) -> Result<PilotPath, String> {
    if flow == v1::Flow::Regular {
        return Ok(if flow_change == Some(FlowChangeReason::AgreementsFull) {
            PilotPath::CapacityFull
        } else {
            PilotPath::Fallback
        });
    }
    let last = orders
        .last()
        .ok_or_else(|| "the PILOT case has no order".to_owned())?;
    let cancelled_for = last.cancellation.as_ref().map(|c| c.reason());
    match last.status() {
        OrderStatus::Cancelled if cancelled_for == Some(OrderCancellationReason::FundsDenied) => {
            Ok(PilotPath::FundsDenied)
        }
        OrderStatus::Expired => match last.expiry_reason() {
            OrderExpiryReason::NotStartedInTime => Ok(PilotPath::NotStarted),
            OrderExpiryReason::InvoiceDeadlinePassed => Ok(PilotPath::InvoiceDeadlineMissed),
            other => Err(format!("the last order expired {other:?}")),
        },
        status @ (OrderStatus::Completed | OrderStatus::Aborted) => {
            let approved = last
                .invoices
                .iter()
                .find(|invoice| invoice.status() == InvoiceStatus::Approved)
                .ok_or_else(|| format!("the last order is {status:?} with no approved invoice"))?;
            if approved.payment_status() != InvoicePaymentStatus::Paid {
                return Err(format!(
                    "the approved invoice's payment is {:?}",
                    approved.payment_status()
                ));
            }
            let above_price = last.invoices.iter().any(|invoice| {
                invoice.rejection_reason() == InvoiceRejectionReason::PriceAboveAgreement
            });
            let declined = orders
                .iter()
                .any(|order| order.status() == OrderStatus::Declined);
            Ok(if status == OrderStatus::Aborted {
                PilotPath::Aborted
            } else if above_price {
                PilotPath::InvoiceAbovePrice
            } else if declined {
                PilotPath::Declined
            } else if skipped_full {
                PilotPath::CapacityFull
            } else {
                PilotPath::Completed
            })
        }
        other => Err(format!(
            "the last order is {other:?} ({:?})",
            last.cancellation
        )),
    }
}

/// The Oslo day `order` was requested.
fn requested_on(order: &v1::Order) -> Option<Date> {
    let at = order.requested_at.as_ref()?;
    OffsetDateTime::from_unix_timestamp(at.seconds)
        .ok()
        .map(oslo_date)
}

/// The case's orders, oldest first, each with the agreements active in its area on the day it
/// was requested.
pub async fn orders_with_candidates(
    sim: &Sim,
    orders: Vec<v1::Order>,
) -> anyhow::Result<Vec<(v1::Order, Vec<Candidate>)>> {
    let mut seen = Vec::with_capacity(orders.len());
    for order in orders {
        let day = requested_on(&order).map_or_else(|| sim.today_text(), |day| day.to_string());
        let active = find_agreements(sim, order.competence_area(), &day)
            .await?
            .iter()
            .map(Candidate::from_wire)
            .collect();
        seen.push((order, active));
    }
    Ok(seen)
}

/// Budget's final reservations for every order of the case, summed into the case's money with
/// `paid_ore` (what the simulator paid on the invoices) and, after a fallback, the money of the
/// regular flow (`regular`: its grant's reservation and payout). The commitment named is the
/// grant's after a fallback that got that far, else the last order's.
pub async fn money(
    sim: &Sim,
    orders: &[v1::Order],
    regular: Option<CaseMoney>,
    paid_ore: i64,
) -> anyhow::Result<CaseMoney> {
    let mut money = CaseMoney {
        commitment: orders
            .last()
            .map(|order| (v1::CommitmentKind::PilotOrder, order.order_id.clone())),
        paid_ore,
        ..CaseMoney::default()
    };
    for order in orders {
        let reservation =
            orders::final_reservation(sim, v1::CommitmentKind::PilotOrder, &order.order_id).await?;
        money.reserved_ore += reservation.reserved_ore;
        money.disbursed_ore += reservation.disbursed_ore;
        money.released_ore += reservation.released_ore;
    }
    if let Some(regular) = regular {
        money.commitment = regular.commitment.or(money.commitment);
        money.reserved_ore += regular.reserved_ore;
        money.disbursed_ore += regular.disbursed_ore;
        money.released_ore += regular.released_ore;
        money.paid_ore += regular.paid_ore;
    }
    Ok(money)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, ranking: i32, price_ore: i64) -> Candidate {
        Candidate {
            agreement_id: id.to_owned(),
            ranking,
            price_ore,
            reference: format!("RA-{id}"),
        }
    }

    fn order(agreement: &str, status: OrderStatus) -> v1::Order {
        v1::Order {
            agreement_id: agreement.to_owned(),
            status: status as i32,
            ..v1::Order::default()
        }
    }

    fn invoice(status: InvoiceStatus, payment: InvoicePaymentStatus) -> v1::SupplierInvoice {
        v1::SupplierInvoice {
            status: status as i32,
            payment_status: payment as i32,
            ..v1::SupplierInvoice::default()
        }
    }

    fn paid(mut order: v1::Order) -> v1::Order {
        order
            .invoices
            .push(invoice(InvoiceStatus::Approved, InvoicePaymentStatus::Paid));
        order
    }

    fn three() -> Vec<Candidate> {
        vec![
            candidate("a", 1, 500),
            candidate("b", 2, 400),
            candidate("c", 3, 300),
        ]
    }

    #[test]
    fn the_best_untried_is_by_rank_then_price_then_reference() {
        let tied = [
            candidate("x", 1, 500),
            candidate("y", 1, 400),
            candidate("z", 1, 400),
        ];
        assert_eq!(
            best_untried(&tied, &[]).map(|c| c.agreement_id.as_str()),
            Some("y")
        );
        assert_eq!(
            best_untried(&tied, &["y".to_owned()]).map(|c| c.agreement_id.as_str()),
            Some("z")
        );
        assert!(best_untried(&tied, &["x".into(), "y".into(), "z".into()]).is_none());
    }

    #[test]
    fn going_down_the_ranks_after_declines_is_not_a_full_month_but_skipping_one_is() {
        let declined_then_next = [
            (order("a", OrderStatus::Declined), three()),
            (order("b", OrderStatus::Completed), three()),
        ];
        assert!(!capacity_skipped(&declined_then_next));
        let first_went_to_rank_two = [(order("b", OrderStatus::Completed), three())];
        assert!(capacity_skipped(&first_went_to_rank_two));
        let follow_up_skipped_rank_two = [
            (order("a", OrderStatus::Declined), three()),
            (order("c", OrderStatus::Completed), three()),
        ];
        assert!(capacity_skipped(&follow_up_skipped_rank_two));
    }

    #[test]
    fn an_aborted_order_fails_its_supplier_only_for_the_suppliers_sake() {
        let mut aborted = order("a", OrderStatus::Aborted);
        aborted.abort = Some(v1::OrderAbort {
            reason: OrderAbortReason::EmployeeWithdrew as i32,
            ..v1::OrderAbort::default()
        });
        assert!(!failed_the_case(&aborted));
        aborted.abort = Some(v1::OrderAbort {
            reason: OrderAbortReason::ExpertUnavailable as i32,
            ..v1::OrderAbort::default()
        });
        assert!(failed_the_case(&aborted));
    }

    #[test]
    fn a_regular_case_fell_back_and_full_agreements_count_as_capacity() {
        let full = classify(
            v1::Flow::Regular,
            Some(FlowChangeReason::AgreementsFull),
            &[],
            false,
        );
        assert_eq!(full, Ok(PilotPath::CapacityFull));
        let declined = classify(
            v1::Flow::Regular,
            Some(FlowChangeReason::NoSupplierAvailable),
            &[order("a", OrderStatus::Declined)],
            false,
        );
        assert_eq!(declined, Ok(PilotPath::Fallback));
    }

    #[test]
    fn a_paid_order_is_classified_by_what_set_it_apart() {
        let pilot =
            |orders: &[v1::Order], skipped: bool| classify(v1::Flow::Pilot, None, orders, skipped);
        let completed = paid(order("a", OrderStatus::Completed));
        assert_eq!(
            pilot(std::slice::from_ref(&completed), false),
            Ok(PilotPath::Completed)
        );
        assert_eq!(
            pilot(std::slice::from_ref(&completed), true),
            Ok(PilotPath::CapacityFull)
        );
        let declined = [order("a", OrderStatus::Declined), completed.clone()];
        assert_eq!(pilot(&declined, true), Ok(PilotPath::Declined));
        let mut above = completed.clone();
        above.invoices.insert(
            0,
            v1::SupplierInvoice {
                status: InvoiceStatus::Rejected as i32,
                rejection_reason: InvoiceRejectionReason::PriceAboveAgreement as i32,
                ..v1::SupplierInvoice::default()
            },
        );
        assert_eq!(pilot(&[above], true), Ok(PilotPath::InvoiceAbovePrice));
        let aborted = paid(order("a", OrderStatus::Aborted));
        assert_eq!(pilot(&[aborted], false), Ok(PilotPath::Aborted));
        let mut unpaid = order("a", OrderStatus::Completed);
        unpaid.invoices.push(invoice(
            InvoiceStatus::Approved,
            InvoicePaymentStatus::Pending,
        ));
        assert!(pilot(&[unpaid], false).is_err());
    }

    #[test]
    fn expiries_and_denials_end_their_own_paths() {
        let expired = |reason: OrderExpiryReason| v1::Order {
            expiry_reason: reason as i32,
            ..order("a", OrderStatus::Expired)
        };
        let pilot = |order: v1::Order| classify(v1::Flow::Pilot, None, &[order], false);
        assert_eq!(
            pilot(expired(OrderExpiryReason::NotStartedInTime)),
            Ok(PilotPath::NotStarted)
        );
        assert_eq!(
            pilot(expired(OrderExpiryReason::InvoiceDeadlinePassed)),
            Ok(PilotPath::InvoiceDeadlineMissed)
        );
        let denied = v1::Order {
            cancellation: Some(v1::OrderCancellation {
                reason: OrderCancellationReason::FundsDenied as i32,
                ..v1::OrderCancellation::default()
            }),
            ..order("a", OrderStatus::Cancelled)
        };
        assert_eq!(pilot(denied), Ok(PilotPath::FundsDenied));
        assert!(pilot(order("a", OrderStatus::Started)).is_err());
        assert!(classify(v1::Flow::Pilot, None, &[], false).is_err());
    }
}
