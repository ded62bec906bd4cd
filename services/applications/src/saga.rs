//! Applications' event handlers: routing's cases become the local read model SubmitApplication
//! checks; budget's answers complete or deny a grant's funds request; refunds' events keep the
//! grant's life (`Grant.status`) and complete a cancellation (ADR 0021 §3). Each change is a
//! pure method of [`Stored`] (`decisions`), applied with `change::apply_in` in the consumer's
//! unit of work, which already holds the event's inbox row, so a redelivery changes nothing;
//! the change is audited as the service's own (kind CHANGE, under the event's name); an
//! answer for a grant id that is not the application's current one, or in a state that no
//! longer waits for it, changes nothing. Content that can never be applied (an id that is not a
//! UUID, an unknown grant) is dead-lettered with the reason.

use std::sync::Arc;

use ekb_platform::{
    ApiError,
    audit::AuditActor,
    change::{self, Audit, Decision},
    messaging::{
        EventFields, HandlerError, Handles, UnitOfWork,
        parts::{FlowChanged, RoutedCase},
    },
};
use ekb_proto::v1::{self, EventEnvelope, GrantStatus};
use prost::Name;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    config::Policy,
    store::{self, Case, Stored},
};

/// What applications' event handlers work with.
#[derive(Debug, Clone)]
pub struct ApplicationsState {
    policy: Arc<Policy>,
}

impl ApplicationsState {
    /// Handlers applying `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
        ApplicationsState { policy }
    }
}

/// Makes the change `decide` to the application of the grant id in `event`'s field `field`,
/// in the event's unit of work, audited as the service's change under the event's name;
/// returns whether it changed. An id that is not a UUID, a grant id not minted here, or a
/// refusal of the decision is permanent.
async fn follow<E, D>(
    work: &mut UnitOfWork,
    event: &E,
    field: &str,
    grant_id: &str,
    decide: D,
) -> Result<bool, HandlerError>
where
    E: Name,
    D: FnOnce(&mut Stored, Uuid, OffsetDateTime) -> Result<Decision, ApiError> + Send,
{
    let fields = EventFields::of(event);
    let grant_id = fields.uuid(field, grant_id)?;
    let id = store::application_of_grant(work.db(), grant_id)
        .await?
        .ok_or_else(|| fields.refuse(field, "is not a grant of this service"))?;
    let now = work.now();
    let applied = change::apply_in(work, now, &id, |stored: &mut Stored, now| {
        Ok(match decide(stored, grant_id, now)? {
            Decision::Changed(effects) => effects
                .audited_change(Audit {
                    case_id: stored.case_id(),
                    subject_id: stored.id(),
                    action: E::NAME,
                    actor: AuditActor::service(),
                    purpose: v1::AccessPurpose::System,
                })
                .changed(),
            Decision::Unchanged => Decision::Unchanged,
        })
    })
    .await?;
    Ok(applied.changed)
}

impl Handles<v1::CaseRouted> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::CaseRouted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let routed = RoutedCase::read(&event)?;
        let case = Case {
            case_id: routed.case_id,
            flow: ekb_proto::convert::flow_to_wire(routed.flow),
            county_code: routed.county.as_str().to_owned(),
            employer_organisation_number: routed.employer_organisation_number,
            opened_at: routed.opened_at,
        };
        let now = work.now();
        store::upsert_routed_case(work.db(), &case, now).await?;
        Ok(())
    }
}

impl Handles<v1::CaseFlowChanged> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::CaseFlowChanged,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let change = FlowChanged::read(&event)?;
        let case = Case {
            case_id: change.case_id,
            flow: ekb_proto::convert::flow_to_wire(change.to_flow),
            county_code: change.county.as_str().to_owned(),
            employer_organisation_number: change.employer_organisation_number,
            opened_at: change.opened_at,
        };
        let now = work.now();
        store::change_flow(work.db(), &case, change.sequence, now).await?;
        Ok(())
    }
}

/// The grant id a budget answer on `commitment` is about; None when it is not about a grant.
fn grant_of(commitment: Option<&v1::Commitment>) -> Option<&str> {
    commitment
        .filter(|commitment| commitment.kind == v1::CommitmentKind::Grant as i32)
        .map(|commitment| commitment.commitment_id.as_str())
}

impl Handles<v1::FundsReserved> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::FundsReserved,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let Some(grant_id) = grant_of(event.commitment.as_ref()) else {
            return Ok(());
        };
        let deadline = self.policy.refund_deadline;
        let reservation_id = event.reservation_id.clone();
        let changed = follow(
            work,
            &event,
            "commitment.commitment_id",
            grant_id,
            |stored, grant_id, now| {
                Ok(stored.funds_reserved(grant_id, reservation_id, deadline, now))
            },
        )
        .await?;
        if changed {
            tracing::info!(grant_id = %grant_id, "grant approved");
        }
        Ok(())
    }
}

impl Handles<v1::FundsDenied> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::FundsDenied,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let Some(grant_id) = grant_of(event.commitment.as_ref()) else {
            return Ok(());
        };
        let (reason, available) = (event.reason, event.available_ore);
        follow(
            work,
            &event,
            "commitment.commitment_id",
            grant_id,
            |stored, grant_id, now| Ok(stored.funds_denied(grant_id, reason, available, now)),
        )
        .await?;
        Ok(())
    }
}

/// Implements `Handles<$event>` as [`Stored::move_grant`] of the event's grant from one of
/// `$from` to `$to`.
macro_rules! moves_grant {
    ($event:ident: [$($from:ident),+] => $to:ident) => {
        impl Handles<v1::$event> for ApplicationsState {
            async fn handle(
                &self,
                work: &mut UnitOfWork,
                event: v1::$event,
                _envelope: &EventEnvelope,
            ) -> Result<(), HandlerError> {
                let from = [$(GrantStatus::$from),+];
                follow(work, &event, "grant_id", &event.grant_id, |stored, grant_id, now| {
                    Ok(stored.move_grant(grant_id, &from, GrantStatus::$to, now))
                })
                .await?;
                Ok(())
            }
        }
    };
}

moves_grant!(RefundClaimSubmitted: [Active] => ClaimPending);
moves_grant!(RefundRejected: [ClaimPending] => Active);
moves_grant!(RefundApproved: [Active, ClaimPending, CancellationRequested] => Settled);
moves_grant!(GrantExpired: [Active, CancellationRequested] => Expired);

impl Handles<v1::RefundDeadlineExtended> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::RefundDeadlineExtended,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(&event);
        let deadline = fields.date("new_deadline_date", &event.new_deadline_date)?;
        follow(
            work,
            &event,
            "grant_id",
            &event.grant_id,
            |stored, grant_id, now| Ok(stored.extend_refund_deadline(grant_id, deadline, now)),
        )
        .await?;
        Ok(())
    }
}

impl Handles<v1::GrantCancellationAccepted> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::GrantCancellationAccepted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        follow(
            work,
            &event,
            "grant_id",
            &event.grant_id,
            |stored, grant_id, now| Ok(stored.cancellation_accepted(grant_id, now)),
        )
        .await?;
        Ok(())
    }
}

impl Handles<v1::GrantCancellationRefused> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::GrantCancellationRefused,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(&event);
        let refusal = fields.enumeration("reason", event.reason)?;
        follow(
            work,
            &event,
            "grant_id",
            &event.grant_id,
            |stored, grant_id, now| stored.cancellation_refused(grant_id, refusal, now),
        )
        .await?;
        Ok(())
    }
}
