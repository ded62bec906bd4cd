//! What the services asked of PostgreSQL: its own counts (`pg_stat_database`) over the
//! simulation's databases, read before and after the year — the transactions committed, and the
//! rows they inserted, updated, deleted and fetched. The run is compared with pgbench doing the
//! same number of commits; the rows per commit give the baseline the year's own commit shape
//! ([`crate::baseline`], ADR 0036).

use anyhow::Context;
use ekb_testkit::postgres::admin_url;
use sqlx::Connection;

/// PostgreSQL's counters for the databases whose names start with a prefix: at one moment, or
/// (after [`Self::since`]) over a span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatabaseWork {
    /// Transactions committed (read-only ones included).
    pub commits: u64,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Live rows fetched by index scans (the rows an update or delete finds by key included).
    pub fetched: u64,
}

/// The year's mean work per commit: what one pgbench transaction of the baseline does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommitShape {
    /// Rows inserted per commit.
    pub inserted: f64,
    /// Rows updated per commit.
    pub updated: f64,
    /// Rows deleted per commit.
    pub deleted: f64,
    /// Rows read by key per commit, beyond those the updates and deletes find.
    pub read: f64,
}

impl DatabaseWork {
    /// The counters now. PostgreSQL publishes a backend's counts when its transaction ends or
    /// within a second, so a reading right after a burst may be a second behind.
    pub async fn read(prefix: &str) -> anyhow::Result<Self> {
        let mut connection = sqlx::PgConnection::connect(&admin_url())
            .await
            .context("connecting to PostgreSQL for its statistics")?;
        let counts: (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(xact_commit), 0)::bigint, coalesce(sum(tup_inserted), 0)::bigint, \
             coalesce(sum(tup_updated), 0)::bigint, coalesce(sum(tup_deleted), 0)::bigint, \
             coalesce(sum(tup_fetched), 0)::bigint \
             FROM pg_stat_database WHERE datname LIKE $1 || '%'",
        )
        .bind(prefix)
        .fetch_one(&mut connection)
        .await
        .context("reading pg_stat_database")?;
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        Ok(DatabaseWork {
            commits: count(counts.0),
            inserted: count(counts.1),
            updated: count(counts.2),
            deleted: count(counts.3),
            fetched: count(counts.4),
        })
    }

    /// The work from `before` to this reading (0 where the statistics were reset in between).
    pub fn since(&self, before: &DatabaseWork) -> DatabaseWork {
        DatabaseWork {
            commits: self.commits.saturating_sub(before.commits),
            inserted: self.inserted.saturating_sub(before.inserted),
            updated: self.updated.saturating_sub(before.updated),
            deleted: self.deleted.saturating_sub(before.deleted),
            fetched: self.fetched.saturating_sub(before.fetched),
        }
    }

    /// The mean work per commit.
    pub fn shape(&self) -> CommitShape {
        let commits = self.commits.max(1) as f64;
        let found_by_writes = self.updated + self.deleted;
        CommitShape {
            inserted: self.inserted as f64 / commits,
            updated: self.updated as f64 / commits,
            deleted: self.deleted as f64 / commits,
            read: self.fetched.saturating_sub(found_by_writes) as f64 / commits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_the_work_per_commit_and_reads_exclude_what_writes_found() {
        let before = DatabaseWork {
            commits: 100,
            inserted: 10,
            updated: 10,
            deleted: 0,
            fetched: 50,
        };
        let after = DatabaseWork {
            commits: 1_100,
            inserted: 1_510,
            updated: 510,
            deleted: 250,
            fetched: 3_800,
        };
        let year = after.since(&before);
        assert_eq!(year.commits, 1_000);
        let shape = year.shape();
        assert_eq!(shape.inserted, 1.5);
        assert_eq!(shape.updated, 0.5);
        assert_eq!(shape.deleted, 0.25);
        assert_eq!(shape.read, 3.0);
        assert_eq!(before.since(&after), DatabaseWork::default());
    }
}
