//! The outcome of an approved invoice's payment — the payment port's answer, or one the payment
//! system reports later through RecordInvoicePaymentOutcome — recorded once per hand-over
//! attempt. This is the one place that publishes InvoicePaymentRecorded.

use ekb_platform::{
    ApiError,
    audit::AuditActor,
    change::{Decision, Effects},
};
use ekb_proto::{convert::timestamp_to_wire, v1};
use time::OffsetDateTime;

use super::{audit, subject};
use crate::{
    codes::{InvoicePaymentStatus, InvoiceStatus},
    model::{Invoice, Order},
};

/// What became of a payment, as recorded on the invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paid, with the payment system's reference.
    Paid {
        /// The payment system's reference.
        reference: String,
    },
    /// The payment system gave up on it; the reason is logged, not stored.
    Failed {
        /// The payment system's reason.
        reason: String,
    },
}

impl Outcome {
    /// The payment status this outcome leaves the invoice in.
    pub fn status(&self) -> InvoicePaymentStatus {
        match self {
            Outcome::Paid { .. } => InvoicePaymentStatus::Paid,
            Outcome::Failed { .. } => InvoicePaymentStatus::Failed,
        }
    }

    /// Whether `invoice`'s recorded outcome is this one (PAID with the same reference, or
    /// FAILED: the failure reason is not stored, so any FAILED matches).
    pub fn is_recorded_on(&self, invoice: &Invoice) -> bool {
        match self {
            Outcome::Paid { reference } => {
                invoice.payment_status == Some(InvoicePaymentStatus::Paid)
                    && invoice.payment_reference == *reference
            }
            Outcome::Failed { .. } => invoice.payment_status == Some(InvoicePaymentStatus::Failed),
        }
    }
}

impl Invoice {
    /// Records `outcome` of hand-over `attempt` of this approved invoice of `order`, reported
    /// by `actor` through `action`. The same outcome again changes nothing; another one is a
    /// conflict.
    pub fn record_payment(
        &mut self,
        order: &Order,
        attempt: i32,
        outcome: &Outcome,
        actor: &AuditActor,
        action: &'static str,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if self.status != InvoiceStatus::Approved {
            return Err(ApiError::refused(
                "INVOICE_NOT_APPROVED",
                format!("the invoice is {}", self.status.to_wire().as_str_name()),
            ));
        }
        if attempt != self.payment_attempt {
            return Err(ApiError::refused(
                "NOT_CURRENT_ATTEMPT",
                format!(
                    "the invoice's payment was handed over as attempt {}",
                    self.payment_attempt
                ),
            ));
        }
        if self.payment_status != Some(InvoicePaymentStatus::Pending) {
            if outcome.is_recorded_on(self) {
                return Ok(Decision::Unchanged);
            }
            return Err(ApiError::refused(
                "PAYMENT_OUTCOME_CONFLICT",
                "another outcome is already recorded for this payment",
            ));
        }
        let status = outcome.status();
        self.payment_status = Some(status);
        self.payment_reference = match outcome {
            Outcome::Paid { reference } => reference.clone(),
            Outcome::Failed { .. } => String::new(),
        };
        self.payment_recorded_at = Some(now);
        let recorded = v1::InvoicePaymentRecorded {
            invoice_id: self.invoice_id.to_string(),
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            status: status.into(),
            amount_ore: self.amount_ore,
            payment_reference: self.payment_reference.clone(),
            recorded_at: Some(timestamp_to_wire(now)),
        };
        Ok(Effects::new()
            .audited(audit(order, self.invoice_id, action, actor))
            .publishing(subject(order), &recorded)
            .changed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transitions::{fixtures::NOW, invoice::tests::submitted};

    fn record(
        invoice: &mut Invoice,
        order: &Order,
        attempt: i32,
        outcome: &Outcome,
    ) -> Result<Decision, ApiError> {
        invoice.record_payment(
            order,
            attempt,
            outcome,
            &AuditActor::service(),
            "PaymentOutcome",
            NOW,
        )
    }

    fn paid(reference: &str) -> Outcome {
        Outcome::Paid {
            reference: reference.to_owned(),
        }
    }

    #[test]
    fn an_outcome_is_recorded_once_for_the_current_attempt_of_an_approved_invoice() {
        let mut approved = submitted();
        let order = approved.order.clone();
        let refused =
            record(&mut approved.invoice, &order, 1, &paid("P-1")).expect_err("not approved");
        assert!(matches!(
            refused,
            ApiError::FailedPrecondition {
                reason: "INVOICE_NOT_APPROVED",
                ..
            }
        ));
        let invoice = &mut approved.invoice;
        invoice
            .attest(&order, "Z111111", &AuditActor::service(), NOW)
            .expect("attested");
        invoice
            .approve(&order, "Z222222", &AuditActor::service(), NOW)
            .expect("approved");
        let stale = record(invoice, &order, 2, &paid("P-1")).expect_err("not this attempt");
        assert!(matches!(
            stale,
            ApiError::FailedPrecondition {
                reason: "NOT_CURRENT_ATTEMPT",
                ..
            }
        ));
        assert!(matches!(
            record(invoice, &order, 1, &paid("P-1")),
            Ok(Decision::Changed(_))
        ));
        assert_eq!(invoice.payment_status, Some(InvoicePaymentStatus::Paid));
        assert_eq!(invoice.payment_reference, "P-1");
        assert!(matches!(
            record(invoice, &order, 1, &paid("P-1")),
            Ok(Decision::Unchanged)
        ));
        let failed = Outcome::Failed {
            reason: "closed account".to_owned(),
        };
        let conflict = record(invoice, &order, 1, &failed).expect_err("another outcome");
        assert!(matches!(
            conflict,
            ApiError::FailedPrecondition {
                reason: "PAYMENT_OUTCOME_CONFLICT",
                ..
            }
        ));
    }
}
