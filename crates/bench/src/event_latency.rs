//! How long a CaseRouted event takes from OpenCase's commit to the broker, read back from
//! routing's topic.
//!
//! OpenCase builds the event's envelope — `occurred_at` included — just before it inserts the
//! outbox row and commits; the relay, woken by the commit's NOTIFY, reads the row and hands it
//! to its producer, which stamps the Kafka message with its CreateTime (librdkafka's wall clock
//! at the send). CreateTime − `occurred_at` is therefore commit (and its WAL flush) + wake-up +
//! the relay's round up to the send, on one clock (the same machine). CreateTime has only
//! millisecond resolution, so single values are ±1 ms; a value can even be slightly negative.
//!
//! It is measured twice: for single calls with nothing else going on ([`idle_calls`]), and for
//! every event of the open loop's measured window. [`read_all`] reads the whole topic once,
//! after the load, so that no reader takes CPU from what it measures, and the events are
//! sorted into the two sets by their `occurred_at`.

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use ekb_proto::v1::EventEnvelope;
use ekb_testkit::broker::{test_client_config, unique_topic};
use prost::Message as _;
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::{BorrowedMessage, Message, Timestamp},
};
use serde::Serialize;

use crate::{h2_connection::RoutingClient, load};

/// Pause between two idle OpenCase calls.
pub const IDLE_SPACING: Duration = Duration::from_millis(200);
/// How long reading the whole topic back may take.
const READ_ALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Metadata and watermark requests.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// One event as read back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventTiming {
    /// The envelope's `occurred_at`, µs since the Unix epoch.
    pub occurred_at_us: i64,
    /// The Kafka message's timestamp.
    pub timestamp: Timestamp,
}

impl EventTiming {
    /// Kafka CreateTime − `occurred_at` in ms, if the message has a CreateTime.
    pub fn latency_ms(&self) -> Option<f64> {
        match self.timestamp {
            Timestamp::CreateTime(ms) => {
                Some((ms as f64 * 1000.0 - self.occurred_at_us as f64) / 1000.0)
            }
            _ => None,
        }
    }
}

/// µs since the Unix epoch.
fn epoch_micros(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
    })
}

/// A span of wall-clock time, µs since the epoch, `from` included and `to` not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start.
    pub from_us: i64,
    /// End.
    pub to_us: i64,
}

impl Window {
    /// From `from` for `length`.
    pub fn starting(from: SystemTime, length: Duration) -> Self {
        let from_us = epoch_micros(from);
        Window {
            from_us,
            to_us: from_us + i64::try_from(length.as_micros()).unwrap_or(i64::MAX / 2),
        }
    }

    /// The events that occurred inside the window.
    fn select<'a>(&self, events: &'a [EventTiming]) -> Vec<&'a EventTiming> {
        events
            .iter()
            .filter(|event| {
                event.occurred_at_us >= self.from_us && event.occurred_at_us < self.to_us
            })
            .collect()
    }
}

/// Percentiles of a set of latencies (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Events measured.
    pub count: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Smallest, ms.
    pub min_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl LatencySummary {
    /// The summary of `values_ms` (all zeros when empty).
    pub fn of(mut values_ms: Vec<f64>) -> Self {
        if values_ms.is_empty() {
            return LatencySummary::default();
        }
        values_ms.sort_by(f64::total_cmp);
        let rank = |quantile: f64| {
            let index = (quantile * values_ms.len() as f64).ceil() as usize;
            values_ms[index.clamp(1, values_ms.len()) - 1]
        };
        LatencySummary {
            count: values_ms.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            min_ms: values_ms[0],
            max_ms: values_ms[values_ms.len() - 1],
        }
    }
}

/// `count` single OpenCase calls, [`IDLE_SPACING`] apart (the next requests of the mix);
/// returns the window their events occurred in. Any failed call fails the phase.
pub async fn idle_calls(
    client: &RoutingClient,
    sequence: &mut load::Sequence,
    count: usize,
    routing_log: &Path,
) -> anyhow::Result<Window> {
    let started = SystemTime::now();
    let mut failures = std::collections::BTreeMap::<String, u64>::new();
    for _ in 0..count {
        if let Err(failure) = load::single_call(client, sequence).await {
            *failures.entry(failure.to_string()).or_default() += 1;
        }
        tokio::time::sleep(IDLE_SPACING).await;
    }
    anyhow::ensure!(
        failures.is_empty(),
        "idle OpenCase calls failed: {failures:?}; routing log: {}",
        routing_log.display()
    );
    let length = SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    Ok(Window::starting(started, length))
}

/// The timing of one message of routing's topic, or `None` if it is no envelope with an
/// `occurred_at`.
fn timing_of(message: &BorrowedMessage<'_>) -> Option<EventTiming> {
    let envelope = EventEnvelope::decode(message.payload()?).ok()?;
    let occurred = envelope.occurred_at?;
    Some(EventTiming {
        occurred_at_us: occurred.seconds * 1_000_000 + i64::from(occurred.nanos) / 1_000,
        timestamp: message.timestamp(),
    })
}

/// Every partition of `topic` with its low and high watermarks.
fn partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<(i32, i64, i64)>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("metadata of {topic}"))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("the broker does not know {topic}");
    };
    let mut result = Vec::new();
    for partition in found.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), METADATA_TIMEOUT)
            .with_context(|| format!("watermarks of {topic}/{}", partition.id()))?;
        result.push((partition.id(), low, high));
    }
    anyhow::ensure!(!result.is_empty(), "{topic} has no partitions");
    Ok(result)
}

/// Reads every message now on `topic` (up to the high watermarks at the start) and returns the
/// timing of each event. The partitions are assigned by hand (no group join) and nothing is
/// committed. Blocking: call it from `spawn_blocking`.
pub fn read_all(brokers: &str, topic: &str) -> anyhow::Result<Vec<EventTiming>> {
    let consumer: BaseConsumer = test_client_config(brokers)
        .set("group.id", unique_topic("bench-events-"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("creating an event reader")?;
    // (partition, next offset to read, high watermark)
    let mut next = partitions(&consumer, topic)?;
    let mut list = TopicPartitionList::new();
    for &(partition, low, _) in &next {
        list.add_partition_offset(topic, partition, Offset::Offset(low))?;
    }
    consumer.assign(&list).context("assigning the partitions")?;
    let deadline = Instant::now() + READ_ALL_TIMEOUT;
    let mut events = Vec::new();
    while next.iter().any(|(_, at, high)| at < high) {
        if Instant::now() >= deadline {
            bail!(
                "could not read {topic} back within {READ_ALL_TIMEOUT:?} (at {next:?} of \
                 (partition, offset, high watermark))"
            );
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.context("reading the topic back")?;
        if let Some(entry) = next.iter_mut().find(|(p, _, _)| *p == message.partition()) {
            entry.1 = entry.1.max(message.offset() + 1);
        }
        events.extend(timing_of(&message));
    }
    Ok(events)
}

/// The event-latency figures of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLatency {
    /// OpenCase calls made one at a time with no other load.
    pub idle_calls: usize,
    /// CreateTime − `occurred_at` of the idle calls' events.
    pub idle: LatencySummary,
    /// CreateTime − `occurred_at` of the events of the open loop's measured window.
    pub under_load: LatencySummary,
    /// Events in either set whose message had no CreateTime (LogAppendTime or none).
    pub without_create_time: usize,
}

impl EventLatency {
    /// The figures from the whole topic read after the load (`all`) and the two windows.
    pub fn from_events(
        all: &[EventTiming],
        idle_window: Window,
        load_window: Window,
        idle_calls: usize,
    ) -> Self {
        let idle = idle_window.select(all);
        let load = load_window.select(all);
        let without_create_time = idle
            .iter()
            .chain(load.iter())
            .filter(|event| event.latency_ms().is_none())
            .count();
        let summary = |events: &[&EventTiming]| {
            LatencySummary::of(events.iter().filter_map(|e| e.latency_ms()).collect())
        };
        EventLatency {
            idle_calls,
            idle: summary(&idle),
            under_load: summary(&load),
            without_create_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let summary = LatencySummary::of((1..=100).map(f64::from).rev().collect());
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!((summary.min_ms, summary.max_ms), (1.0, 100.0));
        let one = LatencySummary::of(vec![2.5]);
        assert_eq!((one.p50_ms, one.p99_ms), (2.5, 2.5));
        assert_eq!(LatencySummary::of(Vec::new()), LatencySummary::default());
    }

    #[test]
    fn events_are_split_by_when_they_occurred() {
        let event = |occurred_ms: i64, create_ms: Option<i64>| EventTiming {
            occurred_at_us: occurred_ms * 1000,
            timestamp: create_ms.map_or(Timestamp::NotAvailable, Timestamp::CreateTime),
        };
        let all = [
            event(1_000, Some(1_003)),
            event(1_500, Some(1_502)),
            event(5_000, Some(5_010)),
            event(5_100, None),
            event(9_000, Some(9_001)),
        ];
        let idle = Window {
            from_us: 1_000_000,
            to_us: 2_000_000,
        };
        let load = Window {
            from_us: 5_000_000,
            to_us: 6_000_000,
        };
        let figures = EventLatency::from_events(&all, idle, load, 2);
        assert_eq!(figures.idle.count, 2);
        assert_eq!((figures.idle.min_ms, figures.idle.max_ms), (2.0, 3.0));
        assert_eq!(figures.under_load.count, 1);
        assert_eq!(figures.under_load.p50_ms, 10.0);
        assert_eq!(figures.without_create_time, 1);
    }

    #[test]
    fn a_window_runs_from_its_start_for_its_length() {
        let start = UNIX_EPOCH + Duration::from_secs(10);
        let window = Window::starting(start, Duration::from_millis(1500));
        assert_eq!(window.from_us, 10_000_000);
        assert_eq!(window.to_us, 11_500_000);
    }
}
