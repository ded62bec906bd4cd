//! Infrastructure faults for tests, as an operator's bad day brings them: every backend of a
//! service's database terminated at once (what a PostgreSQL restart, a failover or
//! `pg_terminate_backend` does to the service's connections), a number of times while the
//! service works.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::{Connection, PgConnection};

/// Terminates every other backend connected to the database at `url`; returns how many.
pub async fn terminate_backends(url: &str) -> anyhow::Result<u64> {
    let mut connection = PgConnection::connect(url).await?;
    let terminated = terminate_others(&mut connection).await?;
    connection.close().await?;
    Ok(terminated)
}

/// Terminates every backend of `connection`'s database but its own; returns how many. Run on a
/// transaction that holds rows the service's handlers wait for, it terminates them for certain
/// in the middle of their transactions.
pub async fn terminate_others(connection: &mut PgConnection) -> anyhow::Result<u64> {
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(connection)
    .await?;
    Ok(u64::try_from(terminated).unwrap_or_default())
}

/// A task that terminates a database's backends `rounds` times, `every` apart.
pub struct BackendTerminator {
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    terminated: Arc<AtomicU64>,
}

impl BackendTerminator {
    /// Starts terminating the backends of the database at `url`.
    pub fn start(url: &str, rounds: u32, every: Duration) -> Self {
        let terminated = Arc::new(AtomicU64::new(0));
        let (url, counted) = (url.to_owned(), terminated.clone());
        let task = tokio::spawn(async move {
            for _ in 0..rounds {
                tokio::time::sleep(every).await;
                counted.fetch_add(terminate_backends(&url).await?, Ordering::SeqCst);
            }
            Ok(())
        });
        BackendTerminator { task, terminated }
    }

    /// Waits for the last round; returns how many backends were terminated in all.
    pub async fn finish(self) -> anyhow::Result<u64> {
        self.task.await??;
        Ok(self.terminated.load(Ordering::SeqCst))
    }
}

/// The sum of the values of metric `name` (all label sets containing `label`) in this process's
/// Prometheus recorder: what an in-process service under test has counted.
pub fn metric_in_process(name: &str, label: &str) -> anyhow::Result<f64> {
    let text = ekb_platform::metrics::recorder()?.render();
    Ok(text
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, value| sum + value))
}
