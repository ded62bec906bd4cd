//! Building and reading the event envelope (proto `EventEnvelope`, DESIGN.md §3): event id
//! (UUID v7), type (the payload's full protobuf name), occurred-at, case id, aggregate id,
//! schema version, producer, payload.

use ekb_proto::v1::EventEnvelope;
use prost::{Message, Name};

/// Kafka header that repeats the event type, so consumers can skip unknown types cheaply.
pub const EVENT_TYPE_HEADER: &str = "ekb-event-type";

/// Schema version of every v1 payload.
pub const SCHEMA_VERSION: u32 = 1;

/// The topic a service publishes on: `<prefix>.<service>.v1` (prefix `ekspertbistand`).
pub fn topic_for(prefix: &str, service: &str) -> String {
    format!("{prefix}.{service}.v1")
}

/// The dead-letter topic of a consuming service: `<prefix>.<service>.dlq.v1`.
pub fn dead_letter_topic_for(prefix: &str, service: &str) -> String {
    format!("{prefix}.{service}.dlq.v1")
}

/// The full protobuf name of a payload type, used as `event_type`.
pub fn event_type_of<M: Name>() -> String {
    M::full_name()
}

/// What an event belongs to: the Kafka key is the case id when there is one, else the
/// aggregate id.
#[derive(Debug, Clone)]
pub struct EventSubject {
    /// The case, if the event belongs to one.
    pub case_id: Option<String>,
    /// The aggregate that changed.
    pub aggregate_id: String,
}

impl EventSubject {
    /// An event of a case (the case is its own aggregate).
    pub fn case(case_id: impl Into<String>) -> Self {
        let case_id = case_id.into();
        EventSubject {
            aggregate_id: case_id.clone(),
            case_id: Some(case_id),
        }
    }

    /// An event of an aggregate outside any case (an agreement, an expert…).
    pub fn aggregate(aggregate_id: impl Into<String>) -> Self {
        EventSubject {
            case_id: None,
            aggregate_id: aggregate_id.into(),
        }
    }

    /// The Kafka message key.
    pub fn key(&self) -> &str {
        self.case_id.as_deref().unwrap_or(&self.aggregate_id)
    }
}

/// Wraps `payload` in a new envelope with a fresh UUID v7, dated by the system clock (for tests
/// and tools; a service's outbox dates its events by the service's clock, see [`wrap_at`]).
pub fn wrap<M: Message + Name>(
    producer: &str,
    subject: &EventSubject,
    payload: &M,
) -> EventEnvelope {
    wrap_at(producer, subject, payload, time::OffsetDateTime::now_utc())
}

/// Wraps `payload` in a new envelope with a fresh UUID v7 that occurred at `at`.
pub fn wrap_at<M: Message + Name>(
    producer: &str,
    subject: &EventSubject,
    payload: &M,
    at: time::OffsetDateTime,
) -> EventEnvelope {
    envelope_at(
        producer,
        subject,
        M::full_name(),
        payload.encode_to_vec(),
        at,
    )
}

/// A new envelope with a fresh UUID v7 around an encoded payload of type `event_type`, that
/// occurred at `at`.
pub fn envelope_at(
    producer: &str,
    subject: &EventSubject,
    event_type: String,
    payload: Vec<u8>,
    at: time::OffsetDateTime,
) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type,
        occurred_at: Some(prost_types::Timestamp {
            seconds: at.unix_timestamp(),
            nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
        }),
        case_id: subject.case_id.clone().unwrap_or_default(),
        aggregate_id: subject.aggregate_id.clone(),
        schema_version: SCHEMA_VERSION,
        producer: producer.to_owned(),
        payload,
    }
}

/// Decodes the payload of an envelope whose type is `M`.
pub fn unwrap_payload<M: Message + Name + Default>(
    envelope: &EventEnvelope,
) -> Result<M, prost::DecodeError> {
    M::decode(envelope.payload.as_slice())
}
