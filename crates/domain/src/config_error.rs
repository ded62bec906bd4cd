//! The error for a bad configuration entry, naming exactly which entry broke which rule.
//!
//! Services validate configuration at start-up and fail fast; the operator must see the key,
//! the index and the value that was wrong, not just "invalid config".

use std::fmt;

use thiserror::Error;

use crate::DomainError;

/// A configuration entry broke a rule, e.g.
/// `pilot.periods[1] '2022-13-01/2026-12-31': must be a valid calendar date`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct PolicyConfigError {
    /// The configuration key with the entry's index, e.g. `pilot.periods[1]`.
    pub key: String,
    /// The entry as it was given; `None` when the whole list is wrong.
    pub value: Option<String>,
    /// The rule the entry broke.
    #[source]
    pub rule: DomainError,
}

impl PolicyConfigError {
    /// An error for entry `index` of list `list` (e.g. `pilot.counties`).
    pub fn entry(list: &str, index: usize, value: &str, rule: DomainError) -> Self {
        Self {
            key: format!("{list}[{index}]"),
            value: Some(value.to_owned()),
            rule,
        }
    }

    /// An error for a whole list (e.g. an empty one).
    pub fn list(list: &str, rule: DomainError) -> Self {
        Self {
            key: list.to_owned(),
            value: None,
            rule,
        }
    }
}

impl fmt::Display for PolicyConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} '{}': {}", self.key, value, self.rule),
            None => write!(f, "{}: {}", self.key, self.rule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_key_index_value_and_rule() {
        let err = PolicyConfigError::entry(
            "pilot.periods",
            1,
            "2022-13-01/2026-12-31",
            DomainError::InvalidDate,
        );
        assert_eq!(
            err.to_string(),
            "pilot.periods[1] '2022-13-01/2026-12-31': must be a valid calendar date"
        );
    }

    #[test]
    fn whole_list_errors_name_the_list() {
        let err = PolicyConfigError::list("grant.max_rates", DomainError::Empty);
        assert_eq!(err.to_string(), "grant.max_rates: must not be empty");
    }
}
