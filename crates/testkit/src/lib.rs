//! What the tests, the benchmark and the dev launcher need to run the real system: PostgreSQL
//! databases, the broker (mock cluster process or a real Kafka), a local token issuer, and the
//! services in-process or as processes. Nothing here fakes a part of the system; the only
//! stand-ins are the token issuer and the trace collector, which lie outside it. Valid requests to the
//! services' APIs ([`fixtures`], [`scenarios::requests`]) are built here too, and the walks
//! through both flows with the people who call them ([`scenarios`]), so the tests and the
//! launcher send the same ones.

pub mod binaries;
pub mod broker;
pub mod catalog;
pub mod concurrency;
pub mod events;
pub mod faults;
pub mod fixtures;
pub mod issuer;
pub mod otlp;
pub mod people;
pub mod postgres;
pub mod process;
pub mod scenarios;
pub mod service_under_test;
pub mod services;
pub mod status;
pub mod topic_reader;
