//! What must hold at the end of a simulation, whatever happened on the way.
//!
//! Why: a case task sees only its own case, through the contracts, while it runs. Whether the
//! money adds up over the whole year, whether a consumer applied an event twice after a crash,
//! whether a fødselsnummer slipped onto a topic, into a log or into a database column — that
//! only shows when the whole system is looked at once it has settled, from every side: the
//! services' contracts, their databases, the broker and the log files. Each invariant is a file
//! of its own, with its reading (I/O) apart from its judging (pure functions with unit tests):
//!
//! - [`reservations`]: per reservation reserved = disbursed + released once settled, and every
//!   case's [`CaseMoney`](crate::plan::CaseMoney) agrees with budget's reservations for the case;
//! - [`appropriations`]: appropriated ≥ committed at every moment (the [`BudgetSampler`] runs
//!   during the simulation) and `Reconcile` clean at the end;
//! - [`money`]: refund payouts and paid invoices = budget's disbursements = the payment
//!   system's records ([`PaymentRecord`]), to the øre;
//! - [`applied_once`]: no event applied twice by any consumer (read from the databases);
//! - [`dead_letters`]: dead-letter topics empty unless malformed events were fed on purpose
//!   (the fault schedule feeds none: a fault is not poison);
//! - [`personal_data`]: no fødselsnummer on any topic, in any log or in clear in any database
//!   ([`fnr_detector`] finds them; [`protobuf_strings`] opens what the broker carries);
//! - [`evaluation`]: the evaluation's published figures (cases opened, fallbacks, lack of
//!   funds, the pilot's employer steps) agree with what the simulator did to each case.
//!
//! [`check`] runs them all but the evaluation's, which `run` checks beside them since it also
//! gives the summary its headline (call [`settle::settle`] first, so trailing events are
//! applied).
//! A [`Violation`] never carries a fødselsnummer: it names the case by its plan number, a
//! record by topic, partition and offset, a column by table and name.

pub mod applied_once;
pub mod appropriations;
pub mod databases;
pub mod dead_letters;
pub mod evaluation;
pub mod fnr_detector;
pub mod grpc;
pub mod money;
pub mod personal_data;
pub mod protobuf_strings;
pub mod reservations;
pub mod settle;
pub mod topics;

use std::{fmt, path::Path};

use ekb_proto::v1::CommitmentKind;

pub use appropriations::BudgetSampler;

use crate::{plan::CaseOutcome, timeline::Sim};

/// At most this many violations of one invariant are listed one by one; the rest are counted
/// in a last line, so a systematic fault does not print twenty thousand lines.
pub const MAX_LISTED_PER_INVARIANT: usize = 20;

/// One broken invariant. `detail` never contains a fødselsnummer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant, e.g. `reservation balance`.
    pub invariant: &'static str,
    /// What was seen, for people: ids, plan numbers, amounts, places — never a national id.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> Self {
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// A payment the simulator, playing NAV's payment system, recorded as PAID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// `Grant` for a refund payout (RecordPaymentOutcome), `PilotOrder` for a supplier invoice
    /// (RecordInvoicePaymentOutcome).
    pub kind: CommitmentKind,
    /// The grant id (refund) or the order id (invoice): budget's commitment.
    pub commitment_id: String,
    /// Øre paid.
    pub ore: i64,
}

/// Everything the end-of-run checks read.
pub struct Context<'a> {
    /// The clients of the running system and the callers' tokens (budget, refunds and
    /// pilot-ordering are read as `Caller::System`).
    pub sim: &'a Sim,
    /// The budget years the simulation can have charged (ListReservations and Reconcile are
    /// per year).
    pub budget_years: &'a [i32],
    /// Each service's database: (service name as in the catalog, e.g. `budget`; URL).
    pub database_urls: &'a [(String, String)],
    /// The Kafka bootstrap servers.
    pub brokers: &'a str,
    /// The topic prefix (`ekspertbistand` unless configured otherwise): every topic
    /// `<prefix>.…` is read.
    pub topic_prefix: &'a str,
    /// The directory of the services' log files (every file in it is read), if any.
    pub log_dir: Option<&'a Path>,
    /// True when the run fed malformed events on purpose: dead letters are then not a
    /// violation. The fault schedule (`--faults`) feeds none — a crash, a frozen service, a lost
    /// connection or a broker outage is not a poison message (ADR 0026) — so a dead letter is a
    /// violation under faults too.
    pub poison_injected: bool,
    /// Every employee's fødselsnummer the simulation sent to the services.
    pub employees: &'a [String],
    /// What each case task saw.
    pub outcomes: &'a [CaseOutcome],
    /// What the simulator recorded as paid, playing the payment system.
    pub payments: &'a [PaymentRecord],
}

/// Checks every invariant once the system has settled; returns what is broken (empty when all
/// hold). An error means a check could not read what it needs (a service, the broker or a
/// database did not answer), not that an invariant is broken.
pub async fn check(ctx: &Context<'_>) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    let reservations = reservations::list(ctx.sim, ctx.budget_years).await?;
    violations.extend(reservations::judge(&reservations, ctx.outcomes));
    violations.extend(appropriations::reconcile(ctx.sim, ctx.budget_years).await?);
    let settlements = money::settlements(ctx.sim).await?;
    violations.extend(money::judge(
        &settlements,
        &reservations,
        ctx.payments,
        ctx.outcomes,
    ));
    violations.extend(applied_once::check(ctx.database_urls).await?);
    violations.extend(
        dead_letters::check(
            ctx.brokers,
            ctx.topic_prefix,
            ctx.database_urls,
            ctx.poison_injected,
        )
        .await?,
    );
    violations.extend(personal_data::check(ctx).await?);
    Ok(capped(violations))
}

/// Keeps the first [`MAX_LISTED_PER_INVARIANT`] violations of each invariant and sums up the
/// rest in one line per invariant.
pub fn capped(violations: Vec<Violation>) -> Vec<Violation> {
    let mut kept: Vec<Violation> = Vec::new();
    let mut over: Vec<(&'static str, usize)> = Vec::new();
    for violation in violations {
        let listed = kept
            .iter()
            .filter(|kept| kept.invariant == violation.invariant)
            .count();
        if listed < MAX_LISTED_PER_INVARIANT {
            kept.push(violation);
        } else if let Some((_, count)) = over
            .iter_mut()
            .find(|(name, _)| *name == violation.invariant)
        {
            *count += 1;
        } else {
            over.push((violation.invariant, 1));
        }
    }
    for (invariant, count) in over {
        kept.push(Violation::new(
            invariant,
            format!("… and {count} more like these"),
        ));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capping_keeps_the_first_of_each_invariant_and_counts_the_rest() {
        let mut violations: Vec<Violation> = (0..25)
            .map(|n| Violation::new("a", format!("a{n}")))
            .collect();
        violations.push(Violation::new("b", "b0"));
        let capped = capped(violations);
        assert_eq!(capped.len(), MAX_LISTED_PER_INVARIANT + 2);
        assert!(capped.contains(&Violation::new("b", "b0")));
        assert!(capped.contains(&Violation::new("a", "… and 5 more like these")));
    }
}
