//! One mapping from service errors to `tonic::Status` (DESIGN.md §5).
//!
//! Invalid input becomes INVALID_ARGUMENT with one field violation per broken rule (and the same
//! text in the message, for clients that do not read error details). A refused transition is
//! FAILED_PRECONDITION with a machine-readable reason (`google.rpc.ErrorInfo`), so a client can
//! branch on it. "Not arrived yet" is UNAVAILABLE with `google.rpc.RetryInfo`: retrying helps.
//! A failure of the infrastructure (the database lost, the pool exhausted, "too many clients";
//! [`crate::fault`]) is UNAVAILABLE with `RetryInfo` too, however the service wrapped it: INTERNAL
//! is left for bugs. Internal errors are logged with their cause and reach the caller only as
//! "internal error".
//!
//! A unique violation is ALREADY_EXISTS only on a constraint the service names in its
//! description ([`ConstraintMessages`]), with the service's message; any other unique or
//! foreign-key violation is a bug (INTERNAL). A constraint name never reaches a client.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The domain of every [`ApiError::FailedPrecondition`] reason (`google.rpc.ErrorInfo.domain`).
pub const ERROR_DOMAIN: &str = "ekspertbistand.nav.no";

/// The unique constraints a service expects to be violated by a valid request, with the message
/// its callers get (ALREADY_EXISTS): `(constraint name, message)`.
pub type ConstraintMessages = &'static [(&'static str, &'static str)];

/// One broken input rule: the request field (dotted path) and the rule in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Dotted path of the field, e.g. `facts.municipality_number`.
    pub field: String,
    /// The rule the value broke, e.g. `must be exactly 4 digits`.
    pub rule: String,
}

/// An error a handler returns; converted to a `Status` in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request broke input rules; nothing was changed.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the current state does not allow it.
    #[error("{message}")]
    FailedPrecondition {
        /// Machine-readable reason, UPPER_SNAKE_CASE (e.g. `AGREEMENT_ENDED`).
        reason: &'static str,
        /// What a person reads.
        message: String,
    },
    /// The caller may not do this to this thing (beyond its role), e.g. decide its own
    /// recommendation.
    #[error("{message}")]
    PermissionDenied {
        /// Machine-readable reason.
        reason: &'static str,
        /// What a person reads.
        message: String,
    },
    /// Something this request depends on has not reached this service yet (an event still on
    /// its way); the same request will succeed later.
    #[error("not arrived yet: {what}")]
    NotArrivedYet {
        /// What is missing, e.g. `case 0199…`.
        what: String,
        /// When a retry makes sense.
        retry_after: Duration,
    },
    /// A dependency is not reachable right now; the caller may retry.
    #[error("service temporarily unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint was violated; what that means is the service's to say
    /// ([`ApiError::into_status`]).
    #[error("unique constraint {constraint} violated")]
    UniqueViolation {
        /// The constraint's name (never shown to callers).
        constraint: String,
    },
    /// A bug or an unexpected failure; details are logged, not returned.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.rule))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// A single-field INVALID_ARGUMENT.
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        ApiError::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            rule: rule.into(),
        }])
    }

    /// A refused transition: FAILED_PRECONDITION with `reason` (machine-readable).
    pub fn refused(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// "Not arrived yet, retry": UNAVAILABLE with a retry delay.
    pub fn not_arrived_yet(what: impl Into<String>) -> Self {
        ApiError::NotArrivedYet {
            what: what.into(),
            retry_after: Duration::from_secs(1),
        }
    }

    /// An internal error from any cause.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    /// The status a caller gets, with unique violations resolved by the service's
    /// `constraints`: a named one is ALREADY_EXISTS with its message, any other INTERNAL.
    pub fn into_status(self, constraints: ConstraintMessages) -> Status {
        match self {
            ApiError::UniqueViolation { constraint } => {
                match constraints.iter().find(|(name, _)| *name == constraint) {
                    Some((_, message)) => Status::already_exists(*message),
                    None => Status::from(ApiError::internal(anyhow::anyhow!(
                        "unexpected violation of unique constraint {constraint}"
                    ))),
                }
            }
            other => Status::from(other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if let Some(db_error) = error.as_database_error()
            && db_error.kind() == sqlx::error::ErrorKind::UniqueViolation
        {
            return ApiError::UniqueViolation {
                constraint: db_error.constraint().unwrap_or("unnamed").to_owned(),
            };
        }
        if crate::fault::is_transient_sqlx(&error) {
            tracing::warn!(error = %error, "database unavailable");
            return ApiError::Unavailable("database".to_owned());
        }
        ApiError::internal(error)
    }
}

impl From<ApiError> for Status {
    /// The status of `error` for a service that names no constraints (see
    /// [`ApiError::into_status`]).
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidArgument(violations) => {
                let message = format!("invalid request: {}", describe(&violations));
                let mut details = ErrorDetails::new();
                for violation in &violations {
                    details.add_bad_request_violation(&violation.field, &violation.rule);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::NotFound(message) => Status::not_found(message),
            ApiError::AlreadyExists(message) => Status::already_exists(message),
            ApiError::FailedPrecondition { reason, message } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
            ),
            ApiError::PermissionDenied { reason, message } => Status::with_error_details(
                Code::PermissionDenied,
                message,
                ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
            ),
            ApiError::NotArrivedYet { what, retry_after } => Status::with_error_details(
                Code::Unavailable,
                format!("not arrived yet: {what}; retry"),
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            ApiError::Unavailable(what) => {
                tracing::warn!(dependency = %what, "request failed: dependency unavailable");
                unavailable(&what)
            }
            unique @ ApiError::UniqueViolation { .. } => unique.into_status(&[]),
            // A failure of the infrastructure wrapped as internal by a service is still the
            // infrastructure's: the caller should retry, not report a bug.
            ApiError::Internal(cause) if crate::fault::is_transient_anyhow(&cause) => {
                tracing::warn!(error = %format!("{cause:#}"), "request failed: infrastructure unavailable");
                unavailable("database")
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed with an internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// How long a caller should wait before retrying a request the infrastructure failed.
pub const RETRY_AFTER_UNAVAILABLE: Duration = Duration::from_secs(1);

/// UNAVAILABLE for `what`, with `RetryInfo`: the same request succeeds later.
fn unavailable(what: &str) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        format!("temporarily unavailable: {what}; retry"),
        ErrorDetails::with_retry_info(Some(RETRY_AFTER_UNAVAILABLE)),
    )
}

/// Collects field violations while a request is validated, so the caller learns about every
/// broken rule at once.
#[derive(Debug, Default)]
pub struct Violations {
    found: Vec<FieldViolation>,
}

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the error of `result` against `field`; returns the value if it was valid.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// Records a violation.
    pub fn add(&mut self, field: &str, rule: impl Into<String>) {
        self.found.push(FieldViolation {
            field: field.to_owned(),
            rule: rule.into(),
        });
    }

    /// Whether nothing was found so far.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// `Ok` if no rule was broken, else INVALID_ARGUMENT with every violation.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArgument(self.found))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let mut violations = Violations::new();
        violations.add("facts.case_date", "must be a date YYYY-MM-DD");
        violations.add("request_id", "must be a UUID");
        let status = Status::from(violations.finish().expect_err("two violations"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains("facts.case_date: must be a date YYYY-MM-DD")
        );
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("bad request details");
        let fields: Vec<_> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["facts.case_date", "request_id"]);
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let status = Status::from(ApiError::internal(anyhow::anyhow!(
            "password=secret in DSN"
        )));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn a_named_unique_violation_is_already_exists_and_any_other_is_internal() {
        let violation = || ApiError::UniqueViolation {
            constraint: "agreements_reference_unique".to_owned(),
        };
        let named = violation().into_status(&[(
            "agreements_reference_unique",
            "agreement_reference is already registered",
        )]);
        assert_eq!(named.code(), Code::AlreadyExists);
        assert_eq!(named.message(), "agreement_reference is already registered");
        let unnamed = violation().into_status(&[("other_constraint", "x")]);
        assert_eq!(unnamed.code(), Code::Internal);
        assert_eq!(unnamed.message(), "internal error");
        assert!(!unnamed.message().contains("agreements_reference_unique"));
    }

    #[test]
    fn a_refused_transition_carries_its_reason() {
        let status = Status::from(ApiError::refused(
            "AGREEMENT_ENDED",
            "the agreement has ended",
        ));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("ErrorInfo");
        assert_eq!(info.reason, "AGREEMENT_ENDED");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn not_arrived_yet_is_unavailable_with_retry_info() {
        let status = Status::from(ApiError::not_arrived_yet("case 42"));
        assert_eq!(status.code(), Code::Unavailable);
        let retry = status
            .get_error_details()
            .retry_info()
            .cloned()
            .expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_lost_database_is_unavailable_with_retry_info_never_internal() {
        let terminated = || {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "terminating connection due to administrator command",
            ))
        };
        for status in [
            Status::from(ApiError::from(terminated())),
            Status::from(ApiError::internal(terminated())),
            Status::from(ApiError::from(sqlx::Error::PoolTimedOut)),
        ] {
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            let retry = status.get_error_details().retry_info().cloned();
            assert_eq!(
                retry.and_then(|retry| retry.retry_delay),
                Some(RETRY_AFTER_UNAVAILABLE)
            );
            assert!(
                !status.message().contains("administrator"),
                "no cause leaks"
            );
        }
        let bug = Status::from(ApiError::from(sqlx::Error::RowNotFound));
        assert_eq!(bug.code(), Code::Internal);
    }

    #[test]
    fn no_violations_is_ok() {
        let mut violations = Violations::new();
        assert_eq!(violations.check::<_, String>("x", Ok(3)), Some(3));
        assert!(violations.finish().is_ok());
    }
}
