//! The platform every ekspertbistand service stands on, written once: configuration,
//! telemetry and trace propagation, the gRPC host (health, reflection, authentication, metrics,
//! error mapping, graceful shutdown), the database pool and migrations, and messaging (outbox
//! relay and consumer with inbox and dead-letter topic).
//!
//! A service crate describes itself once ([`service::ServiceDescription`]) and supplies its
//! handlers, its migrations and its event handlers; everything that makes it operable comes from
//! here, so every service reads and behaves the same.

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod change;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod fault;
pub mod grpc;
pub mod idempotency;
pub mod jobs;
pub mod json_log;
pub mod messaging;
pub mod metrics;
pub mod operator;
pub mod payment;
pub mod privacy;
pub mod retention;
pub mod service;
pub mod shutdown;
pub mod span_ids;
pub mod stored_codes;
pub mod telemetry;
pub mod tls;
pub mod trace_context;
pub mod validate;

pub use error::{ApiError, Violations};

/// Crates the platform's macros expand to, so a service needs no direct dependency on them.
pub mod reexports {
    pub use sqlx;
    pub use tokio;
    pub use tonic;
}
