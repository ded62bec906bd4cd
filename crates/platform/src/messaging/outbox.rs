//! The write side of the transactional outbox: the unit of work ([`super::UnitOfWork`]) records
//! each event in the same transaction as the state change, so an event is published if and only
//! if the change committed. The relay ([`super::relay`]) publishes the rows afterwards.

use prost::{Message, Name};
use sqlx::PgConnection;

use super::envelope::{EventSubject, envelope_at};
use crate::clock::{SharedClock, SystemClock};
use crate::trace_context::current_context_fields;

/// Where a service's events go, and the clock that dates them (`occurred_at`).
#[derive(Debug, Clone)]
pub struct Outbox {
    producer: &'static str,
    topic: String,
    clock: SharedClock,
}

impl Outbox {
    /// The outbox of `service`, publishing on `<topic_prefix>.<service>.v1`.
    pub fn for_service(topic_prefix: &str, service: &'static str) -> Self {
        Outbox {
            producer: service,
            topic: super::envelope::topic_for(topic_prefix, service),
            clock: std::sync::Arc::new(SystemClock),
        }
    }

    /// The same outbox dating its events by `clock` (the service's clock).
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Outbox { clock, ..self }
    }

    /// The current instant by the clock that dates this outbox's events (the service's).
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// The topic this outbox publishes on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Records `payload` as an event of `subject`, in a new envelope dated by the outbox's clock,
    /// inside the caller's transaction. Returns the event id. The current trace context is
    /// stored with it and sent as Kafka headers.
    pub async fn record<M: Message + Name>(
        &self,
        connection: &mut PgConnection,
        subject: &EventSubject,
        payload: &M,
    ) -> Result<uuid::Uuid, sqlx::Error> {
        self.record_encoded(connection, subject, M::full_name(), payload.encode_to_vec())
            .await
    }

    /// [`Self::record`] for a payload already encoded, of type `event_type` (the full name).
    pub async fn record_encoded(
        &self,
        connection: &mut PgConnection,
        subject: &EventSubject,
        event_type: String,
        payload: Vec<u8>,
    ) -> Result<uuid::Uuid, sqlx::Error> {
        let envelope = envelope_at(
            self.producer,
            subject,
            event_type,
            payload,
            self.clock.now(),
        );
        let event_id = uuid::Uuid::parse_str(&envelope.event_id)
            .map_err(|error| sqlx::Error::Protocol(format!("event id is not a UUID: {error}")))?;
        let trace_context = serde_json::to_value(current_context_fields())
            .map_err(|error| sqlx::Error::Protocol(error.to_string()))?;
        sqlx::query(
            "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, trace_context) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event_id)
        .bind(&self.topic)
        .bind(subject.key())
        .bind(&envelope.event_type)
        .bind(envelope.encode_to_vec())
        .bind(trace_context)
        .execute(connection)
        .await?;
        Ok(event_id)
    }
}
