//! Routing's configuration: the platform sections plus the pilot policy. Pilot counties and
//! periods are configuration so that extending the pilot is a values change, not a release
//! (`EKB__PILOT__COUNTIES=34,03`, `EKB__PILOT__PERIODS=2022-01-01/2026-12-31`).

use ekb_domain::PilotPolicy;
use ekb_platform::config::{ConfigError, ConfigLoader, PlatformConfig};
use serde::Deserialize;

use crate::case_writer::CaseWriterSettings;

/// Routing's defaults on top of the platform's.
const ROUTING_DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_routing"

[coverage]
max_age_ms = 1000

[case_writer]
concurrent_batches = 2
max_batch_size = 64

[pilot]
counties = ["34"]
periods = ["2022-01-01/2026-12-31"]
"#;

#[derive(Debug, Clone, Deserialize)]
struct RoutingSections {
    pilot: PilotSettings,
    coverage: CoverageSettings,
    case_writer: CaseWriterSettings,
}

/// How the agreement-coverage snapshot is kept.
#[derive(Debug, Clone, Deserialize)]
struct CoverageSettings {
    /// Reload the snapshot when it is older than this.
    max_age_ms: u64,
}

/// The pilot policy as configured (raw strings; parsed into [`PilotPolicy`]).
#[derive(Debug, Clone, Deserialize)]
pub struct PilotSettings {
    /// County codes in the pilot.
    pub counties: Vec<String>,
    /// Inclusive periods `FROM/TO`.
    pub periods: Vec<String>,
}

/// Everything routing is configured with, validated.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Shared sections.
    pub platform: PlatformConfig,
    /// The pilot policy.
    pub pilot: PilotPolicy,
    /// Longest time a coverage snapshot is used before it is reloaded (`coverage.max_age_ms`).
    pub coverage_max_age: std::time::Duration,
    /// How OpenCase batches its writes (`case_writer.*`).
    pub case_writer: CaseWriterSettings,
}

/// The loader with routing's defaults and list keys; add overrides before loading.
pub fn loader() -> ConfigLoader {
    ConfigLoader::new()
        .with_defaults(ROUTING_DEFAULTS)
        .with_list_key("pilot.counties")
        .with_list_key("pilot.periods")
}

impl RoutingConfig {
    /// Loads and validates from `loader`'s sources.
    pub fn load(loader: &ConfigLoader) -> Result<Self, ConfigError> {
        let platform: PlatformConfig = loader.load()?;
        platform.validate()?;
        let section: RoutingSections = loader.load()?;
        let pilot = PilotPolicy::from_config(&section.pilot.counties, &section.pilot.periods)
            .map_err(|error| ConfigError::invalid(&error.key, error.to_string()))?;
        let writer = section.case_writer;
        if writer.concurrent_batches == 0 {
            return Err(ConfigError::invalid(
                "case_writer.concurrent_batches",
                "must be at least 1",
            ));
        }
        // Each writer keeps a connection of its own; at least one must stay for everything else
        // (GetCase, retried OpenCase, the outbox relay, the consumer, health checks).
        if writer.concurrent_batches >= platform.database.max_connections as usize {
            return Err(ConfigError::invalid(
                "case_writer.concurrent_batches",
                "must be less than database.max_connections (each writer keeps a connection)",
            ));
        }
        if !(1..=1000).contains(&writer.max_batch_size) {
            return Err(ConfigError::invalid(
                "case_writer.max_batch_size",
                "must be between 1 and 1000",
            ));
        }
        Ok(RoutingConfig {
            platform,
            pilot,
            coverage_max_age: std::time::Duration::from_millis(section.coverage.max_age_ms),
            case_writer: writer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routing's configuration with authentication off and `overrides` on top of the defaults.
    fn load_with(overrides: &[(&str, &str)]) -> Result<RoutingConfig, ConfigError> {
        let loader = overrides.iter().fold(
            loader().with_override("auth.mode", "disabled"),
            |loader, (key, value)| loader.with_override(key, *value),
        );
        RoutingConfig::load(&loader)
    }

    /// The error text of a configuration that must be rejected.
    fn rejection(overrides: &[(&str, &str)], why: &str) -> String {
        load_with(overrides).expect_err(why).to_string()
    }

    #[test]
    fn pilot_policy_comes_from_configuration() {
        let config = load_with(&[
            ("pilot.counties", "34,03"),
            (
                "pilot.periods",
                "2022-01-01/2022-12-31,2024-01-01/2027-12-31",
            ),
        ])
        .expect("valid configuration");
        assert_eq!(config.pilot.counties().len(), 2);
        assert_eq!(config.pilot.periods().len(), 2);
    }

    #[test]
    fn a_bad_period_names_the_key() {
        let text = rejection(
            &[("pilot.periods", "2022-12-31/2022-01-01")],
            "reversed period must fail",
        );
        assert!(text.contains("pilot.periods"), "{text}");
    }

    #[test]
    fn case_writer_settings_are_checked_against_the_pool() {
        let config = load_with(&[]).expect("defaults are valid");
        assert_eq!(config.case_writer.concurrent_batches, 2);
        assert_eq!(config.case_writer.max_batch_size, 64);

        let text = rejection(
            &[
                ("database.max_connections", "4"),
                ("case_writer.concurrent_batches", "5"),
            ],
            "more batches than connections must fail",
        );
        assert!(text.contains("case_writer.concurrent_batches"), "{text}");

        let text = rejection(
            &[
                ("database.max_connections", "4"),
                ("case_writer.concurrent_batches", "4"),
            ],
            "writers holding every connection must fail",
        );
        assert!(
            text.contains("must be less than database.max_connections"),
            "{text}"
        );
        let config = load_with(&[
            ("database.max_connections", "4"),
            ("case_writer.concurrent_batches", "3"),
        ])
        .expect("one connection left over is enough");
        assert_eq!(config.case_writer.concurrent_batches, 3);

        let text = rejection(
            &[("case_writer.max_batch_size", "0")],
            "an empty batch must fail",
        );
        assert!(text.contains("case_writer.max_batch_size"), "{text}");
    }
}
