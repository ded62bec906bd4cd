//! Everything one benchmark run found out: how it was set up and what it measured. The JSON
//! document ([`crate::figures`]) and the readable summary ([`crate::summary`]) are both made
//! from it, so the two never disagree.

use std::{collections::BTreeMap, time::Duration};

use crate::{
    event_latency::EventLatency, idle_cpu::IdleCpu, machine::Machine, pgbench::BaselineBracket,
    postgres::OutboxState, throughput::Throughput,
};

/// One run: its setup and its figures.
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
    /// Warm-up before each measured window.
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
    /// OpenCase throughput: the probe and the open-loop runs.
    pub throughput: Throughput,
    /// The pgbench baseline: routing's unit of work (BEGIN, insert case, insert outbox row,
    /// COMMIT), run before and after the service's load.
    pub baseline: BaselineBracket,
    /// Routing's cases and unpublished outbox rows once the relay had drained after the load.
    pub outbox: OutboxState,
    /// Peak RSS by service name, MiB.
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// Each service's CPU over a quiet window before any load.
    pub idle_cpu: IdleCpu,
    /// Commit → broker, idle and under load.
    pub event_latency: EventLatency,
}

impl Run {
    /// Service throughput over baseline throughput (the mean of the two pgbench runs).
    pub fn ratio(&self) -> f64 {
        let baseline_tps = self.measured.baseline.tps();
        if baseline_tps > 0.0 {
            self.measured.throughput.open_loop.throughput_per_s / baseline_tps
        } else {
            0.0
        }
    }

    /// Whether something failed: a request, or an event the relay never published. A missed
    /// target is not a failure.
    pub fn failed(&self) -> bool {
        self.measured.throughput.total_errors() > 0 || self.measured.outbox.unpublished > 0
    }
}

/// A run with made-up figures, for the tests of what is made from it.
#[cfg(test)]
pub fn example() -> Run {
    use crate::{
        event_latency::LatencySummary,
        pgbench::PgbenchResult,
        process_stats::CpuSnapshot,
        tally::{LoadResult, Percentiles},
    };
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
        errors: BTreeMap::new(),
        sent: 23_000,
        max_send_lag: Duration::ZERO,
    };
    let machine_cpu = CpuSnapshot {
        run_seconds: 3.0,
        machine_busy: 4.0,
        machine_steal: 0.0,
        machine_total: 40.0,
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
            throughput: Throughput {
                probe: None,
                rate_source: "given with --rate".to_owned(),
                unsustained: Vec::new(),
                offered_rate: 1000.0,
                open_loop,
                cpu: machine_cpu,
                window: crate::event_latency::Window {
                    from_us: 0,
                    to_us: 20_000_000,
                },
            },
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
            outbox: OutboxState {
                cases: 23_000,
                unpublished: 0,
            },
            peak_rss_mib: BTreeMap::from([
                ("routing".to_owned(), 31.04),
                ("expert-registry".to_owned(), 62.0),
                ("budget".to_owned(), 18.0),
            ]),
            idle_cpu: IdleCpu {
                window: Duration::from_secs(20),
                service_seconds: BTreeMap::from([
                    ("routing".to_owned(), 0.04),
                    ("expert-registry".to_owned(), 0.3),
                    ("budget".to_owned(), 0.1),
                ]),
                machine: machine_cpu,
            },
            event_latency: EventLatency {
                idle_calls: 40,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_over_the_mean_baseline_and_only_errors_fail_a_run() {
        let mut run = example();
        assert_eq!(run.ratio(), 0.625);
        assert!(!run.failed(), "a missed target is no failure");
        run.measured.outbox.unpublished = 1;
        assert!(run.failed());
        run.measured.outbox.unpublished = 0;
        run.measured
            .throughput
            .open_loop
            .errors
            .insert("gRPC Unavailable".to_owned(), 2);
        assert!(run.failed());
    }
}
