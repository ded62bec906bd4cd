//! Where "now" comes from.
//!
//! Deadlines, expiry and retention jobs, resends and sweeps all depend on the time; their tests
//! must cross midnight in Oslo, a DST switch and the year boundary without waiting. So services
//! never call `OffsetDateTime::now_utc()` in domain code: they ask a [`Clock`], which is the
//! [`SystemClock`] in production, a [`ManualClock`] that tests set and advance, an
//! [`OffsetClock`] for a development run on another day, and a [`FileClock`] that a simulation
//! moves for every service at once ([`ClockFile`]).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context;
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

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

/// A clock that shows what a clock file says: the simulator's shared time (ADR 0031). Every
/// service of a simulation reads the same file, so one write moves the whole system's "now" —
/// RPC validation, stored timestamps, deadlines, jobs and event times alike. The file is read on
/// every call (a few microseconds; the simulator's next call must see the new day), and the time
/// never goes back within a process: a read that fails or shows an earlier instant keeps the
/// last one.
#[derive(Debug)]
pub struct FileClock {
    path: PathBuf,
    last: Mutex<OffsetDateTime>,
}

impl FileClock {
    /// A clock reading `path`, which must hold an instant already.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let now = read_instant(path)?;
        Ok(FileClock {
            path: path.to_owned(),
            last: Mutex::new(now),
        })
    }
}

impl Clock for FileClock {
    fn now(&self) -> OffsetDateTime {
        let read = read_instant(&self.path);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match read {
            Ok(at) if at > *last => *last = at,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "clock file unreadable; time stands still")
            }
        }
        *last
    }
}

/// The simulator's side of a [`FileClock`]: sets the instant every service of the simulation
/// reads. A write is a new file renamed over the old one, so a reader sees the old instant or
/// the new one, never half of either.
#[derive(Debug, Clone)]
pub struct ClockFile {
    path: PathBuf,
}

impl ClockFile {
    /// A clock file at `path` (its directory is created); nothing is written until [`set`](Self::set).
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(ClockFile {
            path: path.to_owned(),
        })
    }

    /// Where the file is (what the services' `clock.file` names).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every reader's now `at`.
    pub fn set(&self, at: OffsetDateTime) -> anyhow::Result<()> {
        let text = to_micros(at)
            .format(&Rfc3339)
            .context("formatting the clock's instant")?;
        let temporary = self.path.with_extension("next");
        std::fs::write(&temporary, text)
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, &self.path)
            .with_context(|| format!("moving the clock file to {}", self.path.display()))
    }
}

/// The instant in clock file `path`.
fn read_instant(path: &Path) -> anyhow::Result<OffsetDateTime> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the clock file {}", path.display()))?;
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339).with_context(|| {
        format!(
            "the clock file {} must hold one RFC 3339 instant",
            path.display()
        )
    })?;
    Ok(to_micros(at))
}

/// `at` cut to whole microseconds, so what a service returns equals what it stored.
fn to_micros(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or(at)
}

#[cfg(test)]
mod file_tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn every_reader_of_a_clock_file_shows_what_was_last_written_and_never_goes_back() {
        let dir = std::env::temp_dir().join(format!("ekb-clock-{}", uuid::Uuid::new_v4()));
        let writer = ClockFile::create(&dir.join("clock")).expect("created");
        assert!(
            FileClock::open(writer.path()).is_err(),
            "nothing written yet"
        );
        writer
            .set(datetime!(2027-03-01 08:00:00.1234567 UTC))
            .expect("set");
        let first = FileClock::open(writer.path()).expect("opens");
        let second = FileClock::open(writer.path()).expect("opens");
        assert_eq!(first.now(), datetime!(2027-03-01 08:00:00.123456 UTC));
        writer.set(datetime!(2027-03-02 08:00 UTC)).expect("set");
        assert_eq!(first.now(), datetime!(2027-03-02 08:00 UTC));
        assert_eq!(second.now(), datetime!(2027-03-02 08:00 UTC));
        writer.set(datetime!(2027-01-01 08:00 UTC)).expect("set");
        assert_eq!(first.now(), datetime!(2027-03-02 08:00 UTC), "never back");
        std::fs::remove_file(writer.path()).expect("removed");
        assert_eq!(
            first.now(),
            datetime!(2027-03-02 08:00 UTC),
            "unreadable: stands"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
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
