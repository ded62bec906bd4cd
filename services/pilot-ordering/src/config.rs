//! Pilot-ordering's configuration: the platform sections plus `[pilot_ordering]` (deadlines,
//! the account charged, how often the sweep and the dispatcher run), `[privacy]` (the keys for
//! the employee's fødselsnummer) and `[payment]` (the fake payment system's answer and when an
//! unanswered hand-over is resent).
//!
//! Keys follow the platform's one vocabulary (ADR 0030): a deadline counted in calendar days is
//! a duration in whole days (`"7 days"`), an interval a duration under a name without a unit
//! (`"1h"`), the account `CHAPTER.POST`. `[privacy]` is the platform's `PrivacySection`, the same
//! as applications' (one pseudonym for one person in both flows); its defaults are development
//! keys. `[payment]` is the platform's `PaymentSection`, as in refunds. A misspelt key stops the
//! service at start (the platform checks every key), and so does a key this vocabulary replaced
//! ([`REPLACED_KEYS`] names what to write instead).

use std::time::Duration;

use ekb_domain::{Account, PersonalDataCipher, PseudonymKey, SyntheticPolicy};
use ekb_platform::{
    config::{ConfigError, whole_days},
    payment::PaymentSection,
    privacy::{PrivacyKeys, PrivacySection},
};
use serde::Deserialize;

/// Pilot-ordering's defaults on top of the platform's.
pub const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_pilot_ordering"

[pilot_ordering]
supplier_answer = "7 days"
start = "30 days"
invoice_deadline = "90 days"
account = "2650.76"
sweep_interval = "1h"
dispatch_interval = "1s"

[payment]
fake_outcome = "paid"
resend_after = "60s"
"#;

/// The keys this vocabulary replaced, and what to write instead (refused at start).
pub const REPLACED_KEYS: &[ekb_platform::config::ReplacedKey] = &[
    (
        "pilot_ordering.supplier_answer_days",
        "pilot_ordering.supplier_answer (whole days, e.g. \"7 days\")",
    ),
    (
        "pilot_ordering.start_days",
        "pilot_ordering.start (whole days, e.g. \"30 days\")",
    ),
    (
        "pilot_ordering.invoice_deadline_days",
        "pilot_ordering.invoice_deadline (whole days, e.g. \"90 days\")",
    ),
    (
        "pilot_ordering.account_chapter",
        "pilot_ordering.account (CHAPTER.POST, e.g. \"2650.76\")",
    ),
    (
        "pilot_ordering.account_post",
        "pilot_ordering.account (CHAPTER.POST, e.g. \"2650.76\")",
    ),
    (
        "pilot_ordering.sweep_interval_seconds",
        "pilot_ordering.sweep_interval (a duration, e.g. \"1h\")",
    ),
    (
        "pilot_ordering.dispatch_interval_ms",
        "pilot_ordering.dispatch_interval (a duration, e.g. \"1s\")",
    ),
    (
        "pilot_ordering.payment_retry_after_seconds",
        "payment.resend_after (a duration, e.g. \"60s\")",
    ),
];

/// The longest deadline in days a key may set (ten years).
const MAX_DAYS: i64 = 3650;

/// Pilot-ordering's own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct PilotOrderingSettings {
    /// `[pilot_ordering]`.
    pub pilot_ordering: OrderingSection,
    /// `[privacy]` (the platform's, shared with applications).
    #[serde(default)]
    pub privacy: PrivacySection,
    /// `[payment]` (the platform's, shared with refunds).
    pub payment: PaymentSection,
}

/// The `[pilot_ordering]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderingSection {
    /// How long a supplier has to answer a PLACED order before it expires, in whole days.
    #[serde(with = "humantime_serde")]
    pub supplier_answer: Duration,
    /// How long after acceptance the expert must start, in whole days.
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    /// How long after completion or abort the supplier may invoice, in whole days.
    #[serde(with = "humantime_serde")]
    pub invoice_deadline: Duration,
    /// The budget account orders are charged to, `CHAPTER.POST`.
    pub account: Account,
    /// How often the sweep (expiries, ended agreements) runs.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How often placed orders are sent to suppliers and unanswered payments handed over again.
    #[serde(with = "humantime_serde")]
    pub dispatch_interval: Duration,
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
    /// The account charged.
    pub account: Account,
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
    /// When an unanswered payment hand-over is handed over again.
    pub payment_resend_after: time::Duration,
}

/// The whole days of deadline `key`, from 1 to [`MAX_DAYS`].
fn deadline_days(key: &str, duration: Duration) -> Result<i64, ConfigError> {
    let days = whole_days(key, duration)?;
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ConfigError::invalid(key, "must be from 1 to 3650 days"));
    }
    Ok(days)
}

/// `duration` of `key` as a time span, refused when zero.
fn positive(key: &str, duration: Duration) -> Result<time::Duration, ConfigError> {
    if duration.is_zero() {
        return Err(ConfigError::invalid(key, "must be greater than zero"));
    }
    time::Duration::try_from(duration).map_err(|_| ConfigError::invalid(key, "is too long"))
}

impl PilotOrderingSettings {
    /// The checked policy; a bad value names its key.
    pub fn policy(&self) -> Result<OrderingPolicy, ConfigError> {
        let section = &self.pilot_ordering;
        let supplier_answer_days =
            deadline_days("pilot_ordering.supplier_answer", section.supplier_answer)?;
        let start_days = deadline_days("pilot_ordering.start", section.start)?;
        let invoice_deadline_days =
            deadline_days("pilot_ordering.invoice_deadline", section.invoice_deadline)?;
        positive("pilot_ordering.sweep_interval", section.sweep_interval)?;
        positive(
            "pilot_ordering.dispatch_interval",
            section.dispatch_interval,
        )?;
        let payment_resend_after = positive("payment.resend_after", self.payment.resend_after)?;
        let PrivacyKeys {
            pseudonym: pseudonym_key,
            cipher,
            synthetic,
        } = self.privacy.keys()?;
        Ok(OrderingPolicy {
            supplier_answer_days,
            start_days,
            invoice_deadline_days,
            account: section.account,
            synthetic,
            pseudonym_key,
            cipher,
            sweep_interval: section.sweep_interval,
            dispatch_interval: section.dispatch_interval,
            payment_resend_after,
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
        assert_eq!(policy.account, Account::SCHEME);
        assert_eq!(policy.sweep_interval, Duration::from_secs(3600));
        assert_eq!(policy.dispatch_interval, Duration::from_secs(1));
        assert_eq!(policy.payment_resend_after, time::Duration::seconds(60));
        assert_eq!(policy.synthetic, SyntheticPolicy::Reject);
    }

    #[test]
    fn values_read_as_people_write_them() {
        let policy = load_with(&[
            ("pilot_ordering.supplier_answer", "2 weeks"),
            ("pilot_ordering.account", "605.01"),
            ("pilot_ordering.dispatch_interval", "250ms"),
            ("payment.resend_after", "5m"),
        ])
        .expect("loads")
        .settings
        .policy()
        .expect("policy");
        assert_eq!(policy.supplier_answer_days, 14);
        assert_eq!(policy.account.to_string(), "605.01");
        assert_eq!(policy.dispatch_interval, Duration::from_millis(250));
        assert_eq!(policy.payment_resend_after, time::Duration::minutes(5));
    }

    #[test]
    fn a_replaced_key_is_refused_naming_its_replacement() {
        for (old, _) in REPLACED_KEYS {
            let text = load_with(&[(old, "1")]).expect_err("replaced").to_string();
            assert!(text.contains(old), "{old}: {text}");
        }
        let text = load_with(&[("pilot_ordering.payment_retry_after_seconds", "2")])
            .expect_err("replaced")
            .to_string();
        assert!(text.contains("write payment.resend_after"), "{text}");
        let text = load_with(&[("pilot_ordering.account_post", "76")])
            .expect_err("replaced")
            .to_string();
        assert!(
            text.contains("write pilot_ordering.account (CHAPTER.POST"),
            "{text}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("pilot_ordering.invoice_deadline", "0s"),
            ("pilot_ordering.supplier_answer", "36h"),
            ("pilot_ordering.start", "3651 days"),
            ("pilot_ordering.account", "2650.100"),
            ("pilot_ordering.sweep_interval", "0s"),
            ("payment.resend_after", "0s"),
            ("privacy.pseudonym_key", "short"),
            ("privacy.encryption_key", "not base64"),
        ] {
            let text = load_with(&[(key, value)]).expect_err("refused").to_string();
            assert!(text.contains(key), "{key}: {text}");
        }
    }
}
