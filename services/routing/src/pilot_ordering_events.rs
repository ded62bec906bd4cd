//! What routing takes from pilot-ordering's topic (ADR 0022):
//! - PilotFallbackRequested: the pilot cannot serve the case, so it moves to the regular flow
//!   (the same unit of work as a caseworker's SendToRegularFlow). Idempotent: a case that is
//!   REGULAR already is left alone and nothing is published. A case routing does not have goes
//!   to the dead-letter topic at once: routing stores every case before anyone else can know its
//!   id, so waiting cannot help; such an event is a producer's bug or from another environment.
//! - OrderStarted: an expert started on one of the case's pilot orders; from then on a caseworker
//!   can no longer send the case to the regular flow. Unknown cases are dead-lettered alike.
//!
//! Every other pilot-ordering event is skipped by the platform.

use ekb_platform::messaging::{HandlerError, Handles, UnitOfWork};
use ekb_proto::v1::{self, EventEnvelope};
use prost::Name;
use uuid::Uuid;

use crate::{
    RoutingEvents, case_store,
    flow_change::{self, ChangedBy, Refusal, ToRegularFlow},
};

impl Handles<v1::PilotFallbackRequested> for RoutingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::PilotFallbackRequested,
        envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let change = ToRegularFlow {
            case_id: case_id_of::<v1::PilotFallbackRequested>(&event.case_id)?,
            reason: v1::FlowChangeReason::try_from(event.reason)
                .ok()
                .filter(|reason| *reason != v1::FlowChangeReason::Unspecified)
                .ok_or_else(|| {
                    HandlerError::Permanent(format!(
                        "PilotFallbackRequested.reason {} is not a flow-change reason",
                        event.reason
                    ))
                })?,
            note: String::new(),
            at: self.clock.now(),
            by: ChangedBy::PilotOrdering(Uuid::parse_str(&envelope.event_id).map_err(|_| {
                HandlerError::Permanent("envelope event_id is not a UUID".to_owned())
            })?),
        };
        match flow_change::to_regular(work, &change)
            .await
            .map_err(|error| HandlerError::Transient(error.into()))?
        {
            Ok(_) => Ok(()),
            Err(Refusal::AlreadyRegular(case_id)) => {
                tracing::info!(%case_id, "fallback for a case already in the regular flow; nothing to do");
                Ok(())
            }
            Err(refusal) => Err(HandlerError::Permanent(refusal.to_string())),
        }
    }
}

impl Handles<v1::OrderStarted> for RoutingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::OrderStarted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let case_id = case_id_of::<v1::OrderStarted>(&event.case_id)?;
        let started = ekb_domain::parse_iso_date(&event.started_date).map_err(|_| {
            HandlerError::Permanent("OrderStarted.started_date is not a date".to_owned())
        })?;
        if case_store::record_expert_started(work.db(), case_id, started).await? {
            Ok(())
        } else {
            Err(HandlerError::Permanent(
                Refusal::UnknownCase(case_id).to_string(),
            ))
        }
    }
}

/// The case id of an event of type `E`; a permanent failure if it is not a UUID.
fn case_id_of<E: Name>(text: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(text)
        .map_err(|_| HandlerError::Permanent(format!("{}.case_id is not a UUID", E::NAME)))
}
