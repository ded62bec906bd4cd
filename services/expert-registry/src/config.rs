//! The registry's configuration: the platform sections with its own database default.

use ekb_platform::config::{ConfigError, ConfigLoader, PlatformConfig};

const REGISTRY_DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_expert_registry"
"#;

/// The loader with the registry's defaults; add overrides before loading.
pub fn loader() -> ConfigLoader {
    ConfigLoader::new().with_defaults(REGISTRY_DEFAULTS)
}

/// Everything the registry is configured with, validated.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Shared sections.
    pub platform: PlatformConfig,
}

impl RegistryConfig {
    /// Loads and validates from `loader`'s sources.
    pub fn load(loader: &ConfigLoader) -> Result<Self, ConfigError> {
        let platform: PlatformConfig = loader.load()?;
        platform.validate()?;
        Ok(RegistryConfig { platform })
    }
}
