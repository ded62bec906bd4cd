//! Which failures are the infrastructure's and which are the work's own.
//!
//! A failure caused by the infrastructure — the database connection lost or refused, a backend
//! terminated (a failover, a restart, `pg_terminate_backend`), the pool timing out, "too many
//! clients", a serialization failure or deadlock, the disk full — says nothing about the request
//! or the event: the same work succeeds once the infrastructure is back. So such a failure is
//! **transient**: an RPC answers UNAVAILABLE with `RetryInfo`, and the consumer retries the event
//! without limit (with backoff) instead of dead-lettering it. Anything else is the work's own
//! failure: an invalid event is dead-lettered, a bug answers INTERNAL.
//!
//! The classification walks an error's whole `source()` chain, so a database error wrapped in
//! `anyhow` or in a service's own error type is still recognised.

use std::error::Error;

use crate::error::ApiError;

/// SQLSTATE codes (besides classes `08` and `53`) that mean "retry the same work later".
const TRANSIENT_SQLSTATES: &[&str] = &[
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "55P03", // lock_not_available
    "57014", // query_canceled (statement timeout, a cancel request)
    "57P01", // admin_shutdown: "terminating connection due to administrator command"
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now (starting up, in recovery)
    "57P05", // idle_session_timeout
    "25P03", // idle_in_transaction_session_timeout
    "58000", // system_error
    "58030", // io_error
];

/// Whether `error`, or anything in its source chain, is a failure of the infrastructure that
/// the same work survives when retried later.
pub fn is_transient(error: &(dyn Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if is_transient_itself(error) {
            return true;
        }
        current = error.source();
    }
    false
}

/// [`is_transient`] for an `anyhow::Error` (which is not itself a `std::error::Error`; its
/// outermost error and that one's sources are its chain).
pub fn is_transient_anyhow(error: &anyhow::Error) -> bool {
    is_transient(error.as_ref())
}

fn is_transient_itself(error: &(dyn Error + 'static)) -> bool {
    if let Some(database) = error.downcast_ref::<sqlx::Error>() {
        return is_transient_sqlx(database);
    }
    if let Some(api) = error.downcast_ref::<ApiError>() {
        return matches!(api, ApiError::Unavailable(_));
    }
    error.downcast_ref::<std::io::Error>().is_some()
}

/// Whether a database failure is the infrastructure's (see the module docs).
pub fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| is_transient_sqlstate(&code)),
        _ => false,
    }
}

/// Whether a SQLSTATE names a transient condition: a connection exception (class 08),
/// insufficient resources (class 53, "too many clients" among them), or one of
/// [`TRANSIENT_SQLSTATES`].
pub fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || TRANSIENT_SQLSTATES.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infrastructure_sqlstates_are_transient_and_data_errors_are_not() {
        for code in [
            "08006", "08001", "53300", "53100", "40001", "40P01", "57P01",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        // unique, foreign key, check violations, bad input, undefined column: the work's own.
        for code in ["23505", "23503", "23514", "22003", "42703"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn a_lost_connection_is_transient_however_deeply_wrapped() {
        let lost = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        let wrapped = anyhow::Error::from(lost).context("applying GrantRequested");
        assert!(is_transient_anyhow(&wrapped));
        let api = ApiError::internal(wrapped);
        assert!(is_transient(&api));
        assert!(is_transient_anyhow(&anyhow::Error::from(api)));
        assert!(is_transient_sqlx(&sqlx::Error::PoolTimedOut));
    }

    #[test]
    fn a_missing_row_or_a_plain_bug_is_not_transient() {
        assert!(!is_transient_sqlx(&sqlx::Error::RowNotFound));
        assert!(!is_transient_anyhow(&anyhow::anyhow!(
            "grant 42 is not known"
        )));
        assert!(!is_transient(&ApiError::refused("CLOSED", "closed")));
        assert!(is_transient(&ApiError::Unavailable("database".to_owned())));
    }
}
