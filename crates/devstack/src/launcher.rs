//! The launcher's sequence: broker → topics and databases → local token issuer → services →
//! demo (fixture, sample cases, budget, a walk through each flow, the evaluation's table) →
//! serve until a signal → stop everything in order.
//!
//! Every service of the catalog (`ekb_testkit::catalog::SERVICES`) is started, waited for and
//! stopped the same way; nothing here names a service. What is particular to routing and the
//! registry — the fixture and the sample cases — is in `demo`, budget's appropriation and
//! usage report in `budget_demo`, the walks through both flows in `regular_flow_demo` and
//! `pilot_flow_demo`, and the evaluation's table of the month in `evaluation_demo`; all find
//! their services by name. What differs per service under `make run` — whether it checks tokens
//! (four eyes needs two people; `demo_callers` says why), trusting a local issuer, and its
//! settings beyond the defaults — is in its catalog entry (`dev_auth`, `dev_settings`).
//!
//! The pieces are testkit's (`TestBroker`, `ServiceProcess`, `postgres`), as in the end-to-end
//! tests; what the launcher adds is fixed ports and log paths, and process groups of their own
//! for the broker and the services (`ProcessGroup::Own`). In a terminal, Ctrl-C goes to the
//! whole foreground group: in one group, the broker would die at once while the services were
//! still shutting down, and each service's log would end in "all brokers down" errors. Apart,
//! the Ctrl-C reaches only `ekb-dev`, which stops the services and then the broker.
//!
//! A signal is honoured at every step, not only once the system is up: since the children are
//! in their own process groups, if `ekb-dev` simply died on Ctrl-C during start-up they would
//! outlive it and keep their ports. Instead each step runs inside a race with the signal, and
//! whatever happens the services get SIGTERM and are waited for.

use std::{
    net::{SocketAddr, TcpListener},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use ekb_platform::{
    clock::{OffsetClock, SharedClock, SystemClock},
    messaging::topic_for,
};
use ekb_testkit::{
    binaries::profile_dir,
    broker::{BROKERS_ENV, BrokerOptions, MOCK_BROKER_BIN_NAME, TestBroker, create_topic},
    issuer::TestIssuer,
    postgres::{TestDatabase, admin_url, drop_database, server_address},
    process::ProcessGroup,
    services::{ServiceProcess, TestSettings},
};
use futures::future::join_all;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    budget_demo, databases, demo,
    demo_callers::{self, authenticated_services},
    evaluation_demo, instructions,
    options::{METRICS_PORT_FLAG, Options, PORT_FLAG, ServiceOptions},
    pilot_flow_demo, regular_flow_demo,
};

/// How long a service may take from spawn to SERVING (the first start runs migrations).
const SERVING_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM's number.
const SIGTERM: i32 = 15;
/// How long a service may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Partitions of the event topics when this run creates them (the mock broker's default).
const TOPIC_PARTITIONS: i32 = 4;
/// Exit code after an interruption before the system was up (128 + SIGINT, as shells do).
const INTERRUPTED: u8 = 130;

/// SIGINT and SIGTERM, installed before anything is started.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Resolves with the name of the first signal received.
    async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// What has been started so far, so that whatever happens — an error, a signal at any step —
/// exactly that gets stopped. The simulator starts the same stack ([`start_system`]) and
/// restarts its services when its fault schedule kills them ([`Stack::restart`]).
#[derive(Default)]
pub struct Stack {
    /// The broker (embedded, or the external cluster's address).
    pub broker: Option<TestBroker>,
    /// The services spawned so far, in catalog order.
    pub services: Vec<ServiceProcess>,
    /// The settings each service was spawned with (same order), to start it again.
    pub settings: Vec<TestSettings>,
    /// The local token issuer the four-eyes services trust (`demo_callers`).
    pub issuer: Option<TestIssuer>,
    /// Where the services' logs go.
    pub log_dir: PathBuf,
    /// Set once the demo table has been printed.
    up: bool,
}

impl Stack {
    /// Starts service `index` again on its ports with its settings (after it died or was
    /// killed), logging to a new file beside the first (`<name>-<n>.log`), and waits until it
    /// serves.
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        let service = self
            .services
            .get(index)
            .context("no service at that index")?;
        let name = service.name.clone();
        let (grpc, metrics) = (service.grpc_addr, service.metrics_addr);
        let settings = self.settings.get(index).context("no settings")?.clone();
        let starts = 1 + std::fs::read_dir(&self.log_dir)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|entry| {
                        entry
                            .file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{name}-"))
                    })
                    .count()
            })
            .unwrap_or(0);
        let log = self.log_dir.join(format!("{name}-{starts}.log"));
        let mut process =
            ServiceProcess::spawn_at(&name, &settings, grpc, metrics, &log, ProcessGroup::Own)?;
        process.wait_until_serving(SERVING_TIMEOUT).await?;
        self.services[index] = process;
        Ok(())
    }

    /// SIGTERM to every service, waits for all of them, then stops the broker. Fails if a
    /// service that had reached SERVING did not exit cleanly.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let mut stopped: Vec<String> = self
            .services
            .iter()
            .map(|service| service.name.clone())
            .collect();
        let results = join_all(self.services.iter_mut().map(stop_service)).await;
        let mut problems: Vec<String> = results
            .into_iter()
            .filter_map(|result| result.err().map(|error| format!("{error:#}")))
            .collect();
        if let Some(broker) = self.broker.take() {
            let external = broker.is_external();
            match broker.stop().await {
                Ok(()) if external => {}
                Ok(()) => stopped.push("the embedded broker".to_owned()),
                Err(error) => problems.push(format!("{error:#}")),
            }
        }
        if !problems.is_empty() {
            bail!("stopping: {}", problems.join("; "));
        }
        if !stopped.is_empty() {
            println!("Stopped {}.", stopped.join(", "));
        }
        Ok(())
    }
}

/// Stops one service.
async fn stop_service(service: &mut ServiceProcess) -> anyhow::Result<()> {
    let status = service.stop(STOP_TIMEOUT).await?;
    // Before a service has installed its signal handler, SIGTERM simply ends it: expected
    // when the start itself is interrupted.
    let ended_while_starting = !service.has_served() && status.signal() == Some(SIGTERM);
    if !status.success() && !ended_while_starting {
        bail!(
            "{} exited with {status}; see {}",
            service.name,
            service.log_path.display()
        );
    }
    Ok(())
}

/// Runs the whole sequence; the exit code to end with.
pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::install()?;
    println!("ekb-dev: running the ekspertbistand system locally\n");
    let mut stack = Stack::default();
    let outcome = tokio::select! {
        result = bring_up_and_serve(&mut stack, &options) => result,
        signal = signals.received() => {
            println!("\n{signal}: stopping…");
            Ok(())
        }
    };
    let stopped = stack.stop().await;
    match (outcome, stopped) {
        (Err(error), Err(stop_error)) => {
            eprintln!("ekb-dev: {stop_error:#}");
            return Err(error);
        }
        (Err(error), Ok(())) | (Ok(()), Err(error)) => return Err(error),
        (Ok(()), Ok(())) => {}
    }
    if stack.up {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("ekb-dev: interrupted before the system was up");
        Ok(ExitCode::from(INTERRUPTED))
    }
}

/// Starts everything into `stack`, runs the demo, then (unless `--exit-after-demo`) serves
/// until a process dies — in practice until the caller's race with a signal ends it.
async fn bring_up_and_serve(stack: &mut Stack, options: &Options) -> anyhow::Result<()> {
    let clock: SharedClock = match options.clock_start {
        None => Arc::new(SystemClock),
        Some(start) => {
            println!(
                "Clock       SIMULATED: every service's time and the walks' start at {start} \
                 (--clock-start)"
            );
            Arc::new(OffsetClock::starting_at(start))
        }
    };
    start_system(stack, options).await?;
    demo::run(&stack.services).await?;
    budget_demo::run(&stack.services, clock.as_ref()).await?;
    let mut walked = evaluation_demo::Walked::default();
    if let Some(issuer) = &stack.issuer {
        walked.regular_paid =
            regular_flow_demo::run(&stack.services, issuer, options.fresh, clock.as_ref()).await?;
        walked.pilot_paid =
            pilot_flow_demo::run(&stack.services, issuer, options.fresh, clock.as_ref()).await?;
    }
    evaluation_demo::run(&stack.services, clock.as_ref(), walked).await?;
    stack.up = true;
    if options.exit_after_demo {
        println!("\n--exit-after-demo: stopping…");
        return Ok(());
    }
    println!(
        "\n{}",
        instructions::how_to_call(
            &stack.services,
            stack
                .broker
                .as_ref()
                .map_or("", TestBroker::bootstrap_servers),
            &options.topic_prefix,
            budget_demo::budget_year_now(clock.as_ref())
        )
    );
    if let Some(issuer) = &stack.issuer {
        println!(
            "{}",
            demo_callers::token_instructions(issuer, &stack.services)
        );
    }
    println!("Press Ctrl-C to stop.");
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for service in &mut stack.services {
            service.ensure_running()?;
        }
    }
}

/// Starts the broker (or uses `EKB__KAFKA__BROKERS`'s), the topics, the databases, the local
/// token issuer and every service of `options` into `stack`, and waits until all serve: the
/// system as `make run` and `make simulate` run it.
pub async fn start_system(stack: &mut Stack, options: &Options) -> anyhow::Result<()> {
    let clock_start = options
        .clock_start
        .map(|start| start.format(&time::format_description::well_known::Rfc3339))
        .transpose()?;
    // If a signal ends this while the broker is starting, the blocking task still finishes and
    // drops the broker it made, which stops it.
    let log_dir = match &options.log_dir {
        Some(dir) => dir.clone(),
        None => default_log_dir()?,
    };
    stack.log_dir = log_dir.clone();
    let broker_options = BrokerOptions {
        process_group: ProcessGroup::Own,
        log_path: Some(log_dir.join(format!("{MOCK_BROKER_BIN_NAME}.log"))),
    };
    let broker = tokio::task::spawn_blocking(move || TestBroker::start_with(&broker_options))
        .await
        .context("starting the broker")??;
    let brokers = broker.bootstrap_servers().to_owned();
    if broker.is_external() {
        println!("Kafka       external cluster {brokers} (from {BROKERS_ENV})");
    } else {
        println!(
            "Kafka       embedded mock broker at {brokers} (librdkafka mock cluster in ekb-mock-broker;\n            \
             in memory, gone when ekb-dev stops; set {BROKERS_ENV} to use a real cluster)"
        );
    }
    stack.broker = Some(broker);

    // Created up front so a consumer does not subscribe to a topic that does not exist yet
    // (harmless, but it logs an error until the producer's first event creates it).
    for service in &options.services {
        let topic = topic_for(&options.topic_prefix, service.entry.name);
        create_topic(&brokers, &topic, TOPIC_PARTITIONS)
            .await
            .with_context(|| format!("creating topic {topic} on {brokers}"))?;
    }

    let databases: Vec<TestDatabase> = options
        .services
        .iter()
        .map(|service| databases::for_service(&options.db_prefix, service.entry))
        .collect();
    if options.fresh {
        for database in &databases {
            drop_database(&database.name).await?;
        }
    }
    let names: Vec<&str> = databases
        .iter()
        .map(|database| database.name.as_str())
        .collect();
    println!(
        "PostgreSQL  {}: databases {} ({})",
        server_address(&admin_url()),
        names.join(", "),
        if options.fresh {
            "dropped, created empty by the services"
        } else {
            "data kept from earlier runs; --fresh starts empty"
        }
    );
    let issuer = start_issuer(&options.services).await?;
    println!(
        "Auth        OFF for the other services (auth.mode=disabled): no bearer token needed, no \
         role checks.\n            ON for {} (four eyes needs two people): tokens from a local \
         issuer,\n            JWKS at {}; its key protects nothing. Local runs only.",
        authenticated_services().join(", "),
        issuer.jwks_url()
    );

    // Every port is checked before anything is spawned, so a taken port starts nothing.
    for service in &options.services {
        ensure_free(service)?;
    }
    for (service, database) in options.services.iter().zip(&databases) {
        let name = service.entry.name;
        let mut settings = TestSettings::new(&database.url, &brokers, &options.topic_prefix)
            .with("auth.mode", "disabled")
            .with("kafka.topic_prefix", options.topic_prefix.clone())
            .with("kafka.auto_create_topics", "true")
            .with("database.create_if_missing", "true");
        if service.entry.dev_auth {
            settings = settings.with_auth(&issuer);
        }
        for (key, value) in service.entry.dev_settings {
            settings = settings.with(key, *value);
        }
        if let Some(start) = &clock_start {
            settings = settings
                .with("clock.start", start.clone())
                .with("clock.allow_with_jwt", "true");
        }
        if let Some(file) = &options.clock_file {
            settings = settings
                .with("clock.file", file.display().to_string())
                .with("clock.allow_with_jwt", "true");
        }
        for setting in options
            .settings
            .iter()
            .filter(|setting| setting.service == name)
        {
            println!("Setting     {name}: {} = {}", setting.key, setting.value);
            settings = settings.with(&setting.key, setting.value.clone());
        }
        stack
            .services
            .push(spawn_service(service, &settings, &log_dir)?);
        stack.settings.push(settings);
    }
    let mut logs: Vec<&str> = options.services.iter().map(|s| s.entry.name).collect();
    if !stack.broker.as_ref().is_some_and(TestBroker::is_external) {
        logs.push(MOCK_BROKER_BIN_NAME);
    }
    println!(
        "Logs        {}/{{{}}}.log",
        log_dir.display(),
        logs.join(",")
    );

    stack.issuer = Some(issuer);
    wait_until_serving(&mut stack.services).await
}

/// Waits until every service reports SERVING (all at once), printing where each listens.
async fn wait_until_serving(services: &mut [ServiceProcess]) -> anyhow::Result<()> {
    let names: Vec<&str> = services
        .iter()
        .map(|service| service.name.as_str())
        .collect();
    println!("\nStarting {}…", names.join(", "));
    let started = Instant::now();
    let results = join_all(
        services
            .iter_mut()
            .map(|service| service.wait_until_serving(SERVING_TIMEOUT)),
    )
    .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    for service in services.iter() {
        println!(
            "  {:<16} SERVING  gRPC {}  metrics http://{}/metrics",
            service.name, service.grpc_addr, service.metrics_addr
        );
    }
    println!(
        "  (all {} up in {:.1} s)",
        services.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Starts `service` in its own process group on its ports of 127.0.0.1, logging to
/// `log_dir/<name>.log` (truncated).
fn spawn_service(
    service: &ServiceOptions,
    settings: &TestSettings,
    log_dir: &Path,
) -> anyhow::Result<ServiceProcess> {
    let name = service.entry.name;
    ServiceProcess::spawn_at(
        name,
        settings,
        local(service.ports.grpc),
        local(service.ports.metrics),
        &log_dir.join(format!("{name}.log")),
        ProcessGroup::Own,
    )
}

/// `127.0.0.1:port`.
fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Fails if a port of `service` cannot be bound now, naming the flag that moves it.
/// The local token issuer, on a port no service was given: the issuer takes an ephemeral port,
/// which can be one a caller chose for a service (a free port found earlier is not held), so a
/// port that collides is given back and another taken.
async fn start_issuer(services: &[ServiceOptions]) -> anyhow::Result<TestIssuer> {
    let taken: Vec<String> = services
        .iter()
        .flat_map(|service| [service.ports.grpc, service.ports.metrics])
        .map(|port| format!(":{port}/"))
        .collect();
    for _ in 0..20 {
        let issuer = TestIssuer::start()
            .await
            .context("starting the local token issuer")?;
        if !taken
            .iter()
            .any(|port| issuer.jwks_url().contains(port.as_str()))
        {
            return Ok(issuer);
        }
        // Dropping it aborts its server task; let the runtime close the listener.
        drop(issuer);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the local token issuer found no port that no service was given")
}

fn ensure_free(service: &ServiceOptions) -> anyhow::Result<()> {
    let name = service.entry.name;
    for (port, what, flag) in [
        (service.ports.grpc, "gRPC", PORT_FLAG),
        (service.ports.metrics, "metrics", METRICS_PORT_FLAG),
    ] {
        let addr = local(port);
        if let Err(error) = TcpListener::bind(addr) {
            bail!(
                "{name} {what} address {addr} is not free ({error}); is another `make run` \
                 still running? Choose another port with {flag} {name}=PORT."
            );
        }
    }
    Ok(())
}

/// `target/run-logs`: beside the cargo profile directory `ekb-dev` runs from.
fn default_log_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating ekb-dev")?;
    let exe_dir = exe.parent().context("ekb-dev has no directory")?;
    let profile = profile_dir(exe_dir);
    let target = profile.parent().unwrap_or(profile);
    Ok(target.join("run-logs"))
}
