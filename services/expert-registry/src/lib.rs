//! The expert registry: experts, suppliers, competence areas and NAV's framework agreements for
//! the § 9a pilot. Every change is published on `ekspertbistand.expert-registry.v1` with the
//! full state, which routing (agreement coverage) and pilot-ordering keep local read models of.

pub mod agreement_store;
pub mod api;
pub mod config;
pub mod expert_store;
pub mod validation;

use ekb_platform::grpc::{Listeners, ServiceHost, ServiceIdentity};
use ekb_proto::v1::expert_registry_service_server::ExpertRegistryServiceServer;
use tokio_util::sync::CancellationToken;

pub use config::RegistryConfig;

/// The service's short name (topics, metrics, logs).
pub const SERVICE_NAME: &str = "expert-registry";

/// The registry's own migrations (numbered from 100).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Runs the registry on `listeners` until `shutdown` is cancelled.
pub async fn run(
    config: RegistryConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let identity = ServiceIdentity::new(SERVICE_NAME, api::GRPC_NAME, api::RPC_ROLES);
    let host = ServiceHost::new(identity, config.platform)?;
    let api = api::RegistryApi::new(host.pool(), host.outbox());
    let routes = tonic::service::Routes::new(ExpertRegistryServiceServer::new(api));
    host.serve(listeners, routes, &MIGRATOR, shutdown).await
}
