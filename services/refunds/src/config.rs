//! Refunds' configuration: the platform sections plus `[refunds]` (the deadline rules and how
//! often the jobs run), `[retention]` (the platform's: how long personal data and records are
//! kept) and `[payment]` (the platform's: how the fake payment system answers and when an
//! unanswered hand-over is resent).
//!
//! Values are written in the platform's one vocabulary (ADR 0030): a period counted in calendar
//! days is a duration in whole days (`"90 days"`), an interval a duration under a name without a
//! unit (`"1h"`), retention in calendar months or years (`"15 months"`). A misspelt key stops
//! the service at start (the platform checks every key), and so does a key this vocabulary
//! replaced ([`REPLACED_KEYS`] names what to write instead).

use std::time::Duration;

use ekb_platform::{
    config::{ConfigError, ReplacedKey, whole_days},
    payment::PaymentSection,
    retention::RetentionSection,
};
use serde::Deserialize;

/// Refunds' defaults on top of the platform's. Personal data is kept 12 + 3 months after the
/// grant ended; records ten years (§ 5, checked by the platform).
pub const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_refunds"

[refunds]
late_claim_grace = "90 days"
max_deadline_extension = "180 days"
expiry_interval = "1h"
retention_interval = "1day"
payment_worker_interval = "30s"

[retention]
personal_data = "15 months"
records = "10 years"

[payment]
fake_outcome = "paid"
resend_after = "5m"
"#;

/// The keys this vocabulary replaced, and what to write instead (refused at start).
pub const REPLACED_KEYS: &[ReplacedKey] = &[
    (
        "refunds.late_claim_grace_days",
        "refunds.late_claim_grace (whole days, e.g. \"90 days\")",
    ),
    (
        "refunds.max_deadline_extension_days",
        "refunds.max_deadline_extension (whole days, e.g. \"180 days\")",
    ),
    (
        "refunds.personal_data_retention_days",
        "retention.personal_data (calendar months, e.g. \"15 months\")",
    ),
    (
        "refunds.record_retention_years",
        "retention.records (calendar months or years, e.g. \"10 years\")",
    ),
    (
        "refunds.expiry_interval_seconds",
        "refunds.expiry_interval (a duration, e.g. \"1h\")",
    ),
    (
        "refunds.retention_interval_seconds",
        "refunds.retention_interval (a duration, e.g. \"1day\")",
    ),
    (
        "refunds.payment_resend_after_seconds",
        "payment.resend_after (a duration, e.g. \"5m\")",
    ),
    (
        "refunds.payment_worker_interval_seconds",
        "refunds.payment_worker_interval (a duration, e.g. \"30s\")",
    ),
];

/// The longest period in days a deadline key may set (ten years).
const MAX_DAYS: i64 = 3650;

/// The longest expiry interval: the expiry job runs at least daily.
const MAX_EXPIRY_INTERVAL: Duration = Duration::from_secs(86_400);

/// Refunds' own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct RefundsSettings {
    /// The `[refunds]` section.
    pub refunds: RefundsSection,
    /// The `[retention]` section (the platform's, shared with applications).
    pub retention: RetentionSection,
    /// The `[payment]` section (the platform's, shared with pilot-ordering).
    pub payment: PaymentSection,
}

/// The `[refunds]` section, as configured.
#[derive(Debug, Clone, Deserialize)]
pub struct RefundsSection {
    /// How long after the refund deadline a late claim is still accepted, in whole days; the
    /// grant expires after.
    #[serde(with = "humantime_serde")]
    pub late_claim_grace: Duration,
    /// How far after the original deadline an extension may reach, in whole days.
    #[serde(with = "humantime_serde")]
    pub max_deadline_extension: Duration,
    /// How often the expiry job runs (at least daily).
    #[serde(with = "humantime_serde")]
    pub expiry_interval: Duration,
    /// How often the retention job runs.
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
    /// How often the payment worker looks for unanswered payments.
    #[serde(with = "humantime_serde")]
    pub payment_worker_interval: Duration,
}

/// The configuration as the service uses it, checked.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Days after the refund deadline a late claim is still accepted.
    pub late_claim_grace_days: i64,
    /// Days after the original deadline an extension may reach.
    pub max_deadline_extension_days: i64,
    /// How long personal data and records are kept after the grant.
    pub retention: RetentionSection,
    /// How often the expiry job runs.
    pub expiry_interval: Duration,
    /// How often the retention job runs.
    pub retention_interval: Duration,
    /// How often the payment worker runs.
    pub payment_worker_interval: Duration,
    /// When a payment handed over without an answer is handed over again.
    pub payment_resend_after: time::Duration,
}

/// The whole days of period `key`, from 0 to [`MAX_DAYS`].
fn period_days(key: &str, duration: Duration) -> Result<i64, ConfigError> {
    let days = whole_days(key, duration)?;
    if !(0..=MAX_DAYS).contains(&days) {
        return Err(ConfigError::invalid(key, "must be from 0 to 3650 days"));
    }
    Ok(days)
}

/// `duration` of `key`, refused when zero.
fn positive(key: &str, duration: Duration) -> Result<Duration, ConfigError> {
    if duration.is_zero() {
        return Err(ConfigError::invalid(key, "must be greater than zero"));
    }
    Ok(duration)
}

impl RefundsSettings {
    /// The checked rules; a bad value names its key.
    pub fn rules(&self) -> Result<Rules, ConfigError> {
        let section = &self.refunds;
        self.retention.check()?;
        let expiry_interval = positive("refunds.expiry_interval", section.expiry_interval)?;
        if expiry_interval > MAX_EXPIRY_INTERVAL {
            return Err(ConfigError::invalid(
                "refunds.expiry_interval",
                "must be at most 1 day (the job runs at least daily)",
            ));
        }
        let resend_after = positive("payment.resend_after", self.payment.resend_after)?;
        Ok(Rules {
            late_claim_grace_days: period_days(
                "refunds.late_claim_grace",
                section.late_claim_grace,
            )?,
            max_deadline_extension_days: period_days(
                "refunds.max_deadline_extension",
                section.max_deadline_extension,
            )?,
            retention: self.retention,
            expiry_interval,
            retention_interval: positive("refunds.retention_interval", section.retention_interval)?,
            payment_worker_interval: positive(
                "refunds.payment_worker_interval",
                section.payment_worker_interval,
            )?,
            payment_resend_after: time::Duration::try_from(resend_after)
                .map_err(|_| ConfigError::invalid("payment.resend_after", "is too long"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use ekb_domain::CalendarMonths;
    use ekb_platform::{config::ServiceConfig, payment::FakeOutcome, service};

    use super::*;
    use crate::Refunds;

    fn load_with(
        overrides: &[(&str, &str)],
    ) -> Result<ServiceConfig<RefundsSettings>, ConfigError> {
        let loader = overrides.iter().fold(
            service::config_loader::<Refunds>().with_override("auth.mode", "disabled"),
            |loader, (key, value)| loader.with_override(key, *value),
        );
        service::load_config::<Refunds>(&loader)
    }

    /// The error text of a configuration refused at start.
    fn refused(overrides: &[(&str, &str)]) -> String {
        load_with(overrides).expect_err("refused").to_string()
    }

    #[test]
    fn the_defaults_load_and_are_valid() {
        let config = load_with(&[]).expect("defaults load");
        let rules = config.settings.rules().expect("valid");
        assert_eq!(rules.late_claim_grace_days, 90);
        assert_eq!(rules.max_deadline_extension_days, 180);
        assert_eq!(rules.retention.personal_data, CalendarMonths::new(15));
        assert_eq!(rules.retention.records, CalendarMonths::years(10));
        assert_eq!(rules.expiry_interval, Duration::from_secs(3600));
        assert_eq!(rules.retention_interval, Duration::from_secs(86_400));
        assert_eq!(rules.payment_worker_interval, Duration::from_secs(30));
        assert_eq!(rules.payment_resend_after, time::Duration::minutes(5));
        assert_eq!(config.settings.payment.fake_outcome, FakeOutcome::Paid);
    }

    #[test]
    fn bad_values_and_misspelt_keys_name_the_key() {
        let text = refused(&[("refunds.expiry_interval", "0s")]);
        assert!(text.contains("refunds.expiry_interval"), "{text}");
        let text = refused(&[("refunds.expiry_interval", "2days")]);
        assert!(text.contains("at least daily"), "{text}");
        let text = refused(&[("refunds.late_claim_grace", "36h")]);
        assert!(text.contains("refunds.late_claim_grace"), "{text}");
        assert!(text.contains("whole days"), "{text}");
        let text = refused(&[("retention.records", "9 years")]);
        assert!(text.contains("retention.records"), "{text}");
        let text = refused(&[("refunds.late_claim_gracee", "5 days")]);
        assert!(text.contains("EKB__REFUNDS__LATE_CLAIM_GRACEE"), "{text}");
    }

    #[test]
    fn every_replaced_key_is_refused_naming_its_replacement() {
        for (old, new) in REPLACED_KEYS {
            let text = refused(&[(old, "1")]);
            let replacement = new.split(' ').next().unwrap_or_default();
            assert!(text.contains(old), "{text}");
            assert!(text.contains(replacement), "{old}: {text}");
        }
    }
}
