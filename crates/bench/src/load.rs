//! The load generator. Two modes share one request path:
//!
//! * **Open loop** (the measurement). Request *i* is due at `start + i / rate`, whatever
//!   happened to earlier requests, and its latency is measured from that due time, not from
//!   when it was actually sent. A closed-loop client that waits for an answer before sending the
//!   next request sends less when the service slows down and so hides exactly the slow periods
//!   ("coordinated omission"); measuring from the schedule charges every stall to the requests
//!   that should have been sent during it. At most `concurrency` calls are in flight: a request
//!   that is due while all slots are busy waits in the client, and that wait counts as latency.
//!   Sending stops by itself: requests still unsent a few seconds after the window's end are
//!   given up and reported as errors (the offered rate was not sustainable).
//! * **Closed loop** (the probe). `concurrency` callers each send the next request as soon as
//!   the previous answered. Its throughput estimates the maximum rate, which the open loop then
//!   offers a fraction of.
//!
//! Everything runs on the benchmark's single-threaded runtime: in-flight calls are futures in
//! one `FuturesUnordered`, so no locks or task spawns sit on the measured path, and the calls
//! go straight onto one HTTP/2 connection ([`crate::h2_connection`]).

use std::{collections::BTreeMap, fmt, time::Duration};

use ekb_proto::v1;
use futures::{StreamExt, stream::FuturesUnordered};
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::{
    h2_connection::RoutingClient,
    workload::{self, Expected},
};

/// Deadline of one call (sent as `grpc-timeout` and enforced locally).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the window's end due requests may still be sent.
const SEND_GRACE: Duration = Duration::from_secs(5);
/// Share of the offered rate that must be answered for a run to count as sustained.
pub const SUSTAINED_SHARE: f64 = 0.97;
/// Longest a request may wait to be sent for a run to count as sustained.
pub const SUSTAINED_MAX_SEND_LAG: Duration = Duration::from_millis(500);
/// Largest latency the histograms hold, in microseconds (longer values are clamped).
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
struct Outcome {
    /// When it was due.
    scheduled: Instant,
    /// When the client started sending it.
    sent: Instant,
    /// When the answer (or the error) was in.
    finished: Instant,
    /// Success or why not.
    result: Result<(), Failure>,
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
    /// Latency from the actual send, same requests (equals `latency` when no request had to
    /// wait for a slot; the difference is time spent queued in the client).
    pub service_latency: Percentiles,
    /// Failures by kind, over the whole run including warm-up.
    pub errors: BTreeMap<String, u64>,
    /// Requests sent, including warm-up.
    pub sent: u64,
    /// Largest delay between a request's due time and its send, inside the window: waiting
    /// for a free slot, or the load generator itself falling behind.
    pub max_send_lag: Duration,
    /// When the slowest request of the window was due, counted from the window's start.
    pub slowest_due_at: Duration,
    /// 99th-percentile latency (ms) of the requests due in each second of the window, to show
    /// whether the tail is spread out or one stall.
    pub p99_by_second_ms: Vec<f64>,
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
struct Tally {
    window_start: Instant,
    window_end: Instant,
    latency: Histogram<u64>,
    service_latency: Histogram<u64>,
    by_second: Vec<Histogram<u64>>,
    ok_in_window: u64,
    errors: BTreeMap<String, u64>,
    sent: u64,
    max_send_lag: Duration,
    slowest: (Duration, Duration),
}

impl Tally {
    fn new(window_start: Instant, window_end: Instant) -> anyhow::Result<Self> {
        Ok(Tally {
            window_start,
            window_end,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            service_latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            by_second: (0..(window_end - window_start).as_secs().max(1))
                .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_US, 2))
                .collect::<Result<_, _>>()?,
            ok_in_window: 0,
            errors: BTreeMap::new(),
            sent: 0,
            max_send_lag: Duration::ZERO,
            slowest: (Duration::ZERO, Duration::ZERO),
        })
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.window_start && at < self.window_end
    }

    fn failed(&mut self, failure: Failure, count: u64) {
        *self.errors.entry(failure.to_string()).or_default() += count;
    }

    fn record(&mut self, outcome: Outcome) {
        self.sent += 1;
        if let Err(failure) = outcome.result {
            self.failed(failure, 1);
            return;
        }
        if self.in_window(outcome.finished) {
            self.ok_in_window += 1;
        }
        if self.in_window(outcome.scheduled) {
            let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            let from_due = micros(outcome.finished - outcome.scheduled).clamp(1, MAX_LATENCY_US);
            let from_send = micros(outcome.finished - outcome.sent).clamp(1, MAX_LATENCY_US);
            // In range by the clamps, so recording cannot fail.
            let _ = self.latency.record(from_due);
            let _ = self.service_latency.record(from_send);
            let second = (outcome.scheduled - self.window_start).as_secs() as usize;
            if let Some(histogram) = self.by_second.get_mut(second) {
                let _ = histogram.record(from_due);
            }
            self.max_send_lag = self.max_send_lag.max(outcome.sent - outcome.scheduled);
            let latency = outcome.finished - outcome.scheduled;
            if latency > self.slowest.0 {
                self.slowest = (latency, outcome.scheduled - self.window_start);
            }
        }
    }

    fn finish(self) -> LoadResult {
        let window = self.window_end - self.window_start;
        LoadResult {
            window,
            ok_in_window: self.ok_in_window,
            throughput_per_s: self.ok_in_window as f64 / window.as_secs_f64(),
            latency: Percentiles::of(&self.latency),
            service_latency: Percentiles::of(&self.service_latency),
            errors: self.errors,
            sent: self.sent,
            max_send_lag: self.max_send_lag,
            slowest_due_at: self.slowest.1,
            p99_by_second_ms: self
                .by_second
                .iter()
                .map(|histogram| histogram.value_at_quantile(0.99) as f64 / 1000.0)
                .collect(),
        }
    }
}

/// Numbers requests across the probe and the run, so the mix continues where it left off.
#[derive(Debug, Default)]
pub struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Sends request `index` of the mix, due at `scheduled`, and checks the answer.
async fn call(mut client: RoutingClient, index: u64, scheduled: Instant) -> Outcome {
    let sent = Instant::now();
    let (message, expected) = workload::open_case(index);
    let mut request = tonic::Request::new(message);
    request.set_timeout(REQUEST_TIMEOUT);
    // A caller inside NAV propagates W3C trace context; so does the benchmark.
    let ids = (uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let traceparent = format!("00-{}-{}-01", ids.0, &ids.1.to_string()[..16]);
    if let Ok(value) = traceparent.parse() {
        request.metadata_mut().insert("traceparent", value);
    }
    let answer = tokio::time::timeout(
        REQUEST_TIMEOUT + Duration::from_secs(1),
        client.open_case(request),
    )
    .await;
    let result = match answer {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => Err(Failure::Timeout),
        Ok(Err(status)) => Err(Failure::Status(status.code())),
        Ok(Ok(response)) => check(&response.into_inner(), expected),
    };
    Outcome {
        scheduled,
        sent,
        finished: Instant::now(),
        result,
    }
}

/// A success is a newly created case with the expected decision.
fn check(response: &v1::OpenCaseResponse, expected: Expected) -> Result<(), Failure> {
    let decision = response
        .case
        .as_ref()
        .and_then(|case| case.decision.as_ref());
    match decision {
        Some(decision) if response.created && (decision.flow(), decision.reason()) == expected => {
            Ok(())
        }
        _ => Err(Failure::WrongAnswer),
    }
}

/// One call on its own (the next request of the mix), checked like every other; its latency is
/// not recorded.
pub async fn single_call(client: &RoutingClient, sequence: &mut Sequence) -> Result<(), Failure> {
    call(client.clone(), sequence.next(), Instant::now())
        .await
        .result
}

/// Closed loop: keeps `concurrency` calls in flight for `warmup + window`, measuring the
/// window.
pub async fn closed_loop(
    client: &RoutingClient,
    sequence: &mut Sequence,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<LoadResult> {
    let start = Instant::now();
    let mut tally = Tally::new(start + warmup, start + warmup + window)?;
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..concurrency {
        in_flight.push(call(client.clone(), sequence.next(), Instant::now()));
    }
    while let Some(outcome) = in_flight.next().await {
        tally.record(outcome);
        let now = Instant::now();
        if now < tally.window_end {
            in_flight.push(call(client.clone(), sequence.next(), now));
        }
    }
    Ok(tally.finish())
}

/// Open loop: offers `rate` requests per second for `warmup + window` with at most
/// `concurrency` in flight, measuring the window. Returns after every sent request answered
/// or timed out.
pub async fn open_loop(
    client: &RoutingClient,
    sequence: &mut Sequence,
    concurrency: usize,
    rate: f64,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(
        rate > 0.0 && rate.is_finite(),
        "the offered rate must be positive"
    );
    let start = Instant::now();
    let mut tally = Tally::new(start + warmup, start + warmup + window)?;
    let send_deadline = tally.window_end + SEND_GRACE;
    let total = due_count(rate, warmup + window);
    let mut in_flight = FuturesUnordered::new();
    let mut next: u64 = 0;
    loop {
        if next < total && Instant::now() >= send_deadline {
            tally.failed(Failure::NotSent, total - next);
            next = total;
        }
        if next >= total && in_flight.is_empty() {
            break;
        }
        let due = start + due_offset(next, rate);
        let may_send = next < total && in_flight.len() < concurrency;
        if may_send && due <= Instant::now() {
            // Behind schedule (or exactly on it): send at once, latency still counts from `due`.
            in_flight.push(call(client.clone(), sequence.next(), due));
            next += 1;
            continue;
        }
        tokio::select! {
            biased;
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => tally.record(outcome),
            () = tokio::time::sleep_until(due), if may_send => {
                in_flight.push(call(client.clone(), sequence.next(), due));
                next += 1;
            }
        }
    }
    Ok(tally.finish())
}

/// How many requests fall due in `span` at `rate` per second.
fn due_count(rate: f64, span: Duration) -> u64 {
    (rate * span.as_secs_f64()).ceil() as u64
}

/// When request `index` is due, counted from the start.
fn due_offset(index: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_evenly_spaced() {
        assert_eq!(due_count(100.0, Duration::from_secs(23)), 2300);
        assert_eq!(due_count(2.5, Duration::from_secs(3)), 8);
        assert_eq!(due_offset(0, 200.0), Duration::ZERO);
        assert_eq!(due_offset(200, 200.0), Duration::from_secs(1));
        assert_eq!(due_offset(1, 4.0), Duration::from_millis(250));
    }

    #[test]
    fn latency_counts_from_the_due_time_and_only_inside_the_window() -> anyhow::Result<()> {
        let start = Instant::now();
        let mut tally = Tally::new(
            start + Duration::from_secs(1),
            start + Duration::from_secs(2),
        )?;
        let at = |ms: u64| start + Duration::from_millis(ms);
        // Warm-up: neither counted as throughput nor as latency.
        tally.record(Outcome {
            scheduled: at(100),
            sent: at(100),
            finished: at(110),
            result: Ok(()),
        });
        // Waited 40 ms for a slot, then 10 ms in the service: 50 ms of latency.
        tally.record(Outcome {
            scheduled: at(1_000),
            sent: at(1_040),
            finished: at(1_050),
            result: Ok(()),
        });
        // Due inside, answered after the window: latency yes, throughput no.
        tally.record(Outcome {
            scheduled: at(1_990),
            sent: at(1_990),
            finished: at(2_010),
            result: Ok(()),
        });
        tally.record(Outcome {
            scheduled: at(1_500),
            sent: at(1_500),
            finished: at(1_501),
            result: Err(Failure::Status(tonic::Code::Unavailable)),
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
        assert!((result.service_latency.max_ms - 20.0).abs() < 0.1);
        assert_eq!(result.max_send_lag, Duration::from_millis(40));
        assert_eq!(result.slowest_due_at, Duration::ZERO);
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

    #[test]
    fn only_a_created_case_with_the_expected_route_is_a_success() {
        let expected = (v1::Flow::Pilot, v1::RoutingReason::PilotEligible);
        let answer = |created: bool, flow: v1::Flow| v1::OpenCaseResponse {
            case: Some(v1::Case {
                decision: Some(v1::RoutingDecision {
                    flow: flow as i32,
                    reason: v1::RoutingReason::PilotEligible as i32,
                }),
                ..Default::default()
            }),
            created,
        };
        assert_eq!(check(&answer(true, v1::Flow::Pilot), expected), Ok(()));
        assert_eq!(
            check(&answer(false, v1::Flow::Pilot), expected),
            Err(Failure::WrongAnswer)
        );
        assert_eq!(
            check(&answer(true, v1::Flow::Regular), expected),
            Err(Failure::WrongAnswer)
        );
    }
}
