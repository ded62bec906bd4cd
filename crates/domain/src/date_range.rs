//! Inclusive date ranges and strict ISO date parsing.
//!
//! Pilot periods and agreement validity are ranges of whole days where both ends count; the
//! configuration writes them as `2022-01-01/2026-12-31` (ISO 8601 interval notation).

use std::fmt;
use std::str::FromStr;

use time::{Date, Month};

use crate::DomainError;

/// The accepted shape of a date.
const DATE_SHAPE: &str = "YYYY-MM-DD";
/// The accepted shape of a date range.
const RANGE_SHAPE: &str = "YYYY-MM-DD/YYYY-MM-DD";

/// Days from `from` to `to`, both included; `from` is never after `to`.
/// Displays and serializes as `YYYY-MM-DD/YYYY-MM-DD`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct DateRange {
    from: Date,
    to: Date,
}

impl DateRange {
    /// A range from `from` to `to` inclusive; fails if `from` is after `to`.
    pub fn new(from: Date, to: Date) -> Result<Self, DomainError> {
        if from > to {
            return Err(DomainError::InvalidDateRange);
        }
        Ok(Self { from, to })
    }

    /// Builds a range whose order the caller has already guaranteed (for constants).
    pub(crate) const fn ordered(from: Date, to: Date) -> Self {
        Self { from, to }
    }

    /// Parses `YYYY-MM-DD/YYYY-MM-DD`.
    pub fn parse_iso(input: &str) -> Result<Self, DomainError> {
        let (from, to) = input.split_once('/').ok_or(DomainError::Malformed {
            expected: RANGE_SHAPE,
        })?;
        Self::new(parse_iso_date(from)?, parse_iso_date(to)?)
    }

    /// The first day of the range.
    pub const fn from(&self) -> Date {
        self.from
    }

    /// The last day of the range.
    pub const fn to(&self) -> Date {
        self.to
    }

    /// True if `date` lies in the range, ends included.
    pub fn contains(&self, date: Date) -> bool {
        self.from <= date && date <= self.to
    }

    /// True if the two ranges share at least one day.
    pub fn overlaps(&self, other: &DateRange) -> bool {
        self.from <= other.to && other.from <= self.to
    }
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", IsoDate(self.from), IsoDate(self.to))
    }
}

impl FromStr for DateRange {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_iso(s)
    }
}

crate::serde_str::serde_via_str!(DateRange);

/// Formats a date as `YYYY-MM-DD`.
struct IsoDate(Date);

impl fmt::Display for IsoDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        )
    }
}

/// Parses a calendar date written exactly as `YYYY-MM-DD` (no time, no offset, no spaces).
pub fn parse_iso_date(input: &str) -> Result<Date, DomainError> {
    let malformed = DomainError::Malformed {
        expected: DATE_SHAPE,
    };
    let bytes = input.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, &byte)| match index {
            4 | 7 => byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if !shaped {
        return Err(malformed);
    }
    let number = |range: std::ops::Range<usize>| {
        bytes[range]
            .iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
    };
    let year = i32::try_from(number(0..4)).map_err(|_| DomainError::InvalidDate)?;
    let month = u8::try_from(number(5..7))
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or(DomainError::InvalidDate)?;
    let day = u8::try_from(number(8..10)).map_err(|_| DomainError::InvalidDate)?;
    Date::from_calendar_date(year, month, day).map_err(|_| DomainError::InvalidDate)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::serde_str::testing;

    #[test]
    fn parses_strict_iso_dates() {
        assert_eq!(parse_iso_date("2022-01-01"), Ok(date!(2022 - 01 - 01)));
        assert_eq!(parse_iso_date("2024-02-29"), Ok(date!(2024 - 02 - 29)));
        assert_eq!(parse_iso_date("0001-12-31"), Ok(date!(0001 - 12 - 31)));
    }

    #[test]
    fn rejects_impossible_dates() {
        for input in [
            "2022-13-01",
            "2022-00-10",
            "2022-02-30",
            "2023-02-29",
            "2022-01-00",
        ] {
            assert_eq!(
                parse_iso_date(input),
                Err(DomainError::InvalidDate),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_other_shapes() {
        let malformed = Err(DomainError::Malformed {
            expected: "YYYY-MM-DD",
        });
        for input in [
            "",
            "2022-1-01",
            "2022/01/01",
            " 2022-01-01",
            "2022-01-01 ",
            "2022-01-01T00:00",
            "22-01-01",
            "+2022-01-01",
            "2022-0a-01",
        ] {
            assert_eq!(parse_iso_date(input), malformed, "{input:?}");
        }
    }

    #[test]
    fn range_requires_order() {
        let a = date!(2022 - 01 - 01);
        let b = date!(2026 - 12 - 31);
        assert!(DateRange::new(a, b).is_ok());
        assert!(DateRange::new(a, a).is_ok());
        assert_eq!(DateRange::new(b, a), Err(DomainError::InvalidDateRange));
    }

    #[test]
    fn contains_both_ends() {
        let range = DateRange::parse_iso("2022-01-01/2026-12-31").expect("valid");
        assert_eq!(range.from(), date!(2022 - 01 - 01));
        assert_eq!(range.to(), date!(2026 - 12 - 31));
        assert!(range.contains(date!(2022 - 01 - 01)));
        assert!(range.contains(date!(2024 - 06 - 15)));
        assert!(range.contains(date!(2026 - 12 - 31)));
        assert!(!range.contains(date!(2021 - 12 - 31)));
        assert!(!range.contains(date!(2027 - 01 - 01)));
    }

    #[test]
    fn overlap_is_inclusive_and_symmetric() {
        let range = |text: &str| DateRange::parse_iso(text).expect("valid");
        let a = range("2022-01-01/2022-12-31");
        let touching = range("2022-12-31/2023-06-30");
        let after = range("2023-01-01/2023-12-31");
        let inside = range("2022-03-01/2022-03-31");
        assert!(a.overlaps(&touching) && touching.overlaps(&a));
        assert!(!a.overlaps(&after) && !after.overlaps(&a));
        assert!(a.overlaps(&inside) && inside.overlaps(&a));
    }

    #[test]
    fn range_parse_errors() {
        assert_eq!(
            DateRange::parse_iso("2022-01-01"),
            Err(DomainError::Malformed {
                expected: "YYYY-MM-DD/YYYY-MM-DD"
            })
        );
        assert_eq!(
            DateRange::parse_iso("2022-13-01/2026-12-31"),
            Err(DomainError::InvalidDate)
        );
        assert_eq!(
            DateRange::parse_iso("2026-12-31/2022-01-01"),
            Err(DomainError::InvalidDateRange)
        );
        assert!(DateRange::parse_iso("2022-01-01/2026-12-31/2027-01-01").is_err());
    }

    #[test]
    fn display_and_serde_round_trip() {
        let text = "2022-01-01/2026-12-31";
        let range = DateRange::parse_iso(text).expect("valid");
        assert_eq!(range.to_string(), text);
        let via_serde: DateRange = testing::from_str(text).expect("valid");
        assert_eq!(via_serde, range);
    }
}
