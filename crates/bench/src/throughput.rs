//! OpenCase throughput: the rate routing sustains, measured with an open loop.
//!
//! A short closed-loop probe estimates the maximum rate (unless `--rate` gives one), and the
//! open loop offers a fraction of it ([`crate::load`]). A 5-second probe on a shared machine
//! can be lucky, so a rate that is not sustained is stepped down and measured again, a bounded
//! number of times. The run that counts keeps its CPU snapshot (how much of the machine others
//! had meanwhile) and the wall-clock span of its measured window (whose events give the event
//! latency under load).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::{
    bench::phase,
    event_latency::Window,
    h2_connection::RoutingClient,
    load::{self, Sequence},
    options::Options,
    postgres,
    process_stats::CpuSnapshot,
    stack::Stack,
    tally::LoadResult,
};

/// Warm-up of the closed-loop probe before its measured part.
const PROBE_WARMUP: Duration = Duration::from_secs(1);
/// Open-loop runs at most, stepping the rate down after each one that was not sustained.
const RATE_ATTEMPTS: usize = 3;
/// Factor applied to the offered rate after a run that was not sustained.
pub const RATE_STEP_DOWN: f64 = 0.85;

/// What the throughput phase measured.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// The closed-loop probe, unless the rate was given.
    pub probe: Option<LoadResult>,
    /// How the first offered rate was chosen, for the summary.
    pub rate_source: String,
    /// Earlier open-loop runs whose offered rate (first) was not sustained.
    pub unsustained: Vec<(f64, LoadResult)>,
    /// The offered rate of the run that counts.
    pub offered_rate: f64,
    /// The open-loop run that counts.
    pub open_loop: LoadResult,
    /// The machine's CPU during that run (warm-up and drain of its calls included).
    pub cpu: CpuSnapshot,
    /// That run's measured window on the wall clock.
    pub window: Window,
}

impl Throughput {
    /// Failed requests of the probe and of every open-loop run.
    pub fn total_errors(&self) -> u64 {
        self.open_loop.error_count()
            + self.probe.as_ref().map_or(0, LoadResult::error_count)
            + self
                .unsustained
                .iter()
                .map(|(_, result)| result.error_count())
                .sum::<u64>()
    }

    /// Probes (unless `--rate` is given), then runs the open loop, stepping the rate down while
    /// it is not sustained.
    pub async fn measure(
        options: &Options,
        stack: &Stack,
        client: &RoutingClient,
        sequence: &mut Sequence,
    ) -> anyhow::Result<Throughput> {
        let (probe, mut offered_rate, rate_source) = match options.rate {
            Some(rate) => (None, rate, "given with --rate".to_owned()),
            None => {
                let probe = probe(options, stack, client, sequence).await?;
                let rate = probe.throughput_per_s * options.rate_fraction;
                let source = format!(
                    "{:.0} % of the probed {:.1}/s",
                    options.rate_fraction * 100.0,
                    probe.throughput_per_s
                );
                (Some(probe), rate, source)
            }
        };
        let mut unsustained = Vec::new();
        loop {
            phase(&format!(
                "open loop: {offered_rate:.1}/s, at most {} in flight, {} s + {} s warm-up",
                options.concurrency, options.seconds, options.warmup_seconds
            ));
            postgres::checkpoint().await;
            let cpu_before = CpuSnapshot::take()?;
            let warmup = Duration::from_secs(options.warmup_seconds);
            let length = Duration::from_secs(options.seconds);
            let window = Window::starting(SystemTime::now() + warmup, length);
            let result = load::open_loop(
                client,
                sequence,
                options.concurrency,
                offered_rate,
                warmup,
                length,
            )
            .await?;
            let cpu = CpuSnapshot::take()?.since(&cpu_before);
            let last_attempt = options.rate.is_some() || unsustained.len() + 1 >= RATE_ATTEMPTS;
            if result.sustained(offered_rate) || last_attempt {
                return Ok(Throughput {
                    probe,
                    rate_source,
                    unsustained,
                    offered_rate,
                    open_loop: result,
                    cpu,
                    window,
                });
            }
            phase(&format!(
                "{offered_rate:.1}/s was not sustained ({:.1}/s answered, send delay up to \
                 {:.0} ms); lowering the offered rate by {:.0} %",
                result.throughput_per_s,
                result.max_send_lag.as_secs_f64() * 1000.0,
                (1.0 - RATE_STEP_DOWN) * 100.0
            ));
            unsustained.push((offered_rate, result));
            offered_rate *= RATE_STEP_DOWN;
        }
    }
}

/// The closed-loop probe; afterwards it waits for the relay to publish the probe's events, so
/// that their backlog does not eat into the measured run.
async fn probe(
    options: &Options,
    stack: &Stack,
    client: &RoutingClient,
    sequence: &mut Sequence,
) -> anyhow::Result<LoadResult> {
    phase(&format!(
        "closed-loop probe: {} in flight for {} s",
        options.concurrency, options.probe_seconds
    ));
    let probe = load::closed_loop(
        client,
        sequence,
        options.concurrency,
        PROBE_WARMUP,
        Duration::from_secs(options.probe_seconds),
    )
    .await?;
    anyhow::ensure!(
        probe.throughput_per_s > 0.0,
        "the probe completed no request ({} errors: {:?}); routing log: {}",
        probe.error_count(),
        probe.errors,
        stack.routing.log_path.display()
    );
    phase("waiting for the outbox relay to catch up after the probe");
    let waited = Instant::now();
    let outbox = postgres::wait_for_outbox(&stack.routing_db.url).await?;
    phase(&format!(
        "outbox drained in {:.1} s ({} rows left)",
        waited.elapsed().as_secs_f64(),
        outbox.unpublished
    ));
    Ok(probe)
}
