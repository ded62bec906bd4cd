//! The operator's view of a service's dead letters: list them with their reasons, and replay
//! chosen ones back through the normal consumer path.
//!
//! A dead letter is a message the service's consumer could never apply by itself (undecodable,
//! invalid for the contract, refused, or failing the same way `consumer.max_attempts` times).
//! Once its cause is fixed (a new version deployed, the missing data registered), an operator
//! replays it: the record goes, with its original key, payload and headers, to the service's
//! **replay topic** (`<prefix>.<service>.replay.v1`), which only that service's consumer reads,
//! so other consumers of the source topic never see it twice. The consumer applies it like any
//! other event, in one unit of work with its inbox row: an event whose row says `dead_lettered`
//! is applied, one already applied is a duplicate and changes nothing, so a replay is idempotent
//! and may be repeated. Run as `<service binary> dead-letters list|replay …` with the service's
//! own configuration (docs/operations/dead-letters.md).

use std::{collections::HashMap, time::Duration};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
};
use time::OffsetDateTime;

use super::{EventProducer, kafka};
use crate::config::KafkaConfig;

/// The prefix of every header the consumer adds to a dead letter.
pub const DLQ_HEADER_PREFIX: &str = "ekb-dlq-";
/// Header with the reason a message was dead-lettered.
pub const REASON_HEADER: &str = "ekb-dlq-reason";
/// Header with the topic the dead-lettered message came from.
pub const SOURCE_TOPIC_HEADER: &str = "ekb-dlq-source-topic";
/// Header with the partition of the source topic it came from.
pub const SOURCE_PARTITION_HEADER: &str = "ekb-dlq-source-partition";
/// Header with its offset in that partition.
pub const SOURCE_OFFSET_HEADER: &str = "ekb-dlq-source-offset";
/// Header with how often it was tried.
pub const ATTEMPTS_HEADER: &str = "ekb-dlq-attempts";
/// Header with the consuming service that dead-lettered it.
pub const CONSUMER_HEADER: &str = "ekb-dlq-consumer";
/// Header a replayed record carries: `<dead-letter partition>:<offset>` it was replayed from.
pub const REPLAYED_FROM_HEADER: &str = "ekb-replayed-from";

/// How long reading or writing one dead-letter batch may wait for the broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// The topic of `service`'s replays: `<prefix>.<service>.replay.v1`, read only by `service`.
pub fn replay_topic_for(prefix: &str, service: &str) -> String {
    format!("{prefix}.{service}.replay.v1")
}

/// One dead letter, as the operator sees it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Partition of the dead-letter topic.
    pub partition: i32,
    /// Offset in that partition: with `partition`, the dead letter's identity.
    pub offset: i64,
    /// When it was dead-lettered (the record's timestamp).
    pub dead_lettered_at: Option<OffsetDateTime>,
    /// The event id, if the payload is an envelope.
    pub event_id: Option<uuid::Uuid>,
    /// The event type, if the payload is an envelope.
    pub event_type: Option<String>,
    /// The source topic.
    pub source_topic: String,
    /// How often it was tried.
    pub attempts: String,
    /// Why it was dead-lettered.
    pub reason: String,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Those whose event id is one of these.
    EventIds(Vec<uuid::Uuid>),
    /// Every dead letter recorded at or after this instant.
    Since(OffsetDateTime),
}

impl Selection {
    /// Whether `letter` is selected.
    pub fn selects(&self, letter: &DeadLetter) -> bool {
        match self {
            Selection::EventIds(ids) => letter.event_id.is_some_and(|id| ids.contains(&id)),
            Selection::Since(since) => letter.dead_lettered_at.is_some_and(|at| at >= *since),
        }
    }
}

/// Reads every dead letter of `service` from the start of its dead-letter topic up to its end
/// now, in partition and offset order.
pub fn read_all(config: &KafkaConfig, service: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let topic = super::dead_letter_topic_for(&config.topic_prefix, service);
    let consumer: BaseConsumer = kafka::client_config(config)
        .set(
            "group.id",
            format!("{}.{service}.dead-letter-reader", config.topic_prefix),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(&topic), BROKER_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(&topic, partition, BROKER_TIMEOUT)?;
        if high > low {
            assignment.add_partition_offset(&topic, partition, Offset::Offset(low))?;
            remaining.insert(partition, high);
        }
    }
    let mut letters = Vec::new();
    if remaining.is_empty() {
        return Ok(letters);
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + BROKER_TIMEOUT * 3;
    while !remaining.is_empty() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}; {} partition(s) not read to their end",
            remaining.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message?;
        let partition = message.partition();
        if let Some(high) = remaining.get(&partition).copied() {
            letters.push(dead_letter_of(&message));
            if message.offset() + 1 >= high {
                remaining.remove(&partition);
            }
        }
    }
    letters.sort_by_key(|letter| (letter.partition, letter.offset));
    Ok(letters)
}

fn dead_letter_of(message: &BorrowedMessage<'_>) -> DeadLetter {
    let headers: Vec<(String, Vec<u8>)> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    let header = |key: &str| {
        headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let envelope = message
        .payload()
        .and_then(|bytes| <ekb_proto::v1::EventEnvelope as prost::Message>::decode(bytes).ok());
    DeadLetter {
        partition: message.partition(),
        offset: message.offset(),
        dead_lettered_at: message.timestamp().to_millis().and_then(|millis| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
        }),
        event_id: envelope
            .as_ref()
            .and_then(|e| uuid::Uuid::parse_str(&e.event_id).ok()),
        event_type: envelope
            .map(|e| e.event_type)
            .filter(|event_type| !event_type.is_empty()),
        source_topic: header(SOURCE_TOPIC_HEADER),
        attempts: header(ATTEMPTS_HEADER),
        reason: header(REASON_HEADER),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Sends each of `letters` to `service`'s replay topic, keeping its key, payload and headers;
/// returns how many were sent. Waits until the broker acknowledged every one.
pub async fn replay(
    config: &KafkaConfig,
    service: &str,
    letters: &[DeadLetter],
) -> anyhow::Result<usize> {
    let topic = replay_topic_for(&config.topic_prefix, service);
    let producer: EventProducer = kafka::idempotent_producer(config)?;
    let mut deliveries = Vec::with_capacity(letters.len());
    for letter in letters {
        let replayed_from = format!("{}:{}", letter.partition, letter.offset);
        let mut headers = OwnedHeaders::new();
        // The dead-letter headers describe the earlier failure; should the replay fail too, its
        // own dead letter gets fresh ones.
        for (key, value) in letter
            .headers
            .iter()
            .filter(|(key, _)| !key.starts_with(DLQ_HEADER_PREFIX))
        {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: Some(value.as_slice()),
            });
        }
        headers = headers.insert(Header {
            key: REPLAYED_FROM_HEADER,
            value: Some(replayed_from.as_bytes()),
        });
        let delivery = producer
            .send(
                &topic,
                letter.key.as_deref(),
                letter.payload.as_deref(),
                headers,
            )
            .map_err(|error| anyhow::anyhow!("could not queue {replayed_from}: {error}"))?;
        deliveries.push((replayed_from, delivery));
    }
    for (replayed_from, delivery) in deliveries {
        match tokio::time::timeout(BROKER_TIMEOUT * 3, delivery).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => anyhow::bail!("replay of {replayed_from} failed: {error}"),
            Ok(Err(_)) | Err(_) => {
                anyhow::bail!("no delivery report for the replay of {replayed_from}")
            }
        }
    }
    Ok(letters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(event_id: Option<uuid::Uuid>, at: Option<OffsetDateTime>) -> DeadLetter {
        DeadLetter {
            partition: 0,
            offset: 0,
            dead_lettered_at: at,
            event_id,
            event_type: None,
            source_topic: String::new(),
            attempts: String::new(),
            reason: String::new(),
            key: None,
            payload: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_selection_picks_by_event_id_or_by_time() {
        let id = uuid::Uuid::now_v7();
        let noon = time::macros::datetime!(2026-12-06 12:00 UTC);
        let by_id = Selection::EventIds(vec![id]);
        assert!(by_id.selects(&letter(Some(id), None)));
        assert!(!by_id.selects(&letter(Some(uuid::Uuid::now_v7()), None)));
        assert!(
            !by_id.selects(&letter(None, Some(noon))),
            "garbage has no id"
        );
        let since = Selection::Since(noon);
        assert!(since.selects(&letter(None, Some(noon))));
        assert!(!since.selects(&letter(Some(id), Some(noon - time::Duration::SECOND))));
        assert!(!since.selects(&letter(Some(id), None)));
        assert_eq!(
            replay_topic_for("ekspertbistand", "budget"),
            "ekspertbistand.budget.replay.v1"
        );
    }
}
