//! Paying an approved invoice: handed to NAV's payment system through
//! [`ekb_platform::payment::PaymentPort`] after the approval committed, keyed
//! `<invoice id>/<attempt>` so a repeated hand-over never pays twice. The port's answer is
//! recorded by the same decision as an outcome the payment system reports later through
//! RecordInvoicePaymentOutcome ([`Invoice::record_payment`]). The dispatcher hands over again
//! what was approved but not answered (the process stopped, the payment system was
//! unreachable).
//!
//! [`Invoice::record_payment`]: crate::model::Invoice::record_payment

use ekb_platform::{
    ApiError,
    audit::AuditActor,
    change,
    messaging::Db,
    payment::{PaymentInstruction, PaymentOutcome, PaymentPort},
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    codes::InvoicePaymentStatus,
    store,
    transitions::{InvoiceOfOrder, Outcome},
};

/// Hands invoice `invoice_id`'s payment over (if it is still PENDING) and records the answer.
pub async fn pay(db: &Db, port: &dyn PaymentPort, invoice_id: Uuid) -> anyhow::Result<()> {
    let (invoice, order) = {
        let mut connection = db.read().await?;
        let Some(invoice) = store::find_invoice(&mut connection, invoice_id, false).await? else {
            return Ok(());
        };
        if invoice.payment_status != Some(InvoicePaymentStatus::Pending) {
            return Ok(());
        }
        let order = store::find_order(&mut connection, invoice.order_id, false)
            .await?
            .ok_or_else(|| anyhow::anyhow!("invoice {invoice_id} has no order"))?;
        (invoice, order)
    };
    let attempt = invoice.payment_attempt.max(1);
    let instruction = PaymentInstruction {
        payment_key: format!("{invoice_id}/{attempt}"),
        case_id: order.case_id,
        payee_organisation_number: order.supplier_organisation_number.clone(),
        amount_ore: invoice.amount_ore,
        reference: invoice.invoice_number.clone(),
    };
    let outcome = match port.pay(instruction).await? {
        PaymentOutcome::Paid { payment_reference } => Outcome::Paid {
            reference: payment_reference,
        },
        PaymentOutcome::Failed { reason } => Outcome::Failed { reason },
        PaymentOutcome::Accepted => {
            // Accepted for processing: the outcome comes later (RecordInvoicePaymentOutcome).
            let mut work = db.begin().await?;
            store::note_payment_handed(work.db(), invoice_id, db.clock().now()).await?;
            work.commit().await?;
            return Ok(());
        }
    };
    let recorded = change::apply::<InvoiceOfOrder, _>(db, &invoice_id, |stored, now| {
        stored.invoice.record_payment(
            &stored.order,
            attempt,
            &outcome,
            &AuditActor::service(),
            "PaymentOutcome",
            now,
        )
    })
    .await;
    match recorded {
        Ok(applied) if applied.changed => log_recorded(&applied.record, &outcome),
        Ok(_) => {}
        // The payment system reported another outcome first: that one stands.
        Err(ApiError::FailedPrecondition { reason, .. }) => {
            tracing::info!(%invoice_id, reason, "payment outcome not recorded");
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// Logs a recorded outcome (a failure's reason is logged, not stored).
pub fn log_recorded(recorded: &InvoiceOfOrder, outcome: &Outcome) {
    let invoice_id = recorded.invoice.invoice_id;
    if let Outcome::Failed { reason } = outcome {
        tracing::warn!(%invoice_id, reason = %reason, "the payment system refused the payment");
    }
    tracing::info!(%invoice_id, status = outcome.status().code(), "payment outcome recorded");
}

/// Invoices approved and not answered whose hand-over is older than `resend_after` at `now`.
pub async fn unanswered(
    db: &Db,
    now: OffsetDateTime,
    resend_after: time::Duration,
) -> anyhow::Result<Vec<Uuid>> {
    let mut connection = db.read().await?;
    Ok(store::payments_unanswered(&mut connection, now - resend_after).await?)
}
