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
//! go straight onto one HTTP/2 connection ([`crate::h2_connection`]). [`crate::tally`] counts
//! the outcomes.

use std::time::Duration;

use ekb_proto::v1;
use futures::{StreamExt, stream::FuturesUnordered};
use tokio::time::Instant;

use crate::{
    h2_connection::RoutingClient,
    tally::{Failure, LoadResult, Outcome, Tally},
    workload::{self, Expected},
};

/// Deadline of one call (sent as `grpc-timeout` and enforced locally).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the window's end due requests may still be sent.
const SEND_GRACE: Duration = Duration::from_secs(5);

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
