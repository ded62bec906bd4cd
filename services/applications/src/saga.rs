//! Applications' event handlers: routing's cases become the local read model SubmitApplication
//! checks; budget's answers complete or deny a grant's funds request; refunds' events keep the
//! grant's life (`Grant.status`) and complete a cancellation (ADR 0021 §3). Each event is
//! applied in the consumer's unit of work, which already holds its inbox row, so a redelivery
//! changes nothing; an answer for a grant id that is not the application's current one, or in a
//! state that no longer waits for it, is ignored. Content that can never be applied (an id that
//! is not a UUID, an unknown grant) is dead-lettered with the reason.

use ekb_domain::oslo_date;
use ekb_platform::clock::Clock;
use ekb_proto::convert::gross_to_wire;
use std::sync::Arc;

use ekb_platform::messaging::{HandlerError, Handles, UnitOfWork};
use ekb_proto::v1::{self, ApplicationStatus as Status, EventEnvelope, GrantStatus};
use uuid::Uuid;

use crate::{
    config::Policy,
    events,
    model::{self, day, refund_deadline, stamp},
    store::{self, Case, Stored},
};

/// What applications' event handlers work with.
#[derive(Debug, Clone)]
pub struct ApplicationsState {
    policy: Arc<Policy>,
    clock: Arc<dyn Clock>,
}

impl ApplicationsState {
    /// Handlers applying `policy`, telling time by `clock`.
    pub fn new(policy: Arc<Policy>, clock: Arc<dyn Clock>) -> Self {
        ApplicationsState { policy, clock }
    }
}

fn uuid(field: &str, text: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(text).map_err(|_| HandlerError::Permanent(format!("{field} is not a UUID")))
}

fn flow_name(flow: i32) -> Result<&'static str, HandlerError> {
    match v1::Flow::try_from(flow) {
        Ok(v1::Flow::Regular) => Ok("REGULAR"),
        Ok(v1::Flow::Pilot) => Ok("PILOT"),
        _ => Err(HandlerError::Permanent(format!(
            "flow {flow} is not REGULAR or PILOT"
        ))),
    }
}

/// Saves `stored` and records the change the service made on `action`.
async fn save(
    work: &mut UnitOfWork,
    stored: &mut Stored,
    action: &str,
    now: time::OffsetDateTime,
) -> Result<(), HandlerError> {
    stored.application.updated_at = stamp(now);
    store::save(work.db(), stored, now).await?;
    stored.audit_service_change(work.db(), action, now).await?;
    Ok(())
}

/// The application of `grant_id` if that is its current grant id.
async fn current_for_grant(
    work: &mut UnitOfWork,
    grant_id: &str,
) -> Result<Option<Stored>, HandlerError> {
    let id = uuid("grant_id", grant_id)?;
    let stored = store::load_by_grant(work.db(), id)
        .await?
        .ok_or_else(|| HandlerError::Permanent(format!("grant {id} is not known here")))?;
    let current = stored
        .application
        .grant
        .as_ref()
        .is_some_and(|grant| grant.grant_id == id.to_string());
    Ok(current.then_some(stored))
}

/// The application of `grant_id` if that is its current grant id and the grant is in one of
/// `states`; otherwise the event is not for it (None).
async fn current_grant_in(
    work: &mut UnitOfWork,
    grant_id: &str,
    states: &[GrantStatus],
) -> Result<Option<Stored>, HandlerError> {
    let stored = current_for_grant(work, grant_id).await?;
    Ok(stored.filter(|stored| states.contains(&model::grant_status(&stored.application))))
}

impl Handles<v1::CaseRouted> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::CaseRouted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let case = Case {
            case_id: uuid("case_id", &event.case_id)?,
            flow: flow_name(event.flow)?.to_owned(),
            county_code: event.county_code,
            employer_organisation_number: event.employer_organisation_number,
            opened_at: model::instant(event.opened_at.as_ref()),
        };
        store::upsert_routed_case(work.db(), &case).await?;
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
        let case = Case {
            case_id: uuid("case_id", &event.case_id)?,
            flow: flow_name(event.to_flow)?.to_owned(),
            county_code: event.county_code,
            employer_organisation_number: event.employer_organisation_number,
            opened_at: model::instant(event.opened_at.as_ref()),
        };
        store::change_flow(work.db(), &case, event.sequence.max(1)).await?;
        Ok(())
    }
}

fn is_grant(commitment: Option<&v1::Commitment>) -> Option<String> {
    commitment
        .filter(|commitment| commitment.kind == v1::CommitmentKind::Grant as i32)
        .map(|commitment| commitment.commitment_id.clone())
}

/// The grant id and application a budget answer on `commitment` completes: a grant's current
/// funds request that still waits (GRANT_PENDING_FUNDS); None when the answer is not for one.
async fn waiting_for_funds(
    work: &mut UnitOfWork,
    commitment: Option<&v1::Commitment>,
) -> Result<Option<(String, Stored)>, HandlerError> {
    let Some(grant_id) = is_grant(commitment) else {
        return Ok(None);
    };
    let Some(stored) = current_for_grant(work, &grant_id).await? else {
        return Ok(None);
    };
    if model::status(&stored.application) != Status::GrantPendingFunds {
        return Ok(None);
    }
    Ok(Some((grant_id, stored)))
}

impl Handles<v1::FundsReserved> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::FundsReserved,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let Some((grant_id, mut stored)) =
            waiting_for_funds(work, event.commitment.as_ref()).await?
        else {
            return Ok(());
        };
        let now = self.clock.now();
        let grant_date = oslo_date(now);
        let application = &mut stored.application;
        let planned = application
            .details
            .as_ref()
            .and_then(|details| ekb_domain::parse_iso_date(&details.planned_start_date).ok())
            .unwrap_or(grant_date);
        if let Some(request) = model::current_request(application) {
            request.outcome = v1::FundsRequestOutcome::Reserved as i32;
            request.answered_at = stamp(now);
        }
        let months = self.policy.refund_deadline_months;
        let grant = application.grant.get_or_insert_with(Default::default);
        grant.reservation_id = event.reservation_id;
        grant.granted_at = stamp(now);
        grant.grant_date = day(grant_date);
        grant.refund_deadline_date = day(refund_deadline(planned, grant_date, months));
        grant.status = GrantStatus::Active as i32;
        application.status = Status::Granted as i32;
        stored.resend_at = None;
        stored.resend_interval_seconds = None;
        let approved = events::grant_approved(&stored.application);
        events::publish_grant(work, &stored.application, &approved).await?;
        save(work, &mut stored, "FundsReserved", now).await?;
        tracing::info!(application_id = %stored.id(), grant_id = %grant_id, "grant approved");
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
        let Some((_, mut stored)) = waiting_for_funds(work, event.commitment.as_ref()).await?
        else {
            return Ok(());
        };
        let now = self.clock.now();
        let application = &mut stored.application;
        if let Some(request) = model::current_request(application) {
            request.outcome = v1::FundsRequestOutcome::Denied as i32;
            request.denied_reason = event.reason;
            request.available_when_denied = Some(gross_to_wire(event.available_ore));
            request.answered_at = stamp(now);
        }
        application.status = Status::FundsDenied as i32;
        application.rejection = Some(v1::ApplicationRejection {
            reason: v1::ApplicationRejectionReason::FundsDenied as i32,
            funds_denied_reason: event.reason,
            rejected_at: stamp(now),
            is_final: false,
            ..Default::default()
        });
        stored.resend_at = None;
        stored.resend_interval_seconds = None;
        let denied = events::funds_denied(&stored.application);
        events::publish_grant(work, &stored.application, &denied).await?;
        save(work, &mut stored, "FundsDenied", now).await?;
        Ok(())
    }
}

/// Moves the current grant from one of `from` to `to`, if it is in one of them.
async fn move_grant(
    state: &ApplicationsState,
    work: &mut UnitOfWork,
    grant_id: &str,
    from: &[GrantStatus],
    to: GrantStatus,
    action: &str,
) -> Result<(), HandlerError> {
    let Some(mut stored) = current_grant_in(work, grant_id, from).await? else {
        return Ok(());
    };
    if let Some(grant) = stored.application.grant.as_mut() {
        grant.status = to as i32;
    }
    save(work, &mut stored, action, state.clock.now()).await
}

/// Implements `Handles<$event>` as [`move_grant`] of the event's grant from one of `$from` to
/// `$to`, recorded under the event's name.
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
                let to = GrantStatus::$to;
                move_grant(self, work, &event.grant_id, &from, to, stringify!($event)).await
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
        let Some(mut stored) = current_for_grant(work, &event.grant_id).await? else {
            return Ok(());
        };
        let Some(grant) = stored.application.grant.as_mut() else {
            return Ok(());
        };
        if grant.refund_deadline_date == event.new_deadline_date {
            return Ok(());
        }
        grant.refund_deadline_date = event.new_deadline_date;
        save(
            work,
            &mut stored,
            "RefundDeadlineExtended",
            self.clock.now(),
        )
        .await
    }
}

impl Handles<v1::GrantCancellationAccepted> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::GrantCancellationAccepted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let requested = [GrantStatus::CancellationRequested];
        let Some(mut stored) = current_grant_in(work, &event.grant_id, &requested).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        if let Some(grant) = stored.application.grant.as_mut() {
            grant.status = GrantStatus::Cancelled as i32;
            if let Some(cancellation) = grant.cancellation.as_mut() {
                cancellation.cancelled_at = stamp(now);
            }
        }
        let cancelled = events::cancelled(&stored.application);
        events::publish_grant(work, &stored.application, &cancelled).await?;
        save(work, &mut stored, "GrantCancellationAccepted", now).await
    }
}

impl Handles<v1::GrantCancellationRefused> for ApplicationsState {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::GrantCancellationRefused,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        use v1::GrantCancellationRefusalReason as Refusal;
        let requested = [GrantStatus::CancellationRequested];
        let Some(mut stored) = current_grant_in(work, &event.grant_id, &requested).await? else {
            return Ok(());
        };
        let to = match Refusal::try_from(event.reason) {
            Ok(Refusal::ClaimPending) => GrantStatus::ClaimPending,
            Ok(Refusal::GrantSettled) => GrantStatus::Settled,
            Ok(Refusal::GrantExpired) => GrantStatus::Expired,
            _ => {
                return Err(HandlerError::Permanent(format!(
                    "refusal reason {} is not known",
                    event.reason
                )));
            }
        };
        let now = self.clock.now();
        if let Some(grant) = stored.application.grant.as_mut() {
            grant.status = to as i32;
            if let Some(cancellation) = grant.cancellation.as_mut() {
                cancellation.refusal_reason = event.reason;
                cancellation.refused_at = stamp(now);
            }
        }
        save(work, &mut stored, "GrantCancellationRefused", now).await
    }
}
