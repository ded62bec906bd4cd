//! Invoices: found, inserted, and saved by a change (`change::Record`).

use ekb_platform::{ApiError, change::Record, messaging::UnitOfWork};
use sqlx::{AssertSqlSafe, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use super::orders::locked_order;
use crate::{
    model::{INVOICE_COLUMNS, Invoice},
    transitions::{InvoiceOfOrder, InvoicedOrder, SubmitKey},
};

/// The invoices of an order, oldest first.
pub async fn invoices_of(
    db: &mut PgConnection,
    order_id: Uuid,
) -> Result<Vec<Invoice>, sqlx::Error> {
    let sql =
        format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE order_id = $1 ORDER BY sequence");
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_all(db)
        .await
}

/// One invoice, locked when `lock`.
pub async fn find_invoice(
    db: &mut PgConnection,
    invoice_id: Uuid,
    lock: bool,
) -> Result<Option<Invoice>, sqlx::Error> {
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE invoice_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(invoice_id)
        .fetch_optional(db)
        .await
}

/// The invoice of SubmitInvoice `request_id`.
pub async fn find_invoice_by_request(
    db: &mut PgConnection,
    request_id: Uuid,
) -> Result<Option<Invoice>, sqlx::Error> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE request_id = $1");
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(request_id)
        .fetch_optional(db)
        .await
}

/// Inserts `invoice` (new, from SubmitInvoice).
async fn insert_invoice(db: &mut PgConnection, invoice: &Invoice) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invoices (invoice_id, request_id, request_fingerprint, order_id, \
         invoice_number, invoice_date, amount_ore, invoice_document_id, status, rejection_reason, \
         submitted_at, decided_at, decided_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(invoice.invoice_id)
    .bind(invoice.request_id)
    .bind(&invoice.request_fingerprint)
    .bind(invoice.order_id)
    .bind(&invoice.invoice_number)
    .bind(invoice.invoice_date)
    .bind(invoice.amount_ore)
    .bind(invoice.invoice_document_id)
    .bind(invoice.status)
    .bind(invoice.rejection_reason)
    .bind(invoice.submitted_at)
    .bind(invoice.decided_at)
    .bind(&invoice.decided_by)
    .execute(db)
    .await?;
    Ok(())
}

/// Writes what a change may change on an invoice (its status, the four-eyes steps, payment).
async fn update_invoice(db: &mut PgConnection, invoice: &Invoice) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE invoices SET status = $2, rejection_reason = $3, rejection_explanation = $4, \
         decided_at = $5, decided_by = $6, attested_by = $7, attested_at = $8, \
         payment_status = $9, payment_reference = $10, payment_recorded_at = $11, \
         payment_attempt = $12, payment_handed_at = $13 WHERE invoice_id = $1",
    )
    .bind(invoice.invoice_id)
    .bind(invoice.status)
    .bind(invoice.rejection_reason)
    .bind(&invoice.rejection_explanation)
    .bind(invoice.decided_at)
    .bind(&invoice.decided_by)
    .bind(&invoice.attested_by)
    .bind(invoice.attested_at)
    .bind(invoice.payment_status)
    .bind(&invoice.payment_reference)
    .bind(invoice.payment_recorded_at)
    .bind(invoice.payment_attempt)
    .bind(invoice.payment_handed_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Notes that invoice `invoice_id`'s payment was handed over at `at` and accepted for
/// processing (its outcome comes later).
pub async fn note_payment_handed(
    db: &mut PgConnection,
    invoice_id: Uuid,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invoices SET payment_handed_at = $2 WHERE invoice_id = $1")
        .bind(invoice_id)
        .bind(at)
        .execute(db)
        .await?;
    Ok(())
}

impl Record for InvoiceOfOrder {
    type Key = Uuid;

    /// Locks the order first, then the invoice (the order every writer takes).
    async fn load_locked(work: &mut UnitOfWork, invoice_id: &Uuid) -> Result<Self, ApiError> {
        let not_found = || ApiError::NotFound(format!("no invoice {invoice_id}"));
        let order_id: Option<Uuid> =
            sqlx::query_scalar("SELECT order_id FROM invoices WHERE invoice_id = $1")
                .bind(invoice_id)
                .fetch_optional(work.db())
                .await?;
        let order = locked_order(work.db(), order_id.ok_or_else(not_found)?).await?;
        let invoice = find_invoice(work.db(), *invoice_id, true)
            .await?
            .ok_or_else(not_found)?;
        Ok(InvoiceOfOrder { invoice, order })
    }

    async fn save(&self, work: &mut UnitOfWork) -> Result<(), ApiError> {
        update_invoice(work.db(), &self.invoice).await?;
        Ok(())
    }
}

impl Record for InvoicedOrder {
    type Key = SubmitKey;

    async fn load_locked(work: &mut UnitOfWork, key: &SubmitKey) -> Result<Self, ApiError> {
        let order = locked_order(work.db(), key.order_id).await?;
        let invoices = invoices_of(work.db(), order.order_id).await?;
        let registered = find_invoice_by_request(work.db(), key.request_id).await?;
        Ok(InvoicedOrder {
            order,
            invoices,
            registered,
            submitted: None,
        })
    }

    async fn save(&self, work: &mut UnitOfWork) -> Result<(), ApiError> {
        if let Some(submitted) = &self.submitted {
            insert_invoice(work.db(), submitted).await?;
        }
        Ok(())
    }
}
