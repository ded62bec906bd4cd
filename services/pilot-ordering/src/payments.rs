//! Paying an approved invoice: handed to NAV's payment system through
//! [`ekb_platform::payment::PaymentPort`] after the approval committed, keyed
//! `<invoice id>/<attempt>` so a repeated hand-over never pays twice. The outcome — the port
//! call's answer, or one the payment system reports later through RecordInvoicePaymentOutcome
//! when it answered "accepted, outcome later" — is recorded on the invoice in a unit of work of
//! its own by [`record_outcome`], the one place that publishes InvoicePaymentRecorded. The
//! dispatcher hands over again what was approved but not answered (the process stopped, the
//! payment system was unreachable).

use ekb_platform::clock::Clock;
use ekb_platform::{
    audit::AuditActor,
    messaging::{Db, UnitOfWork},
    payment::{PaymentInstruction, PaymentOutcome, PaymentPort},
};
use ekb_proto::{
    convert::timestamp_to_wire,
    v1::{self, AuditEntryKind, InvoicePaymentStatus},
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    model::{Invoice, Order},
    ordering::{audit_change, publish},
    store,
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
                invoice.payment_status == InvoicePaymentStatus::Paid as i32
                    && invoice.payment_reference == *reference
            }
            Outcome::Failed { .. } => invoice.payment_status == InvoicePaymentStatus::Failed as i32,
        }
    }
}

/// Records `outcome` on `invoice` (of `order`) while its payment is still PENDING, publishes
/// InvoicePaymentRecorded and audits it as `actor`'s `action`, all in `work`. Returns false,
/// having changed nothing, when the payment is no longer PENDING.
pub async fn record_outcome(
    work: &mut UnitOfWork,
    invoice: &Invoice,
    order: &Order,
    outcome: &Outcome,
    now: OffsetDateTime,
    actor: &AuditActor,
    action: &str,
) -> Result<bool, sqlx::Error> {
    let invoice_id = invoice.invoice_id;
    let status = outcome.status();
    let reference = match outcome {
        Outcome::Paid { reference } => reference.clone(),
        Outcome::Failed { reason } => {
            tracing::warn!(%invoice_id, reason = %reason, "the payment system refused the payment");
            String::new()
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
        return Ok(false);
    }
    publish(
        work,
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
        work,
        order.case_id,
        invoice_id,
        AuditEntryKind::Decision,
        action,
        actor,
    )
    .await?;
    tracing::info!(%invoice_id, status = status.as_str_name(), "payment outcome recorded");
    Ok(true)
}

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
    let outcome = match outcome {
        PaymentOutcome::Paid { payment_reference } => Outcome::Paid {
            reference: payment_reference,
        },
        PaymentOutcome::Failed { reason } => Outcome::Failed { reason },
        PaymentOutcome::Accepted => {
            // Accepted for processing: the outcome comes later (RecordInvoicePaymentOutcome);
            // note the hand-over.
            sqlx::query("UPDATE invoices SET payment_handed_at = $2 WHERE invoice_id = $1")
                .bind(invoice_id)
                .bind(now)
                .execute(work.db())
                .await?;
            work.commit().await?;
            return Ok(());
        }
    };
    if record_outcome(
        &mut work,
        &invoice,
        &order,
        &outcome,
        now,
        &AuditActor::service(),
        "PaymentOutcome",
    )
    .await?
    {
        work.commit().await?;
    }
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
