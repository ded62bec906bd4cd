//! Reading every record of a topic, from its first offset to its end, once.
//!
//! Why not the testkit's `topic_reader`: that reads a number of messages the test expects,
//! then waits for quiet. At the end of a run nobody knows how many records a topic holds; this
//! reads each partition from its low watermark until the broker says it is at the end
//! (`enable.partition.eof`), so it neither stops early nor waits for nothing. Topics are found
//! in the cluster's metadata (never by asking for a topic by name, which on a broker that
//! auto-creates topics would create it).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::Headers as _,
};

/// How long a metadata or watermark request may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading may go without a record or an end-of-partition before it gives up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One record as the broker holds it.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key's bytes (empty when none).
    pub key: Vec<u8>,
    /// Its payload's bytes (empty when none).
    pub payload: Vec<u8>,
    /// Its headers: name and value.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl TopicRecord {
    /// The value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    }

    /// Where it is: `topic[partition]@offset`.
    pub fn place(&self) -> String {
        format!("{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}

fn consumer(brokers: &str) -> anyhow::Result<BaseConsumer> {
    ekb_testkit::broker::test_client_config(brokers)
        .set(
            "group.id",
            ekb_testkit::broker::unique_topic("ekb-simulate-invariants-"),
        )
        .set("allow.auto.create.topics", "false")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating a Kafka consumer to read the topics")
}

/// The names of every topic in the cluster that starts with `<prefix>.`, sorted (blocking).
pub fn topics_with_prefix(brokers: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
    let consumer = consumer(brokers)?;
    let metadata = consumer
        .fetch_metadata(None, BROKER_TIMEOUT)
        .context("reading the cluster's topics")?;
    let start = format!("{prefix}.");
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|topic| topic.name().to_owned())
        .filter(|name| name.starts_with(&start))
        .collect();
    names.sort();
    Ok(names)
}

/// Reads every record of `topic` and hands each to `visit`; returns how many (blocking).
pub fn read_all(
    brokers: &str,
    topic: &str,
    mut visit: impl FnMut(TopicRecord),
) -> anyhow::Result<u64> {
    let consumer = consumer(brokers)?;
    let metadata = consumer
        .fetch_metadata(None, BROKER_TIMEOUT)
        .context("reading the cluster's topics")?;
    let Some(partitions) = metadata
        .topics()
        .iter()
        .find(|candidate| candidate.name() == topic)
        .map(|found| {
            found
                .partitions()
                .iter()
                .map(|p| p.id())
                .collect::<Vec<_>>()
        })
    else {
        return Ok(0);
    };
    let mut assignment = TopicPartitionList::new();
    let mut waiting: HashSet<i32> = HashSet::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, BROKER_TIMEOUT)
            .with_context(|| format!("reading the offsets of {topic}[{partition}]"))?;
        if high > low {
            assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
            waiting.insert(partition);
        }
    }
    if waiting.is_empty() {
        return Ok(0);
    }
    consumer.assign(&assignment)?;
    let mut read = 0u64;
    let mut last_progress = Instant::now();
    while !waiting.is_empty() {
        anyhow::ensure!(
            last_progress.elapsed() < STALL_TIMEOUT,
            "reading {topic} stalled for {STALL_TIMEOUT:?} with partitions {waiting:?} unfinished"
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                waiting.remove(&partition);
                last_progress = Instant::now();
            }
            Some(Err(error)) => {
                // A broker being restarted: librdkafka retries; keep polling until the stall
                // timeout.
                eprintln!("reading {topic}: {error} (continuing)");
            }
            Some(Ok(message)) => {
                last_progress = Instant::now();
                read += 1;
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|header| {
                                (
                                    header.key.to_owned(),
                                    header.value.unwrap_or_default().to_vec(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                visit(TopicRecord {
                    topic: topic.to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().unwrap_or_default().to_vec(),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
        }
    }
    Ok(read)
}
