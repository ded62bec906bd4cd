//! One mapping from service errors to `tonic::Status` (DESIGN.md §5).
//!
//! Invalid input becomes INVALID_ARGUMENT with one field violation per broken rule (and the same
//! text in the message, for clients that do not read error details). Internal errors are logged
//! with their cause and reach the caller only as "internal error". Database constraint
//! violations become ALREADY_EXISTS / FAILED_PRECONDITION.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

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
    #[error("{0}")]
    FailedPrecondition(String),
    /// A dependency is not reachable right now; the caller may retry.
    #[error("service temporarily unavailable: {0}")]
    Unavailable(String),
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

    /// An internal error from any cause.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if let Some(db_error) = error.as_database_error() {
            match db_error.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    return ApiError::AlreadyExists(format!(
                        "already exists ({})",
                        db_error.constraint().unwrap_or("unique constraint")
                    ));
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return ApiError::FailedPrecondition(format!(
                        "refers to something that does not exist ({})",
                        db_error.constraint().unwrap_or("foreign key")
                    ));
                }
                _ => {}
            }
        }
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ApiError::Unavailable("database".to_owned())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<ApiError> for Status {
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
            ApiError::FailedPrecondition(message) => Status::failed_precondition(message),
            ApiError::Unavailable(what) => {
                tracing::warn!(dependency = %what, "request failed: dependency unavailable");
                Status::unavailable(format!("temporarily unavailable: {what}"))
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed with an internal error");
                Status::internal("internal error")
            }
        }
    }
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

    /// Records `rule` against `field` when `value` is longer than `max` characters.
    pub fn check_max_chars(&mut self, field: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
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

/// Unwraps a value that validation has already proven present. Returns an internal error
/// instead of panicking if a handler's validation and unwrapping ever disagree.
pub fn validated<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "{field} passed validation but has no value"
        ))
    })
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
    fn no_violations_is_ok() {
        let mut violations = Violations::new();
        assert_eq!(violations.check::<_, String>("x", Ok(3)), Some(3));
        assert!(violations.finish().is_ok());
    }
}
