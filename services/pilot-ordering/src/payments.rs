//! Paying an approved invoice: handed to NAV's payment system through
//! [`ekb_platform::payment::PaymentPort`] after the approval committed, keyed
//! `<invoice id>/<attempt>` so a repeated hand-over never pays twice; the outcome is recorded on
//! the invoice in a second unit of work and published (InvoicePaymentRecorded). The dispatcher
//! hands over again what was approved but not answered (the process stopped, the payment
//! system was unreachable).

use ekb_platform::clock::Clock;
use ekb_platform::{
    audit::AuditActor,
    messaging::Db,
    payment::{PaymentInstruction, PaymentOutcome, PaymentPort},
};
use ekb_proto::{
    convert::timestamp_to_wire,
    v1::{self, AuditEntryKind, InvoicePaymentStatus},
};
use uuid::Uuid;

use crate::{
    ordering::{audit_change, publish},
    store,
};

/// Hands invoice `invoice_id`'s payment over (if it is still PENDING) and records the answer.
pub async fn pay(
    db: &Db,
    port: &dyn PaymentPort,
    clock: &dyn Clock,
    invoice_id: Uuid,
) -> anyhow::Result<()> {
    let (invoice, order) = {
        let mut connection = db.read().await?;
        let Some(invoice) = store::find_invoice(&mut connection, invoice_id, false).await? else {
            return Ok(());
        };
        if invoice.payment_status != InvoicePaymentStatus::Pending as i32 {
            return Ok(());
        }
        let order = store::find_order(&mut connection, invoice.order_id, false)
            .await?
            .ok_or_else(|| anyhow::anyhow!("invoice {invoice_id} has no order"))?;
        (invoice, order)
    };
    let instruction = PaymentInstruction {
        payment_key: format!("{invoice_id}/{}", invoice.payment_attempt.max(1)),
        case_id: order.case_id,
        payee_organisation_number: order.supplier_organisation_number.clone(),
        amount_ore: invoice.amount_ore,
        reference: invoice.invoice_number.clone(),
    };
    let outcome = port.pay(instruction).await?;
    let now = clock.now();
    let mut work = db.begin().await?;
    let (status, reference) = match outcome {
        PaymentOutcome::Paid { payment_reference } => {
            (InvoicePaymentStatus::Paid, payment_reference)
        }
        PaymentOutcome::Failed { reason } => {
            tracing::warn!(%invoice_id, reason = %reason, "the payment system refused the payment");
            (InvoicePaymentStatus::Failed, String::new())
        }
        PaymentOutcome::Accepted => {
            // Accepted for processing: the outcome comes later; note the hand-over.
            sqlx::query("UPDATE invoices SET payment_handed_at = $2 WHERE invoice_id = $1")
                .bind(invoice_id)
                .bind(now)
                .execute(work.db())
                .await?;
            work.commit().await?;
            return Ok(());
        }
    };
    let updated = sqlx::query(
        "UPDATE invoices SET payment_status = $2, payment_reference = $3, payment_recorded_at = $4 \
         WHERE invoice_id = $1 AND payment_status = $5",
    )
    .bind(invoice_id)
    .bind(status as i32)
    .bind(&reference)
    .bind(now)
    .bind(InvoicePaymentStatus::Pending as i32)
    .execute(work.db())
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(());
    }
    publish(
        &mut work,
        order.case_id,
        &v1::InvoicePaymentRecorded {
            invoice_id: invoice_id.to_string(),
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            status: status as i32,
            amount_ore: invoice.amount_ore,
            payment_reference: reference,
            recorded_at: Some(timestamp_to_wire(now)),
        },
    )
    .await?;
    audit_change(
        &mut work,
        order.case_id,
        invoice_id,
        AuditEntryKind::Decision,
        "PaymentOutcome",
        &AuditActor::service(),
    )
    .await?;
    work.commit().await?;
    tracing::info!(%invoice_id, status = status.as_str_name(), "payment outcome recorded");
    Ok(())
}

/// Invoices approved and not answered whose hand-over is older than `retry_after`.
pub async fn unanswered(
    db: &Db,
    clock: &dyn Clock,
    retry_after: time::Duration,
) -> anyhow::Result<Vec<Uuid>> {
    let before = clock.now() - retry_after;
    Ok(sqlx::query_scalar(
        "SELECT invoice_id FROM invoices WHERE payment_status = $1 \
         AND (payment_handed_at IS NULL OR payment_handed_at < $2) ORDER BY sequence LIMIT 100",
    )
    .bind(InvoicePaymentStatus::Pending as i32)
    .bind(before)
    .fetch_all(db.pool())
    .await?)
}
