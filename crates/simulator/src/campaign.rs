//! Campaign mode: many fault seeds, each with a small year, and the list of seeds that failed
//! with the command that reproduces each. Runs go side by side (`--parallel`): a small year's
//! wall time is mostly waiting for events, not CPU, and each run has its own databases
//! (`ekb_sim_f<seed>_…`, dropped once judged), topics, ports and clock file.
//!
//! Ctrl-C or SIGTERM stops the campaign cleanly: the runs in flight are dropped, which stops
//! their services (each in a process group of its own, so they would outlive the campaign and
//! keep their ports), and their databases are dropped; the seeds judged so far are reported.

use std::{cell::RefCell, collections::BTreeSet};

use anyhow::Context;
use futures::{StreamExt, stream};
use tokio::signal::unix::{SignalKind, signal};

use crate::{options::Options, population::YearConfig, run::simulate, system};

/// Runs `seeds` fault seeds from `--faults` (or 1) on `year`; true when every one passed.
pub async fn run(options: &Options, year: &YearConfig, seeds: u32) -> anyhow::Result<bool> {
    let first = options.faults.unwrap_or(1);
    // The seeds started and not yet judged: the ones to clean up if the campaign is interrupted.
    let in_flight = RefCell::new(BTreeSet::new());
    let mut runs = stream::iter(first..first + u64::from(seeds))
        .map(|faults| {
            in_flight.borrow_mut().insert(faults);
            async move {
                (
                    faults,
                    simulate(options, year, options.seed, Some(faults)).await,
                )
            }
        })
        .buffer_unordered(options.parallel.max(1));
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut failed = Vec::new();
    let mut done = 0;
    loop {
        let next = tokio::select! {
            next = runs.next() => next,
            _ = interrupt.recv() => None,
            _ = terminate.recv() => None,
        };
        let Some((faults, result)) = next else {
            break;
        };
        in_flight.borrow_mut().remove(&faults);
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
    if done < seeds {
        // Interrupted: dropping the runs in flight stops their services; then their databases.
        drop(runs);
        for faults in in_flight.take() {
            let prefix = system::database_prefix(Some(faults));
            if let Err(error) = system::drop_databases(&prefix).await {
                eprintln!("could not drop the databases {prefix}*: {error:#}");
            }
        }
        println!(
            "\nCampaign interrupted after {done} of {seeds} fault seeds (the runs in flight were \
             stopped and their databases dropped)"
        );
        return Ok(false);
    }
    println!("\nCampaign: {} of {seeds} fault seeds failed", failed.len());
    for (faults, command) in &failed {
        println!("  seed {faults}: {command}");
    }
    Ok(failed.is_empty())
}
