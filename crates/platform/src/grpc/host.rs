//! Runs one service: the gRPC server (its API, `grpc.health.v1`, reflection) behind the
//! [`GatewayLayer`](super::gateway::GatewayLayer), the metrics endpoint, the service's startup
//! work (database creation and migrations) and its background workers (outbox relay, event
//! consumer), with the health status telling the truth and graceful shutdown (DESIGN.md §5).
//!
//! Health is NOT_SERVING until startup finished and the database and the broker answer; it
//! follows their reachability afterwards; it turns NOT_SERVING when a stop begins.

use std::{future::Future, net::SocketAddr, time::Duration};

use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;

use super::gateway::GatewayLayer;
use crate::{
    auth::{JwtValidator, RpcRoles},
    clock::{SharedClock, SystemClock},
    config::{AuthMode, PlatformConfig},
    db,
    messaging::{self, Db, EventConsumer, EventProducer, Events, Outbox, OutboxRelay},
    shutdown::ShutdownPlan,
    trace_context::set_remote_parent_from_http,
};

const READINESS_INTERVAL: Duration = Duration::from_secs(2);

/// Health service name that reports SERVING while the process runs (liveness probes).
pub const LIVENESS_SERVICE: &str = "liveness";

/// What identifies a service to the host.
#[derive(Debug, Clone)]
pub struct ServiceIdentity {
    /// Short name, e.g. `routing` (logs, metrics, topics).
    pub name: &'static str,
    /// Full gRPC service name, e.g. `ekspertbistand.v1.RoutingService` (health status key).
    pub grpc_name: &'static str,
    /// The roles each RPC accepts.
    pub roles: RpcRoles,
}

/// The two listeners a service serves on; bind them first so tests can use port 0.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// Prometheus metrics.
    pub metrics: TcpListener,
}

impl ServiceIdentity {
    /// The identity of service `name` serving `grpc_name`, whose methods accept `roles`.
    pub fn new(name: &'static str, grpc_name: &'static str, roles: RpcRoles) -> Self {
        ServiceIdentity {
            name,
            grpc_name,
            roles,
        }
    }
}

impl Listeners {
    /// Binds both addresses of the configuration.
    pub async fn bind(config: &PlatformConfig) -> anyhow::Result<Self> {
        Ok(Listeners {
            grpc: TcpListener::bind(config.grpc.addr).await?,
            metrics: TcpListener::bind(config.metrics.addr).await?,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.grpc.local_addr()?)
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.metrics.local_addr()?)
    }
}

/// A background worker: started once startup finished, given the stop token and the grace period.
pub(crate) type Worker =
    Box<dyn FnOnce(CancellationToken, Duration) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

/// `worker` as a [`Worker`].
pub(crate) fn boxed_worker<F, Fut>(worker: F) -> Worker
where
    F: FnOnce(CancellationToken, Duration) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Box::new(move |stop, grace| Box::pin(worker(stop, grace)))
}

/// A service being assembled: its API routes, startup work and workers.
pub struct ServiceHost {
    identity: ServiceIdentity,
    config: PlatformConfig,
    pool: PgPool,
    producer: EventProducer,
    workers: Vec<(&'static str, Worker)>,
    clock: SharedClock,
}

impl ServiceHost {
    /// A host for the service: its lazily connecting pool, its idempotent producer, and the
    /// outbox relay that publishes what its handlers record.
    pub fn new(identity: ServiceIdentity, config: PlatformConfig) -> anyhow::Result<Self> {
        let pool = db::lazy_pool(&config.database)?;
        let producer = messaging::kafka::idempotent_producer(&config.kafka)?;
        let relay = OutboxRelay::new(pool.clone(), producer.clone(), config.outbox.clone());
        let host = ServiceHost {
            identity,
            config,
            pool,
            producer,
            workers: Vec::new(),
            clock: std::sync::Arc::new(SystemClock),
        };
        Ok(host.worker("outbox-relay", move |stop, grace| relay.run(stop, grace)))
    }

    /// The service's database pool.
    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// The outbox the service's units of work publish through.
    pub fn outbox(&self) -> Outbox {
        Outbox::for_service(&self.config.kafka.topic_prefix, self.identity.name)
            .with_clock(self.clock.clone())
    }

    /// The service's database: its pool, its outbox and its clock.
    pub fn db(&self) -> Db {
        Db::new(self.pool(), self.outbox()).with_clock(self.clock.clone())
    }

    /// Reads every "now" of the service from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds the event consumer: one group member for all the topics `events` consumes, applying
    /// each event in a unit of work on this service's database.
    pub fn consume(self, events: Events) -> anyhow::Result<Self> {
        let consumer = EventConsumer::new(
            self.identity.name,
            &self.config.kafka,
            self.pool.clone(),
            self.outbox(),
            events,
            self.config.consumer.clone(),
            self.producer.clone(),
        )?;
        Ok(self.worker("event-consumer", move |stop, _grace| consumer.run(stop)))
    }

    /// Adds a background worker, started once startup (migrations) finished. It must return
    /// soon after its token is cancelled; it gets the grace period for its last work.
    pub fn worker<F, Fut>(mut self, name: &'static str, worker: F) -> Self
    where
        F: FnOnce(CancellationToken, Duration) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.workers.push((name, boxed_worker(worker)));
        self
    }

    /// Adds workers already boxed (a service's own, from its assembly).
    pub(crate) fn with_workers(mut self, workers: Vec<(&'static str, Worker)>) -> Self {
        self.workers.extend(workers);
        self
    }

    /// Serves until `trigger` is cancelled, then stops gracefully. `migrator` holds the
    /// service's own migrations (run together with the platform's).
    pub async fn serve(
        self,
        listeners: Listeners,
        routes: Routes,
        migrator: &'static sqlx::migrate::Migrator,
        trigger: CancellationToken,
    ) -> anyhow::Result<()> {
        let ServiceHost {
            identity,
            config,
            pool,
            producer,
            workers,
            clock: _,
        } = self;
        // The supervisor may also start the stop, when a worker dies unexpectedly.
        let trigger = trigger.child_token();
        let plan = ShutdownPlan::new(
            trigger.clone(),
            config.shutdown.drain,
            config.shutdown.grace,
        );

        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, identity.grpc_name, ServingStatus::NotServing).await;
        // Process-only entry for liveness probes: a dependency outage must make the pod
        // unready, not restart it.
        health
            .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
            .await;
        let (reflection_v1, reflection_v1alpha) = reflection_services(identity.grpc_name)?;

        let validator = match config.auth.mode {
            AuthMode::Jwt => Some(JwtValidator::new(&config.auth)?),
            AuthMode::Disabled => {
                tracing::warn!(
                    "authentication is DISABLED by configuration (auth.mode=disabled); local use only"
                );
                None
            }
        };
        let gateway = GatewayLayer::new(identity.name, identity.roles.clone(), validator);

        crate::metrics::recorder()?;
        let metrics_task =
            tokio::spawn(crate::metrics::serve(listeners.metrics, plan.stop.clone()));

        let readiness = tokio::spawn(readiness_loop(
            identity.clone(),
            config.clone(),
            pool.clone(),
            producer,
            migrator,
            health.clone(),
            workers,
            plan.clone(),
            trigger,
        ));

        let service_name = identity.name;
        let server = tonic::transport::Server::builder()
            .timeout(config.grpc.request_timeout)
            .trace_fn(move |request| server_span(service_name, request))
            .layer(gateway)
            .add_routes(routes)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let incoming = TcpListenerStream::new(listeners.grpc);
        let stop = plan.stop.clone();
        tracing::info!(service = service_name, "gRPC server started");
        let mut serving =
            tokio::spawn(server.serve_with_incoming_shutdown(incoming, stop.cancelled_owned()));
        tokio::select! {
            finished = &mut serving => finished??,
            () = plan.stop.cancelled() => {
                // Graceful shutdown waits for clients to close their connections after GOAWAY;
                // a client that never does must not keep the pod alive past its grace period.
                match tokio::time::timeout(plan.grace, &mut serving).await {
                    Ok(finished) => finished??,
                    Err(_) => {
                        serving.abort();
                        tracing::warn!("connections still open after the grace period; closed them");
                    }
                }
            }
        }
        tracing::info!(
            service = service_name,
            "gRPC server stopped accepting; in-flight calls done"
        );

        let outcome =
            match tokio::time::timeout(plan.grace + Duration::from_secs(1), readiness).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(error)) => Err(anyhow::anyhow!("the worker supervisor panicked: {error}")),
                Err(_) => {
                    tracing::warn!("workers did not stop within the grace period");
                    Ok(())
                }
            };
        metrics_task.abort();
        pool.close().await;
        tracing::info!(service = service_name, "stopped");
        // A failed worker makes the process exit non-zero, so the orchestrator restarts it.
        outcome
    }
}

/// The server span of one call, as OpenTelemetry's RPC conventions name it: `<package.Service>/
/// <Method>`, kind SERVER, with `rpc.system`, `rpc.service`, `rpc.method`, and
/// `rpc.grpc.status_code` (recorded by the gateway when the call ends). A child of the caller's
/// trace when the request carries one.
fn server_span<B>(service: &'static str, request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path().trim_start_matches('/');
    let (rpc_service, rpc_method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %rpc_service,
        rpc.method = %rpc_method,
        rpc.grpc.status_code = tracing::field::Empty,
        service,
    );
    set_remote_parent_from_http(&span, request.headers());
    span
}

/// Reflection in both protocol versions (grpcio's client, older grpcurl and several GUI clients
/// speak only v1alpha), advertising only what this server serves: its own service, health and
/// reflection — not the other services of the shared contract.
fn reflection_services(
    grpc_name: &str,
) -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    // Each builder registers its own protocol's descriptors; the other one's is added here so
    // that both advertise (and can describe) both reflection services.
    let builder = |other_reflection: &'static [u8]| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ekb_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(other_reflection)
            .with_service_name(grpc_name)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    Ok((
        builder(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET).build_v1()?,
        builder(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET).build_v1alpha()?,
    ))
}

async fn set_health(
    health: &tonic_health::server::HealthReporter,
    grpc_name: &str,
    status: ServingStatus,
) {
    health.set_service_status("", status).await;
    health.set_service_status(grpc_name, status).await;
}

/// Startup (create database, migrate) with retries, then workers, then reachability checks
/// that drive the health status; on stop, NOT_SERVING and wait for the workers.
#[allow(clippy::too_many_arguments)]
async fn readiness_loop(
    identity: ServiceIdentity,
    config: PlatformConfig,
    pool: PgPool,
    producer: EventProducer,
    migrator: &'static sqlx::migrate::Migrator,
    health: tonic_health::server::HealthReporter,
    workers: Vec<(&'static str, Worker)>,
    plan: ShutdownPlan,
    trigger: CancellationToken,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(250);
    loop {
        let attempt = async {
            if config.database.create_if_missing {
                db::create_database_if_missing(&config.database).await?;
            }
            db::migrate(&pool, migrator).await
        };
        let outcome = tokio::select! {
            () = plan.begin.cancelled() => return Ok(()),
            outcome = attempt => outcome,
        };
        match outcome {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "startup not done yet (database); retrying");
                tokio::select! {
                    () = plan.begin.cancelled() => return Ok(()),
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::info!(service = identity.name, "migrations applied");

    let mut running = Vec::new();
    for (name, worker) in workers {
        let task = tokio::spawn(worker(plan.stop.clone(), plan.grace));
        running.push((name, task));
    }

    let mut current = ServingStatus::NotServing;
    let mut worker_died: Option<&'static str> = None;
    let mut ticker = tokio::time::interval(READINESS_INTERVAL);
    loop {
        tokio::select! {
            () = plan.begin.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if let Some((name, _)) = running.iter().find(|(_, task)| task.is_finished()) {
            // Serving without its relay or consumer would accept changes whose events never
            // leave, or ignore the events it depends on: stop and let the orchestrator restart.
            tracing::error!(
                worker = name,
                "worker stopped unexpectedly; stopping the service"
            );
            worker_died.get_or_insert(*name);
            trigger.cancel();
            break;
        }
        let database = db::is_reachable(&pool).await;
        let broker = messaging::kafka::is_reachable(&producer, Duration::from_secs(2)).await;
        let status = if database && broker {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if status != current {
            tracing::info!(database, broker, ?status, "health status changed");
            set_health(&health, identity.grpc_name, status).await;
            current = status;
        }
        if status == ServingStatus::NotServing {
            ticker.reset_after(Duration::from_millis(250));
        }
    }
    set_health(&health, identity.grpc_name, ServingStatus::NotServing).await;
    tracing::info!("health set to NOT_SERVING; draining");

    let mut first_error = None;
    for (name, task) in running {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(worker = name, error = %format!("{error:#}"), "worker failed");
                first_error.get_or_insert(error);
            }
            Err(error) => {
                tracing::error!(worker = name, %error, "worker panicked");
                first_error.get_or_insert(anyhow::anyhow!("worker {name} panicked"));
            }
        }
    }
    if let Some(name) = worker_died {
        first_error.get_or_insert(anyhow::anyhow!(
            "worker {name} stopped while the service was running"
        ));
    }
    first_error.map_or(Ok(()), Err)
}
