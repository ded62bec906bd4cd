//! The readable summary `make bench` prints: each figure with the target it is held against,
//! marked met or NOT MET, and warnings where the machine or the run makes a figure doubtful.
//! The benchmark reports; it does not fail on a missed target, only on errors.

use std::fmt::Write as _;

use crate::{
    event_latency::{IDLE_SPACING, LatencySummary},
    pgbench::{BaselineBracket, PgbenchResult},
    postgres::OUTBOX_DRAIN_TIMEOUT,
    results::Run,
    throughput::RATE_STEP_DOWN,
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
/// Above this share of CPU used by others, the summary warns.
const NOISY_PERCENT: f64 = 10.0;

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

/// One line of latency figures.
fn latency_line(summary: &LatencySummary) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms (min {:.1}, max {:.1}; {} events)",
        summary.p50_ms, summary.p99_ms, summary.min_ms, summary.max_ms, summary.count
    )
}

impl Run {
    /// The readable summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self
            .write_setup(&mut out)
            .and_then(|()| self.write_throughput(&mut out))
            .and_then(|()| self.write_baseline(&mut out))
            .and_then(|()| self.write_event_latency(&mut out))
            .and_then(|()| self.write_idle_cpu(&mut out))
            .and_then(|()| self.write_peak_rss(&mut out))
            .and_then(|()| {
                writeln!(out, "json         {}", self.json_path)?;
                writeln!(out, "logs         {}", self.log_dir)
            });
        out
    }

    /// The machine, how busy others kept it, and the services' setup.
    fn write_setup(&self, out: &mut String) -> std::fmt::Result {
        let machine = &self.machine;
        writeln!(out, "\n=== OpenCase benchmark, {} ===", self.date)?;
        writeln!(
            out,
            "machine      {} CPUs ({}); {}",
            machine.cpus, machine.cpu_model, machine.notes
        )?;
        writeln!(
            out,
            "             {:.1} % of the machine's CPU went elsewhere during the open loop, {:.1} % was stolen by the hypervisor{}",
            machine.other_cpu_percent,
            machine.steal_percent,
            if machine.other_cpu_percent + machine.steal_percent > NOISY_PERCENT {
                "  (!!! not idle: the figures are pessimistic)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "             PostgreSQL {}; broker: {}",
            machine.postgres, machine.broker
        )?;
        let extra: String = self
            .routing_settings
            .iter()
            .map(|(key, value)| format!(", {key}={value}"))
            .collect();
        writeln!(
            out,
            "setup        concurrency {}, routing pool {}{extra}, auth disabled, JSON logs at info, relay woken by NOTIFY with its {} ms safety-net poll",
            self.concurrency, self.pool_size, self.outbox_poll_interval_ms
        )
    }

    /// The probe, the open loop, its errors and its events.
    fn write_throughput(&self, out: &mut String) -> std::fmt::Result {
        let throughput = &self.measured.throughput;
        let run = &throughput.open_loop;
        if let Some(probe) = &throughput.probe {
            writeln!(
                out,
                "probe        closed loop, {} s: {:.1}/s (p50 {:.2} ms, p99 {:.2} ms)",
                probe.window.as_secs(),
                probe.throughput_per_s,
                probe.latency.p50_ms,
                probe.latency.p99_ms
            )?;
        }
        for (rate, attempt) in &throughput.unsustained {
            writeln!(
                out,
                "not kept up  {rate:.1}/s offered: {:.1}/s answered, send delay up to {:.0} ms, p99 {:.1} ms; stepped down",
                attempt.throughput_per_s,
                attempt.max_send_lag.as_secs_f64() * 1000.0,
                attempt.latency.p99_ms
            )?;
        }
        let stepped_down = match throughput.unsustained.len() {
            0 => String::new(),
            steps => format!(
                ", stepped down {steps} × {:.0} %",
                (1.0 - RATE_STEP_DOWN) * 100.0
            ),
        };
        writeln!(
            out,
            "offered      {:.1} requests/s, open loop ({}{stepped_down}), {} s after {} s warm-up",
            throughput.offered_rate,
            throughput.rate_source,
            run.window.as_secs(),
            self.warmup.as_secs()
        )?;
        writeln!(
            out,
            "throughput   {:.1}/s ({} OK answers in the window; {} sent in all){}",
            run.throughput_per_s,
            run.ok_in_window,
            run.sent,
            if run.sustained(throughput.offered_rate) {
                ""
            } else {
                "  !!! offered rate NOT sustained: latency includes a growing client-side queue"
            }
        )?;
        writeln!(
            out,
            "latency      p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (from the scheduled send time); largest send delay behind schedule {:.1} ms",
            run.latency.p50_ms,
            run.latency.p99_ms,
            run.latency.p999_ms,
            run.latency.max_ms,
            run.max_send_lag.as_secs_f64() * 1000.0
        )?;
        self.write_errors(out)?;
        let outbox = &self.measured.outbox;
        writeln!(
            out,
            "events       {} cases opened, {} of their CaseRouted events unpublished {} s after the load{}",
            outbox.cases,
            outbox.unpublished,
            OUTBOX_DRAIN_TIMEOUT.as_secs(),
            if outbox.unpublished > 0 { "  !!!" } else { "" }
        )
    }

    /// Failed requests of every load phase, by kind.
    fn write_errors(&self, out: &mut String) -> std::fmt::Result {
        let throughput = &self.measured.throughput;
        let total = throughput.total_errors();
        if total == 0 {
            return writeln!(out, "errors       0");
        }
        writeln!(
            out,
            "errors       !!! {total} failed requests ({} in the measured run) !!!",
            throughput.open_loop.error_count(),
        )?;
        let mut all = throughput.open_loop.errors.clone();
        let earlier = throughput
            .probe
            .iter()
            .map(|probe| ("probe".to_owned(), probe))
            .chain(
                throughput
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
        Ok(())
    }

    /// The two pgbench runs and the ratio.
    fn write_baseline(&self, out: &mut String) -> std::fmt::Result {
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
        )
    }

    /// Commit → broker, idle and under load.
    fn write_event_latency(&self, out: &mut String) -> std::fmt::Result {
        let latency = &self.measured.event_latency;
        writeln!(
            out,
            "event latency commit → on the broker (Kafka CreateTime − occurred_at, 1 ms resolution):"
        )?;
        writeln!(
            out,
            "             idle, {} single calls {} ms apart: {}{}",
            latency.idle_calls,
            IDLE_SPACING.as_millis(),
            latency_line(&latency.idle),
            if latency.idle.p99_ms > RELAY_WAKE_SUSPECT_MS {
                "  (!!! slower than a relay woken by the commit: did it wait for its poll?)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "             under load, the measured window: {}",
            latency_line(&latency.under_load)
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

    /// Each service's CPU over the quiet window, and how busy the machine was in it.
    fn write_idle_cpu(&self, out: &mut String) -> std::fmt::Result {
        let idle = &self.measured.idle_cpu;
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
            "idle CPU     {:.0} s with no calls, percent of one core (target < {IDLE_CPU_TARGET_PERCENT} %): {}",
            idle.window.as_secs_f64(),
            services.join(", ")
        )?;
        let busy = idle.machine.busy_percent();
        writeln!(
            out,
            "             the machine was {busy:.0} % busy (all CPUs), {:.1} % stolen{}",
            idle.machine.steal_percent(),
            if busy > NOISY_PERCENT {
                "  (others' work: the machine was shared)"
            } else {
                ""
            }
        )
    }

    /// Each service's peak RSS against the target.
    fn write_peak_rss(&self, out: &mut String) -> std::fmt::Result {
        for (name, mib) in &self.measured.peak_rss_mib {
            writeln!(
                out,
                "peak RSS     {name}: {mib:.1} MiB  (target ≤ {RSS_TARGET_MIB} MiB: {})",
                met(*mib <= RSS_TARGET_MIB)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::results::example;

    #[test]
    fn the_summary_marks_targets() {
        let text = example().summary();
        assert!(
            text.contains("ratio        0.625  (target ≥ 0.7: NOT MET)"),
            "{text}"
        );
        assert!(
            text.contains("routing: 31.0 MiB  (target ≤ 50 MiB: met)"),
            "{text}"
        );
        assert!(text.contains("expert-registry: 62.0 MiB  (target ≤ 50 MiB: NOT MET)"));
        assert!(text.contains("errors       0"), "{text}");
        assert!(text.contains("routing 0.20 % (met)"), "{text}");
        assert!(text.contains("expert-registry 1.50 % (NOT MET)"), "{text}");
        // Every service is listed, the idle ones beside routing and the registry.
        assert!(text.contains("budget 0.50 % (met)"), "{text}");
        assert!(
            text.contains("budget: 18.0 MiB  (target ≤ 50 MiB: met)"),
            "{text}"
        );
        assert!(text.contains("throughput   1000.0/s"), "{text}");
        assert!(text.contains("p50 2.4 ms, p99 180.0 ms"), "{text}");
        assert!(text.contains("did it wait for its poll?"), "{text}");
        assert!(text.contains("the machine was 10 % busy"), "{text}");
        assert!(
            text.contains("mean 1600.0 tps, 25 % apart  (!!! the machine's speed changed"),
            "{text}"
        );
        assert!(text.ends_with("logs         target/bench/logs\n"), "{text}");
    }

    #[test]
    fn failed_requests_are_listed_by_kind_and_phase() {
        let mut run = example();
        let throughput = &mut run.measured.throughput;
        throughput
            .open_loop
            .errors
            .insert("gRPC Unavailable".to_owned(), 2);
        let mut probe = throughput.open_loop.clone();
        probe.errors = [("gRPC Internal".to_owned(), 1)].into();
        throughput.probe = Some(probe);
        let text = run.summary();
        assert!(
            text.contains("!!! 3 failed requests (2 in the measured run) !!!"),
            "{text}"
        );
        assert!(text.contains("!!! 1 × gRPC Internal (probe)"), "{text}");
        assert!(text.contains("!!! 2 × gRPC Unavailable\n"), "{text}");
    }
}
