//! What a test reads off a refused call: the fields an INVALID_ARGUMENT names and the reason a
//! FAILED_PRECONDITION or PERMISSION_DENIED carries (`google.rpc.ErrorInfo`). Every service's
//! bad-input and refused-transition tests assert on these, so they are written once.

use tonic_types::StatusExt;

/// The fields named by the `BadRequest` field violations of `status` (empty without any).
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|violation| violation.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The `ErrorInfo` reason of `status` ("" without one).
pub fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}
