//! The routing binary: everything but the service itself is `ekb_platform::bootstrap`.

use ekb_routing::{RoutingConfig, SERVICE_NAME, config::loader};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ekb_platform::bootstrap::service_main(
        SERVICE_NAME,
        || RoutingConfig::load(&loader()),
        |config| &config.platform,
        ekb_routing::run,
    )
    .await
}
