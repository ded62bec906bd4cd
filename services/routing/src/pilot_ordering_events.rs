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

use ekb_platform::messaging::{EventFields, HandlerError, Handles, UnitOfWork};
use ekb_proto::v1::{self, EventEnvelope};

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
        let fields = EventFields::of(&event);
        let change = ToRegularFlow {
            case_id: fields.uuid("case_id", &event.case_id)?,
            reason: fields.enumeration("reason", event.reason)?,
            note: String::new(),
            at: self.clock.now(),
            by: ChangedBy::PilotOrdering(
                EventFields::named("EventEnvelope").uuid("event_id", &envelope.event_id)?,
            ),
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
        let fields = EventFields::of(&event);
        let case_id = fields.uuid("case_id", &event.case_id)?;
        let started = fields.date("started_date", &event.started_date)?;
        if case_store::record_expert_started(work.db(), case_id, started).await? {
            Ok(())
        } else {
            Err(HandlerError::Permanent(
                Refusal::UnknownCase(case_id).to_string(),
            ))
        }
    }
}
