//! A service is data: everything the platform needs to run one is described once, in the
//! service's own crate, by implementing [`ServiceDescription`]: its name, its gRPC server (whose
//! `NamedService::NAME` names it in health, reflection and the contract, where each RPC's
//! `roles` option says who may call it), the unique constraints its callers may hit, its
//! migrations, its configuration (defaults plus typed settings, loaded with the platform's in
//! one pass), and a build step that returns its routes, the events it consumes and any workers
//! of its own.
//!
//! Everything else is written once, here: [`load_config`] and [`run`] (used by `main`, the
//! tests and the dev launcher alike), so every service starts, validates, serves, consumes and
//! stops the same way.

use std::{future::Future, sync::Arc, time::Duration};

use serde::de::DeserializeOwned;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::Routes};

use crate::{
    auth::RpcRoles,
    clock::{Clock, FileClock, OffsetClock, SharedClock, SystemClock},
    config::{ConfigError, ConfigLoader, ServiceConfig},
    error::ConstraintMessages,
    grpc::{
        Listeners, ServiceHost, ServiceIdentity,
        host::{Worker, boxed_worker},
    },
    messaging::{Db, EventRouter, Events},
};

/// Everything that makes one service, in one place.
pub trait ServiceDescription: Sized + Send + Sync + 'static {
    /// Short name: topics (`<prefix>.<name>.v1`), consumer group, metrics, logs, database.
    const NAME: &'static str;
    /// The service's configuration defaults (TOML) on top of the platform's.
    const DEFAULTS: &'static str = "";
    /// Keys of its own whose environment value is a comma-separated list.
    const LIST_KEYS: &'static [&'static str] = &[];
    /// Keys of its own that were replaced, and what to write instead (refused at start).
    const REPLACED_KEYS: &'static [crate::config::ReplacedKey] = &[];
    /// Unique constraints a valid request may violate, with what the caller is told
    /// (ALREADY_EXISTS); any other violation is INTERNAL.
    const CONSTRAINTS: ConstraintMessages = &[];

    /// The tonic server of its gRPC service (its name keys health, reflection and the roles its
    /// contract gives each RPC).
    type Server: NamedService;
    /// Its own configuration sections, typed (`crate::config::NoSettings` for none).
    type Settings: DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static;

    /// Its migrations (numbered from 100; the platform's come first).
    fn migrator() -> &'static Migrator;

    /// Checks the rules of its settings that types cannot express.
    fn validate(_config: &ServiceConfig<Self::Settings>) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Assembles the service over its database: its routes, events and workers.
    fn build(db: Db, settings: Self::Settings) -> anyhow::Result<Assembly>;
}

/// What a service's build step returns: its gRPC routes, the events it consumes, its workers.
pub struct Assembly {
    routes: Routes,
    events: Option<Events>,
    workers: Vec<(&'static str, Worker)>,
}

impl Assembly {
    /// A service serving `server` (e.g. `RoutingServiceServer::new(api)`).
    pub fn serving<S>(server: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Assembly {
            routes: Routes::new(server),
            events: None,
            workers: Vec::new(),
        }
    }

    /// Consumes the events `router` handles (one consumer for all its topics).
    pub fn consuming<S: Send + Sync + 'static>(mut self, router: EventRouter<S>) -> Self {
        self.events = Some(router.build());
        self
    }

    /// Runs a background worker of the service's own once startup finished. It must return soon
    /// after its token is cancelled; it gets the grace period for its last work.
    pub fn worker<F, Fut>(mut self, name: &'static str, worker: F) -> Self
    where
        F: FnOnce(CancellationToken, Duration) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.workers.push((name, boxed_worker(worker)));
        self
    }
}

/// The loader of service `S`: platform defaults, `S`'s defaults, the optional file, `EKB__…`
/// variables. Add overrides (tests, the dev launcher) before [`load_config`].
pub fn config_loader<S: ServiceDescription>() -> ConfigLoader {
    S::LIST_KEYS.iter().fold(
        ConfigLoader::new()
            .with_defaults(S::DEFAULTS)
            .with_replaced_keys(S::REPLACED_KEYS),
        |loader, key| loader.with_list_key(key),
    )
}

/// Loads and validates `S`'s whole configuration in one pass.
pub fn load_config<S: ServiceDescription>(
    loader: &ConfigLoader,
) -> Result<ServiceConfig<S::Settings>, ConfigError> {
    let config = loader.load::<S::Settings>()?;
    S::validate(&config)?;
    Ok(config)
}

/// Runs service `S` on `listeners` until `shutdown` is cancelled, on the system clock, or on
/// simulated time from `clock.start` if that is configured (and said at start).
pub async fn run<S: ServiceDescription>(
    config: ServiceConfig<S::Settings>,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let clock: SharedClock = match (&config.platform.clock.start, &config.platform.clock.file) {
        (None, None) => Arc::new(SystemClock),
        (Some(start), _) => {
            tracing::warn!(
                service = S::NAME,
                %start,
                "this service runs on SIMULATED TIME (clock.start): its now started at {start}"
            );
            Arc::new(OffsetClock::starting_at(*start))
        }
        (None, Some(file)) => {
            let clock = FileClock::open(file)?;
            tracing::warn!(
                service = S::NAME,
                file = %file.display(),
                now = %clock.now(),
                "this service runs on SIMULATED TIME (clock.file): its now is what the \
                 simulator writes to {}",
                file.display()
            );
            Arc::new(clock)
        }
    };
    run_with_clock::<S>(config, listeners, shutdown, clock).await
}

/// As [`run`], with every "now" of the service read from `clock` ([`Db::clock`]): a test's
/// `ManualClock`, or a simulation's shared time.
pub async fn run_with_clock<S: ServiceDescription>(
    config: ServiceConfig<S::Settings>,
    listeners: Listeners,
    shutdown: CancellationToken,
    clock: SharedClock,
) -> anyhow::Result<()> {
    let grpc_name = <S::Server as NamedService>::NAME;
    let roles = RpcRoles::from_contract(grpc_name, ekb_proto::FILE_DESCRIPTOR_SET)?;
    let ServiceConfig { platform, settings } = config;
    let mut host = ServiceHost::new(ServiceIdentity::new(S::NAME, grpc_name, roles), platform)?
        .with_clock(clock);
    let assembly = S::build(host.db(), settings)?;
    if let Some(events) = assembly.events {
        host = host.consume(events)?;
    }
    host = host.with_workers(assembly.workers);
    host.serve(listeners, assembly.routes, S::migrator(), shutdown)
        .await
}
