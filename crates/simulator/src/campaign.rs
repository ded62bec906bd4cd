//! Campaign mode: many fault seeds, each with a small year, and the list of seeds that failed
//! with the command that reproduces each.

use crate::{options::Options, population::YearConfig, run::simulate};

/// Runs `seeds` fault seeds from `--faults` (or 1) on `year`; true when every one passed.
pub async fn run(options: &Options, year: &YearConfig, seeds: u32) -> anyhow::Result<bool> {
    let first = options.faults.unwrap_or(1);
    let mut failed = Vec::new();
    for faults in first..first + u64::from(seeds) {
        let report = simulate(options, year, options.seed, Some(faults)).await?;
        let verdict = if report.passed() { "passed" } else { "FAILED" };
        println!(
            "fault seed {faults}: {verdict} ({} cases, {} failed, {} violations, {:.0} s)",
            report.planned.len(),
            report.failures.len(),
            report.violations.len(),
            report.wall.as_secs_f64()
        );
        if !report.passed() {
            failed.push((faults, report.reproduce(year.cases as usize)));
        }
    }
    println!("\nCampaign: {} of {seeds} fault seeds failed", failed.len());
    for (faults, command) in &failed {
        println!("  seed {faults}: {command}");
    }
    Ok(failed.is_empty())
}
