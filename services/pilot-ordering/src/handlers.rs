//! The PilotOrderingService RPCs, as plain async functions over [`PilotOrderingApi`]: each
//! parses its request into a checked command, calls the store (reads), `ordering::place`
//! (PlaceOrder) or a decision through `change::apply` (every change of an order or invoice:
//! the record, its audit entry and its events commit together), and answers. Payment is handed
//! to the payment system after an approval commits (`payments`).

use std::sync::Arc;

use ekb_domain::oslo_date;
use ekb_platform::{
    ApiError,
    audit::{self, AuditActor},
    auth::Caller,
    change::{self, Applied},
    grpc::Call,
    messaging::Db,
    payment::PaymentPort,
};
use ekb_proto::{
    convert::{competence_area_to_wire, timestamp_to_wire},
    v1::{self, AccessPurpose, pilot_ordering_service_server::PilotOrderingService},
};
use sqlx::{PgConnection, types::Text};
use uuid::Uuid;

use crate::{
    APPROVER, CASEWORKER, PilotOrdering, READER, SUPPLIER,
    codes::wire_or_unspecified,
    commands::{
        AbortOrder, Answer, CancelOrder, CompleteOrder, ListCasesAwaitingOrder, ListOrders,
        PlaceOrder, RecordExpertStarted, RecordInvoicePaymentOutcome, RecordSupplierResponse,
        RejectInvoice, SubmitInvoice, id,
    },
    config::OrderingPolicy,
    model::{Invoice, Order},
    ordering::{self, OrderRequest},
    payments,
    store::{self, EndingKey},
    transitions::{Ending, FollowUp, InvoiceOfOrder, InvoicedOrder, SubmitKey},
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
        list_audit_entries(v1::ListAuditEntriesRequest) -> v1::ListAuditEntriesResponse = list_audit_entries;
    }
}

/// What the handlers work with.
#[derive(Debug, Clone)]
pub struct PilotOrderingApi {
    db: Db,
    policy: Arc<OrderingPolicy>,
    payment: Arc<dyn PaymentPort>,
}

impl PilotOrderingApi {
    /// Handlers over the service's database (and its clock).
    pub fn new(db: Db, policy: Arc<OrderingPolicy>, payment: Arc<dyn PaymentPort>) -> Self {
        PilotOrderingApi {
            db,
            policy,
            payment,
        }
    }

    /// Today in Oslo, by the service clock.
    fn today(&self) -> time::Date {
        oslo_date(self.db.clock().now())
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

/// The order as GetOrder shows it, with its invoices.
async fn full(db: &mut PgConnection, order: &Order) -> Result<v1::Order, ApiError> {
    let invoices = store::invoices_of(db, order.order_id).await?;
    Ok(order.to_wire(&invoices, true))
}

/// The order `order_id` as GetOrder shows it, read after a change.
async fn view(db: &Db, order_id: Uuid) -> Result<v1::Order, ApiError> {
    let mut connection = db.read().await?;
    let order = store::find_order(&mut connection, order_id, false)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no order {order_id}")))?;
    full(&mut connection, &order).await
}

/// The invoice a change left.
fn invoice_of(applied: &Applied<InvoiceOfOrder>) -> Option<v1::SupplierInvoice> {
    Some(applied.record.invoice.to_wire())
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
    let order_request = OrderRequest {
        command: &command,
        fingerprint: &fingerprint,
        pseudonym,
        sealed_fodselsnummer: api.policy.cipher.seal_fodselsnummer(&command.fodselsnummer),
    };
    let mut work = api.db.begin().await?;
    let (order, created) = ordering::place(
        &mut work,
        &api.policy,
        &order_request,
        &AuditActor::nav_employee(&call.caller),
    )
    .await?;
    let order = if created {
        work.commit().await?;
        order.to_wire(&[], true)
    } else {
        full(work.db(), &order).await?
    };
    Ok(v1::PlaceOrderResponse {
        order: Some(order),
        created,
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
        .ok_or_else(|| ApiError::NotFound(format!("no order {order_id}")))?;
    scope_supplier(&call.caller, &order)?;
    let wire = full(&mut db, &order).await?;
    drop(db);
    let supplier = only_supplier(&call.caller);
    audit::record_reads(
        &api.db,
        &[audit::Read {
            case_id: order.case_id,
            subject_id: order.order_id,
            action: "GetOrder",
            actor: actor(&call.caller, &order),
            purpose: if supplier {
                AccessPurpose::EmployerSelfService
            } else {
                AccessPurpose::CaseProcessing
            },
        }],
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
    let rows = store::orders_page(
        &mut db,
        &query.statuses,
        query.county.as_deref(),
        query.page.after.unwrap_or(0),
        query.page.fetch_limit(),
    )
    .await?;
    let (rows, next_page_token) = query.page.finish(rows, |order| order.sequence);
    Ok(v1::ListOrdersResponse {
        orders: rows.iter().map(|order| order.to_wire(&[], false)).collect(),
        next_page_token,
    })
}

async fn list_cases_awaiting_order(
    api: &PilotOrderingApi,
    _call: Call,
    request: v1::ListCasesAwaitingOrderRequest,
) -> Result<v1::ListCasesAwaitingOrderResponse, ApiError> {
    let query = ListCasesAwaitingOrder::try_from(request)?;
    let mut db = api.db.read().await?;
    let rows = store::cases_awaiting_order(
        &mut db,
        query.county.as_deref(),
        query.page.after.unwrap_or(0),
        query.page.fetch_limit(),
    )
    .await?;
    let (rows, next_page_token) = query.page.finish(rows, |row| row.sequence);
    Ok(v1::ListCasesAwaitingOrderResponse {
        cases: rows
            .into_iter()
            .map(|row| v1::CaseAwaitingOrder {
                case_id: row.case_id.to_string(),
                county_code: row.county_code,
                competence_area: row
                    .competence_area
                    .map_or(0, |Text(area)| competence_area_to_wire(area) as i32),
                case_opened_at: Some(timestamp_to_wire(row.opened_at)),
                order_count: i32::try_from(row.order_count).unwrap_or(i32::MAX),
                last_order_id: row
                    .last_order_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                last_order_status: wire_or_unspecified(row.last_status),
                last_cancellation_reason: wire_or_unspecified(row.last_cancellation),
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
    let command = RecordSupplierResponse::parse(&request, api.today())?;
    let caller = &call.caller;
    let follow_up = match &command.answer {
        Answer::Accepted => {
            change::apply::<Order, _>(&api.db, &command.order_id, |order, now| {
                scope_supplier(caller, order)?;
                let who = actor(caller, order);
                order.accept(command.responded_date, &who, now)
            })
            .await?;
            FollowUp::Nothing
        }
        Answer::Declined(reason, text) => {
            let key = EndingKey {
                order_id: command.order_id,
                on: api.db.clock().now(),
            };
            let account = ordering::account(&api.policy);
            let applied = change::apply::<Ending, _>(&api.db, &key, |ending, now| {
                scope_supplier(caller, &ending.order)?;
                let who = actor(caller, &ending.order);
                ending.decline(*reason, text, command.responded_date, &who, &account, now)
            })
            .await?;
            applied.record.follow_up
        }
    };
    let order = view(&api.db, command.order_id).await?;
    let next_order = match order.next_order_id.parse::<Uuid>() {
        Ok(next) => Some(view(&api.db, next).await?),
        Err(_) => None,
    };
    Ok(v1::RecordSupplierResponseResponse {
        order: Some(order),
        next_order,
        fallback_reason: follow_up.fallback_reason() as i32,
    })
}

async fn record_expert_started(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::RecordExpertStartedRequest,
) -> Result<v1::RecordExpertStartedResponse, ApiError> {
    let command = RecordExpertStarted::parse(&request, api.today())?;
    let who = AuditActor::nav_employee(&call.caller);
    change::apply::<Order, _>(&api.db, &command.order_id, |order, now| {
        order.start(command.started_date, command.expert_id, &who, now)
    })
    .await?;
    let order = view(&api.db, command.order_id).await?;
    Ok(v1::RecordExpertStartedResponse { order: Some(order) })
}

async fn complete_order(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::CompleteOrderRequest,
) -> Result<v1::CompleteOrderResponse, ApiError> {
    let command = CompleteOrder::parse(&request, api.today())?;
    let who = AuditActor::nav_employee(&call.caller);
    let days = api.policy.invoice_deadline_days;
    change::apply::<Order, _>(&api.db, &command.order_id, |order, now| {
        order.complete(
            command.completed_date,
            command.report_document_id,
            days,
            &who,
            now,
        )
    })
    .await?;
    let order = view(&api.db, command.order_id).await?;
    Ok(v1::CompleteOrderResponse { order: Some(order) })
}

async fn cancel_order(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::CancelOrderRequest,
) -> Result<v1::CancelOrderResponse, ApiError> {
    let command = CancelOrder::try_from(request)?;
    let who = AuditActor::nav_employee(&call.caller);
    change::apply::<Order, _>(&api.db, &command.order_id, |order, now| {
        order.cancel(command.reason, &command.explanation, &who, now)
    })
    .await?;
    let order = view(&api.db, command.order_id).await?;
    Ok(v1::CancelOrderResponse { order: Some(order) })
}

async fn abort_order(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::AbortOrderRequest,
) -> Result<v1::AbortOrderResponse, ApiError> {
    let command = AbortOrder::parse(&request, api.today())?;
    let who = AuditActor::nav_employee(&call.caller);
    let days = api.policy.invoice_deadline_days;
    change::apply::<Order, _>(&api.db, &command.order_id, |order, now| {
        order.abort(
            command.reason,
            &command.explanation,
            command.aborted_date,
            days,
            &who,
            now,
        )
    })
    .await?;
    let order = view(&api.db, command.order_id).await?;
    Ok(v1::AbortOrderResponse { order: Some(order) })
}

async fn submit_invoice(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::SubmitInvoiceRequest,
) -> Result<v1::SubmitInvoiceResponse, ApiError> {
    let command = SubmitInvoice::parse(&request, api.today())?;
    let caller = &call.caller;
    let key = SubmitKey {
        order_id: command.order_id,
        request_id: command.request_id,
    };
    let applied = change::apply::<InvoicedOrder, _>(&api.db, &key, |order, now| {
        let supplier = &order.order.supplier_organisation_number;
        caller.require_represents(supplier)?;
        order.submit(&command, &AuditActor::organisation(caller, supplier), now)
    })
    .await?;
    let record = applied.record;
    let invoice: Option<Invoice> = record.submitted.or(record.registered);
    Ok(v1::SubmitInvoiceResponse {
        invoice: invoice.as_ref().map(Invoice::to_wire),
        created: applied.changed,
    })
}

async fn attest_invoice(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::AttestInvoiceRequest,
) -> Result<v1::AttestInvoiceResponse, ApiError> {
    let invoice_id = id("invoice_id", &request.invoice_id)?;
    let who = AuditActor::nav_employee(&call.caller);
    let applied = change::apply::<InvoiceOfOrder, _>(&api.db, &invoice_id, |stored, now| {
        stored
            .invoice
            .attest(&stored.order, &call.caller.subject, &who, now)
    })
    .await?;
    Ok(v1::AttestInvoiceResponse {
        invoice: invoice_of(&applied),
    })
}

async fn approve_invoice(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::ApproveInvoiceRequest,
) -> Result<v1::ApproveInvoiceResponse, ApiError> {
    let invoice_id = id("invoice_id", &request.invoice_id)?;
    let who = AuditActor::nav_employee(&call.caller);
    let applied = change::apply::<InvoiceOfOrder, _>(&api.db, &invoice_id, |stored, now| {
        stored
            .invoice
            .approve(&stored.order, &call.caller.subject, &who, now)
    })
    .await?;
    if applied.changed {
        // After commit: hand the payment over; the dispatcher retries if this does not finish.
        let (db, port) = (api.db.clone(), api.payment.clone());
        tokio::spawn(async move {
            if let Err(error) = payments::pay(&db, port.as_ref(), invoice_id).await {
                tracing::warn!(%invoice_id, error = %error, "payment hand-over failed; will retry");
            }
        });
    }
    Ok(v1::ApproveInvoiceResponse {
        invoice: invoice_of(&applied),
    })
}

async fn reject_invoice(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::RejectInvoiceRequest,
) -> Result<v1::RejectInvoiceResponse, ApiError> {
    let command = RejectInvoice::try_from(request)?;
    let who = AuditActor::nav_employee(&call.caller);
    let applied =
        change::apply::<InvoiceOfOrder, _>(&api.db, &command.invoice_id, |stored, now| {
            stored.invoice.reject(
                &stored.order,
                command.reason,
                &command.explanation,
                &call.caller.subject,
                &who,
                now,
            )
        })
        .await?;
    Ok(v1::RejectInvoiceResponse {
        invoice: invoice_of(&applied),
    })
}

async fn record_invoice_payment_outcome(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::RecordInvoicePaymentOutcomeRequest,
) -> Result<v1::RecordInvoicePaymentOutcomeResponse, ApiError> {
    let command = RecordInvoicePaymentOutcome::try_from(request)?;
    let who = AuditActor::system_client(&call.caller);
    let applied =
        change::apply::<InvoiceOfOrder, _>(&api.db, &command.invoice_id, |stored, now| {
            stored.invoice.record_payment(
                &stored.order,
                command.attempt,
                &command.outcome,
                &who,
                "RecordInvoicePaymentOutcome",
                now,
            )
        })
        .await?;
    if applied.changed {
        payments::log_recorded(&applied.record, &command.outcome);
    }
    Ok(v1::RecordInvoicePaymentOutcomeResponse {
        invoice: invoice_of(&applied),
    })
}

async fn list_audit_entries(
    api: &PilotOrderingApi,
    call: Call,
    request: v1::ListAuditEntriesRequest,
) -> Result<v1::ListAuditEntriesResponse, ApiError> {
    audit::list_audit_entries(&api.db, &call.caller, &request).await
}
