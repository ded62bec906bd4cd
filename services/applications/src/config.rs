//! Applications' configuration: the platform sections plus `[applications]` (the dated max rate
//! table, the account charged, the refund deadline rule, the resend and retention times) and
//! `[privacy]` (the pseudonym and encryption keys). Everything a rule of the regulation depends
//! on is here, never in code: the max rate changes every year and the deadline rule is NAV's.
//! A misspelt key stops the service at start (the platform checks every key).

use ekb_domain::{PersonalDataCipher, PseudonymKey, SyntheticPolicy};
use ekb_platform::{
    config::ConfigError,
    privacy::{PrivacyKeys, PrivacySection},
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
refund_deadline_months = 6
funds_request_resend_after = "15 minutes"
funds_request_resend_max_interval = "1 day"
personal_data_retention = "15 months"
record_retention_years = 10
jobs_interval = "1 minute"
"#;

/// Keys whose environment value is a comma-separated list.
pub const LIST_KEYS: &[&str] = &["applications.max_rates"];

/// Applications' own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationsSettings {
    /// The `[applications]` section.
    pub applications: ApplicationsSection,
    /// The `[privacy]` section (the platform's, shared with pilot-ordering).
    #[serde(default)]
    pub privacy: PrivacySection,
}

/// The `[applications]` section, as configured.
#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationsSection {
    /// The max rate table: `YYYY-MM-DD=ØRE=source` per rate (gross, in force from the date).
    pub max_rates: Vec<String>,
    /// The account grants are charged to, `CHAPTER.POST`.
    pub account: String,
    /// Months added to the later of the planned start date and the grant date for the refund
    /// deadline.
    pub refund_deadline_months: u32,
    /// Wait before re-sending an unanswered GrantRequested, e.g. `15 minutes`.
    pub funds_request_resend_after: String,
    /// Longest wait between re-sends (the wait doubles up to it).
    pub funds_request_resend_max_interval: String,
    /// How long after the case ends here personal data is erased, e.g. `15 months`.
    pub personal_data_retention: String,
    /// Years after the case ended here that the record (and its audit trail) is deleted.
    pub record_retention_years: u16,
    /// How often the resend and retention jobs run.
    pub jobs_interval: String,
}

/// A length of time as configuration writes it: `<n> <unit>`, unit seconds, minutes, hours,
/// days or months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Whole months.
    pub months: i32,
    /// Seconds besides the months.
    pub seconds: i64,
}

impl Span {
    /// Parses `text`; `None` if it is not `<n> <unit>`.
    pub fn parse(text: &str) -> Option<Span> {
        let (number, unit) = text.trim().split_once(' ')?;
        let number: i64 = number.trim().parse().ok().filter(|n| *n >= 0)?;
        let unit = unit.trim().trim_end_matches('s');
        let seconds = |factor: i64| {
            Some(Span {
                months: 0,
                seconds: number.checked_mul(factor)?,
            })
        };
        match unit {
            "second" => seconds(1),
            "minute" => seconds(60),
            "hour" => seconds(3_600),
            "day" => seconds(86_400),
            "month" => Some(Span {
                months: i32::try_from(number).ok()?,
                seconds: 0,
            }),
            _ => None,
        }
    }

    /// As a `std::time::Duration` (months count as 30 days).
    pub fn duration(&self) -> std::time::Duration {
        let seconds = i64::from(self.months) * 30 * 86_400 + self.seconds;
        std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }
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
    pub account: v1::BudgetAccount,
    /// Months of the refund deadline rule.
    pub refund_deadline_months: u32,
    /// First wait before a resend.
    pub resend_after: std::time::Duration,
    /// Longest wait between resends.
    pub resend_max_interval: std::time::Duration,
    /// Retention of personal data after the case ends.
    pub retention: Span,
    /// Years the record is kept after the case ended.
    pub record_retention_years: u16,
    /// How often the jobs run.
    pub jobs_interval: std::time::Duration,
    /// Pseudonym key.
    pub pseudonym_key: PseudonymKey,
    /// Cipher for the fødselsnummer.
    pub cipher: PersonalDataCipher,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("max_rates", &self.max_rates)
            .field("refund_deadline_months", &self.refund_deadline_months)
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

fn span(key: &str, text: &str) -> Result<Span, ConfigError> {
    Span::parse(text).ok_or_else(|| {
        ConfigError::invalid(
            key,
            "must be `<n> <unit>` with unit seconds, minutes, hours, days or months",
        )
    })
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
        let account = section
            .account
            .split_once('.')
            .and_then(|(chapter, post)| Some((chapter.parse().ok()?, post.parse().ok()?)))
            .filter(|(chapter, post): &(i32, i32)| {
                (1..=9999).contains(chapter) && (1..=99).contains(post)
            })
            .map(|(chapter, post)| v1::BudgetAccount { chapter, post })
            .ok_or_else(|| ConfigError::invalid("applications.account", "must be CHAPTER.POST"))?;
        let resend_after = span(
            "applications.funds_request_resend_after",
            &section.funds_request_resend_after,
        )?
        .duration();
        let resend_max_interval = span(
            "applications.funds_request_resend_max_interval",
            &section.funds_request_resend_max_interval,
        )?
        .duration();
        if resend_after.is_zero() || resend_max_interval < resend_after {
            return Err(ConfigError::invalid(
                "applications.funds_request_resend_max_interval",
                "must be at least funds_request_resend_after, which must be positive",
            ));
        }
        let retention = span(
            "applications.personal_data_retention",
            &section.personal_data_retention,
        )?;
        let jobs_interval = span("applications.jobs_interval", &section.jobs_interval)?.duration();
        if section.record_retention_years < 10 {
            return Err(ConfigError::invalid(
                "applications.record_retention_years",
                "must be at least 10 (§ 5)",
            ));
        }
        if jobs_interval.is_zero() {
            return Err(ConfigError::invalid(
                "applications.jobs_interval",
                "must be positive",
            ));
        }
        let PrivacyKeys {
            pseudonym: pseudonym_key,
            cipher,
            synthetic,
        } = self.privacy.keys()?;
        Ok(Policy {
            synthetic,
            max_rates,
            account,
            refund_deadline_months: section.refund_deadline_months,
            resend_after,
            resend_max_interval,
            retention,
            record_retention_years: section.record_retention_years,
            jobs_interval,
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
        assert_eq!(policy.account.chapter, 2650);
        assert_eq!(
            policy.retention,
            Span {
                months: 15,
                seconds: 0
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
            ("applications.personal_data_retention", "soon"),
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
    fn spans_parse_units() {
        assert_eq!(Span::parse("15 minutes").map(|s| s.seconds), Some(900));
        assert_eq!(Span::parse("1 day").map(|s| s.seconds), Some(86_400));
        assert_eq!(Span::parse("15 months").map(|s| s.months), Some(15));
        assert_eq!(Span::parse("15"), None);
        assert_eq!(Span::parse("3 weeks"), None);
    }
}
