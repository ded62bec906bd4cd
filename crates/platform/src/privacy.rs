//! The keys that protect personal data, as a configuration section every service that stores
//! it shares (applications, pilot-ordering).
//!
//! Both keys must be the same in every such service: the pseudonym is how the evaluation follows
//! one person across the regular and the pilot flow, so two services with different pseudonym
//! keys would count one person twice. One section type, read the same way everywhere, makes that
//! a deployment fact (the chart gives both services the keys of one secret,
//! `personalData: true`) instead of a convention. Without configuration the section holds
//! development keys, so `make run` and the tests work; a service logs a warning at start when it
//! runs on them.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ekb_domain::{PersonalDataCipher, PseudonymKey, SyntheticPolicy};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::config::ConfigError;

/// Base64 of the development pseudonym key (32 bytes). Never for real data.
const DEV_PSEUDONYM_KEY: &str = "ZWtiLWRldi1vbmx5LXBzZXVkb255bS1rZXktMDAwMSE=";
/// Base64 of the development encryption key (32 bytes). Never for real data.
const DEV_ENCRYPTION_KEY: &str = "ZWtiLWRldi1vbmx5LWVuY3J5cHRpb24ta2V5LTAwMDE=";

/// The `[privacy]` section: `pseudonym_key` and `encryption_key`, each base64 of 32 bytes
/// (`EKB__PRIVACY__PSEUDONYM_KEY`, `EKB__PRIVACY__ENCRYPTION_KEY`), and whether synthetic test
/// fødselsnumre are accepted (`EKB__PRIVACY__ACCEPT_SYNTHETIC_FODSELSNUMMER`, default false:
/// only test environments and local runs set it). `Debug` prints no key.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct PrivacySection {
    /// The HMAC-SHA256 key of the employee pseudonym events carry.
    pub pseudonym_key: SecretString,
    /// The AES-256-GCM key the fødselsnummer is stored under.
    pub encryption_key: SecretString,
    /// Accept synthetic test fødselsnumre (month + 40 or + 80).
    pub accept_synthetic_fodselsnummer: bool,
}

impl Default for PrivacySection {
    /// The development keys.
    fn default() -> Self {
        PrivacySection {
            pseudonym_key: SecretString::from(DEV_PSEUDONYM_KEY),
            encryption_key: SecretString::from(DEV_ENCRYPTION_KEY),
            accept_synthetic_fodselsnummer: false,
        }
    }
}

impl fmt::Debug for PrivacySection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivacySection(<redacted>)")
    }
}

/// The checked keys.
#[derive(Debug, Clone)]
pub struct PrivacyKeys {
    /// Computes the pseudonym events carry.
    pub pseudonym: PseudonymKey,
    /// Seals the fødselsnummer at rest.
    pub cipher: PersonalDataCipher,
    /// Whether synthetic test numbers pass.
    pub synthetic: SyntheticPolicy,
}

impl PrivacySection {
    /// The keys, checked; a bad key names its setting (never its value). Warns when either is a
    /// development key.
    pub fn keys(&self) -> Result<PrivacyKeys, ConfigError> {
        let pseudonym = STANDARD
            .decode(self.pseudonym_key.expose_secret().trim())
            .ok()
            .and_then(|bytes| PseudonymKey::new(&bytes).ok())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "privacy.pseudonym_key",
                    "must be base64 of at least 32 bytes",
                )
            })?;
        let cipher =
            PersonalDataCipher::from_base64(self.encryption_key.expose_secret()).map_err(|_| {
                ConfigError::invalid("privacy.encryption_key", "must be base64 of 32 bytes")
            })?;
        if self.uses_development_keys() {
            tracing::warn!(
                "privacy keys are the development defaults: set EKB__PRIVACY__PSEUDONYM_KEY and \
                 EKB__PRIVACY__ENCRYPTION_KEY for any real data"
            );
        }
        let synthetic = if self.accept_synthetic_fodselsnummer {
            SyntheticPolicy::Accept
        } else {
            SyntheticPolicy::Reject
        };
        Ok(PrivacyKeys {
            pseudonym,
            cipher,
            synthetic,
        })
    }

    /// Whether either key is a development key.
    pub fn uses_development_keys(&self) -> bool {
        self.pseudonym_key.expose_secret().trim() == DEV_PSEUDONYM_KEY
            || self.encryption_key.expose_secret().trim() == DEV_ENCRYPTION_KEY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_development_keys_work_and_are_recognised() {
        let section = PrivacySection::default();
        assert!(section.keys().is_ok());
        assert!(section.uses_development_keys());
        assert_eq!(format!("{section:?}"), "PrivacySection(<redacted>)");
    }

    #[test]
    fn a_bad_key_names_its_setting_and_not_its_value() {
        let section = PrivacySection {
            pseudonym_key: SecretString::from("c2hvcnQ="),
            encryption_key: SecretString::from(DEV_ENCRYPTION_KEY),
            accept_synthetic_fodselsnummer: false,
        };
        let error = section.keys().expect_err("too short").to_string();
        assert!(error.contains("privacy.pseudonym_key"), "{error}");
        assert!(!error.contains("c2hvcnQ="), "{error}");
        let other = PrivacySection {
            pseudonym_key: SecretString::from(STANDARD.encode([9u8; 32])),
            encryption_key: SecretString::from(STANDARD.encode([7u8; 32])),
            accept_synthetic_fodselsnummer: true,
        };
        assert!(!other.uses_development_keys());
        let keys = other.keys().expect("keys");
        assert_eq!(keys.synthetic, SyntheticPolicy::Accept);
        let defaults = PrivacySection::default().keys().expect("development keys");
        assert_eq!(defaults.synthetic, SyntheticPolicy::Reject);
    }
}
