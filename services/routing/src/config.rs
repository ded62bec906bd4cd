//! Routing's configuration: the platform sections plus the pilot policy. Pilot counties and
//! periods are configuration so that extending the pilot is a values change, not a release
//! (`EKB__PILOT__COUNTIES=34,03`, `EKB__PILOT__PERIODS=2022-03-25/2028-12-31`). The default period
//! follows the regulation: § 9a in force 25 March 2022 (FOR-2022-03-25-470), the regulation runs
//! to 31 December 2028 (§ 10, FOR-2025-03-06-378). A misspelt key stops the service at start (the
//! platform checks every key against the typed settings).

use std::time::Duration;

use ekb_domain::PilotPolicy;
use ekb_platform::config::ConfigError;
use serde::Deserialize;

/// Routing's defaults on top of the platform's.
pub const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_routing"

[coverage]
max_age = "1s"

[pilot]
counties = ["34"]
periods = ["2022-03-25/2028-12-31"]
"#;

/// Routing's own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct RoutingSettings {
    /// The pilot policy, as configured.
    pub pilot: PilotSettings,
    /// How the agreement-coverage snapshot is kept.
    pub coverage: CoverageSettings,
}

/// How the agreement-coverage snapshot is kept.
#[derive(Debug, Clone, Deserialize)]
pub struct CoverageSettings {
    /// Reload the snapshot when it is older than this.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

/// The pilot policy as configured (raw strings; parsed into [`PilotPolicy`]).
#[derive(Debug, Clone, Deserialize)]
pub struct PilotSettings {
    /// County codes in the pilot.
    pub counties: Vec<String>,
    /// Inclusive periods `FROM/TO`.
    pub periods: Vec<String>,
}

impl RoutingSettings {
    /// The pilot policy; a bad county or period names its key.
    pub fn policy(&self) -> Result<PilotPolicy, ConfigError> {
        PilotPolicy::from_config(&self.pilot.counties, &self.pilot.periods)
            .map_err(|error| ConfigError::invalid(&error.key, error.to_string()))
    }

    /// Longest time a coverage snapshot is used before it is reloaded.
    pub fn coverage_max_age(&self) -> Duration {
        self.coverage.max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ekb_platform::{config::ServiceConfig, service};

    use crate::Routing;

    /// Routing's configuration with authentication off and `overrides` on top of the defaults.
    fn load_with(
        overrides: &[(&str, &str)],
    ) -> Result<ServiceConfig<RoutingSettings>, ConfigError> {
        let loader = overrides.iter().fold(
            service::config_loader::<Routing>().with_override("auth.mode", "disabled"),
            |loader, (key, value)| loader.with_override(key, *value),
        );
        service::load_config::<Routing>(&loader)
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
        let policy = config.settings.policy().expect("valid policy");
        assert_eq!(policy.counties().len(), 2);
        assert_eq!(policy.periods().len(), 2);
    }

    #[test]
    fn the_default_period_is_the_regulations() {
        let policy = load_with(&[])
            .expect("defaults are valid")
            .settings
            .policy()
            .expect("valid policy");
        assert_eq!(
            policy
                .periods()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["2022-03-25/2028-12-31"],
            "§ 9a in force 2022-03-25; the regulation runs to 2028-12-31"
        );
        assert_eq!(policy, ekb_domain::PilotPolicy::default());
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
    fn a_misspelt_pilot_key_is_refused() {
        let text = rejection(
            &[("pilot.countys", "34")],
            "a typo must not fall back to defaults",
        );
        assert!(text.contains("pilot.countys"), "{text}");
        assert!(text.contains("EKB__PILOT__COUNTYS"), "{text}");
    }
}
