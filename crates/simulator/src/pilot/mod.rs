//! The § 9a pilot flow's paths, as the simulator carries them out: NAV Innlandet's caseworker
//! orders an expert under a framework agreement, the suppliers answer down the ranks, the
//! expert works, the supplier invoices, two NAV people approve, the payment system pays — and
//! every way the contract lets that go otherwise (ADR 0022, 0025).
//!
//! Why the planned and the observed path can differ: a case's people choose what they do
//! (decline, never start, invoice too much, never invoice), but the monthly capacity of the
//! agreements is shared by every case of the month and budget's appropriation by every case of
//! the year. A case meant to be served by the best supplier may find that supplier's month
//! full, and one meant to decline down the ranks may find the lower ranks full and fall back.
//! [`run`] does what the plan asks where the contract leaves the choice to the caller, goes
//! where the system sends it otherwise, and reports the path the services' own states show.
//!
//! - [`agreements`]: the county's framework agreements and their registration;
//! - `pace`: the case's days and amounts, from its seed;
//! - `orders`: the steps through pilot-ordering's contract;
//! - `walk`: one case from opening to the end of its path;
//! - `fallback`: a case that left the pilot, carried on in the regular flow;
//! - [`observe`]: what the services show at the end, and which path that is.

pub mod agreements;
mod fallback;
pub mod observe;
mod orders;
mod pace;
mod walk;

pub use agreements::{
    AgreementRef, AgreementSpec, agreement_book, orders_per_area_month, register_agreements,
    register_agreements_for, register_agreements_sized,
};
use anyhow::Context;
use ekb_proto::v1::CompetenceArea;
pub use orders::PAYMENT_REFERENCE_PREFIX;

use crate::{
    plan::{CaseOutcome, CasePlan},
    timeline::Sim,
};

/// Settings the pilot's paths need, as `(service, key, value)`: the simulator is NAV's payment
/// system, so pilot-ordering's fake one must leave every outcome to it (accept the hand-over,
/// answer later through RecordInvoicePaymentOutcome).
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("pilot-ordering", "payment.fake_outcome", "deferred"),
    // The simulator answers every hand-over the same simulated day; a hand-over again after a
    // minute would repeat it on every simulated day (a write each) until the answer lands.
    ("pilot-ordering", "payment.resend_after", "7days"),
];

/// A path through the pilot flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PilotPath {
    /// Ordered from the best-ranked supplier, accepted, started, completed, invoiced, attested
    /// and approved, paid.
    Completed,
    /// Declined by the first supplier(s); a lower rank accepts, and on to payment.
    Declined,
    /// The best supplier's month was full: a lower rank takes the order (and on to payment),
    /// or — every agreement full — the case goes to the regular flow (AGREEMENTS_FULL).
    CapacityFull,
    /// Every supplier declines; pilot-ordering falls the case back and it is carried on in the
    /// regular flow on the same case, to a paid refund.
    Fallback,
    /// Accepted, but the expert never starts: the sweep expires the order (NOT_STARTED_IN_TIME).
    NotStarted,
    /// Started, then aborted; the supplier invoices the work done, which is paid.
    Aborted,
    /// Invoiced above the agreement's price (registered REJECTED, PRICE_ABOVE_AGREEMENT), then
    /// invoiced again at most the price, and paid.
    InvoiceAbovePrice,
    /// Completed but never invoiced: the sweep expires the order after the invoice deadline
    /// (INVOICE_DEADLINE_PASSED) and budget releases the money.
    InvoiceDeadlineMissed,
    /// Budget denied the order's money (the appropriation used up): the order is cancelled.
    /// Observed only — not a choice of the case's people, so its default weight is 0.
    FundsDenied,
}

impl PilotPath {
    /// Every path, in the summary's order.
    pub const ALL: &[PilotPath] = &[
        PilotPath::Completed,
        PilotPath::Declined,
        PilotPath::CapacityFull,
        PilotPath::Fallback,
        PilotPath::NotStarted,
        PilotPath::Aborted,
        PilotPath::InvoiceAbovePrice,
        PilotPath::InvoiceDeadlineMissed,
        PilotPath::FundsDenied,
    ];

    /// The path's name in the summary and the mix configuration.
    pub fn name(self) -> &'static str {
        match self {
            PilotPath::Completed => "completed",
            PilotPath::Declined => "declined",
            PilotPath::CapacityFull => "capacity_full",
            PilotPath::Fallback => "fallback",
            PilotPath::NotStarted => "not_started",
            PilotPath::Aborted => "aborted",
            PilotPath::InvoiceAbovePrice => "invoice_above_price",
            PilotPath::InvoiceDeadlineMissed => "invoice_deadline_missed",
            PilotPath::FundsDenied => "funds_denied",
        }
    }

    /// The path's share of pilot cases when the mix does not name it. Most orders go through;
    /// capacity and funds are not the case's choice ([`PilotPath::CapacityFull`] walks as
    /// completed and finds what the month left; [`PilotPath::FundsDenied`] is never planned).
    pub fn weight_default(self) -> f64 {
        match self {
            PilotPath::Completed => 0.55,
            PilotPath::Declined => 0.12,
            PilotPath::CapacityFull => 0.08,
            PilotPath::Fallback => 0.06,
            PilotPath::NotStarted => 0.04,
            PilotPath::Aborted => 0.06,
            PilotPath::InvoiceAbovePrice => 0.05,
            PilotPath::InvoiceDeadlineMissed => 0.04,
            PilotPath::FundsDenied => 0.0,
        }
    }
}

/// What `plan` reserves if its order is granted: the best-ranked agreement's price in its area
/// (a decline's follow-up is reserved after the declined order is released; a fallback's grant
/// after the pilot's orders are).
pub fn reserved_if_granted(plan: &CasePlan, _path: PilotPath) -> i64 {
    agreements::base_price(plan.area.unwrap_or(CompetenceArea::Unspecified))
}

/// Carries out `path` for `case`: waits for its day, opens it (county 34, its framework area),
/// walks the path with the case's own delays, and reads the services' states at the end to
/// say which path it took and what money it moved.
pub async fn run(sim: &Sim, case: &CasePlan, path: PilotPath) -> anyhow::Result<CaseOutcome> {
    let outcome = async {
        let walked = walk::walk(sim, case, path).await?;
        observe::outcome(sim, case, path, walked).await
    };
    outcome
        .await
        .with_context(|| format!("case {} (pilot.{})", case.number, path.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_snake_case_and_weights_sum_to_one() {
        let mut names: Vec<&str> = PilotPath::ALL.iter().map(|path| path.name()).collect();
        assert!(
            names
                .iter()
                .all(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PilotPath::ALL.len());
        let total: f64 = PilotPath::ALL
            .iter()
            .map(|path| path.weight_default())
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        assert!(
            PilotPath::ALL
                .iter()
                .all(|path| path.weight_default() >= 0.0)
        );
    }
}
