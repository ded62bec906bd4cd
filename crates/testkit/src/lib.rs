//! What the tests, the benchmark and the dev launcher need to run the real system: PostgreSQL
//! databases, the broker (mock cluster process or a real Kafka), a local token issuer, and the
//! services in-process or as processes. Nothing here fakes a part of the system; the only
//! stand-in is the token issuer, which lies outside it. Valid requests to the services'
//! APIs ([`fixtures`]) are built here too, so the tests and the launcher send the same ones.

pub mod binaries;
pub mod broker;
pub mod fixtures;
pub mod issuer;
pub mod postgres;
pub mod process;
pub mod services;
