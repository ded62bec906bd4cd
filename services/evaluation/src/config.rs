//! The evaluation's configuration: the platform sections plus `[evaluation]` — the pilot county
//! the comparison is made for, the smallest number of cases a figure may be shown from, the
//! longest period one request may ask for, and the employee counts uptake is measured against
//! (dated, with their source, since an evaluator must be able to say which figures were used) —
//! and the platform's `[privacy]` section, whose pseudonym key also keys the case fingerprints
//! of the read model (docs/adr/0033). A misspelt key stops the service at start.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ekb_domain::{CountyCode, MIN_PSEUDONYM_KEY_BYTES};
use ekb_platform::{config::ConfigError, privacy::PrivacySection};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use time::{Date, format_description::well_known::Iso8601};

use crate::{employees::EmployeeCounts, fingerprint::CaseKey};

/// The evaluation's defaults on top of the platform's. The employee counts are approximate,
/// rounded figures after SSB's register-based employment statistics, as the year simulator
/// uses them (crates/simulator/national-year.toml); a deployment replaces them with the exact
/// table of the year it evaluates.
pub const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_evaluation"

[evaluation]
pilot_county = "34"
min_cases = 5
max_months = 36

[evaluation.employees]
source = "SSB table 11933, employed persons 15-74 years by county of work, 4th quarter 2023, rounded to thousands (approximate)"
as_of = "2023-12-31"

[evaluation.employees.per_county]
"03" = 560000
"11" = 250000
"15" = 135000
"18" = 125000
"31" = 140000
"32" = 330000
"33" = 130000
"34" = 185000
"39" = 120000
"40" = 80000
"42" = 150000
"46" = 330000
"50" = 245000
"55" = 90000
"56" = 37000
"#;

/// The longest period any deployment may allow one request (`evaluation.max_months`).
pub const MAX_MONTHS_LIMIT: u32 = 120;

/// The evaluation's own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct EvaluationSettings {
    /// The `[evaluation]` section.
    pub evaluation: EvaluationSection,
    /// The `[privacy]` section (the platform's): its pseudonym key keys the case fingerprints.
    #[serde(default)]
    pub privacy: PrivacySection,
}

/// The `[evaluation]` section, as configured.
#[derive(Debug, Clone, Deserialize)]
pub struct EvaluationSection {
    /// The pilot's county code, compared with the other counties (`"34"`).
    pub pilot_county: String,
    /// Figures computed from fewer cases than this are suppressed (`5`).
    pub min_cases: u32,
    /// The most months one request may cover (`36`).
    pub max_months: u32,
    /// Employees per county, the denominator of uptake.
    pub employees: EmployeesSection,
}

/// The `[evaluation.employees]` section: one published statistic.
#[derive(Debug, Clone, Deserialize)]
pub struct EmployeesSection {
    /// Where the figures come from.
    pub source: String,
    /// The day they describe, `YYYY-MM-DD`.
    pub as_of: String,
    /// Employees per county code.
    pub per_county: BTreeMap<String, u32>,
}

/// The configuration as the service uses it, checked.
#[derive(Debug, Clone)]
pub struct EvaluationPolicy {
    /// The pilot's county code.
    pub pilot_county: String,
    /// The suppression threshold.
    pub min_cases: u32,
    /// The longest period a request may cover, in months.
    pub max_months: u32,
    /// Employees per county.
    pub employees: EmployeeCounts,
    /// The key of the case fingerprints.
    pub case_key: CaseKey,
}

impl EvaluationSettings {
    /// The checked policy; a bad value names its key (never a key's secret).
    pub fn policy(&self) -> Result<EvaluationPolicy, ConfigError> {
        let section = &self.evaluation;
        let pilot_county = CountyCode::parse(&section.pilot_county)
            .map_err(|error| ConfigError::invalid("evaluation.pilot_county", error.to_string()))?;
        if section.min_cases == 0 {
            return Err(ConfigError::invalid(
                "evaluation.min_cases",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_MONTHS_LIMIT).contains(&section.max_months) {
            return Err(ConfigError::invalid(
                "evaluation.max_months",
                format!("must be from 1 to {MAX_MONTHS_LIMIT}"),
            ));
        }
        Ok(EvaluationPolicy {
            pilot_county: pilot_county.as_str().to_owned(),
            min_cases: section.min_cases,
            max_months: section.max_months,
            employees: section.employees.counts()?,
            case_key: self.case_key()?,
        })
    }

    fn case_key(&self) -> Result<CaseKey, ConfigError> {
        STANDARD
            .decode(self.privacy.pseudonym_key.expose_secret().trim())
            .ok()
            .and_then(|bytes| CaseKey::new(&bytes))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "privacy.pseudonym_key",
                    format!("must be base64 of at least {MIN_PSEUDONYM_KEY_BYTES} bytes"),
                )
            })
    }
}

impl EmployeesSection {
    fn counts(&self) -> Result<EmployeeCounts, ConfigError> {
        if self.source.trim().is_empty() {
            return Err(ConfigError::invalid(
                "evaluation.employees.source",
                "must name where the figures come from",
            ));
        }
        let as_of = Date::parse(self.as_of.trim(), &Iso8601::DATE).map_err(|_| {
            ConfigError::invalid("evaluation.employees.as_of", "must be a date, YYYY-MM-DD")
        })?;
        if self.per_county.is_empty() {
            return Err(ConfigError::invalid(
                "evaluation.employees.per_county",
                "must give at least one county",
            ));
        }
        for (county, employees) in &self.per_county {
            let key = format!("evaluation.employees.per_county.{county}");
            let known = CountyCode::parse(county).ok().and_then(|code| code.name());
            if known.is_none() {
                return Err(ConfigError::invalid(
                    &key,
                    "must be a county code of the 2024 structure",
                ));
            }
            if *employees == 0 {
                return Err(ConfigError::invalid(
                    &key,
                    "must be a positive number of employees",
                ));
            }
        }
        Ok(EmployeeCounts {
            source: self.source.trim().to_owned(),
            as_of,
            per_county: self.per_county.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ekb_platform::{config::ServiceConfig, service};
    use time::macros::date;

    use crate::Evaluation;

    fn load_with(
        overrides: &[(&str, &str)],
    ) -> Result<ServiceConfig<EvaluationSettings>, ConfigError> {
        let loader = overrides.iter().fold(
            service::config_loader::<Evaluation>().with_override("auth.mode", "disabled"),
            |loader, (key, value)| loader.with_override(key, *value),
        );
        service::load_config::<Evaluation>(&loader)
    }

    #[test]
    fn the_defaults_are_county_34_five_cases_and_dated_employee_counts_with_their_source() {
        let policy = load_with(&[])
            .expect("defaults load")
            .settings
            .policy()
            .expect("valid");
        assert_eq!(policy.pilot_county, "34");
        assert_eq!((policy.min_cases, policy.max_months), (5, 36));
        assert_eq!(policy.employees.as_of, date!(2023 - 12 - 31));
        assert!(
            policy.employees.source.contains("SSB"),
            "{:?}",
            policy.employees
        );
        assert_eq!(policy.employees.per_county.len(), 15);
        assert_eq!(policy.employees.per_county.get("34"), Some(&185_000));
    }

    #[test]
    fn bad_values_and_misspelt_keys_name_the_key() {
        for (key, value) in [
            ("evaluation.pilot_county", "3"),
            ("evaluation.min_cases", "0"),
            ("evaluation.max_months", "0"),
            ("evaluation.max_months", "121"),
            ("evaluation.employees.as_of", "2023-13-01"),
            ("evaluation.employees.source", " "),
            ("evaluation.employees.per_county.99", "1000"),
            ("evaluation.employees.per_county.34", "0"),
            ("privacy.pseudonym_key", "c2hvcnQ="),
        ] {
            let text = load_with(&[(key, value)])
                .and_then(|config| config.settings.policy().map(|_| ()))
                .expect_err("refused")
                .to_string();
            assert!(text.contains(key), "{key}: {text}");
        }
        let text = load_with(&[("evaluation.min_case", "3")])
            .expect_err("a typo must not fall back to the default")
            .to_string();
        assert!(text.contains("EKB__EVALUATION__MIN_CASE"), "{text}");
    }
}
