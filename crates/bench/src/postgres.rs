//! What the benchmark asks the PostgreSQL server directly: checkpoints between phases, whether
//! routing's outbox is drained, the server's version and durability settings, and dropping the
//! run's databases.
//!
//! Every phase should measure itself only. A `CHECKPOINT` before each one keeps it from
//! writing out the dirty pages of the one before, and waiting for the outbox keeps the relay's
//! backlog of one phase out of the next.

use std::time::Duration;

use ekb_testkit::postgres::{TEST_DATABASE_PREFIX, admin_url, drop_database};
use sqlx::{Connection, Executor, PgConnection};

/// How long the outbox relay may take to publish the last events after a phase.
pub const OUTBOX_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Asks PostgreSQL for a checkpoint, so that each measured phase starts with no dirty pages
/// left by the one before and none of them pays for writing out another's (without it, a
/// checkpoint falls at a random point of whichever phase is running when it is due). Needs a
/// superuser or `pg_checkpoint`; without one the run goes on, and says so.
pub async fn checkpoint() {
    let result = async {
        let mut admin = PgConnection::connect(&admin_url()).await?;
        admin.execute("CHECKPOINT").await?;
        admin.close().await
    }
    .await;
    if let Err(error) = result {
        eprintln!(
            "ekb-bench: could not run CHECKPOINT ({error}); phases may pay for each other's writes"
        );
    }
}

/// Routing's cases and its outbox at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxState {
    /// Cases routing stored (each with one CaseRouted outbox row).
    pub cases: i64,
    /// Outbox rows the relay has not published yet.
    pub unpublished: i64,
}

/// Waits until routing's relay has published every outbox row, or [`OUTBOX_DRAIN_TIMEOUT`]
/// has passed; returns what it found last.
pub async fn wait_for_outbox(routing_db_url: &str) -> anyhow::Result<OutboxState> {
    let mut connection = PgConnection::connect(routing_db_url).await?;
    let deadline = tokio::time::Instant::now() + OUTBOX_DRAIN_TIMEOUT;
    loop {
        let (cases, unpublished): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM cases), \
                    (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
        )
        .fetch_one(&mut connection)
        .await?;
        if unpublished == 0 || tokio::time::Instant::now() >= deadline {
            connection.close().await?;
            return Ok(OutboxState { cases, unpublished });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The server's version and durability settings, e.g. `15.20 (fsync=on, synchronous_commit=on)`.
pub async fn server_description() -> anyhow::Result<String> {
    let mut admin = PgConnection::connect(&admin_url()).await?;
    let (version, fsync, synchronous_commit): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('fsync'), \
         current_setting('synchronous_commit')",
    )
    .fetch_one(&mut admin)
    .await?;
    admin.close().await?;
    Ok(format!(
        "{version} (fsync={fsync}, synchronous_commit={synchronous_commit})"
    ))
}

/// Drops every database a benchmark run creates (each run's purposes start with `bench_`);
/// only safe while holding the run lock.
pub async fn drop_bench_databases() {
    let prefix = format!("{TEST_DATABASE_PREFIX}bench_");
    let names: Vec<String> = async {
        let mut admin = PgConnection::connect(&admin_url()).await?;
        let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database")
            .fetch_all(&mut admin)
            .await?;
        admin.close().await?;
        Ok::<_, sqlx::Error>(names)
    }
    .await
    .unwrap_or_default();
    let leftovers: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with(&prefix))
        .collect();
    drop_databases(&leftovers).await;
}

/// Drops the run's databases; a failure only costs disk until `make test` drops leftovers.
pub async fn drop_databases(names: &[String]) {
    for name in names {
        if let Err(error) = drop_database(name).await {
            eprintln!("ekb-bench: could not drop database {name}: {error:#}");
        }
    }
}
