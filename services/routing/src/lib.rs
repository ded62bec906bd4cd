//! The routing service: decides for each new case whether it follows the regular grant flow or
//! the § 9a pilot flow (the rule lives in `ekb_domain::decide_route`), stores the case and
//! publishes CaseRouted through the outbox. Agreement coverage comes from a local read model fed
//! by expert-registry events.
//!
//! `run` is the whole service; `main.rs` only loads configuration and calls it, so tests and the
//! dev launcher can start the real thing in-process.

pub mod agreement_coverage;
pub mod api;
pub mod case_store;
pub mod case_writer;
pub mod config;
pub mod coverage_snapshot;
pub mod facts;

use ekb_platform::grpc::{Listeners, ServiceHost, ServiceIdentity};
use ekb_proto::v1::routing_service_server::RoutingServiceServer;
use tokio_util::sync::CancellationToken;

pub use config::RoutingConfig;

/// The service's short name (topics, metrics, logs).
pub const SERVICE_NAME: &str = "routing";

/// Routing's own migrations (numbered from 100).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Runs routing on `listeners` until `shutdown` is cancelled.
pub async fn run(
    config: RoutingConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let identity = ServiceIdentity::new(SERVICE_NAME, api::GRPC_NAME, api::RPC_ROLES);
    let host = ServiceHost::new(identity, config.platform)?.consume(
        &["expert-registry"],
        agreement_coverage::AgreementEventsHandler,
    )?;
    let coverage = coverage_snapshot::CoverageSnapshot::new(host.pool(), config.coverage_max_age);
    let writer = case_writer::CaseWriter::start(host.pool(), config.case_writer);
    let api = api::RoutingApi::new(host.pool(), config.pilot, coverage, writer, host.outbox());
    let routes = tonic::service::Routes::new(RoutingServiceServer::new(api));
    host.serve(listeners, routes, &MIGRATOR, shutdown).await
}
