//! Periodic jobs (expiry, erasure, resends, sweeps), run the same way in every service.
//!
//! A job runs at start and then again when its interval has passed — by the wall clock, or by
//! the service's clock, whichever comes first. On the system clock the two are the same; on a
//! test's or a simulation's clock a job also runs as soon as that clock is moved past its
//! interval, so a simulated month of deadlines takes seconds. A job's "now" is always the
//! service clock's. A failed run is logged and counted, and the next run retries; jobs are
//! written to be safe to run twice.

use std::{future::Future, time::Duration};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;

/// How often a job checks whether the service's clock has passed its interval.
const CLOCK_CHECK: Duration = Duration::from_millis(200);

/// Failed job runs, by job.
const FAILED_RUNS: &str = "ekb_job_failed_runs_total";

/// Runs `job` with the clock's now at start and then every `interval` (of wall or service-clock
/// time, whichever passes first) until `shutdown`.
pub async fn every<F, Fut, T>(
    name: &'static str,
    interval: Duration,
    clock: SharedClock,
    shutdown: CancellationToken,
    mut job: F,
) -> anyhow::Result<()>
where
    F: FnMut(OffsetDateTime) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    metrics::counter!(FAILED_RUNS, "job" => name).absolute(0);
    loop {
        let started = clock.now();
        if let Err(error) = job(started).await {
            metrics::counter!(FAILED_RUNS, "job" => name).increment(1);
            tracing::warn!(job = name, error = %error, "job failed; the next run retries");
        }
        let wall_due = tokio::time::Instant::now() + interval;
        loop {
            let wait =
                CLOCK_CHECK.min(wall_due.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
            let clock_passed = clock.now() - started >= interval;
            if clock_passed || tokio::time::Instant::now() >= wall_due {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[tokio::test]
    async fn a_job_runs_at_start_and_again_when_the_service_clock_passes_its_interval() {
        let clock = ManualClock::new(time::macros::datetime!(2027-01-31 23:00 UTC));
        let runs = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let job = tokio::spawn(every(
            "test",
            Duration::from_secs(24 * 3600),
            Arc::new(clock.clone()),
            shutdown.clone(),
            {
                let runs = runs.clone();
                move |_now| {
                    let runs = runs.clone();
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        anyhow::Ok(())
                    }
                }
            },
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "ran at start");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "a day of wall time has not passed"
        );
        clock.advance(time::Duration::days(1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "a simulated day has");
        assert!(clock.now() > time::macros::datetime!(2027-02-01 0:00 UTC));
        shutdown.cancel();
        job.await.expect("joined").expect("stopped cleanly");
    }
}
