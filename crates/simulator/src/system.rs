//! The system a simulation runs against: every service of the catalog started the way `make run`
//! starts it (`ekb_devstack::launcher::start_system`), on fresh databases of its own, free ports,
//! topics of its own, and the shared clock file — so a simulation never touches `make run`'s
//! data and can run beside it.

use std::path::Path;

use anyhow::Context;
use ekb_devstack::{
    launcher::{Stack, start_system},
    options::{Options, ServicePorts, ServiceSetting},
};
use ekb_platform::clock::ClockFile;
use ekb_testkit::services::free_local_addr;

/// Database names of a simulation start with this (then the service's name).
pub const DATABASE_PREFIX: &str = "ekb_sim_";

/// The database prefix of a run: [`DATABASE_PREFIX`], or for one of a campaign's runs side by
/// side, one of its own (`ekb_sim_f<fault seed>_`).
pub fn database_prefix(campaign_faults: Option<u64>) -> String {
    match campaign_faults {
        Some(faults) => format!("{DATABASE_PREFIX}f{faults}_"),
        None => DATABASE_PREFIX.to_owned(),
    }
}

/// Drops the databases of a run with `prefix` (a campaign's run, once it is judged).
pub async fn drop_databases(prefix: &str) -> anyhow::Result<()> {
    for entry in ekb_testkit::catalog::SERVICES {
        ekb_testkit::postgres::drop_database(&entry.database_name(prefix)).await?;
    }
    Ok(())
}

/// The launcher's options for a simulation writing under `run_dir`, on `clock`, its databases
/// named with `database_prefix`, with `settings` `(service, key, value)` beyond each service's
/// `make run` settings.
pub fn options(
    run_dir: &Path,
    clock: &ClockFile,
    database_prefix: &str,
    settings: &[(&'static str, &str, &str)],
) -> anyhow::Result<Options> {
    let mut options = Options {
        fresh: true,
        db_prefix: database_prefix.to_owned(),
        topic_prefix: format!("ekb-sim-{}", uuid::Uuid::new_v4().simple()),
        log_dir: Some(run_dir.join("logs")),
        clock_file: Some(clock.path().to_owned()),
        ..Options::default()
    };
    for service in &mut options.services {
        service.ports = ServicePorts {
            grpc: free_local_addr()?.port(),
            metrics: free_local_addr()?.port(),
        };
    }
    for (service, key, value) in settings {
        let service = options
            .services
            .iter()
            .find(|known| known.entry.name == *service)
            .with_context(|| format!("no service {service} for setting {key}"))?
            .entry
            .name;
        options.settings.push(ServiceSetting {
            service,
            key: (*key).to_owned(),
            value: (*value).to_owned(),
        });
    }
    Ok(options)
}

/// Refuses a run whose databases (prefix `prefix`) another process is connected to. The
/// launcher drops and recreates them, and a service still connected by name — one of an
/// interrupted simulation whose simulator was killed alone, say — reconnects to the new ones and
/// takes part in the run: it takes relay leases and consumes events, and the run's figures and
/// invariants are no longer this run's.
pub async fn refuse_databases_in_use(prefix: &str) -> anyhow::Result<()> {
    let names: Vec<String> = ekb_testkit::catalog::SERVICES
        .iter()
        .map(|entry| entry.database_name(prefix))
        .collect();
    let mut connection = ekb_testkit::postgres::connect(&ekb_testkit::postgres::admin_url())
        .await
        .context("connecting to PostgreSQL to see who uses the simulation's databases")?;
    let in_use: Vec<(String, i64)> = sqlx::query_as(
        "SELECT datname::text, count(*) FROM pg_stat_activity \
         WHERE datname = ANY($1) AND pid <> pg_backend_pid() GROUP BY datname ORDER BY datname",
    )
    .bind(&names)
    .fetch_all(&mut connection)
    .await
    .context("reading pg_stat_activity")?;
    if in_use.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = in_use
        .iter()
        .map(|(name, connections)| format!("{name} ({connections} connected)"))
        .collect();
    anyhow::bail!(
        "the simulation's databases are in use: {}. Another simulation with the same databases \
         is running, or the services of an interrupted one are still alive \
         (`ps -eo pid,args | grep target/`); stop them first — they would reconnect to the fresh \
         databases and take part in this run",
        listed.join(", ")
    )
}

/// Starts the system of `options` (refusing databases in use, [`refuse_databases_in_use`]);
/// on failure, whatever started is stopped.
pub async fn start(options: &Options) -> anyhow::Result<Stack> {
    refuse_databases_in_use(&options.db_prefix).await?;
    let mut stack = Stack::default();
    if let Err(error) = start_system(&mut stack, options).await {
        let _ = stack.stop().await;
        return Err(error);
    }
    Ok(stack)
}
