//! The supplier's invoice for a completed or aborted order: submitted (one at a time, by the
//! deadline, at most the agreement's price — above it the service rejects it at once), attested
//! by one caseworker and approved by another (four eyes, `ekb_domain::FourEyes`), or rejected.

use ekb_domain::{FourEyes, oslo_date};
use ekb_platform::{
    ApiError,
    audit::AuditActor,
    change::{Decision, Effects},
};
use ekb_proto::{
    convert::{date_to_wire, timestamp_to_wire},
    v1,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{audit, subject};
use crate::{
    codes::{
        InvoicePaymentStatus, InvoiceRejectionReason, InvoiceStatus, OrderStatus,
        wire_or_unspecified,
    },
    commands::SubmitInvoice,
    model::{Invoice, Order},
};

/// Who decides an invoice the service rejects itself.
const SERVICE: &str = "pilot-ordering";

/// An invoice with its order (both locked while a change runs).
#[derive(Debug, Clone)]
pub struct InvoiceOfOrder {
    /// The invoice.
    pub invoice: Invoice,
    /// Its order.
    pub order: Order,
}

/// What finds the order a SubmitInvoice is for, and the invoice already registered for its
/// request id.
#[derive(Debug, Clone, Copy)]
pub struct SubmitKey {
    /// The order.
    pub order_id: Uuid,
    /// SubmitInvoice's request id.
    pub request_id: Uuid,
}

/// An order with its invoices, as SubmitInvoice changes it.
#[derive(Debug, Clone)]
pub struct InvoicedOrder {
    /// The order (locked).
    pub order: Order,
    /// Its invoices, oldest first.
    pub invoices: Vec<Invoice>,
    /// The invoice registered for the request id, if any (a repeat, or a reuse of the id).
    pub registered: Option<Invoice>,
    /// The invoice this submission adds (saved with it).
    pub submitted: Option<Invoice>,
}

impl InvoicedOrder {
    /// The supplier submits `command`'s invoice (`actor`, at `now`). A repeat of the request
    /// changes nothing; an invoice above the order's price is registered REJECTED
    /// (PRICE_ABOVE_AGREEMENT).
    pub fn submit(
        &mut self,
        command: &SubmitInvoice,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        let fingerprint = command.fingerprint();
        if let Some(registered) = &self.registered {
            if registered.request_fingerprint != fingerprint {
                return Err(ApiError::AlreadyExists(format!(
                    "request id {} was used for another invoice",
                    command.request_id
                )));
            }
            return Ok(Decision::Unchanged);
        }
        let order = &self.order;
        match order.status {
            OrderStatus::Completed | OrderStatus::Aborted => {}
            OrderStatus::Expired => {
                return Err(ApiError::refused("ORDER_EXPIRED", "the order has expired"));
            }
            _ => {
                return Err(ApiError::refused(
                    "ORDER_NOT_INVOICEABLE",
                    "only a completed or aborted order can be invoiced",
                ));
            }
        }
        if order
            .invoice_deadline_date
            .is_some_and(|deadline| oslo_date(now) > deadline)
        {
            return Err(ApiError::refused(
                "INVOICE_DEADLINE_PASSED",
                "the order's invoice deadline has passed",
            ));
        }
        if self
            .invoices
            .iter()
            .any(|invoice| invoice.status == InvoiceStatus::Approved)
        {
            return Err(ApiError::refused(
                "ORDER_ALREADY_INVOICED",
                "an invoice for the order is approved",
            ));
        }
        if self.invoices.iter().any(|invoice| {
            matches!(
                invoice.status,
                InvoiceStatus::Submitted | InvoiceStatus::Attested
            )
        }) {
            return Err(ApiError::refused(
                "INVOICE_IN_PROGRESS",
                "an invoice for the order awaits attestation or approval",
            ));
        }
        let above = command.amount_ore > order.price_ore;
        let invoice = Invoice {
            invoice_id: Uuid::now_v7(),
            order_id: order.order_id,
            request_id: command.request_id,
            request_fingerprint: fingerprint,
            invoice_number: command.invoice_number.clone(),
            invoice_date: command.invoice_date,
            amount_ore: command.amount_ore,
            invoice_document_id: command.document_id,
            status: if above {
                InvoiceStatus::Rejected
            } else {
                InvoiceStatus::Submitted
            },
            rejection_reason: above.then_some(InvoiceRejectionReason::PriceAboveAgreement),
            rejection_explanation: String::new(),
            submitted_at: now,
            decided_at: above.then_some(now),
            decided_by: if above { SERVICE } else { "" }.to_owned(),
            attested_by: String::new(),
            attested_at: None,
            payment_status: None,
            payment_reference: String::new(),
            payment_recorded_at: None,
            payment_attempt: 0,
            payment_handed_at: None,
        };
        let submitted = v1::InvoiceSubmitted {
            invoice_id: invoice.invoice_id.to_string(),
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            supplier_organisation_number: order.supplier_organisation_number.clone(),
            amount_ore: invoice.amount_ore,
            invoice_date: date_to_wire(invoice.invoice_date),
            submitted_at: Some(timestamp_to_wire(now)),
        };
        let mut effects = Effects::new()
            .audited_change(audit(order, invoice.invoice_id, "SubmitInvoice", actor))
            .publishing(subject(order), &submitted);
        if above {
            effects = effects.publishing(subject(order), &invoice.rejected_event(order, now));
        }
        self.submitted = Some(invoice);
        Ok(effects.changed())
    }
}

impl Invoice {
    /// Caseworker `by` attests the SUBMITTED invoice of `order`. The attestant's repeat
    /// changes nothing, also once the invoice was decided.
    pub fn attest(
        &mut self,
        order: &Order,
        by: &str,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if !self.attested_by.is_empty() && self.attested_by == by {
            return Ok(Decision::Unchanged);
        }
        if self.status != InvoiceStatus::Submitted {
            return Err(ApiError::refused(
                "INVOICE_NOT_SUBMITTED",
                "only a submitted invoice can be attested",
            ));
        }
        self.status = InvoiceStatus::Attested;
        self.attested_by = by.to_owned();
        self.attested_at = Some(now);
        Ok(Effects::new()
            .audited(audit(order, self.invoice_id, "AttestInvoice", actor))
            .changed())
    }

    /// Approver `by` — not the attestant (four eyes) — approves the ATTESTED invoice of
    /// `order`; its payment is handed over (attempt 1) after the change commits.
    pub fn approve(
        &mut self,
        order: &Order,
        by: &str,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if self.status == InvoiceStatus::Approved && self.decided_by == by {
            return Ok(Decision::Unchanged);
        }
        if self.status != InvoiceStatus::Attested {
            return Err(ApiError::refused(
                "INVOICE_NOT_ATTESTED",
                "only an attested invoice can be approved",
            ));
        }
        FourEyes::prepared_by([&self.attested_by])
            .require_second_person(by)
            .map_err(|_| ApiError::PermissionDenied {
                reason: "SAME_PERSON_AS_ATTESTANT",
                message: "the attestant cannot also approve the invoice".to_owned(),
            })?;
        self.status = InvoiceStatus::Approved;
        self.decided_by = by.to_owned();
        self.decided_at = Some(now);
        self.payment_status = Some(InvoicePaymentStatus::Pending);
        self.payment_attempt = 1;
        self.payment_handed_at = Some(now);
        let approved = v1::InvoiceApproved {
            invoice_id: self.invoice_id.to_string(),
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            agreement_id: order.agreement_id.to_string(),
            supplier_organisation_number: order.supplier_organisation_number.clone(),
            amount_ore: self.amount_ore,
            order_amount_ore: order.price_ore,
            approved_at: Some(timestamp_to_wire(now)),
        };
        Ok(Effects::new()
            .audited(audit(order, self.invoice_id, "ApproveInvoice", actor))
            .publishing(subject(order), &approved)
            .changed())
    }

    /// `by` rejects the undecided invoice of `order` for `reason`.
    pub fn reject(
        &mut self,
        order: &Order,
        reason: InvoiceRejectionReason,
        explanation: &str,
        by: &str,
        actor: &AuditActor,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if self.status == InvoiceStatus::Rejected && self.rejection_reason == Some(reason) {
            return Ok(Decision::Unchanged);
        }
        if !matches!(
            self.status,
            InvoiceStatus::Submitted | InvoiceStatus::Attested
        ) {
            return Err(ApiError::refused(
                "INVOICE_DECIDED",
                "the invoice is approved or rejected already",
            ));
        }
        self.status = InvoiceStatus::Rejected;
        self.rejection_reason = Some(reason);
        self.rejection_explanation = explanation.to_owned();
        self.decided_at = Some(now);
        self.decided_by = by.to_owned();
        Ok(Effects::new()
            .audited(audit(order, self.invoice_id, "RejectInvoice", actor))
            .publishing(subject(order), &self.rejected_event(order, now))
            .changed())
    }

    /// InvoiceRejected for this invoice of `order`.
    fn rejected_event(&self, order: &Order, now: OffsetDateTime) -> v1::InvoiceRejected {
        v1::InvoiceRejected {
            invoice_id: self.invoice_id.to_string(),
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            reason: wire_or_unspecified(self.rejection_reason),
            rejected_at: Some(timestamp_to_wire(now)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::date;

    use super::*;
    use crate::transitions::fixtures::{NOW, order};

    fn caseworker() -> AuditActor {
        AuditActor::service()
    }

    fn command(order: &Order, amount_ore: i64) -> SubmitInvoice {
        SubmitInvoice {
            request_id: Uuid::now_v7(),
            order_id: order.order_id,
            invoice_number: "F-1".to_owned(),
            invoice_date: date!(2027 - 03 - 10),
            amount_ore,
            document_id: Uuid::now_v7(),
        }
    }

    fn invoiced(status: OrderStatus) -> InvoicedOrder {
        InvoicedOrder {
            order: order(status),
            invoices: Vec::new(),
            registered: None,
            submitted: None,
        }
    }

    /// A SUBMITTED invoice of a completed order.
    pub(crate) fn submitted() -> InvoiceOfOrder {
        let mut order = invoiced(OrderStatus::Completed);
        let request = command(&order.order, 1_000_000);
        order
            .submit(&request, &caseworker(), NOW)
            .expect("submitted");
        InvoiceOfOrder {
            invoice: order.submitted.expect("an invoice"),
            order: order.order,
        }
    }

    #[test]
    fn a_completed_order_is_invoiced_once_per_request() {
        let mut order = invoiced(OrderStatus::Completed);
        let request = command(&order.order, 1_000_000);
        assert!(matches!(
            order.submit(&request, &caseworker(), NOW),
            Ok(Decision::Changed(_))
        ));
        let invoice = order.submitted.clone().expect("an invoice");
        assert_eq!(invoice.status, InvoiceStatus::Submitted);
        order.registered = Some(invoice);
        assert!(matches!(
            order.submit(&request, &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
        let reused = SubmitInvoice {
            amount_ore: 900_000,
            ..request
        };
        assert!(matches!(
            order.submit(&reused, &caseworker(), NOW),
            Err(ApiError::AlreadyExists(_))
        ));
    }

    #[test]
    fn an_invoice_above_the_price_is_rejected_at_once() {
        let mut order = invoiced(OrderStatus::Completed);
        let request = command(&order.order, order.order.price_ore + 1);
        order
            .submit(&request, &caseworker(), NOW)
            .expect("registered");
        let invoice = order.submitted.expect("an invoice");
        assert_eq!(invoice.status, InvoiceStatus::Rejected);
        assert_eq!(
            invoice.rejection_reason,
            Some(InvoiceRejectionReason::PriceAboveAgreement)
        );
        assert_eq!(invoice.decided_by, SERVICE);
    }

    #[test]
    fn an_order_not_done_or_with_an_invoice_under_way_is_not_invoiced() {
        for (status, reason) in [
            (OrderStatus::Started, "ORDER_NOT_INVOICEABLE"),
            (OrderStatus::Expired, "ORDER_EXPIRED"),
        ] {
            let mut order = invoiced(status);
            let request = command(&order.order, 1);
            let refused = order
                .submit(&request, &caseworker(), NOW)
                .expect_err("refused");
            assert!(
                matches!(refused, ApiError::FailedPrecondition { reason: got, .. } if got == reason)
            );
        }
        let mut order = invoiced(OrderStatus::Completed);
        order.invoices.push(submitted().invoice);
        let request = command(&order.order, 1);
        let refused = order
            .submit(&request, &caseworker(), NOW)
            .expect_err("in progress");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "INVOICE_IN_PROGRESS",
                ..
            }
        ));
        let mut late = invoiced(OrderStatus::Completed);
        late.order.invoice_deadline_date = Some(date!(2027 - 03 - 09));
        let request = command(&late.order, 1);
        let refused = late.submit(&request, &caseworker(), NOW).expect_err("late");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "INVOICE_DEADLINE_PASSED",
                ..
            }
        ));
    }

    #[test]
    fn attest_then_approve_by_another_person() {
        let InvoiceOfOrder { mut invoice, order } = submitted();
        let refused = invoice
            .approve(&order, "Z222222", &caseworker(), NOW)
            .expect_err("not attested");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "INVOICE_NOT_ATTESTED",
                ..
            }
        ));
        assert!(matches!(
            invoice.attest(&order, "Z111111", &caseworker(), NOW),
            Ok(Decision::Changed(_))
        ));
        assert!(matches!(
            invoice.attest(&order, "Z111111", &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
        let refused = invoice
            .attest(&order, "Z333333", &caseworker(), NOW)
            .expect_err("attested already");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "INVOICE_NOT_SUBMITTED",
                ..
            }
        ));
        let same = invoice
            .approve(&order, "Z111111", &caseworker(), NOW)
            .expect_err("four eyes");
        assert!(matches!(
            same,
            ApiError::PermissionDenied {
                reason: "SAME_PERSON_AS_ATTESTANT",
                ..
            }
        ));
        assert!(matches!(
            invoice.approve(&order, "Z222222", &caseworker(), NOW),
            Ok(Decision::Changed(_))
        ));
        assert_eq!(invoice.payment_status, Some(InvoicePaymentStatus::Pending));
        assert_eq!(invoice.payment_attempt, 1);
        assert!(matches!(
            invoice.approve(&order, "Z222222", &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
        assert!(matches!(
            invoice.attest(&order, "Z111111", &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
    }

    #[test]
    fn an_undecided_invoice_is_rejected_once() {
        let InvoiceOfOrder { mut invoice, order } = submitted();
        let reason = InvoiceRejectionReason::Other;
        assert!(matches!(
            invoice.reject(&order, reason, "wrong", "Z111111", &caseworker(), NOW),
            Ok(Decision::Changed(_))
        ));
        assert!(matches!(
            invoice.reject(&order, reason, "wrong", "Z111111", &caseworker(), NOW),
            Ok(Decision::Unchanged)
        ));
        let refused = invoice
            .reject(
                &order,
                InvoiceRejectionReason::PriceAboveAgreement,
                "",
                "Z111111",
                &caseworker(),
                NOW,
            )
            .expect_err("decided");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "INVOICE_DECIDED",
                ..
            }
        ));
    }
}
