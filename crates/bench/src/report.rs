//! The results: the JSON file other tools read (`target/bench/open_case.json`, fields fixed by
//! the issue) and the human summary, which marks each target met or not met. The benchmark
//! reports; it does not fail on a missed target, only on errors.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Duration};

use anyhow::Context;
use serde::Serialize;

use crate::{
    RATE_STEP_DOWN,
    baseline::{BaselineBracket, PgbenchResult},
    load::LoadResult,
    process_stats::{CpuSnapshot, EXITED_CHILDREN, LOAD_GENERATOR, POSTGRES},
};

/// Target: service throughput at least this fraction of the pgbench baseline.
pub const RATIO_TARGET: f64 = 0.7;
/// Target: each service's peak resident set at most this many MiB.
pub const RSS_TARGET_MIB: f64 = 50.0;
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
    /// Mean cases stored per transaction (OpenCase's group commit, ADR 0015).
    pub cases_per_commit: f64,
    /// Outbox rows the relay had not published 15 s after the load.
    pub outbox_unpublished: i64,
    /// Peak RSS by service name.
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// The pgbench baseline: routing's own statement (insert case + insert outbox row), run
    /// before and after the service's load.
    pub baseline: BaselineBracket,
    /// CPU used during the two measured pgbench runs together.
    pub baseline_cpu: CpuSnapshot,
    /// pgbench with the textbook form of the transaction (BEGIN, two INSERTs, END).
    pub four_statement_baseline: PgbenchResult,
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
    /// pgbench transactions per second of the four-statement form of the transaction.
    pub baseline_four_statements_tps: f64,
    /// `throughput_per_s / baseline_four_statements_tps`.
    pub ratio_to_four_statements: f64,
    /// Mean cases routing stored per transaction (group commit, ADR 0015); the baseline
    /// stores one.
    pub cases_per_commit: f64,
    /// Peak RSS per service, MiB.
    pub peak_rss_mib: BTreeMap<String, f64>,
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
            baseline_four_statements_tps: round(self.measured.four_statement_baseline.tps, 1),
            ratio_to_four_statements: round(
                self.ratio_to(self.measured.four_statement_baseline.tps),
                3,
            ),
            cases_per_commit: round(self.measured.cases_per_commit, 2),
            peak_rss_mib: self
                .measured
                .peak_rss_mib
                .iter()
                .map(|(name, mib)| (name.clone(), round(*mib, 1)))
                .collect(),
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
        let met = |ok: bool| if ok { "met" } else { "NOT MET" };
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
            "setup        concurrency {}, routing pool {}{}, auth disabled, JSON logs at info",
            self.concurrency,
            self.pool_size,
            if extra.is_empty() {
                String::new()
            } else {
                format!(", {}", extra.join(", "))
            }
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
            "events       {} cases opened ({:.1} per commit), {} of their CaseRouted events unpublished 15 s after the load{}",
            self.measured.cases_opened,
            self.measured.cases_per_commit,
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
            "baseline     pgbench, routing's statement: insert case + insert outbox row ({} B payload), {} clients, prepared",
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
        writeln!(
            out,
            "for comparison: the four-statement form (BEGIN, 2 × INSERT, END): {:.1} tps{}; throughput / that = {:.3}",
            self.measured.four_statement_baseline.tps,
            failures(&self.measured.four_statement_baseline),
            self.ratio_to(self.measured.four_statement_baseline.tps)
        )?;
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
                cases_per_commit: 3.0,
                outbox_unpublished: 0,
                peak_rss_mib: BTreeMap::from([
                    ("routing".to_owned(), 31.04),
                    ("expert-registry".to_owned(), 62.0),
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
                four_statement_baseline: PgbenchResult {
                    tps: 800.0,
                    failed: 0,
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
        assert_eq!(value["baseline_four_statements_tps"], 800.0);
        assert_eq!(value["ratio_to_four_statements"], 1.25);
        assert_eq!(value["peak_rss_mib"]["routing"], 31.0);
        assert_eq!(value["cases_per_commit"], 3.0);
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
        assert!(
            text.contains("mean 1600.0 tps, 25 % apart  (!!! the machine's speed changed"),
            "{text}"
        );
    }
}
