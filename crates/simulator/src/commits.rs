//! How many transactions the services committed: PostgreSQL's own count (`pg_stat_database`)
//! over the simulation's databases, read before and after the year. It is what the run is
//! compared with pgbench on: the same number of commits, done by PostgreSQL alone.

use anyhow::Context;
use ekb_testkit::postgres::admin_url;
use sqlx::Connection;

/// Committed transactions of the databases whose names start with a prefix, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commits(u64);

impl Commits {
    /// The count now. PostgreSQL publishes a backend's counts when its transaction ends or
    /// within a second, so a reading right after a burst may be a second behind.
    pub async fn read(prefix: &str) -> anyhow::Result<Self> {
        let mut connection = sqlx::PgConnection::connect(&admin_url())
            .await
            .context("connecting to PostgreSQL for its statistics")?;
        let count: Option<i64> = sqlx::query_scalar(
            "SELECT sum(xact_commit)::bigint FROM pg_stat_database WHERE datname LIKE $1 || '%'",
        )
        .bind(prefix)
        .fetch_one(&mut connection)
        .await
        .context("reading pg_stat_database")?;
        Ok(Commits(u64::try_from(count.unwrap_or(0)).unwrap_or(0)))
    }

    /// Commits from `before` to this reading (0 if the statistics were reset in between).
    pub fn since(&self, before: &Commits) -> u64 {
        self.0.saturating_sub(before.0)
    }
}
