//! Simulated days, and the case tasks that wait for them.
//!
//! Every case is a task that runs its plan: it waits for a simulated day ([`Sim::on`]), acts
//! through the public contracts, waits for what follows through events, and waits for a later
//! day. The [`Timeline`] moves the shared clock on only when no task is acting — every task is
//! either finished or waiting for a later day — and then to the first day a task waits for (days
//! on which nobody acts pass at once), so the services' "now" is the same for every step of a
//! day, and a step never sees a day it did not expect. Jobs and sweeps
//! run when the services see the clock pass their interval (`ekb_platform::jobs`); a task that
//! waits for a sweep's effect polls for it, and the day does not move until it has seen it.
//!
//! Tokens: the services check a token's expiry against the wall clock (the identity provider's
//! time is real even in a simulation), so [`Sim`] keeps each caller's token for a few wall
//! minutes instead of signing one per call.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use ekb_domain::oslo_start_of_day;
use ekb_platform::clock::ClockFile;
use ekb_proto::v1::CommitmentKind;
use ekb_testkit::{
    issuer::TestIssuer,
    scenarios::{Clients, People},
};
use time::{Date, OffsetDateTime};
use tokio::sync::{Notify, watch};

use crate::invariants::PaymentRecord;

/// The hour of the day (Oslo) the clock shows on a simulated day: office hours, as a case
/// worker's or an employer's call would come.
const OFFICE_HOUR: time::Duration = time::Duration::hours(9);
/// How long a token is reused; the test issuer's tokens live ten minutes.
const TOKEN_REUSE: Duration = Duration::from_secs(300);

/// The simulated days and the case tasks waiting for them.
#[derive(Debug)]
pub struct Timeline {
    clock: ClockFile,
    state: Mutex<DayState>,
    /// Sent the new day when the clock moves.
    day: watch::Sender<Date>,
    /// Woken whenever a task stops acting (parks or ends).
    idle: Notify,
}

#[derive(Debug)]
struct DayState {
    today: Date,
    /// Tasks acting now (not parked, not finished).
    acting: usize,
    /// Parked tasks by the day they wait for.
    parked: BTreeMap<Date, usize>,
}

/// The instant the shared clock shows on `day`.
pub fn office_hours(day: Date) -> OffsetDateTime {
    oslo_start_of_day(day) + OFFICE_HOUR
}

impl Timeline {
    /// A timeline starting on `first_day`, moving `clock` (written at once).
    pub fn start(clock: ClockFile, first_day: Date) -> anyhow::Result<Arc<Self>> {
        clock.set(office_hours(first_day))?;
        let (day, _) = watch::channel(first_day);
        Ok(Arc::new(Timeline {
            clock,
            state: Mutex::new(DayState {
                today: first_day,
                acting: 0,
                parked: BTreeMap::new(),
            }),
            day,
            idle: Notify::new(),
        }))
    }

    fn state(&self) -> MutexGuard<'_, DayState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The simulated day.
    pub fn today(&self) -> Date {
        self.state().today
    }

    /// Counts a new task as acting until it parks or its [`TaskGuard`] drops.
    pub fn task(self: &Arc<Self>) -> TaskGuard {
        self.state().acting += 1;
        TaskGuard {
            timeline: self.clone(),
        }
    }

    /// Parks the calling task until `day` (returns at once on or after it).
    pub async fn until_day(&self, day: Date) {
        {
            let mut state = self.state();
            if day <= state.today {
                return;
            }
            state.acting -= 1;
            *state.parked.entry(day).or_default() += 1;
        }
        self.idle.notify_one();
        let mut days = self.day.subscribe();
        // The mover counted this task acting again before it sent the day.
        let _ = days.wait_for(|today| *today >= day).await;
    }

    /// Waits until no task is acting; then the day parked tasks wait for first, or `None` when
    /// none waits.
    pub async fn wait_idle(&self) -> Option<Date> {
        loop {
            let notified = self.idle.notified();
            {
                let state = self.state();
                if state.acting == 0 {
                    return state.parked.keys().next().copied();
                }
            }
            notified.await;
        }
    }

    /// Moves the clock to `day` and wakes the tasks that wait for it or an earlier day.
    pub fn move_to(&self, day: Date) -> anyhow::Result<()> {
        self.clock.set(office_hours(day))?;
        {
            let mut state = self.state();
            state.today = day;
            let later = state.parked.split_off(&day.next_day().unwrap_or(day));
            let woken: usize = state.parked.values().sum();
            state.parked = later;
            state.acting += woken;
        }
        self.day.send_replace(day);
        Ok(())
    }

    fn finished(&self) {
        // A task ends while acting, except when a whole run is dropped (an interrupted
        // campaign): then parked tasks end too, and the count must not go below zero.
        let mut state = self.state();
        state.acting = state.acting.saturating_sub(1);
        drop(state);
        self.idle.notify_one();
    }
}

/// A task's presence on the timeline: while it lives and is not parked, the day does not move.
#[derive(Debug)]
pub struct TaskGuard {
    timeline: Arc<Timeline>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.timeline.finished();
    }
}

/// Who calls: each caller's token is signed once and reused for a few minutes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The NAV caseworker (first pair of eyes).
    Caseworker,
    /// The NAV decider (second pair of eyes).
    Decider,
    /// The employer's representative acting for this organisation.
    Employer(String),
    /// This supplier's system.
    Supplier(String),
    /// The payment system (the simulator plays it).
    PaymentSystem,
    /// Another NAV system with every role (opens cases, reads anything).
    System,
}

/// What a case task works with: the clients, the callers' tokens and the timeline.
pub struct Sim {
    /// The clients of the running system.
    pub clients: Clients,
    issuer: TestIssuer,
    timeline: Arc<Timeline>,
    tokens: Mutex<HashMap<Caller, (String, Instant)>>,
    /// What the simulator, as the payment system, recorded as paid.
    payments: Mutex<Vec<PaymentRecord>>,
}

impl Sim {
    /// A simulation of the system `clients` reach, with tokens from `issuer`, on `timeline`.
    pub fn new(clients: Clients, issuer: TestIssuer, timeline: Arc<Timeline>) -> Self {
        Sim {
            clients,
            issuer,
            timeline,
            tokens: Mutex::new(HashMap::new()),
            payments: Mutex::new(Vec::new()),
        }
    }

    /// As the payment system: notes that it paid `ore` under `kind` commitment `commitment_id`
    /// (a refund payout under its grant, an invoice under its order) — the payment system's own
    /// records, which the invariants hold against budget's and the flow services'.
    pub fn record_paid(&self, kind: CommitmentKind, commitment_id: &str, ore: i64) {
        self.payments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(PaymentRecord {
                kind,
                commitment_id: commitment_id.to_owned(),
                ore,
            });
    }

    /// Everything the payment system recorded as paid so far.
    pub fn payments(&self) -> Vec<PaymentRecord> {
        self.payments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The people of the scenario library, for steps that take a [`People`].
    pub fn people(&self) -> People<'_> {
        People::new(&self.issuer)
    }

    /// `caller`'s token.
    pub fn token(&self, caller: &Caller) -> String {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((token, signed)) = tokens.get(caller)
            && signed.elapsed() < TOKEN_REUSE
        {
            return token.clone();
        }
        let people = self.people();
        let token = match caller {
            Caller::Caseworker => people.caseworker(),
            Caller::Decider => people.decider(),
            Caller::Employer(organisation) => people.employer(&[organisation.as_str()]),
            Caller::Supplier(organisation) => people.supplier(organisation),
            Caller::PaymentSystem => people.payment_system(),
            Caller::System => people.system(),
        };
        tokens.insert(caller.clone(), (token.clone(), Instant::now()));
        token
    }

    /// The simulated day.
    pub fn today(&self) -> Date {
        self.timeline.today()
    }

    /// The simulated day as the contracts write dates, `YYYY-MM-DD`.
    pub fn today_text(&self) -> String {
        self.today().to_string()
    }

    /// Waits until the simulated day is `day` (at once if it is already that day or later).
    pub async fn on(&self, day: Date) {
        self.timeline.until_day(day).await;
    }

    /// Waits `days` simulated days from today; returns the new day.
    pub async fn after_days(&self, days: i64) -> Date {
        let day = self.today() + time::Duration::days(days);
        self.on(day).await;
        day
    }

    /// The timeline, for the runner.
    pub fn timeline(&self) -> &Arc<Timeline> {
        &self.timeline
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn timeline(dir: &std::path::Path) -> Arc<Timeline> {
        Timeline::start(
            ClockFile::create(&dir.join("clock")).expect("clock file"),
            date!(2027 - 01 - 04),
        )
        .expect("starts")
    }

    #[tokio::test]
    async fn the_day_moves_only_when_every_task_waits_and_wakes_those_due() {
        let dir = tempdir();
        let timeline = timeline(&dir);
        let guard = timeline.task();
        let parked = {
            let timeline = timeline.clone();
            tokio::spawn(async move {
                let _guard = guard;
                timeline.until_day(date!(2027 - 01 - 06)).await;
                timeline.today()
            })
        };
        assert_eq!(timeline.wait_idle().await, Some(date!(2027 - 01 - 06)));
        timeline.move_to(date!(2027 - 01 - 05)).expect("moves");
        assert_eq!(
            timeline.wait_idle().await,
            Some(date!(2027 - 01 - 06)),
            "still parked"
        );
        timeline.move_to(date!(2027 - 01 - 06)).expect("moves");
        assert_eq!(parked.await.expect("joined"), date!(2027 - 01 - 06));
        assert_eq!(timeline.wait_idle().await, None, "the task ended");
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ekb-timeline-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
