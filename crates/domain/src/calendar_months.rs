//! A length in calendar months, as configuration writes it (`"6 months"`, `"15 months"`,
//! `"10 years"`): where months matter — a refund deadline six months after the start, personal
//! data kept fifteen months, records ten years (§ 5) — a month is a calendar month, not 30 days,
//! so 31 August plus six months is 28 February (or 29 in a leap year).

use std::{fmt, str::FromStr};

use thiserror::Error;
use time::{Date, Month};

use crate::serde_str::serde_via_str;

/// A whole number of calendar months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CalendarMonths(u32);

/// The text is not `<n> month(s)` or `<n> year(s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("must be a whole number of months or years, e.g. \"6 months\" or \"10 years\"")]
pub struct NotCalendarMonths;

impl CalendarMonths {
    /// `months` calendar months.
    pub const fn new(months: u32) -> Self {
        CalendarMonths(months)
    }

    /// `years` calendar years.
    pub const fn years(years: u32) -> Self {
        CalendarMonths(years * 12)
    }

    /// How many months.
    pub const fn months(self) -> u32 {
        self.0
    }

    /// `date` plus these months, clamped to the last day of the target month.
    pub fn after(self, date: Date) -> Date {
        let total =
            i64::from(date.year()) * 12 + i64::from(u8::from(date.month()) - 1) + i64::from(self.0);
        let year = i32::try_from(total.div_euclid(12)).unwrap_or(date.year());
        let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(1))
            .unwrap_or(Month::January);
        let day = date.day().min(time::util::days_in_month(month, year));
        Date::from_calendar_date(year, month, day).unwrap_or(date)
    }

    /// `date` minus these months, clamped to the last day of the target month.
    pub fn before(self, date: Date) -> Date {
        let total =
            i64::from(date.year()) * 12 + i64::from(u8::from(date.month()) - 1) - i64::from(self.0);
        let year = i32::try_from(total.div_euclid(12)).unwrap_or(date.year());
        let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(1))
            .unwrap_or(Month::January);
        let day = date.day().min(time::util::days_in_month(month, year));
        Date::from_calendar_date(year, month, day).unwrap_or(date)
    }
}

impl FromStr for CalendarMonths {
    type Err = NotCalendarMonths;

    fn from_str(text: &str) -> Result<Self, NotCalendarMonths> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or(NotCalendarMonths)?;
        let (number, unit) = text.split_at(split);
        let number: u32 = number.parse().map_err(|_| NotCalendarMonths)?;
        match unit.trim() {
            "month" | "months" => Ok(CalendarMonths(number)),
            "year" | "years" => number
                .checked_mul(12)
                .map(CalendarMonths)
                .ok_or(NotCalendarMonths),
            _ => Err(NotCalendarMonths),
        }
    }
}

impl fmt::Display for CalendarMonths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(12) && self.0 > 0 {
            write!(f, "{} years", self.0 / 12)
        } else {
            write!(f, "{} months", self.0)
        }
    }
}

serde_via_str!(CalendarMonths);

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::serde_str::testing::from_str;

    #[test]
    fn months_and_years_are_read_as_people_write_them() {
        assert_eq!("6 months".parse(), Ok(CalendarMonths::new(6)));
        assert_eq!("1 month".parse(), Ok(CalendarMonths::new(1)));
        assert_eq!("10 years".parse(), Ok(CalendarMonths::years(10)));
        assert_eq!("15months".parse(), Ok(CalendarMonths::new(15)));
        assert_eq!("15 days".parse::<CalendarMonths>(), Err(NotCalendarMonths));
        assert_eq!("months".parse::<CalendarMonths>(), Err(NotCalendarMonths));
        assert_eq!(
            from_str::<CalendarMonths>("10 years").ok(),
            Some(CalendarMonths::years(10))
        );
        assert_eq!(CalendarMonths::years(10).to_string(), "10 years");
        assert_eq!(CalendarMonths::new(15).to_string(), "15 months");
    }

    #[test]
    fn a_calendar_month_is_clamped_to_the_month_end() {
        let six = CalendarMonths::new(6);
        assert_eq!(six.after(date!(2027 - 08 - 31)), date!(2028 - 02 - 29));
        assert_eq!(six.after(date!(2026 - 08 - 31)), date!(2027 - 02 - 28));
        assert_eq!(six.before(date!(2027 - 08 - 31)), date!(2027 - 02 - 28));
        assert_eq!(
            CalendarMonths::years(10).before(date!(2036 - 02 - 29)),
            date!(2026 - 02 - 28)
        );
    }
}
