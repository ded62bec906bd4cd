//! What the background jobs find due: overdue orders (the sweep), placed orders not yet sent
//! and payments not answered (the dispatcher). Each finds only what is still to do, so a job
//! can be repeated or interrupted.

use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{
    codes::{InvoicePaymentStatus, InvoiceStatus, OrderStatus},
    suppliers::SupplierOrder,
};

/// Orders in `status` for more than `days` days as of `today`: PLACED counted from the day it
/// was placed (the supplier did not answer), ACCEPTED from the day of the acceptance (the
/// expert did not start). Other statuses have no such deadline and find nothing.
pub async fn orders_overdue(
    db: &mut PgConnection,
    status: OrderStatus,
    days: i64,
    today: Date,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let since = match status {
        OrderStatus::Placed => "(placed_at AT TIME ZONE 'Europe/Oslo')::date",
        OrderStatus::Accepted => "supplier_responded_date",
        _ => return Ok(Vec::new()),
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT order_id FROM orders WHERE status = $1 AND {since} + $2::int < $3 ORDER BY sequence"
    )))
    .bind(status)
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .bind(today)
    .fetch_all(db)
    .await
}

/// Completed or aborted orders past their invoice deadline on `today` with no invoice
/// submitted, attested or approved.
pub async fn orders_not_invoiced(
    db: &mut PgConnection,
    today: Date,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT o.order_id FROM orders o WHERE o.status IN ($1, $2) AND o.invoice_deadline_date < $3 \
         AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.order_id = o.order_id \
           AND i.status IN ($4, $5, $6)) ORDER BY o.sequence",
    )
    .bind(OrderStatus::Completed)
    .bind(OrderStatus::Aborted)
    .bind(today)
    .bind(InvoiceStatus::Submitted)
    .bind(InvoiceStatus::Attested)
    .bind(InvoiceStatus::Approved)
    .fetch_all(db)
    .await
}

/// Up to 100 PLACED orders not yet sent to their supplier, oldest placing first.
pub async fn orders_to_send(db: &mut PgConnection) -> Result<Vec<SupplierOrder>, sqlx::Error> {
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
    .bind(OrderStatus::Placed)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| SupplierOrder {
            order_id: row.order_id,
            supplier_organisation_number: row.supplier_organisation_number,
            agreement_reference: row.agreement_reference,
            price_ore: row.price_ore,
            assignment_description: row.assignment_description,
            contact: (row.contact_name, row.contact_phone, row.contact_email),
        })
        .collect())
}

/// Notes that order `order_id` was sent to its supplier at `at`.
pub async fn note_supplier_notified(
    db: &mut PgConnection,
    order_id: Uuid,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET supplier_notified_at = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(at)
        .execute(db)
        .await?;
    Ok(())
}

/// Up to 100 approved invoices whose payment is not answered and was last handed over before
/// `before` (or never).
pub async fn payments_unanswered(
    db: &mut PgConnection,
    before: OffsetDateTime,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT invoice_id FROM invoices WHERE payment_status = $1 \
         AND (payment_handed_at IS NULL OR payment_handed_at < $2) ORDER BY sequence LIMIT 100",
    )
    .bind(InvoicePaymentStatus::Pending)
    .bind(before)
    .fetch_all(db)
    .await
}
