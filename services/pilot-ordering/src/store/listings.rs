//! The listings: orders by status and county (ListOrders) and the PILOT cases with no order
//! holding them (ListCasesAwaitingOrder), both paged by sequence.

use ekb_domain::CompetenceArea;
use sqlx::{AssertSqlSafe, PgConnection, types::Text};
use time::OffsetDateTime;
use uuid::Uuid;

use super::HOLDING;
use crate::{
    codes::{OrderCancellationReason, OrderStatus},
    model::{ORDER_COLUMNS, Order},
};

/// Orders in `statuses`, of `county` if given, after sequence `after`, at most
/// `limit`.
pub async fn orders_page(
    db: &mut PgConnection,
    statuses: &[OrderStatus],
    county: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE status = ANY($1) \
         AND ($2::text IS NULL OR county_code = $2) AND sequence > $3 ORDER BY sequence LIMIT $4"
    )))
    .bind(statuses)
    .bind(county)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A PILOT case awaiting an order, with its last order if any.
#[derive(Debug, sqlx::FromRow)]
pub struct AwaitingRow {
    /// Listing sequence.
    pub sequence: i64,
    /// The case.
    pub case_id: Uuid,
    /// County.
    pub county_code: String,
    /// The framework-agreement area; None when the employer chose its own expert.
    pub competence_area: Option<Text<CompetenceArea>>,
    /// Opened.
    pub opened_at: OffsetDateTime,
    /// Orders the case has had.
    pub order_count: i64,
    /// The last of them.
    pub last_order_id: Option<Uuid>,
    /// Its status.
    pub last_status: Option<OrderStatus>,
    /// Why it was cancelled, if it was.
    pub last_cancellation: Option<OrderCancellationReason>,
}

/// PILOT cases with no order holding them, of `county` if given, after sequence `after`, at
/// most `limit`.
pub async fn cases_awaiting_order(
    db: &mut PgConnection,
    county: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<AwaitingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.sequence, c.case_id, c.county_code, c.competence_area, c.opened_at, \
           (SELECT count(*) FROM orders o WHERE o.case_id = c.case_id) AS order_count, \
           l.order_id AS last_order_id, l.status AS last_status, \
           l.cancellation_reason AS last_cancellation \
         FROM cases c \
         LEFT JOIN LATERAL (SELECT order_id, status, cancellation_reason FROM orders o \
           WHERE o.case_id = c.case_id ORDER BY sequence DESC LIMIT 1) l ON true \
         WHERE c.flow = 'PILOT' AND ($1::text IS NULL OR c.county_code = $1) AND c.sequence > $2 \
           AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.case_id = c.case_id AND o.status = ANY($3)) \
         ORDER BY c.sequence LIMIT $4",
    )
    .bind(county)
    .bind(after)
    .bind(HOLDING.as_slice())
    .bind(limit)
    .fetch_all(db)
    .await
}
