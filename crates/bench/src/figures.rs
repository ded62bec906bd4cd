//! The JSON document other tools read (`target/bench/open_case.json`). The fields the issue
//! fixed (`throughput_per_s`, `p50_ms`, `p99_ms`, `baseline_tps`, `ratio`, `peak_rss_mib`,
//! `concurrency`, `duration_s`, `offered_rate_per_s`, `errors`, `date`, `machine`) keep their
//! names; idle CPU and event latency sit beside them. Figures are rounded, so the file does not
//! pretend to more precision than the measurement has.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;
use serde::Serialize;

use crate::{
    event_latency::{IDLE_SPACING, LatencySummary},
    idle_cpu::IdleCpu,
    machine::Machine,
    results::Run,
};

/// The JSON document.
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
    /// The quiet window: its length and how busy the machine was in it.
    pub idle_window: IdleWindowFigures,
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
    /// Single OpenCase calls for the idle figures.
    pub idle_calls: usize,
    /// Pause between two of them, ms.
    pub idle_spacing_ms: u64,
    /// Events whose message had no CreateTime (left out of the figures).
    pub without_create_time: usize,
    /// The relay's safety-net poll interval the services ran with, ms.
    pub outbox_poll_interval_ms: u64,
}

/// The quiet window of the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct IdleWindowFigures {
    /// Its length, seconds.
    pub seconds: f64,
    /// The whole machine's busy share (all CPUs), percent: others' work on a shared machine.
    pub machine_busy_percent: f64,
    /// Share stolen by the hypervisor, percent.
    pub steal_percent: f64,
}

/// What the event latency is, in the JSON's words.
const EVENT_LATENCY_MEASURE: &str = "Kafka CreateTime (stamped by the relay's producer at the \
    send) minus the envelope's occurred_at (set by OpenCase just before its outbox insert and \
    COMMIT), on one machine's clock; CreateTime has 1 ms resolution";

impl Run {
    /// The JSON document.
    pub fn figures(&self) -> Figures {
        let measured = &self.measured;
        let run = &measured.throughput.open_loop;
        Figures {
            throughput_per_s: round(run.throughput_per_s, 1),
            p50_ms: round(run.latency.p50_ms, 3),
            p99_ms: round(run.latency.p99_ms, 3),
            baseline_tps: round(measured.baseline.tps(), 1),
            baseline_tps_before: round(measured.baseline.before.tps, 1),
            baseline_tps_after: round(measured.baseline.after.tps, 1),
            baseline_drift: round(measured.baseline.drift(), 3),
            ratio: round(self.ratio(), 3),
            peak_rss_mib: rounded_map(&measured.peak_rss_mib, 1),
            event_latency_ms: self.event_latency_figures(),
            idle_cpu_percent: rounded_map(&measured.idle_cpu.service_percent(), 3),
            idle_window: idle_window_figures(&measured.idle_cpu),
            concurrency: self.concurrency,
            duration_s: run.window.as_secs(),
            offered_rate_per_s: round(measured.throughput.offered_rate, 1),
            errors: run.error_count(),
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
            measure: EVENT_LATENCY_MEASURE,
            idle: rounded(latency.idle),
            under_load: rounded(latency.under_load),
            idle_calls: latency.idle_calls,
            idle_spacing_ms: u64::try_from(IDLE_SPACING.as_millis()).unwrap_or(u64::MAX),
            without_create_time: latency.without_create_time,
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
}

/// The quiet window's length and the machine in it.
fn idle_window_figures(idle: &IdleCpu) -> IdleWindowFigures {
    IdleWindowFigures {
        seconds: round(idle.window.as_secs_f64(), 1),
        machine_busy_percent: round(idle.machine.busy_percent(), 1),
        steal_percent: round(idle.machine.steal_percent(), 1),
    }
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

/// Every value of `map` rounded to `digits` decimals.
fn rounded_map(map: &BTreeMap<String, f64>, digits: i32) -> BTreeMap<String, f64> {
    map.iter()
        .map(|(name, value)| (name.clone(), round(*value, digits)))
        .collect()
}

/// Rounds to `digits` decimals.
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use crate::results::example;

    #[test]
    fn the_json_has_the_issue_fields_and_the_kept_figures() -> anyhow::Result<()> {
        let value = serde_json::to_value(example().figures())?;
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
            "event_latency_ms",
            "idle_cpu_percent",
            "idle_window",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        assert_eq!(value["throughput_per_s"], 1000.0);
        assert_eq!(value["ratio"], 0.625);
        assert_eq!(value["baseline_tps"], 1600.0);
        assert_eq!(value["baseline_tps_before"], 1400.0);
        assert_eq!(value["baseline_tps_after"], 1800.0);
        assert_eq!(value["baseline_drift"], 0.25);
        assert_eq!(value["peak_rss_mib"]["routing"], 31.0);
        assert_eq!(value["peak_rss_mib"]["expert-registry"], 62.0);
        assert_eq!(value["idle_cpu_percent"]["routing"], 0.2);
        assert_eq!(value["idle_cpu_percent"]["expert-registry"], 1.5);
        assert_eq!(value["idle_window"]["machine_busy_percent"], 10.0);
        assert_eq!(value["event_latency_ms"]["idle"]["p50_ms"], 2.4);
        assert_eq!(value["event_latency_ms"]["idle"]["count"], 40);
        assert_eq!(value["event_latency_ms"]["idle_spacing_ms"], 200);
        assert_eq!(value["event_latency_ms"]["under_load"]["count"], 0);
        assert_eq!(value["duration_s"], 20);
        assert_eq!(value["machine"]["steal_percent"], 0.5);
        Ok(())
    }
}
