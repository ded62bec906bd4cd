//! The system under test, started the way it is deployed: the broker, one fresh database per
//! service, and every service of the catalog (`ekb_testkit::catalog`) as a separate
//! release-built process, with the Helm chart's performance-relevant settings (JSON logs at
//! `info`, the platform's own outbox and consumer timings) rather than the test suite's
//! shortened ones. Only authentication is off, because a token issuer would be a stand-in
//! outside the system.
//!
//! The load goes to routing, and the registry feeds routing the agreement it routes by; every
//! other service (budget, and whatever the catalog lists next) only runs beside them, idle, so
//! that its memory and its CPU with nothing to do are measured like theirs.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use ekb_platform::{
    config::PlatformConfig,
    service::{config_loader, load_config},
};
use ekb_proto::v1::{self, Flow, expert_registry_service_client::ExpertRegistryServiceClient};
use ekb_routing::Routing;
use ekb_testkit::{
    broker::TestBroker,
    catalog::SERVICES,
    postgres::{TestDatabase, fresh_database},
    services::{ServiceProcess, TestSettings},
};

use crate::{
    h2_connection::{H2Connection, RoutingClient},
    options::Options,
    workload,
};

/// How long a service may take to report SERVING.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long routing may take to see the registered agreement through the broker.
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a service may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pool size of every service but routing (whose pool is `--pool-size`): none of them is loaded.
const SERVICE_POOL_SIZE: u32 = 10;
/// The service the load goes to.
const ROUTING: &str = "routing";
/// The service that feeds routing its agreements.
const REGISTRY: &str = "expert-registry";

/// A catalog service besides routing and the registry, running idle beside them.
pub struct IdleService {
    /// Its process.
    pub process: ServiceProcess,
    /// Its own fresh database.
    pub database: TestDatabase,
}

/// The running system.
pub struct Stack {
    /// The broker (mock process unless `EKB__KAFKA__BROKERS` names a real cluster).
    pub broker: TestBroker,
    /// Routing's database.
    pub routing_db: TestDatabase,
    /// The registry's database.
    pub registry_db: TestDatabase,
    /// The registry process.
    pub registry: ServiceProcess,
    /// The routing process.
    pub routing: ServiceProcess,
    /// Every other catalog service, in catalog order.
    pub others: Vec<IdleService>,
    /// Prefix of this run's topics.
    topic_prefix: String,
    /// The relay's safety-net poll interval every service runs with (the platform default).
    pub outbox_poll_interval_ms: u64,
}

impl Stack {
    /// Starts the broker, creates the databases, and starts every catalog service with logs
    /// under `log_dir`; returns once all of them report SERVING.
    pub async fn start(options: &Options, log_dir: &Path) -> anyhow::Result<Stack> {
        let defaults = platform_defaults()?;
        let broker = TestBroker::start().context("starting the broker")?;
        let topic_prefix = format!("ekbbench{}", uuid::Uuid::new_v4().simple());
        let registry_db = fresh_database("bench_reg").await?;
        let routing_db = fresh_database("bench_rt").await?;
        let registry_settings = deployed_settings(
            TestSettings::new(&registry_db.url, broker.bootstrap_servers(), &topic_prefix),
            SERVICE_POOL_SIZE,
            &defaults,
        );
        let mut routing_settings = deployed_settings(
            TestSettings::new(&routing_db.url, broker.bootstrap_servers(), &topic_prefix),
            options.routing_pool_size(),
            &defaults,
        );
        for (key, value) in &options.routing_settings {
            routing_settings = routing_settings.with(key, value.clone());
        }
        let mut registry = ServiceProcess::spawn(REGISTRY, &registry_settings, log_dir)?;
        let mut routing = ServiceProcess::spawn(ROUTING, &routing_settings, log_dir)?;
        let mut others = Vec::new();
        for entry in SERVICES
            .iter()
            .filter(|entry| ![ROUTING, REGISTRY].contains(&entry.name))
        {
            // `bench_…`, so that a killed run's leftovers are found and dropped by the next.
            let database = fresh_database(&format!("bench_{}", entry.name)).await?;
            let settings = deployed_settings(
                TestSettings::new(&database.url, broker.bootstrap_servers(), &topic_prefix),
                SERVICE_POOL_SIZE,
                &defaults,
            );
            others.push(IdleService {
                process: ServiceProcess::spawn(entry.name, &settings, log_dir)?,
                database,
            });
        }
        for service in [&mut registry, &mut routing]
            .into_iter()
            .chain(others.iter_mut().map(|other| &mut other.process))
        {
            service.wait_until_serving(START_TIMEOUT).await?;
        }
        Ok(Stack {
            broker,
            topic_prefix,
            outbox_poll_interval_ms: u64::try_from(defaults.outbox.poll_interval.as_millis())
                .unwrap_or(u64::MAX),
            routing_db,
            registry_db,
            registry,
            routing,
            others,
        })
    }

    /// Every service process: routing, the registry, then the others in catalog order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceProcess> {
        [&self.routing, &self.registry]
            .into_iter()
            .chain(self.others.iter().map(|other| &other.process))
    }

    /// The names of every service's database.
    pub fn database_names(&self) -> Vec<String> {
        [&self.routing_db, &self.registry_db]
            .into_iter()
            .chain(self.others.iter().map(|other| &other.database))
            .map(|database| database.name.clone())
            .collect()
    }

    /// The topic routing publishes CaseRouted on.
    pub fn routing_topic(&self) -> String {
        ekb_platform::messaging::topic_for(&self.topic_prefix, ROUTING)
    }

    /// A client of routing on its own HTTP/2 connection ([`H2Connection`]).
    pub async fn routing_client(&self) -> anyhow::Result<RoutingClient> {
        H2Connection::routing_client(self.routing.grpc_addr).await
    }

    /// Registers the Innlandet agreement in the registry and waits until routing's read model
    /// has it (the event travels registry outbox → broker → routing's consumer), so that the
    /// load exercises the real pilot path.
    pub async fn register_pilot_agreement(&self) -> anyhow::Result<()> {
        let mut registry = ExpertRegistryServiceClient::connect(self.registry.url())
            .await
            .context("connecting to expert-registry")?;
        registry
            .register_agreement(workload::pilot_agreement())
            .await
            .context("registering the Innlandet agreement")?;
        let mut routing = self.routing_client().await?;
        let probe = workload::case_facts("3403", Some(workload::AGREEMENT_AREAS[0]), "2025-03-01");
        let deadline = tokio::time::Instant::now() + AGREEMENT_TIMEOUT;
        loop {
            let decision = routing
                .evaluate_route(v1::EvaluateRouteRequest {
                    facts: Some(probe.clone()),
                })
                .await
                .context("EvaluateRoute")?
                .into_inner()
                .decision
                .unwrap_or_default();
            if decision.flow() == Flow::Pilot {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "routing did not see the agreement within {AGREEMENT_TIMEOUT:?} (still {:?}); \
                     routing log: {}",
                    decision.reason(),
                    self.routing.log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every service with SIGTERM (routing first, as it consumes the registry's topic;
    /// the registry last) and then the broker. Returns the problems, after trying everything.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let others = self.others.iter_mut().map(|other| &mut other.process);
        for service in std::iter::once(&mut self.routing)
            .chain(others)
            .chain(std::iter::once(&mut self.registry))
        {
            match service.stop(STOP_TIMEOUT).await {
                Ok(status) if status.success() => {}
                Ok(status) => problems.push(format!("{} exited with {status}", service.name)),
                Err(error) => problems.push(format!("{}: {error:#}", service.name)),
            }
        }
        self.broker.kill();
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("stopping the services: {}", problems.join("; "))
        }
    }
}

/// The platform's configuration as a deployed routing gets it when nothing overrides it: the
/// defaults, and whatever `EKB__…` variables this process has (the services inherit them too).
fn platform_defaults() -> anyhow::Result<PlatformConfig> {
    let loader = config_loader::<Routing>().with_override("auth.mode", "disabled");
    Ok(load_config::<Routing>(&loader)
        .context("loading the platform's default configuration")?
        .platform)
}

/// `settings` with what the Helm chart deploys where it matters for speed: pool size, JSON
/// logs with the chart's filter, and the platform's own outbox and consumer timings — the
/// relay woken by NOTIFY with its safety-net poll (`outbox.poll_interval`), the consumer's
/// retries — where the test settings shorten them. The chart sets none of those, so the
/// defaults are what runs in production.
fn deployed_settings(
    settings: TestSettings,
    pool_size: u32,
    defaults: &PlatformConfig,
) -> TestSettings {
    settings
        .with("database.max_connections", pool_size.to_string())
        .with("telemetry.log_format", "json")
        .with("telemetry.log_filter", "info,sqlx=warn")
        .with(
            "outbox.poll_interval",
            format!("{}ms", defaults.outbox.poll_interval.as_millis()),
        )
        .with(
            "consumer.initial_backoff",
            format!("{}ms", defaults.consumer.initial_backoff.as_millis()),
        )
        .with(
            "consumer.max_backoff",
            format!("{}ms", defaults.consumer.max_backoff.as_millis()),
        )
        .with(
            "consumer.max_attempts",
            defaults.consumer.max_attempts.to_string(),
        )
}
