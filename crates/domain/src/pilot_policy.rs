//! Where and when the § 9a pilot applies: a set of pilot counties and a list of pilot periods.
//!
//! Both are configuration. If the pilot is extended in time or nationally, operations change
//! the values, not the code. An empty county list (or an empty period list) means the pilot is
//! off: every case then goes to the regular flow.

use std::collections::BTreeSet;

use time::Date;
use time::macros::date;

use crate::{CountyCode, DateRange, DomainError, PolicyConfigError};

/// Configuration key for the pilot counties, used in error messages.
const COUNTIES_KEY: &str = "pilot.counties";
/// Configuration key for the pilot periods, used in error messages.
const PERIODS_KEY: &str = "pilot.periods";

/// The pilot's counties and periods. Default: Innlandet (34), 2022-03-25 (§ 9a in force) to
/// 2028-12-31 (the regulation's end, § 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PilotPolicy {
    counties: BTreeSet<CountyCode>,
    periods: Vec<DateRange>,
}

impl PilotPolicy {
    /// A policy from already validated counties and periods. Empty means the pilot is off.
    pub fn new(
        counties: impl IntoIterator<Item = CountyCode>,
        periods: impl IntoIterator<Item = DateRange>,
    ) -> Self {
        Self {
            counties: counties.into_iter().collect(),
            periods: periods.into_iter().collect(),
        }
    }

    /// A policy from configuration strings: counties like `"34"`, periods like
    /// `"2022-03-25/2028-12-31"`. Surrounding whitespace of an entry is ignored. A county must
    /// be one of the 2024 county structure, so a typo cannot silently switch the pilot off.
    /// Empty lists are allowed and mean the pilot is off.
    pub fn from_config(counties: &[String], periods: &[String]) -> Result<Self, PolicyConfigError> {
        let counties = counties
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                parse_pilot_county(raw.trim())
                    .map_err(|rule| PolicyConfigError::entry(COUNTIES_KEY, index, raw, rule))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let periods = periods
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                DateRange::parse_iso(raw.trim())
                    .map_err(|rule| PolicyConfigError::entry(PERIODS_KEY, index, raw, rule))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { counties, periods })
    }

    /// True if `county` takes part in the pilot.
    pub fn is_pilot_county(&self, county: &CountyCode) -> bool {
        self.counties.contains(county)
    }

    /// True if `date` lies inside any pilot period.
    pub fn is_in_period(&self, date: Date) -> bool {
        self.periods.iter().any(|period| period.contains(date))
    }

    /// True if the pilot has at least one county and one period.
    pub fn is_active_anywhere(&self) -> bool {
        !self.counties.is_empty() && !self.periods.is_empty()
    }

    /// The pilot counties, in code order.
    pub fn counties(&self) -> &BTreeSet<CountyCode> {
        &self.counties
    }

    /// The pilot periods, in configuration order.
    pub fn periods(&self) -> &[DateRange] {
        &self.periods
    }
}

impl Default for PilotPolicy {
    fn default() -> Self {
        Self::new(
            [CountyCode::INNLANDET],
            [DateRange::ordered(
                date!(2022 - 03 - 25),
                date!(2028 - 12 - 31),
            )],
        )
    }
}

/// A well-formed county code that exists in the 2024 county structure.
fn parse_pilot_county(raw: &str) -> Result<CountyCode, DomainError> {
    let county = CountyCode::parse(raw)?;
    county
        .name()
        .map(|_| county)
        .ok_or(DomainError::UnknownCounty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn default_is_innlandet_from_9a_in_force_to_the_regulations_end() {
        let policy = PilotPolicy::default();
        assert_eq!(
            policy.counties().iter().collect::<Vec<_>>(),
            [&CountyCode::INNLANDET]
        );
        assert_eq!(policy.periods().len(), 1);
        assert_eq!(policy.periods()[0].to_string(), "2022-03-25/2028-12-31");
        assert!(policy.is_pilot_county(&CountyCode::INNLANDET));
        assert!(!policy.is_pilot_county(&CountyCode::parse("03").expect("valid")));
        assert!(policy.is_in_period(date!(2022 - 03 - 25)));
        assert!(policy.is_in_period(date!(2028 - 12 - 31)));
        assert!(!policy.is_in_period(date!(2022 - 03 - 24)));
        assert!(!policy.is_in_period(date!(2029 - 01 - 01)));
        assert!(policy.is_active_anywhere());
    }

    #[test]
    fn from_config_reads_counties_and_periods() {
        let policy = PilotPolicy::from_config(
            &strings(&["34", " 03 ", "34"]),
            &strings(&["2022-01-01/2022-12-31", "2024-01-01/2024-12-31"]),
        )
        .expect("valid");
        assert_eq!(policy.counties().len(), 2);
        assert!(policy.is_pilot_county(&CountyCode::parse("03").expect("valid")));
        assert!(policy.is_in_period(date!(2022 - 06 - 01)));
        assert!(!policy.is_in_period(date!(2023 - 06 - 01)));
        assert!(policy.is_in_period(date!(2024 - 06 - 01)));
    }

    #[test]
    fn from_config_names_the_bad_period() {
        let err = PilotPolicy::from_config(
            &strings(&["34"]),
            &strings(&["2022-01-01/2022-12-31", "2022-13-01/2026-12-31"]),
        )
        .expect_err("bad month");
        assert_eq!(err.key, "pilot.periods[1]");
        assert_eq!(err.rule, DomainError::InvalidDate);
        assert_eq!(
            err.to_string(),
            "pilot.periods[1] '2022-13-01/2026-12-31': must be a valid calendar date"
        );
        let err = PilotPolicy::from_config(&[], &strings(&["2026-12-31/2022-01-01"]))
            .expect_err("reversed");
        assert_eq!(err.rule, DomainError::InvalidDateRange);
    }

    #[test]
    fn from_config_names_the_bad_county() {
        let err = PilotPolicy::from_config(&strings(&["34", "3x"]), &[]).expect_err("bad");
        assert_eq!(err.key, "pilot.counties[1]");
        assert_eq!(err.rule, DomainError::NotDigits);
        let err = PilotPolicy::from_config(&strings(&["05"]), &[]).expect_err("historic");
        assert_eq!(err.rule, DomainError::UnknownCounty);
        assert_eq!(
            err.to_string(),
            "pilot.counties[0] '05': must be a county in the 2024 county structure"
        );
    }

    #[test]
    fn empty_configuration_switches_the_pilot_off() {
        let policy = PilotPolicy::from_config(&[], &strings(&["2022-01-01/2026-12-31"]))
            .expect("empty counties are allowed");
        assert!(!policy.is_active_anywhere());
        assert!(!policy.is_pilot_county(&CountyCode::INNLANDET));
        let policy = PilotPolicy::from_config(&strings(&["34"]), &[]).expect("allowed");
        assert!(!policy.is_active_anywhere());
        assert!(!policy.is_in_period(date!(2024 - 01 - 01)));
    }

    #[test]
    fn new_accepts_any_collections() {
        let period = DateRange::parse_iso("2022-01-01/2022-12-31").expect("valid");
        let policy = PilotPolicy::new(vec![CountyCode::INNLANDET], vec![period]);
        assert!(policy.is_pilot_county(&CountyCode::INNLANDET));
        assert_eq!(policy.periods(), [period]);
    }
}
