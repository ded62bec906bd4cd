//! The write side of the transactional outbox: a handler records the event in the same
//! transaction as the state change, so an event is published if and only if the change
//! committed. The relay ([`super::relay`]) publishes the rows afterwards.
//!
//! Most handlers call [`Outbox::record`] inside their transaction. A handler whose change is a
//! single `INSERT` can instead build the row with [`Outbox::pending`] and insert it in the same
//! statement (a data-modifying CTE, see [`PendingEvent`]): one round trip and no explicit
//! transaction, which is what keeps routing's OpenCase close to the database's own speed.

use prost::{Message, Name};
use sqlx::PgConnection;

use super::envelope::{EventSubject, wrap};
use crate::trace_context::current_context_fields;

/// Where a service's events go.
#[derive(Debug, Clone)]
pub struct Outbox {
    producer: &'static str,
    topic: String,
}

/// The outbox columns a [`PendingEvent`] fills, in its field order, as a literal for `concat!`
/// so statements that insert outbox rows stay static SQL.
#[macro_export]
macro_rules! outbox_columns {
    () => {
        "event_id, topic, message_key, event_type, payload, trace_context"
    };
}

/// One outbox row, ready to be inserted: the values of the columns named by
/// [`outbox_columns!`](crate::outbox_columns), in that order.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// The envelope's event id (UUID v7).
    pub event_id: uuid::Uuid,
    /// The topic it goes to.
    pub topic: String,
    /// The Kafka message key.
    pub message_key: String,
    /// The payload's full protobuf name.
    pub event_type: String,
    /// The encoded envelope.
    pub payload: Vec<u8>,
    /// The W3C trace context of the handler's span, sent as Kafka headers.
    pub trace_context: serde_json::Value,
}

impl Outbox {
    /// The outbox of `service`, publishing on `<topic_prefix>.<service>.v1`.
    pub fn for_service(topic_prefix: &str, service: &'static str) -> Self {
        Outbox {
            producer: service,
            topic: super::envelope::topic_for(topic_prefix, service),
        }
    }

    /// The topic this outbox publishes on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The outbox row of `payload` as an event of `subject`, in a new envelope, with the current
    /// trace context. Nothing is written until the caller inserts it.
    pub fn pending<M: Message + Name>(
        &self,
        subject: &EventSubject,
        payload: &M,
    ) -> Result<PendingEvent, sqlx::Error> {
        let envelope = wrap(self.producer, subject, payload);
        let event_id = uuid::Uuid::parse_str(&envelope.event_id)
            .map_err(|error| sqlx::Error::Protocol(format!("event id is not a UUID: {error}")))?;
        let trace_context = serde_json::to_value(current_context_fields())
            .map_err(|error| sqlx::Error::Protocol(error.to_string()))?;
        Ok(PendingEvent {
            event_id,
            topic: self.topic.clone(),
            message_key: subject.key().to_owned(),
            payload: envelope.encode_to_vec(),
            event_type: envelope.event_type,
            trace_context,
        })
    }

    /// Records `payload` as an event of `subject` inside the caller's transaction. Returns the
    /// event id. The current trace context is stored with it and sent as Kafka headers.
    pub async fn record<M: Message + Name>(
        &self,
        connection: &mut PgConnection,
        subject: &EventSubject,
        payload: &M,
    ) -> Result<uuid::Uuid, sqlx::Error> {
        let event = self.pending(subject, payload)?;
        sqlx::query(concat!(
            "INSERT INTO outbox (",
            crate::outbox_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(event.event_id)
        .bind(&event.topic)
        .bind(&event.message_key)
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(&event.trace_context)
        .execute(connection)
        .await?;
        Ok(event.event_id)
    }
}
