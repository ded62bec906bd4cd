//! The Norwegian calendar: which date (and month, and budget year) an instant falls on in
//! Europe/Oslo.
//!
//! Deadlines, "today or later", capacity months and budget years are Norwegian calendar facts,
//! while the services keep instants in UTC. Norway follows the EU rule (since 1996): UTC+1, and
//! UTC+2 from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October.
//! The rule is small, fixed by law and tested at both switches, so it is written here instead
//! of shipping a time-zone database for one zone.

use time::{Date, Duration, Month, OffsetDateTime, Time, UtcOffset, Weekday};

/// Oslo's offset from UTC at the instant `at`: +1 in winter, +2 in summer.
pub fn oslo_offset(at: OffsetDateTime) -> UtcOffset {
    let utc = at.to_offset(UtcOffset::UTC);
    let switch = |month| {
        last_sunday(utc.year(), month)
            .with_time(Time::from_hms(1, 0, 0).unwrap_or(Time::MIDNIGHT))
            .assume_utc()
    };
    let hours = if utc >= switch(Month::March) && utc < switch(Month::October) {
        2
    } else {
        1
    };
    UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC)
}

/// The calendar date of `at` in Oslo.
pub fn oslo_date(at: OffsetDateTime) -> Date {
    at.to_offset(oslo_offset(at)).date()
}

/// The instant Oslo's day `date` begins (00:00 local time).
pub fn oslo_start_of_day(date: Date) -> OffsetDateTime {
    // The offset at local midnight equals the offset at 00:00 UTC of that date: both switches
    // happen at 01:00 UTC, which is after local midnight on either side.
    let utc_midnight = date.with_time(Time::MIDNIGHT).assume_utc();
    let offset = oslo_offset(utc_midnight);
    utc_midnight - Duration::seconds(i64::from(offset.whole_seconds()))
}

/// The first day of the month `date` lies in.
pub fn month_start(date: Date) -> Date {
    date.replace_day(1).unwrap_or(date)
}

/// The last Sunday of `month` in `year`.
fn last_sunday(year: i32, month: Month) -> Date {
    let last_day = time::util::days_in_month(month, year);
    let mut day = Date::from_calendar_date(year, month, last_day).unwrap_or(Date::MIN);
    while day.weekday() != Weekday::Sunday {
        day = day.previous_day().unwrap_or(Date::MIN);
    }
    day
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn late_evening_utc_is_already_the_next_day_in_oslo() {
        assert_eq!(
            oslo_date(datetime!(2026-12-31 23:30 UTC)),
            date!(2027 - 01 - 01)
        );
        assert_eq!(
            oslo_date(datetime!(2026-06-30 21:59 UTC)),
            date!(2026 - 06 - 30)
        );
        assert_eq!(
            oslo_date(datetime!(2026-06-30 22:00 UTC)),
            date!(2026 - 07 - 01)
        );
    }

    #[test]
    fn the_offset_switches_at_one_utc_on_the_last_sundays_of_march_and_october() {
        // 2026: 29 March and 25 October.
        assert_eq!(
            oslo_offset(datetime!(2026-03-29 00:59 UTC)).whole_hours(),
            1
        );
        assert_eq!(
            oslo_offset(datetime!(2026-03-29 01:00 UTC)).whole_hours(),
            2
        );
        assert_eq!(
            oslo_offset(datetime!(2026-10-25 00:59 UTC)).whole_hours(),
            2
        );
        assert_eq!(
            oslo_offset(datetime!(2026-10-25 01:00 UTC)).whole_hours(),
            1
        );
    }

    #[test]
    fn a_day_starts_at_local_midnight_in_winter_and_summer() {
        assert_eq!(
            oslo_start_of_day(date!(2026 - 01 - 15)),
            datetime!(2026-01-14 23:00 UTC)
        );
        assert_eq!(
            oslo_start_of_day(date!(2026 - 07 - 15)),
            datetime!(2026-07-14 22:00 UTC)
        );
        // The days of the switches themselves.
        assert_eq!(
            oslo_start_of_day(date!(2026 - 03 - 29)),
            datetime!(2026-03-28 23:00 UTC)
        );
        assert_eq!(
            oslo_start_of_day(date!(2026 - 10 - 25)),
            datetime!(2026-10-24 22:00 UTC)
        );
        assert_eq!(month_start(date!(2026 - 02 - 28)), date!(2026 - 02 - 01));
    }
}
