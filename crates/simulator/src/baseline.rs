//! PostgreSQL alone doing the simulation's number of commits, measured in the same run with
//! pgbench (`ekb_bench::pgbench`) on a scratch database, 4 clients, 10 s each:
//! - **the year's commit shape** (what the target is judged on, ADR 0036): each transaction
//!   inserts, updates, deletes and reads by key the rows the year's commits did on average
//!   ([`CommitShape`], from PostgreSQL's own counters), one statement per written row and one
//!   for the reads;
//! - **one-row commits** (one small insert each): the cheapest commit there is, kept beside it
//!   because earlier runs were measured against it.
//!
//! The run's wall time over the time pgbench needs for the same number of commits is what the
//! services cost on top of the database (the target: at most 3×).

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Context;
use ekb_bench::pgbench;
use ekb_testkit::postgres::{create_database, drop_database, url_for};
use sqlx::{Connection, Executor};

use crate::{
    commits::CommitShape,
    cpu::{CpuMeter, CpuUse},
};

/// The scratch database (outside the simulation's prefix, so its commits are not counted).
const DATABASE: &str = "ekb_simulate_pgbench";
/// How long each pgbench run of a simulation lasts.
pub const SECONDS: u64 = 10;
/// Its clients: about as many connections as the services keep busy.
const CLIENTS: usize = 4;
/// Rows in the scratch table before a run, for updates, deletes and reads to find.
const ROWS: u64 = 100_000;
/// The payload of an inserted row, about an outbox row's or an audit entry's size.
const PAYLOAD_BYTES: u32 = 300;

/// What one pgbench run did.
#[derive(Debug, Clone, Copy)]
pub struct PgbenchRun {
    /// Commits per second on this machine now.
    pub commits_per_second: f64,
    /// The commits it made.
    pub commits: u64,
    /// The CPU PostgreSQL and pgbench used for them.
    pub cpu: CpuUse,
}

impl PgbenchRun {
    /// The time PostgreSQL alone needs for `commits` at this run's rate.
    pub fn time_for(&self, commits: u64) -> Duration {
        Duration::from_secs_f64(commits as f64 / self.commits_per_second)
    }
}

/// Both baselines of a run.
#[derive(Debug, Clone, Copy)]
pub struct Baselines {
    /// The year's commit shape, as pgbench ran it.
    pub shape: CommitShape,
    /// pgbench doing commits of that shape: what the target is judged on.
    pub same_shape: PgbenchRun,
    /// pgbench doing one-row commits.
    pub one_row: PgbenchRun,
}

/// pgbench doing commits of the year's `shape`, then one-row commits, on this machine now, for
/// `seconds` each ([`SECONDS`] in a simulation).
pub async fn measure(
    scratch: &Path,
    shape: CommitShape,
    seconds: u64,
) -> anyhow::Result<Baselines> {
    let binary = pgbench::find(None)?;
    let same_shape = run_on_fresh_table(
        &binary,
        scratch,
        "same-shape",
        &shape_script(&shape),
        seconds,
    )
    .await
    .context("pgbench with the year's commit shape")?;
    let one_row = run_on_fresh_table(&binary, scratch, "one-row", &one_row_script(), seconds)
        .await
        .context("pgbench with one-row commits")?;
    Ok(Baselines {
        shape,
        same_shape,
        one_row,
    })
}

/// Runs `script` on a fresh scratch database holding [`ROWS`] rows, metering the CPU.
async fn run_on_fresh_table(
    binary: &Path,
    scratch: &Path,
    name: &str,
    script: &str,
    seconds: u64,
) -> anyhow::Result<PgbenchRun> {
    drop_database(DATABASE).await?;
    create_database(DATABASE)
        .await
        .context("creating pgbench's database")?;
    let url = url_for(DATABASE);
    let mut connection = sqlx::PgConnection::connect(&url).await?;
    connection
        .execute(
            "CREATE TABLE rows (id bigserial PRIMARY KEY, version integer NOT NULL DEFAULT 0, \
             at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)",
        )
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO rows (payload) SELECT repeat('x', {PAYLOAD_BYTES}) \
         FROM generate_series(1, {ROWS})"
    )))
    .execute(&mut connection)
    .await?;
    connection.execute("VACUUM ANALYZE rows").await?;
    connection.close().await?;
    let path = scratch.join(format!("pgbench-{name}.sql"));
    std::fs::write(&path, script)?;
    let meter = CpuMeter::start()?;
    let result = pgbench::run(binary, &url, &path, CLIENTS, seconds).await;
    let cpu = meter.stop(&[])?;
    drop_database(DATABASE).await?;
    let result = result?;
    anyhow::ensure!(result.tps > 0.0, "pgbench reported no transactions");
    Ok(PgbenchRun {
        commits_per_second: result.tps,
        commits: (result.tps * seconds as f64).round() as u64,
        cpu,
    })
}

/// One small insert: the one-row baseline's whole transaction, and each inserted row of the
/// year's shape.
fn one_row_script() -> String {
    format!("INSERT INTO rows (payload) VALUES (repeat('x', {PAYLOAD_BYTES}));\n")
}

/// A transaction doing what the year's commits did on average: each count is the mean's whole
/// part plus one with the probability of its fraction, so that pgbench's mean is the year's.
/// Written rows are one statement each (as the services send them), reads one statement by a
/// range of keys (fewer round trips than the services make: the baseline errs fast).
fn shape_script(shape: &CommitShape) -> String {
    let mut script = String::new();
    let counts = [
        ("inserts", shape.inserted),
        ("updates", shape.updated),
        ("deletes", shape.deleted),
        ("reads", shape.read),
    ];
    for (name, mean) in counts {
        let whole = mean.floor() as u64;
        let per_million = ((mean - mean.floor()) * 1_000_000.0).round() as u64;
        let _ = writeln!(
            script,
            "\\set {name} {whole} + case when random(0, 999999) < {per_million} then 1 else 0 end"
        );
    }
    let _ = writeln!(script, "\\set first random(1, {})", ROWS - 1_000);
    script.push_str("\\set last :first + :reads - 1\n");
    script.push_str("BEGIN;\n");
    let one_by_one = [
        ("inserts", shape.inserted, one_row_script()),
        (
            "updates",
            shape.updated,
            format!(
                "\\set row random(1, {ROWS})\nUPDATE rows SET version = version + 1 WHERE id = :row;\n"
            ),
        ),
        (
            "deletes",
            shape.deleted,
            format!("\\set row random(1, {ROWS})\nDELETE FROM rows WHERE id = :row;\n"),
        ),
    ];
    for (name, mean, statement) in one_by_one {
        for k in 1..=(mean.ceil() as u64) {
            let _ = write!(script, "\\if :{name} >= {k}\n{statement}\\endif\n");
        }
    }
    if shape.read > 0.0 {
        script.push_str(
            "\\if :reads >= 1\nSELECT id, version, payload FROM rows \
             WHERE id BETWEEN :first AND :last;\n\\endif\n",
        );
    }
    script.push_str("COMMIT;\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_script_has_a_statement_for_every_row_the_mean_can_reach() {
        let script = shape_script(&CommitShape {
            inserted: 1.25,
            updated: 0.5,
            deleted: 0.0,
            read: 3.0,
        });
        assert!(
            script.contains(
                "\\set inserts 1 + case when random(0, 999999) < 250000 then 1 else 0 end"
            )
        );
        assert!(
            script.contains(
                "\\set updates 0 + case when random(0, 999999) < 500000 then 1 else 0 end"
            )
        );
        assert!(script.contains("\\set reads 3 + case"));
        assert_eq!(script.matches("INSERT INTO rows").count(), 2);
        assert!(script.contains("\\if :inserts >= 2\n"));
        assert_eq!(script.matches("UPDATE rows").count(), 1);
        assert_eq!(script.matches("DELETE FROM rows").count(), 0);
        assert_eq!(script.matches("SELECT id").count(), 1);
        assert!(script.starts_with("\\set") && script.ends_with("COMMIT;\n"));
        assert_eq!(
            script.matches("\\if").count(),
            script.matches("\\endif").count()
        );
    }
}
