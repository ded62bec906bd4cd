//! Per budget year and account, appropriated ≥ committed at every moment, and `Reconcile`
//! clean at the end.
//!
//! Why sampled during the run: the end state says nothing about the moment in August when two
//! reservations raced for the last kroner; an overdraft that is later released leaves no trace
//! in the final figures. The [`BudgetSampler`] reads every appropriation every few hundred
//! wall milliseconds while the simulation runs and keeps what it saw. Each answer is one
//! snapshot of budget's row, so its figures must also agree with each other (committed =
//! outstanding + disbursed, available = appropriated − committed). A read that fails (a
//! service killed by the fault schedule) is counted, not judged; an appropriation not set yet
//! (NOT_FOUND) is skipped.
//!
//! At the end, `Reconcile` recomputes every balance from the ledger entries: any difference,
//! and any appropriation whose recomputed commitments exceed it, is a violation.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ekb_proto::v1::{Appropriation, BudgetAccount, GetAppropriationRequest, ReconcileRequest};
use tokio::{sync::oneshot, task::JoinHandle};

use super::{
    Violation,
    grpc::{retrying, system_token},
};
use crate::timeline::Sim;

/// Committed above appropriated, or an appropriation's figures that contradict each other.
pub const NEVER_OVERDRAWN: &str = "appropriated ≥ committed";
/// Reconcile found a difference between the kept balances and the ledger.
pub const RECONCILE_CLEAN: &str = "reconcile clean";

/// A background task sampling appropriations while the simulation runs.
pub struct BudgetSampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Samples>,
}

/// What the sampler saw.
#[derive(Debug, Default)]
struct Samples {
    /// Reads answered with an appropriation.
    read: u64,
    /// Reads that failed (service down, timeout).
    failed: u64,
    /// Per (year, chapter, post): the first wrong snapshot seen and how many were wrong.
    wrong: BTreeMap<(i32, i32, i32), (String, u64)>,
}

impl BudgetSampler {
    /// Starts sampling `appropriations` (year and account) every `every` of wall time.
    pub fn start(
        sim: Arc<Sim>,
        appropriations: Vec<(i32, BudgetAccount)>,
        every: Duration,
    ) -> BudgetSampler {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {}
                }
                sample_once(&sim, &appropriations, &mut samples).await;
            }
            // One last look, so a run shorter than the interval is sampled too.
            sample_once(&sim, &appropriations, &mut samples).await;
            samples
        });
        BudgetSampler { stop, task }
    }

    /// Stops sampling; returns what was wrong at any moment sampled.
    pub async fn finish(self) -> Vec<Violation> {
        let _ = self.stop.send(());
        let samples = match self.task.await {
            Ok(samples) => samples,
            Err(error) => {
                return vec![Violation::new(
                    NEVER_OVERDRAWN,
                    format!("the budget sampler failed: {error}"),
                )];
            }
        };
        let mut violations: Vec<Violation> = samples
            .wrong
            .into_iter()
            .map(|((year, chapter, post), (first, count))| {
                Violation::new(
                    NEVER_OVERDRAWN,
                    format!(
                        "appropriation {year} {chapter}.{post:02}: {count} sample(s) wrong; the \
                         first: {first}"
                    ),
                )
            })
            .collect();
        if samples.read == 0 {
            violations.push(Violation::new(
                NEVER_OVERDRAWN,
                format!(
                    "the sampler never read an appropriation ({} reads failed): nothing shows \
                     that committed stayed within appropriated",
                    samples.failed
                ),
            ));
        }
        violations
    }
}

async fn sample_once(sim: &Sim, appropriations: &[(i32, BudgetAccount)], samples: &mut Samples) {
    let token = system_token(sim);
    for (year, account) in appropriations {
        let request = ekb_testkit::services::with_bearer(
            GetAppropriationRequest {
                budget_year: *year,
                account: Some(*account),
            },
            &token,
        );
        let mut budget = sim.clients.budget.clone();
        match budget.get_appropriation(request).await {
            Ok(response) => {
                samples.read += 1;
                let Some(appropriation) = response.into_inner().appropriation else {
                    continue;
                };
                if let Some(wrong) = judge_snapshot(&appropriation) {
                    let key = (*year, account.chapter, account.post);
                    let moment = format!("on simulated day {}: {wrong}", sim.today());
                    samples.wrong.entry(key).or_insert((moment, 0)).1 += 1;
                }
            }
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(_) => samples.failed += 1,
        }
    }
}

/// What is wrong with one snapshot of an appropriation, if anything.
pub fn judge_snapshot(appropriation: &Appropriation) -> Option<String> {
    let Appropriation {
        appropriated_ore: appropriated,
        outstanding_ore: outstanding,
        disbursed_ore: disbursed,
        committed_ore: committed,
        available_ore: available,
        ..
    } = *appropriation;
    let mut wrong = Vec::new();
    if committed > appropriated {
        wrong.push(format!(
            "committed {committed} > appropriated {appropriated} øre"
        ));
    }
    if committed != outstanding + disbursed {
        wrong.push(format!(
            "committed {committed} ≠ outstanding {outstanding} + disbursed {disbursed} øre"
        ));
    }
    if available != appropriated - committed {
        wrong.push(format!(
            "available {available} ≠ appropriated {appropriated} − committed {committed} øre"
        ));
    }
    if outstanding < 0 {
        wrong.push(format!("outstanding {outstanding} øre is negative"));
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// Runs `Reconcile` for every year; returns its differences and any overdrawn appropriation.
pub async fn reconcile(sim: &Sim, years: &[i32]) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for &year in years {
        let token = system_token(sim);
        let report = retrying("budget Reconcile", || {
            let mut budget = sim.clients.budget.clone();
            let request =
                ekb_testkit::services::with_bearer(ReconcileRequest { budget_year: year }, &token);
            async move { budget.reconcile(request).await }
        })
        .await?;
        violations.extend(judge_reconcile(&report));
    }
    Ok(violations)
}

/// What `Reconcile`'s answer shows is wrong.
pub fn judge_reconcile(report: &ekb_proto::v1::ReconcileResponse) -> Vec<Violation> {
    let mut violations: Vec<Violation> = report
        .differences
        .iter()
        .map(|difference| {
            Violation::new(
                RECONCILE_CLEAN,
                format!(
                    "{year}: {} {}: kept {} øre, the ledger says {} øre ({})",
                    difference.subject,
                    difference.figure,
                    difference.recorded_ore,
                    difference.recomputed_ore,
                    difference.detail,
                    year = report.budget_year
                ),
            )
        })
        .collect();
    if !report.consistent && report.differences.is_empty() {
        violations.push(Violation::new(
            RECONCILE_CLEAN,
            format!(
                "{}: not consistent, without a difference listed",
                report.budget_year
            ),
        ));
    }
    for balance in &report.balances {
        let committed = balance.reserved_ore - balance.released_ore;
        if committed > balance.appropriated_ore || balance.outstanding_ore < 0 {
            let account = balance.account.unwrap_or_default();
            violations.push(Violation::new(
                NEVER_OVERDRAWN,
                format!(
                    "appropriation {} {}.{:02} by the ledger: committed {committed} øre \
                     (outstanding {}) against {} øre appropriated",
                    balance.budget_year,
                    account.chapter,
                    account.post,
                    balance.outstanding_ore,
                    balance.appropriated_ore
                ),
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use ekb_proto::v1::{BalanceDifference, LedgerBalance, ReconcileResponse};

    use super::*;

    fn snapshot(appropriated: i64, outstanding: i64, disbursed: i64) -> Appropriation {
        let committed = outstanding + disbursed;
        Appropriation {
            appropriated_ore: appropriated,
            outstanding_ore: outstanding,
            disbursed_ore: disbursed,
            committed_ore: committed,
            available_ore: appropriated - committed,
            ..Default::default()
        }
    }

    #[test]
    fn a_snapshot_within_its_appropriation_passes_and_one_above_it_does_not() {
        assert_eq!(judge_snapshot(&snapshot(1000, 600, 400)), None);
        let over = judge_snapshot(&snapshot(1000, 700, 400)).expect("overdrawn");
        assert!(
            over.contains("committed 1100 > appropriated 1000"),
            "{over}"
        );
    }

    #[test]
    fn a_snapshot_whose_figures_contradict_each_other_is_wrong() {
        let mut torn = snapshot(1000, 100, 100);
        torn.committed_ore = 150;
        let wrong = judge_snapshot(&torn).expect("contradicts");
        assert!(
            wrong.contains("committed 150 ≠ outstanding 100 + disbursed 100"),
            "{wrong}"
        );
    }

    #[test]
    fn reconcile_differences_and_ledger_overdrafts_are_violations() {
        let report = ReconcileResponse {
            budget_year: 2027,
            consistent: false,
            balances: vec![LedgerBalance {
                budget_year: 2027,
                account: Some(BudgetAccount {
                    chapter: 2650,
                    post: 76,
                }),
                appropriated_ore: 100,
                reserved_ore: 300,
                released_ore: 100,
                outstanding_ore: 50,
                ..Default::default()
            }],
            differences: vec![BalanceDifference {
                subject: "reservation x".to_owned(),
                figure: "disbursed_ore".to_owned(),
                recorded_ore: 5,
                recomputed_ore: 6,
                detail: "differs".to_owned(),
            }],
            ..Default::default()
        };
        let violations = judge_reconcile(&report);
        assert_eq!(violations.len(), 2);
        assert_eq!(violations[0].invariant, RECONCILE_CLEAN);
        assert_eq!(violations[1].invariant, NEVER_OVERDRAWN);
        assert!(
            violations[1].detail.contains("2650.76"),
            "{}",
            violations[1]
        );
        let clean = ReconcileResponse {
            budget_year: 2027,
            consistent: true,
            ..Default::default()
        };
        assert_eq!(judge_reconcile(&clean), vec![]);
    }
}
