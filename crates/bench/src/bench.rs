//! The run's phases, in order, and what holds them together: the run lock, the interruption by
//! a signal, and the databases to drop whatever happens.
//!
//! The order matters. Idle CPU and idle event latency come first, while nothing else has loaded
//! the machine; pgbench runs just before the probe and again after the open loop, with the
//! services up but idle both times, so that the two baselines see the same machine and their
//! mean brackets the service's run; the topic is read back only after the load, so that no
//! reader takes CPU from what it measures.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use ekb_proto::v1::Flow;

use crate::{
    baseline::{self, RowSample},
    event_latency::{self, EventLatency, IDLE_SPACING},
    h2_connection::RoutingClient,
    idle_cpu::IdleCpu,
    load::Sequence,
    machine::Machine,
    options::Options,
    pgbench::{self, BaselineBracket},
    postgres::{self, OUTBOX_DRAIN_TIMEOUT},
    process_stats,
    results::{Measured, Run},
    run_guard::{self, Interruption},
    stack::Stack,
    throughput::Throughput,
    workload,
};

/// Pause before the idle-CPU window, for the start-up's last work to finish.
const IDLE_SETTLE: Duration = Duration::from_secs(3);

/// Announces a phase on stderr, so the summary on stdout stays clean.
pub fn phase(what: &str) {
    eprintln!("ekb-bench: {what}");
}

/// The benchmark while holding the bench directory's run lock, stopped early (and everything it
/// started stopped with it, its databases dropped) by SIGINT or SIGTERM.
pub async fn guarded(options: &Options) -> anyhow::Result<Result<Run, Interruption>> {
    let bench_dir = target_dir()?.join("bench");
    let _lock = run_guard::RunLock::take(&bench_dir)?;
    // Holding the lock, every bench database is a leftover of a run that was killed.
    postgres::drop_bench_databases().await;
    match run_guard::until_interrupted(bench(options, &bench_dir)).await? {
        Ok(run) => Ok(Ok(run?)),
        Err(interruption) => {
            postgres::drop_bench_databases().await;
            Ok(Err(interruption))
        }
    }
}

/// The cargo target directory holding this executable (`target/release/ekb-bench` → `target`).
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the executable")?;
    let profile = exe.parent().context("the executable has no directory")?;
    let profile = ekb_testkit::binaries::profile_dir(profile);
    Ok(profile.parent().unwrap_or(profile).to_path_buf())
}

/// Starts the system, runs every phase, stops the system, drops its databases, and writes the
/// JSON.
async fn bench(options: &Options, bench_dir: &Path) -> anyhow::Result<Run> {
    let json_path = options
        .out
        .clone()
        .unwrap_or_else(|| bench_dir.join("open_case.json"));
    let log_dir = bench_dir.join("logs");
    // Logs of earlier runs would only confuse; the directory is ours alone.
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;
    let pgbench = pgbench::find(options.pgbench.as_deref())?;
    let date = time::OffsetDateTime::now_utc().date().to_string();

    let names: Vec<&str> = ekb_testkit::catalog::names().collect();
    phase(&format!(
        "starting the broker and {} (the binaries beside ekb-bench)",
        names.join(", ")
    ));
    let stack = Stack::start(options, &log_dir).await?;
    let machine = Machine::describe(&stack).await?;
    phase("registering an Innlandet agreement and waiting for routing to see it");
    stack.register_pilot_agreement().await?;
    let client = stack.routing_client().await?;
    phase("opening one PILOT case, whose stored rows the pgbench script copies");
    let sample = sample_rows(&stack, &client).await?;
    let script_path =
        std::env::temp_dir().join(format!("ekb-bench-{}.sql", uuid::Uuid::new_v4().simple()));
    let mut databases = stack.database_names();
    let result = measure(
        options,
        &pgbench,
        &stack,
        &client,
        &sample,
        &script_path,
        &mut databases,
    )
    .await;
    let _ = std::fs::remove_file(&script_path);
    drop(client);
    let outbox_poll_interval_ms = stack.outbox_poll_interval_ms;
    phase("stopping the services");
    let stopped = stack.stop().await;
    postgres::drop_databases(&databases).await;
    let measured = result?;
    stopped?;

    let run = Run {
        date,
        machine: machine.with_noise(&measured.throughput.cpu),
        concurrency: options.concurrency,
        pool_size: options.routing_pool_size(),
        routing_settings: options.routing_settings.clone(),
        outbox_poll_interval_ms,
        warmup: Duration::from_secs(options.warmup_seconds),
        payload_bytes: sample.payload_len(),
        measured,
        json_path: json_path.display().to_string(),
        log_dir: log_dir.display().to_string(),
    };
    run.write_json(&json_path)?;
    Ok(run)
}

/// The quiet window and the idle calls, then pgbench, the probe and the open loop against the
/// running services, the events read back, then pgbench again. Every database it creates is
/// added to `databases` for the caller to drop.
async fn measure(
    options: &Options,
    pgbench: &Path,
    stack: &Stack,
    client: &RoutingClient,
    sample: &RowSample,
    script_path: &Path,
    databases: &mut Vec<String>,
) -> anyhow::Result<Measured> {
    let mut sequence = Sequence::default();
    phase(&format!(
        "idle CPU: {} s with no calls",
        options.idle_seconds
    ));
    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_cpu = IdleCpu::measure(stack, Duration::from_secs(options.idle_seconds)).await?;
    phase(&format!(
        "idle event latency: {} single OpenCase calls, {} ms apart",
        options.idle_events,
        IDLE_SPACING.as_millis()
    ));
    let idle_window = event_latency::idle_calls(
        client,
        &mut sequence,
        options.idle_events,
        &stack.routing.log_path,
    )
    .await?;
    postgres::wait_for_outbox(&stack.routing_db.url).await?;

    phase(&baseline_phase("before", options));
    let before = baseline::measure(options, pgbench, sample, script_path, databases).await?;

    let throughput = Throughput::measure(options, stack, client, &mut sequence).await?;
    phase("waiting for the outbox relay to publish every event");
    let outbox = postgres::wait_for_outbox(&stack.routing_db.url).await?;
    let mut peak_rss_mib = BTreeMap::new();
    for service in stack.services() {
        peak_rss_mib.insert(
            service.name.clone(),
            process_stats::peak_rss_mib(service.pid())?,
        );
    }
    phase("reading routing's topic back for the events' timestamps");
    let brokers = stack.broker.bootstrap_servers().to_owned();
    let topic = stack.routing_topic();
    let events =
        tokio::task::spawn_blocking(move || event_latency::read_all(&brokers, &topic)).await??;
    let event_latency =
        EventLatency::from_events(&events, idle_window, throughput.window, options.idle_events);

    phase(&baseline_phase("after", options));
    let after = baseline::measure(options, pgbench, sample, script_path, databases).await?;
    Ok(Measured {
        throughput,
        baseline: BaselineBracket { before, after },
        outbox,
        peak_rss_mib,
        idle_cpu,
        event_latency,
    })
}

/// The announcement of a pgbench run `when` ("before" or "after") the load.
fn baseline_phase(when: &str, options: &Options) -> String {
    format!(
        "pgbench baseline {when} the load: {} clients, {} s + {} s warm-up",
        options.concurrency, options.seconds, options.warmup_seconds
    )
}

/// Opens one PILOT case (request 0 of the mix), waits until its CaseRouted event is published,
/// and reads both rows back as the pgbench script's values.
async fn sample_rows(stack: &Stack, client: &RoutingClient) -> anyhow::Result<RowSample> {
    let (request, expected) = workload::open_case(0);
    anyhow::ensure!(
        expected.0 == Flow::Pilot,
        "request 0 of the mix is a PILOT case"
    );
    client
        .clone()
        .open_case(request)
        .await
        .context("opening the sample case")?;
    let outbox = postgres::wait_for_outbox(&stack.routing_db.url).await?;
    anyhow::ensure!(
        outbox.unpublished == 0,
        "the sample case's event was not published within {OUTBOX_DRAIN_TIMEOUT:?}"
    );
    RowSample::read(
        &stack.routing_db.url,
        stack.broker.bootstrap_servers(),
        &stack.routing_topic(),
    )
    .await
}
