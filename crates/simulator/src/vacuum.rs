//! Autovacuum's stand-in on a server that runs without it.
//!
//! Production PostgreSQL vacuums and analyzes tables as they change. A test or CI server may run
//! with `autovacuum = off` (this machine's does, in `conf.d/90-ci.conf`): over a simulated year
//! the outbox then keeps every published row's dead version, and the planner never learns that
//! a table grew, so a plan cached when the table was empty (a sequential scan) is used for the
//! rest of the run. The national year measured that, not the services. When the server's
//! autovacuum is off, the simulator vacuums and analyzes the services' databases itself every
//! [`EVERY`], as autovacuum would, and says so.

use std::time::Duration;

use anyhow::Context;
use ekb_testkit::postgres::admin_url;
use sqlx::Connection;
use tokio::{sync::watch, task::JoinHandle};

/// How often the databases are vacuumed and analyzed (autovacuum's naptime is a minute per
/// database; the simulation changes tables faster than production does).
pub const EVERY: Duration = Duration::from_secs(20);

/// The running stand-in; stop it with [`Vacuumer::stop`].
#[derive(Debug)]
pub struct Vacuumer {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vacuums>,
}

/// What the stand-in did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vacuums {
    /// Databases vacuumed and analyzed.
    pub done: u64,
    /// Databases that could not be vacuumed at their turn (a fault run terminated their
    /// backends, say); each is vacuumed again at the next turn.
    pub skipped: u64,
}

/// Whether the server runs autovacuum.
pub async fn server_runs_autovacuum() -> anyhow::Result<bool> {
    let mut connection = sqlx::PgConnection::connect(&admin_url())
        .await
        .context("connecting to PostgreSQL to read its settings")?;
    let setting: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(&mut connection)
        .await?;
    Ok(setting == "on")
}

impl Vacuumer {
    /// Starts vacuuming `database_urls` every [`EVERY`] when the server does not; `None` when
    /// it does.
    pub async fn start_if_needed(database_urls: Vec<String>) -> anyhow::Result<Option<Self>> {
        if server_runs_autovacuum().await? {
            return Ok(None);
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(vacuum_until(database_urls, stopped));
        Ok(Some(Vacuumer { stop, task }))
    }

    /// Stops vacuuming (after the database being vacuumed now) and says what was done.
    pub async fn stop(self) -> Vacuums {
        self.stop.send_replace(true);
        self.task.await.unwrap_or_default()
    }
}

async fn vacuum_until(database_urls: Vec<String>, mut stopped: watch::Receiver<bool>) -> Vacuums {
    let mut vacuums = Vacuums::default();
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return vacuums,
            () = tokio::time::sleep(EVERY) => {}
        }
        for url in &database_urls {
            if *stopped.borrow() {
                return vacuums;
            }
            match vacuum(url).await {
                Ok(()) => vacuums.done += 1,
                Err(_) => vacuums.skipped += 1,
            }
        }
    }
}

async fn vacuum(url: &str) -> anyhow::Result<()> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql("VACUUM (ANALYZE)")
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    Ok(())
}
