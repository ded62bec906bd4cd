//! A change is load → decide → save, written once for every service.
//!
//! The rules of a state change (may this claim be decided now, by this person, with this
//! version?) are a method on the service's own domain type: pure, unit-tested without a
//! database, and called from both the RPC and the event handler that lead to the same change.
//! This module does the rest the same way everywhere: it loads the record under lock in a unit
//! of work, runs the decision with the service clock's "now", and either
//!
//! - saves the record, writes the decision's audit entries and publishes its events in that one
//!   unit of work ([`Decision::Changed`]), or
//! - changes nothing and commits nothing ([`Decision::Unchanged`]: a repeat of a request that
//!   already took effect gets the record as it is).
//!
//! A refusal from the decision rolls the unit of work back and reaches the caller as it is.
//!
//! ```ignore
//! let changed = change::apply::<StoredClaim, _>(&api.db, &claim_id, |claim, now| {
//!     claim.decide(&by, command.version, command.verdict, now)
//! })
//! .await?;
//! ```

use std::future::Future;

use ekb_proto::v1;
use prost::{Message, Name};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    ApiError,
    audit::{self, AuditActor, AuditEvent},
    messaging::{Db, EventSubject, HandlerError, UnitOfWork},
};

/// A stored record a change loads under lock and saves.
pub trait Record: Sized + Send {
    /// What finds the record (its id, or an id and a version).
    type Key: Sync + ?Sized;

    /// The record, locked until the unit of work ends; `ApiError::NotFound` if there is none.
    fn load_locked(
        work: &mut UnitOfWork,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Self, ApiError>> + Send;

    /// Writes the record as the decision left it.
    fn save(&self, work: &mut UnitOfWork) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// What a decision did to the record.
#[derive(Debug)]
pub enum Decision {
    /// Nothing: a repeat of a change that already took effect.
    Unchanged,
    /// The record changed; these are the change's audit entries and events.
    Changed(Effects),
}

/// The audit entries and events of one change, written in its unit of work.
#[derive(Debug, Default)]
pub struct Effects {
    audits: Vec<(v1::AuditEntryKind, Audit)>,
    events: Vec<Outgoing>,
}

/// One audit entry of a change (the time is the change's).
#[derive(Debug, Clone)]
pub struct Audit {
    /// The case.
    pub case_id: Uuid,
    /// What was changed (an application, grant, claim or order id).
    pub subject_id: Uuid,
    /// The RPC, event or job that made the change.
    pub action: &'static str,
    /// Who.
    pub actor: AuditActor,
    /// Why.
    pub purpose: v1::AccessPurpose,
}

/// An event a change publishes, encoded when the decision is made.
#[derive(Debug, Clone)]
struct Outgoing {
    subject: EventSubject,
    event_type: String,
    payload: Vec<u8>,
}

impl Effects {
    /// A change with no audit entry and no event yet.
    pub fn new() -> Self {
        Effects::default()
    }

    /// Adds the decision's audit entry (kind DECISION: a caseworker's or decider's decision).
    pub fn audited(mut self, audit: Audit) -> Self {
        self.audits.push((v1::AuditEntryKind::Decision, audit));
        self
    }

    /// Adds an audit entry of kind CHANGE (a change that is not a decision: a supplier's
    /// answer, an event applied, a job).
    pub fn audited_change(mut self, audit: Audit) -> Self {
        self.audits.push((v1::AuditEntryKind::Change, audit));
        self
    }

    /// Adds `event` about `subject`, published if and only if the change commits.
    pub fn publishing<M: Message + Name>(mut self, subject: EventSubject, event: &M) -> Self {
        self.events.push(Outgoing {
            subject,
            event_type: M::full_name(),
            payload: event.encode_to_vec(),
        });
        self
    }

    /// The decision that made this change.
    pub fn changed(self) -> Decision {
        Decision::Changed(self)
    }

    /// Writes the audit entries and records the events in `work`, at `now`.
    async fn write(self, work: &mut UnitOfWork, now: OffsetDateTime) -> Result<(), ApiError> {
        for (kind, entry) in &self.audits {
            audit::record(
                work.db(),
                &AuditEvent {
                    case_id: entry.case_id,
                    subject_id: entry.subject_id,
                    kind: *kind,
                    action: entry.action,
                    actor: &entry.actor,
                    purpose: entry.purpose,
                    at: now,
                },
            )
            .await?;
        }
        for event in self.events {
            work.publish_encoded(&event.subject, event.event_type, event.payload)
                .await?;
        }
        Ok(())
    }
}

/// What [`apply`] did.
#[derive(Debug)]
pub struct Applied<R> {
    /// The record after the decision (as loaded, if nothing changed).
    pub record: R,
    /// Whether the decision changed it (false for a repeat).
    pub changed: bool,
}

/// Loads `R` at `key` under lock in a new unit of work, runs `decide` on it with the service
/// clock's now, and on a change saves it and writes the change's audit entries and events, all
/// committed together; on [`Decision::Unchanged`] or a refusal, commits nothing.
pub async fn apply<R, D>(db: &Db, key: &R::Key, decide: D) -> Result<Applied<R>, ApiError>
where
    R: Record,
    D: FnOnce(&mut R, OffsetDateTime) -> Result<Decision, ApiError> + Send,
{
    let mut work = db.begin().await?;
    let applied = apply_in(&mut work, db.clock().now(), key, decide).await?;
    if applied.changed {
        work.commit().await?;
    }
    Ok(applied)
}

/// [`apply`] inside a unit of work the caller owns and commits (an event handler's, which
/// holds the inbox row), at `now`.
pub async fn apply_in<R, D>(
    work: &mut UnitOfWork,
    now: OffsetDateTime,
    key: &R::Key,
    decide: D,
) -> Result<Applied<R>, ApiError>
where
    R: Record,
    D: FnOnce(&mut R, OffsetDateTime) -> Result<Decision, ApiError> + Send,
{
    let mut record = R::load_locked(work, key).await?;
    match decide(&mut record, now)? {
        Decision::Unchanged => Ok(Applied {
            record,
            changed: false,
        }),
        Decision::Changed(effects) => {
            record.save(work).await?;
            effects.write(work, now).await?;
            Ok(Applied {
                record,
                changed: true,
            })
        }
    }
}

impl From<ApiError> for HandlerError {
    /// An error of shared code run by an event handler: a refusal (the event asks for what the
    /// state or the contract does not allow) can never succeed and is permanent; a failure of
    /// the infrastructure or an event not arrived yet is transient.
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Internal(error) => HandlerError::Transient(error),
            error @ (ApiError::Unavailable(_) | ApiError::NotArrivedYet { .. }) => {
                HandlerError::Transient(error.into())
            }
            ApiError::FailedPrecondition { reason, message }
            | ApiError::PermissionDenied { reason, message } => {
                HandlerError::Permanent(format!("{reason}: {message}"))
            }
            error => HandlerError::Permanent(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_in_an_event_handler_is_permanent_and_a_fault_is_transient() {
        let refused = HandlerError::from(ApiError::refused("CLAIM_EXISTS", "a claim exists"));
        assert!(
            matches!(&refused, HandlerError::Permanent(reason) if reason == "CLAIM_EXISTS: a claim exists")
        );
        let fault = HandlerError::from(ApiError::internal(anyhow::anyhow!("connection reset")));
        assert!(matches!(fault, HandlerError::Transient(_)));
        let later = HandlerError::from(ApiError::not_arrived_yet("case 1"));
        assert!(matches!(later, HandlerError::Transient(_)));
    }

    #[test]
    fn effects_collect_audits_and_events_in_order() {
        let effects = Effects::new()
            .audited(Audit {
                case_id: Uuid::nil(),
                subject_id: Uuid::nil(),
                action: "DecideRefundClaim",
                actor: AuditActor::service(),
                purpose: v1::AccessPurpose::System,
            })
            .publishing(EventSubject::case("c"), &v1::CaseRouted::default())
            .publishing(EventSubject::case("c"), &v1::CaseFlowChanged::default());
        assert_eq!(effects.audits.len(), 1);
        let types: Vec<_> = effects
            .events
            .iter()
            .map(|event| event.event_type.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "ekspertbistand.v1.CaseRouted",
                "ekspertbistand.v1.CaseFlowChanged"
            ]
        );
    }
}
