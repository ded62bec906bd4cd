//! The PilotOrderingService RPCs, as plain async functions over [`PilotOrderingApi`]. Each
//! write is one unit of work: the order or invoice, its audit entry and the events it
//! publishes commit together. Payment is handed to the payment system after commit
//! (`payments`); an outcome the payment system reports later comes in through
//! RecordInvoicePaymentOutcome and is recorded by the same code as the port's answer.

use ekb_domain::oslo_date;
use ekb_platform::clock::SharedClock;
use std::sync::Arc;

use ekb_platform::{
    ApiError,
    audit::{self, AuditActor, AuditEvent},
    auth::Caller,
    grpc::Call,
    messaging::{Db, UnitOfWork},
    payment::PaymentPort,
};
use ekb_proto::{
    convert::{date_to_wire, timestamp_to_wire},
    v1::{
        self, AccessPurpose, AuditEntryKind, InvoiceRejectionReason, InvoiceStatus, OrderStatus,
        pilot_ordering_service_server::PilotOrderingService,
    },
};
use sqlx::{AssertSqlSafe, PgConnection};
use time::Duration;
use uuid::Uuid;

use crate::{
    APPROVER, CASEWORKER, PilotOrdering, READER, SUPPLIER,
    commands::{
        AbortOrder, Answer, CancelOrder, CompleteOrder, ListCasesAwaitingOrder, ListOrders,
        PlaceOrder, RecordExpertStarted, RecordInvoicePaymentOutcome, RecordSupplierResponse,
        RejectInvoice, SubmitInvoice, id,
    },
    config::OrderingPolicy,
    model::{Invoice, ORDER_COLUMNS, Order},
    ordering::{self, FollowUp, audit_change, publish},
    payments,
    selection::{self, NoCandidate},
    store,
};

ekb_platform::grpc_handlers! {
    PilotOrdering => PilotOrderingApi: PilotOrderingService {
        place_order(v1::PlaceOrderRequest) -> v1::PlaceOrderResponse = place_order;
        get_order(v1::GetOrderRequest) -> v1::GetOrderResponse = get_order;
        list_orders_for_case(v1::ListOrdersForCaseRequest) -> v1::ListOrdersForCaseResponse = list_orders_for_case;
        list_orders(v1::ListOrdersRequest) -> v1::ListOrdersResponse = list_orders;
        list_cases_awaiting_order(v1::ListCasesAwaitingOrderRequest) -> v1::ListCasesAwaitingOrderResponse = list_cases_awaiting_order;
        record_supplier_response(v1::RecordSupplierResponseRequest) -> v1::RecordSupplierResponseResponse = record_supplier_response;
        record_expert_started(v1::RecordExpertStartedRequest) -> v1::RecordExpertStartedResponse = record_expert_started;
        complete_order(v1::CompleteOrderRequest) -> v1::CompleteOrderResponse = complete_order;
        cancel_order(v1::CancelOrderRequest) -> v1::CancelOrderResponse = cancel_order;
        abort_order(v1::AbortOrderRequest) -> v1::AbortOrderResponse = abort_order;
        submit_invoice(v1::SubmitInvoiceRequest) -> v1::SubmitInvoiceResponse = submit_invoice;
        attest_invoice(v1::AttestInvoiceRequest) -> v1::AttestInvoiceResponse = attest_invoice;
        approve_invoice(v1::ApproveInvoiceRequest) -> v1::ApproveInvoiceResponse = approve_invoice;
        reject_invoice(v1::RejectInvoiceRequest) -> v1::RejectInvoiceResponse = reject_invoice;
        record_invoice_payment_outcome(v1::RecordInvoicePaymentOutcomeRequest) -> v1::RecordInvoicePaymentOutcomeResponse = record_invoice_payment_outcome;
    }
}

/// What the handlers work with.
#[derive(Debug, Clone)]
pub struct PilotOrderingApi {
    db: Db,
    policy: Arc<OrderingPolicy>,
    clock: SharedClock,
    payment: Arc<dyn PaymentPort>,
}

impl PilotOrderingApi {
    /// Handlers over the service's database.
    pub fn new(
        db: Db,
        policy: Arc<OrderingPolicy>,
        clock: SharedClock,
        payment: Arc<dyn PaymentPort>,
    ) -> Self {
        PilotOrderingApi {
            db,
            policy,
            clock,
            payment,
        }
    }
}

/// Whether the caller acts only as a supplier (no NAV role).
fn only_supplier(caller: &Caller) -> bool {
    caller.has_role(SUPPLIER) && !caller.has_any_role(&[CASEWORKER, READER, APPROVER])
}

/// A supplier may only see and answer its own orders.
fn scope_supplier(caller: &Caller, order: &Order) -> Result<(), ApiError> {
    if only_supplier(caller) {
        caller.require_represents(&order.supplier_organisation_number)?;
    }
    Ok(())
}

/// Who acts, for the audit trail.
fn actor(caller: &Caller, order: &Order) -> AuditActor {
    if only_supplier(caller) {
        AuditActor::organisation(caller, &order.supplier_organisation_number)
    } else {
        AuditActor::nav_employee(caller)
    }
}

fn not_found(what: &str, id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no {what} {id}"))
}

/// The order, locked, or NOT_FOUND.
async fn locked_order(db: &mut PgConnection, order_id: Uuid) -> Result<Order, ApiError> {
    store::find_order(db, order_id, true)
        .await?
        .ok_or_else(|| not_found("order", order_id))
}

/// The order as GetOrder shows it, with its invoices.
async fn full(db: &mut PgConnection, order: &Order) -> Result<v1::Order, ApiError> {
    let invoices = store::invoices_of(db, order.order_id).await?;
    Ok(order.to_wire(&invoices, true))
}

/// Ends a write: records the audit entry `action` (of `kind`, by `who`) for `subject_id` of
/// `case_id` in the unit of work, and commits it.
async fn commit_audited(
    mut work: UnitOfWork,
    case_id: Uuid,
    subject_id: Uuid,
    kind: AuditEntryKind,
    action: &str,
    who: &AuditActor,
) -> Result<(), ApiError> {
    audit_change(&mut work, case_id, subject_id, kind, action, who).await?;
    work.commit().await?;
    Ok(())
}

/// Ends a write to an order: records the audit entry `action` (of `kind`, by `who`) for
/// `order`, reads `order` as GetOrder shows it (with its invoices) and commits; returns that
/// view.
async fn commit_order_change(
    mut work: UnitOfWork,
    order: &Order,
    kind: AuditEntryKind,
    action: &str,
    who: &AuditActor,
) -> Result<v1::Order, ApiError> {
    audit_change(&mut work, order.case_id, order.order_id, kind, action, who).await?;
    let wire = full(work.db(), order).await?;
    work.commit().await?;
    Ok(wire)
}

async fn place_order(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::PlaceOrderRequest,
) -> Result<v1::PlaceOrderResponse, ApiError> {
    let command = PlaceOrder::parse(&request, api.policy.synthetic)?;
    let pseudonym = command.fodselsnummer.pseudonym(&api.policy.pseudonym_key);
    let fingerprint = {
        let mut masked = request.clone();
        masked.employee_fodselsnummer = pseudonym.clone();
        ekb_platform::idempotency::fingerprint(&masked)
    };
    let now = api.clock.now();
    let mut work = api.db.begin().await?;
    // Copies of this request wait for the first; other orders for the case see its answer.
    ekb_platform::idempotency::serialise(
        &mut work,
        &[
            format!("PlaceOrder:{}", command.request_id),
            format!("case:{}", command.case_id),
        ],
    )
    .await?;
    if let Some((order, stored)) =
        store::find_order_by_request(work.db(), command.request_id).await?
    {
        if stored != fingerprint {
            return Err(ApiError::AlreadyExists(format!(
                "request id {} was used for another order request",
                command.request_id
            )));
        }
        let order = full(work.db(), &order).await?;
        return Ok(v1::PlaceOrderResponse {
            order: Some(order),
            created: false,
        });
    }
    let case = store::find_case(work.db(), command.case_id, true)
        .await?
        .ok_or_else(|| ApiError::not_arrived_yet(format!("case {}", command.case_id)))?;
    if !case.is_pilot() {
        return Err(ApiError::refused(
            "CASE_NOT_PILOT",
            format!("case {} is in the regular flow", case.case_id),
        ));
    }
    let orders = store::orders_of_case(work.db(), case.case_id, false).await?;
    if orders
        .iter()
        .any(|order| crate::model::LIVE.contains(&order.status()))
    {
        return Err(ApiError::refused(
            "CASE_HAS_LIVE_ORDER",
            "the case has an order that is pending, placed, accepted or started",
        ));
    }
    if orders
        .iter()
        .any(|order| order.status() == OrderStatus::Completed)
    {
        return Err(ApiError::refused(
            "CASE_ALREADY_DELIVERED",
            "an order of the case was completed",
        ));
    }
    let sealed = api.policy.cipher.seal_fodselsnummer(&command.fodselsnummer);
    let details = store::OrderDetails {
        contact_name: &command.contact_name,
        contact_phone: &command.contact_phone,
        contact_email: &command.contact_email,
        assignment: &command.assignment,
        sealed_fodselsnummer: &sealed,
        pseudonym: &pseudonym,
    };
    let order = match ordering::insert_under_chosen_agreement(
        work.db(),
        &api.policy,
        &case,
        Some((command.request_id, &fingerprint)),
        Ok(&details),
        now,
    )
    .await?
    {
        Ok(order) => order,
        Err(NoCandidate::NoActiveAgreement)
            if !selection::knows_any_agreement(
                work.db(),
                &case.county_code,
                case.competence_area,
            )
            .await? =>
        {
            return Err(ApiError::not_arrived_yet(format!(
                "the framework agreements for county {} and the case's competence area",
                case.county_code
            )));
        }
        Err(none) => return Err(ApiError::refused(none.reason(), none.message())),
    };
    publish(&mut work, case.case_id, &order.requested_event()).await?;
    commit_audited(
        work,
        case.case_id,
        order.order_id,
        AuditEntryKind::Change,
        "PlaceOrder",
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    tracing::info!(order_id = %order.order_id, case_id = %case.case_id, agreement_id = %order.agreement_id, "order requested");
    Ok(v1::PlaceOrderResponse {
        order: Some(order.to_wire(&[], true)),
        created: true,
    })
}

async fn get_order(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::GetOrderRequest,
) -> Result<v1::GetOrderResponse, ApiError> {
    let order_id = id("order_id", &request.order_id)?;
    let mut db = api.db.read().await?;
    let order = store::find_order(&mut db, order_id, false)
        .await?
        .ok_or_else(|| not_found("order", order_id))?;
    scope_supplier(&call.caller, &order)?;
    let wire = full(&mut db, &order).await?;
    let supplier = only_supplier(&call.caller);
    audit::record(
        &mut db,
        &AuditEvent {
            case_id: order.case_id,
            subject_id: order.order_id,
            kind: AuditEntryKind::Read,
            action: "GetOrder",
            actor: &actor(&call.caller, &order),
            purpose: if supplier {
                AccessPurpose::EmployerSelfService
            } else {
                AccessPurpose::CaseProcessing
            },
            at: api.clock.now(),
        },
    )
    .await?;
    Ok(v1::GetOrderResponse { order: Some(wire) })
}

async fn list_orders_for_case(
    api: &PilotOrderingApi,
    _call: Call,
    request: v1::ListOrdersForCaseRequest,
) -> Result<v1::ListOrdersForCaseResponse, ApiError> {
    let case_id = id("case_id", &request.case_id)?;
    let mut db = api.db.read().await?;
    if store::find_case(&mut db, case_id, false).await?.is_none() {
        return Err(ApiError::not_arrived_yet(format!("case {case_id}")));
    }
    let mut orders = Vec::new();
    for order in store::orders_of_case(&mut db, case_id, false).await? {
        orders.push(full(&mut db, &order).await?);
    }
    Ok(v1::ListOrdersForCaseResponse { orders })
}

async fn list_orders(
    api: &PilotOrderingApi,
    _call: Call,
    request: v1::ListOrdersRequest,
) -> Result<v1::ListOrdersResponse, ApiError> {
    let query = ListOrders::try_from(request)?;
    let mut db = api.db.read().await?;
    let rows: Vec<Order> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE status = ANY($1) \
         AND ($2::text IS NULL OR county_code = $2) AND sequence > $3 ORDER BY sequence LIMIT $4"
    )))
    .bind(&query.statuses)
    .bind(&query.county)
    .bind(query.page.after.unwrap_or(0))
    .bind(query.page.fetch_limit())
    .fetch_all(&mut *db)
    .await?;
    let (rows, next_page_token) = query.page.finish(rows, |order| order.sequence);
    Ok(v1::ListOrdersResponse {
        orders: rows.iter().map(|order| order.to_wire(&[], false)).collect(),
        next_page_token,
    })
}

#[derive(sqlx::FromRow)]
struct AwaitingRow {
    sequence: i64,
    case_id: Uuid,
    county_code: String,
    competence_area: i32,
    opened_at: time::OffsetDateTime,
    order_count: i64,
    last_order_id: Option<Uuid>,
    last_status: Option<i32>,
    last_cancellation: Option<i32>,
}

async fn list_cases_awaiting_order(
    api: &PilotOrderingApi,
    _call: Call,
    request: v1::ListCasesAwaitingOrderRequest,
) -> Result<v1::ListCasesAwaitingOrderResponse, ApiError> {
    let query = ListCasesAwaitingOrder::try_from(request)?;
    let mut db = api.db.read().await?;
    let rows: Vec<AwaitingRow> = sqlx::query_as(
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
    .bind(&query.county)
    .bind(query.page.after.unwrap_or(0))
    .bind(crate::model::numbers(&store::HOLDING))
    .bind(query.page.fetch_limit())
    .fetch_all(&mut *db)
    .await?;
    let (rows, next_page_token) = query.page.finish(rows, |row| row.sequence);
    Ok(v1::ListCasesAwaitingOrderResponse {
        cases: rows
            .into_iter()
            .map(|row| v1::CaseAwaitingOrder {
                case_id: row.case_id.to_string(),
                county_code: row.county_code,
                competence_area: row.competence_area,
                case_opened_at: Some(timestamp_to_wire(row.opened_at)),
                order_count: i32::try_from(row.order_count).unwrap_or(i32::MAX),
                last_order_id: row
                    .last_order_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                last_order_status: row.last_status.unwrap_or(0),
                last_cancellation_reason: row.last_cancellation.unwrap_or(0),
            })
            .collect(),
        next_page_token,
    })
}

async fn record_supplier_response(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::RecordSupplierResponseRequest,
) -> Result<v1::RecordSupplierResponseResponse, ApiError> {
    let now = api.clock.now();
    let command = RecordSupplierResponse::parse(&request, oslo_date(now))?;
    let mut work = api.db.begin().await?;
    let order = locked_order(work.db(), command.order_id).await?;
    scope_supplier(&call.caller, &order)?;
    let repeated = order.supplier_responded_date == Some(command.responded_date)
        && match &command.answer {
            Answer::Accepted => order.status() == OrderStatus::Accepted,
            Answer::Declined(code, _) => {
                order.status() == OrderStatus::Declined && order.decline_reason_code == *code as i32
            }
        };
    if repeated {
        let next = match order.next_order_id {
            Some(next) => store::find_order(work.db(), next, false).await?,
            None => None,
        };
        let wire = full(work.db(), &order).await?;
        return Ok(v1::RecordSupplierResponseResponse {
            order: Some(wire),
            next_order: next.map(|next| next.to_wire(&[], true)),
            fallback_reason: 0,
        });
    }
    if order.status() != OrderStatus::Placed {
        return Err(ApiError::refused(
            "ORDER_NOT_PLACED",
            format!("order {} is not placed with the supplier", order.order_id),
        ));
    }
    let who = actor(&call.caller, &order);
    let (order, follow_up) = match command.answer {
        Answer::Accepted => {
            let accepted = store::update_order(
                work.db(),
                order.order_id,
                "status = $2, supplier_responded_date = $3, accepted_at = $4",
                |query| {
                    query
                        .bind(OrderStatus::Accepted as i32)
                        .bind(command.responded_date)
                        .bind(now)
                },
            )
            .await?;
            publish(
                &mut work,
                order.case_id,
                &v1::OrderAccepted {
                    order_id: order.order_id.to_string(),
                    case_id: order.case_id.to_string(),
                    county_code: order.county_code.clone(),
                    agreement_id: order.agreement_id.to_string(),
                    accepted_date: date_to_wire(command.responded_date),
                    accepted_at: Some(timestamp_to_wire(now)),
                },
            )
            .await?;
            (accepted, FollowUp::Nothing)
        }
        Answer::Declined(code, text) => {
            let mut declined = store::update_order(
                work.db(),
                order.order_id,
                "status = $2, supplier_responded_date = $3, decline_reason_code = $4, decline_reason = $5",
                |query| {
                    query
                        .bind(OrderStatus::Declined as i32)
                        .bind(command.responded_date)
                        .bind(code as i32)
                        .bind(text)
                },
            )
            .await?;
            let follow_up =
                ordering::plan_follow_up(&mut work, &api.policy, &mut declined, now).await?;
            publish(
                &mut work,
                order.case_id,
                &v1::OrderDeclined {
                    order_id: order.order_id.to_string(),
                    case_id: order.case_id.to_string(),
                    county_code: order.county_code.clone(),
                    agreement_id: order.agreement_id.to_string(),
                    supplier_organisation_number: order.supplier_organisation_number.clone(),
                    amount_ore: order.price_ore,
                    next_order_id: follow_up.next_order_id(),
                    declined_date: date_to_wire(command.responded_date),
                    declined_at: Some(timestamp_to_wire(now)),
                    decline_reason: code as i32,
                    fallback_reason: follow_up.fallback_reason() as i32,
                },
            )
            .await?;
            ordering::publish_follow_up(&mut work, &follow_up, &declined, now).await?;
            (declined, follow_up)
        }
    };
    let wire = commit_order_change(
        work,
        &order,
        AuditEntryKind::Change,
        "RecordSupplierResponse",
        &who,
    )
    .await?;
    Ok(v1::RecordSupplierResponseResponse {
        order: Some(wire),
        fallback_reason: follow_up.fallback_reason() as i32,
        next_order: match follow_up {
            FollowUp::Next(next) => Some(next.to_wire(&[], true)),
            _ => None,
        },
    })
}

async fn record_expert_started(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::RecordExpertStartedRequest,
) -> Result<v1::RecordExpertStartedResponse, ApiError> {
    let now = api.clock.now();
    let command = RecordExpertStarted::parse(&request, oslo_date(now))?;
    let mut work = api.db.begin().await?;
    let order = locked_order(work.db(), command.order_id).await?;
    if order.status() == OrderStatus::Started
        && order.started_date == Some(command.started_date)
        && order.expert_id == command.expert_id
    {
        let wire = full(work.db(), &order).await?;
        return Ok(v1::RecordExpertStartedResponse { order: Some(wire) });
    }
    if order.status() != OrderStatus::Accepted {
        return Err(ApiError::refused(
            "ORDER_NOT_ACCEPTED",
            format!("order {} is not accepted", order.order_id),
        ));
    }
    let opened = oslo_date(order.case_opened_at);
    if command.started_date < opened {
        return Err(ApiError::invalid(
            "started_date",
            "must not be before the case was opened",
        ));
    }
    let started = store::update_order(
        work.db(),
        order.order_id,
        "status = $2, started_date = $3, expert_id = $4",
        |query| {
            query
                .bind(OrderStatus::Started as i32)
                .bind(command.started_date)
                .bind(command.expert_id)
        },
    )
    .await?;
    let days = (command.started_date - opened).whole_days();
    publish(
        &mut work,
        order.case_id,
        &v1::OrderStarted {
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            competence_area: order.competence_area,
            agreement_id: order.agreement_id.to_string(),
            expert_id: command
                .expert_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            case_opened_date: date_to_wire(opened),
            started_date: date_to_wire(command.started_date),
            days_from_case_opened_to_started: i32::try_from(days).unwrap_or(i32::MAX),
            recorded_at: Some(timestamp_to_wire(now)),
        },
    )
    .await?;
    let wire = commit_order_change(
        work,
        &started,
        AuditEntryKind::Change,
        "RecordExpertStarted",
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    Ok(v1::RecordExpertStartedResponse { order: Some(wire) })
}

async fn complete_order(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::CompleteOrderRequest,
) -> Result<v1::CompleteOrderResponse, ApiError> {
    let now = api.clock.now();
    let command = CompleteOrder::parse(&request, oslo_date(now))?;
    let mut work = api.db.begin().await?;
    let order = locked_order(work.db(), command.order_id).await?;
    if order.status() == OrderStatus::Completed
        && order.completed_date == Some(command.completed_date)
        && order.report_document_id == Some(command.report_document_id)
    {
        let wire = full(work.db(), &order).await?;
        return Ok(v1::CompleteOrderResponse { order: Some(wire) });
    }
    if order.status() != OrderStatus::Started {
        return Err(ApiError::refused(
            "ORDER_NOT_STARTED",
            format!("order {} is not started", order.order_id),
        ));
    }
    let started_date = order.started_date.unwrap_or(command.completed_date);
    if command.completed_date < started_date {
        return Err(ApiError::invalid(
            "completed_date",
            "must not be before the started date",
        ));
    }
    let deadline = command.completed_date + Duration::days(api.policy.invoice_deadline_days);
    let completed = store::update_order(
        work.db(),
        order.order_id,
        "status = $2, completed_date = $3, report_document_id = $4, invoice_deadline_date = $5",
        |query| {
            query
                .bind(OrderStatus::Completed as i32)
                .bind(command.completed_date)
                .bind(command.report_document_id)
                .bind(deadline)
        },
    )
    .await?;
    publish(
        &mut work,
        order.case_id,
        &v1::OrderCompleted {
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            agreement_id: order.agreement_id.to_string(),
            started_date: date_to_wire(started_date),
            completed_date: date_to_wire(command.completed_date),
            recorded_at: Some(timestamp_to_wire(now)),
        },
    )
    .await?;
    let wire = commit_order_change(
        work,
        &completed,
        AuditEntryKind::Change,
        "CompleteOrder",
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    Ok(v1::CompleteOrderResponse { order: Some(wire) })
}

async fn cancel_order(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::CancelOrderRequest,
) -> Result<v1::CancelOrderResponse, ApiError> {
    let command = CancelOrder::try_from(request)?;
    let now = api.clock.now();
    let mut work = api.db.begin().await?;
    let order = locked_order(work.db(), command.order_id).await?;
    match order.status() {
        OrderStatus::Cancelled if order.cancellation_reason == command.reason as i32 => {
            let wire = full(work.db(), &order).await?;
            return Ok(v1::CancelOrderResponse { order: Some(wire) });
        }
        OrderStatus::FundsPending | OrderStatus::Placed | OrderStatus::Accepted => {}
        OrderStatus::Started => {
            return Err(ApiError::refused(
                "ORDER_STARTED",
                "the expert has started: abort the order instead",
            ));
        }
        _ => {
            return Err(ApiError::refused("ORDER_CLOSED", "the order is closed"));
        }
    }
    let (cancelled, _) = ordering::cancel(
        &mut work,
        &api.policy,
        &order,
        command.reason,
        v1::FundsDeniedReason::Unspecified,
        &command.explanation,
        now,
    )
    .await?;
    let wire = commit_order_change(
        work,
        &cancelled,
        AuditEntryKind::Decision,
        "CancelOrder",
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    Ok(v1::CancelOrderResponse { order: Some(wire) })
}

async fn abort_order(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::AbortOrderRequest,
) -> Result<v1::AbortOrderResponse, ApiError> {
    let now = api.clock.now();
    let command = AbortOrder::parse(&request, oslo_date(now))?;
    let mut work = api.db.begin().await?;
    let order = locked_order(work.db(), command.order_id).await?;
    if order.status() == OrderStatus::Aborted
        && order.abort_reason == command.reason as i32
        && order.aborted_date == Some(command.aborted_date)
    {
        let wire = full(work.db(), &order).await?;
        return Ok(v1::AbortOrderResponse { order: Some(wire) });
    }
    let previous = order.status();
    if !matches!(previous, OrderStatus::Accepted | OrderStatus::Started) {
        return Err(ApiError::refused(
            "ORDER_NOT_ACCEPTED_OR_STARTED",
            "only an accepted or started order can be aborted",
        ));
    }
    if order
        .supplier_responded_date
        .is_some_and(|accepted| command.aborted_date < accepted)
    {
        return Err(ApiError::invalid(
            "aborted_date",
            "must not be before the supplier accepted",
        ));
    }
    let deadline = command.aborted_date + Duration::days(api.policy.invoice_deadline_days);
    let aborted = store::update_order(
        work.db(),
        order.order_id,
        "status = $2, abort_reason = $3, abort_explanation = $4, abort_previous_status = $5, \
         aborted_date = $6, aborted_at = $7, invoice_deadline_date = $8",
        |query| {
            query
                .bind(OrderStatus::Aborted as i32)
                .bind(command.reason as i32)
                .bind(command.explanation.clone())
                .bind(previous as i32)
                .bind(command.aborted_date)
                .bind(now)
                .bind(deadline)
        },
    )
    .await?;
    publish(
        &mut work,
        order.case_id,
        &v1::OrderAborted {
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            agreement_id: order.agreement_id.to_string(),
            previous_status: previous as i32,
            reason: command.reason as i32,
            amount_ore: order.price_ore,
            aborted_date: date_to_wire(command.aborted_date),
            invoice_deadline_date: date_to_wire(deadline),
            aborted_at: Some(timestamp_to_wire(now)),
        },
    )
    .await?;
    let wire = commit_order_change(
        work,
        &aborted,
        AuditEntryKind::Decision,
        "AbortOrder",
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    Ok(v1::AbortOrderResponse { order: Some(wire) })
}

async fn submit_invoice(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::SubmitInvoiceRequest,
) -> Result<v1::SubmitInvoiceResponse, ApiError> {
    let now = api.clock.now();
    let today = oslo_date(now);
    let command = SubmitInvoice::parse(&request, today)?;
    let fingerprint = command.fingerprint();
    let mut work = api.db.begin().await?;
    let order = locked_order(work.db(), command.order_id).await?;
    call.caller
        .require_represents(&order.supplier_organisation_number)?;
    if let Some(invoice) = store::find_invoice_by_request(work.db(), command.request_id).await? {
        if invoice.request_fingerprint != fingerprint {
            return Err(ApiError::AlreadyExists(format!(
                "request id {} was used for another invoice",
                command.request_id
            )));
        }
        return Ok(v1::SubmitInvoiceResponse {
            invoice: Some(invoice.to_wire()),
            created: false,
        });
    }
    match order.status() {
        OrderStatus::Completed | OrderStatus::Aborted => {}
        OrderStatus::Expired => {
            return Err(ApiError::refused("ORDER_EXPIRED", "the order has expired"));
        }
        _ => {
            return Err(ApiError::refused(
                "ORDER_NOT_INVOICEABLE",
                "only a completed or aborted order can be invoiced",
            ));
        }
    }
    if order
        .invoice_deadline_date
        .is_some_and(|deadline| today > deadline)
    {
        return Err(ApiError::refused(
            "INVOICE_DEADLINE_PASSED",
            "the order's invoice deadline has passed",
        ));
    }
    let invoices = store::invoices_of(work.db(), order.order_id).await?;
    if invoices
        .iter()
        .any(|invoice| invoice.status() == InvoiceStatus::Approved)
    {
        return Err(ApiError::refused(
            "ORDER_ALREADY_INVOICED",
            "an invoice for the order is approved",
        ));
    }
    if invoices.iter().any(|invoice| {
        matches!(
            invoice.status(),
            InvoiceStatus::Submitted | InvoiceStatus::Attested
        )
    }) {
        return Err(ApiError::refused(
            "INVOICE_IN_PROGRESS",
            "an invoice for the order awaits attestation or approval",
        ));
    }
    let above = command.amount_ore > order.price_ore;
    let invoice = store::insert_invoice(
        work.db(),
        &store::NewInvoice {
            invoice_id: Uuid::now_v7(),
            request_id: command.request_id,
            fingerprint: &fingerprint,
            order_id: order.order_id,
            invoice_number: &command.invoice_number,
            invoice_date: command.invoice_date,
            amount_ore: command.amount_ore,
            document_id: command.document_id,
            status: if above {
                InvoiceStatus::Rejected
            } else {
                InvoiceStatus::Submitted
            },
            rejection_reason: if above {
                InvoiceRejectionReason::PriceAboveAgreement as i32
            } else {
                0
            },
            at: now,
        },
    )
    .await?;
    publish(
        &mut work,
        order.case_id,
        &v1::InvoiceSubmitted {
            invoice_id: invoice.invoice_id.to_string(),
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            supplier_organisation_number: order.supplier_organisation_number.clone(),
            amount_ore: invoice.amount_ore,
            invoice_date: date_to_wire(invoice.invoice_date),
            submitted_at: Some(timestamp_to_wire(now)),
        },
    )
    .await?;
    if above {
        publish(
            &mut work,
            order.case_id,
            &rejected_event(&invoice, &order, now),
        )
        .await?;
    }
    commit_audited(
        work,
        order.case_id,
        invoice.invoice_id,
        AuditEntryKind::Change,
        "SubmitInvoice",
        &AuditActor::organisation(&call.caller, &order.supplier_organisation_number),
    )
    .await?;
    Ok(v1::SubmitInvoiceResponse {
        invoice: Some(invoice.to_wire()),
        created: true,
    })
}

fn rejected_event(
    invoice: &Invoice,
    order: &Order,
    now: time::OffsetDateTime,
) -> v1::InvoiceRejected {
    v1::InvoiceRejected {
        invoice_id: invoice.invoice_id.to_string(),
        order_id: order.order_id.to_string(),
        case_id: order.case_id.to_string(),
        county_code: order.county_code.clone(),
        reason: invoice.rejection_reason,
        rejected_at: Some(timestamp_to_wire(now)),
    }
}

/// The invoice and its order, both locked, or NOT_FOUND.
async fn locked_invoice(
    db: &mut PgConnection,
    invoice_id: Uuid,
) -> Result<(Invoice, Order), ApiError> {
    let order_id: Option<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM invoices WHERE invoice_id = $1")
            .bind(invoice_id)
            .fetch_optional(&mut *db)
            .await?;
    let order_id = order_id.ok_or_else(|| not_found("invoice", invoice_id))?;
    let order = locked_order(db, order_id).await?;
    let invoice = store::find_invoice(db, invoice_id, true)
        .await?
        .ok_or_else(|| not_found("invoice", invoice_id))?;
    Ok((invoice, order))
}

async fn attest_invoice(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::AttestInvoiceRequest,
) -> Result<v1::AttestInvoiceResponse, ApiError> {
    let invoice_id = id("invoice_id", &request.invoice_id)?;
    let now = api.clock.now();
    let mut work = api.db.begin().await?;
    let (invoice, order) = locked_invoice(work.db(), invoice_id).await?;
    // A repeat of an attestation that took effect answers the invoice as it is now, also once
    // the approver has decided it (the attestant's retry may come after the approval).
    if !invoice.attested_by.is_empty() && invoice.attested_by == call.caller.subject {
        return Ok(v1::AttestInvoiceResponse {
            invoice: Some(invoice.to_wire()),
        });
    }
    if invoice.status() != InvoiceStatus::Submitted {
        return Err(ApiError::refused(
            "INVOICE_NOT_SUBMITTED",
            "only a submitted invoice can be attested",
        ));
    }
    let subject = call.caller.subject.clone();
    let attested = store::update_invoice(
        work.db(),
        invoice_id,
        "status = $2, attested_by = $3, attested_at = $4",
        |query| {
            query
                .bind(InvoiceStatus::Attested as i32)
                .bind(subject)
                .bind(now)
        },
    )
    .await?;
    commit_audited(
        work,
        order.case_id,
        invoice_id,
        AuditEntryKind::Decision,
        "AttestInvoice",
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    Ok(v1::AttestInvoiceResponse {
        invoice: Some(attested.to_wire()),
    })
}

async fn approve_invoice(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::ApproveInvoiceRequest,
) -> Result<v1::ApproveInvoiceResponse, ApiError> {
    let invoice_id = id("invoice_id", &request.invoice_id)?;
    let now = api.clock.now();
    let mut work = api.db.begin().await?;
    let (invoice, order) = locked_invoice(work.db(), invoice_id).await?;
    if invoice.status() == InvoiceStatus::Approved && invoice.decided_by == call.caller.subject {
        return Ok(v1::ApproveInvoiceResponse {
            invoice: Some(invoice.to_wire()),
        });
    }
    if invoice.status() != InvoiceStatus::Attested {
        return Err(ApiError::refused(
            "INVOICE_NOT_ATTESTED",
            "only an attested invoice can be approved",
        ));
    }
    if invoice.attested_by == call.caller.subject {
        return Err(ApiError::PermissionDenied {
            reason: "SAME_PERSON_AS_ATTESTANT",
            message: "the attestant cannot also approve the invoice".to_owned(),
        });
    }
    let subject = call.caller.subject.clone();
    let approved = store::update_invoice(
        work.db(),
        invoice_id,
        "status = $2, decided_by = $3, decided_at = $4, payment_status = $5, payment_attempt = 1, \
         payment_handed_at = $4",
        |query| {
            query
                .bind(InvoiceStatus::Approved as i32)
                .bind(subject)
                .bind(now)
                .bind(v1::InvoicePaymentStatus::Pending as i32)
        },
    )
    .await?;
    publish(
        &mut work,
        order.case_id,
        &v1::InvoiceApproved {
            invoice_id: invoice_id.to_string(),
            order_id: order.order_id.to_string(),
            case_id: order.case_id.to_string(),
            county_code: order.county_code.clone(),
            agreement_id: order.agreement_id.to_string(),
            supplier_organisation_number: order.supplier_organisation_number.clone(),
            amount_ore: approved.amount_ore,
            order_amount_ore: order.price_ore,
            approved_at: Some(timestamp_to_wire(now)),
        },
    )
    .await?;
    commit_audited(
        work,
        order.case_id,
        invoice_id,
        AuditEntryKind::Decision,
        "ApproveInvoice",
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    // After commit: hand the payment over; the dispatcher retries if this does not finish.
    let (db, port, clock) = (api.db.clone(), api.payment.clone(), api.clock.clone());
    tokio::spawn(async move {
        if let Err(error) = payments::pay(&db, port.as_ref(), clock.as_ref(), invoice_id).await {
            tracing::warn!(%invoice_id, error = %error, "payment hand-over failed; will retry");
        }
    });
    Ok(v1::ApproveInvoiceResponse {
        invoice: Some(approved.to_wire()),
    })
}

async fn reject_invoice(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::RejectInvoiceRequest,
) -> Result<v1::RejectInvoiceResponse, ApiError> {
    let command = RejectInvoice::try_from(request)?;
    let now = api.clock.now();
    let mut work = api.db.begin().await?;
    let (invoice, order) = locked_invoice(work.db(), command.invoice_id).await?;
    if invoice.status() == InvoiceStatus::Rejected
        && invoice.rejection_reason == command.reason as i32
    {
        return Ok(v1::RejectInvoiceResponse {
            invoice: Some(invoice.to_wire()),
        });
    }
    if !matches!(
        invoice.status(),
        InvoiceStatus::Submitted | InvoiceStatus::Attested
    ) {
        return Err(ApiError::refused(
            "INVOICE_DECIDED",
            "the invoice is approved or rejected already",
        ));
    }
    let subject = call.caller.subject.clone();
    let rejected = store::update_invoice(
        work.db(),
        command.invoice_id,
        "status = $2, rejection_reason = $3, rejection_explanation = $4, decided_at = $5, decided_by = $6",
        |query| {
            query
                .bind(InvoiceStatus::Rejected as i32)
                .bind(command.reason as i32)
                .bind(command.explanation.clone())
                .bind(now)
                .bind(subject)
        },
    )
    .await?;
    publish(
        &mut work,
        order.case_id,
        &rejected_event(&rejected, &order, now),
    )
    .await?;
    commit_audited(
        work,
        order.case_id,
        command.invoice_id,
        AuditEntryKind::Decision,
        "RejectInvoice",
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    Ok(v1::RejectInvoiceResponse {
        invoice: Some(rejected.to_wire()),
    })
}

async fn record_invoice_payment_outcome(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::RecordInvoicePaymentOutcomeRequest,
) -> Result<v1::RecordInvoicePaymentOutcomeResponse, ApiError> {
    let command = RecordInvoicePaymentOutcome::try_from(request)?;
    let now = api.clock.now();
    let mut work = api.db.begin().await?;
    let (invoice, order) = locked_invoice(work.db(), command.invoice_id).await?;
    if invoice.status() != InvoiceStatus::Approved {
        return Err(ApiError::refused(
            "INVOICE_NOT_APPROVED",
            format!("the invoice is {}", invoice.status().as_str_name()),
        ));
    }
    if command.attempt != invoice.payment_attempt {
        return Err(ApiError::refused(
            "NOT_CURRENT_ATTEMPT",
            format!(
                "the invoice's payment was handed over as attempt {}",
                invoice.payment_attempt
            ),
        ));
    }
    if invoice.payment_status != v1::InvoicePaymentStatus::Pending as i32 {
        if command.outcome.is_recorded_on(&invoice) {
            return Ok(v1::RecordInvoicePaymentOutcomeResponse {
                invoice: Some(invoice.to_wire()),
            });
        }
        return Err(ApiError::refused(
            "PAYMENT_OUTCOME_CONFLICT",
            "another outcome is already recorded for this payment",
        ));
    }
    payments::record_outcome(
        &mut work,
        &invoice,
        &order,
        &command.outcome,
        now,
        &AuditActor::system_client(&call.caller),
        "RecordInvoicePaymentOutcome",
    )
    .await?;
    let recorded = store::find_invoice(work.db(), command.invoice_id, false)
        .await?
        .ok_or_else(|| not_found("invoice", command.invoice_id))?;
    work.commit().await?;
    Ok(v1::RecordInvoicePaymentOutcomeResponse {
        invoice: Some(recorded.to_wire()),
    })
}
