//! The expert-registry binary: everything but the service itself is `ekb_platform::bootstrap`.

use ekb_expert_registry::{RegistryConfig, SERVICE_NAME, config::loader};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ekb_platform::bootstrap::service_main(
        SERVICE_NAME,
        || RegistryConfig::load(&loader()),
        |config| &config.platform,
        ekb_expert_registry::run,
    )
    .await
}
