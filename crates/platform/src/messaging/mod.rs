//! Domain events on Kafka: the envelope, the unit of work and the transactional outbox with its
//! relay, and the consumer with typed event routing, inbox de-duplication and a dead-letter
//! topic (DESIGN.md §3).

pub mod consumer;
pub mod dead_letters;
pub mod envelope;
pub mod fields;
pub mod kafka;
pub mod outbox;
pub mod parts;
pub mod producer;
pub mod relay;
pub mod router;
pub mod unit_of_work;

pub use consumer::{EventConsumer, HandlerError, Outcome};
pub use envelope::{EventSubject, dead_letter_topic_for, topic_for};
pub use fields::EventFields;
pub use outbox::Outbox;
pub use producer::EventProducer;
pub use relay::OutboxRelay;
pub use router::{EventRouter, Events, Handles};
pub use unit_of_work::{Db, UnitOfWork};
