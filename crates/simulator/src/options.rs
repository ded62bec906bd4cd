//! The command line of `ekb-simulate`.

use std::path::PathBuf;

use clap::Parser;

/// Replays a synthetic year of cases through the whole system on shared simulated time, then
/// checks that the money, the events and the personal data are as they must be. Exits non-zero
/// on any violation.
#[derive(Debug, Clone, Parser)]
#[command(name = "ekb-simulate", version)]
pub struct Options {
    /// The seed of the year: the same seed and configuration give the same cases on the same
    /// days on the same paths.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Cases in the year (overrides the configuration's `cases`).
    #[arg(long)]
    pub cases: Option<u32>,
    /// The year cases open in (overrides the configuration's `year`).
    #[arg(long)]
    pub year: Option<i32>,
    /// A TOML file over the default national year (`crates/simulator/national-year.toml`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Adds the fault schedule derived from this seed (same seed, same schedule).
    #[arg(long)]
    pub faults: Option<u64>,
    /// Campaign: runs this many fault seeds (from `--faults`, or 1) each with a small year, and
    /// prints the seeds that failed with the command that reproduces each.
    #[arg(long)]
    pub campaign: Option<u32>,
    /// Campaign: how many runs go side by side (each holds about 35 PostgreSQL connections;
    /// the server's default max_connections is 100).
    #[arg(long, default_value_t = 2)]
    pub parallel: usize,
    /// Where the services' logs, the clock file and the run's summary go.
    #[arg(long, default_value = "target/simulate")]
    pub out_dir: PathBuf,
    /// No progress bar (CI logs).
    #[arg(long)]
    pub quiet: bool,
    /// Skips the pgbench comparison (a campaign always does).
    #[arg(long)]
    pub no_pgbench: bool,
}
