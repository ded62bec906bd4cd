//! Orders ending before their work is done: cancelled (by a caseworker, by budget's denial, by
//! the case leaving the pilot, by the agreement ending) and expired (the supplier did not
//! answer, the expert did not start, nothing was invoiced in time).
//!
//! When an order ends before the supplier took it — declined, unanswered, or its agreement
//! ended — the case goes on: to the next supplier (a follow-up order, FUNDS_PENDING) or, when
//! none can take it, back to the regular flow (PilotFallbackRequested). Which of the two was
//! found when the order was loaded ([`Successor`], store), so the decision stays pure.
//!
//! Order of events on the topic (pilot_ordering_events.proto): the event that ended the old
//! order comes first and names the follow-up (`next_order_id`) or the fallback reason; the
//! follow-up's OrderRequested, or PilotFallbackRequested, comes after it.

use ekb_platform::{
    ApiError,
    audit::AuditActor,
    change::{Decision, Effects},
};
use ekb_proto::{
    convert::timestamp_to_wire,
    v1::{self, FlowChangeReason},
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{audit, subject};
use crate::{
    codes::{
        FundsDeniedReason, OrderCancellationReason, OrderExpiryReason, OrderStatus,
        wire_or_unspecified,
    },
    model::Order,
    selection::{Agreement, NoCandidate},
    store::Case,
};

/// What could follow an order if it ended now, as found when it was loaded.
#[derive(Debug, Clone)]
pub enum Successor {
    /// Nothing: the case left the pilot, or holds another order.
    Nothing,
    /// The follow-up would go to this agreement (its month row is locked).
    Candidate {
        /// The case.
        case: Box<Case>,
        /// The agreement.
        agreement: Agreement,
    },
    /// No agreement can take the case.
    NoCandidate(NoCandidate),
}

/// What followed an order that ended before the supplier took it.
#[derive(Debug, Clone)]
pub enum FollowUp {
    /// A follow-up order with the next candidate (FUNDS_PENDING).
    Next(Box<Order>),
    /// No candidate is left: the case falls back to the regular flow, for this reason.
    Fallback(FlowChangeReason),
    /// Nothing (the case left the pilot already, holds another order, or the order did not end
    /// in a way that is followed up).
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
    pub fn fallback_reason(&self) -> FlowChangeReason {
        match self {
            FollowUp::Fallback(reason) => *reason,
            _ => FlowChangeReason::Unspecified,
        }
    }

    /// `effects` (the ended order's) followed by this follow-up's: the follow-up's
    /// OrderRequested and its audit entry, or PilotFallbackRequested.
    pub(super) fn effects(&self, effects: Effects, ended: &Order, now: OffsetDateTime) -> Effects {
        match self {
            FollowUp::Next(next) => effects
                .audited_change(audit(
                    next,
                    next.order_id,
                    "FollowUpOrder",
                    &AuditActor::service(),
                ))
                .publishing(subject(next), &next.requested_event()),
            FollowUp::Fallback(reason) => effects.publishing(
                subject(ended),
                &fallback_event(
                    ended.case_id,
                    &ended.county_code,
                    *reason,
                    Some(ended.order_id),
                    (*reason == FlowChangeReason::AgreementEnded).then_some(ended.agreement_id),
                    now,
                ),
            ),
            FollowUp::Nothing => effects,
        }
    }
}

/// PilotFallbackRequested: case `case_id` (of `county`) should move to the regular flow for
/// `reason`; `last_order_id` and `agreement_id` when known.
pub fn fallback_event(
    case_id: Uuid,
    county: &str,
    reason: FlowChangeReason,
    last_order_id: Option<Uuid>,
    agreement_id: Option<Uuid>,
    now: OffsetDateTime,
) -> v1::PilotFallbackRequested {
    v1::PilotFallbackRequested {
        case_id: case_id.to_string(),
        reason: reason.into(),
        county_code: county.to_owned(),
        last_order_id: last_order_id.map(|id| id.to_string()).unwrap_or_default(),
        agreement_id: agreement_id.map(|id| id.to_string()).unwrap_or_default(),
        requested_at: Some(timestamp_to_wire(now)),
    }
}

/// An order that may end before the supplier took it, with what would follow it.
#[derive(Debug, Clone)]
pub struct Ending {
    /// The order.
    pub order: Order,
    /// What could follow it, found when it was loaded.
    pub successor: Successor,
    /// What the decision made follow it (saved with it).
    pub follow_up: FollowUp,
}

impl Ending {
    /// `order` as loaded, with its `successor`; nothing follows yet.
    pub fn new(order: Order, successor: Successor) -> Self {
        Ending {
            order,
            successor,
            follow_up: FollowUp::Nothing,
        }
    }

    /// Decides what follows the order (ended at `now`): a follow-up under the candidate
    /// (charged to `account`), noted on the order, or the fallback.
    pub(super) fn follow(&mut self, account: &v1::BudgetAccount, now: OffsetDateTime) -> FollowUp {
        self.follow_up = match &self.successor {
            Successor::Nothing => FollowUp::Nothing,
            Successor::Candidate { case, agreement } => {
                // A follow-up is for the same case, so in the same area.
                let next = Order::requested(
                    case,
                    self.order.competence_area.0,
                    agreement,
                    account,
                    self.order.assignment(),
                    Some(self.order.order_id),
                    now,
                );
                self.order.next_order_id = Some(next.order_id);
                FollowUp::Next(Box::new(next))
            }
            Successor::NoCandidate(none) => FollowUp::Fallback(none.fallback_reason()),
        };
        self.follow_up.clone()
    }

    /// The order's agreement stopped being active (AgreementEnded, or the sweep found it
    /// stopped): a FUNDS_PENDING or PLACED order is cancelled (AGREEMENT_ENDED) and followed
    /// up; any other is left as it is.
    pub fn end_agreement(&mut self, account: &v1::BudgetAccount, now: OffsetDateTime) -> Decision {
        if !matches!(
            self.order.status,
            OrderStatus::FundsPending | OrderStatus::Placed
        ) {
            return Decision::Unchanged;
        }
        let reason = OrderCancellationReason::AgreementEnded;
        let cancelled = self.order.cancelled(reason, None, "", now);
        let follow_up = self.follow(account, now);
        let order = &self.order;
        let event = v1::OrderCancelled {
            next_order_id: follow_up.next_order_id(),
            ..cancelled
        };
        let effects = Effects::new()
            .audited(audit(
                order,
                order.order_id,
                "AgreementEnded",
                &AuditActor::service(),
            ))
            .publishing(subject(order), &event);
        follow_up.effects(effects, order, now).changed()
    }

    /// The supplier did not answer the PLACED order in time: it expires and is followed up as
    /// after a decline. An order no longer PLACED is left as it is.
    pub fn expire_unanswered(
        &mut self,
        account: &v1::BudgetAccount,
        now: OffsetDateTime,
    ) -> Decision {
        if self.order.status != OrderStatus::Placed {
            return Decision::Unchanged;
        }
        let expired = self
            .order
            .expired(OrderExpiryReason::SupplierDidNotAnswer, now);
        let follow_up = self.follow(account, now);
        let event = v1::OrderExpired {
            next_order_id: follow_up.next_order_id(),
            ..expired
        };
        let order = &self.order;
        let effects = Effects::new()
            .audited(audit(order, order.order_id, EXPIRY, &AuditActor::service()))
            .publishing(subject(order), &event);
        follow_up.effects(effects, order, now).changed()
    }
}

/// The audit action of an expiry.
const EXPIRY: &str = "ExpirySweep";

/// An expiry with no follow-up (the work was under way or done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverdueExpiry {
    /// An ACCEPTED order whose expert did not start in time.
    NotStarted,
    /// A COMPLETED or ABORTED order not invoiced by its deadline.
    NotInvoiced,
}

impl Order {
    /// A caseworker cancels the order (FUNDS_PENDING, PLACED or ACCEPTED) for `reason`.
    pub fn cancel(
        &mut self,
        reason: OrderCancellationReason,
        explanation: &str,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        match self.status {
            OrderStatus::Cancelled if self.cancellation_reason == Some(reason) => {
                return Ok(Decision::Unchanged);
            }
            OrderStatus::FundsPending | OrderStatus::Placed | OrderStatus::Accepted => {}
            OrderStatus::Started => {
                return Err(ApiError::refused(
                    "ORDER_STARTED",
                    "the expert has started: abort the order instead",
                ));
            }
            _ => return Err(ApiError::refused("ORDER_CLOSED", "the order is closed")),
        }
        let event = self.cancelled(reason, None, explanation, now);
        Ok(Effects::new()
            .audited(audit(self, self.order_id, "CancelOrder", actor))
            .publishing(subject(self), &event)
            .changed())
    }

    /// Budget denied the funds for a FUNDS_PENDING order (`denied`): it is cancelled. An order
    /// no longer pending is left as it is.
    pub fn deny_funds(
        &mut self,
        denied: Option<FundsDeniedReason>,
        now: OffsetDateTime,
    ) -> Decision {
        if self.status != OrderStatus::FundsPending {
            return Decision::Unchanged;
        }
        self.cancelled_by_service(
            OrderCancellationReason::FundsDenied,
            denied,
            "FundsDenied",
            now,
        )
    }

    /// The case left the pilot: an order not yet at work (FUNDS_PENDING, PLACED, ACCEPTED) is
    /// cancelled; any other is left as it is.
    pub fn leave_pilot(&mut self, now: OffsetDateTime) -> Decision {
        if !matches!(
            self.status,
            OrderStatus::FundsPending | OrderStatus::Placed | OrderStatus::Accepted
        ) {
            return Decision::Unchanged;
        }
        self.cancelled_by_service(
            OrderCancellationReason::CaseLeftPilot,
            None,
            "CaseFlowChanged",
            now,
        )
    }

    /// The order is overdue (`overdue`) on the sweep at `now` and expires; an order no longer
    /// in the status the deadline is about is left as it is.
    pub fn expire(&mut self, overdue: OverdueExpiry, now: OffsetDateTime) -> Decision {
        let (due, reason) = match overdue {
            OverdueExpiry::NotStarted => (
                self.status == OrderStatus::Accepted,
                OrderExpiryReason::NotStartedInTime,
            ),
            OverdueExpiry::NotInvoiced => (
                matches!(self.status, OrderStatus::Completed | OrderStatus::Aborted),
                OrderExpiryReason::InvoiceDeadlinePassed,
            ),
        };
        if !due {
            return Decision::Unchanged;
        }
        let event = self.expired(reason, now);
        Effects::new()
            .audited(audit(self, self.order_id, EXPIRY, &AuditActor::service()))
            .publishing(subject(self), &event)
            .changed()
    }

    /// Cancels the order on the service's own decision, `action` (the event that led to it).
    fn cancelled_by_service(
        &mut self,
        reason: OrderCancellationReason,
        denied: Option<FundsDeniedReason>,
        action: &'static str,
        now: OffsetDateTime,
    ) -> Decision {
        let event = self.cancelled(reason, denied, "", now);
        Effects::new()
            .audited(audit(self, self.order_id, action, &AuditActor::service()))
            .publishing(subject(self), &event)
            .changed()
    }

    /// Moves the order to CANCELLED; returns its OrderCancelled (no follow-up named yet).
    fn cancelled(
        &mut self,
        reason: OrderCancellationReason,
        denied: Option<FundsDeniedReason>,
        explanation: &str,
        now: OffsetDateTime,
    ) -> v1::OrderCancelled {
        let previous = self.status;
        self.status = OrderStatus::Cancelled;
        self.cancellation_reason = Some(reason);
        self.funds_denied_reason = denied;
        self.cancellation_explanation = explanation.to_owned();
        self.cancelled_at = Some(now);
        self.updated_at = now;
        v1::OrderCancelled {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            agreement_id: self.agreement_id.to_string(),
            previous_status: previous.into(),
            reason: reason.into(),
            funds_denied_reason: wire_or_unspecified(denied),
            cancelled_at: Some(timestamp_to_wire(now)),
            next_order_id: String::new(),
        }
    }

    /// Moves the order to EXPIRED; returns its OrderExpired (no follow-up named yet).
    fn expired(&mut self, reason: OrderExpiryReason, now: OffsetDateTime) -> v1::OrderExpired {
        let previous = self.status;
        self.status = OrderStatus::Expired;
        self.expiry_reason = Some(reason);
        self.expired_at = Some(now);
        self.updated_at = now;
        v1::OrderExpired {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            agreement_id: self.agreement_id.to_string(),
            amount_ore: self.price_ore,
            reason: reason.into(),
            expired_at: Some(timestamp_to_wire(now)),
            previous_status: previous.into(),
            next_order_id: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transitions::fixtures::{NOW, account, agreement, case, order};

    fn caseworker() -> AuditActor {
        AuditActor::service()
    }

    #[test]
    fn a_caseworker_cancels_an_order_not_yet_at_work_once() {
        let mut placed = order(OrderStatus::Placed);
        let reason = OrderCancellationReason::EmployerWithdrew;
        assert!(matches!(
            placed.cancel(reason, "", &caseworker(), NOW),
            Ok(Decision::Changed(_))
        ));
        assert_eq!(placed.status, OrderStatus::Cancelled);
        assert_eq!(placed.cancelled_at, Some(NOW));
        assert!(matches!(
            placed.cancel(reason, "", &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
    }

    #[test]
    fn a_started_or_closed_order_cannot_be_cancelled() {
        let reason = OrderCancellationReason::EmployerWithdrew;
        let mut started = order(OrderStatus::Started);
        let refused = started
            .cancel(reason, "", &caseworker(), NOW)
            .expect_err("started");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "ORDER_STARTED",
                ..
            }
        ));
        let mut completed = order(OrderStatus::Completed);
        let refused = completed
            .cancel(reason, "", &caseworker(), NOW)
            .expect_err("closed");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "ORDER_CLOSED",
                ..
            }
        ));
    }

    #[test]
    fn the_service_cancels_only_orders_its_event_is_about() {
        let mut pending = order(OrderStatus::FundsPending);
        let denied = Some(FundsDeniedReason::InsufficientFunds);
        assert!(matches!(
            pending.deny_funds(denied, NOW),
            Decision::Changed(_)
        ));
        assert_eq!(pending.funds_denied_reason, denied);
        assert!(matches!(
            pending.deny_funds(denied, NOW),
            Decision::Unchanged
        ));
        let mut placed = order(OrderStatus::Placed);
        assert!(matches!(
            placed.deny_funds(denied, NOW),
            Decision::Unchanged
        ));
        assert!(matches!(placed.leave_pilot(NOW), Decision::Changed(_)));
        assert_eq!(
            placed.cancellation_reason,
            Some(OrderCancellationReason::CaseLeftPilot)
        );
        let mut started = order(OrderStatus::Started);
        assert!(matches!(started.leave_pilot(NOW), Decision::Unchanged));
    }

    #[test]
    fn an_ended_agreement_cancels_open_orders_and_follows_them_up() {
        let mut ending = Ending::new(
            order(OrderStatus::Placed),
            Successor::Candidate {
                case: Box::new(case()),
                agreement: agreement(2),
            },
        );
        assert!(matches!(
            ending.end_agreement(&account(), NOW),
            Decision::Changed(_)
        ));
        assert_eq!(
            ending.order.cancellation_reason,
            Some(OrderCancellationReason::AgreementEnded)
        );
        assert!(matches!(ending.follow_up, FollowUp::Next(_)));
        assert!(matches!(
            ending.end_agreement(&account(), NOW),
            Decision::Unchanged
        ));
        let mut accepted = Ending::new(order(OrderStatus::Accepted), Successor::Nothing);
        assert!(matches!(
            accepted.end_agreement(&account(), NOW),
            Decision::Unchanged
        ));
    }

    #[test]
    fn an_unanswered_order_expires_and_falls_back_when_no_supplier_is_left() {
        let mut ending = Ending::new(
            order(OrderStatus::Placed),
            Successor::NoCandidate(NoCandidate::AgreementsFull),
        );
        assert!(matches!(
            ending.expire_unanswered(&account(), NOW),
            Decision::Changed(_)
        ));
        assert_eq!(ending.order.status, OrderStatus::Expired);
        assert!(matches!(
            ending.follow_up,
            FollowUp::Fallback(FlowChangeReason::AgreementsFull)
        ));
        assert!(matches!(
            ending.expire_unanswered(&account(), NOW),
            Decision::Unchanged
        ));
    }

    #[test]
    fn overdue_orders_expire_only_in_the_status_their_deadline_is_about() {
        let mut accepted = order(OrderStatus::Accepted);
        assert!(matches!(
            accepted.expire(OverdueExpiry::NotStarted, NOW),
            Decision::Changed(_)
        ));
        assert_eq!(
            accepted.expiry_reason,
            Some(OrderExpiryReason::NotStartedInTime)
        );
        assert!(matches!(
            accepted.expire(OverdueExpiry::NotStarted, NOW),
            Decision::Unchanged
        ));
        let mut aborted = order(OrderStatus::Aborted);
        assert!(matches!(
            aborted.expire(OverdueExpiry::NotInvoiced, NOW),
            Decision::Changed(_)
        ));
        let mut started = order(OrderStatus::Started);
        assert!(matches!(
            started.expire(OverdueExpiry::NotInvoiced, NOW),
            Decision::Unchanged
        ));
    }
}
