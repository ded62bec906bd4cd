//! What a simulation prints at the end: cases per path (planned by the model, observed in the
//! services), cases that failed on the way, the evaluation's headline figures of the year, the
//! run's time and commits against pgbench, each service's peak memory, and every invariant
//! violated.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use crate::{
    cpu::CpuSplit,
    invariants::{Violation, evaluation::Headline},
    plan::{CaseOutcome, Path},
    vacuum::Vacuums,
};

/// A case task that ended with an error instead of an outcome.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The case's plan number.
    pub number: u32,
    /// The path it was meant to take.
    pub planned: Path,
    /// What went wrong (no personal data: the steps name the case by number).
    pub error: String,
}

/// A finished simulation.
#[derive(Debug)]
pub struct Report {
    /// The year's seed.
    pub seed: u64,
    /// The fault seed, if faults were injected.
    pub faults: Option<u64>,
    /// Every case's planned path.
    pub planned: Vec<Path>,
    /// What the cases that finished saw.
    pub outcomes: Vec<CaseOutcome>,
    /// The cases that did not finish.
    pub failures: Vec<Failure>,
    /// Transactions the services committed during the year.
    pub commits: u64,
    /// Wall time of the year (from the first day to the last case's end).
    pub year_wall: Duration,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Peak resident memory per service, MiB (of its last process).
    pub peak_rss_mib: Vec<(String, f64)>,
    /// Where the CPU went in the year, and pgbench's runs (unless skipped).
    pub cpu: CpuSplit,
    /// What the simulator's stand-in for autovacuum did, when the server runs without it.
    pub vacuums: Option<Vacuums>,
    /// Every invariant violated.
    pub violations: Vec<Violation>,
    /// The evaluation's headline figures of the year, if it was read.
    pub evaluation: Option<Headline>,
    /// The faults injected, by day.
    pub injected: Vec<String>,
    /// Where the logs are.
    pub run_dir: PathBuf,
}

impl Report {
    /// True when every case finished on its planned path and no invariant was violated.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.violations.is_empty()
    }

    /// The command that runs this simulation again.
    pub fn reproduce(&self, cases: usize) -> String {
        let faults = self
            .faults
            .map(|faults| format!(" --faults {faults}"))
            .unwrap_or_default();
        format!(
            "cargo run -p ekb-simulator --bin ekb-simulate -- --seed {} --cases {cases}{faults}",
            self.seed
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for path in &self.planned {
            rows.entry(path.name()).or_default().0 += 1;
        }
        for outcome in &self.outcomes {
            rows.entry(outcome.observed.name()).or_default().1 += 1;
        }
        writeln!(f, "Cases per path          planned  observed")?;
        for (name, (planned, observed)) in &rows {
            writeln!(f, "  {name:<22} {planned:>7}  {observed:>8}")?;
        }
        let off_plan = self
            .outcomes
            .iter()
            .filter(|outcome| outcome.observed != outcome.planned)
            .count();
        writeln!(
            f,
            "  {} cases, {} finished ({} on another path than planned), {} failed",
            self.planned.len(),
            self.outcomes.len(),
            off_plan,
            self.failures.len()
        )?;
        for failure in self.failures.iter().take(10) {
            writeln!(
                f,
                "  FAILED case {} ({}): {}",
                failure.number,
                failure.planned.name(),
                failure.error
            )?;
        }
        if let Some(evaluation) = &self.evaluation {
            write!(f, "{evaluation}")?;
        }
        let seconds = self.year_wall.as_secs_f64().max(f64::EPSILON);
        writeln!(
            f,
            "Time: the year took {:.1} s of wall time ({:.1} s in all); {} commits, {:.0} commits/s",
            seconds,
            self.wall.as_secs_f64(),
            self.commits,
            self.commits as f64 / seconds
        )?;
        if let Some(baselines) = &self.cpu.baselines {
            let shape = &baselines.shape;
            for (what, run, target) in [
                (
                    format!(
                        "commits of the year's shape ({:.2} rows inserted, {:.2} updated, {:.2} \
                         deleted, {:.2} read by key per commit)",
                        shape.inserted, shape.updated, shape.deleted, shape.read
                    ),
                    &baselines.same_shape,
                    " (target ≤ 3×, ADR 0036)",
                ),
                ("one-row commits".to_owned(), &baselines.one_row, ""),
            ] {
                let time = run.time_for(self.commits).as_secs_f64();
                writeln!(
                    f,
                    "pgbench, {what}: {:.0}/s on this machine now; the same {} commits take it \
                     {time:.1} s; ratio {:.1}×{target}",
                    run.commits_per_second,
                    self.commits,
                    seconds / time.max(f64::EPSILON),
                )?;
            }
        }
        write!(f, "{}", self.cpu)?;
        if let Some(vacuums) = &self.vacuums {
            writeln!(
                f,
                "PostgreSQL runs with autovacuum off: the simulator vacuumed and analyzed the \
                 services' databases every {} s instead ({} done, {} skipped)",
                crate::vacuum::EVERY.as_secs(),
                vacuums.done,
                vacuums.skipped
            )?;
        }
        let memory: Vec<String> = self
            .peak_rss_mib
            .iter()
            .map(|(service, mib)| format!("{service} {mib:.1}"))
            .collect();
        writeln!(f, "Peak RSS (MiB): {}", memory.join(", "))?;
        if !self.injected.is_empty() {
            writeln!(f, "Faults injected: {}", self.injected.len())?;
            for fault in &self.injected {
                writeln!(f, "  {fault}")?;
            }
        }
        if self.violations.is_empty() {
            writeln!(f, "Invariants: all hold")?;
        } else {
            writeln!(f, "Invariants: {} VIOLATED", self.violations.len())?;
            for violation in self.violations.iter().take(30) {
                writeln!(f, "  {}: {}", violation.invariant, violation.detail)?;
            }
        }
        writeln!(f, "Logs: {}", self.run_dir.display())
    }
}
