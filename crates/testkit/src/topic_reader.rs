//! Reading a service's topic back in a test: every message with its key, its envelope and, on
//! the dead-letter topic, the reason. Tests assert on what was published, not only on state.

use std::time::Duration;

use anyhow::Context as _;
use ekb_proto::v1::EventEnvelope;
use prost::{Message as _, Name};
use rdkafka::{Message, consumer::StreamConsumer, message::Headers};
use tokio::time::Instant;

/// A message read from a topic.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its Kafka key.
    pub key: String,
    /// The payload's bytes, as the broker holds them (for scanning what a topic carries).
    pub raw: Vec<u8>,
    /// Its envelope, when it is one.
    pub envelope: Option<EventEnvelope>,
    /// `ekb-dlq-reason`, on dead letters.
    pub reason: Option<String>,
}

impl Received {
    /// The event type, or "" for what is not an envelope.
    pub fn event_type(&self) -> &str {
        self.envelope
            .as_ref()
            .map_or("", |envelope| envelope.event_type.as_str())
    }

    /// The payload as `M`; fails if it is another type.
    pub fn decode<M: prost::Message + Name + Default>(&self) -> anyhow::Result<M> {
        let envelope = self.envelope.as_ref().context("not an envelope")?;
        anyhow::ensure!(
            envelope.event_type == M::full_name(),
            "{} is not a {}",
            envelope.event_type,
            M::full_name()
        );
        Ok(M::decode(envelope.payload.as_slice())?)
    }
}

/// Reads `count` messages of `consumer` (fails after `timeout`), then whatever arrives within
/// `quiet` more, so a test can assert that nothing beyond them came.
pub async fn read(
    consumer: &StreamConsumer,
    count: usize,
    timeout: Duration,
    quiet: Duration,
) -> anyhow::Result<Vec<Received>> {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    loop {
        let remaining = if received.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(
                !left.is_zero(),
                "timed out after {timeout:?} with {} of {count} messages read: {:?}",
                received.len(),
                received
                    .iter()
                    .map(Received::event_type)
                    .collect::<Vec<_>>()
            );
            left
        } else {
            quiet
        };
        match tokio::time::timeout(remaining, consumer.recv()).await {
            Ok(Ok(message)) => {
                let header = |name: &str| {
                    message.headers().and_then(|headers| {
                        headers
                            .iter()
                            .find(|header| header.key == name)
                            .and_then(|header| header.value)
                            .map(|value| String::from_utf8_lossy(value).into_owned())
                    })
                };
                let raw = message.payload().unwrap_or_default().to_vec();
                received.push(Received {
                    key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    envelope: EventEnvelope::decode(raw.as_slice()).ok(),
                    raw,
                    reason: header("ekb-dlq-reason"),
                });
            }
            Ok(Err(error)) => eprintln!("consumer error (continuing): {error}"),
            Err(_) if received.len() >= count => return Ok(received),
            Err(_) => {}
        }
    }
}

/// The events of type `M` among `received`.
pub fn of_type<M: prost::Message + Name + Default>(received: &[Received]) -> Vec<M> {
    received
        .iter()
        .filter(|message| message.event_type() == M::full_name())
        .filter_map(|message| message.decode::<M>().ok())
        .collect()
}

/// The envelopes of the events of type `M` among `received`.
pub fn envelopes_of<M: Name>(received: &[Received]) -> Vec<EventEnvelope> {
    received
        .iter()
        .filter(|message| message.event_type() == M::full_name())
        .filter_map(|message| message.envelope.clone())
        .collect()
}
