//! The money: refund payouts and paid invoices = budget's disbursements = the payment system's
//! records, to the øre.
//!
//! Why three sides: each is written by someone else. Refunds and pilot-ordering decide what
//! is owed (an approved claim's payout, an approved invoice's amount) and tell budget by event;
//! budget books the disbursement from the commitment's reservation; the payment system (the
//! simulator) is told to pay and records what it paid. A lost or doubled event, a retry that
//! paid twice, a payout booked against another grant — each leaves one side different from the
//! others, so every side is compared per commitment (a grant has at most one approved claim,
//! an order at most one approved invoice), and the totals too.
//!
//! The services' side is read through their contracts: refunds' approved claims
//! (`ListRefundClaims`, then `GetRefundClaim` for the payout, purpose CONTROL) and
//! pilot-ordering's completed, aborted and expired orders (`ListOrders`, then `GetOrder` for
//! the invoices). Every approved amount must also have been paid: a disbursement whose payment
//! stayed FAILED or PENDING is a violation too (budget counts the money as spent).

use std::collections::{BTreeMap, HashMap};

use ekb_proto::v1::{
    AccessPurpose, CommitmentKind, GetOrderRequest, GetRefundClaimRequest, InvoicePaymentStatus,
    InvoiceStatus, ListOrdersRequest, ListRefundClaimsRequest, OrderStatus, RefundClaimStatus,
    RefundPaymentStatus, Reservation,
};
use futures::{StreamExt as _, TryStreamExt as _};

use super::{
    PaymentRecord, Violation,
    grpc::{retrying, system_token},
    reservations::commitment_of,
};
use crate::{plan::CaseOutcome, timeline::Sim};

/// Payouts, disbursements and payments disagree.
pub const MONEY_AGREES: &str = "payouts = disbursements = payments";

/// How many claims or orders are read at once.
const READS_AT_ONCE: usize = 8;

/// An approved claim's payout or an approved invoice, as its service holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// `Grant` (a refund claim) or `PilotOrder` (a supplier invoice).
    pub kind: CommitmentKind,
    /// The grant id or the order id.
    pub commitment_id: String,
    /// The claim id or the invoice id.
    pub source_id: String,
    /// The approved payout or invoice amount, in øre.
    pub approved_ore: i64,
    /// Whether the service has recorded the payment as PAID.
    pub paid: bool,
}

/// Every approved refund payout and approved invoice the services hold.
pub async fn settlements(sim: &Sim) -> anyhow::Result<Vec<Settlement>> {
    let mut all = refund_payouts(sim).await?;
    all.extend(approved_invoices(sim).await?);
    Ok(all)
}

async fn refund_payouts(sim: &Sim) -> anyhow::Result<Vec<Settlement>> {
    let mut claim_ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let token = system_token(sim);
        let request = ListRefundClaimsRequest {
            statuses: vec![RefundClaimStatus::Approved as i32],
            page_size: 500,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = retrying("refunds ListRefundClaims", || {
            let mut refunds = sim.clients.refunds.clone();
            let request = ekb_testkit::services::with_bearer(request.clone(), &token);
            async move { refunds.list_refund_claims(request).await }
        })
        .await?;
        claim_ids.extend(page.claims.into_iter().map(|claim| claim.claim_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    futures::stream::iter(claim_ids)
        .map(|claim_id| async move {
            let token = system_token(sim);
            let request = GetRefundClaimRequest {
                claim_id,
                purpose: AccessPurpose::Control as i32,
            };
            let answer = retrying("refunds GetRefundClaim", || {
                let mut refunds = sim.clients.refunds.clone();
                let request = ekb_testkit::services::with_bearer(request.clone(), &token);
                async move { refunds.get_refund_claim(request).await }
            })
            .await?;
            let claim = answer
                .claim
                .ok_or_else(|| anyhow::anyhow!("GetRefundClaim answered without a claim"))?;
            let paid = claim
                .payment
                .as_ref()
                .is_some_and(|payment| payment.status == RefundPaymentStatus::Paid as i32);
            Ok::<_, anyhow::Error>(Settlement {
                kind: CommitmentKind::Grant,
                commitment_id: claim.grant_id,
                source_id: claim.claim_id,
                approved_ore: claim.payout_amount.map_or(0, |amount| amount.ore),
                paid,
            })
        })
        .buffer_unordered(READS_AT_ONCE)
        .try_collect()
        .await
}

async fn approved_invoices(sim: &Sim) -> anyhow::Result<Vec<Settlement>> {
    let mut order_ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let token = system_token(sim);
        let request = ListOrdersRequest {
            statuses: vec![
                OrderStatus::Completed as i32,
                OrderStatus::Aborted as i32,
                OrderStatus::Expired as i32,
            ],
            page_size: 500,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = retrying("pilot-ordering ListOrders", || {
            let mut ordering = sim.clients.ordering.clone();
            let request = ekb_testkit::services::with_bearer(request.clone(), &token);
            async move { ordering.list_orders(request).await }
        })
        .await?;
        order_ids.extend(page.orders.into_iter().map(|order| order.order_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let per_order: Vec<Vec<Settlement>> = futures::stream::iter(order_ids)
        .map(|order_id| async move {
            let token = system_token(sim);
            let request = GetOrderRequest { order_id };
            let answer = retrying("pilot-ordering GetOrder", || {
                let mut ordering = sim.clients.ordering.clone();
                let request = ekb_testkit::services::with_bearer(request.clone(), &token);
                async move { ordering.get_order(request).await }
            })
            .await?;
            let order = answer
                .order
                .ok_or_else(|| anyhow::anyhow!("GetOrder answered without an order"))?;
            Ok::<_, anyhow::Error>(
                order
                    .invoices
                    .into_iter()
                    .filter(|invoice| invoice.status == InvoiceStatus::Approved as i32)
                    .map(|invoice| Settlement {
                        kind: CommitmentKind::PilotOrder,
                        commitment_id: order.order_id.clone(),
                        source_id: invoice.invoice_id,
                        approved_ore: invoice.amount_ore,
                        paid: invoice.payment_status == InvoicePaymentStatus::Paid as i32,
                    })
                    .collect(),
            )
        })
        .buffer_unordered(READS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(per_order.into_iter().flatten().collect())
}

/// The three sides for one commitment.
#[derive(Debug, Default)]
struct Sides {
    /// Approved by refunds or pilot-ordering, summed over the commitment's settlements.
    approved: i64,
    /// How many approved claims or invoices the commitment has.
    settlements: usize,
    /// Approved but not PAID in the service.
    unpaid: i64,
    /// Disbursed by budget.
    disbursed: Option<i64>,
    /// Recorded as paid by the payment system.
    recorded: i64,
    /// How many payment records the commitment has.
    records: usize,
}

/// Compares the services' settlements, budget's disbursements and the payment records, per
/// commitment and in total, and each case's paid money with the records of its commitments.
pub fn judge(
    settlements: &[Settlement],
    reservations: &[Reservation],
    payments: &[PaymentRecord],
    outcomes: &[CaseOutcome],
) -> Vec<Violation> {
    let mut sides: BTreeMap<(i32, String), Sides> = BTreeMap::new();
    for settlement in settlements {
        let side = sides
            .entry((settlement.kind as i32, settlement.commitment_id.clone()))
            .or_default();
        side.approved += settlement.approved_ore;
        side.settlements += 1;
        if !settlement.paid {
            side.unpaid += settlement.approved_ore;
        }
    }
    let mut case_of: HashMap<(i32, &str), &str> = HashMap::new();
    for reservation in reservations {
        let Some((kind, id)) = commitment_of(reservation) else {
            continue;
        };
        case_of.insert((kind as i32, id), reservation.case_id.as_str());
        if reservation.disbursed_ore != 0 {
            sides
                .entry((kind as i32, id.to_owned()))
                .or_default()
                .disbursed = Some(reservation.disbursed_ore);
        }
    }
    for payment in payments {
        let side = sides
            .entry((payment.kind as i32, payment.commitment_id.clone()))
            .or_default();
        side.recorded += payment.ore;
        side.records += 1;
    }

    let mut violations = Vec::new();
    let (mut approved, mut disbursed, mut recorded) = (0i64, 0i64, 0i64);
    for ((kind, id), side) in &sides {
        let name = CommitmentKind::try_from(*kind)
            .unwrap_or(CommitmentKind::Unspecified)
            .as_str_name();
        let budget = side.disbursed.unwrap_or(0);
        approved += side.approved;
        disbursed += budget;
        recorded += side.recorded;
        let mut wrong = Vec::new();
        if side.approved != budget {
            wrong.push(format!(
                "approved {} øre, budget disbursed {budget} øre",
                side.approved
            ));
        }
        if side.settlements > 1 {
            wrong.push(format!("{} approved claims or invoices", side.settlements));
        }
        if side.records > 1 {
            wrong.push(format!("paid {} times", side.records));
        }
        if side.recorded != side.approved {
            wrong.push(format!(
                "the payment system recorded {} øre paid against {} øre approved",
                side.recorded, side.approved
            ));
        }
        if side.unpaid != 0 {
            wrong.push(format!(
                "{} øre approved but not PAID in the service",
                side.unpaid
            ));
        }
        if !wrong.is_empty() {
            violations.push(Violation::new(
                MONEY_AGREES,
                format!("{name} {id}: {}", wrong.join("; ")),
            ));
        }
    }
    if approved != disbursed || disbursed != recorded {
        violations.push(Violation::new(
            MONEY_AGREES,
            format!(
                "in total: payouts and approved invoices {approved} øre, budget's disbursements \
                 {disbursed} øre, the payment system's records {recorded} øre"
            ),
        ));
    }

    let mut paid_per_case: HashMap<&str, i64> = HashMap::new();
    for payment in payments {
        if let Some(case) = case_of.get(&(payment.kind as i32, payment.commitment_id.as_str())) {
            *paid_per_case.entry(case).or_default() += payment.ore;
        }
    }
    for outcome in outcomes
        .iter()
        .filter(|outcome| !outcome.case_id.is_empty())
    {
        let recorded = paid_per_case
            .get(outcome.case_id.as_str())
            .copied()
            .unwrap_or(0);
        if recorded != outcome.money.paid_ore {
            violations.push(Violation::new(
                MONEY_AGREES,
                format!(
                    "case #{} ({}): the case saw {} øre paid, the payment records of its \
                     commitments say {recorded} øre",
                    outcome.number, outcome.case_id, outcome.money.paid_ore
                ),
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use ekb_proto::v1::ReservationStatus;

    use super::*;

    fn reservation(case: &str, kind: CommitmentKind, id: &str, disbursed: i64) -> Reservation {
        Reservation {
            commitment: Some(ekb_proto::v1::Commitment {
                kind: kind as i32,
                commitment_id: id.to_owned(),
            }),
            case_id: case.to_owned(),
            status: ReservationStatus::Settled as i32,
            reserved_ore: disbursed,
            disbursed_ore: disbursed,
            ..Default::default()
        }
    }

    fn settlement(kind: CommitmentKind, id: &str, ore: i64, paid: bool) -> Settlement {
        Settlement {
            kind,
            commitment_id: id.to_owned(),
            source_id: format!("s-{id}"),
            approved_ore: ore,
            paid,
        }
    }

    fn payment(kind: CommitmentKind, id: &str, ore: i64) -> PaymentRecord {
        PaymentRecord {
            kind,
            commitment_id: id.to_owned(),
            ore,
        }
    }

    #[test]
    fn three_sides_that_agree_per_commitment_pass() {
        let settlements = [
            settlement(CommitmentKind::Grant, "g1", 800, true),
            settlement(CommitmentKind::PilotOrder, "o1", 500, true),
        ];
        let reservations = [
            reservation("c1", CommitmentKind::Grant, "g1", 800),
            reservation("c2", CommitmentKind::PilotOrder, "o1", 500),
        ];
        let payments = [
            payment(CommitmentKind::Grant, "g1", 800),
            payment(CommitmentKind::PilotOrder, "o1", 500),
        ];
        assert_eq!(judge(&settlements, &reservations, &payments, &[]), vec![]);
    }

    #[test]
    fn a_payout_paid_twice_shows_on_its_commitment_and_in_the_total() {
        let settlements = [settlement(CommitmentKind::Grant, "g1", 800, true)];
        let reservations = [reservation("c1", CommitmentKind::Grant, "g1", 800)];
        let payments = [
            payment(CommitmentKind::Grant, "g1", 800),
            payment(CommitmentKind::Grant, "g1", 800),
        ];
        let violations = judge(&settlements, &reservations, &payments, &[]);
        assert_eq!(violations.len(), 2, "{violations:#?}");
        assert!(violations[0].detail.contains("paid 2 times"));
        assert!(
            violations[0]
                .detail
                .contains("recorded 1600 øre paid against 800 øre approved")
        );
        assert!(violations[1].detail.starts_with("in total"));
    }

    #[test]
    fn a_disbursement_without_an_approval_and_an_unpaid_invoice_are_violations() {
        let settlements = [settlement(CommitmentKind::PilotOrder, "o1", 500, false)];
        let reservations = [
            reservation("c1", CommitmentKind::Grant, "g1", 300),
            reservation("c2", CommitmentKind::PilotOrder, "o1", 500),
        ];
        let violations = judge(&settlements, &reservations, &[], &[]);
        let details: Vec<&str> = violations.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(violations.len(), 3, "{details:#?}");
        assert!(
            details[0]
                .starts_with("COMMITMENT_KIND_GRANT g1: approved 0 øre, budget disbursed 300")
        );
        assert!(details[1].contains("500 øre approved but not PAID"));
    }

    #[test]
    fn a_case_whose_paid_money_differs_from_its_commitments_records_is_a_violation() {
        let reservations = [reservation("c1", CommitmentKind::Grant, "g1", 800)];
        let settlements = [settlement(CommitmentKind::Grant, "g1", 800, true)];
        let payments = [payment(CommitmentKind::Grant, "g1", 800)];
        let path = crate::plan::Path::Regular(crate::regular::RegularPath::ALL[0]);
        let outcome = CaseOutcome {
            number: 3,
            planned: path,
            observed: path,
            case_id: "c1".to_owned(),
            fell_back: false,
            money: crate::plan::CaseMoney {
                paid_ore: 700,
                ..Default::default()
            },
        };
        let violations = judge(&settlements, &reservations, &payments, &[outcome]);
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0]
                .detail
                .starts_with("case #3 (c1): the case saw 700 øre paid")
        );
    }
}
