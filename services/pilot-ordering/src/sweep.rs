//! The service's background work, both driven by an injectable clock so tests can move time:
//! - the sweep ([`sweep`], hourly by default): orders unanswered past `supplier_answer_days`
//!   (expire and move to the next supplier), accepted orders not started within `start_days`,
//!   completed or aborted orders past their invoice deadline with nothing invoiced (expire:
//!   budget releases), agreements whose validity ran out while orders were open, and PILOT
//!   cases no active agreement covers any more (fallback). Each order is its own unit of work,
//!   and each step finds only what is still to do, so a sweep can be repeated or interrupted.
//! - the dispatcher ([`dispatch`], every second by default): sends PLACED orders not yet sent
//!   to their supplier, and hands over payments approved but not answered.

use ekb_domain::oslo_date;
use ekb_platform::clock::Clock;
use std::time::Duration;

use ekb_platform::{messaging::Db, payment::PaymentPort};
use ekb_proto::v1::{InvoiceStatus, OrderExpiryReason, OrderStatus};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::OrderingPolicy,
    ordering, payments, store,
    suppliers::{SupplierNotifier, SupplierOrder},
};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Orders expired.
    pub expired: usize,
    /// Agreements found stopped with open orders.
    pub agreements_stopped: usize,
}

async fn expire_each(
    db: &Db,
    policy: &OrderingPolicy,
    ids: Vec<Uuid>,
    expected: OrderStatus,
    reason: OrderExpiryReason,
    now: OffsetDateTime,
) -> anyhow::Result<usize> {
    let mut count = 0;
    for order_id in ids {
        let mut work = db.begin().await?;
        let Some(order) = store::find_order(work.db(), order_id, true).await? else {
            continue;
        };
        let still = match expected {
            OrderStatus::Completed => {
                matches!(
                    order.status(),
                    OrderStatus::Completed | OrderStatus::Aborted
                )
            }
            status => order.status() == status,
        };
        if !still {
            continue;
        }
        ordering::expire(&mut work, policy, &order, reason, now).await?;
        work.commit().await?;
        count += 1;
    }
    Ok(count)
}

/// SQL: PLACED orders (`$1`) the supplier has not answered within `$2` days of placing, as of
/// `$3` (today).
const UNANSWERED: &str = "SELECT order_id FROM orders WHERE status = $1 \
     AND (placed_at AT TIME ZONE 'Europe/Oslo')::date + $2::int < $3 ORDER BY sequence";

/// SQL: ACCEPTED orders (`$1`) not started within `$2` days of the acceptance, as of `$3`
/// (today).
const NOT_STARTED: &str = "SELECT order_id FROM orders WHERE status = $1 \
     AND supplier_responded_date + $2::int < $3 ORDER BY sequence";

/// Runs every step of the sweep as of `now`.
pub async fn sweep(
    db: &Db,
    policy: &OrderingPolicy,
    now: OffsetDateTime,
) -> anyhow::Result<SweepReport> {
    let today = oslo_date(now);
    let mut report = SweepReport::default();
    // Unanswered, then not started: orders left in a status for more days than allowed.
    for (sql, status, days, reason) in [
        (
            UNANSWERED,
            OrderStatus::Placed,
            policy.supplier_answer_days,
            OrderExpiryReason::SupplierDidNotAnswer,
        ),
        (
            NOT_STARTED,
            OrderStatus::Accepted,
            policy.start_days,
            OrderExpiryReason::NotStartedInTime,
        ),
    ] {
        let overdue: Vec<Uuid> = sqlx::query_scalar(sql)
            .bind(status as i32)
            .bind(i32::try_from(days).unwrap_or(i32::MAX))
            .bind(today)
            .fetch_all(db.pool())
            .await?;
        report.expired += expire_each(db, policy, overdue, status, reason, now).await?;
    }
    let uninvoiced: Vec<Uuid> = sqlx::query_scalar(
        "SELECT o.order_id FROM orders o WHERE o.status IN ($1, $2) AND o.invoice_deadline_date < $3 \
         AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.order_id = o.order_id \
           AND i.status IN ($4, $5, $6)) ORDER BY o.sequence",
    )
    .bind(OrderStatus::Completed as i32)
    .bind(OrderStatus::Aborted as i32)
    .bind(today)
    .bind(InvoiceStatus::Submitted as i32)
    .bind(InvoiceStatus::Attested as i32)
    .bind(InvoiceStatus::Approved as i32)
    .fetch_all(db.pool())
    .await?;
    report.expired += expire_each(
        db,
        policy,
        uninvoiced,
        OrderStatus::Completed,
        OrderExpiryReason::InvoiceDeadlinePassed,
        now,
    )
    .await?;
    let stopped = store::stopped_agreements_with_open_orders(&mut *db.read().await?, today).await?;
    for agreement_id in stopped {
        let mut work = db.begin().await?;
        ordering::agreement_stopped(&mut work, policy, agreement_id, now).await?;
        work.commit().await?;
        report.agreements_stopped += 1;
    }
    let mut work = db.begin().await?;
    ordering::fall_back_uncovered(&mut work, None, now).await?;
    work.commit().await?;
    Ok(report)
}

/// Sends the PLACED orders not yet sent; returns how many were sent.
pub async fn send_placed_orders(db: &Db, notifier: &dyn SupplierNotifier) -> anyhow::Result<usize> {
    #[derive(sqlx::FromRow)]
    struct Row {
        order_id: Uuid,
        supplier_organisation_number: String,
        agreement_reference: String,
        price_ore: i64,
        assignment_description: String,
        contact_name: String,
        contact_phone: String,
        contact_email: String,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT order_id, supplier_organisation_number, agreement_reference, price_ore, \
         assignment_description, contact_name, contact_phone, contact_email FROM orders \
         WHERE supplier_notified_at IS NULL AND placed_at IS NOT NULL AND status = $1 \
         ORDER BY placed_at LIMIT 100",
    )
    .bind(OrderStatus::Placed as i32)
    .fetch_all(db.pool())
    .await?;
    let mut sent = 0;
    for row in rows {
        let order = SupplierOrder {
            order_id: row.order_id,
            supplier_organisation_number: row.supplier_organisation_number,
            agreement_reference: row.agreement_reference,
            price_ore: row.price_ore,
            assignment_description: row.assignment_description,
            contact: (row.contact_name, row.contact_phone, row.contact_email),
        };
        match notifier.send(order).await {
            Ok(()) => {
                sqlx::query("UPDATE orders SET supplier_notified_at = now() WHERE order_id = $1")
                    .bind(row.order_id)
                    .execute(db.pool())
                    .await?;
                sent += 1;
            }
            Err(error) => {
                tracing::warn!(order_id = %row.order_id, error = %error, "sending the order failed; will retry");
            }
        }
    }
    Ok(sent)
}

/// One round of the dispatcher: orders to suppliers, unanswered payments.
pub async fn dispatch(
    db: &Db,
    policy: &OrderingPolicy,
    clock: &dyn Clock,
    notifier: &dyn SupplierNotifier,
    payment: &dyn PaymentPort,
) -> anyhow::Result<()> {
    send_placed_orders(db, notifier).await?;
    for invoice_id in payments::unanswered(db, clock, policy.payment_retry_after).await? {
        if let Err(error) = payments::pay(db, payment, clock, invoice_id).await {
            tracing::warn!(%invoice_id, error = %error, "payment hand-over failed; will retry");
        }
    }
    Ok(())
}

/// Runs `round` every `interval` until `shutdown`; a failed round is logged and retried.
pub async fn every<F, Fut>(
    name: &'static str,
    interval: Duration,
    shutdown: CancellationToken,
    mut round: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    loop {
        if let Err(error) = round().await {
            tracing::warn!(worker = name, error = %error, "round failed; retrying next interval");
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
    }
}
