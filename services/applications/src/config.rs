//! Applications' configuration: the platform sections plus `[applications]` (the dated max rate
//! table, the account charged, the refund deadline rule, the resend and job times),
//! `[retention]` (the platform's: how long personal data and records are kept) and `[privacy]`
//! (the pseudonym and encryption keys). Everything a rule of the regulation depends on is here,
//! never in code: the max rate changes every year and the deadline rule is NAV's. Values are
//! written in the platform's one vocabulary (ADR 0030): an account `"2650.76"`, calendar months
//! `"6 months"`, elapsed time `"15m"`. A misspelt key stops the service at start (the platform
//! checks every key), and a key this vocabulary replaced names its replacement
//! ([`REPLACED_KEYS`]).

use std::time::Duration;

use ekb_domain::{Account, CalendarMonths, PersonalDataCipher, PseudonymKey, SyntheticPolicy};
use ekb_platform::{
    config::{ConfigError, ReplacedKey},
    privacy::{PrivacyKeys, PrivacySection},
    retention::RetentionSection,
};
use ekb_proto::convert::gross_to_wire;
use ekb_proto::v1;
use serde::Deserialize;
use time::Date;

/// Applications' defaults on top of the platform's. `[privacy]` is the platform's
/// [`PrivacySection`], whose defaults are development keys.
pub const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_applications"

[applications]
max_rates = [
  "2023-01-01=2230000=Forskrift om tilskudd til ekspertbistand; 22 300 kr for 2023 (NAV)",
  "2024-01-01=2400000=Forskrift om tilskudd til ekspertbistand; 24 000 kr from 2024 (NAV)",
]
account = "2650.76"
refund_deadline = "6 months"
funds_request_resend_after = "15m"
funds_request_resend_max_interval = "1day"
jobs_interval = "1m"

[retention]
personal_data = "15 months"
records = "10 years"
"#;

/// Keys whose environment value is a comma-separated list.
pub const LIST_KEYS: &[&str] = &["applications.max_rates"];

/// Keys the configuration vocabulary replaced, refused at start naming what to write instead.
pub const REPLACED_KEYS: &[ReplacedKey] = &[
    (
        "applications.refund_deadline_months",
        "applications.refund_deadline (calendar months, e.g. \"6 months\")",
    ),
    (
        "applications.personal_data_retention",
        "retention.personal_data (calendar months, e.g. \"15 months\")",
    ),
    (
        "applications.record_retention_years",
        "retention.records (calendar months or years, e.g. \"10 years\")",
    ),
];

/// Applications' own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationsSettings {
    /// The `[applications]` section.
    pub applications: ApplicationsSection,
    /// The `[retention]` section (the platform's, shared with refunds).
    pub retention: RetentionSection,
    /// The `[privacy]` section (the platform's, shared with pilot-ordering).
    #[serde(default)]
    pub privacy: PrivacySection,
}

/// The `[applications]` section, as configured.
#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationsSection {
    /// The max rate table: `YYYY-MM-DD=ØRE=source` per rate (gross, in force from the date).
    pub max_rates: Vec<String>,
    /// The account grants are charged to, e.g. `"2650.76"`.
    pub account: Account,
    /// Calendar months added to the later of the planned start date and the grant date for the
    /// refund deadline, e.g. `"6 months"`.
    pub refund_deadline: CalendarMonths,
    /// Wait before re-sending an unanswered GrantRequested, e.g. `"15m"`.
    #[serde(with = "humantime_serde")]
    pub funds_request_resend_after: Duration,
    /// Longest wait between re-sends (the wait doubles up to it), e.g. `"1day"`.
    #[serde(with = "humantime_serde")]
    pub funds_request_resend_max_interval: Duration,
    /// How often the resend and retention jobs run, e.g. `"1m"`.
    #[serde(with = "humantime_serde")]
    pub jobs_interval: Duration,
}

/// One entry of the max rate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxRate {
    /// First day the rate is in force.
    pub valid_from: Date,
    /// The rate, gross, in øre.
    pub ore: i64,
    /// Where it comes from.
    pub source: String,
}

impl MaxRate {
    /// As the contract carries it.
    pub fn to_wire(&self) -> v1::AppliedMaxRate {
        v1::AppliedMaxRate {
            rate: Some(gross_to_wire(self.ore)),
            valid_from_date: ekb_proto::convert::date_to_wire(self.valid_from),
            source: self.source.clone(),
        }
    }
}

/// The configuration as the service uses it, checked.
#[derive(Clone)]
pub struct Policy {
    /// Synthetic fødselsnummer accepted or not.
    pub synthetic: SyntheticPolicy,
    /// The max rates, by `valid_from` ascending.
    pub max_rates: Vec<MaxRate>,
    /// The account charged.
    pub account: Account,
    /// The refund deadline rule's months.
    pub refund_deadline: CalendarMonths,
    /// First wait before a resend.
    pub resend_after: Duration,
    /// Longest wait between resends.
    pub resend_max_interval: Duration,
    /// How long personal data and records are kept after the case ends.
    pub retention: RetentionSection,
    /// How often the jobs run.
    pub jobs_interval: Duration,
    /// Pseudonym key.
    pub pseudonym_key: PseudonymKey,
    /// Cipher for the fødselsnummer.
    pub cipher: PersonalDataCipher,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("max_rates", &self.max_rates)
            .field("refund_deadline", &self.refund_deadline)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// The rate in force on `date`, if any.
    pub fn max_rate_on(&self, date: Date) -> Option<&MaxRate> {
        self.max_rates
            .iter()
            .rev()
            .find(|rate| rate.valid_from <= date)
    }
}

impl ApplicationsSettings {
    /// The checked policy; a bad value names its key.
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let section = &self.applications;
        let mut max_rates = Vec::new();
        for entry in &section.max_rates {
            let bad = || {
                ConfigError::invalid(
                    "applications.max_rates",
                    format!(
                        "{entry:?} must be YYYY-MM-DD=ØRE=source with a positive rate of at most {} øre",
                        ekb_domain::Money::MAX_CASE_AMOUNT.ore()
                    ),
                )
            };
            let mut parts = entry.trim().splitn(3, '=');
            let date = parts.next().ok_or_else(bad)?;
            let ore = parts.next().ok_or_else(bad)?;
            let source = parts.next().unwrap_or("").trim();
            let valid_from = ekb_domain::parse_iso_date(date.trim()).map_err(|_| bad())?;
            let ore: i64 = ore.trim().parse().map_err(|_| bad())?;
            let in_bounds = ekb_domain::Money::from_ore(ore)
                .require_case_amount()
                .is_ok();
            if !in_bounds || source.is_empty() {
                return Err(bad());
            }
            max_rates.push(MaxRate {
                valid_from,
                ore,
                source: source.to_owned(),
            });
        }
        max_rates.sort_by_key(|rate| rate.valid_from);
        if max_rates.is_empty()
            || max_rates
                .windows(2)
                .any(|pair| pair[0].valid_from == pair[1].valid_from)
        {
            return Err(ConfigError::invalid(
                "applications.max_rates",
                "must name at least one rate, each date once",
            ));
        }
        let resend_after = section.funds_request_resend_after;
        let resend_max_interval = section.funds_request_resend_max_interval;
        if resend_after.is_zero() || resend_max_interval < resend_after {
            return Err(ConfigError::invalid(
                "applications.funds_request_resend_max_interval",
                "must be at least funds_request_resend_after, which must be positive",
            ));
        }
        if section.jobs_interval.is_zero() {
            return Err(ConfigError::invalid(
                "applications.jobs_interval",
                "must be positive",
            ));
        }
        self.retention.check()?;
        let PrivacyKeys {
            pseudonym: pseudonym_key,
            cipher,
            synthetic,
        } = self.privacy.keys()?;
        Ok(Policy {
            synthetic,
            max_rates,
            account: section.account,
            refund_deadline: section.refund_deadline,
            resend_after,
            resend_max_interval,
            retention: self.retention,
            jobs_interval: section.jobs_interval,
            pseudonym_key,
            cipher,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ekb_platform::{config::ServiceConfig, service};
    use time::macros::date;

    use crate::Applications;

    fn load_with(
        overrides: &[(&str, &str)],
    ) -> Result<ServiceConfig<ApplicationsSettings>, ConfigError> {
        let loader = overrides.iter().fold(
            service::config_loader::<Applications>().with_override("auth.mode", "disabled"),
            |loader, (key, value)| loader.with_override(key, *value),
        );
        service::load_config::<Applications>(&loader)
    }

    #[test]
    fn the_defaults_give_dated_rates_with_their_source() {
        let policy = load_with(&[])
            .expect("defaults load")
            .settings
            .policy()
            .expect("valid");
        assert_eq!(policy.max_rate_on(date!(2022 - 12 - 31)), None);
        assert_eq!(
            policy.max_rate_on(date!(2023 - 06 - 01)).map(|r| r.ore),
            Some(2_230_000)
        );
        let rate = policy.max_rate_on(date!(2026 - 11 - 30)).expect("in force");
        assert_eq!(rate.ore, 2_400_000);
        assert!(rate.source.contains("2024"));
        assert_eq!(policy.account, Account::SCHEME);
        assert_eq!(policy.refund_deadline, CalendarMonths::new(6));
        assert_eq!(policy.resend_after, Duration::from_secs(15 * 60));
        assert_eq!(policy.resend_max_interval, Duration::from_secs(86_400));
        assert_eq!(policy.jobs_interval, Duration::from_secs(60));
        assert_eq!(
            policy.retention,
            RetentionSection {
                personal_data: CalendarMonths::new(15),
                records: CalendarMonths::years(10),
            }
        );
        assert_eq!(policy.synthetic, SyntheticPolicy::Reject);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("applications.max_rates", "2024-01-01=0=x"),
            ("applications.max_rates", "2024-13-01=100=x"),
            ("applications.account", "2650-76"),
            ("applications.refund_deadline", "180 days"),
            ("applications.jobs_interval", "soon"),
            ("applications.jobs_interval", "0s"),
            ("applications.funds_request_resend_max_interval", "1m"),
            ("retention.personal_data", "soon"),
            ("retention.records", "9 years"),
            ("privacy.encryption_key", "c2hvcnQ="),
        ] {
            let text = load_with(&[(key, value)])
                .and_then(|config| config.settings.policy().map(|_| config))
                .expect_err("refused")
                .to_string();
            assert!(text.contains(key), "{key}: {text}");
        }
    }

    #[test]
    fn a_replaced_key_is_refused_naming_its_replacement() {
        for (old, value, new) in [
            (
                "applications.refund_deadline_months",
                "6",
                "applications.refund_deadline",
            ),
            (
                "applications.personal_data_retention",
                "15 months",
                "retention.personal_data",
            ),
            (
                "applications.record_retention_years",
                "10",
                "retention.records",
            ),
        ] {
            let text = load_with(&[(old, value)])
                .expect_err("an old key is refused")
                .to_string();
            assert!(text.contains(old) && text.contains(new), "{old}: {text}");
        }
    }
}
