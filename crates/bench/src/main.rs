//! `ekb-bench` (what `make bench` runs): how fast does OpenCase go on this machine, and how
//! much of PostgreSQL's own speed does the service keep?
//!
//! It starts the real system as processes (broker, `expert-registry`, `routing`, each service
//! with its own fresh database), registers an Innlandet framework agreement and waits until
//! routing's read model has it, so most requests take the PILOT path with its coverage query.
//! A short closed-loop probe estimates the maximum rate; an open-loop run then offers a fixed
//! fraction of it and measures throughput and latency without coordinated omission
//! ([`load`]). pgbench runs the same transaction shape on the same server at the same
//! concurrency ([`baseline`]) just before the probe and again just after the open loop, and
//! the service's throughput over the mean of the two is the headline figure: the VM's speed
//! drifts, and a baseline on one side only measured the drift as well. Peak RSS
//! of each service comes from the kernel's high-water mark. PostgreSQL runs on its own half of
//! the CPUs and everything else on the other half, in both runs ([`cpu_layout`], ADR 0013).
//!
//! All load goes to 127.0.0.1 and every phase is bounded in time, so a run always ends by
//! itself. The exit status is non-zero only when something failed — a setup step, a request,
//! or event publishing — never for a missed target. One run at a time holds the bench
//! directory's lock, and Ctrl-C or SIGTERM stops what the run started ([`run_guard`]).

mod baseline;
mod cpu_layout;
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
    time::Duration,
};

use anyhow::Context;
use ekb_proto::v1::Flow;
use ekb_testkit::postgres::{TEST_DATABASE_PREFIX, admin_url, drop_database};
use sqlx::{Connection, Executor, PgConnection};

use crate::{
    baseline::RowSample,
    h2_connection::RoutingClient,
    options::{Command, Options},
    process_stats::CpuSnapshot,
    report::{Machine, Measured, Run},
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
    phase("starting the broker, expert-registry and routing (release binaries)");
    let stack = Stack::start(options, &log_dir).await?;
    let mut machine = machine(&stack, &placement.description).await?;
    phase("registering an Innlandet agreement and waiting for routing to see it");
    stack.register_pilot_agreement().await?;
    let client = stack.routing_client().await?;
    phase("opening one PILOT case, whose stored rows the pgbench script copies");
    let sample = sample_rows(&stack, &client).await?;
    let script_path =
        std::env::temp_dir().join(format!("ekb-bench-{}.sql", uuid::Uuid::new_v4().simple()));
    let mut databases = vec![
        stack.routing_db.name.clone(),
        stack.registry_db.name.clone(),
    ];
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
        warmup: Duration::from_secs(options.warmup_seconds),
        payload_bytes: sample.payload_len(),
        measured,
        json_path: json_path.display().to_string(),
        log_dir: log_dir.display().to_string(),
    };
    run.write_json(&json_path)?;
    Ok(run)
}

/// pgbench, then the probe and the open loop against the running services, then pgbench again
/// and its four-statement form. The services stay up but idle while pgbench runs, both times,
/// so the two baselines see the same machine. Every database it creates is added to
/// `databases` for the caller to drop.
async fn measure(
    options: &Options,
    pgbench: &Path,
    stack: &Stack,
    client: &RoutingClient,
    sample: &RowSample,
    script_path: &Path,
    databases: &mut Vec<String>,
) -> anyhow::Result<Measured> {
    phase(&format!(
        "pgbench baseline before the load: {} clients, {} s + {} s warm-up",
        options.concurrency, options.seconds, options.warmup_seconds
    ));
    let (before, before_cpu, _) =
        run_baseline(options, pgbench, sample, script_path, databases).await?;
    let mut sequence = load::Sequence::default();

    let (probe, offered_rate, rate_source) =
        choose_rate(options, stack, client, &mut sequence).await?;
    let (open_loop, run_cpu, offered_rate, unsustained) =
        open_loop_stepping_down(options, client, &mut sequence, offered_rate).await?;
    phase("waiting for the outbox relay to publish every event");
    let (cases_opened, outbox_unpublished) = wait_for_outbox(&stack.routing_db.url).await?;
    let cases_per_commit = cases_per_commit(&stack.routing_db.url).await?;
    let mut peak_rss_mib = BTreeMap::new();
    for service in [&stack.routing, &stack.registry] {
        peak_rss_mib.insert(
            service.name.clone(),
            process_stats::peak_rss_mib(service.pid())?,
        );
    }

    phase(&format!(
        "pgbench baseline after the load: {} clients, {} s + {} s warm-up, then {} s of the \
         four-statement form",
        options.concurrency, options.seconds, options.warmup_seconds, options.seconds
    ));
    let (after, after_cpu, database_url) =
        run_baseline(options, pgbench, sample, script_path, databases).await?;
    std::fs::write(script_path, baseline::four_statement_script(sample))?;
    let four_statement_baseline = baseline::run_pgbench(
        pgbench,
        &database_url,
        script_path,
        options.concurrency,
        options.seconds,
    )
    .await
    .context("pgbench, four-statement form")?;
    Ok(Measured {
        probe,
        offered_rate,
        rate_source,
        unsustained,
        open_loop,
        run_cpu,
        cases_opened,
        cases_per_commit,
        outbox_unpublished,
        peak_rss_mib,
        baseline: baseline::BaselineBracket { before, after },
        baseline_cpu: before_cpu.plus(&after_cpu),
        four_statement_baseline,
    })
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
/// times. Returns the last run, its CPU, its rate and the unsustained attempts before it.
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
            return Ok((result, cpu, offered_rate, unsustained));
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

/// One baseline measurement: a fresh database with routing's schema (recorded in
/// `databases`), a warm-up run of routing's statement, then the measured run and the CPU it
/// used. Returns the database's URL too, for the four-statement run.
async fn run_baseline(
    options: &Options,
    pgbench: &Path,
    sample: &RowSample,
    script_path: &Path,
    databases: &mut Vec<String>,
) -> anyhow::Result<(baseline::PgbenchResult, CpuSnapshot, String)> {
    let database = baseline::prepare_database(sample).await?;
    databases.push(database.name.clone());
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
    Ok((measured, cpu, database.url.clone()))
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

/// How many cases routing stored per transaction over the whole run (probe and warm-up
/// included): rows written by one transaction share its id (`xmin`), so this is the mean size
/// of OpenCase's group commits (ADR 0015).
async fn cases_per_commit(routing_db_url: &str) -> anyhow::Result<f64> {
    let mut connection = PgConnection::connect(routing_db_url).await?;
    let (cases, transactions): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT xmin::text) FROM cases")
            .fetch_one(&mut connection)
            .await?;
    connection.close().await?;
    Ok(cases as f64 / transactions.max(1) as f64)
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
