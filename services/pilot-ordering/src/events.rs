//! What pilot-ordering consumes, each applied in the consumer's unit of work (the inbox drops
//! a redelivery before it gets here):
//! - routing's CaseRouted (the case read model; REGULAR cases are kept too, so PlaceOrder can
//!   say CASE_NOT_PILOT) and CaseFlowChanged (the case leaves the pilot: its orders not yet at
//!   work are cancelled, CASE_LEFT_PILOT);
//! - the registry's agreement and expert events (read models; an older version never
//!   overwrites a newer one). An agreement that is no longer active moves its open orders on;
//! - budget's FundsReserved / FundsDenied for PILOT_ORDER commitments (others are skipped).
//!
//! Content that can never be applied is refused with `HandlerError::Permanent`, so it goes to
//! the dead-letter topic with its reason instead of blocking the partition.

use ekb_domain::oslo_date;
use ekb_platform::clock::SharedClock;
use std::sync::Arc;

use ekb_platform::{
    ApiError,
    change::{self, Decision},
    messaging::{EventFields, HandlerError, Handles, UnitOfWork, parts},
};
use ekb_proto::{
    events::CarriesAgreement,
    v1::{self, EventEnvelope},
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    codes::FundsDeniedReason,
    config::OrderingPolicy,
    model::Order,
    ordering,
    store::{self, AgreementState, RoutedCase},
};

/// The state the event handlers share.
#[derive(Debug, Clone)]
pub struct OrderingEvents {
    /// The checked configuration.
    pub policy: Arc<OrderingPolicy>,
    /// The clock.
    pub clock: SharedClock,
}

impl Handles<v1::CaseRouted> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::CaseRouted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let routed = parts::RoutedCase::read(&event)?;
        let flow = routed.flow.code();
        let case = RoutedCase {
            case_id: routed.case_id,
            county: routed.county.as_str(),
            employer: &routed.employer_organisation_number,
            area: routed.framework_area,
            opened_at: routed.opened_at,
            received_at: work.now(),
        };
        store::insert_case(work.db(), &case, flow).await?;
        Ok(())
    }
}

impl Handles<v1::CaseFlowChanged> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::CaseFlowChanged,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let change = parts::FlowChanged::read(&event)?;
        if change.to_flow != ekb_domain::Flow::Regular {
            return Err(EventFields::of(&event).refuse("to_flow", "must be REGULAR"));
        }
        let case_id = change.case_id;
        let case = RoutedCase {
            case_id,
            county: change.county.as_str(),
            employer: &change.employer_organisation_number,
            area: None,
            opened_at: change.opened_at,
            received_at: work.now(),
        };
        store::set_case_regular(work.db(), &case).await?;
        let now = self.clock.now();
        for order in store::orders_of_case(work.db(), case_id, true).await? {
            change::apply_in::<Order, _>(work, now, &order.order_id, |order, now| {
                Ok(order.leave_pilot(now))
            })
            .await?;
        }
        Ok(())
    }
}

ekb_platform::handle_with!(
    OrderingEvents,
    apply_agreement: v1::AgreementActivated,
    v1::AgreementUpdated,
    v1::AgreementEnded,
);

impl OrderingEvents {
    /// Applies the agreement state any of the registry's agreement events carries; an agreement
    /// that stopped moves its orders on.
    async fn apply_agreement<E: CarriesAgreement + prost::Name>(
        &self,
        work: &mut UnitOfWork,
        event: &E,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let state = agreement_state(event)?;
        let now = self.clock.now();
        let stored = store::upsert_agreement(work.db(), &state, now).await?;
        let today = oslo_date(now);
        let stopped = state.valid_to < today || state.ended_on.is_some_and(|ended| ended < today);
        if stored && stopped {
            ordering::agreement_stopped(work, &self.policy, state.agreement_id, now).await?;
        }
        Ok(())
    }
}

fn agreement_state<E: CarriesAgreement + prost::Name>(
    event: &E,
) -> Result<AgreementState, HandlerError> {
    let agreement = parts::AgreementState::read(event)?;
    Ok(AgreementState {
        agreement_id: agreement.agreement_id,
        reference: agreement.reference,
        supplier: agreement.supplier_organisation_number,
        supplier_name: agreement.supplier_name,
        county: agreement.county.as_str().to_owned(),
        areas: agreement.areas,
        price_ore: agreement.price.ore(),
        ranking: agreement.ranking,
        capacity: agreement.monthly_capacity,
        valid_from: agreement.valid_from,
        valid_to: agreement.valid_to,
        ended_on: agreement.ended_on,
        version: agreement.version,
    })
}

async fn store_expert(
    work: &mut UnitOfWork,
    fields: EventFields,
    expert: Option<&v1::Expert>,
) -> Result<(), HandlerError> {
    let expert = fields.required("expert", expert)?;
    let supplier = expert
        .details
        .as_ref()
        .map(|details| details.supplier_organisation_number.clone())
        .unwrap_or_default();
    store::upsert_expert(
        work.db(),
        fields.uuid("expert.expert_id", &expert.expert_id)?,
        &supplier,
        expert.version,
    )
    .await?;
    Ok(())
}

impl Handles<v1::ExpertRegistered> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::ExpertRegistered,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        store_expert(work, EventFields::of(&event), event.expert.as_ref()).await
    }
}

impl Handles<v1::ExpertUpdated> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::ExpertUpdated,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        store_expert(work, EventFields::of(&event), event.expert.as_ref()).await
    }
}

/// The pilot order budget's answer is about (`commitment`, read with `fields`); None if the
/// answer is not about a pilot order.
fn pilot_order(
    fields: EventFields,
    commitment: Option<&v1::Commitment>,
) -> Result<Option<Uuid>, HandlerError> {
    let commitment = fields.required("commitment", commitment)?;
    if commitment.kind != v1::CommitmentKind::PilotOrder as i32 {
        return Ok(None);
    }
    fields
        .uuid("commitment.commitment_id", &commitment.commitment_id)
        .map(Some)
}

/// Applies `decide` to the pilot order budget's answer is about, in the consumer's unit of work.
/// An order unknown here can never be answered: a permanent error.
async fn answer_order<D>(
    work: &mut UnitOfWork,
    fields: EventFields,
    commitment: Option<&v1::Commitment>,
    now: OffsetDateTime,
    decide: D,
) -> Result<(), HandlerError>
where
    D: FnOnce(&mut Order, OffsetDateTime) -> Decision + Send,
{
    let Some(order_id) = pilot_order(fields, commitment)? else {
        return Ok(());
    };
    match change::apply_in::<Order, _>(work, now, &order_id, |order, now| Ok(decide(order, now)))
        .await
    {
        Err(ApiError::NotFound(_)) => Err(fields.refuse(
            "commitment.commitment_id",
            format!("names an order unknown here ({order_id})"),
        )),
        Err(error) => Err(error.into()),
        Ok(applied) => {
            if !applied.changed {
                tracing::info!(%order_id, status = applied.record.status.code(), "budget answer for an order no longer pending; ignored");
            }
            Ok(())
        }
    }
}

impl Handles<v1::FundsReserved> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::FundsReserved,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(&event);
        let reservation = &event.reservation_id;
        answer_order(
            work,
            fields,
            event.commitment.as_ref(),
            self.clock.now(),
            |order, now| order.place(reservation, now),
        )
        .await
    }
}

impl Handles<v1::FundsDenied> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::FundsDenied,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(&event);
        let reason = FundsDeniedReason::from_wire(event.reason);
        answer_order(
            work,
            fields,
            event.commitment.as_ref(),
            self.clock.now(),
            |order, now| order.deny_funds(reason, now),
        )
        .await
    }
}
