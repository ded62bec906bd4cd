//! Domain events on Kafka: the envelope, the transactional outbox and its relay, and the
//! consumer with inbox de-duplication and a dead-letter topic (DESIGN.md §3).

pub mod consumer;
pub mod envelope;
pub mod kafka;
pub mod outbox;
pub mod relay;

pub use consumer::{EventConsumer, EventHandler, HandlerError, Outcome};
pub use envelope::{EventSubject, dead_letter_topic_for, topic_for};
pub use outbox::{Outbox, PendingEvent};
pub use relay::OutboxRelay;
