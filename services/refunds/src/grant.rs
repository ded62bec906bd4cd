//! A claimable grant as its decisions see it — the grant and its deadline extensions — and the
//! rules of each change to it: a caseworker extends the refund deadline; applications asks to
//! cancel an unused grant (refunds is the one place that knows whether it is used) or reports
//! that it cancelled one.
//!
//! Like the claim's (`claim.rs`), each rule is a pure method returning a [`Decision`], unit-tested
//! without a database (`grant/tests.rs`) and applied through `change::apply` or, by an event
//! handler that owns the unit of work, `change::apply_in` (the store loads and saves a
//! [`Grant`]).

use ekb_platform::{
    ApiError,
    audit::AuditActor,
    auth::Caller,
    change::{Audit, Decision, Effects},
};
use ekb_proto::{convert::timestamp_to_wire, v1};
use time::{Duration, OffsetDateTime};

use crate::{
    codes::GrantStatus,
    commands::Extend,
    model::{ExtensionRow, GrantRow},
    published::{self, subject},
};

#[cfg(test)]
mod tests;

/// A grant with its deadline extensions, as stored.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The grant.
    pub row: GrantRow,
    /// Its deadline extensions, oldest first.
    pub extensions: Vec<ExtensionRow>,
    /// How many of `extensions` are stored; the rest are new and saved with the grant.
    stored_extensions: usize,
}

impl Grant {
    /// The grant `row` with its stored `extensions`.
    pub fn new(row: GrantRow, extensions: Vec<ExtensionRow>) -> Self {
        Grant {
            stored_extensions: extensions.len(),
            row,
            extensions,
        }
    }

    /// The extensions a decision added since the grant was loaded.
    pub fn new_extensions(&self) -> &[ExtensionRow] {
        self.extensions
            .get(self.stored_extensions..)
            .unwrap_or_default()
    }

    /// The contract's view, with the last claim day `grace_days` after the deadline.
    pub fn to_wire(&self, grace_days: i64) -> v1::ClaimableGrant {
        self.row.to_wire(&self.extensions, grace_days)
    }

    /// The caller moves the refund deadline of an open grant later, to at most
    /// `max_extension_days` after the original deadline (RefundDeadlineExtended). The same
    /// extension again by the same caseworker is a repeat.
    pub fn extend_deadline(
        &mut self,
        caller: &Caller,
        command: &Extend,
        max_extension_days: i64,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        let by = caller.subject.as_str();
        let repeat = self.row.refund_deadline == command.new_deadline
            && self.extensions.last().is_some_and(|last| {
                last.new_deadline == command.new_deadline
                    && last.reason == command.reason
                    && last.explanation == command.explanation
                    && last.extended_by == by
            });
        if repeat {
            return Ok(Decision::Unchanged);
        }
        if matches!(
            self.row.status,
            GrantStatus::Settled | GrantStatus::Expired | GrantStatus::Cancelled
        ) {
            return Err(ApiError::refused(
                "GRANT_CLOSED",
                format!("the grant is {}", self.status_name()),
            ));
        }
        if command.new_deadline <= self.row.refund_deadline {
            return Err(ApiError::refused(
                "NOT_LATER_THAN_CURRENT_DEADLINE",
                "the new deadline must be later than the current one",
            ));
        }
        let limit = self.row.original_deadline + Duration::days(max_extension_days);
        if command.new_deadline > limit {
            return Err(ApiError::refused(
                "EXTENSION_BEYOND_LIMIT",
                format!(
                    "a deadline may be extended to {} at the latest",
                    ekb_proto::convert::date_to_wire(limit)
                ),
            ));
        }
        let previous = self.row.refund_deadline;
        self.extensions.push(ExtensionRow {
            previous_deadline: previous,
            new_deadline: command.new_deadline,
            reason: command.reason,
            explanation: command.explanation.clone(),
            extended_by: by.to_owned(),
            extended_at: now,
        });
        self.row.refund_deadline = command.new_deadline;
        Ok(Effects::new()
            .audited(self.audit(
                "ExtendRefundDeadline",
                AuditActor::nav_employee(caller),
                v1::AccessPurpose::CaseProcessing,
            ))
            .publishing(
                self.subject(),
                &published::deadline_extended(&self.row, previous, command.reason, now),
            )
            .changed())
    }

    /// Applications asks to cancel the grant (GrantCancellationRequested, requested at
    /// `requested_at`). An ACTIVE grant is cancelled; a cancelled one is accepted again; a
    /// grant with a claim pending, settled or expired is refused. Every request is answered
    /// (GrantCancellationAccepted or GrantCancellationRefused), so the decision always has that
    /// effect, even when the grant stays as it is.
    pub fn answer_cancellation(
        &mut self,
        requested_at: Option<prost_types::Timestamp>,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        let refusal = match self.row.status {
            GrantStatus::Active | GrantStatus::Cancelled => None,
            GrantStatus::ClaimPending => Some(v1::GrantCancellationRefusalReason::ClaimPending),
            GrantStatus::Settled => Some(v1::GrantCancellationRefusalReason::GrantSettled),
            GrantStatus::Expired => Some(v1::GrantCancellationRefusalReason::GrantExpired),
        };
        let mut answer = Effects::new();
        if self.row.status == GrantStatus::Active {
            self.cancel(now);
            answer = answer.audited(self.audit(
                "GrantCancellationRequested",
                AuditActor::service(),
                v1::AccessPurpose::System,
            ));
        }
        let grant = &self.row;
        let answer = match refusal {
            None => answer.publishing(
                self.subject(),
                &v1::GrantCancellationAccepted {
                    grant_id: grant.grant_id.to_string(),
                    application_id: grant.application_id.to_string(),
                    case_id: grant.case_id.to_string(),
                    county_code: grant.county_code.clone(),
                    requested_at,
                    had_rejected_claim: grant.had_rejected_claim,
                    accepted_at: Some(timestamp_to_wire(grant.cancelled_at.unwrap_or(now))),
                },
            ),
            Some(reason) => answer.publishing(
                self.subject(),
                &v1::GrantCancellationRefused {
                    grant_id: grant.grant_id.to_string(),
                    application_id: grant.application_id.to_string(),
                    case_id: grant.case_id.to_string(),
                    county_code: grant.county_code.clone(),
                    requested_at,
                    reason: reason as i32,
                    grant_status: grant.status.to_wire() as i32,
                    refused_at: Some(timestamp_to_wire(now)),
                },
            ),
        };
        Ok(answer.changed())
    }

    /// Applications cancelled the grant (GrantCancelled). A cancelled grant stays so (a
    /// confirmation); an ACTIVE one is cancelled (applications did not ask first: no claim can
    /// come any more), audited as a change refunds did not decide; any other contradicts
    /// refunds and is refused.
    pub fn confirm_cancelled(&mut self, now: OffsetDateTime) -> Result<Decision, ApiError> {
        match self.row.status {
            GrantStatus::Cancelled => Ok(Decision::Unchanged),
            GrantStatus::Active => {
                self.cancel(now);
                Ok(Effects::new()
                    .audited_change(self.audit(
                        "GrantCancelled",
                        AuditActor::service(),
                        v1::AccessPurpose::System,
                    ))
                    .changed())
            }
            GrantStatus::ClaimPending | GrantStatus::Settled | GrantStatus::Expired => {
                Err(ApiError::refused(
                    "GRANT_NOT_CANCELLABLE",
                    format!(
                        "grant {} was cancelled in applications but is {} in refunds",
                        self.row.grant_id,
                        self.status_name()
                    ),
                ))
            }
        }
    }

    /// The contract's name of the grant's status, for a refusal's message.
    fn status_name(&self) -> &'static str {
        self.row.status.to_wire().as_str_name()
    }

    /// Cancels the grant at `now`: it has ended.
    fn cancel(&mut self, now: OffsetDateTime) {
        self.row.status = GrantStatus::Cancelled;
        self.row.cancelled_at = Some(now);
        self.row.ended_at = self.row.ended_at.or(Some(now));
    }

    /// The subject of the grant's events.
    fn subject(&self) -> ekb_platform::messaging::EventSubject {
        subject(self.row.case_id, self.row.grant_id)
    }

    /// The audit entry of `action` on this grant.
    fn audit(&self, action: &'static str, actor: AuditActor, purpose: v1::AccessPurpose) -> Audit {
        Audit {
            case_id: self.row.case_id,
            subject_id: self.row.grant_id,
            action,
            actor,
            purpose,
        }
    }
}
