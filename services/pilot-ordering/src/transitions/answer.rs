//! The supplier's answer to a placed order. An acceptance moves the order to ACCEPTED; a
//! decline ends it, and the case goes to the next supplier or falls back to the regular flow
//! ([`Ending`]). Answering again the same way on the same day is a repeat.

use ekb_platform::{
    ApiError,
    audit::AuditActor,
    change::{Decision, Effects},
};
use ekb_proto::{
    convert::{date_to_wire, timestamp_to_wire},
    v1,
};
use time::{Date, OffsetDateTime};

use super::{Ending, audit, subject};
use crate::{
    codes::{OrderStatus, SupplierDeclineReason},
    model::Order,
};

/// The audit action of an answer.
const ACTION: &str = "RecordSupplierResponse";

impl Order {
    /// The supplier accepts the order on `on` (recorded by `actor` at `now`).
    pub fn accept(
        &mut self,
        on: Date,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if self.status == OrderStatus::Accepted && self.supplier_responded_date == Some(on) {
            return Ok(Decision::Unchanged);
        }
        self.require_placed()?;
        self.status = OrderStatus::Accepted;
        self.supplier_responded_date = Some(on);
        self.accepted_at = Some(now);
        self.updated_at = now;
        let accepted = v1::OrderAccepted {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            agreement_id: self.agreement_id.to_string(),
            accepted_date: date_to_wire(on),
            accepted_at: Some(timestamp_to_wire(now)),
        };
        Ok(Effects::new()
            .audited_change(audit(self, self.order_id, ACTION, actor))
            .publishing(subject(self), &accepted)
            .changed())
    }

    /// Only a placed order can be answered.
    fn require_placed(&self) -> Result<(), ApiError> {
        if self.status == OrderStatus::Placed {
            Ok(())
        } else {
            Err(ApiError::refused(
                "ORDER_NOT_PLACED",
                format!("order {} is not placed with the supplier", self.order_id),
            ))
        }
    }
}

impl Ending {
    /// The supplier declines the order on `on` for `reason` (`text` says more); the follow-up
    /// or the fallback follows. Recorded by `actor` at `now`.
    pub fn decline(
        &mut self,
        reason: SupplierDeclineReason,
        text: &str,
        on: Date,
        actor: &AuditActor,
        account: &v1::BudgetAccount,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        let order = &mut self.order;
        if order.status == OrderStatus::Declined
            && order.decline_reason_code == Some(reason)
            && order.supplier_responded_date == Some(on)
        {
            return Ok(Decision::Unchanged);
        }
        order.require_placed()?;
        order.status = OrderStatus::Declined;
        order.supplier_responded_date = Some(on);
        order.decline_reason_code = Some(reason);
        order.decline_reason = text.to_owned();
        order.updated_at = now;
        let follow_up = self.follow(account, now);
        let order = &self.order;
        let declined = v1::OrderDeclined {
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            agreement_id: order.agreement_id.to_string(),
            supplier_organisation_number: order.supplier_organisation_number.clone(),
            amount_ore: order.price_ore,
            next_order_id: follow_up.next_order_id(),
            declined_date: date_to_wire(on),
            declined_at: Some(timestamp_to_wire(now)),
            decline_reason: reason.into(),
            fallback_reason: follow_up.fallback_reason() as i32,
        };
        let effects = Effects::new()
            .audited_change(audit(order, order.order_id, ACTION, actor))
            .publishing(subject(order), &declined);
        Ok(follow_up.effects(effects, order, now).changed())
    }
}

#[cfg(test)]
mod tests {
    use ekb_platform::change::Decision;
    use ekb_proto::v1::FlowChangeReason;
    use time::macros::date;

    use super::*;
    use crate::{
        selection::NoCandidate,
        transitions::{
            FollowUp, Successor,
            fixtures::{NOW, account, agreement, case, order},
        },
    };

    fn supplier() -> AuditActor {
        AuditActor::service()
    }

    #[test]
    fn a_placed_order_is_accepted_once() {
        let mut placed = order(OrderStatus::Placed);
        let decision = placed.accept(date!(2027 - 03 - 10), &supplier(), NOW);
        assert!(matches!(decision, Ok(Decision::Changed(_))));
        assert_eq!(placed.status, OrderStatus::Accepted);
        assert_eq!(placed.accepted_at, Some(NOW));
        let repeat = placed.accept(date!(2027 - 03 - 10), &supplier(), NOW);
        assert!(matches!(repeat, Ok(Decision::Unchanged)));
    }

    #[test]
    fn only_a_placed_order_can_be_answered() {
        for status in [OrderStatus::FundsPending, OrderStatus::Started] {
            let mut other = order(status);
            let refused = other
                .accept(date!(2027 - 03 - 10), &supplier(), NOW)
                .expect_err("not placed");
            assert!(matches!(
                refused,
                ApiError::FailedPrecondition {
                    reason: "ORDER_NOT_PLACED",
                    ..
                }
            ));
        }
        let mut accepted = order(OrderStatus::Placed);
        accepted
            .accept(date!(2027 - 03 - 09), &supplier(), NOW)
            .expect("accepted");
        let mut ending = Ending::new(accepted, Successor::Nothing);
        let refused = ending
            .decline(
                SupplierDeclineReason::NoCapacity,
                "",
                date!(2027 - 03 - 10),
                &supplier(),
                &account(),
                NOW,
            )
            .expect_err("accepted already");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "ORDER_NOT_PLACED",
                ..
            }
        ));
    }

    #[test]
    fn a_decline_goes_to_the_next_supplier_with_the_same_assignment() {
        let placed = order(OrderStatus::Placed);
        let next_agreement = agreement(2);
        let mut ending = Ending::new(
            placed.clone(),
            Successor::Candidate {
                case: Box::new(case()),
                agreement: next_agreement.clone(),
            },
        );
        let decision = ending.decline(
            SupplierDeclineReason::NoCapacity,
            "full",
            date!(2027 - 03 - 10),
            &supplier(),
            &account(),
            NOW,
        );
        assert!(matches!(decision, Ok(Decision::Changed(_))));
        assert_eq!(ending.order.status, OrderStatus::Declined);
        let FollowUp::Next(next) = &ending.follow_up else {
            panic!("a follow-up: {:?}", ending.follow_up);
        };
        assert_eq!(ending.order.next_order_id, Some(next.order_id));
        assert_eq!(next.previous_order_id, Some(placed.order_id));
        assert_eq!(next.agreement_id, next_agreement.agreement_id);
        assert_eq!(next.status, OrderStatus::FundsPending);
        assert_eq!(next.assignment(), placed.assignment());
        let repeat = ending.decline(
            SupplierDeclineReason::NoCapacity,
            "full",
            date!(2027 - 03 - 10),
            &supplier(),
            &account(),
            NOW,
        );
        assert!(matches!(repeat, Ok(Decision::Unchanged)));
    }

    #[test]
    fn a_decline_with_no_supplier_left_falls_back() {
        let mut ending = Ending::new(
            order(OrderStatus::Placed),
            Successor::NoCandidate(NoCandidate::AllTried),
        );
        ending
            .decline(
                SupplierDeclineReason::Other,
                "no",
                date!(2027 - 03 - 10),
                &supplier(),
                &account(),
                NOW,
            )
            .expect("declined");
        assert!(matches!(
            ending.follow_up,
            FollowUp::Fallback(FlowChangeReason::NoSupplierAvailable)
        ));
        assert_eq!(ending.order.next_order_id, None);
    }
}
