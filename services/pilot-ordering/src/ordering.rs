//! Ordering for a case, where more than one order or case is involved: PlaceOrder (the first
//! order of a case, under the agreement chosen for it), an agreement that stopped being active
//! (its open orders cancelled and followed up, the cases it alone covered sent back), and the
//! fallback of PILOT cases no agreement covers any more. The change of one order is decided by
//! its own methods (`transitions`); this module finds the orders and cases they apply to.

use ekb_domain::{month_start, oslo_date};
use ekb_platform::{
    ApiError,
    audit::{self, AuditActor, AuditEvent},
    change, idempotency,
    messaging::{EventSubject, UnitOfWork},
};
use ekb_proto::v1::{self, AccessPurpose, AuditEntryKind, FlowChangeReason};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    codes::OrderStatus,
    commands::PlaceOrder,
    config::OrderingPolicy,
    model::{Assignment, LIVE, Order},
    selection::{self, NoCandidate},
    store::{self, EndingKey},
    transitions::{Ending, fallback_event},
};

/// The account orders are charged to.
pub fn account(policy: &OrderingPolicy) -> v1::BudgetAccount {
    v1::BudgetAccount {
        chapter: policy.account.chapter(),
        post: policy.account.post(),
    }
}

/// A PlaceOrder request as the service takes it: checked, with the employee pseudonymised and
/// sealed and the request's fingerprint.
#[derive(Debug)]
pub struct OrderRequest<'a> {
    /// The checked command.
    pub command: &'a PlaceOrder,
    /// The request's fingerprint (with the pseudonym for the fødselsnummer).
    pub fingerprint: &'a str,
    /// The employee's pseudonym.
    pub pseudonym: String,
    /// The employee's fødselsnummer, sealed.
    pub sealed_fodselsnummer: String,
}

/// Places the first live order of `request`'s case under the agreement chosen for it
/// (FUNDS_PENDING, OrderRequested published), by `actor`; a copy of an earlier request gets
/// that request's order. Returns the order and whether it was created now.
pub async fn place(
    work: &mut UnitOfWork,
    policy: &OrderingPolicy,
    request: &OrderRequest<'_>,
    actor: &AuditActor,
) -> Result<(Order, bool), ApiError> {
    let command = request.command;
    // Copies of this request wait for the first; other orders for the case see its answer.
    idempotency::serialise(
        work,
        &[
            format!("PlaceOrder:{}", command.request_id),
            format!("case:{}", command.case_id),
        ],
    )
    .await?;
    if let Some((order, stored)) =
        store::find_order_by_request(work.db(), command.request_id).await?
    {
        if stored != request.fingerprint {
            return Err(ApiError::AlreadyExists(format!(
                "request id {} was used for another order request",
                command.request_id
            )));
        }
        return Ok((order, false));
    }
    let case = store::find_case(work.db(), command.case_id, true)
        .await?
        .ok_or_else(|| ApiError::not_arrived_yet(format!("case {}", command.case_id)))?;
    let orders = store::orders_of_case(work.db(), case.case_id, false).await?;
    may_order(&case, &orders)?;
    let not_arrived = || {
        ApiError::not_arrived_yet(format!(
            "the framework agreements for county {} and the case's competence area",
            case.county_code
        ))
    };
    // A PILOT case always has its area; one without is covered by no agreement known here.
    let area = case.area().ok_or_else(not_arrived)?;
    let now = work.now();
    let today = oslo_date(now);
    let wanted = selection::Wanted {
        case_id: case.case_id,
        county: &case.county_code,
        area,
        date: today,
        month: month_start(today),
        also_failed: None,
    };
    let agreement = match selection::choose(work.db(), &wanted).await? {
        Ok(agreement) => agreement,
        Err(NoCandidate::NoActiveAgreement)
            if !selection::knows_any_agreement(work.db(), &case.county_code, area).await? =>
        {
            return Err(not_arrived());
        }
        Err(none) => return Err(ApiError::refused(none.reason(), none.message())),
    };
    let assignment = Assignment {
        contact_name: command.contact_name.clone(),
        contact_phone: command.contact_phone.clone(),
        contact_email: command.contact_email.clone(),
        description: command.assignment.clone(),
        employee_pseudonym: request.pseudonym.clone(),
    };
    let order = Order::requested(
        &case,
        area,
        &agreement,
        &account(policy),
        assignment,
        None,
        now,
    );
    store::insert_order(
        work.db(),
        &order,
        Some((command.request_id, request.fingerprint)),
        Some(&request.sealed_fodselsnummer),
    )
    .await?;
    work.publish(
        &EventSubject::case(case.case_id.to_string()),
        &order.requested_event(),
    )
    .await?;
    audit::record(
        work.db(),
        &AuditEvent {
            case_id: case.case_id,
            subject_id: order.order_id,
            kind: AuditEntryKind::Change,
            action: "PlaceOrder",
            actor,
            purpose: AccessPurpose::CaseProcessing,
            at: now,
        },
    )
    .await?;
    tracing::info!(order_id = %order.order_id, case_id = %case.case_id, agreement_id = %order.agreement_id, "order requested");
    Ok((order, true))
}

/// Whether `case` may get a new order, given its `orders`: it is PILOT, has no live order and
/// none was completed.
pub fn may_order(case: &store::Case, orders: &[Order]) -> Result<(), ApiError> {
    if !case.is_pilot() {
        return Err(ApiError::refused(
            "CASE_NOT_PILOT",
            format!("case {} is in the regular flow", case.case_id),
        ));
    }
    if orders.iter().any(|order| LIVE.contains(&order.status)) {
        return Err(ApiError::refused(
            "CASE_HAS_LIVE_ORDER",
            "the case has an order that is pending, placed, accepted or started",
        ));
    }
    if orders
        .iter()
        .any(|order| order.status == OrderStatus::Completed)
    {
        return Err(ApiError::refused(
            "CASE_ALREADY_DELIVERED",
            "an order of the case was completed",
        ));
    }
    Ok(())
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
) -> Result<(), ApiError> {
    let open = store::orders_of_agreement(
        work.db(),
        agreement_id,
        &[OrderStatus::FundsPending, OrderStatus::Placed],
    )
    .await?;
    let account = account(policy);
    for order in open {
        let key = EndingKey {
            order_id: order.order_id,
            on: now,
        };
        change::apply_in::<Ending, _>(work, now, &key, |ending, now| {
            Ok(ending.end_agreement(&account, now))
        })
        .await?;
    }
    fall_back_uncovered(work, Some(agreement_id), now).await?;
    Ok(())
}

/// Asks the fallback (AGREEMENT_ENDED) for PILOT cases with no order and no active agreement
/// left (only those `agreement` covers, when given), noting it on each case.
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
        store::note_fallback(work.db(), case_id, now).await?;
        let reason = FlowChangeReason::AgreementEnded;
        work.publish(
            &EventSubject::case(case_id.to_string()),
            &fallback_event(case_id, &case.county_code, reason, last, agreement, now),
        )
        .await?;
        tracing::info!(%case_id, reason = reason.as_str_name(), "pilot fallback requested");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transitions::fixtures::{case, order};

    #[test]
    fn a_case_gets_an_order_while_pilot_with_none_live_or_delivered() {
        let pilot = case();
        assert!(may_order(&pilot, &[]).is_ok());
        assert!(may_order(&pilot, &[order(OrderStatus::Declined)]).is_ok());
        let refusal = |orders: &[Order], case: &store::Case| match may_order(case, orders) {
            Err(ApiError::FailedPrecondition { reason, .. }) => reason,
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(
            refusal(&[order(OrderStatus::Placed)], &pilot),
            "CASE_HAS_LIVE_ORDER"
        );
        assert_eq!(
            refusal(&[order(OrderStatus::Completed)], &pilot),
            "CASE_ALREADY_DELIVERED"
        );
        let regular = store::Case {
            flow: "REGULAR".to_owned(),
            ..case()
        };
        assert_eq!(refusal(&[], &regular), "CASE_NOT_PILOT");
    }
}
