//! The launcher's sequence: broker → databases → services → fixture → sample cases → serve
//! until a signal → stop everything in order.
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
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use ekb_expert_registry::SERVICE_NAME as REGISTRY;
use ekb_platform::messaging::topic_for;
use ekb_proto::v1::{
    expert_registry_service_client::ExpertRegistryServiceClient,
    routing_service_client::RoutingServiceClient,
};
use ekb_routing::SERVICE_NAME as ROUTING;
use ekb_testkit::{
    binaries::profile_dir,
    broker::{BROKERS_ENV, BrokerOptions, MOCK_BROKER_BIN_NAME, TestBroker, create_topic},
    postgres::{TestDatabase, admin_url, drop_database, server_address},
    process::ProcessGroup,
    services::{ServiceProcess, TestSettings},
};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    databases, fixture, instructions,
    options::{Options, ServicePorts},
    sample_cases,
};

/// How long a service may take from spawn to SERVING (the first start runs migrations).
const SERVING_TIMEOUT: Duration = Duration::from_secs(60);
/// How long routing may take to see the fixture's agreements.
const READ_MODEL_TIMEOUT: Duration = Duration::from_secs(30);
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
/// exactly that gets stopped.
#[derive(Default)]
struct Stack {
    broker: Option<TestBroker>,
    registry: Option<ServiceProcess>,
    routing: Option<ServiceProcess>,
    /// Set once the demo table has been printed.
    up: bool,
}

impl Stack {
    /// SIGTERM to the services, waits for both, then stops the broker. Fails if a service
    /// that had reached SERVING did not exit cleanly.
    async fn stop(&mut self) -> anyhow::Result<()> {
        let mut stopped: Vec<String> = [&self.routing, &self.registry]
            .into_iter()
            .flatten()
            .map(|service| service.name.clone())
            .collect();
        let (routing, registry) = tokio::join!(
            stop_service(self.routing.as_mut()),
            stop_service(self.registry.as_mut())
        );
        let mut problems: Vec<String> = [routing, registry]
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

/// Stops one service, if it was started.
async fn stop_service(service: Option<&mut ServiceProcess>) -> anyhow::Result<()> {
    let Some(service) = service else {
        return Ok(());
    };
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

/// Starts everything into `stack`, loads the fixture, routes the samples, then (unless
/// `--exit-after-demo`) serves until the processes die — in practice until the caller's race
/// with a signal ends it.
async fn bring_up_and_serve(stack: &mut Stack, options: &Options) -> anyhow::Result<()> {
    // If a signal ends this while the broker is starting, the blocking task still finishes and
    // drops the broker it made, which stops it.
    let log_dir = match &options.log_dir {
        Some(dir) => dir.clone(),
        None => default_log_dir()?,
    };
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

    // Created up front so routing's consumer does not subscribe to a topic that does not exist
    // yet (harmless, but it logs an error until the registry's first event creates it).
    for service in [REGISTRY, ROUTING] {
        let topic = topic_for(&options.topic_prefix, service);
        create_topic(&brokers, &topic, TOPIC_PARTITIONS)
            .await
            .with_context(|| format!("creating topic {topic} on {brokers}"))?;
    }

    let registry_db = databases::for_service(&options.db_prefix, REGISTRY);
    let routing_db = databases::for_service(&options.db_prefix, ROUTING);
    if options.fresh {
        for database in [&registry_db, &routing_db] {
            drop_database(&database.name).await?;
        }
    }
    println!(
        "PostgreSQL  {}: databases {} and {} ({})",
        server_address(&admin_url()),
        routing_db.name,
        registry_db.name,
        if options.fresh {
            "dropped, created empty by the services"
        } else {
            "data kept from earlier runs; --fresh starts empty"
        }
    );
    println!(
        "Auth        OFF (auth.mode=disabled): no bearer token needed, no role checks. Local runs only."
    );

    let settings = |database: &TestDatabase| {
        TestSettings::new(&database.url, &brokers, &options.topic_prefix)
            .with("auth.mode", "disabled")
            .with("kafka.topic_prefix", options.topic_prefix.clone())
            .with("kafka.auto_create_topics", "true")
            .with("database.create_if_missing", "true")
    };
    let registry = stack.registry.insert(spawn_service(
        REGISTRY,
        &settings(&registry_db),
        options.registry,
        ("--registry-port", "--registry-metrics-port"),
        &log_dir,
    )?);
    let routing = stack.routing.insert(spawn_service(
        ROUTING,
        &settings(&routing_db),
        options.routing,
        ("--routing-port", "--routing-metrics-port"),
        &log_dir,
    )?);
    let broker_log = if stack.broker.as_ref().is_some_and(TestBroker::is_external) {
        String::new()
    } else {
        format!(",{MOCK_BROKER_BIN_NAME}")
    };
    println!(
        "Logs        {}/{{{ROUTING},{REGISTRY}{broker_log}}}.log",
        log_dir.display()
    );

    demo(routing, registry).await?;
    stack.up = true;
    let (Some(routing), Some(registry)) = (stack.routing.as_mut(), stack.registry.as_mut()) else {
        bail!("the services vanished from the stack");
    };
    if options.exit_after_demo {
        println!("\n--exit-after-demo: stopping…");
        return Ok(());
    }
    println!(
        "\n{}",
        instructions::how_to_call(routing, registry, &brokers, &options.topic_prefix)
    );
    println!("Press Ctrl-C to stop.");
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        routing.ensure_running()?;
        registry.ensure_running()?;
    }
}

/// Waits for SERVING, loads the fixture, waits for routing's read model and routes the
/// sample cases, printing as it goes.
async fn demo(
    routing_service: &mut ServiceProcess,
    registry_service: &mut ServiceProcess,
) -> anyhow::Result<()> {
    println!("\nStarting {ROUTING} and {REGISTRY}…");
    let started = Instant::now();
    let (routing_ready, registry_ready) = tokio::join!(
        routing_service.wait_until_serving(SERVING_TIMEOUT),
        registry_service.wait_until_serving(SERVING_TIMEOUT)
    );
    routing_ready?;
    registry_ready?;
    for service in [&*routing_service, &*registry_service] {
        println!(
            "  {:<16} SERVING  gRPC {}  metrics http://{}/metrics",
            service.name, service.grpc_addr, service.metrics_addr
        );
    }
    println!("  (both up in {:.1} s)", started.elapsed().as_secs_f64());

    let mut registry = ExpertRegistryServiceClient::connect(registry_service.url())
        .await
        .context("connecting to the expert registry")?;
    let mut routing = RoutingServiceClient::connect(routing_service.url())
        .await
        .context("connecting to routing")?;
    let loaded = fixture::load(&mut registry).await?;
    println!(
        "\nFixture (RegisterAgreement/RegisterExpert): framework agreements in county {} \
         Innlandet, valid {}..{}",
        fixture::COUNTY,
        fixture::VALID_FROM,
        fixture::VALID_TO
    );
    for line in fixture::describe_agreements() {
        println!("  {line}");
    }
    println!(
        "  No agreement covers {}.",
        fixture::area_name(fixture::UNCOVERED_AREA)
    );
    println!(
        "  Agreements: {} new, {} already registered. Experts: {} new, {} already registered.",
        loaded.agreements_new, loaded.agreements_kept, loaded.experts_new, loaded.experts_kept
    );
    fixture::wait_for_routing_read_model(&mut routing, READ_MODEL_TIMEOUT).await?;
    println!(
        "  Routing's read model has them (EvaluateRoute answers PILOT for every covered area)."
    );

    let (rows, surprises) = sample_cases::route_all(&mut routing).await?;
    println!("\nSample cases (OpenCase):");
    println!("{}", sample_cases::table(&rows));
    if !surprises.is_empty() {
        bail!(
            "sample cases routed unexpectedly:\n  {}",
            surprises.join("\n  ")
        );
    }
    Ok(())
}

/// Starts service `name` in its own process group on `ports` of 127.0.0.1, logging to
/// `log_dir/<name>.log` (truncated). Fails at once if a port is taken, naming the flag
/// (of `port_flags`: gRPC, metrics) that moves it.
fn spawn_service(
    name: &str,
    settings: &TestSettings,
    ports: ServicePorts,
    port_flags: (&str, &str),
    log_dir: &Path,
) -> anyhow::Result<ServiceProcess> {
    let grpc_addr = SocketAddr::from(([127, 0, 0, 1], ports.grpc));
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], ports.metrics));
    ensure_free(grpc_addr, name, "gRPC", port_flags.0)?;
    ensure_free(metrics_addr, name, "metrics", port_flags.1)?;
    ServiceProcess::spawn_at(
        name,
        settings,
        grpc_addr,
        metrics_addr,
        &log_dir.join(format!("{name}.log")),
        ProcessGroup::Own,
    )
}

/// Fails if `addr` cannot be bound now, naming the flag that moves the service elsewhere.
fn ensure_free(addr: SocketAddr, service: &str, what: &str, flag: &str) -> anyhow::Result<()> {
    match TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            Ok(())
        }
        Err(error) => bail!(
            "{service} {what} address {addr} is not free ({error}); is another `make run` \
             still running? Choose another port with {flag}."
        ),
    }
}

/// `target/run-logs`: beside the cargo profile directory `ekb-dev` runs from.
fn default_log_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating ekb-dev")?;
    let exe_dir = exe.parent().context("ekb-dev has no directory")?;
    let profile = profile_dir(exe_dir);
    let target = profile.parent().unwrap_or(profile);
    Ok(target.join("run-logs"))
}
