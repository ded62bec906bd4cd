//! `ekb-bench` (what `make bench` runs): how fast does OpenCase go on this machine, how much of
//! PostgreSQL's own speed does the service keep, and what does each service cost in memory and
//! in CPU when it has nothing to do?
//!
//! It starts the real system as processes (the broker and every service of the catalog,
//! `expert-registry`, `routing`, `budget`, …, each with its own fresh database; [`stack`]),
//! registers an Innlandet framework agreement and waits until routing's read model has it, so
//! most requests take the PILOT path with its coverage query. The load goes to routing; the
//! other services only run beside it, so that their memory and idle CPU are measured too. It
//! reports four things:
//!
//! * **idle CPU** of each service over a quiet window ([`idle_cpu`]);
//! * **event latency**, a CaseRouted event's time from OpenCase's commit to the broker, for
//!   single calls a fifth of a second apart and for every event of the open loop
//!   ([`event_latency`]);
//! * **OpenCase throughput**, from an open loop at a fraction of a probed maximum, measured
//!   without coordinated omission ([`throughput`], [`load`]), over the mean of two pgbench runs
//!   of the same transaction on the same server that bracket it ([`baseline`], [`pgbench`]):
//!   the VM's speed drifts, and a baseline on one side only would measure the drift too;
//! * **peak RSS** of each service, the kernel's high-water mark ([`process_stats`]).
//!
//! Everything runs on every CPU of the machine; the summary says how much of it went to others
//! during the open loop ([`machine`]). All load goes to 127.0.0.1 and every phase is bounded in
//! time, so a run always ends by itself. The exit status is non-zero only when something failed
//! — a setup step, a request, or event publishing — never for a missed target. One run at a
//! time holds the bench directory's lock, and Ctrl-C or SIGTERM stops what the run started
//! ([`run_guard`]).

mod baseline;
mod bench;
mod event_latency;
mod figures;
mod h2_connection;
mod idle_cpu;
mod load;
mod machine;
mod options;
mod postgres;
mod results;
mod run_guard;
mod stack;
mod summary;
mod tally;
mod throughput;
mod workload;

use std::process::ExitCode;

use ekb_bench::{pgbench, process_stats};

use clap::Parser;

use crate::options::Options;

fn main() -> ExitCode {
    // Prints clap's message (or the help) and exits on a bad command line, before anything starts.
    let options = Options::parse();
    // One thread: the load generator should take as little as possible of the two CPUs it
    // shares with what it measures, and needs no locks this way.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ekb-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::guarded(&options)) {
        Ok(Err(interruption)) => {
            eprintln!(
                "ekb-bench: interrupted by {}; the broker and the services were stopped",
                interruption.name()
            );
            ExitCode::from(130)
        }
        Ok(Ok(run)) => {
            println!("{}", run.summary());
            if run.failed() {
                eprintln!(
                    "ekb-bench: FAILED: requests failed or events stayed unpublished (see above)"
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("ekb-bench: setup failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}
