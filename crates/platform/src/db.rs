//! The service's own PostgreSQL database: a lazily connecting pool (so the gRPC server can
//! start and report NOT_SERVING while the database is still unreachable), creation of the
//! database for local runs, and migrations embedded in the binary.
//!
//! Migrations run at start under PostgreSQL's advisory lock (sqlx's migrator takes it), so
//! when several replicas start at once exactly one applies them (docs/adr).

use std::{str::FromStr, time::Duration};

use secrecy::ExposeSecret;
use sqlx::{
    Connection, Executor, PgPool,
    migrate::{Migration, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::DatabaseConfig;

/// Outbox and inbox tables every service needs; versions below 100.
static PLATFORM_MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a pooled connection may sit idle before the pool closes it, so a replica gives
/// back what a burst opened (the connection budget counts open connections, idle or not).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A pool that connects on first use.
///
/// Every checkout pings the connection first (one round trip) and replaces it if it is broken:
/// when PostgreSQL restarts or fails over, or an operator terminates backends, every idle
/// connection in the pool is dead at once, and without the ping each would be handed out and
/// fail a request in turn. With it, only a statement that was running at that moment fails,
/// and it is retried as a transient failure ([`crate::fault`]).
pub fn lazy_pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(config.url.expose_secret())?;
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(true)
        .idle_timeout(IDLE_TIMEOUT)
        .connect_lazy_with(options))
}

/// Creates the database named in the URL if it does not exist, connecting to the server's
/// `postgres` database to do so.
pub async fn create_database_if_missing(config: &DatabaseConfig) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(config.url.expose_secret())?;
    let name = options
        .get_database()
        .ok_or_else(|| anyhow::anyhow!("database.url names no database"))?
        .to_owned();
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(error) = admin.execute(sqlx::AssertSqlSafe(statement)).await {
            // A concurrent starter may have created it in the meantime.
            let duplicate = error
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "42P04");
            if !duplicate {
                return Err(error.into());
            }
        }
        tracing::info!(database = %name, "created database");
    }
    admin.close().await?;
    Ok(())
}

/// Runs the platform's and the service's migrations, in version order, as one migrator.
pub async fn migrate(pool: &PgPool, service_migrator: &Migrator) -> anyhow::Result<()> {
    let mut migrations: Vec<Migration> = PLATFORM_MIGRATOR.iter().cloned().collect();
    for migration in service_migrator.iter() {
        anyhow::ensure!(
            migration.version >= 100,
            "service migration {} must be numbered from 100 (below is the platform's)",
            migration.version
        );
        migrations.push(migration.clone());
    }
    migrations.sort_by_key(|migration| migration.version);
    Migrator::with_migrations(migrations).run(pool).await?;
    Ok(())
}

/// Whether the database answers.
pub async fn is_reachable(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}
