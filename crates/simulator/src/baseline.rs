//! PostgreSQL alone doing the simulation's number of commits, measured in the same run: pgbench
//! (`ekb_bench::pgbench`) inserting one small row per transaction into a scratch database from
//! a few clients, for a fixed time. The run's wall time over the time pgbench needs for the same
//! commits is what the services cost on top of the database (the target: at most 3×).

use std::{path::Path, time::Duration};

use anyhow::Context;
use ekb_bench::pgbench;
use ekb_testkit::postgres::{create_database, drop_database, url_for};
use sqlx::{Connection, Executor};

use crate::cpu::{CpuMeter, CpuUse};

/// The scratch database (outside the simulation's prefix, so its commits are not counted).
const DATABASE: &str = "ekb_simulate_pgbench";
/// How long pgbench runs.
const SECONDS: u64 = 10;
/// Its clients: about as many connections as the services keep busy.
const CLIENTS: usize = 4;

/// What pgbench did.
#[derive(Debug, Clone, Copy)]
pub struct PgbenchRun {
    /// One-row commits per second on this machine now.
    pub commits_per_second: f64,
    /// The commits it made.
    pub commits: u64,
    /// The CPU PostgreSQL and pgbench used for them.
    pub cpu: CpuUse,
}

/// pgbench doing one-row commits on this machine now.
pub async fn measure(scratch: &Path) -> anyhow::Result<PgbenchRun> {
    let binary = pgbench::find(None)?;
    drop_database(DATABASE).await?;
    create_database(DATABASE)
        .await
        .context("creating pgbench's database")?;
    let url = url_for(DATABASE);
    let mut connection = sqlx::PgConnection::connect(&url).await?;
    connection
        .execute("CREATE TABLE commits (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)")
        .await?;
    connection.close().await?;
    let script = scratch.join("pgbench-commit.sql");
    std::fs::write(
        &script,
        "INSERT INTO commits (payload) VALUES (repeat('x', 300));\n",
    )?;
    let meter = CpuMeter::start()?;
    let result = pgbench::run(&binary, &url, &script, CLIENTS, SECONDS).await;
    let cpu = meter.stop(&[])?;
    drop_database(DATABASE).await?;
    let result = result?;
    anyhow::ensure!(result.tps > 0.0, "pgbench reported no transactions");
    Ok(PgbenchRun {
        commits_per_second: result.tps,
        commits: (result.tps * SECONDS as f64).round() as u64,
        cpu,
    })
}

/// The time PostgreSQL alone needs for `commits` at `per_second`.
pub fn time_for(commits: u64, per_second: f64) -> Duration {
    Duration::from_secs_f64(commits as f64 / per_second)
}
