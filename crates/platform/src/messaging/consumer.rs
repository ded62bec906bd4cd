//! The event consumer: at-least-once delivery, effects exactly once (DESIGN.md §3).
//!
//! For each message, one database transaction inserts the event id into the inbox
//! (`ON CONFLICT DO NOTHING` — a redelivered event finds its id and changes nothing) and applies
//! the handler's effect. Only after that transaction committed is the message's offset stored for
//! the next commit. A failure of the infrastructure (the database lost or refusing connections, a
//! serialization failure; [`crate::fault`]) is no fault of the message: it is retried with
//! backoff without limit and without committing the offset, and never dead-letters (a money event
//! must not be parked because PostgreSQL restarted). Any other handler failure is retried with
//! exponential backoff; after `consumer.max_attempts` (or at once for a permanent failure, like an
//! undecodable envelope) the message goes to the service's dead-letter topic with the error in its
//! headers, so it never blocks its partition and is never dropped silently. A dead letter can be
//! replayed ([`super::dead_letters`]): the service's replay topic is consumed like any other, and
//! an event whose inbox row says `dead_lettered` is applied when it comes again. Event types the
//! router has no handler for are skipped explicitly: recorded in the inbox as
//! `skipped_unknown_type`, logged and counted.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use ekb_proto::v1::EventEnvelope;
use prost::Message as _;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{EventProducer, Events, Outbox, UnitOfWork, dead_letters, envelope::EVENT_TYPE_HEADER};
use crate::{
    config::{ConsumerConfig, KafkaConfig},
    metrics::{
        CONSUMER_DEAD_LETTERED, CONSUMER_EVENTS, CONSUMER_LAG, CONSUMER_RETRIES,
        CONSUMER_TRANSIENT_FAILURES,
    },
    trace_context::set_remote_parent,
};

const LAG_INTERVAL: Duration = Duration::from_secs(15);
const INBOX_PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// How long one metadata request for a subscribed topic may take at start.
const TOPIC_METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Retrying cannot help (the payload is invalid, the contract refuses it); dead-letter at
    /// once.
    #[error("permanent: {0}")]
    Permanent(String),
    /// May succeed later; retried with backoff. A failure of the infrastructure anywhere in the
    /// error's chain (the database lost, a serialization failure; [`crate::fault`]) is retried
    /// without limit and never dead-lettered; any other is dead-lettered after
    /// `consumer.max_attempts`.
    #[error("transient: {0}")]
    Transient(#[from] anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        HandlerError::Transient(error.into())
    }
}

impl From<prost::DecodeError> for HandlerError {
    fn from(error: prost::DecodeError) -> Self {
        HandlerError::Permanent(format!("payload does not decode: {error}"))
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler's effect committed.
    Applied,
    /// The event id was in the inbox already; nothing changed.
    Duplicate,
    /// No handler for the type; recorded and skipped.
    SkippedUnknownType,
    /// Sent to the dead-letter topic.
    DeadLettered,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::SkippedUnknownType => "skipped_unknown_type",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Consumes a set of topics into one service's database.
pub struct EventConsumer {
    service: &'static str,
    pool: PgPool,
    outbox: Outbox,
    consumer: Arc<StreamConsumer>,
    dead_letters: EventProducer,
    dead_letter_topic: String,
    events: Events,
    config: ConsumerConfig,
    topics: Vec<String>,
    auto_create_topics: bool,
    /// Notified once the consumer has closed (left its group).
    closed: Arc<tokio::sync::Notify>,
}

/// How long a stopping consumer waits for librdkafka's close (leaving the group, so another
/// replica takes its partitions over at once) before the service goes on without it.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// librdkafka's consumer close, run when the last handle is dropped, waits until the group has
/// acknowledged that the consumer left. That normally takes milliseconds, but can take a session
/// timeout or, in known cases (rust-rdkafka issues 509 and 611), for ever. So the close runs on
/// a thread of its own: nothing that drops a consumer (a test ending with its service running, a
/// runtime shutting down) can hang on it, and a process exit does not wait for that thread. A
/// graceful stop waits for it, at most [`CLOSE_WAIT`] ([`EventConsumer::run`]).
impl Drop for EventConsumer {
    fn drop(&mut self) {
        let consumer = Arc::clone(&self.consumer);
        let closed = Arc::clone(&self.closed);
        let closing = std::thread::Builder::new()
            .name("kafka-consumer-close".to_owned())
            .spawn(move || {
                // Wait until this is the last handle (the field's goes right after this `drop`
                // returns), so the close happens on this thread.
                while Arc::strong_count(&consumer) > 1 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                drop(consumer);
                closed.notify_one();
            });
        if let Err(error) = closing {
            tracing::debug!(%error, "no thread for the consumer's close; closing in place");
        }
    }
}

impl EventConsumer {
    /// A consumer in group `<prefix>.<service>` (`.<suffix>` after it when
    /// `consumer.group_suffix` is set: [`ConsumerConfig::group`]) subscribed to the topics of the
    /// services `events` consumes from (and the service's replay topic), applying events into
    /// `pool` with units of work publishing through `outbox`, dead-lettering with `producer` (the
    /// service's one producer: each librdkafka client has threads that wake even when idle).
    pub fn new(
        service: &'static str,
        kafka: &KafkaConfig,
        pool: PgPool,
        outbox: Outbox,
        events: Events,
        config: ConsumerConfig,
        producer: EventProducer,
    ) -> anyhow::Result<Self> {
        // The producers' topics, and the service's own replay topic (operators' replays of its
        // dead letters, super::dead_letters).
        let topics: Vec<String> = events
            .producers()
            .iter()
            .map(|producer| super::topic_for(&kafka.topic_prefix, producer))
            .chain([dead_letters::replay_topic_for(&kafka.topic_prefix, service)])
            .collect();
        let group = config.group(&kafka.topic_prefix, service);
        let consumer: StreamConsumer = super::kafka::client_config(kafka)
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                kafka.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (kafka.session_timeout.as_millis() / 4).max(100).to_string(),
            )
            .set("topic.metadata.refresh.interval.ms", "5000")
            .set(
                "allow.auto.create.topics",
                if kafka.auto_create_topics {
                    "true"
                } else {
                    "false"
                },
            )
            .create()?;
        Ok(EventConsumer {
            service,
            pool,
            outbox,
            consumer: Arc::new(consumer),
            dead_letters: producer,
            dead_letter_topic: super::envelope::dead_letter_topic_for(&kafka.topic_prefix, service),
            events,
            config,
            topics,
            auto_create_topics: kafka.auto_create_topics,
            closed: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Subscribes (creating missing topics first where that is allowed), then consumes until
    /// `stop` is cancelled, and commits the stored offsets.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        if self.auto_create_topics {
            self.create_missing_topics().await;
        }
        let topic_names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.consumer.subscribe(&topic_names)?;
        // Counters exist from the start at 0, so an alert on `increase()` sees the first one.
        for topic in &self.topics {
            for counter in [CONSUMER_DEAD_LETTERED, CONSUMER_TRANSIENT_FAILURES] {
                metrics::counter!(counter, "topic" => topic.clone()).increment(0);
            }
        }
        let mut lag_timer = tokio::time::interval(LAG_INTERVAL);
        let mut last_prune = Instant::now();
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => break,
                _ = lag_timer.tick() => {
                    self.record_lag();
                    if last_prune.elapsed() >= INBOX_PRUNE_INTERVAL {
                        last_prune = Instant::now();
                        self.prune_inbox().await;
                    }
                    continue;
                }
                received = self.consumer.recv() => received,
            };
            let message = match received {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "error while consuming; continuing");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let Some(outcome) = self.process(&message, &stop).await else {
                break; // stopped during a retry: the offset stays, the message comes again.
            };
            metrics::counter!(CONSUMER_EVENTS, "topic" => message.topic().to_owned(), "outcome" => outcome.label())
                .increment(1);
            if let Err(error) = self.consumer.store_offset_from_message(&message) {
                tracing::warn!(%error, "could not store the offset; the message may be redelivered");
            }
        }
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(%error, "nothing to commit at stop");
        }
        let (service, closed) = (self.service, Arc::clone(&self.closed));
        drop(self);
        if tokio::time::timeout(CLOSE_WAIT, closed.notified())
            .await
            .is_err()
        {
            tracing::warn!(
                service,
                "the consumer did not leave its group within {CLOSE_WAIT:?}"
            );
        }
        tracing::info!(service, "event consumer stopped");
        Ok(())
    }

    /// Asks the broker for each subscribed topic by name, which creates it where auto-creation is
    /// on (local runs and tests). Subscribing to a topic that does not exist yet works in
    /// principle, but the group then only rebalances when a later metadata refresh finds the
    /// topic, and librdkafka's mock cluster sometimes never does: a consumer started before its
    /// producer could wait forever for its first event. A failure here is only logged; the
    /// subscription still picks the topic up when it appears.
    async fn create_missing_topics(&self) {
        let consumer = self.consumer.clone();
        let topics = self.topics.clone();
        let asked = tokio::task::spawn_blocking(move || {
            for topic in &topics {
                if let Err(error) = consumer.fetch_metadata(Some(topic), TOPIC_METADATA_TIMEOUT) {
                    tracing::warn!(%topic, %error, "could not create or find a subscribed topic");
                }
            }
        })
        .await;
        if let Err(error) = asked {
            tracing::warn!(%error, "asking for the subscribed topics failed");
        }
    }

    /// Processes one message to its final outcome; `None` if `stop` interrupted a retry.
    async fn process(
        &self,
        message: &BorrowedMessage<'_>,
        stop: &CancellationToken,
    ) -> Option<Outcome> {
        let headers = header_map(message);
        // OpenTelemetry's messaging conventions: a CONSUMER span `<topic> process`.
        let span = tracing::info_span!(
            "consume",
            otel.name = %format!("{} process", message.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = message.topic(),
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
            messaging.consumer.group.name = self.service,
            event_type = tracing::field::Empty,
            event_id = tracing::field::Empty,
        );
        set_remote_parent(&span, &headers);
        async {
            let envelope = match decode_envelope(message.payload()) {
                Ok(envelope) => envelope,
                Err(reason) => return self.dead_letter(message, None, &reason, 1, stop).await,
            };
            let span = tracing::Span::current();
            span.record("event_type", envelope.event_type.as_str());
            span.record("event_id", envelope.event_id.as_str());
            // Failures of the work itself count towards `consumer.max_attempts`; failures of the
            // infrastructure (crate::fault) are retried without limit and never dead-letter.
            let mut failures: u32 = 0;
            let mut outages: u32 = 0;
            loop {
                let error = match self.apply_once(message, &envelope).await {
                    Ok(outcome) => {
                        if outcome == Outcome::SkippedUnknownType {
                            tracing::info!(event_type = %envelope.event_type, "skipped an event type this service does not handle");
                        }
                        if outages > 0 {
                            tracing::info!(outages, "applied after the infrastructure came back");
                        }
                        return Some(outcome);
                    }
                    Err(HandlerError::Permanent(reason)) => {
                        return self.dead_letter(message, Some(&envelope), &reason, failures + 1, stop).await;
                    }
                    Err(HandlerError::Transient(error)) => error,
                };
                let delay = if crate::fault::is_transient_anyhow(&error) {
                    outages = outages.saturating_add(1);
                    metrics::counter!(CONSUMER_TRANSIENT_FAILURES, "topic" => message.topic().to_owned()).increment(1);
                    let delay = self.backoff(outages);
                    tracing::warn!(error = %format!("{error:#}"), outages, delay_ms = delay.as_millis() as u64, "infrastructure unavailable; retrying without limit (the offset waits)");
                    delay
                } else {
                    failures += 1;
                    if failures >= self.config.max_attempts {
                        let reason = format!("failed {failures} times, last: {error:#}");
                        return self.dead_letter(message, Some(&envelope), &reason, failures, stop).await;
                    }
                    metrics::counter!(CONSUMER_RETRIES, "topic" => message.topic().to_owned()).increment(1);
                    let delay = self.backoff(failures);
                    tracing::warn!(error = %format!("{error:#}"), attempt = failures, delay_ms = delay.as_millis() as u64, "event handler failed; retrying");
                    delay
                };
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn apply_once(
        &self,
        message: &BorrowedMessage<'_>,
        envelope: &EventEnvelope,
    ) -> Result<Outcome, HandlerError> {
        let event_id = uuid::Uuid::parse_str(&envelope.event_id)
            .map_err(|_| HandlerError::Permanent("envelope event_id is not a UUID".to_owned()))?;
        let known = self.events.handles(&envelope.event_type);
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO inbox (event_id, event_type, topic, kafka_partition, kafka_offset, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (event_id) DO UPDATE SET outcome = EXCLUDED.outcome, detail = NULL, \
               topic = EXCLUDED.topic, kafka_partition = EXCLUDED.kafka_partition, \
               kafka_offset = EXCLUDED.kafka_offset, received_at = now() \
             WHERE inbox.outcome = 'dead_lettered'",
        )
        .bind(event_id)
        .bind(&envelope.event_type)
        .bind(message.topic())
        .bind(message.partition())
        .bind(message.offset())
        .bind(if known { "applied" } else { "skipped_unknown_type" })
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            tracing::debug!(event_id = %event_id, "duplicate delivery; already applied");
            return Ok(Outcome::Duplicate);
        }
        if !known {
            tx.commit().await?;
            return Ok(Outcome::SkippedUnknownType);
        }
        let mut work = UnitOfWork::new(tx, self.outbox.clone());
        self.events.apply(&mut work, envelope).await?;
        work.commit().await?;
        Ok(Outcome::Applied)
    }

    /// Sends the message to the dead-letter topic (retrying until Kafka takes it or `stop`).
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        envelope: Option<&EventEnvelope>,
        reason: &str,
        attempts: u32,
        stop: &CancellationToken,
    ) -> Option<Outcome> {
        tracing::error!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            event_id = envelope.map(|e| e.event_id.as_str()).unwrap_or("unknown"),
            reason,
            "sending message to the dead-letter topic"
        );
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let attempts_text = attempts.to_string();
        let mut delay = self.config.initial_backoff;
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                for header in original.iter() {
                    headers = headers.insert(header);
                }
            }
            for (key, value) in [
                (dead_letters::REASON_HEADER, reason),
                (dead_letters::SOURCE_TOPIC_HEADER, message.topic()),
                (dead_letters::SOURCE_PARTITION_HEADER, partition.as_str()),
                (dead_letters::SOURCE_OFFSET_HEADER, offset.as_str()),
                (dead_letters::ATTEMPTS_HEADER, attempts_text.as_str()),
                (dead_letters::CONSUMER_HEADER, self.service),
            ] {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let sent = self.dead_letters.send(
                &self.dead_letter_topic,
                message.key(),
                message.payload(),
                headers,
            );
            let delivered = match sent {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("delivery report lost".to_owned()),
                },
                Err(error) => Err(error.to_string()),
            };
            match delivered {
                Ok(()) => break,
                Err(error) => {
                    tracing::error!(%error, "dead-letter topic unavailable; retrying (the partition waits)");
                    tokio::select! {
                        () = stop.cancelled() => return None,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.config.max_backoff);
                }
            }
        }
        metrics::counter!(CONSUMER_DEAD_LETTERED, "topic" => message.topic().to_owned())
            .increment(1);
        if let Some(event_id) = envelope.and_then(|e| uuid::Uuid::parse_str(&e.event_id).ok()) {
            let recorded = sqlx::query(
                "INSERT INTO inbox (event_id, event_type, topic, kafka_partition, kafka_offset, outcome, detail) \
                 VALUES ($1, $2, $3, $4, $5, 'dead_lettered', $6) \
                 ON CONFLICT (event_id) DO UPDATE SET detail = EXCLUDED.detail \
                 WHERE inbox.outcome = 'dead_lettered'",
            )
            .bind(event_id)
            .bind(envelope.map(|e| e.event_type.as_str()).unwrap_or_default())
            .bind(message.topic())
            .bind(message.partition())
            .bind(message.offset())
            .bind(reason)
            .execute(&self.pool)
            .await;
            if let Err(error) = recorded {
                tracing::warn!(%error, "could not record the dead-lettered event in the inbox");
            }
        }
        Some(Outcome::DeadLettered)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.config
            .initial_backoff
            .saturating_mul(factor)
            .min(self.config.max_backoff)
    }

    fn record_lag(&self) {
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(assignment) = consumer.assignment() else {
                return;
            };
            let Ok(positions) = consumer.position() else {
                return;
            };
            for element in assignment.elements() {
                let (topic, partition) = (element.topic(), element.partition());
                let Ok((_, high)) =
                    consumer.fetch_watermarks(topic, partition, Duration::from_secs(2))
                else {
                    continue;
                };
                let position =
                    positions
                        .find_partition(topic, partition)
                        .and_then(|p| match p.offset() {
                            Offset::Offset(offset) => Some(offset),
                            _ => None,
                        });
                if let Some(position) = position {
                    metrics::gauge!(CONSUMER_LAG, "topic" => topic.to_owned(), "partition" => partition.to_string())
                        .set((high - position).max(0) as f64);
                }
            }
        });
    }

    /// Deletes inbox rows older than `consumer.inbox_retention`.
    async fn prune_inbox(&self) {
        match prune_inbox(&self.pool, self.config.inbox_retention).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned old inbox rows"),
            Err(error) => tracing::warn!(%error, "could not prune the inbox"),
        }
    }

    /// The partitions currently assigned (for tests and diagnostics).
    pub fn assignment(&self) -> anyhow::Result<TopicPartitionList> {
        Ok(self.consumer.assignment()?)
    }
}

/// Deletes inbox rows received more than `retention` ago; returns how many. The retention must
/// exceed the topics' (a redelivered event must still find its row).
pub async fn prune_inbox(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM inbox WHERE received_at < now() - make_interval(secs => $1::float8)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

fn decode_envelope(payload: Option<&[u8]>) -> Result<EventEnvelope, String> {
    let bytes = payload.ok_or_else(|| "message has no payload".to_owned())?;
    let envelope = EventEnvelope::decode(bytes)
        .map_err(|error| format!("envelope does not decode: {error}"))?;
    if envelope.event_type.is_empty() {
        return Err("envelope has no event_type".to_owned());
    }
    if uuid::Uuid::parse_str(&envelope.event_id).is_err() {
        return Err("envelope event_id is not a UUID".to_owned());
    }
    Ok(envelope)
}

fn header_map(message: &BorrowedMessage<'_>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            if header.key == EVENT_TYPE_HEADER {
                continue;
            }
            if let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                map.insert(header.key.to_owned(), value.to_owned());
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_an_envelope() {
        assert!(decode_envelope(None).is_err());
        assert!(decode_envelope(Some(b"\xff\xff\xff not protobuf")).is_err());
        let no_type = EventEnvelope {
            event_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        };
        assert_eq!(
            decode_envelope(Some(&no_type.encode_to_vec())).expect_err("no type"),
            "envelope has no event_type"
        );
        let bad_id = EventEnvelope {
            event_id: "42".to_owned(),
            event_type: "x".to_owned(),
            ..Default::default()
        };
        assert!(decode_envelope(Some(&bad_id.encode_to_vec())).is_err());
    }
}
