//! Refunds' configuration: the platform sections plus `[refunds]` (deadline rules, retention,
//! job intervals) and `[payment]` (how the fake payment system answers). A misspelt key stops
//! the service at start (the platform checks every key).

use ekb_platform::{config::ConfigError, payment::FakeOutcome};
use serde::Deserialize;

/// Refunds' defaults on top of the platform's. `personal_data_retention_days` is 12 + 3 months
/// (456 days) after the grant ended; records are kept 10 years from the grant (§ 5).
pub const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_refunds"

[refunds]
late_claim_grace_days = 90
max_deadline_extension_days = 180
personal_data_retention_days = 456
record_retention_years = 10
expiry_interval_seconds = 3600
retention_interval_seconds = 86400
payment_resend_after_seconds = 300
payment_worker_interval_seconds = 30

[payment]
fake_outcome = "paid"
"#;

/// Refunds' own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct RefundsSettings {
    /// The `[refunds]` section.
    pub refunds: RefundsSection,
    /// The `[payment]` section.
    pub payment: PaymentSection,
}

/// The `[refunds]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct RefundsSection {
    /// Days after the refund deadline a late claim is still accepted; the grant expires after.
    pub late_claim_grace_days: i64,
    /// How many days after the original deadline an extension may reach.
    pub max_deadline_extension_days: i64,
    /// Days after a grant ended that its free text is erased.
    pub personal_data_retention_days: i64,
    /// Years from the grant that its records are kept (§ 5: 10).
    pub record_retention_years: i32,
    /// Seconds between runs of the expiry job (at least daily).
    pub expiry_interval_seconds: u64,
    /// Seconds between runs of the retention job.
    pub retention_interval_seconds: u64,
    /// Seconds after which a payment handed over without an answer is handed over again.
    pub payment_resend_after_seconds: i64,
    /// Seconds between the payment worker's looks for unanswered payments.
    pub payment_worker_interval_seconds: u64,
}

/// The `[payment]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSection {
    /// How the recording fake payment system answers: `paid`, `deferred` or `failed`.
    pub fake_outcome: FakeOutcome,
}

impl RefundsSettings {
    /// Checks the rules types cannot express; a bad value names its key.
    pub fn check(&self) -> Result<(), ConfigError> {
        let section = &self.refunds;
        let rules: [(&str, bool, &str); 8] = [
            (
                "refunds.late_claim_grace_days",
                (0..=3650).contains(&section.late_claim_grace_days),
                "must be from 0 to 3650",
            ),
            (
                "refunds.max_deadline_extension_days",
                (0..=3650).contains(&section.max_deadline_extension_days),
                "must be from 0 to 3650",
            ),
            (
                "refunds.personal_data_retention_days",
                (1..=3650).contains(&section.personal_data_retention_days),
                "must be from 1 to 3650",
            ),
            (
                "refunds.record_retention_years",
                (1..=100).contains(&section.record_retention_years),
                "must be from 1 to 100",
            ),
            (
                "refunds.expiry_interval_seconds",
                (1..=86_400).contains(&section.expiry_interval_seconds),
                "must be from 1 to 86400 (the job runs at least daily)",
            ),
            (
                "refunds.retention_interval_seconds",
                section.retention_interval_seconds >= 1,
                "must be at least 1",
            ),
            (
                "refunds.payment_resend_after_seconds",
                section.payment_resend_after_seconds >= 1,
                "must be at least 1",
            ),
            (
                "refunds.payment_worker_interval_seconds",
                section.payment_worker_interval_seconds >= 1,
                "must be at least 1",
            ),
        ];
        for (key, valid, rule) in rules {
            if !valid {
                return Err(ConfigError::invalid(key, rule));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ekb_platform::{config::ServiceConfig, service};

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

    #[test]
    fn the_defaults_load_and_are_valid() {
        let config = load_with(&[]).expect("defaults load");
        config.settings.check().expect("valid");
        assert_eq!(config.settings.refunds.late_claim_grace_days, 90);
        assert_eq!(config.settings.payment.fake_outcome, FakeOutcome::Paid);
    }

    #[test]
    fn bad_values_and_misspelt_keys_name_the_key() {
        let text = load_with(&[("refunds.expiry_interval_seconds", "0")])
            .expect_err("refused at load")
            .to_string();
        assert!(text.contains("refunds.expiry_interval_seconds"), "{text}");
        let text = load_with(&[("refunds.late_claim_grace_dayz", "5")])
            .expect_err("a typo must not fall back to the default")
            .to_string();
        assert!(
            text.contains("EKB__REFUNDS__LATE_CLAIM_GRACE_DAYZ"),
            "{text}"
        );
    }
}
