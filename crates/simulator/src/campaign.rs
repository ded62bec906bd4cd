//! Campaign mode: many fault seeds, each with a small year, and the list of seeds that failed
//! with the command that reproduces each. Runs go side by side (`--parallel`): a small year's
//! wall time is mostly waiting for events, not CPU, and each run has its own databases
//! (`ekb_sim_f<seed>_…`, dropped once judged), topics, ports and clock file.

use futures::{StreamExt, stream};

use crate::{options::Options, population::YearConfig, run::simulate};

/// Runs `seeds` fault seeds from `--faults` (or 1) on `year`; true when every one passed.
pub async fn run(options: &Options, year: &YearConfig, seeds: u32) -> anyhow::Result<bool> {
    let first = options.faults.unwrap_or(1);
    let mut runs = stream::iter(first..first + u64::from(seeds))
        .map(|faults| async move {
            (
                faults,
                simulate(options, year, options.seed, Some(faults)).await,
            )
        })
        .buffer_unordered(options.parallel.max(1));
    let mut failed = Vec::new();
    let mut done = 0;
    while let Some((faults, result)) = runs.next().await {
        done += 1;
        let command = format!(
            "cargo run -p ekb-simulator --bin ekb-simulate -- --seed {} --cases {} --faults {faults}",
            options.seed, year.cases
        );
        match result {
            Ok(report) if report.passed() => println!(
                "[{done}/{seeds}] fault seed {faults}: passed ({} cases, {} faults, {:.0} s)",
                report.planned.len(),
                report.injected.len(),
                report.wall.as_secs_f64()
            ),
            Ok(report) => {
                println!(
                    "[{done}/{seeds}] fault seed {faults}: FAILED ({} cases failed, {} violations)\n{report}",
                    report.failures.len(),
                    report.violations.len(),
                );
                failed.push((faults, command));
            }
            Err(error) => {
                println!("[{done}/{seeds}] fault seed {faults}: could not run: {error:#}");
                failed.push((faults, command));
            }
        }
    }
    println!("\nCampaign: {} of {seeds} fault seeds failed", failed.len());
    for (faults, command) in &failed {
        println!("  seed {faults}: {command}");
    }
    Ok(failed.is_empty())
}
