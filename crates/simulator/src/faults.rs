//! The fault schedule of `--faults SEED`: what goes wrong, to which service, on which day.
//!
//! The same fault seed gives the same schedule over the same days and services (a ChaCha
//! generator drawn in a fixed order), so a failing seed reproduces. Faults are injected at the
//! quiet moment of a day — when every case task has done the day's steps and waits for a later
//! day — and before the clock moves on. What is in flight then is the system's own work: outbox
//! rows not yet published, events not yet consumed, saga steps between services, jobs. That is
//! what a crash must not lose or do twice; a client's lost answer in the middle of a call is not
//! simulated (the contracts tell clients to read again after an UNAVAILABLE, and the scenario
//! steps do not yet).
//!
//! Kinds: `kill -9` of a service and its restart; a service frozen (SIGSTOP) while the next day's
//! steps call it, then thawed; every PostgreSQL backend of a service terminated; a second
//! replica of a service started (it joins the consumer group, runs the outbox relay and the
//! jobs beside the first) and stopped again weeks later; the broker down for a few seconds; the
//! broker failing produce requests (the mock broker's control file, `TestBroker::control`).

use std::{collections::BTreeMap, fmt, time::Duration};

use anyhow::Context;
use ekb_devstack::launcher::Stack;
use ekb_testkit::{
    faults::terminate_backends,
    process::ProcessGroup,
    services::{ServiceProcess, TestSettings, free_local_addr},
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::{Date, Duration as Days};

/// How long a frozen service stays frozen (wall time; the next day's steps wait for it).
const FROZEN_FOR: Duration = Duration::from_millis(1_500);
/// How long the broker stays down in an outage (the services' clients retry meanwhile).
const BROKER_DOWN_FOR: Duration = Duration::from_secs(3);
/// How long a service may take to serve again after a restart.
const SERVING_TIMEOUT: Duration = Duration::from_secs(60);

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of service `index`, then its restart.
    Kill(usize),
    /// SIGSTOP of service `index`, SIGCONT a moment later.
    Freeze(usize),
    /// Every backend of service `index`'s database terminated.
    TerminateBackends(usize),
    /// A second replica of service `index` started.
    StartReplica(usize),
    /// The second replica of service `index` stopped (SIGTERM).
    StopReplica(usize),
    /// The (embedded) broker down for a moment, then up again.
    BrokerOutage,
    /// The broker fails the next produce requests with a retriable error.
    ProduceErrors(usize),
}

impl Fault {
    /// The index of the service it hits (`None` for the broker).
    pub fn service(self) -> Option<usize> {
        match self {
            Fault::Kill(index)
            | Fault::Freeze(index)
            | Fault::TerminateBackends(index)
            | Fault::StartReplica(index)
            | Fault::StopReplica(index) => Some(index),
            Fault::BrokerOutage | Fault::ProduceErrors(_) => None,
        }
    }
}

/// The faults by day.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    by_day: BTreeMap<Date, Vec<Fault>>,
}

impl Schedule {
    /// The schedule of fault seed `seed` over `days` days from `first_day`, among `services`
    /// services: a fault about every three weeks of the year, and one replica window.
    pub fn from_seed(seed: u64, first_day: Date, days: i64, services: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut schedule = Schedule::default();
        if services == 0 || days < 2 {
            return schedule;
        }
        let day = |rng: &mut ChaCha8Rng| first_day + Days::days(rng.random_range(1..days));
        for _ in 0..(days / 21).max(3) {
            let at = day(&mut rng);
            let service = rng.random_range(0..services);
            let fault = match rng.random_range(0..5) {
                0 => Fault::Kill(service),
                1 => Fault::Freeze(service),
                2 => Fault::TerminateBackends(service),
                3 => Fault::BrokerOutage,
                _ => Fault::ProduceErrors(rng.random_range(1..=10)),
            };
            schedule.by_day.entry(at).or_default().push(fault);
        }
        let service = rng.random_range(0..services);
        let start = day(&mut rng);
        let stop = start + Days::days(rng.random_range(7..=42));
        schedule
            .by_day
            .entry(start)
            .or_default()
            .push(Fault::StartReplica(service));
        schedule
            .by_day
            .entry(stop)
            .or_default()
            .push(Fault::StopReplica(service));
        schedule
    }

    /// The faults of `day`.
    pub fn on(&self, day: Date) -> &[Fault] {
        self.by_day.get(&day).map_or(&[], Vec::as_slice)
    }

    /// How many faults in all.
    pub fn len(&self) -> usize {
        self.by_day.values().map(Vec::len).sum()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Injects a schedule's faults into a running stack, and keeps the replicas it started.
#[derive(Default)]
pub struct Injector {
    schedule: Schedule,
    replicas: BTreeMap<usize, ServiceProcess>,
    /// What was injected, for the summary.
    pub injected: Vec<String>,
}

impl fmt::Debug for Injector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injector")
            .field("schedule", &self.schedule)
            .field("injected", &self.injected)
            .finish_non_exhaustive()
    }
}

impl Injector {
    /// An injector of `schedule`.
    pub fn new(schedule: Schedule) -> Self {
        Injector {
            schedule,
            ..Injector::default()
        }
    }

    /// Injects `day`'s faults into `stack`.
    pub async fn inject(&mut self, day: Date, stack: &mut Stack) -> anyhow::Result<()> {
        for fault in self.schedule.on(day).to_vec() {
            let index = fault.service().unwrap_or_default();
            let service_name = stack
                .services
                .get(index)
                .map(|service| service.name.clone())
                .context("the schedule names a service that is not running")?;
            match fault {
                Fault::Kill(index) => {
                    let service = stack.services.get_mut(index).context("no such service")?;
                    service.signal("KILL")?;
                    service.wait_exit(Duration::from_secs(10)).await?;
                    stack.restart(index).await?;
                    self.injected
                        .push(format!("{day}: kill -9 {} and restart", service_name));
                }
                Fault::Freeze(index) => {
                    let service = stack.services.get(index).context("no such service")?;
                    service.signal("STOP")?;
                    let pid = service.pid();
                    tokio::spawn(async move {
                        tokio::time::sleep(FROZEN_FOR).await;
                        // The process may have been killed meanwhile; nothing to thaw then.
                        let _ = std::process::Command::new("kill")
                            .arg("-CONT")
                            .arg(pid.to_string())
                            .status();
                    });
                    self.injected
                        .push(format!("{day}: {} frozen for {FROZEN_FOR:?}", service_name));
                }
                Fault::TerminateBackends(index) => {
                    let url = stack
                        .settings
                        .get(index)
                        .and_then(|settings| settings.get("database.url"))
                        .context("no database url")?
                        .to_owned();
                    let terminated = terminate_backends(&url).await?;
                    self.injected.push(format!(
                        "{day}: {terminated} PostgreSQL backends of {} terminated",
                        service_name
                    ));
                }
                Fault::StartReplica(index) => {
                    let settings = stack.settings.get(index).context("no settings")?.clone();
                    let log = stack.log_dir.join(format!("{service_name}-replica.log"));
                    let replica = start_replica(&service_name, &settings, &log).await?;
                    self.replicas.insert(index, replica);
                    self.injected
                        .push(format!("{day}: a second replica of {service_name} started"));
                }
                Fault::BrokerOutage => {
                    let broker = stack.broker.as_ref().context("no broker")?;
                    if broker.is_external() {
                        self.injected
                            .push(format!("{day}: broker outage skipped (external cluster)"));
                        continue;
                    }
                    broker.control(&["down 1"]).await?;
                    tokio::time::sleep(BROKER_DOWN_FOR).await;
                    broker.control(&["up 1"]).await?;
                    self.injected
                        .push(format!("{day}: the broker down for {BROKER_DOWN_FOR:?}"));
                }
                Fault::ProduceErrors(count) => {
                    let broker = stack.broker.as_ref().context("no broker")?;
                    if broker.is_external() {
                        self.injected
                            .push(format!("{day}: produce errors skipped (external cluster)"));
                        continue;
                    }
                    broker
                        .control(&[&format!("produce-errors {count}")])
                        .await?;
                    self.injected
                        .push(format!("{day}: the next {count} produce requests fail"));
                }
                Fault::StopReplica(index) => {
                    if let Some(mut replica) = self.replicas.remove(&index) {
                        replica.stop(Duration::from_secs(30)).await?;
                        self.injected.push(format!(
                            "{day}: the second replica of {} stopped",
                            service_name
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Stops the replicas still running (at the end of the year).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        for (_, mut replica) in std::mem::take(&mut self.replicas) {
            replica.stop(Duration::from_secs(30)).await?;
        }
        Ok(())
    }
}

/// Starts a second replica of `service` on free ports and waits until it serves. A port found
/// free can be taken by another process before the replica binds it (campaign runs side by
/// side pick ports at the same time), so a replica that could not bind is started again on
/// other ports, a few times; any other failure is the run's.
async fn start_replica(
    service: &str,
    settings: &TestSettings,
    log: &std::path::Path,
) -> anyhow::Result<ServiceProcess> {
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        let mut replica = ServiceProcess::spawn_at(
            service,
            settings,
            free_local_addr()?,
            free_local_addr()?,
            log,
            ProcessGroup::Own,
        )?;
        match replica.wait_until_serving(SERVING_TIMEOUT).await {
            Ok(()) => return Ok(replica),
            Err(error)
                if attempt < ATTEMPTS
                    && format!("{error:#}").contains("Address already in use") =>
            {
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn the_same_fault_seed_gives_the_same_schedule_and_every_kind_appears_over_seeds() {
        let first = date!(2027 - 01 - 01);
        let one = Schedule::from_seed(5, first, 365, 6);
        let again = Schedule::from_seed(5, first, 365, 6);
        assert_eq!(one.by_day, again.by_day);
        assert_ne!(one.by_day, Schedule::from_seed(6, first, 365, 6).by_day);
        assert!(one.len() >= 5, "{}", one.len());
        let kinds: std::collections::BTreeSet<String> = (0..20)
            .flat_map(|seed| {
                Schedule::from_seed(seed, first, 365, 6)
                    .by_day
                    .into_values()
                    .flatten()
            })
            .map(|fault| {
                format!("{fault:?}")
                    .split('(')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(kinds.len(), 7, "{kinds:?}");
        for (day, faults) in &one.by_day {
            assert!(*day > first && *day < first + Days::days(365 + 43));
            assert!(
                faults
                    .iter()
                    .all(|fault| fault.service().is_none_or(|index| index < 6))
            );
        }
    }
}
