//! The expert-registry binary: load configuration (fail fast with the bad key named), start
//! telemetry, bind, serve until SIGTERM.

use ekb_expert_registry::{RegistryConfig, SERVICE_NAME, config::loader};
use ekb_platform::{grpc::Listeners, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|arg| arg == "--version") {
        println!("{SERVICE_NAME} {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let config = RegistryConfig::load(&loader()).map_err(|error| {
        eprintln!("{SERVICE_NAME}: {error}");
        error
    })?;
    let _telemetry = telemetry::init(SERVICE_NAME, &config.platform.telemetry)?;
    let listeners = Listeners::bind(&config.platform).await?;
    tracing::info!(
        grpc = %listeners.grpc_addr()?,
        metrics = %listeners.metrics_addr()?,
        "expert-registry listening"
    );
    ekb_expert_registry::run(config, listeners, shutdown::on_signal()).await
}
