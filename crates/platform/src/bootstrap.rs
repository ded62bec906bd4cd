//! What every service binary's `main` does, written once: `--version`, load and validate the
//! configuration (printing the bad key and exiting non-zero), run an operator command if one is
//! asked for ([`crate::operator`]), else start telemetry, bind the listeners, and serve until
//! SIGTERM/SIGINT. A service's `main.rs` is one line:
//! `ekb_platform::service_main!(ekb_routing::Routing);`.

use crate::{
    grpc::Listeners,
    service::{self, ServiceDescription},
    shutdown, telemetry,
};

/// Runs service `S` as a binary.
pub async fn service_main<S: ServiceDescription>() -> anyhow::Result<()> {
    if std::env::args().any(|arg| arg == "--version") {
        println!("{} {}", S::NAME, env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let config = service::load_config::<S>(&service::config_loader::<S>())
        .inspect_err(|error| eprintln!("{}: {error}", S::NAME))?;
    if crate::operator::is_operator_command() {
        return crate::operator::run(S::NAME, &config.platform).await;
    }
    let _telemetry = telemetry::init(S::NAME, &config.platform.telemetry)?;
    let listeners = Listeners::bind(&config.platform).await?;
    tracing::info!(
        service = S::NAME,
        grpc = %listeners.grpc_addr()?,
        metrics = %listeners.metrics_addr()?,
        "listening"
    );
    service::run::<S>(config, listeners, shutdown::on_signal()).await
}

/// The whole `main` of a service binary: `ekb_platform::service_main!(ekb_routing::Routing);`.
#[macro_export]
macro_rules! service_main {
    ($description:ty) => {
        fn main() -> ::anyhow::Result<()> {
            $crate::reexports::tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on($crate::bootstrap::service_main::<$description>())
        }
    };
}
