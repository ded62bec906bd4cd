//! Pilot-ordering's SQL: the case, agreement and expert read models, orders and invoices.
//! Every function runs on the connection of the caller's unit of work (or a read connection).

use sqlx::{AssertSqlSafe, PgConnection};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use ekb_proto::v1::{InvoiceStatus, OrderStatus};

use crate::model::{INVOICE_COLUMNS, Invoice, ORDER_COLUMNS, Order};

/// A case from the read model.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Case {
    /// Id.
    pub case_id: Uuid,
    /// Sequence (work-list paging).
    pub sequence: i64,
    /// County.
    pub county_code: String,
    /// CompetenceArea number.
    pub competence_area: i32,
    /// `PILOT` or `REGULAR`.
    pub flow: String,
    /// Opened.
    pub opened_at: OffsetDateTime,
}

impl Case {
    /// Whether the case is in the pilot flow.
    pub fn is_pilot(&self) -> bool {
        self.flow == "PILOT"
    }
}

/// Stores a routed case (first delivery wins; a case never changes its routing).
pub async fn insert_case(
    db: &mut PgConnection,
    case_id: Uuid,
    county: &str,
    employer: &str,
    area: i32,
    flow: &str,
    opened_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (case_id, county_code, employer_organisation_number, competence_area, \
         flow, opened_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO NOTHING",
    )
    .bind(case_id)
    .bind(county)
    .bind(employer)
    .bind(area)
    .bind(flow)
    .bind(opened_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks the case REGULAR; false if the case is unknown here.
pub async fn set_case_regular(
    db: &mut PgConnection,
    case_id: Uuid,
    county: &str,
    employer: &str,
    opened_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (case_id, county_code, employer_organisation_number, competence_area, \
         flow, opened_at) VALUES ($1, $2, $3, 0, 'REGULAR', $4) \
         ON CONFLICT (case_id) DO UPDATE SET flow = 'REGULAR'",
    )
    .bind(case_id)
    .bind(county)
    .bind(employer)
    .bind(opened_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The case, locked for update when `lock`.
pub async fn find_case(
    db: &mut PgConnection,
    case_id: Uuid,
    lock: bool,
) -> Result<Option<Case>, sqlx::Error> {
    let sql = format!(
        "SELECT case_id, sequence, county_code, competence_area, flow, opened_at FROM cases \
         WHERE case_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(case_id)
        .fetch_optional(db)
        .await
}

/// Notes that a fallback was requested for the case (so no sweep asks again).
pub async fn note_fallback(db: &mut PgConnection, case_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cases SET fallback_requested_at = now() WHERE case_id = $1")
        .bind(case_id)
        .execute(db)
        .await?;
    Ok(())
}

/// An agreement's full state from a registry event.
#[derive(Debug, Clone)]
pub struct AgreementState {
    /// Id.
    pub agreement_id: Uuid,
    /// Reference.
    pub reference: String,
    /// Supplier.
    pub supplier: String,
    /// Supplier name.
    pub supplier_name: String,
    /// County.
    pub county: String,
    /// Area numbers.
    pub areas: Vec<i32>,
    /// Price.
    pub price_ore: i64,
    /// Ranking.
    pub ranking: i32,
    /// Capacity.
    pub capacity: i32,
    /// Valid from.
    pub valid_from: Date,
    /// Valid to.
    pub valid_to: Date,
    /// Ended on.
    pub ended_on: Option<Date>,
    /// Version.
    pub version: i64,
}

/// Stores `agreement` unless a newer version is stored; true if it was stored.
pub async fn upsert_agreement(
    db: &mut PgConnection,
    agreement: &AgreementState,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO agreements (agreement_id, agreement_reference, supplier_organisation_number, \
         supplier_name, county_code, competence_areas, price_ore, ranking, monthly_capacity, \
         valid_from, valid_to, ended_on, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (agreement_id) DO UPDATE SET agreement_reference = EXCLUDED.agreement_reference, \
           supplier_organisation_number = EXCLUDED.supplier_organisation_number, \
           supplier_name = EXCLUDED.supplier_name, county_code = EXCLUDED.county_code, \
           competence_areas = EXCLUDED.competence_areas, price_ore = EXCLUDED.price_ore, \
           ranking = EXCLUDED.ranking, monthly_capacity = EXCLUDED.monthly_capacity, \
           valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to, \
           ended_on = EXCLUDED.ended_on, version = EXCLUDED.version, updated_at = now() \
         WHERE agreements.version < EXCLUDED.version",
    )
    .bind(agreement.agreement_id)
    .bind(&agreement.reference)
    .bind(&agreement.supplier)
    .bind(&agreement.supplier_name)
    .bind(&agreement.county)
    .bind(&agreement.areas)
    .bind(agreement.price_ore)
    .bind(agreement.ranking)
    .bind(agreement.capacity)
    .bind(agreement.valid_from)
    .bind(agreement.valid_to)
    .bind(agreement.ended_on)
    .bind(agreement.version)
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Stores an expert unless a newer version is stored.
pub async fn upsert_expert(
    db: &mut PgConnection,
    expert_id: Uuid,
    supplier: &str,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO experts (expert_id, supplier_organisation_number, version) VALUES ($1, $2, $3) \
         ON CONFLICT (expert_id) DO UPDATE SET supplier_organisation_number = \
         EXCLUDED.supplier_organisation_number, version = EXCLUDED.version \
         WHERE experts.version < EXCLUDED.version",
    )
    .bind(expert_id)
    .bind(supplier)
    .bind(version)
    .execute(db)
    .await?;
    Ok(())
}

/// Agreements no longer active on `today` (validity over or ended) with FUNDS_PENDING or
/// PLACED orders.
pub async fn stopped_agreements_with_open_orders(
    db: &mut PgConnection,
    today: Date,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT a.agreement_id FROM agreements a JOIN orders o USING (agreement_id) \
         WHERE o.status IN ($2, $3) AND (a.valid_to < $1 OR a.valid_from > $1 OR a.ended_on < $1)",
    )
    .bind(today)
    .bind(OrderStatus::FundsPending as i32)
    .bind(OrderStatus::Placed as i32)
    .fetch_all(db)
    .await
}

/// Whether agreement `agreement_id` is active on `date`.
pub async fn agreement_active(
    db: &mut PgConnection,
    agreement_id: Uuid,
    date: Date,
) -> Result<bool, sqlx::Error> {
    let active: Option<bool> = sqlx::query_scalar(
        "SELECT valid_from <= $2 AND valid_to >= $2 AND (ended_on IS NULL OR ended_on >= $2) \
         FROM agreements WHERE agreement_id = $1",
    )
    .bind(agreement_id)
    .bind(date)
    .fetch_optional(db)
    .await?;
    Ok(active.unwrap_or(false))
}

/// PILOT cases with no order that holds them (FUNDS_PENDING, PLACED, ACCEPTED, STARTED,
/// COMPLETED), no fallback asked yet, and no active agreement covering them on `today`.
/// With `agreement`, only cases that agreement covers.
pub async fn uncovered_pilot_cases(
    db: &mut PgConnection,
    today: Date,
    agreement: Option<Uuid>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.case_id FROM cases c WHERE c.flow = 'PILOT' AND c.fallback_requested_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.case_id = c.case_id AND o.status = ANY($2)) \
         AND NOT EXISTS (SELECT 1 FROM agreements a WHERE a.county_code = c.county_code \
             AND c.competence_area = ANY(a.competence_areas) AND a.valid_from <= $1 \
             AND a.valid_to >= $1 AND (a.ended_on IS NULL OR a.ended_on >= $1)) \
         AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM agreements a WHERE a.agreement_id = $3 \
             AND a.county_code = c.county_code AND c.competence_area = ANY(a.competence_areas))) \
         ORDER BY c.opened_at",
    )
    .bind(today)
    .bind(crate::model::numbers(&HOLDING))
    .bind(agreement)
    .fetch_all(db)
    .await
}

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
        .bind(crate::model::numbers(statuses))
        .fetch_all(db)
        .await
}

/// What a new order holds.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    /// Id.
    pub order_id: Uuid,
    /// PlaceOrder's request id and fingerprint; None for a follow-up.
    pub request: Option<(Uuid, &'a str)>,
    /// The case.
    pub case: &'a Case,
    /// The agreement.
    pub agreement: &'a crate::selection::Agreement,
    /// Budget year.
    pub budget_year: i32,
    /// Account.
    pub account: (i32, i32),
    /// Capacity month.
    pub usage_month: Date,
    /// Requested at.
    pub requested_at: OffsetDateTime,
}

/// Personal and descriptive fields of a new order from PlaceOrder.
#[derive(Debug, Clone)]
pub struct OrderDetails<'a> {
    /// Contact name.
    pub contact_name: &'a str,
    /// Contact phone.
    pub contact_phone: &'a str,
    /// Contact e-mail.
    pub contact_email: &'a str,
    /// Assignment.
    pub assignment: &'a str,
    /// The sealed fødselsnummer.
    pub sealed_fodselsnummer: &'a str,
    /// The pseudonym.
    pub pseudonym: &'a str,
}

/// Inserts an order in FUNDS_PENDING, its details given or copied from `previous`.
pub async fn insert_order(
    db: &mut PgConnection,
    order: &NewOrder<'_>,
    details: Result<&OrderDetails<'_>, Uuid>,
) -> Result<Order, sqlx::Error> {
    let (request_id, fingerprint) = match order.request {
        Some((id, fingerprint)) => (Some(id), Some(fingerprint)),
        None => (None, None),
    };
    let common = "order_id, request_id, request_fingerprint, case_id, county_code, competence_area, \
        agreement_id, agreement_reference, supplier_organisation_number, supplier_name, price_ore, \
        budget_year, account_chapter, account_post, status, usage_month, case_opened_at, \
        requested_at, updated_at, previous_order_id, contact_name, contact_phone, contact_email, \
        assignment_description, employee_fodselsnummer_sealed, employee_pseudonym";
    let values =
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18";
    let query = match details {
        Ok(_) => format!(
            "INSERT INTO orders ({common}) VALUES ({values}, NULL, $19, $20, $21, $22, $23, $24) \
             RETURNING {ORDER_COLUMNS}"
        ),
        Err(_) => format!(
            "INSERT INTO orders ({common}) SELECT {values}, p.order_id, p.contact_name, \
             p.contact_phone, p.contact_email, p.assignment_description, \
             p.employee_fodselsnummer_sealed, p.employee_pseudonym FROM orders p \
             WHERE p.order_id = $19 RETURNING {ORDER_COLUMNS}"
        ),
    };
    let query = sqlx::query_as(AssertSqlSafe(query))
        .bind(order.order_id)
        .bind(request_id)
        .bind(fingerprint)
        .bind(order.case.case_id)
        .bind(&order.case.county_code)
        .bind(order.case.competence_area)
        .bind(order.agreement.agreement_id)
        .bind(&order.agreement.agreement_reference)
        .bind(&order.agreement.supplier_organisation_number)
        .bind(&order.agreement.supplier_name)
        .bind(order.agreement.price_ore)
        .bind(order.budget_year)
        .bind(order.account.0)
        .bind(order.account.1)
        .bind(OrderStatus::FundsPending as i32)
        .bind(order.usage_month)
        .bind(order.case.opened_at)
        .bind(order.requested_at);
    match details {
        Ok(details) => {
            query
                .bind(details.contact_name)
                .bind(details.contact_phone)
                .bind(details.contact_email)
                .bind(details.assignment)
                .bind(details.sealed_fodselsnummer)
                .bind(details.pseudonym)
                .fetch_one(db)
                .await
        }
        Err(previous) => query.bind(previous).fetch_one(db).await,
    }
}

/// Runs an UPDATE on one order built by `sql` (`SET …` part, `$1` is the order id) and
/// returns the row after it.
pub async fn update_order<'q>(
    db: &mut PgConnection,
    order_id: Uuid,
    set: &str,
    bind: impl FnOnce(
        sqlx::query::QueryAs<'q, sqlx::Postgres, Order, sqlx::postgres::PgArguments>,
    )
        -> sqlx::query::QueryAs<'q, sqlx::Postgres, Order, sqlx::postgres::PgArguments>,
) -> Result<Order, sqlx::Error> {
    let sql = format!(
        "UPDATE orders SET {set}, updated_at = now() WHERE order_id = $1 RETURNING {ORDER_COLUMNS}"
    );
    bind(sqlx::query_as(AssertSqlSafe(sql)).bind(order_id))
        .fetch_one(db)
        .await
}

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

/// A new invoice.
#[derive(Debug, Clone)]
pub struct NewInvoice<'a> {
    /// Id.
    pub invoice_id: Uuid,
    /// Request id.
    pub request_id: Uuid,
    /// Fingerprint of the request.
    pub fingerprint: &'a str,
    /// Order.
    pub order_id: Uuid,
    /// Number.
    pub invoice_number: &'a str,
    /// Date.
    pub invoice_date: Date,
    /// Amount.
    pub amount_ore: i64,
    /// Document.
    pub document_id: Uuid,
    /// Status (SUBMITTED or REJECTED).
    pub status: InvoiceStatus,
    /// Rejection reason number (0 when none).
    pub rejection_reason: i32,
    /// Registered at.
    pub at: OffsetDateTime,
}

/// Inserts an invoice.
pub async fn insert_invoice(
    db: &mut PgConnection,
    invoice: &NewInvoice<'_>,
) -> Result<Invoice, sqlx::Error> {
    let rejected = invoice.status == InvoiceStatus::Rejected;
    let sql = format!(
        "INSERT INTO invoices (invoice_id, request_id, request_fingerprint, order_id, invoice_number, \
         invoice_date, amount_ore, invoice_document_id, status, rejection_reason, submitted_at, \
         decided_at, decided_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         RETURNING {INVOICE_COLUMNS}"
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(invoice.invoice_id)
        .bind(invoice.request_id)
        .bind(invoice.fingerprint)
        .bind(invoice.order_id)
        .bind(invoice.invoice_number)
        .bind(invoice.invoice_date)
        .bind(invoice.amount_ore)
        .bind(invoice.document_id)
        .bind(invoice.status as i32)
        .bind(invoice.rejection_reason)
        .bind(invoice.at)
        .bind(rejected.then_some(invoice.at))
        .bind(if rejected { "pilot-ordering" } else { "" })
        .fetch_one(db)
        .await
}

/// Runs an UPDATE on one invoice (`SET …`, `$1` the invoice id) and returns it after.
pub async fn update_invoice<'q>(
    db: &mut PgConnection,
    invoice_id: Uuid,
    set: &str,
    bind: impl FnOnce(
        sqlx::query::QueryAs<'q, sqlx::Postgres, Invoice, sqlx::postgres::PgArguments>,
    )
        -> sqlx::query::QueryAs<'q, sqlx::Postgres, Invoice, sqlx::postgres::PgArguments>,
) -> Result<Invoice, sqlx::Error> {
    let sql =
        format!("UPDATE invoices SET {set} WHERE invoice_id = $1 RETURNING {INVOICE_COLUMNS}");
    bind(sqlx::query_as(AssertSqlSafe(sql)).bind(invoice_id))
        .fetch_one(db)
        .await
}
