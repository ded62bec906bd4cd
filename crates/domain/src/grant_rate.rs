//! The maximum grant per case (maksimalsats), which changes by year.
//!
//! A grant (tilsagn) in the regular flow may not exceed the rate for its year. The rates are
//! configuration; the default table holds the known values and one assumption (see
//! [`MaxRateTable::default`]).

use std::collections::BTreeMap;

use crate::{DomainError, Money, PolicyConfigError};

/// Configuration key for the rate entries, used in error messages.
const RATES_KEY: &str = "grant.max_rates";
/// The accepted shape of one rate entry.
const ENTRY_SHAPE: &str = "YEAR=ØRE, e.g. 2024=2400000";

/// Maximum grant per case, keyed by calendar year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxRateTable(BTreeMap<i32, Money>);

impl MaxRateTable {
    /// A table from `(year, øre)` pairs. Every rate must be positive, no year may repeat and
    /// the table must not be empty.
    pub fn from_config(entries: &[(i32, i64)]) -> Result<Self, DomainError> {
        if entries.is_empty() {
            return Err(DomainError::Empty);
        }
        let mut rates = BTreeMap::new();
        for &(year, ore) in entries {
            let rate = Money::from_ore(ore).require_positive()?;
            if rates.insert(year, rate).is_some() {
                return Err(DomainError::DuplicateYear(year));
            }
        }
        Ok(Self(rates))
    }

    /// A table from entries like `"2023=2230000"` (year = øre), as written in configuration
    /// under `grant.max_rates`. Errors name the bad entry.
    pub fn parse_config(entries: &[String]) -> Result<Self, PolicyConfigError> {
        if entries.is_empty() {
            return Err(PolicyConfigError::list(RATES_KEY, DomainError::Empty));
        }
        let mut rates = BTreeMap::new();
        for (index, raw) in entries.iter().enumerate() {
            let at = |rule| PolicyConfigError::entry(RATES_KEY, index, raw, rule);
            let (year, rate) = parse_entry(raw.trim()).map_err(at)?;
            if rates.insert(year, rate).is_some() {
                return Err(at(DomainError::DuplicateYear(year)));
            }
        }
        Ok(Self(rates))
    }

    /// The maximum grant for `year`, or `None` if the year is not configured.
    pub fn max_rate_for(&self, year: i32) -> Option<Money> {
        self.0.get(&year).copied()
    }

    /// Every configured `(year, rate)`, in year order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, Money)> + '_ {
        self.0.iter().map(|(&year, &rate)| (year, rate))
    }
}

/// Parses one `YEAR=ØRE` entry.
fn parse_entry(entry: &str) -> Result<(i32, Money), DomainError> {
    let malformed = DomainError::Malformed {
        expected: ENTRY_SHAPE,
    };
    let (year, ore) = entry.split_once('=').ok_or(malformed.clone())?;
    let year: i32 = year.trim().parse().map_err(|_| malformed.clone())?;
    let ore: i64 = ore.trim().parse().map_err(|_| malformed)?;
    Ok((year, Money::from_ore(ore).require_positive()?))
}

impl Default for MaxRateTable {
    /// 2023: 22 300 kr; 2024 and 2025: 24 000 kr; 2026: 24 000 kr. The 2026 figure is an
    /// assumption (last known rate carried forward) until configuration confirms it.
    fn default() -> Self {
        Self(BTreeMap::from([
            (2023, Money::from_ore(2_230_000)),
            (2024, Money::from_ore(2_400_000)),
            (2025, Money::from_ore(2_400_000)),
            (2026, Money::from_ore(2_400_000)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn default_rates() {
        let table = MaxRateTable::default();
        assert_eq!(table.max_rate_for(2023), Some(Money::from_ore(2_230_000)));
        assert_eq!(table.max_rate_for(2024), Some(Money::from_ore(2_400_000)));
        assert_eq!(table.max_rate_for(2025), Some(Money::from_ore(2_400_000)));
        assert_eq!(table.max_rate_for(2026), Some(Money::from_ore(2_400_000)));
        assert_eq!(table.max_rate_for(2022), None);
        assert_eq!(table.max_rate_for(2027), None);
        assert_eq!(table.iter().count(), 4);
    }

    #[test]
    fn from_config_builds_the_table() {
        let table =
            MaxRateTable::from_config(&[(2024, 2_400_000), (2023, 2_230_000)]).expect("valid");
        assert_eq!(table.max_rate_for(2023), Some(Money::from_ore(2_230_000)));
        assert_eq!(
            table.iter().map(|(year, _)| year).collect::<Vec<_>>(),
            [2023, 2024]
        );
    }

    #[test]
    fn from_config_rejects_bad_tables() {
        assert_eq!(MaxRateTable::from_config(&[]), Err(DomainError::Empty));
        assert_eq!(
            MaxRateTable::from_config(&[(2024, 0)]),
            Err(DomainError::NotPositive)
        );
        assert_eq!(
            MaxRateTable::from_config(&[(2024, -1)]),
            Err(DomainError::NotPositive)
        );
        assert_eq!(
            MaxRateTable::from_config(&[(2024, 1), (2024, 2)]),
            Err(DomainError::DuplicateYear(2024))
        );
    }

    #[test]
    fn parse_config_reads_year_equals_ore() {
        let table = MaxRateTable::parse_config(&strings(&["2023=2230000", " 2024 = 2400000 "]))
            .expect("valid");
        assert_eq!(table.max_rate_for(2023), Some(Money::from_ore(2_230_000)));
        assert_eq!(table.max_rate_for(2024), Some(Money::from_ore(2_400_000)));
    }

    #[test]
    fn parse_config_names_the_bad_entry() {
        let err = MaxRateTable::parse_config(&strings(&["2023=2230000", "2024:2400000"]))
            .expect_err("malformed");
        assert_eq!(err.key, "grant.max_rates[1]");
        assert_eq!(
            err.to_string(),
            "grant.max_rates[1] '2024:2400000': must have the form YEAR=ØRE, e.g. 2024=2400000"
        );
        let err = MaxRateTable::parse_config(&strings(&["2024=0"])).expect_err("zero");
        assert_eq!(err.rule, DomainError::NotPositive);
        let err = MaxRateTable::parse_config(&strings(&["2024=1", "2024=2"])).expect_err("dup");
        assert_eq!(err.key, "grant.max_rates[1]");
        assert_eq!(err.rule, DomainError::DuplicateYear(2024));
        let err = MaxRateTable::parse_config(&strings(&["2024=24 000"])).expect_err("spaces");
        assert!(matches!(err.rule, DomainError::Malformed { .. }));
        let err = MaxRateTable::parse_config(&[]).expect_err("empty");
        assert_eq!(err.to_string(), "grant.max_rates: must not be empty");
    }
}
