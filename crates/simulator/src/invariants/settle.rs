//! Waiting until the system has settled, before the end-of-run checks read it.
//!
//! Why: when the last case task ends, events it did not wait for may still be on their way —
//! a FundsReleased nobody needs, an InvoicePaymentRecorded, the outbox relay of a service that
//! was restarted a moment ago catching up. Judging then would report money "missing" that is
//! merely late. Settled here means: in every service database no outbox row is waiting to be
//! published, and no inbox has taken a new event, for `quiet` of wall time. (The simulated
//! clock stands still at the end, so no sweep starts new work meanwhile.)

use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::databases;

/// What one look at a database shows: unpublished outbox rows and inbox rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    /// Outbox rows not yet published.
    pub unpublished: i64,
    /// Inbox rows (events taken).
    pub taken: i64,
}

/// Waits until every database in `database_urls` (service, URL) has been quiet for `quiet`;
/// fails after `timeout` with what was still moving.
pub async fn settle(
    database_urls: &[(String, String)],
    quiet: Duration,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut pools = Vec::new();
    for (service, url) in database_urls {
        pools.push((service.as_str(), databases::connect(service, url).await?));
    }
    let started = Instant::now();
    let mut last: Vec<Activity> = Vec::new();
    let mut quiet_since = Instant::now();
    loop {
        let mut now = Vec::with_capacity(pools.len());
        for (_, pool) in &pools {
            now.push(activity(pool).await?);
        }
        let still = now.iter().all(|activity| activity.unpublished == 0) && now == last;
        if !still {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= quiet {
            break;
        }
        if started.elapsed() >= timeout {
            let moving: Vec<String> = pools
                .iter()
                .zip(&now)
                .map(|((service, _), activity)| {
                    format!(
                        "{service}: {} unpublished, {} taken",
                        activity.unpublished, activity.taken
                    )
                })
                .collect();
            anyhow::bail!(
                "the system did not settle within {timeout:?}: {}",
                moving.join("; ")
            );
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (_, pool) in pools {
        pool.close().await;
    }
    Ok(())
}

async fn activity(pool: &PgPool) -> anyhow::Result<Activity> {
    let unpublished = if databases::has_table(pool, "outbox").await? {
        sqlx::query_scalar("SELECT count(*)::bigint FROM outbox WHERE published_at IS NULL")
            .fetch_one(pool)
            .await?
    } else {
        0
    };
    let taken = if databases::has_table(pool, "inbox").await? {
        sqlx::query_scalar("SELECT count(*)::bigint FROM inbox")
            .fetch_one(pool)
            .await?
    } else {
        0
    };
    Ok(Activity { unpublished, taken })
}
