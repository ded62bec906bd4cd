//! Pilot-ordering's configuration: the platform sections plus `[pilot_ordering]` (deadlines,
//! the account charged, how often the sweep and the dispatcher run), `[privacy]` (the keys for
//! the employee's fødselsnummer) and `[payment]` (the fake payment system's answer).
//!
//! `[privacy]` is the platform's `PrivacySection`, the same as applications' (one pseudonym for
//! one person in both flows); its defaults are development keys. A misspelt key stops the service at start (the platform checks every key).

use std::time::Duration;

use ekb_domain::{PersonalDataCipher, PseudonymKey, SyntheticPolicy};
use ekb_platform::{
    config::ConfigError,
    payment::FakeOutcome,
    privacy::{PrivacyKeys, PrivacySection},
};
use serde::Deserialize;

/// Pilot-ordering's defaults on top of the platform's.
pub const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_pilot_ordering"

[pilot_ordering]
supplier_answer_days = 7
start_days = 30
invoice_deadline_days = 90
account_chapter = 2650
account_post = 76
sweep_interval_seconds = 3600
dispatch_interval_ms = 1000
payment_retry_after_seconds = 60


[payment]
fake_outcome = "paid"
"#;

/// Pilot-ordering's own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct PilotOrderingSettings {
    /// `[pilot_ordering]`.
    pub pilot_ordering: OrderingSection,
    /// `[privacy]` (the platform's, shared with applications).
    #[serde(default)]
    pub privacy: PrivacySection,
    /// `[payment]`.
    pub payment: PaymentSection,
}

/// The `[pilot_ordering]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderingSection {
    /// Days a supplier has to answer a PLACED order before it expires.
    pub supplier_answer_days: i64,
    /// Days after acceptance within which the expert must start.
    pub start_days: i64,
    /// Days after completion or abort within which the supplier may invoice.
    pub invoice_deadline_days: i64,
    /// Budget chapter charged.
    pub account_chapter: i32,
    /// Budget post charged.
    pub account_post: i32,
    /// How often the sweep (expiries, ended agreements) runs.
    pub sweep_interval_seconds: u64,
    /// How often placed orders are sent to suppliers and pending payments retried.
    pub dispatch_interval_ms: u64,
    /// A payment handed over this long ago without an answer is handed over again.
    pub payment_retry_after_seconds: i64,
}

/// The `[payment]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSection {
    /// How the fake payment system answers: `paid`, `deferred` or `failed`.
    pub fake_outcome: FakeOutcome,
}

/// The configuration as the service uses it, checked.
#[derive(Debug, Clone)]
pub struct OrderingPolicy {
    /// Days to answer a placed order.
    pub supplier_answer_days: i64,
    /// Days to start after acceptance.
    pub start_days: i64,
    /// Days to invoice after completion or abort.
    pub invoice_deadline_days: i64,
    /// Chapter charged.
    pub account_chapter: i32,
    /// Post charged.
    pub account_post: i32,
    /// Whether synthetic fødselsnumre pass.
    pub synthetic: SyntheticPolicy,
    /// Pseudonym key.
    pub pseudonym_key: PseudonymKey,
    /// Cipher for the fødselsnummer.
    pub cipher: PersonalDataCipher,
    /// Sweep interval.
    pub sweep_interval: Duration,
    /// Dispatch interval.
    pub dispatch_interval: Duration,
    /// When an unanswered payment hand-over is retried.
    pub payment_retry_after: time::Duration,
}

impl PilotOrderingSettings {
    /// The checked policy; a bad value names its key.
    pub fn policy(&self) -> Result<OrderingPolicy, ConfigError> {
        let section = &self.pilot_ordering;
        for (key, value) in [
            (
                "pilot_ordering.supplier_answer_days",
                section.supplier_answer_days,
            ),
            ("pilot_ordering.start_days", section.start_days),
            (
                "pilot_ordering.invoice_deadline_days",
                section.invoice_deadline_days,
            ),
            (
                "pilot_ordering.payment_retry_after_seconds",
                section.payment_retry_after_seconds,
            ),
        ] {
            if !(1..=3650).contains(&value) && !key.ends_with("seconds") || value < 1 {
                return Err(ConfigError::invalid(key, "must be from 1 to 3650"));
            }
        }
        if !(1..=9999).contains(&section.account_chapter) {
            return Err(ConfigError::invalid(
                "pilot_ordering.account_chapter",
                "must be from 1 to 9999",
            ));
        }
        if !(1..=99).contains(&section.account_post) {
            return Err(ConfigError::invalid(
                "pilot_ordering.account_post",
                "must be from 1 to 99",
            ));
        }
        if section.sweep_interval_seconds == 0 || section.dispatch_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "pilot_ordering.sweep_interval_seconds",
                "intervals must be greater than zero",
            ));
        }
        let PrivacyKeys {
            pseudonym: pseudonym_key,
            cipher,
            synthetic,
        } = self.privacy.keys()?;
        Ok(OrderingPolicy {
            supplier_answer_days: section.supplier_answer_days,
            start_days: section.start_days,
            invoice_deadline_days: section.invoice_deadline_days,
            account_chapter: section.account_chapter,
            account_post: section.account_post,
            synthetic,
            pseudonym_key,
            cipher,
            sweep_interval: Duration::from_secs(section.sweep_interval_seconds),
            dispatch_interval: Duration::from_millis(section.dispatch_interval_ms),
            payment_retry_after: time::Duration::seconds(section.payment_retry_after_seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use ekb_platform::{config::ServiceConfig, service};

    use super::*;
    use crate::PilotOrdering;

    fn load_with(
        overrides: &[(&str, &str)],
    ) -> Result<ServiceConfig<PilotOrderingSettings>, ConfigError> {
        let loader = overrides.iter().fold(
            service::config_loader::<PilotOrdering>().with_override("auth.mode", "disabled"),
            |loader, (key, value)| loader.with_override(key, *value),
        );
        service::load_config::<PilotOrdering>(&loader)
    }

    #[test]
    fn the_defaults_load_and_follow_the_contract() {
        let policy = load_with(&[])
            .expect("defaults")
            .settings
            .policy()
            .expect("policy");
        assert_eq!(policy.supplier_answer_days, 7);
        assert_eq!(policy.start_days, 30);
        assert_eq!(policy.invoice_deadline_days, 90);
        assert_eq!((policy.account_chapter, policy.account_post), (2650, 76));
        assert_eq!(policy.synthetic, SyntheticPolicy::Reject);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("pilot_ordering.invoice_deadline_days", "0"),
            ("pilot_ordering.account_post", "100"),
            ("privacy.pseudonym_key", "short"),
            ("privacy.encryption_key", "not base64"),
        ] {
            let text = load_with(&[(key, value)]).expect_err("refused").to_string();
            assert!(text.contains(key), "{key}: {text}");
        }
    }
}
