//! The transitions of an order that more than one door leads to — an RPC, an event from
//! budget, routing or the registry, or the sweep — each in the caller's unit of work with the
//! events it publishes: placing a follow-up order (or asking for the fallback to the regular
//! flow) when an order ends before the supplier took it, cancelling and expiring.
//!
//! Order of events on the topic (pilot_ordering_events.proto): the event that ended the old
//! order comes first and names the follow-up (`next_order_id`) or the fallback reason; the
//! follow-up's OrderRequested, or PilotFallbackRequested, comes after it.

use ekb_domain::{month_start, oslo_date};
use ekb_platform::{
    audit::{self, AuditActor, AuditEvent},
    messaging::{EventSubject, UnitOfWork},
};
use ekb_proto::{
    convert::timestamp_to_wire,
    v1::{
        self, AccessPurpose, AuditEntryKind, OrderCancellationReason, OrderExpiryReason,
        OrderStatus,
    },
};
use prost::Name;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    config::OrderingPolicy,
    model::Order,
    selection::{self, NoCandidate},
    store,
};

/// What follows an order that ended before the supplier took it.
#[derive(Debug, Clone)]
pub enum FollowUp {
    /// A follow-up order was placed with the next candidate (FUNDS_PENDING).
    Next(Box<Order>),
    /// No candidate is left: the case falls back to the regular flow, for this reason.
    Fallback(v1::FlowChangeReason),
    /// Nothing (the case left the pilot already, or holds another order).
    Nothing,
}

impl FollowUp {
    /// The follow-up order's id, or "".
    pub fn next_order_id(&self) -> String {
        match self {
            FollowUp::Next(order) => order.order_id.to_string(),
            _ => String::new(),
        }
    }

    /// The fallback reason, or UNSPECIFIED.
    pub fn fallback_reason(&self) -> v1::FlowChangeReason {
        match self {
            FollowUp::Fallback(reason) => *reason,
            _ => v1::FlowChangeReason::Unspecified,
        }
    }
}

/// Publishes `event` keyed by `case_id`.
pub async fn publish<M: prost::Message + Name>(
    work: &mut UnitOfWork,
    case_id: Uuid,
    event: &M,
) -> Result<(), sqlx::Error> {
    work.publish(&EventSubject::case(case_id.to_string()), event)
        .await?;
    Ok(())
}

/// Records an audit entry for `subject_id` of `case_id`.
pub async fn audit_change(
    work: &mut UnitOfWork,
    case_id: Uuid,
    subject_id: Uuid,
    kind: AuditEntryKind,
    action: &str,
    actor: &AuditActor,
) -> Result<(), sqlx::Error> {
    let purpose = if *actor == AuditActor::service() {
        AccessPurpose::System
    } else {
        AccessPurpose::CaseProcessing
    };
    let at = work.now();
    audit::record(
        work.db(),
        &AuditEvent {
            case_id,
            subject_id,
            kind,
            action,
            actor,
            purpose,
            at,
        },
    )
    .await?;
    Ok(())
}

/// Chooses the agreement for a new order of `case` on `now`'s Oslo date (capacity counted in
/// that month) and inserts the order in FUNDS_PENDING under it, with `request` (PlaceOrder's id
/// and fingerprint; None for a follow-up) and `details` (given, or copied from the order with
/// that id); or says why no agreement could be chosen.
pub async fn insert_under_chosen_agreement(
    db: &mut PgConnection,
    policy: &OrderingPolicy,
    case: &store::Case,
    request: Option<(Uuid, &str)>,
    details: Result<&store::OrderDetails<'_>, Uuid>,
    now: OffsetDateTime,
) -> Result<Result<Order, NoCandidate>, sqlx::Error> {
    let today = oslo_date(now);
    let month = month_start(today);
    let agreement = match selection::choose(
        db,
        case.case_id,
        &case.county_code,
        case.competence_area,
        today,
        month,
    )
    .await?
    {
        Ok(agreement) => agreement,
        Err(none) => return Ok(Err(none)),
    };
    let new = store::NewOrder {
        order_id: Uuid::now_v7(),
        request,
        case,
        agreement: &agreement,
        budget_year: today.year(),
        account: (policy.account_chapter, policy.account_post),
        usage_month: month,
        requested_at: now,
    };
    store::insert_order(db, &new, details).await.map(Ok)
}

/// Places the follow-up of `ended` (already in its final status) with the next candidate and
/// notes it on `ended`, or decides the fallback. Nothing is published here: see
/// [`publish_follow_up`].
pub async fn plan_follow_up(
    work: &mut UnitOfWork,
    policy: &OrderingPolicy,
    ended: &mut Order,
    now: OffsetDateTime,
) -> Result<FollowUp, sqlx::Error> {
    let Some(case) = store::find_case(work.db(), ended.case_id, true).await? else {
        return Ok(FollowUp::Nothing);
    };
    if !case.is_pilot() {
        return Ok(FollowUp::Nothing);
    }
    let holding = store::orders_of_case(work.db(), case.case_id, false)
        .await?
        .iter()
        .any(|order| store::HOLDING.contains(&order.status()));
    if holding {
        return Ok(FollowUp::Nothing);
    }
    match insert_under_chosen_agreement(work.db(), policy, &case, None, Err(ended.order_id), now)
        .await?
    {
        Ok(next) => {
            store::update_order(work.db(), ended.order_id, "next_order_id = $2", |query| {
                query.bind(next.order_id)
            })
            .await?;
            ended.next_order_id = Some(next.order_id);
            Ok(FollowUp::Next(Box::new(next)))
        }
        Err(none) => Ok(FollowUp::Fallback(none.fallback_reason())),
    }
}

/// Publishes what [`plan_follow_up`] decided: the follow-up's OrderRequested, or
/// PilotFallbackRequested (noted on the case, so it is asked once).
pub async fn publish_follow_up(
    work: &mut UnitOfWork,
    follow_up: &FollowUp,
    ended: &Order,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    match follow_up {
        FollowUp::Next(next) => {
            publish(work, next.case_id, &next.requested_event()).await?;
            audit_change(
                work,
                next.case_id,
                next.order_id,
                AuditEntryKind::Change,
                "FollowUpOrder",
                &AuditActor::service(),
            )
            .await
        }
        FollowUp::Fallback(reason) => {
            request_fallback(
                work,
                ended.case_id,
                &ended.county_code,
                *reason,
                Some(ended.order_id),
                (*reason == v1::FlowChangeReason::AgreementEnded).then_some(ended.agreement_id),
                now,
            )
            .await
        }
        FollowUp::Nothing => Ok(()),
    }
}

/// Publishes PilotFallbackRequested for `case_id` and notes it on the case.
pub async fn request_fallback(
    work: &mut UnitOfWork,
    case_id: Uuid,
    county: &str,
    reason: v1::FlowChangeReason,
    last_order_id: Option<Uuid>,
    agreement_id: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    store::note_fallback(work.db(), case_id).await?;
    publish(
        work,
        case_id,
        &v1::PilotFallbackRequested {
            case_id: case_id.to_string(),
            reason: reason as i32,
            county_code: county.to_owned(),
            last_order_id: last_order_id.map(|id| id.to_string()).unwrap_or_default(),
            agreement_id: agreement_id.map(|id| id.to_string()).unwrap_or_default(),
            requested_at: Some(timestamp_to_wire(now)),
        },
    )
    .await?;
    tracing::info!(%case_id, reason = reason.as_str_name(), "pilot fallback requested");
    Ok(())
}

/// Cancels `order` (FUNDS_PENDING, PLACED or ACCEPTED) for `reason` and publishes
/// OrderCancelled; with AGREEMENT_ENDED the follow-up (or the fallback) follows.
pub async fn cancel(
    work: &mut UnitOfWork,
    policy: &OrderingPolicy,
    order: &Order,
    reason: OrderCancellationReason,
    funds_denied_reason: v1::FundsDeniedReason,
    explanation: &str,
    now: OffsetDateTime,
) -> Result<(Order, FollowUp), sqlx::Error> {
    let previous = order.status();
    let mut cancelled = store::update_order(
        work.db(),
        order.order_id,
        "status = $2, cancellation_reason = $3, funds_denied_reason = $4, \
         cancellation_explanation = $5, cancelled_at = $6",
        |query| {
            query
                .bind(OrderStatus::Cancelled as i32)
                .bind(reason as i32)
                .bind(funds_denied_reason as i32)
                .bind(explanation.to_owned())
                .bind(now)
        },
    )
    .await?;
    let follow_up = if reason == OrderCancellationReason::AgreementEnded {
        plan_follow_up(work, policy, &mut cancelled, now).await?
    } else {
        FollowUp::Nothing
    };
    publish(
        work,
        order.case_id,
        &v1::OrderCancelled {
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            agreement_id: order.agreement_id.to_string(),
            previous_status: previous as i32,
            reason: reason as i32,
            funds_denied_reason: funds_denied_reason as i32,
            cancelled_at: Some(timestamp_to_wire(now)),
            next_order_id: follow_up.next_order_id(),
        },
    )
    .await?;
    publish_follow_up(work, &follow_up, &cancelled, now).await?;
    Ok((cancelled, follow_up))
}

/// Cancels `order` as [`cancel`] does (with no explanation) on the service's own decision,
/// `action` (the event or job that led to it), and audits it.
pub async fn cancel_by_service(
    work: &mut UnitOfWork,
    policy: &OrderingPolicy,
    order: &Order,
    reason: OrderCancellationReason,
    funds_denied_reason: v1::FundsDeniedReason,
    action: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    cancel(work, policy, order, reason, funds_denied_reason, "", now).await?;
    audit_change(
        work,
        order.case_id,
        order.order_id,
        AuditEntryKind::Decision,
        action,
        &AuditActor::service(),
    )
    .await
}

/// Expires `order` for `reason` and publishes OrderExpired; an unanswered order is followed
/// up as after a decline.
pub async fn expire(
    work: &mut UnitOfWork,
    policy: &OrderingPolicy,
    order: &Order,
    reason: OrderExpiryReason,
    now: OffsetDateTime,
) -> Result<Order, sqlx::Error> {
    let previous = order.status();
    let mut expired = store::update_order(
        work.db(),
        order.order_id,
        "status = $2, expiry_reason = $3, expired_at = $4",
        |query| {
            query
                .bind(OrderStatus::Expired as i32)
                .bind(reason as i32)
                .bind(now)
        },
    )
    .await?;
    let follow_up = if reason == OrderExpiryReason::SupplierDidNotAnswer {
        plan_follow_up(work, policy, &mut expired, now).await?
    } else {
        FollowUp::Nothing
    };
    publish(
        work,
        order.case_id,
        &v1::OrderExpired {
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            agreement_id: order.agreement_id.to_string(),
            amount_ore: order.price_ore,
            reason: reason as i32,
            expired_at: Some(timestamp_to_wire(now)),
            previous_status: previous as i32,
            next_order_id: follow_up.next_order_id(),
        },
    )
    .await?;
    publish_follow_up(work, &follow_up, &expired, now).await?;
    audit_change(
        work,
        order.case_id,
        order.order_id,
        AuditEntryKind::Decision,
        "ExpirySweep",
        &AuditActor::service(),
    )
    .await?;
    Ok(expired)
}

/// Handles agreement `agreement_id` having stopped being active on `now`'s date: its
/// FUNDS_PENDING and PLACED orders are cancelled (AGREEMENT_ENDED) and followed up; PILOT cases
/// it covered that now have no active agreement and no order fall back. ACCEPTED and STARTED
/// orders stand.
pub async fn agreement_stopped(
    work: &mut UnitOfWork,
    policy: &OrderingPolicy,
    agreement_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let open = store::orders_of_agreement(
        work.db(),
        agreement_id,
        &[OrderStatus::FundsPending, OrderStatus::Placed],
    )
    .await?;
    for order in &open {
        cancel_by_service(
            work,
            policy,
            order,
            OrderCancellationReason::AgreementEnded,
            v1::FundsDeniedReason::Unspecified,
            "AgreementEnded",
            now,
        )
        .await?;
    }
    fall_back_uncovered(work, Some(agreement_id), now).await
}

/// Asks the fallback (AGREEMENT_ENDED) for PILOT cases with no order and no active agreement
/// left (only those `agreement` covers, when given).
pub async fn fall_back_uncovered(
    work: &mut UnitOfWork,
    agreement: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let today = oslo_date(now);
    for case_id in store::uncovered_pilot_cases(work.db(), today, agreement).await? {
        let Some(case) = store::find_case(work.db(), case_id, true).await? else {
            continue;
        };
        let last = store::orders_of_case(work.db(), case_id, false)
            .await?
            .last()
            .map(|order| order.order_id);
        request_fallback(
            work,
            case_id,
            &case.county_code,
            v1::FlowChangeReason::AgreementEnded,
            last,
            agreement,
            now,
        )
        .await?;
    }
    Ok(())
}
