//! The results: the JSON file other tools read (`target/bench/open_case.json`, fields fixed by
//! the issue) and the human summary, which marks each target met or not met. The benchmark
//! reports; it does not fail on a missed target, only on errors.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Duration};

use anyhow::Context;
use serde::Serialize;

use crate::{
    RATE_STEP_DOWN,
    baseline::{BaselineBracket, PgbenchResult},
    event_latency::{EventLatency, LIVE_FETCH_WAIT_MS, LatencySummary},
    load::LoadResult,
    process_stats::{CpuSnapshot, EXITED_CHILDREN, LOAD_GENERATOR, POSTGRES},
};

/// Target: service throughput at least this fraction of the pgbench baseline.
pub const RATIO_TARGET: f64 = 0.7;
/// Target: each service's peak resident set at most this many MiB.
pub const RSS_TARGET_MIB: f64 = 50.0;
/// Target: each service's CPU with nothing to do, percent of one core ("well under 1 %").
pub const IDLE_CPU_TARGET_PERCENT: f64 = 1.0;
/// An idle event slower than this from commit to the broker means the relay did not wake on
/// the commit's NOTIFY but waited for its safety-net poll (or something else stalled it).
const RELAY_WAKE_SUSPECT_MS: f64 = 100.0;
/// Threads per service the quiet windows list.
const BUSIEST_THREADS: usize = 6;
/// The broker's command name as `/proc` shows it (`ekb-mock-broker`, 15 characters).
const BROKER_COMM: &str = "ekb-mock-broker";
/// Above this share of CPU used by others during the run, the summary warns.
const NOISY_PERCENT: f64 = 10.0;

/// Percent of the machine's CPU time in `cpu` that none of its components used.
pub fn other_cpu_percent(cpu: &CpuSnapshot) -> f64 {
    let attributed: f64 = cpu.seconds.values().sum();
    100.0 * (cpu.machine_busy - attributed).max(0.0) / cpu.machine_total.max(f64::MIN_POSITIVE)
}

/// Where and on what the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs the OS offers.
    pub cpus: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// PostgreSQL server version and durability settings.
    pub postgres: String,
    /// Which broker was used.
    pub broker: String,
    /// Share of the machine's CPU time during the measured run that went to none of the
    /// benchmark's processes (other users' work, interrupts): the noise in the figures.
    pub other_cpu_percent: f64,
    /// Share of the machine's CPU time the hypervisor gave to other guests during the run.
    pub steal_percent: f64,
    /// What shares the machine.
    pub notes: String,
}

/// Everything one benchmark run found out: how it was set up, and what it measured.
#[derive(Debug, Clone)]
pub struct Run {
    /// Date of the run, YYYY-MM-DD (UTC).
    pub date: String,
    /// The machine.
    pub machine: Machine,
    /// In-flight bound and pgbench clients.
    pub concurrency: usize,
    /// Routing's pool size.
    pub pool_size: u32,
    /// Extra routing settings given on the command line.
    pub routing_settings: Vec<(String, String)>,
    /// The relay's safety-net poll interval the services ran with.
    pub outbox_poll_interval_ms: u64,
    /// Warm-up before the window.
    pub warmup: Duration,
    /// Size of the CaseRouted outbox payload the baseline copies.
    pub payload_bytes: usize,
    /// The figures.
    pub measured: Measured,
    /// Where the JSON went.
    pub json_path: String,
    /// Where the service logs are.
    pub log_dir: String,
}

/// What a run measured while the system was up.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The closed-loop probe, unless the rate was given.
    pub probe: Option<LoadResult>,
    /// The offered rate of the run that counts.
    pub offered_rate: f64,
    /// How the rate was chosen, for the summary.
    pub rate_source: String,
    /// Earlier open-loop runs whose offered rate (first) was not sustained.
    pub unsustained: Vec<(f64, LoadResult)>,
    /// The open-loop run.
    pub open_loop: LoadResult,
    /// CPU used during the open-loop run (warm-up and drain included), by component.
    pub run_cpu: CpuSnapshot,
    /// Cases routing stored (each wrote one CaseRouted outbox row).
    pub cases_opened: i64,
    /// Outbox rows the relay had not published 15 s after the load.
    pub outbox_unpublished: i64,
    /// Peak RSS by service name.
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// The pgbench baseline: routing's unit of work (BEGIN, insert case, insert outbox row,
    /// COMMIT), run before and after the service's load.
    pub baseline: BaselineBracket,
    /// CPU used during the two measured pgbench runs together.
    pub baseline_cpu: CpuSnapshot,
    /// Each service's CPU over a quiet window before any load.
    pub idle_cpu: IdleCpu,
    /// The same, over a short window right after the load and its drain.
    pub after_load_cpu: IdleCpu,
    /// Routing's relay rounds from the open loop's start to the end of its drain.
    pub load_relay: RelayRounds,
    /// After the quiet window that follows the load: how long until routing's relay stopped
    /// making rounds, and how many it made meanwhile.
    pub relay_settle: (Duration, i64),
    /// pgbench with routing's transaction on a database whose outbox has no NOTIFY trigger.
    pub baseline_without_notify: PgbenchResult,
    /// Commit → broker, idle and under load.
    pub event_latency: EventLatency,
}

/// Routing's outbox relay rounds over a span, against the events committed in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RelayRounds {
    /// Rounds that renewed the lease (each reads the unpublished rows).
    pub rounds: i64,
    /// Cases opened, each with one event.
    pub events: i64,
}

/// CPU over a quiet window after the stack is up and its outbox drained, with no calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdleCpu {
    /// The window's length.
    pub window: Duration,
    /// Rounds routing's relay made in it (≈; see `relay_rounds` in main.rs).
    pub relay_rounds: i64,
    /// CPU seconds in it by service, then by thread name.
    pub thread_seconds: BTreeMap<String, BTreeMap<String, f64>>,
    /// CPU seconds each service process used in it (`utime + stime`), by service name.
    pub service_seconds: BTreeMap<String, f64>,
    /// The same window by component, and the whole machine.
    pub cpu: CpuSnapshot,
}

impl IdleCpu {
    /// `seconds` of CPU over the window, as percent of one core.
    pub fn percent(&self, seconds: f64) -> f64 {
        100.0 * seconds / self.window.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Percent of one core by service.
    pub fn service_percent(&self) -> BTreeMap<String, f64> {
        self.service_seconds
            .iter()
            .map(|(name, seconds)| (name.clone(), self.percent(*seconds)))
            .collect()
    }

    /// Percent of one core used by component `name` of the snapshot (0 if absent).
    fn component_percent(&self, name: &str) -> f64 {
        self.percent(self.cpu.seconds.get(name).copied().unwrap_or(0.0))
    }

    /// [`Self::service_percent`] rounded for the JSON.
    fn rounded_percent(&self) -> BTreeMap<String, f64> {
        self.service_percent()
            .into_iter()
            .map(|(name, percent)| (name, round(percent, 3)))
            .collect()
    }

    /// The window's part of the JSON.
    fn window_figures(&self) -> IdleWindowFigures {
        let (busy, steal) = self.machine_percent();
        IdleWindowFigures {
            seconds: round(self.window.as_secs_f64(), 1),
            broker_percent: round(self.component_percent(BROKER_COMM), 3),
            postgres_percent: round(self.component_percent(POSTGRES), 3),
            machine_busy_percent: round(busy, 1),
            steal_percent: round(steal, 1),
            routing_relay_rounds: self.relay_rounds,
            threads_percent: self
                .busiest_threads()
                .into_iter()
                .map(|(service, threads)| {
                    let threads = threads
                        .into_iter()
                        .map(|(name, percent)| (name, round(percent, 3)))
                        .collect();
                    (service, threads)
                })
                .collect(),
        }
    }

    /// Each service's threads that used CPU in the window, busiest first (at most
    /// [`BUSIEST_THREADS`]), percent of one core.
    fn busiest_threads(&self) -> BTreeMap<String, Vec<(String, f64)>> {
        self.thread_seconds
            .iter()
            .map(|(service, threads)| {
                let mut busiest: Vec<(String, f64)> = threads
                    .iter()
                    .filter(|(_, seconds)| **seconds > 0.0)
                    .map(|(name, seconds)| (name.clone(), self.percent(*seconds)))
                    .collect();
                busiest.sort_by(|a, b| b.1.total_cmp(&a.1));
                busiest.truncate(BUSIEST_THREADS);
                (service.clone(), busiest)
            })
            .collect()
    }

    /// Percent of the whole machine (all CPUs) busy, and stolen.
    fn machine_percent(&self) -> (f64, f64) {
        let total = self.cpu.machine_total.max(f64::MIN_POSITIVE);
        (
            100.0 * self.cpu.machine_busy / total,
            100.0 * self.cpu.machine_steal / total,
        )
    }
}

/// The JSON document, with the issue's field names.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Successful OpenCase answers per second in the measured window.
    pub throughput_per_s: f64,
    /// Median latency (from the scheduled send time), ms.
    pub p50_ms: f64,
    /// 99th-percentile latency, ms.
    pub p99_ms: f64,
    /// pgbench transactions per second at the same concurrency: the mean of the runs before
    /// and after the service's load.
    pub baseline_tps: f64,
    /// The pgbench run before the service's load.
    pub baseline_tps_before: f64,
    /// The pgbench run after the service's load.
    pub baseline_tps_after: f64,
    /// How far apart the two pgbench runs are, relative to their mean: how much the machine's
    /// speed drifted during the run (above 0.15 the ratio is uncertain).
    pub baseline_drift: f64,
    /// `throughput_per_s / baseline_tps`.
    pub ratio: f64,
    /// Peak RSS per service, MiB.
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// Commit → on the broker, idle and under load.
    pub event_latency_ms: EventLatencyFigures,
    /// Each service's CPU over the quiet window, percent of one core.
    pub idle_cpu_percent: BTreeMap<String, f64>,
    /// The quiet window: its length and what else used CPU in it.
    pub idle_window: IdleWindowFigures,
    /// Each service's CPU over a short quiet window right after the load, percent of one core.
    pub after_load_cpu_percent: BTreeMap<String, f64>,
    /// That window.
    pub after_load_window: IdleWindowFigures,
    /// Routing's relay rounds from the open loop's start to the end of its drain.
    pub load_relay_rounds: RelayRounds,
    /// Seconds from the end of the after-load window until routing's relay made no more
    /// rounds.
    pub relay_quiet_after_s: f64,
    /// Rounds it made in those seconds.
    pub relay_rounds_until_quiet: i64,
    /// pgbench with the same transaction on an outbox without its NOTIFY trigger (comparison).
    pub baseline_without_notify_tps: f64,
    /// In-flight bound and pgbench clients.
    pub concurrency: usize,
    /// Measured window, seconds.
    pub duration_s: u64,
    /// Offered arrival rate, per second.
    pub offered_rate_per_s: f64,
    /// Failed requests of the open-loop run (warm-up included).
    pub errors: u64,
    /// YYYY-MM-DD.
    pub date: String,
    /// The machine.
    pub machine: Machine,
}

/// The event-latency part of the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct EventLatencyFigures {
    /// What is measured.
    pub measure: &'static str,
    /// The idle calls' events.
    pub idle: LatencySummary,
    /// The events of the open loop's measured window.
    pub under_load: LatencySummary,
    /// The idle calls' events, receive time at a live reader − `occurred_at`.
    pub idle_received_by_reader: LatencySummary,
    /// The live reader's `fetch.wait.max.ms`.
    pub reader_fetch_wait_ms: u32,
    /// Single OpenCase calls for the idle figures.
    pub idle_calls: usize,
    /// Pause between two of them, ms.
    pub idle_spacing_ms: u64,
    /// Events whose message had no CreateTime (left out of the figures).
    pub without_create_time: usize,
    /// Every idle value, in the order the calls were made, ms.
    pub idle_values_ms: Vec<f64>,
    /// The relay's safety-net poll interval the services ran with, ms.
    pub outbox_poll_interval_ms: u64,
}

/// The quiet window of the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct IdleWindowFigures {
    /// Its length.
    pub seconds: f64,
    /// The mock broker's CPU, percent of one core.
    pub broker_percent: f64,
    /// All PostgreSQL processes' CPU, percent of one core.
    pub postgres_percent: f64,
    /// The whole machine's busy share (all CPUs), percent: others' work on a shared machine.
    pub machine_busy_percent: f64,
    /// Share stolen by the hypervisor, percent.
    pub steal_percent: f64,
    /// Rounds routing's outbox relay made in it (from PostgreSQL's statistics, ± 1–2).
    pub routing_relay_rounds: i64,
    /// Each service's busiest threads in it, percent of one core, by thread name.
    pub threads_percent: BTreeMap<String, BTreeMap<String, f64>>,
}

/// `summary` with its figures rounded to µs.
fn rounded(summary: LatencySummary) -> LatencySummary {
    LatencySummary {
        count: summary.count,
        p50_ms: round(summary.p50_ms, 3),
        p99_ms: round(summary.p99_ms, 3),
        min_ms: round(summary.min_ms, 3),
        max_ms: round(summary.max_ms, 3),
    }
}

/// One quiet window: each service's CPU against the target, the broker, PostgreSQL, the
/// machine, and routing's relay rounds.
fn write_quiet_window(
    out: &mut String,
    label: &str,
    what: &str,
    idle: &IdleCpu,
) -> std::fmt::Result {
    let services: Vec<String> = idle
        .service_percent()
        .iter()
        .map(|(name, percent)| {
            format!(
                "{name} {percent:.2} % ({})",
                met(*percent < IDLE_CPU_TARGET_PERCENT)
            )
        })
        .collect();
    writeln!(
        out,
        "{label}{:.0} s {what}, percent of one core (target < {IDLE_CPU_TARGET_PERCENT} %): {}",
        idle.window.as_secs_f64(),
        services.join(", ")
    )?;
    for (service, threads) in idle.busiest_threads() {
        let threads: Vec<String> = threads
            .iter()
            .map(|(name, percent)| format!("{name} {percent:.2}"))
            .collect();
        writeln!(
            out,
            "               {service} by thread (%): {}",
            if threads.is_empty() {
                "none used CPU".to_owned()
            } else {
                threads.join(", ")
            }
        )?;
    }
    let (busy, steal) = idle.machine_percent();
    writeln!(
        out,
        "               routing's relay made {} rounds; broker {:.2} %, postgres (all processes) {:.2} %; the machine was {busy:.0} % busy (all CPUs), {steal:.1} % stolen{}",
        idle.relay_rounds,
        idle.component_percent(BROKER_COMM),
        idle.component_percent(POSTGRES),
        if busy > NOISY_PERCENT {
            "  (others' work: the machine was shared)"
        } else {
            ""
        }
    )
}

/// "met" or "NOT MET".
fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

/// " (N failed!)" when pgbench reported failed transactions.
fn failures(result: &PgbenchResult) -> String {
    if result.failed > 0 {
        format!(" ({} failed!)", result.failed)
    } else {
        String::new()
    }
}

/// Rounds to `digits` decimals, so the JSON does not pretend to more precision than it has.
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

impl Run {
    /// Failed requests of the probe and of every open-loop run.
    pub fn total_errors(&self) -> u64 {
        self.measured.open_loop.error_count()
            + self
                .measured
                .probe
                .as_ref()
                .map_or(0, LoadResult::error_count)
            + self
                .measured
                .unsustained
                .iter()
                .map(|(_, result)| result.error_count())
                .sum::<u64>()
    }

    /// Service throughput over baseline throughput (the mean of the two pgbench runs).
    pub fn ratio(&self) -> f64 {
        self.ratio_to(self.measured.baseline.tps())
    }

    /// Service throughput over `baseline_tps`.
    fn ratio_to(&self, baseline_tps: f64) -> f64 {
        if baseline_tps > 0.0 {
            self.measured.open_loop.throughput_per_s / baseline_tps
        } else {
            0.0
        }
    }

    /// The JSON document.
    pub fn figures(&self) -> Figures {
        Figures {
            throughput_per_s: round(self.measured.open_loop.throughput_per_s, 1),
            p50_ms: round(self.measured.open_loop.latency.p50_ms, 3),
            p99_ms: round(self.measured.open_loop.latency.p99_ms, 3),
            baseline_tps: round(self.measured.baseline.tps(), 1),
            baseline_tps_before: round(self.measured.baseline.before.tps, 1),
            baseline_tps_after: round(self.measured.baseline.after.tps, 1),
            baseline_drift: round(self.measured.baseline.drift(), 3),
            ratio: round(self.ratio(), 3),
            peak_rss_mib: self
                .measured
                .peak_rss_mib
                .iter()
                .map(|(name, mib)| (name.clone(), round(*mib, 1)))
                .collect(),
            event_latency_ms: self.event_latency_figures(),
            idle_cpu_percent: self.measured.idle_cpu.rounded_percent(),
            idle_window: self.measured.idle_cpu.window_figures(),
            after_load_cpu_percent: self.measured.after_load_cpu.rounded_percent(),
            after_load_window: self.measured.after_load_cpu.window_figures(),
            load_relay_rounds: self.measured.load_relay,
            relay_quiet_after_s: round(self.measured.relay_settle.0.as_secs_f64(), 1),
            relay_rounds_until_quiet: self.measured.relay_settle.1,
            baseline_without_notify_tps: round(self.measured.baseline_without_notify.tps, 1),
            concurrency: self.concurrency,
            duration_s: self.measured.open_loop.window.as_secs(),
            offered_rate_per_s: round(self.measured.offered_rate, 1),
            errors: self.measured.open_loop.error_count(),
            date: self.date.clone(),
            machine: Machine {
                other_cpu_percent: round(self.machine.other_cpu_percent, 1),
                steal_percent: round(self.machine.steal_percent, 1),
                ..self.machine.clone()
            },
        }
    }

    fn event_latency_figures(&self) -> EventLatencyFigures {
        let latency = &self.measured.event_latency;
        EventLatencyFigures {
            measure: "Kafka CreateTime (stamped by the relay's producer at the send) minus the \
                      envelope's occurred_at (set by OpenCase just before its outbox insert and \
                      COMMIT), on one machine's clock; CreateTime has 1 ms resolution",
            idle: rounded(latency.idle),
            under_load: rounded(latency.under_load),
            idle_received_by_reader: rounded(latency.idle_received),
            reader_fetch_wait_ms: LIVE_FETCH_WAIT_MS,
            idle_calls: latency.idle_calls,
            idle_spacing_ms: u64::try_from(latency.idle_spacing.as_millis()).unwrap_or(u64::MAX),
            without_create_time: latency.without_create_time,
            idle_values_ms: latency
                .idle_values_ms
                .iter()
                .map(|ms| round(*ms, 3))
                .collect(),
            outbox_poll_interval_ms: self.outbox_poll_interval_ms,
        }
    }

    /// Writes the JSON document to `path`, creating its directory.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&self.figures())? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The readable summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_summary(&mut out);
        out
    }

    fn write_summary(&self, out: &mut String) -> std::fmt::Result {
        let run = &self.measured.open_loop;
        writeln!(out, "\n=== OpenCase benchmark, {} ===", self.date)?;
        writeln!(
            out,
            "machine      {} CPUs ({}); {}",
            self.machine.cpus, self.machine.cpu_model, self.machine.notes
        )?;
        writeln!(
            out,
            "             {:.1} % of the machine's CPU went elsewhere during the run, {:.1} % was stolen by the hypervisor{}",
            self.machine.other_cpu_percent,
            self.machine.steal_percent,
            if self.machine.other_cpu_percent + self.machine.steal_percent > NOISY_PERCENT {
                "  (!!! not idle: the figures are pessimistic)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "             PostgreSQL {}; broker: {}",
            self.machine.postgres, self.machine.broker
        )?;
        let extra: Vec<String> = self
            .routing_settings
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        writeln!(
            out,
            "setup        concurrency {}, routing pool {}{}, auth disabled, JSON logs at info, relay woken by NOTIFY with its {} ms safety-net poll",
            self.concurrency,
            self.pool_size,
            if extra.is_empty() {
                String::new()
            } else {
                format!(", {}", extra.join(", "))
            },
            self.outbox_poll_interval_ms
        )?;
        if let Some(probe) = &self.measured.probe {
            writeln!(
                out,
                "probe        closed loop, {} s: {:.1}/s (p50 {:.2} ms, p99 {:.2} ms)",
                probe.window.as_secs(),
                probe.throughput_per_s,
                probe.latency.p50_ms,
                probe.latency.p99_ms
            )?;
        }
        for (rate, attempt) in &self.measured.unsustained {
            writeln!(
                out,
                "not kept up  {rate:.1}/s offered: {:.1}/s answered, send delay up to {:.0} ms, p99 {:.1} ms; stepped down",
                attempt.throughput_per_s,
                attempt.max_send_lag.as_secs_f64() * 1000.0,
                attempt.latency.p99_ms
            )?;
        }
        let stepped_down = match self.measured.unsustained.len() {
            0 => String::new(),
            steps => format!(
                ", stepped down {steps} × {:.0} %",
                (1.0 - RATE_STEP_DOWN) * 100.0
            ),
        };
        writeln!(
            out,
            "offered      {:.1} requests/s, open loop ({}{stepped_down}), {} s after {} s warm-up",
            self.measured.offered_rate,
            self.measured.rate_source,
            run.window.as_secs(),
            self.warmup.as_secs()
        )?;
        writeln!(
            out,
            "throughput   {:.1}/s ({} OK answers in the window; {} sent in all){}",
            run.throughput_per_s,
            run.ok_in_window,
            run.sent,
            if run.sustained(self.measured.offered_rate) {
                ""
            } else {
                "  !!! offered rate NOT sustained: latency includes a growing client-side queue"
            }
        )?;
        writeln!(
            out,
            "latency      p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (from the scheduled send time)",
            run.latency.p50_ms, run.latency.p99_ms, run.latency.p999_ms, run.latency.max_ms
        )?;
        writeln!(
            out,
            "             from the actual send: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            run.service_latency.p50_ms, run.service_latency.p99_ms, run.service_latency.max_ms,
        )?;
        writeln!(
            out,
            "             largest send delay behind schedule {:.1} ms; slowest request due {:.1} s into the window",
            run.max_send_lag.as_secs_f64() * 1000.0,
            run.slowest_due_at.as_secs_f64()
        )?;
        let by_second: Vec<String> = run
            .p99_by_second_ms
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect();
        writeln!(
            out,
            "             p99 by second of the window (ms): {}",
            by_second.join(" ")
        )?;
        if self.total_errors() == 0 {
            writeln!(out, "errors       0")?;
        } else {
            writeln!(
                out,
                "errors       !!! {} failed requests ({} in the measured run) !!!",
                self.total_errors(),
                run.error_count(),
            )?;
            let mut all = run.errors.clone();
            let earlier = self
                .measured
                .probe
                .iter()
                .map(|probe| ("probe".to_owned(), probe))
                .chain(
                    self.measured
                        .unsustained
                        .iter()
                        .map(|(rate, attempt)| (format!("run at {rate:.1}/s"), attempt)),
                );
            for (phase, result) in earlier {
                for (kind, count) in &result.errors {
                    *all.entry(format!("{kind} ({phase})")).or_default() += count;
                }
            }
            for (kind, count) in all {
                writeln!(out, "             !!! {count} × {kind}")?;
            }
        }
        writeln!(
            out,
            "events       {} cases opened, {} of their CaseRouted events unpublished 15 s after the load{}",
            self.measured.cases_opened,
            self.measured.outbox_unpublished,
            if self.measured.outbox_unpublished > 0 {
                "  !!!"
            } else {
                ""
            }
        )?;
        let baseline = &self.measured.baseline;
        writeln!(
            out,
            "baseline     pgbench, routing's unit of work: BEGIN, insert case, insert outbox row ({} B payload), COMMIT; {} clients, prepared",
            self.payload_bytes, self.concurrency,
        )?;
        writeln!(
            out,
            "             before the load {:.1} tps{}, after it {:.1} tps{}: mean {:.1} tps, {:.0} % apart{}",
            baseline.before.tps,
            failures(&baseline.before),
            baseline.after.tps,
            failures(&baseline.after),
            baseline.tps(),
            baseline.drift() * 100.0,
            if baseline.drift() > BaselineBracket::DRIFT_WARNING {
                "  (!!! the machine's speed changed during the run: the ratio is uncertain, run again)"
            } else {
                ""
            }
        )?;
        let ratio = self.ratio();
        writeln!(
            out,
            "ratio        {ratio:.3}  (target ≥ {RATIO_TARGET}: {})",
            met(ratio >= RATIO_TARGET)
        )?;
        let without = &self.measured.baseline_without_notify;
        writeln!(
            out,
            "for comparison: the same pgbench without the outbox's NOTIFY trigger: {:.1} tps{} ({:.2} × the mean baseline)",
            without.tps,
            failures(without),
            without.tps / self.measured.baseline.tps().max(f64::MIN_POSITIVE)
        )?;
        self.write_event_latency(out)?;
        self.write_idle_cpu(out)?;
        for (name, mib) in &self.measured.peak_rss_mib {
            writeln!(
                out,
                "peak RSS     {name}: {mib:.1} MiB  (target ≤ {RSS_TARGET_MIB} MiB: {})",
                met(*mib <= RSS_TARGET_MIB)
            )?;
        }
        self.write_cpu(out)?;
        writeln!(out, "json         {}", self.json_path)?;
        writeln!(out, "logs         {}", self.log_dir)?;
        Ok(())
    }

    /// Commit → broker, idle and under load.
    fn write_event_latency(&self, out: &mut String) -> std::fmt::Result {
        let latency = &self.measured.event_latency;
        let line = |summary: &LatencySummary| {
            format!(
                "p50 {:.1} ms, p99 {:.1} ms (min {:.1}, max {:.1}; {} events)",
                summary.p50_ms, summary.p99_ms, summary.min_ms, summary.max_ms, summary.count
            )
        };
        writeln!(
            out,
            "event latency commit → on the broker (Kafka CreateTime − occurred_at, 1 ms resolution):"
        )?;
        writeln!(
            out,
            "             idle, {} single calls {} ms apart: {}{}",
            latency.idle_calls,
            latency.idle_spacing.as_millis(),
            line(&latency.idle),
            if latency.idle.p99_ms > RELAY_WAKE_SUSPECT_MS {
                "  (!!! slower than a relay woken by the commit: did it wait for its poll?)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "             under load, the measured window: {}",
            line(&latency.under_load)
        )?;
        writeln!(
            out,
            "             idle, commit → received by a reader (fetch.wait.max.ms={LIVE_FETCH_WAIT_MS}): {}",
            line(&latency.idle_received)
        )?;
        let values: Vec<String> = latency
            .idle_values_ms
            .iter()
            .map(|ms| format!("{ms:.1}"))
            .collect();
        writeln!(
            out,
            "             idle, every value in call order (ms): {}",
            values.join(" ")
        )?;
        if latency.without_create_time > 0 {
            writeln!(
                out,
                "             !!! {} events had no CreateTime and are left out",
                latency.without_create_time
            )?;
        }
        Ok(())
    }

    /// Each service's CPU over the quiet windows, and the relay's rounds.
    fn write_idle_cpu(&self, out: &mut String) -> std::fmt::Result {
        write_quiet_window(
            out,
            "idle CPU     ",
            "with no calls",
            &self.measured.idle_cpu,
        )?;
        write_quiet_window(
            out,
            "             ",
            "right after the load",
            &self.measured.after_load_cpu,
        )?;
        let relay = &self.measured.load_relay;
        writeln!(
            out,
            "relay        {} rounds for {} events from the open loop's start to the drain's end ({:.2} per event)",
            relay.rounds,
            relay.events,
            relay.rounds as f64 / relay.events.max(1) as f64
        )?;
        let (settle, rounds) = self.measured.relay_settle;
        writeln!(
            out,
            "             after the after-load window it made {rounds} more rounds in {:.0} s before it was quiet{}",
            settle.as_secs_f64(),
            if rounds > 5 {
                "  (!!! rounds with nothing to publish: one per queued commit notification?)"
            } else {
                ""
            }
        )
    }

    /// CPU per request by component during the service run, and per transaction under pgbench.
    fn write_cpu(&self, out: &mut String) -> std::fmt::Result {
        let cpu = &self.measured.run_cpu;
        let requests = self.measured.open_loop.sent.max(1) as f64;
        writeln!(
            out,
            "CPU          during the run, {}; CPU time per request:",
            machine_state(cpu)
        )?;
        write_cpu_parts(out, cpu, requests)?;
        let base = &self.measured.baseline_cpu;
        let runs = [self.measured.baseline.before, self.measured.baseline.after];
        let txns = runs
            .iter()
            .map(|run| run.tps * self.measured.open_loop.window.as_secs_f64())
            .sum::<f64>()
            .max(1.0);
        writeln!(
            out,
            "             under pgbench (both runs), {}; CPU time per transaction:",
            machine_state(base)
        )?;
        write_cpu_parts(out, base, txns)
    }
}

/// How busy the machine was, and how much the hypervisor took away.
fn machine_state(cpu: &CpuSnapshot) -> String {
    let total = cpu.machine_total.max(f64::MIN_POSITIVE);
    format!(
        "machine {:.0} % busy, {:.1} % stolen by the hypervisor",
        100.0 * cpu.machine_busy / total,
        100.0 * cpu.machine_steal / total
    )
}

/// One line per component that used CPU: microseconds per unit of work; then what the
/// machine spent beyond them (other processes, interrupts), which is noise in the figures.
fn write_cpu_parts(out: &mut String, cpu: &CpuSnapshot, units: f64) -> std::fmt::Result {
    let attributed: f64 = cpu.seconds.values().sum();
    let other = (cpu.machine_busy - attributed).max(0.0) * 1e6 / units;
    let mut parts: Vec<(&String, f64)> = cpu
        .seconds
        .iter()
        .map(|(name, seconds)| (name, seconds * 1e6 / units))
        .filter(|(_, micros)| *micros >= 0.5)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, micros) in parts {
        let label = match name.as_str() {
            LOAD_GENERATOR | POSTGRES | EXITED_CHILDREN => name.clone(),
            other => format!("{other} (process)"),
        };
        writeln!(out, "             {micros:>7.0} µs  {label}")?;
    }
    writeln!(
        out,
        "             {other:>7.0} µs  everything else on the machine (other processes, interrupts)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Percentiles;

    fn run() -> Run {
        let open_loop = LoadResult {
            window: Duration::from_secs(20),
            ok_in_window: 20_000,
            throughput_per_s: 1000.0,
            latency: Percentiles {
                count: 20_000,
                p50_ms: 2.5,
                p99_ms: 9.25,
                p999_ms: 12.0,
                max_ms: 15.0,
            },
            service_latency: Percentiles::default(),
            errors: BTreeMap::new(),
            sent: 23_000,
            max_send_lag: Duration::ZERO,
            slowest_due_at: Duration::ZERO,
            p99_by_second_ms: vec![9.0; 20],
        };
        Run {
            date: "2026-11-22".to_owned(),
            machine: Machine {
                cpus: 2,
                cpu_model: "test cpu".to_owned(),
                postgres: "15".to_owned(),
                broker: "mock".to_owned(),
                other_cpu_percent: 1.0,
                steal_percent: 0.5,
                notes: "shared".to_owned(),
            },
            concurrency: 16,
            pool_size: 10,
            routing_settings: Vec::new(),
            outbox_poll_interval_ms: 5000,
            warmup: Duration::from_secs(3),
            payload_bytes: 250,
            measured: Measured {
                probe: None,
                offered_rate: 1000.0,
                rate_source: "--rate".to_owned(),
                unsustained: Vec::new(),
                open_loop,
                run_cpu: CpuSnapshot::default(),
                cases_opened: 23_000,
                outbox_unpublished: 0,
                peak_rss_mib: BTreeMap::from([
                    ("routing".to_owned(), 31.04),
                    ("expert-registry".to_owned(), 62.0),
                    ("budget".to_owned(), 18.0),
                ]),
                baseline: BaselineBracket {
                    before: PgbenchResult {
                        tps: 1400.0,
                        failed: 0,
                    },
                    after: PgbenchResult {
                        tps: 1800.0,
                        failed: 0,
                    },
                },
                baseline_cpu: CpuSnapshot::default(),
                after_load_cpu: IdleCpu::default(),
                relay_settle: (Duration::from_secs(4), 2),
                baseline_without_notify: PgbenchResult {
                    tps: 3200.0,
                    failed: 0,
                },
                load_relay: RelayRounds {
                    rounds: 50,
                    events: 100,
                },
                idle_cpu: IdleCpu {
                    window: Duration::from_secs(20),
                    relay_rounds: 4,
                    thread_seconds: BTreeMap::from([(
                        "routing".to_owned(),
                        BTreeMap::from([
                            ("rdk:main".to_owned(), 0.02),
                            ("tokio-runtime-w".to_owned(), 0.01),
                            ("idle".to_owned(), 0.0),
                        ]),
                    )]),
                    service_seconds: BTreeMap::from([
                        ("routing".to_owned(), 0.04),
                        ("expert-registry".to_owned(), 0.3),
                        ("budget".to_owned(), 0.1),
                    ]),
                    cpu: CpuSnapshot {
                        seconds: BTreeMap::from([(BROKER_COMM.to_owned(), 0.5)]),
                        machine_busy: 4.0,
                        machine_steal: 0.0,
                        machine_total: 40.0,
                    },
                },
                event_latency: EventLatency {
                    idle_calls: 40,
                    idle_spacing: Duration::from_millis(200),
                    idle: LatencySummary {
                        count: 40,
                        p50_ms: 2.4,
                        p99_ms: 180.0,
                        min_ms: 1.0,
                        max_ms: 180.0,
                    },
                    ..EventLatency::default()
                },
            },
            json_path: "target/bench/open_case.json".to_owned(),
            log_dir: "target/bench/logs".to_owned(),
        }
    }

    #[test]
    fn the_json_has_the_issue_fields() -> anyhow::Result<()> {
        let value = serde_json::to_value(run().figures())?;
        for key in [
            "throughput_per_s",
            "p50_ms",
            "p99_ms",
            "baseline_tps",
            "ratio",
            "peak_rss_mib",
            "concurrency",
            "duration_s",
            "offered_rate_per_s",
            "errors",
            "date",
            "machine",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        assert_eq!(value["ratio"], 0.625);
        assert_eq!(value["baseline_tps"], 1600.0);
        assert_eq!(value["baseline_tps_before"], 1400.0);
        assert_eq!(value["baseline_tps_after"], 1800.0);
        assert_eq!(value["baseline_drift"], 0.25);
        assert_eq!(value["peak_rss_mib"]["routing"], 31.0);
        assert_eq!(value["idle_cpu_percent"]["routing"], 0.2);
        assert_eq!(value["idle_cpu_percent"]["expert-registry"], 1.5);
        assert_eq!(value["idle_window"]["broker_percent"], 2.5);
        assert_eq!(value["idle_window"]["machine_busy_percent"], 10.0);
        assert_eq!(value["idle_window"]["routing_relay_rounds"], 4);
        assert_eq!(value["load_relay_rounds"]["rounds"], 50);
        assert_eq!(value["baseline_without_notify_tps"], 3200.0);
        assert_eq!(
            value["idle_window"]["threads_percent"]["routing"]["rdk:main"],
            0.1
        );
        assert_eq!(value["event_latency_ms"]["idle"]["p50_ms"], 2.4);
        assert_eq!(value["event_latency_ms"]["idle"]["count"], 40);
        assert_eq!(value["event_latency_ms"]["under_load"]["count"], 0);
        assert_eq!(value["peak_rss_mib"]["expert-registry"], 62.0);
        assert_eq!(value["duration_s"], 20);
        assert_eq!(value["machine"]["steal_percent"], 0.5);
        Ok(())
    }

    #[test]
    fn the_summary_marks_targets() {
        let text = run().summary();
        assert!(text.contains("target ≥ 0.7: NOT MET"), "{text}");
        assert!(
            text.contains("routing: 31.0 MiB  (target ≤ 50 MiB: met)"),
            "{text}"
        );
        assert!(text.contains("expert-registry: 62.0 MiB  (target ≤ 50 MiB: NOT MET)"));
        assert!(text.contains("errors       0"));
        assert!(text.contains("routing 0.20 % (met)"), "{text}");
        assert!(text.contains("expert-registry 1.50 % (NOT MET)"), "{text}");
        // Every service is listed, the idle ones beside routing and the registry.
        assert!(text.contains("budget 0.50 % (met)"), "{text}");
        assert!(
            text.contains("budget: 18.0 MiB  (target ≤ 50 MiB: met)"),
            "{text}"
        );
        assert!(text.contains("p50 2.4 ms, p99 180.0 ms"), "{text}");
        assert!(text.contains("did it wait for its poll?"), "{text}");
        assert!(text.contains("relay made 4 rounds"), "{text}");
        assert!(text.contains("50 rounds for 100 events"), "{text}");
        assert!(
            text.contains("routing by thread (%): rdk:main 0.10, tokio-runtime-w 0.05\n"),
            "{text}"
        );
        assert!(
            text.contains("3200.0 tps (2.00 × the mean baseline)"),
            "{text}"
        );
        assert!(
            text.contains("mean 1600.0 tps, 25 % apart  (!!! the machine's speed changed"),
            "{text}"
        );
    }
}
