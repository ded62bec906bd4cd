//! Budget's configuration: the platform sections plus `[budget]`, the accounts appropriations
//! and requests may name, and the default alert thresholds
//! (`EKB__BUDGET__THRESHOLD_PERCENTS=50,75,90,100`, `EKB__BUDGET__ACCOUNTS=2650.76,605.01`).
//! A misspelt key stops the service at start (the platform checks every key).

use ekb_platform::config::ConfigError;
use serde::Deserialize;

use crate::rules::{Account, threshold_levels};

/// Budget's defaults on top of the platform's.
pub const DEFAULTS: &str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_budget"

[budget]
threshold_percents = [50, 75, 90, 100]
accounts = ["2650.76", "605.01"]
"#;

/// Keys whose environment value is a comma-separated list.
pub const LIST_KEYS: &[&str] = &["budget.threshold_percents", "budget.accounts"];

/// Budget's own configuration sections.
#[derive(Debug, Clone, Deserialize)]
pub struct BudgetSettings {
    /// The `[budget]` section.
    pub budget: BudgetSection,
}

/// The `[budget]` section, as configured.
#[derive(Debug, Clone, Deserialize)]
pub struct BudgetSection {
    /// Alert levels in percent of an appropriation, used when SetAppropriation names none.
    pub threshold_percents: Vec<i32>,
    /// The accounts (`CHAPTER.POST`) appropriations and funds requests may name.
    pub accounts: Vec<Account>,
}

/// The configuration as the service uses it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetPolicy {
    /// Known accounts, in configured order.
    pub accounts: Vec<Account>,
    /// Default alert levels, ascending.
    pub default_thresholds: Vec<i32>,
}

impl BudgetPolicy {
    /// Whether `account` is one of the configured accounts.
    pub fn knows(&self, account: Account) -> bool {
        self.accounts.contains(&account)
    }

    /// The configured accounts, for messages: `2650.76, 605.01`.
    pub fn account_list(&self) -> String {
        self.accounts
            .iter()
            .map(Account::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl BudgetSettings {
    /// The checked policy; a bad value names its key.
    pub fn policy(&self) -> Result<BudgetPolicy, ConfigError> {
        let thresholds = &self.budget.threshold_percents;
        let default_thresholds = threshold_levels(thresholds).map_err(|error| {
            ConfigError::invalid("budget.threshold_percents", error.to_string())
        })?;
        if default_thresholds.is_empty() {
            return Err(ConfigError::invalid(
                "budget.threshold_percents",
                "must name at least one level",
            ));
        }
        let mut accounts = Vec::new();
        for &account in &self.budget.accounts {
            if accounts.contains(&account) {
                return Err(ConfigError::invalid(
                    "budget.accounts",
                    format!("{account} is given twice"),
                ));
            }
            accounts.push(account);
        }
        if accounts.is_empty() {
            return Err(ConfigError::invalid(
                "budget.accounts",
                "must name at least one account",
            ));
        }
        Ok(BudgetPolicy {
            accounts,
            default_thresholds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ekb_platform::{config::ServiceConfig, service};

    use crate::Budget;

    fn load_with(overrides: &[(&str, &str)]) -> Result<ServiceConfig<BudgetSettings>, ConfigError> {
        let loader = overrides.iter().fold(
            service::config_loader::<Budget>().with_override("auth.mode", "disabled"),
            |loader, (key, value)| loader.with_override(key, *value),
        );
        service::load_config::<Budget>(&loader)
    }

    #[test]
    fn the_defaults_are_the_scheme_and_administration_accounts_and_four_levels() {
        let policy = load_with(&[])
            .expect("defaults load")
            .settings
            .policy()
            .expect("valid");
        assert_eq!(policy.default_thresholds, [50, 75, 90, 100]);
        assert_eq!(policy.account_list(), "2650.76, 605.01");
        assert!(policy.knows(Account::SCHEME));
    }

    #[test]
    fn lists_come_from_comma_separated_values() {
        let policy = load_with(&[
            ("budget.threshold_percents", "95,80"),
            ("budget.accounts", "2650.76"),
        ])
        .expect("valid")
        .settings
        .policy()
        .expect("valid policy");
        assert_eq!(policy.default_thresholds, [80, 95]);
        assert_eq!(policy.accounts, [Account::SCHEME]);
    }

    #[test]
    fn bad_values_and_misspelt_keys_name_the_key() {
        for (key, value) in [
            ("budget.threshold_percents", "50,150"),
            ("budget.threshold_percents", "50,50"),
            ("budget.accounts", "2650-76"),
            ("budget.accounts", "2650.76,2650.76"),
        ] {
            let text = load_with(&[(key, value)]).expect_err("refused").to_string();
            assert!(text.contains(key), "{text}");
        }
        let text = load_with(&[("budget.treshold_percents", "50")])
            .expect_err("a typo must not fall back to the default")
            .to_string();
        assert!(text.contains("EKB__BUDGET__TRESHOLD_PERCENTS"), "{text}");
    }
}
