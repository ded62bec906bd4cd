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
    audit::AuditActor,
    messaging::{HandlerError, Handles, UnitOfWork},
};
use ekb_proto::{
    convert::timestamp_to_wire,
    events::CarriesAgreement,
    v1::{self, AuditEntryKind, EventEnvelope, OrderCancellationReason, OrderStatus},
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    config::OrderingPolicy,
    model::Order,
    ordering::{self, audit_change, publish},
    store::{self, AgreementState},
};

/// The state the event handlers share.
#[derive(Debug, Clone)]
pub struct OrderingEvents {
    /// The checked configuration.
    pub policy: Arc<OrderingPolicy>,
    /// The clock.
    pub clock: SharedClock,
}

fn permanent(what: impl Into<String>) -> HandlerError {
    HandlerError::Permanent(what.into())
}

fn uuid(field: &str, text: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(text).map_err(|_| permanent(format!("{field} is not a UUID")))
}

fn instant(
    field: &str,
    at: Option<&prost_types::Timestamp>,
) -> Result<OffsetDateTime, HandlerError> {
    let at = at.ok_or_else(|| permanent(format!("{field} is missing")))?;
    OffsetDateTime::from_unix_timestamp(at.seconds)
        .ok()
        .and_then(|at_seconds| {
            at_seconds
                .replace_nanosecond(u32::try_from(at.nanos).unwrap_or(0) / 1000 * 1000)
                .ok()
        })
        .ok_or_else(|| permanent(format!("{field} is out of range")))
}

fn county(text: &str) -> Result<&str, HandlerError> {
    if text.len() == 2 && text.bytes().all(|byte| byte.is_ascii_digit()) {
        Ok(text)
    } else {
        Err(permanent("county_code is not 2 digits"))
    }
}

impl Handles<v1::CaseRouted> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::CaseRouted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let case_id = uuid("CaseRouted.case_id", &event.case_id)?;
        let county = county(&event.county_code)?;
        let opened_at = instant("CaseRouted.opened_at", event.opened_at.as_ref())?;
        let flow = match v1::Flow::try_from(event.flow) {
            Ok(v1::Flow::Pilot) => "PILOT",
            Ok(v1::Flow::Regular) => "REGULAR",
            _ => return Err(permanent("CaseRouted.flow is not REGULAR or PILOT")),
        };
        let area = match event.expert_choice.and_then(|choice| choice.choice) {
            Some(v1::expert_choice::Choice::FrameworkAgreement(choice)) => choice.competence_area,
            _ => 0,
        };
        if flow == "PILOT" && ekb_proto::convert::competence_area_from_wire(area).is_err() {
            return Err(permanent("a PILOT CaseRouted has no competence area"));
        }
        store::insert_case(
            work.db(),
            case_id,
            county,
            &event.employer_organisation_number,
            area,
            flow,
            opened_at,
        )
        .await?;
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
        let case_id = uuid("CaseFlowChanged.case_id", &event.case_id)?;
        if v1::Flow::try_from(event.to_flow) != Ok(v1::Flow::Regular) {
            return Err(permanent("CaseFlowChanged.to_flow is not REGULAR"));
        }
        let opened_at = instant("CaseFlowChanged.opened_at", event.opened_at.as_ref())?;
        store::set_case_regular(
            work.db(),
            case_id,
            county(&event.county_code)?,
            &event.employer_organisation_number,
            opened_at,
        )
        .await?;
        let now = self.clock.now();
        for order in store::orders_of_case(work.db(), case_id, true).await? {
            if matches!(
                order.status(),
                OrderStatus::FundsPending | OrderStatus::Placed | OrderStatus::Accepted
            ) {
                ordering::cancel_by_service(
                    work,
                    &self.policy,
                    &order,
                    OrderCancellationReason::CaseLeftPilot,
                    v1::FundsDeniedReason::Unspecified,
                    "CaseFlowChanged",
                    now,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The registry events that carry an agreement's full state.
pub trait AgreementEvent: CarriesAgreement + Send + 'static {}

impl AgreementEvent for v1::AgreementActivated {}
impl AgreementEvent for v1::AgreementUpdated {}
impl AgreementEvent for v1::AgreementEnded {}

impl<E: AgreementEvent> Handles<E> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: E,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let state = agreement_state(event.agreement())?;
        let stored = store::upsert_agreement(work.db(), &state).await?;
        let now = self.clock.now();
        let today = oslo_date(now);
        let stopped = state.valid_to < today || state.ended_on.is_some_and(|ended| ended < today);
        if stored && stopped {
            ordering::agreement_stopped(work, &self.policy, state.agreement_id, now).await?;
        }
        Ok(())
    }
}

fn agreement_state(agreement: Option<&v1::Agreement>) -> Result<AgreementState, HandlerError> {
    let invalid = |what: &str| permanent(format!("agreement event has an invalid {what}"));
    let agreement = agreement.ok_or_else(|| invalid("agreement (missing)"))?;
    let terms = agreement.terms.as_ref().ok_or_else(|| invalid("terms"))?;
    let validity = terms.validity.as_ref().ok_or_else(|| invalid("validity"))?;
    let date = |text: &str, what: &str| ekb_domain::parse_iso_date(text).map_err(|_| invalid(what));
    let areas = terms
        .competence_areas
        .iter()
        .map(|area| {
            ekb_proto::convert::competence_area_from_wire(*area)
                .map(|_| *area)
                .map_err(|_| invalid("competence area"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ekb_domain::Money::from_ore(terms.price_per_assignment_ore)
        .require_case_amount()
        .is_err()
        || terms.monthly_capacity <= 0
        || terms.ranking <= 0
    {
        return Err(invalid("price, ranking or capacity"));
    }
    Ok(AgreementState {
        agreement_id: uuid("agreement_id", &agreement.agreement_id)?,
        reference: agreement.agreement_reference.clone(),
        supplier: agreement.supplier_organisation_number.clone(),
        supplier_name: agreement.supplier_name.clone(),
        county: county(&agreement.county_code)?.to_owned(),
        areas,
        price_ore: terms.price_per_assignment_ore,
        ranking: terms.ranking,
        capacity: terms.monthly_capacity,
        valid_from: date(&validity.from_date, "validity.from_date")?,
        valid_to: date(&validity.to_date, "validity.to_date")?,
        ended_on: if agreement.ended_on_date.is_empty() {
            None
        } else {
            Some(date(&agreement.ended_on_date, "ended_on_date")?)
        },
        version: agreement.version,
    })
}

async fn store_expert(
    work: &mut UnitOfWork,
    expert: Option<&v1::Expert>,
) -> Result<(), HandlerError> {
    let expert = expert.ok_or_else(|| permanent("expert event has no expert"))?;
    let supplier = expert
        .details
        .as_ref()
        .map(|details| details.supplier_organisation_number.clone())
        .unwrap_or_default();
    store::upsert_expert(
        work.db(),
        uuid("expert_id", &expert.expert_id)?,
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
        store_expert(work, event.expert.as_ref()).await
    }
}

impl Handles<v1::ExpertUpdated> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::ExpertUpdated,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        store_expert(work, event.expert.as_ref()).await
    }
}

/// The order a budget answer is about, if it is a pilot order.
fn pilot_order(commitment: Option<&v1::Commitment>) -> Result<Option<Uuid>, HandlerError> {
    let commitment = commitment.ok_or_else(|| permanent("budget answer has no commitment"))?;
    if commitment.kind != v1::CommitmentKind::PilotOrder as i32 {
        return Ok(None);
    }
    uuid("commitment.commitment_id", &commitment.commitment_id).map(Some)
}

/// The pilot order budget's answer `event` (its name) is about, locked; None if the answer is
/// not about a pilot order. An order unknown here is a permanent error.
async fn answered_order(
    work: &mut UnitOfWork,
    commitment: Option<&v1::Commitment>,
    event: &str,
) -> Result<Option<Order>, HandlerError> {
    let Some(order_id) = pilot_order(commitment)? else {
        return Ok(None);
    };
    match store::find_order(work.db(), order_id, true).await? {
        Some(order) => Ok(Some(order)),
        None => Err(permanent(format!("{event} for unknown order {order_id}"))),
    }
}

impl Handles<v1::FundsReserved> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::FundsReserved,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let Some(order) = answered_order(work, event.commitment.as_ref(), "FundsReserved").await?
        else {
            return Ok(());
        };
        let order_id = order.order_id;
        if order.status() != OrderStatus::FundsPending {
            tracing::info!(%order_id, status = order.status().as_str_name(), "FundsReserved for an order no longer pending; ignored");
            return Ok(());
        }
        let now = self.clock.now();
        let placed = store::update_order(
            work.db(),
            order_id,
            "status = $2, reservation_id = $3, placed_at = $4",
            |query| {
                query
                    .bind(OrderStatus::Placed as i32)
                    .bind(event.reservation_id.clone())
                    .bind(now)
            },
        )
        .await?;
        publish(
            work,
            order.case_id,
            &v1::OrderPlaced {
                order_id: order_id.to_string(),
                case_id: order.case_id.to_string(),
                county_code: order.county_code.clone(),
                agreement_id: order.agreement_id.to_string(),
                supplier_organisation_number: order.supplier_organisation_number.clone(),
                amount_ore: order.price_ore,
                reservation_id: placed.reservation_id.clone(),
                placed_at: Some(timestamp_to_wire(now)),
                employee_pseudonym: order.employee_pseudonym.clone(),
                competence_area: order.competence_area,
            },
        )
        .await?;
        audit_change(
            work,
            order.case_id,
            order_id,
            AuditEntryKind::Change,
            "FundsReserved",
            &AuditActor::service(),
        )
        .await?;
        Ok(())
    }
}

impl Handles<v1::FundsDenied> for OrderingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::FundsDenied,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let Some(order) = answered_order(work, event.commitment.as_ref(), "FundsDenied").await?
        else {
            return Ok(());
        };
        if order.status() != OrderStatus::FundsPending {
            return Ok(());
        }
        let reason = v1::FundsDeniedReason::try_from(event.reason)
            .unwrap_or(v1::FundsDeniedReason::Unspecified);
        ordering::cancel_by_service(
            work,
            &self.policy,
            &order,
            OrderCancellationReason::FundsDenied,
            reason,
            "FundsDenied",
            self.clock.now(),
        )
        .await?;
        Ok(())
    }
}
