//! An order at work: budget reserved its price (PLACED, sent to the supplier), the expert
//! started, the work was completed, or it was aborted once accepted or started. Completion and
//! abort open the invoicing window (`invoice_deadline`).

use ekb_domain::oslo_date;
use ekb_platform::{
    ApiError,
    audit::AuditActor,
    change::{Decision, Effects},
};
use ekb_proto::{
    convert::{date_to_wire, timestamp_to_wire},
    v1,
};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::{audit, subject};
use crate::{
    codes::{OrderAbortReason, OrderStatus},
    model::Order,
};

impl Order {
    /// Budget reserved the order's price (`reservation_id`): a FUNDS_PENDING order is placed
    /// with the supplier. An order no longer pending is left as it is.
    pub fn place(&mut self, reservation_id: &str, now: OffsetDateTime) -> Decision {
        if self.status != OrderStatus::FundsPending {
            return Decision::Unchanged;
        }
        self.status = OrderStatus::Placed;
        self.reservation_id = reservation_id.to_owned();
        self.placed_at = Some(now);
        self.updated_at = now;
        let placed = v1::OrderPlaced {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            agreement_id: self.agreement_id.to_string(),
            supplier_organisation_number: self.supplier_organisation_number.clone(),
            amount_ore: self.price_ore,
            reservation_id: self.reservation_id.clone(),
            placed_at: Some(timestamp_to_wire(now)),
            employee_pseudonym: self.employee_pseudonym.clone(),
            competence_area: self.wire_area(),
        };
        Effects::new()
            .audited_change(audit(
                self,
                self.order_id,
                "FundsReserved",
                &AuditActor::service(),
            ))
            .publishing(subject(self), &placed)
            .changed()
    }

    /// The expert (`expert_id`, if known) started on `on`, not before the case was opened.
    pub fn start(
        &mut self,
        on: Date,
        expert_id: Option<Uuid>,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if self.status == OrderStatus::Started
            && self.started_date == Some(on)
            && self.expert_id == expert_id
        {
            return Ok(Decision::Unchanged);
        }
        if self.status != OrderStatus::Accepted {
            return Err(ApiError::refused(
                "ORDER_NOT_ACCEPTED",
                format!("order {} is not accepted", self.order_id),
            ));
        }
        let opened = oslo_date(self.case_opened_at);
        if on < opened {
            return Err(ApiError::invalid(
                "started_date",
                "must not be before the case was opened",
            ));
        }
        self.status = OrderStatus::Started;
        self.started_date = Some(on);
        self.expert_id = expert_id;
        self.updated_at = now;
        let days = (on - opened).whole_days();
        let started = v1::OrderStarted {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            competence_area: self.wire_area(),
            agreement_id: self.agreement_id.to_string(),
            expert_id: expert_id.map(|id| id.to_string()).unwrap_or_default(),
            case_opened_date: date_to_wire(opened),
            started_date: date_to_wire(on),
            days_from_case_opened_to_started: i32::try_from(days).unwrap_or(i32::MAX),
            recorded_at: Some(timestamp_to_wire(now)),
        };
        Ok(Effects::new()
            .audited_change(audit(self, self.order_id, "RecordExpertStarted", actor))
            .publishing(subject(self), &started)
            .changed())
    }

    /// The work was completed on `on` with report `report_document_id`; the supplier may
    /// invoice for `invoice_days` days after.
    pub fn complete(
        &mut self,
        on: Date,
        report_document_id: Uuid,
        invoice_days: i64,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if self.status == OrderStatus::Completed
            && self.completed_date == Some(on)
            && self.report_document_id == Some(report_document_id)
        {
            return Ok(Decision::Unchanged);
        }
        if self.status != OrderStatus::Started {
            return Err(ApiError::refused(
                "ORDER_NOT_STARTED",
                format!("order {} is not started", self.order_id),
            ));
        }
        let started = self.started_date.unwrap_or(on);
        if on < started {
            return Err(ApiError::invalid(
                "completed_date",
                "must not be before the started date",
            ));
        }
        self.status = OrderStatus::Completed;
        self.completed_date = Some(on);
        self.report_document_id = Some(report_document_id);
        self.invoice_deadline_date = Some(on + Duration::days(invoice_days));
        self.updated_at = now;
        let completed = v1::OrderCompleted {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            agreement_id: self.agreement_id.to_string(),
            started_date: date_to_wire(started),
            completed_date: date_to_wire(on),
            recorded_at: Some(timestamp_to_wire(now)),
        };
        Ok(Effects::new()
            .audited_change(audit(self, self.order_id, "CompleteOrder", actor))
            .publishing(subject(self), &completed)
            .changed())
    }

    /// The work under an accepted or started order stopped on `on` for `reason`; the supplier
    /// may invoice what was done for `invoice_days` days after.
    pub fn abort(
        &mut self,
        reason: OrderAbortReason,
        explanation: &str,
        on: Date,
        invoice_days: i64,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if self.status == OrderStatus::Aborted
            && self.abort_reason == Some(reason)
            && self.aborted_date == Some(on)
        {
            return Ok(Decision::Unchanged);
        }
        let previous = self.status;
        if !matches!(previous, OrderStatus::Accepted | OrderStatus::Started) {
            return Err(ApiError::refused(
                "ORDER_NOT_ACCEPTED_OR_STARTED",
                "only an accepted or started order can be aborted",
            ));
        }
        if self
            .supplier_responded_date
            .is_some_and(|accepted| on < accepted)
        {
            return Err(ApiError::invalid(
                "aborted_date",
                "must not be before the supplier accepted",
            ));
        }
        let deadline = on + Duration::days(invoice_days);
        self.status = OrderStatus::Aborted;
        self.abort_reason = Some(reason);
        self.abort_explanation = explanation.to_owned();
        self.abort_previous_status = Some(previous);
        self.aborted_date = Some(on);
        self.aborted_at = Some(now);
        self.invoice_deadline_date = Some(deadline);
        self.updated_at = now;
        let aborted = v1::OrderAborted {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            agreement_id: self.agreement_id.to_string(),
            previous_status: previous.into(),
            reason: reason.into(),
            amount_ore: self.price_ore,
            aborted_date: date_to_wire(on),
            invoice_deadline_date: date_to_wire(deadline),
            aborted_at: Some(timestamp_to_wire(now)),
        };
        Ok(Effects::new()
            .audited(audit(self, self.order_id, "AbortOrder", actor))
            .publishing(subject(self), &aborted)
            .changed())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::transitions::fixtures::{NOW, order};

    fn caseworker() -> AuditActor {
        AuditActor::service()
    }

    #[test]
    fn funds_reserved_places_a_pending_order_once() {
        let mut pending = order(OrderStatus::FundsPending);
        assert!(matches!(pending.place("R-1", NOW), Decision::Changed(_)));
        assert_eq!(pending.status, OrderStatus::Placed);
        assert_eq!(pending.reservation_id, "R-1");
        assert!(matches!(pending.place("R-1", NOW), Decision::Unchanged));
    }

    #[test]
    fn an_accepted_order_starts_not_before_the_case_was_opened() {
        let mut accepted = order(OrderStatus::Accepted);
        let early = accepted
            .start(date!(2027 - 03 - 02), None, &caseworker(), NOW)
            .expect_err("before the case");
        assert!(matches!(early, ApiError::InvalidArgument(_)));
        assert!(matches!(
            accepted.start(date!(2027 - 03 - 05), None, &caseworker(), NOW),
            Ok(Decision::Changed(_))
        ));
        assert!(matches!(
            accepted.start(date!(2027 - 03 - 05), None, &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
        let mut placed = order(OrderStatus::Placed);
        let refused = placed
            .start(date!(2027 - 03 - 05), None, &caseworker(), NOW)
            .expect_err("not accepted");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "ORDER_NOT_ACCEPTED",
                ..
            }
        ));
    }

    #[test]
    fn a_started_order_completes_and_opens_the_invoicing_window() {
        let report = Uuid::now_v7();
        let mut started = order(OrderStatus::Accepted);
        started
            .start(date!(2027 - 03 - 05), None, &caseworker(), NOW)
            .expect("started");
        let early = started
            .complete(date!(2027 - 03 - 04), report, 90, &caseworker(), NOW)
            .expect_err("before the start");
        assert!(matches!(early, ApiError::InvalidArgument(_)));
        assert!(matches!(
            started.complete(date!(2027 - 03 - 09), report, 90, &caseworker(), NOW),
            Ok(Decision::Changed(_))
        ));
        assert_eq!(started.invoice_deadline_date, Some(date!(2027 - 06 - 07)));
        assert!(matches!(
            started.complete(date!(2027 - 03 - 09), report, 90, &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
        let mut accepted = order(OrderStatus::Accepted);
        let refused = accepted
            .complete(date!(2027 - 03 - 09), report, 90, &caseworker(), NOW)
            .expect_err("not started");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "ORDER_NOT_STARTED",
                ..
            }
        ));
    }

    #[test]
    fn only_an_accepted_or_started_order_is_aborted() {
        let reason = OrderAbortReason::ExpertUnavailable;
        let mut placed = order(OrderStatus::Placed);
        let refused = placed
            .abort(reason, "", date!(2027 - 03 - 09), 90, &caseworker(), NOW)
            .expect_err("placed");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "ORDER_NOT_ACCEPTED_OR_STARTED",
                ..
            }
        ));
        let mut accepted = order(OrderStatus::Placed);
        accepted
            .accept(date!(2027 - 03 - 08), &caseworker(), NOW)
            .expect("accepted");
        let early = accepted
            .abort(reason, "", date!(2027 - 03 - 07), 90, &caseworker(), NOW)
            .expect_err("before the acceptance");
        assert!(matches!(early, ApiError::InvalidArgument(_)));
        assert!(matches!(
            accepted.abort(reason, "", date!(2027 - 03 - 09), 90, &caseworker(), NOW),
            Ok(Decision::Changed(_))
        ));
        assert_eq!(accepted.abort_previous_status, Some(OrderStatus::Accepted));
        assert!(matches!(
            accepted.abort(reason, "", date!(2027 - 03 - 09), 90, &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
    }
}
