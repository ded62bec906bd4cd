//! Counting a load run: what became of each request, and the throughput and latency of the
//! measured window.
//!
//! Throughput counts successful answers that arrived inside the window. Latency counts from
//! each request's due time, not from when it was sent (see [`crate::load`]), into an
//! HdrHistogram of 1 µs to 120 s with three significant digits. The largest delay between a
//! due time and the send is kept as well: it tells whether the offered rate was sustained.

use std::{collections::BTreeMap, fmt, time::Duration};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::load::REQUEST_TIMEOUT;

/// Share of the offered rate that must be answered for a run to count as sustained.
pub const SUSTAINED_SHARE: f64 = 0.97;
/// Longest a request may wait to be sent for a run to count as sustained.
pub const SUSTAINED_MAX_SEND_LAG: Duration = Duration::from_millis(500);
/// Largest latency the histogram holds, in microseconds (longer values are clamped).
const MAX_LATENCY_US: u64 = 120_000_000;

/// Why a request did not count as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The service answered with a gRPC error.
    Status(tonic::Code),
    /// The service answered, but not with a newly created case routed as expected.
    WrongAnswer,
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
    /// Due, but never sent: the client's in-flight slots stayed full past the grace period.
    NotSent,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "gRPC {code:?}"),
            Failure::WrongAnswer => f.write_str("wrong answer (not created, or unexpected route)"),
            Failure::Timeout => write!(f, "no answer within {REQUEST_TIMEOUT:?}"),
            Failure::NotSent => f.write_str("never sent (client queue still full after the run)"),
        }
    }
}

/// What became of one request.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// When it was due.
    pub scheduled: Instant,
    /// When the client started sending it.
    pub sent: Instant,
    /// When the answer (or the error) was in.
    pub finished: Instant,
    /// Success or why not.
    pub result: Result<(), Failure>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Requests in the histogram.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Reads the percentiles of a microsecond histogram.
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// The result of a probe or a run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// The measured window's length.
    pub window: Duration,
    /// Successful answers that arrived inside the window.
    pub ok_in_window: u64,
    /// `ok_in_window` per second of window.
    pub throughput_per_s: f64,
    /// Latency from the due time, of successful requests due inside the window.
    pub latency: Percentiles,
    /// Failures by kind, over the whole run including warm-up.
    pub errors: BTreeMap<String, u64>,
    /// Requests sent, including warm-up.
    pub sent: u64,
    /// Largest delay between a request's due time and its send, inside the window: waiting
    /// for a free slot, or the load generator itself falling behind.
    pub max_send_lag: Duration,
}

impl LoadResult {
    /// Total failures.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Whether the service kept up with `offered` requests per second: it answered at least
    /// [`SUSTAINED_SHARE`] of them within the window, and no request had to wait more than
    /// [`SUSTAINED_MAX_SEND_LAG`] to be sent. A backlog that keeps growing fails the second
    /// test long before it shows in the first.
    pub fn sustained(&self, offered: f64) -> bool {
        self.throughput_per_s >= SUSTAINED_SHARE * offered
            && self.max_send_lag <= SUSTAINED_MAX_SEND_LAG
    }
}

/// Accumulates outcomes for one measured window.
pub struct Tally {
    window_start: Instant,
    /// The end of the measured window.
    pub window_end: Instant,
    latency: Histogram<u64>,
    ok_in_window: u64,
    errors: BTreeMap<String, u64>,
    sent: u64,
    max_send_lag: Duration,
}

impl Tally {
    /// An empty tally for the window `window_start..window_end`.
    pub fn new(window_start: Instant, window_end: Instant) -> anyhow::Result<Self> {
        Ok(Tally {
            window_start,
            window_end,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            ok_in_window: 0,
            errors: BTreeMap::new(),
            sent: 0,
            max_send_lag: Duration::ZERO,
        })
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.window_start && at < self.window_end
    }

    /// Counts `count` requests that failed with `failure` without an outcome of their own.
    pub fn failed(&mut self, failure: Failure, count: u64) {
        *self.errors.entry(failure.to_string()).or_default() += count;
    }

    /// Counts one request.
    pub fn record(&mut self, outcome: Outcome) {
        self.sent += 1;
        if let Err(failure) = outcome.result {
            self.failed(failure, 1);
            return;
        }
        if self.in_window(outcome.finished) {
            self.ok_in_window += 1;
        }
        if self.in_window(outcome.scheduled) {
            let micros = u64::try_from((outcome.finished - outcome.scheduled).as_micros())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_LATENCY_US);
            // In range by the clamp, so recording cannot fail.
            let _ = self.latency.record(micros);
            self.max_send_lag = self.max_send_lag.max(outcome.sent - outcome.scheduled);
        }
    }

    /// The figures of the window.
    pub fn finish(self) -> LoadResult {
        let window = self.window_end - self.window_start;
        LoadResult {
            window,
            ok_in_window: self.ok_in_window,
            throughput_per_s: self.ok_in_window as f64 / window.as_secs_f64(),
            latency: Percentiles::of(&self.latency),
            errors: self.errors,
            sent: self.sent,
            max_send_lag: self.max_send_lag,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_from_the_due_time_and_only_inside_the_window() -> anyhow::Result<()> {
        let start = Instant::now();
        let mut tally = Tally::new(
            start + Duration::from_secs(1),
            start + Duration::from_secs(2),
        )?;
        let at = |ms: u64| start + Duration::from_millis(ms);
        let ok = |scheduled: u64, sent: u64, finished: u64| Outcome {
            scheduled: at(scheduled),
            sent: at(sent),
            finished: at(finished),
            result: Ok(()),
        };
        // Warm-up: neither counted as throughput nor as latency.
        tally.record(ok(100, 100, 110));
        // Waited 40 ms for a slot, then 10 ms in the service: 50 ms of latency.
        tally.record(ok(1_000, 1_040, 1_050));
        // Due inside, answered after the window: latency yes, throughput no.
        tally.record(ok(1_990, 1_990, 2_010));
        tally.record(Outcome {
            result: Err(Failure::Status(tonic::Code::Unavailable)),
            ..ok(1_500, 1_500, 1_501)
        });
        tally.failed(Failure::NotSent, 3);
        let result = tally.finish();
        assert_eq!(result.ok_in_window, 1);
        assert_eq!(result.latency.count, 2);
        assert!(
            (result.latency.max_ms - 50.0).abs() < 0.1,
            "{:?}",
            result.latency
        );
        assert_eq!(result.max_send_lag, Duration::from_millis(40));
        assert_eq!(result.error_count(), 4);
        assert_eq!(result.sent, 4);
        assert!((result.throughput_per_s - 1.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn a_run_is_sustained_only_if_answered_and_sent_on_time() -> anyhow::Result<()> {
        let start = Instant::now();
        let mut result = Tally::new(start, start + Duration::from_secs(10))?.finish();
        result.throughput_per_s = 98.0;
        assert!(result.sustained(100.0));
        assert!(!result.sustained(110.0), "answered too few");
        result.max_send_lag = Duration::from_millis(800);
        assert!(!result.sustained(100.0), "a growing client queue");
        Ok(())
    }
}
