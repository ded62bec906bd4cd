//! Running pgbench, the baseline's client, and reading its report; and the bracket of two
//! runs, one on each side of the service's load, that the service is compared with.
//!
//! pgbench is PostgreSQL's own load generator, lean C on libpq: what it reaches with a
//! transaction is what the database can do with it on this machine. It runs as a child
//! process, bounded in time, and the benchmark reads `tps = …` (without the initial connection
//! time) and the failed transactions from its report.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};

/// The pgbench binary: `explicit`, else `pgbench` on PATH, else the newest
/// `/usr/lib/postgresql/<version>/bin/pgbench`.
pub fn find(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        anyhow::ensure!(path.is_file(), "{} is not a file", path.display());
        return Ok(path.to_path_buf());
    }
    if let Some(paths) = std::env::var_os("PATH")
        && let Some(found) = std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|path| path.is_file())
    {
        return Ok(found);
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let path = entry.path().join("bin/pgbench");
            path.is_file().then_some((version, path))
        })
        .collect();
    candidates.sort();
    match candidates.pop() {
        Some((_, path)) => Ok(path),
        None => bail!(
            "pgbench not found on PATH or under /usr/lib/postgresql/*/bin; install PostgreSQL's \
             client tools or pass --pgbench"
        ),
    }
}

/// What one pgbench run reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgbenchResult {
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
    /// Failed transactions (PostgreSQL ≥ 15 reports them).
    pub failed: u64,
}

/// pgbench's figure for routing's transaction, measured twice on fresh databases: just before
/// the service's load and just after it. The VM's speed drifts by up to a quarter within an
/// hour (docs/benchmarks.md), so a single baseline taken after the service run compared the
/// service with a different machine; the mean of two runs that bracket it does not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineBracket {
    /// The run before the probe and the open loop.
    pub before: PgbenchResult,
    /// The run after the open loop.
    pub after: PgbenchResult,
}

impl BaselineBracket {
    /// Above this relative difference between the two runs, the summary warns that the
    /// machine changed speed during the run and the ratio is uncertain.
    pub const DRIFT_WARNING: f64 = 0.15;

    /// The mean of the two runs: what the service is compared with.
    pub fn tps(&self) -> f64 {
        (self.before.tps + self.after.tps) / 2.0
    }

    /// How far apart the two runs are, relative to their mean (0.1 = 10 %).
    pub fn drift(&self) -> f64 {
        let mean = self.tps();
        if mean > 0.0 {
            (self.after.tps - self.before.tps).abs() / mean
        } else {
            0.0
        }
    }
}

/// Runs `script` with `clients` clients for `seconds` against `database_url` and parses the
/// result. pgbench stops by itself after `seconds`; it is killed if it overruns by 60 s.
pub async fn run(
    pgbench: &Path,
    database_url: &str,
    script: &Path,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<PgbenchResult> {
    let jobs = clients.min(2);
    let child = tokio::process::Command::new(pgbench)
        .args(["-n", "-M", "prepared"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={jobs}"))
        .arg(format!("--time={seconds}"))
        .arg(format!("--file={}", script.display()))
        .arg(database_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", pgbench.display()))?;
    let limit = Duration::from_secs(seconds + 60);
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("pgbench did not finish within {limit:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("pgbench failed ({}):\n{stdout}\n{stderr}", output.status);
    }
    parse_output(&stdout).with_context(|| format!("no tps line in pgbench's output:\n{stdout}"))
}

/// Reads `tps = …` and `number of failed transactions: …` from pgbench's report.
fn parse_output(stdout: &str) -> Option<PgbenchResult> {
    let number_after = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
    };
    let tps = number_after("tps = ")?.parse().ok()?;
    let failed = number_after("number of failed transactions:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some(PgbenchResult { tps, failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bracket_compares_with_the_mean_and_measures_the_drift() {
        let bracket = BaselineBracket {
            before: PgbenchResult {
                tps: 4000.0,
                failed: 1,
            },
            after: PgbenchResult {
                tps: 6000.0,
                failed: 2,
            },
        };
        assert_eq!(bracket.tps(), 5000.0);
        assert!((bracket.drift() - 0.4).abs() < 1e-12);
        assert!(bracket.drift() > BaselineBracket::DRIFT_WARNING);
    }

    #[test]
    fn reads_tps_and_failures() {
        let report = "\
transaction type: /tmp/x.sql
scaling factor: 1
query mode: prepared
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 51234
number of failed transactions: 0 (0.000%)
latency average = 6.246 ms
initial connection time = 21.554 ms
tps = 2561.734401 (without initial connection time)
";
        assert_eq!(
            parse_output(report),
            Some(PgbenchResult {
                tps: 2561.734401,
                failed: 0
            })
        );
        assert_eq!(parse_output("nothing here"), None);
    }
}
