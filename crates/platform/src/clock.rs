//! Where "now" comes from.
//!
//! Deadlines, expiry and retention jobs, resends and sweeps all depend on the time; their tests
//! must cross midnight in Oslo, a DST switch and the year boundary without waiting. So services
//! never call `OffsetDateTime::now_utc()` in domain code: they ask a [`Clock`], which is the
//! [`SystemClock`] in production and a [`ManualClock`] that tests set and advance.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use time::{Duration, OffsetDateTime};

/// A source of the current instant.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant, in UTC, to the microsecond (what PostgreSQL stores).
    fn now(&self) -> OffsetDateTime;
}

/// A clock shared by a service's handlers and jobs.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        to_micros(OffsetDateTime::now_utc())
    }
}

/// A clock that stands still until a test sets or advances it. Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(to_micros(at))),
        }
    }

    /// Sets the time to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        if let Ok(mut now) = self.now.lock() {
            *now = to_micros(at);
        }
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.now.lock() {
            *now = to_micros(*now + by);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.now
            .lock()
            .map(|now| *now)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// A clock that runs at the system clock's pace from another starting instant: what a service
/// runs on when configured with `clock.start` (a development run or a simulation on a chosen
/// day; never production, see [`crate::config::ClockConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    offset: Duration,
}

impl OffsetClock {
    /// A clock that shows `start` now and then runs on.
    pub fn starting_at(start: OffsetDateTime) -> Self {
        OffsetClock {
            offset: start - OffsetDateTime::now_utc(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> OffsetDateTime {
        to_micros(OffsetDateTime::now_utc() + self.offset)
    }
}

/// `at` cut to whole microseconds, so what a service returns equals what it stored.
fn to_micros(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or(at)
}

#[cfg(test)]
mod offset_tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn an_offset_clock_starts_at_its_start_and_runs_on() {
        let clock = OffsetClock::starting_at(datetime!(2028-12-31 09:00 UTC));
        let first = clock.now();
        assert!((first - datetime!(2028-12-31 09:00 UTC)).abs() < Duration::seconds(5));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(clock.now() > first);
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new(datetime!(2026-12-31 22:59:59.123456789 UTC));
        let shared: SharedClock = Arc::new(clock.clone());
        assert_eq!(shared.now(), datetime!(2026-12-31 22:59:59.123456 UTC));
        clock.advance(Duration::hours(1));
        assert_eq!(shared.now(), datetime!(2026-12-31 23:59:59.123456 UTC));
        clock.set(datetime!(2027-01-01 00:00 UTC));
        assert_eq!(shared.now(), datetime!(2027-01-01 00:00 UTC));
    }

    #[test]
    fn the_system_clock_has_no_nanoseconds_beyond_micros() {
        assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
    }
}
