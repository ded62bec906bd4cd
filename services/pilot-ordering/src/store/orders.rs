//! Orders: found, listed by case or agreement, inserted, and saved by a change (`change::Record`).

use ekb_domain::{month_start, oslo_date};
use ekb_platform::{ApiError, change::Record, messaging::UnitOfWork};
use sqlx::{AssertSqlSafe, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    codes::OrderStatus,
    model::{ORDER_COLUMNS, Order},
    selection,
    transitions::{Ending, FollowUp, Successor},
};

/// Statuses in which an order holds its case in the pilot (live, or delivered).
pub const HOLDING: [OrderStatus; 5] = [
    OrderStatus::FundsPending,
    OrderStatus::Placed,
    OrderStatus::Accepted,
    OrderStatus::Started,
    OrderStatus::Completed,
];

/// One order, locked for update when `lock`.
pub async fn find_order(
    db: &mut PgConnection,
    order_id: Uuid,
    lock: bool,
) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(db)
        .await
}

/// The order PlaceOrder created for `request_id`, with its request fingerprint.
pub async fn find_order_by_request(
    db: &mut PgConnection,
    request_id: Uuid,
) -> Result<Option<(Order, String)>, sqlx::Error> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE request_id = $1");
    let order: Option<Order> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(request_id)
        .fetch_optional(&mut *db)
        .await?;
    let Some(order) = order else { return Ok(None) };
    let fingerprint: Option<String> =
        sqlx::query_scalar("SELECT request_fingerprint FROM orders WHERE order_id = $1")
            .bind(order.order_id)
            .fetch_one(db)
            .await?;
    Ok(Some((order, fingerprint.unwrap_or_default())))
}

/// A case's orders, oldest first; locked when `lock`.
pub async fn orders_of_case(
    db: &mut PgConnection,
    case_id: Uuid,
    lock: bool,
) -> Result<Vec<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE case_id = $1 ORDER BY sequence{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(case_id)
        .fetch_all(db)
        .await
}

/// Orders of `agreement_id` in `statuses`, locked.
pub async fn orders_of_agreement(
    db: &mut PgConnection,
    agreement_id: Uuid,
    statuses: &[OrderStatus],
) -> Result<Vec<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE agreement_id = $1 AND status = ANY($2) \
         ORDER BY sequence FOR UPDATE"
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(agreement_id)
        .bind(statuses)
        .fetch_all(db)
        .await
}

/// Inserts `order` (new, FUNDS_PENDING) with PlaceOrder's `request` id and fingerprint and the
/// employee's sealed fødselsnummer; a follow-up (no request) copies the sealed fødselsnummer
/// from the order it follows.
pub async fn insert_order(
    db: &mut PgConnection,
    order: &Order,
    request: Option<(Uuid, &str)>,
    sealed_fodselsnummer: Option<&str>,
) -> Result<(), sqlx::Error> {
    let (request_id, fingerprint) = request.unzip();
    sqlx::query(
        "INSERT INTO orders (order_id, request_id, request_fingerprint, case_id, county_code, \
         competence_area, agreement_id, agreement_reference, supplier_organisation_number, \
         supplier_name, price_ore, budget_year, account_chapter, account_post, status, usage_month, \
         case_opened_at, requested_at, updated_at, previous_order_id, contact_name, contact_phone, \
         contact_email, assignment_description, employee_pseudonym, employee_fodselsnummer_sealed) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
         $19, $20, $21, $22, $23, $24, $25, \
         COALESCE($26, (SELECT p.employee_fodselsnummer_sealed FROM orders p WHERE p.order_id = $20))",
    )
    .bind(order.order_id)
    .bind(request_id)
    .bind(fingerprint)
    .bind(order.case_id)
    .bind(&order.county_code)
    .bind(order.competence_area)
    .bind(order.agreement_id)
    .bind(&order.agreement_reference)
    .bind(&order.supplier_organisation_number)
    .bind(&order.supplier_name)
    .bind(order.price_ore)
    .bind(order.budget_year)
    .bind(order.account_chapter)
    .bind(order.account_post)
    .bind(order.status)
    .bind(order.usage_month())
    .bind(order.case_opened_at)
    .bind(order.requested_at)
    .bind(order.updated_at)
    .bind(order.previous_order_id)
    .bind(&order.contact_name)
    .bind(&order.contact_phone)
    .bind(&order.contact_email)
    .bind(&order.assignment_description)
    .bind(&order.employee_pseudonym)
    .bind(sealed_fodselsnummer)
    .execute(db)
    .await?;
    Ok(())
}

/// Writes what a change may change on an order (its status and the facts of each step).
async fn update_order(db: &mut PgConnection, order: &Order) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET status = $2, reservation_id = $3, placed_at = $4, accepted_at = $5, \
         supplier_responded_date = $6, decline_reason = $7, decline_reason_code = $8, \
         expert_id = $9, started_date = $10, completed_date = $11, report_document_id = $12, \
         cancellation_reason = $13, funds_denied_reason = $14, cancellation_explanation = $15, \
         cancelled_at = $16, abort_reason = $17, abort_explanation = $18, \
         abort_previous_status = $19, aborted_date = $20, aborted_at = $21, \
         invoice_deadline_date = $22, expiry_reason = $23, expired_at = $24, next_order_id = $25, \
         updated_at = $26 WHERE order_id = $1",
    )
    .bind(order.order_id)
    .bind(order.status)
    .bind(&order.reservation_id)
    .bind(order.placed_at)
    .bind(order.accepted_at)
    .bind(order.supplier_responded_date)
    .bind(&order.decline_reason)
    .bind(order.decline_reason_code)
    .bind(order.expert_id)
    .bind(order.started_date)
    .bind(order.completed_date)
    .bind(order.report_document_id)
    .bind(order.cancellation_reason)
    .bind(order.funds_denied_reason)
    .bind(&order.cancellation_explanation)
    .bind(order.cancelled_at)
    .bind(order.abort_reason)
    .bind(&order.abort_explanation)
    .bind(order.abort_previous_status)
    .bind(order.aborted_date)
    .bind(order.aborted_at)
    .bind(order.invoice_deadline_date)
    .bind(order.expiry_reason)
    .bind(order.expired_at)
    .bind(order.next_order_id)
    .bind(order.updated_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The order, locked, or NOT_FOUND.
pub(super) async fn locked_order(db: &mut PgConnection, order_id: Uuid) -> Result<Order, ApiError> {
    find_order(db, order_id, true)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no order {order_id}")))
}

impl Record for Order {
    type Key = Uuid;

    async fn load_locked(work: &mut UnitOfWork, order_id: &Uuid) -> Result<Self, ApiError> {
        locked_order(work.db(), *order_id).await
    }

    async fn save(&self, work: &mut UnitOfWork) -> Result<(), ApiError> {
        update_order(work.db(), self).await?;
        Ok(())
    }
}

/// What finds an order that may end before the supplier took it: its id, and when a follow-up
/// would be ordered (the candidate's capacity is counted in that day's month).
#[derive(Debug, Clone, Copy)]
pub struct EndingKey {
    /// The order.
    pub order_id: Uuid,
    /// When.
    pub on: OffsetDateTime,
}

/// What could follow `order` if it ended now: nothing when its case left the pilot or holds
/// another order; otherwise the agreement the follow-up would go to (its month row locked until
/// the unit of work ends), or why there is none.
async fn successor(
    db: &mut PgConnection,
    order: &Order,
    on: OffsetDateTime,
) -> Result<Successor, sqlx::Error> {
    let Some(case) = super::find_case(db, order.case_id, true).await? else {
        return Ok(Successor::Nothing);
    };
    if !case.is_pilot() {
        return Ok(Successor::Nothing);
    }
    let holding = orders_of_case(db, case.case_id, false)
        .await?
        .iter()
        .any(|other| other.order_id != order.order_id && HOLDING.contains(&other.status));
    if holding {
        return Ok(Successor::Nothing);
    }
    let today = oslo_date(on);
    let choice = selection::choose(
        db,
        &selection::Wanted {
            case_id: case.case_id,
            county: &case.county_code,
            // The case's area, as its order carries it.
            area: order.competence_area.0,
            date: today,
            month: month_start(today),
            also_failed: Some(order.agreement_id),
        },
    )
    .await?;
    Ok(match choice {
        Ok(agreement) => Successor::Candidate {
            case: Box::new(case),
            agreement,
        },
        Err(none) => Successor::NoCandidate(none),
    })
}

impl Record for Ending {
    type Key = EndingKey;

    async fn load_locked(work: &mut UnitOfWork, key: &EndingKey) -> Result<Self, ApiError> {
        let order = locked_order(work.db(), key.order_id).await?;
        let successor = successor(work.db(), &order, key.on).await?;
        Ok(Ending::new(order, successor))
    }

    async fn save(&self, work: &mut UnitOfWork) -> Result<(), ApiError> {
        update_order(work.db(), &self.order).await?;
        match &self.follow_up {
            FollowUp::Next(next) => insert_order(work.db(), next, None, None).await?,
            FollowUp::Fallback(_) => {
                super::note_fallback(work.db(), self.order.case_id, self.order.updated_at).await?;
            }
            FollowUp::Nothing => {}
        }
        Ok(())
    }
}
