//! `ekb-bench` (what `make bench` runs): how fast does OpenCase go on this machine, and how
//! much of PostgreSQL's own speed does the service keep?
//!
//! It starts the real system as processes (the broker and every service of the catalog,
//! `expert-registry`, `routing`, `budget`, …, each with its own fresh database), registers an
//! Innlandet framework agreement and waits until routing's read model has it, so most requests
//! take the PILOT path with its coverage query. The load goes to routing; the services other
//! than routing and the registry only run beside it, so that their memory and idle CPU are
//! measured too. With the stack up and drained it measures each service's CPU over a quiet
//! window, then makes single OpenCase calls a fifth of a second apart to time their events from
//! commit to the broker with nothing else going on ([`event_latency`]). A short closed-loop probe
//! estimates the maximum rate; an open-loop run then offers a fixed fraction of it and
//! measures throughput and latency without coordinated omission ([`load`]), and afterwards the
//! commit-to-broker time of every event of its window. pgbench runs the same transaction shape
//! (OpenCase's unit of work) on the same server at the same concurrency ([`baseline`]) just
//! before the probe and again just after the open loop, and the service's throughput over the
//! mean of the two is the headline figure: the VM's speed drifts, and a baseline on one side
//! only measured the drift as well. Peak RSS of each service comes from the kernel's
//! high-water mark. PostgreSQL runs on its own half of the CPUs and everything else on the
//! other half, in both runs ([`cpu_layout`], ADR 0013).
//!
//! All load goes to 127.0.0.1 and every phase is bounded in time, so a run always ends by
//! itself. The exit status is non-zero only when something failed — a setup step, a request,
//! or event publishing — never for a missed target. One run at a time holds the bench
//! directory's lock, and Ctrl-C or SIGTERM stops what the run started ([`run_guard`]).

mod baseline;
mod cpu_layout;
mod event_latency;
mod h2_connection;
mod load;
mod options;
mod process_stats;
mod report;
mod run_guard;
mod stack;
mod workload;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use ekb_proto::v1::Flow;
use ekb_testkit::{
    postgres::{TEST_DATABASE_PREFIX, admin_url, drop_database},
    services::ServiceProcess,
};
use sqlx::{Connection, Executor, PgConnection};

use crate::{
    baseline::RowSample,
    event_latency::{EventLatency, EventTiming, LiveReader, Window},
    h2_connection::RoutingClient,
    options::{Command, Options},
    process_stats::CpuSnapshot,
    report::{IdleCpu, Machine, Measured, RelayRounds, Run},
    stack::Stack,
};

/// Warm-up of the closed-loop probe before its measured part.
const PROBE_WARMUP: Duration = Duration::from_secs(1);
/// Open-loop runs at most, stepping the rate down after each one that was not sustained.
const RATE_ATTEMPTS: usize = 3;
/// Factor applied to the offered rate after a run that was not sustained.
const RATE_STEP_DOWN: f64 = 0.85;
/// How long the outbox relay may take to publish the last events after the load.
const OUTBOX_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause before the idle-CPU window, for the start-up's last work to finish.
const IDLE_SETTLE: Duration = Duration::from_secs(3);
/// Pause between two idle OpenCase calls.
const IDLE_SPACING: Duration = Duration::from_millis(200);
/// The quiet window right after the load (and its drain): does anything keep running?
const AFTER_LOAD_WINDOW: Duration = Duration::from_secs(10);
/// How often [`wait_for_quiet_relay`] looks at the relay's round count.
const QUIET_PROBE: Duration = Duration::from_secs(2);
/// How long [`wait_for_quiet_relay`] waits at most.
const QUIET_TIMEOUT: Duration = Duration::from_secs(180);
/// Time the live event reader gets to connect before the first idle call, and the last event
/// to arrive after the last call.
const READER_SETTLE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("ekb-bench: {error:#}\n\n{}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    // One thread: the load generator should take as little as possible of the two CPUs it
    // shares with what it measures, and needs no locks this way.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ekb-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(guarded_bench(&options)) {
        Ok(Err(interruption)) => {
            eprintln!(
                "ekb-bench: interrupted by {}; the broker and the services were stopped and \
                 PostgreSQL has its CPUs back",
                interruption.name()
            );
            ExitCode::from(130)
        }
        Ok(Ok(run)) => {
            println!("{}", run.summary());
            if run.total_errors() > 0 || run.measured.outbox_unpublished > 0 {
                eprintln!(
                    "ekb-bench: FAILED: requests failed or events stayed unpublished (see above)"
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("ekb-bench: setup failed: {error:#}");
            ExitCode::FAILURE
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

/// [`bench`] while holding the bench directory's run lock, stopped early (and everything it
/// started stopped with it) by SIGINT or SIGTERM.
async fn guarded_bench(options: &Options) -> anyhow::Result<Result<Run, run_guard::Interruption>> {
    let bench_dir = target_dir()?.join("bench");
    let _lock = run_guard::RunLock::take(&bench_dir)?;
    // Holding the lock, every bench database is a leftover of a run that was killed.
    drop_bench_databases().await;
    match run_guard::until_interrupted(bench(options, &bench_dir)).await? {
        Ok(run) => Ok(Ok(run?)),
        Err(interruption) => {
            drop_bench_databases().await;
            Ok(Err(interruption))
        }
    }
}

/// Runs every phase and collects the figures.
async fn bench(options: &Options, bench_dir: &Path) -> anyhow::Result<Run> {
    let json_path = options
        .out
        .clone()
        .unwrap_or_else(|| bench_dir.join("open_case.json"));
    let log_dir = bench_dir.join("logs");
    // Logs of earlier runs would only confuse; the directory is ours alone.
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;
    let pgbench = baseline::find_pgbench(options.pgbench.as_deref())?;
    let date = time::OffsetDateTime::now_utc().date().to_string();

    // Before anything starts, so the services, the broker and pgbench inherit their CPUs; the
    // guard lives until the baseline is done and then gives PostgreSQL its CPUs back.
    let placement = cpu_layout::CpuPlacement::apply(options.cpu_layout, database_is_local());
    phase(&format!("CPU layout: {}", placement.description));
    let names: Vec<&str> = ekb_testkit::catalog::names().collect();
    phase(&format!(
        "starting the broker and {} (release binaries)",
        names.join(", ")
    ));
    let stack = Stack::start(options, &log_dir).await?;
    let mut machine = machine(&stack, &placement.description).await?;
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
    let stack_poll_interval_ms = stack.outbox_poll_interval_ms;
    phase("stopping the services");
    let stopped = stack.stop().await;
    drop_databases(&databases).await;
    let measured = result?;
    stopped?;

    machine.other_cpu_percent = report::other_cpu_percent(&measured.run_cpu);
    machine.steal_percent = 100.0 * measured.run_cpu.machine_steal
        / measured.run_cpu.machine_total.max(f64::MIN_POSITIVE);
    let run = Run {
        date,
        machine,
        concurrency: options.concurrency,
        pool_size: options.routing_pool_size(),
        routing_settings: options.routing_settings.clone(),
        outbox_poll_interval_ms: stack_poll_interval_ms,
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
/// running services, the events read back, then pgbench again. The services stay up but idle
/// while pgbench runs, both times, so the two baselines see the same machine. Every database
/// it creates is added to `databases` for the caller to drop.
async fn measure(
    options: &Options,
    pgbench: &Path,
    stack: &Stack,
    client: &RoutingClient,
    sample: &RowSample,
    script_path: &Path,
    databases: &mut Vec<String>,
) -> anyhow::Result<Measured> {
    let mut sequence = load::Sequence::default();
    phase(&format!(
        "idle CPU: {} s with no calls",
        options.idle_seconds
    ));
    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_cpu = quiet_window(stack, Duration::from_secs(options.idle_seconds)).await?;
    phase(&format!(
        "idle event latency: {} single OpenCase calls, {} ms apart",
        options.idle_events,
        IDLE_SPACING.as_millis()
    ));
    let (live_events, idle_window) = idle_events(options, stack, client, &mut sequence).await?;
    wait_for_outbox(&stack.routing_db.url).await?;

    phase(&format!(
        "pgbench baseline before the load: {} clients, {} s + {} s warm-up",
        options.concurrency, options.seconds, options.warmup_seconds
    ));
    let (before, before_cpu) = run_baseline(
        options,
        pgbench,
        sample,
        script_path,
        databases,
        Trigger::Keep,
    )
    .await?;

    let (probe, offered_rate, rate_source) =
        choose_rate(options, stack, client, &mut sequence).await?;
    let (cases_before, rounds_before) = (
        wait_for_outbox(&stack.routing_db.url).await?.0,
        relay_rounds(&stack.routing_db.url).await?,
    );
    let (open_loop, run_cpu, offered_rate, unsustained, load_window) =
        open_loop_stepping_down(options, client, &mut sequence, offered_rate).await?;
    phase("waiting for the outbox relay to publish every event");
    let (cases_opened, outbox_unpublished) = wait_for_outbox(&stack.routing_db.url).await?;
    let load_relay = RelayRounds {
        rounds: relay_rounds(&stack.routing_db.url).await? - rounds_before,
        events: cases_opened - cases_before,
    };
    phase(&format!(
        "CPU right after the load: {} s with no calls",
        AFTER_LOAD_WINDOW.as_secs()
    ));
    let after_load_cpu = quiet_window(stack, AFTER_LOAD_WINDOW).await?;
    phase("waiting until routing's relay stops making rounds");
    let relay_settle = wait_for_quiet_relay(&stack.routing_db.url).await?;
    phase(&format!(
        "the relay was quiet after {:.0} more seconds and {} more rounds",
        relay_settle.0.as_secs_f64(),
        relay_settle.1
    ));
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
    let all_events =
        tokio::task::spawn_blocking(move || event_latency::read_all(&brokers, &topic)).await??;
    let event_latency = EventLatency::from_events(
        &all_events,
        &live_events,
        idle_window,
        load_window,
        options.idle_events,
        IDLE_SPACING,
    );

    phase(&format!(
        "pgbench baseline after the load: {} clients, {} s + {} s warm-up",
        options.concurrency, options.seconds, options.warmup_seconds
    ));
    let (after, after_cpu) = run_baseline(
        options,
        pgbench,
        sample,
        script_path,
        databases,
        Trigger::Keep,
    )
    .await?;
    phase(&format!(
        "for comparison, pgbench without the outbox's NOTIFY trigger: {} s + {} s warm-up",
        options.seconds, options.warmup_seconds
    ));
    let (without_notify, _) = run_baseline(
        options,
        pgbench,
        sample,
        script_path,
        databases,
        Trigger::Drop,
    )
    .await?;
    Ok(Measured {
        probe,
        offered_rate,
        rate_source,
        unsustained,
        open_loop,
        run_cpu,
        cases_opened,
        outbox_unpublished,
        peak_rss_mib,
        baseline: baseline::BaselineBracket { before, after },
        baseline_cpu: before_cpu.plus(&after_cpu),
        baseline_without_notify: without_notify,
        idle_cpu,
        after_load_cpu,
        load_relay,
        relay_settle,
        event_latency,
    })
}

/// Each service's CPU (`utime + stime` from `/proc/<pid>/stat`) over `window` with nothing
/// calling it, and routing's relay rounds in it; the whole machine's CPU over the same window
/// says what else ran.
async fn quiet_window(stack: &Stack, window: Duration) -> anyhow::Result<IdleCpu> {
    let rounds_before = relay_rounds(&stack.routing_db.url).await?;
    let services: Vec<&ServiceProcess> = stack.services().collect();
    type Reading = (f64, BTreeMap<String, f64>);
    let read = || -> anyhow::Result<Vec<Reading>> {
        services
            .iter()
            .map(|service| {
                Ok((
                    process_stats::cpu_seconds(service.pid())?,
                    process_stats::thread_cpu_seconds(service.pid())?,
                ))
            })
            .collect()
    };
    let machine_before = CpuSnapshot::take()?;
    let before = read()?;
    let started = tokio::time::Instant::now();
    tokio::time::sleep(window).await;
    let after = read()?;
    let elapsed = started.elapsed();
    let cpu = CpuSnapshot::take()?.since(&machine_before);
    let relay_rounds = relay_rounds(&stack.routing_db.url).await? - rounds_before;
    let mut service_seconds = BTreeMap::new();
    let mut thread_seconds = BTreeMap::new();
    for (service, (before, after)) in services.iter().zip(before.iter().zip(&after)) {
        service_seconds.insert(service.name.clone(), (after.0 - before.0).max(0.0));
        let threads: BTreeMap<String, f64> = after
            .1
            .iter()
            .map(|(name, now)| {
                let earlier = before.1.get(name).copied().unwrap_or(0.0);
                (name.clone(), (now - earlier).max(0.0))
            })
            .collect();
        thread_seconds.insert(service.name.clone(), threads);
    }
    Ok(IdleCpu {
        window: elapsed,
        relay_rounds,
        service_seconds,
        thread_seconds,
        cpu,
    })
}

/// After the load, waits until routing's relay stops starting rounds (at most one in
/// [`QUIET_PROBE`]), for at most [`QUIET_TIMEOUT`]; returns how long that took and the rounds
/// it made meanwhile. A relay that runs one round per queued commit notification keeps going
/// long after the last event is published, and would load the second pgbench run.
async fn wait_for_quiet_relay(routing_db_url: &str) -> anyhow::Result<(Duration, i64)> {
    let started = tokio::time::Instant::now();
    let first = relay_rounds(routing_db_url).await?;
    let mut last = first;
    loop {
        tokio::time::sleep(QUIET_PROBE).await;
        let now = relay_rounds(routing_db_url).await?;
        let quiet = now - last <= 1;
        last = now;
        if quiet || started.elapsed() >= QUIET_TIMEOUT {
            return Ok((started.elapsed(), last - first));
        }
    }
}

/// `--idle-events` single OpenCase calls, [`IDLE_SPACING`] apart, with a live reader on
/// routing's topic; returns what the reader saw and the window the calls' events occurred in.
async fn idle_events(
    options: &Options,
    stack: &Stack,
    client: &RoutingClient,
    sequence: &mut load::Sequence,
) -> anyhow::Result<(Vec<EventTiming>, Window)> {
    let reader = LiveReader::start(stack.broker.bootstrap_servers(), &stack.routing_topic())?;
    tokio::time::sleep(READER_SETTLE).await;
    let started = SystemTime::now();
    let mut failures = BTreeMap::<String, u64>::new();
    for _ in 0..options.idle_events {
        if let Err(failure) = load::single_call(client, sequence).await {
            *failures.entry(failure.to_string()).or_default() += 1;
        }
        tokio::time::sleep(IDLE_SPACING).await;
    }
    let window = Window::starting(
        started,
        SystemTime::now()
            .duration_since(started)
            .unwrap_or_default(),
    );
    tokio::time::sleep(READER_SETTLE).await;
    let events = tokio::task::spawn_blocking(move || reader.stop()).await??;
    anyhow::ensure!(
        failures.is_empty(),
        "idle OpenCase calls failed: {failures:?}; routing log: {}",
        stack.routing.log_path.display()
    );
    Ok((events, window))
}

/// The rate to offer: the one given with `--rate`, or a fraction of what a closed-loop probe
/// reached (the probe's figures are returned too, and the relay's backlog from the probe is
/// drained first).
async fn choose_rate(
    options: &Options,
    stack: &Stack,
    client: &RoutingClient,
    sequence: &mut load::Sequence,
) -> anyhow::Result<(Option<load::LoadResult>, f64, String)> {
    Ok(match options.rate {
        Some(rate) => (None, rate, "given with --rate".to_owned()),
        None => {
            phase(&format!(
                "closed-loop probe: {} in flight for {} s",
                options.concurrency, options.probe_seconds
            ));
            let probe = load::closed_loop(
                client,
                sequence,
                options.concurrency,
                PROBE_WARMUP,
                Duration::from_secs(options.probe_seconds),
            )
            .await?;
            anyhow::ensure!(
                probe.throughput_per_s > 0.0,
                "the probe completed no request ({} errors: {:?}); routing log: {}",
                probe.error_count(),
                probe.errors,
                stack.routing.log_path.display()
            );
            let rate = probe.throughput_per_s * options.rate_fraction;
            let source = format!(
                "{:.0} % of the probed {:.1}/s",
                options.rate_fraction * 100.0,
                probe.throughput_per_s
            );
            // At full speed the relay falls behind; let it catch up so the backlog does not
            // eat into the measured run.
            phase("waiting for the outbox relay to catch up after the probe");
            let waited = tokio::time::Instant::now();
            let (_, left) = wait_for_outbox(&stack.routing_db.url).await?;
            phase(&format!(
                "outbox drained in {:.1} s ({left} rows left)",
                waited.elapsed().as_secs_f64()
            ));
            (Some(probe), rate, source)
        }
    })
}

/// The open-loop run at `offered_rate`; if that is not sustained (the machine is shared, and
/// a 5-second probe can be lucky), steps the rate down and measures again, a bounded number of
/// times. Returns the last run, its CPU, its rate, the unsustained attempts before it, and the
/// wall-clock span of its measured window.
async fn open_loop_stepping_down(
    options: &Options,
    client: &RoutingClient,
    sequence: &mut load::Sequence,
    offered_rate: f64,
) -> anyhow::Result<(
    load::LoadResult,
    CpuSnapshot,
    f64,
    Vec<(f64, load::LoadResult)>,
    Window,
)> {
    let mut offered_rate = offered_rate;
    let mut unsustained = Vec::new();
    loop {
        phase(&format!(
            "open loop: {offered_rate:.1}/s, at most {} in flight, {} s + {} s warm-up",
            options.concurrency, options.seconds, options.warmup_seconds
        ));
        checkpoint().await;
        let cpu_before = CpuSnapshot::take()?;
        let window = Window::starting(
            SystemTime::now() + Duration::from_secs(options.warmup_seconds),
            Duration::from_secs(options.seconds),
        );
        let result = load::open_loop(
            client,
            sequence,
            options.concurrency,
            offered_rate,
            Duration::from_secs(options.warmup_seconds),
            Duration::from_secs(options.seconds),
        )
        .await?;
        let cpu = CpuSnapshot::take()?.since(&cpu_before);
        let last_attempt = options.rate.is_some() || unsustained.len() + 1 >= RATE_ATTEMPTS;
        if result.sustained(offered_rate) || last_attempt {
            return Ok((result, cpu, offered_rate, unsustained, window));
        }
        phase(&format!(
            "{offered_rate:.1}/s was not sustained ({:.1}/s answered, send delay up to {:.0} ms); \
             lowering the offered rate by {:.0} %",
            result.throughput_per_s,
            result.max_send_lag.as_secs_f64() * 1000.0,
            (1.0 - RATE_STEP_DOWN) * 100.0
        ));
        unsustained.push((offered_rate, result));
        offered_rate *= RATE_STEP_DOWN;
    }
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
    let (_, unpublished) = wait_for_outbox(&stack.routing_db.url).await?;
    anyhow::ensure!(
        unpublished == 0,
        "the sample case's event was not published within {OUTBOX_DRAIN_TIMEOUT:?}"
    );
    RowSample::read(
        &stack.routing_db.url,
        stack.broker.bootstrap_servers(),
        &stack.routing_topic(),
    )
    .await
}

/// Whether the baseline database keeps the outbox's triggers (the relay's NOTIFY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// As routing's migrations create it: the headline baseline.
    Keep,
    /// Dropped, for comparison: what the commit-time NOTIFY costs PostgreSQL.
    Drop,
}

/// One baseline measurement: a fresh database with routing's schema (recorded in
/// `databases`), a warm-up run of routing's transaction, then the measured run and the CPU it
/// used.
async fn run_baseline(
    options: &Options,
    pgbench: &Path,
    sample: &RowSample,
    script_path: &Path,
    databases: &mut Vec<String>,
    trigger: Trigger,
) -> anyhow::Result<(baseline::PgbenchResult, CpuSnapshot)> {
    let database = baseline::prepare_database(sample).await?;
    databases.push(database.name.clone());
    if trigger == Trigger::Drop {
        let dropped = baseline::drop_outbox_triggers(&database.url).await?;
        phase(&format!(
            "dropped the outbox's triggers: {}",
            dropped.join(", ")
        ));
    }
    let run = |seconds: u64| {
        baseline::run_pgbench(
            pgbench,
            &database.url,
            script_path,
            options.concurrency,
            seconds,
        )
    };
    std::fs::write(script_path, baseline::script(sample))?;
    checkpoint().await;
    if options.warmup_seconds > 0 {
        run(options.warmup_seconds)
            .await
            .context("pgbench warm-up")?;
    }
    let before = CpuSnapshot::take()?;
    let measured = run(options.seconds).await?;
    let cpu = CpuSnapshot::take()?.since(&before);
    Ok((measured, cpu))
}

/// Asks PostgreSQL for a checkpoint, so that each measured phase starts with no dirty pages
/// left by the one before and none of them pays for writing out another's (without it, a
/// checkpoint falls at a random point of whichever phase is running when it is due). Needs a
/// superuser or `pg_checkpoint`; without one the run goes on, and says so.
async fn checkpoint() {
    let result = async {
        let mut admin = PgConnection::connect(&admin_url()).await?;
        admin.execute("CHECKPOINT").await?;
        admin.close().await
    }
    .await;
    if let Err(error) = result {
        phase(&format!(
            "could not run CHECKPOINT ({error}); phases may pay for each other's writes"
        ));
    }
}

/// Waits until routing's relay has published every outbox row (or the timeout passes);
/// returns (cases opened, events still unpublished).
async fn wait_for_outbox(routing_db_url: &str) -> anyhow::Result<(i64, i64)> {
    let mut connection = PgConnection::connect(routing_db_url).await?;
    let deadline = tokio::time::Instant::now() + OUTBOX_DRAIN_TIMEOUT;
    loop {
        let (rows, unpublished): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM cases), \
                    (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
        )
        .fetch_one(&mut connection)
        .await?;
        if unpublished == 0 || tokio::time::Instant::now() >= deadline {
            connection.close().await?;
            return Ok((rows, unpublished));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rounds of routing's outbox relay so far: each renews the relay's lease row first (an insert
/// or update of `outbox_relay_lease`), which PostgreSQL's statistics count. A backend reports
/// its counts when it goes idle, at most once a second, and up to 10 s late when it then stays
/// idle, so a difference over a window is good to a round or two.
async fn relay_rounds(routing_db_url: &str) -> anyhow::Result<i64> {
    let mut connection = PgConnection::connect(routing_db_url).await?;
    let rounds: Option<i64> = sqlx::query_scalar(
        "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables \
         WHERE relname = 'outbox_relay_lease'",
    )
    .fetch_optional(&mut connection)
    .await?;
    connection.close().await?;
    Ok(rounds.unwrap_or(0))
}

/// Whether the PostgreSQL server is on this machine (only then can its CPUs be chosen).
fn database_is_local() -> bool {
    use std::str::FromStr;
    sqlx::postgres::PgConnectOptions::from_str(&admin_url()).is_ok_and(|options| {
        let host = options.get_host();
        host.starts_with('/') || ["127.0.0.1", "localhost", "::1"].contains(&host)
    })
}

/// Drops every database a benchmark run creates (each run's purposes start with `bench_`);
/// only safe while holding the run lock.
async fn drop_bench_databases() {
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
async fn drop_databases(names: &[String]) {
    for name in names {
        if let Err(error) = drop_database(name).await {
            eprintln!("ekb-bench: could not drop database {name}: {error:#}");
        }
    }
}

/// What the figures were measured on.
async fn machine(stack: &Stack, cpu_layout: &str) -> anyhow::Result<Machine> {
    // Counted from /proc/cpuinfo: this process may already be confined to some of them.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count()
        .max(1);
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or_else(
            || "unknown".to_owned(),
            |(_, model)| model.trim().to_owned(),
        );
    let mut admin = PgConnection::connect(&admin_url()).await?;
    let (version, fsync, synchronous_commit): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('fsync'), \
         current_setting('synchronous_commit')",
    )
    .fetch_one(&mut admin)
    .await?;
    admin.close().await?;
    let broker = if stack.broker.is_external() {
        format!("external Kafka at {}", stack.broker.bootstrap_servers())
    } else {
        "ekb-mock-broker (librdkafka mock cluster, in memory)".to_owned()
    };
    Ok(Machine {
        cpus,
        cpu_model,
        postgres: format!("{version} (fsync={fsync}, synchronous_commit={synchronous_commit})"),
        broker,
        other_cpu_percent: 0.0,
        steal_percent: 0.0,
        notes: format!(
            "CPU layout {cpu_layout}; pgbench ran on the same server before and after the load, \
             with the services idle"
        ),
    })
}

/// Announces a phase on stderr, so the summary on stdout stays clean.
fn phase(what: &str) {
    eprintln!("ekb-bench: {what}");
}
