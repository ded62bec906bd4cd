//! What every service binary's `main` does, written once: `--version`, load and validate the
//! configuration (printing the bad key and exiting non-zero), start telemetry, bind the
//! listeners, and serve until SIGTERM/SIGINT.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::{
    config::{ConfigError, PlatformConfig},
    grpc::Listeners,
    shutdown, telemetry,
};

/// Runs a service binary. `load` reads its configuration, `platform` picks the shared sections
/// out of it, and `run` is the service's own `run`.
pub async fn service_main<C, Fut>(
    service: &'static str,
    load: impl FnOnce() -> Result<C, ConfigError>,
    platform: impl Fn(&C) -> &PlatformConfig,
    run: impl FnOnce(C, Listeners, CancellationToken) -> Fut,
) -> anyhow::Result<()>
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    if std::env::args().any(|arg| arg == "--version") {
        println!("{service} {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let config = load().inspect_err(|error| eprintln!("{service}: {error}"))?;
    let _telemetry = telemetry::init(service, &platform(&config).telemetry)?;
    let listeners = Listeners::bind(platform(&config)).await?;
    tracing::info!(
        service,
        grpc = %listeners.grpc_addr()?,
        metrics = %listeners.metrics_addr()?,
        "listening"
    );
    run(config, listeners, shutdown::on_signal()).await
}
