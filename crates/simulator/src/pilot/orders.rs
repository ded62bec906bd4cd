//! The pilot's steps through pilot-ordering's contract, each as the person or system that takes
//! it: the caseworker orders, records the start, completes, aborts and attests; the supplier
//! answers and invoices; the decider approves; the payment system reports the payment.
//!
//! Why not only the scenario library's: its walk is the happy path and fails on anything else,
//! while the simulator must carry on where the contract answers otherwise (a refusal for full
//! agreements, budget denying an order, a decline's follow-up or fallback) and needs the
//! refusal's reason, not a sentence. Where the library's step fits (the order request, the
//! supplier's answer, reading an order or a reservation) it is used as it is.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use ekb_proto::v1::{
    self, InvoicePaymentStatus, InvoiceStatus, OrderExpiryReason, OrderStatus,
    record_invoice_payment_outcome_request::Outcome,
};
use ekb_testkit::{
    scenarios::{
        both_flows::reservation,
        pilot::{ASSIGNMENT, order},
        requests,
        waits::{STEP_TIMEOUT, answer, refusal, until},
    },
    services::with_bearer,
    status::reason,
};
use time::Date;
use tonic::{Code, Status};

use crate::timeline::{Caller, Sim};

/// The prefix of the payment references the simulator, as the payment system, gives: a paid
/// invoice or payout with another reference was not paid by the simulator.
pub const PAYMENT_REFERENCE_PREFIX: &str = "SIM-PAY-";
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(150);
/// How long a wait for a sweep's effect polls on the day it is due before it lets a day pass.
const SWEEP_WAIT: Duration = Duration::from_secs(5);
/// How many days past its due day a sweep's effect may be late before the case gives up.
const SWEEP_GRACE_DAYS: i64 = 14;
/// How many simulated days an order may wait for its budget year's appropriation (budget keeps
/// the request PENDING until one is set) before the case gives up.
const MAX_DAYS_WITHOUT_APPROPRIATION: u32 = 60;

/// What the caseworker's PlaceOrder came to.
#[derive(Debug, Clone)]
pub enum Placement {
    /// The order, FUNDS_PENDING.
    Ordered(Box<v1::Order>),
    /// Refused with this reason (`AGREEMENTS_FULL`, `CASE_NOT_PILOT`, …).
    Refused(String),
}

/// The caseworker orders an expert for `case_id` about `employee`, retrying while
/// pilot-ordering has not the case or its agreements yet.
pub async fn place(sim: &Sim, case_id: &str, employee: &str) -> anyhow::Result<Placement> {
    let request = requests::order(case_id, employee, ASSIGNMENT);
    let token = sim.token(&Caller::Caseworker);
    let answered = retry_unavailable(|| {
        let mut ordering = sim.clients.ordering.clone();
        let request = with_bearer(request.clone(), &token);
        async move { ordering.place_order(request).await }
    })
    .await;
    match answered {
        Ok(response) => Ok(Placement::Ordered(Box::new(
            response
                .order
                .context("PlaceOrder answered without the order")?,
        ))),
        Err(status) if status.code() == Code::FailedPrecondition => {
            Ok(Placement::Refused(reason(&status)))
        }
        Err(status) => bail!("PlaceOrder: {}", refusal(&status)),
    }
}

/// Calls `call` until it answers anything but UNAVAILABLE (the service has not had the event
/// it needs yet), for at most [`STEP_TIMEOUT`]; the last answer, refusal included.
async fn retry_unavailable<R, F, Fut>(mut call: F) -> Result<R, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, Status>>,
{
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        match call().await {
            Err(status)
                if status.code() == Code::Unavailable && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(POLL).await;
            }
            answered => return answered.map(tonic::Response::into_inner),
        }
    }
}

/// Order `order_id`, read by the caseworker.
pub async fn read(sim: &Sim, order_id: &str) -> anyhow::Result<v1::Order> {
    order(&sim.clients, &sim.token(&Caller::Caseworker), order_id).await
}

/// Every order of case `case_id`, oldest first.
pub async fn of_case(sim: &Sim, case_id: &str) -> anyhow::Result<Vec<v1::Order>> {
    let request = with_bearer(
        v1::ListOrdersForCaseRequest {
            case_id: case_id.to_owned(),
        },
        &sim.token(&Caller::Caseworker),
    );
    Ok(answer(
        "ListOrdersForCase",
        sim.clients
            .ordering
            .clone()
            .list_orders_for_case(request)
            .await,
    )?
    .orders)
}

/// Waits for budget's answer to order `order_id`: the order PLACED, or CANCELLED when budget
/// denied the funds. While budget holds the request PENDING (no appropriation for the order's
/// budget year yet) the case waits a simulated day at a time — the day stands still while it
/// polls — for at most [`MAX_DAYS_WITHOUT_APPROPRIATION`] days.
pub async fn funds_answered(sim: &Sim, order_id: &str) -> anyhow::Result<v1::Order> {
    let token = sim.token(&Caller::Caseworker);
    let mut days_waited = 0;
    let mut deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let found = read(sim, order_id).await?;
        if found.status() != OrderStatus::FundsPending {
            return Ok(found);
        }
        let pending = reservation(
            &sim.clients,
            &token,
            v1::CommitmentKind::PilotOrder,
            order_id,
        )
        .await?
        .is_some_and(|found| found.status() == v1::ReservationStatus::Pending);
        if pending {
            ensure!(
                days_waited < MAX_DAYS_WITHOUT_APPROPRIATION,
                "budget has had no appropriation for order {order_id}'s budget year {} for \
                 {days_waited} days",
                found.budget_year
            );
            sim.after_days(1).await;
            days_waited += 1;
            deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("budget did not answer order {order_id} within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The order's supplier answers the PLACED `order` today: accepts, or declines for lack of
/// capacity. Returns the answer (with the follow-up order or the fallback reason on a decline).
pub async fn respond(
    sim: &Sim,
    order: &v1::Order,
    accept: bool,
) -> anyhow::Result<v1::RecordSupplierResponseResponse> {
    let response = if accept {
        v1::SupplierResponse::Accepted
    } else {
        v1::SupplierResponse::Declined
    };
    let request = requests::supplier_answer(&order.order_id, response, &sim.today_text());
    let token = sim.token(&Caller::Supplier(
        order.supplier_organisation_number.clone(),
    ));
    answer(
        "RecordSupplierResponse",
        sim.clients
            .ordering
            .clone()
            .record_supplier_response(with_bearer(request, &token))
            .await,
    )
}

/// The caseworker records that the expert started on `order_id` today.
pub async fn start(sim: &Sim, order_id: &str) -> anyhow::Result<v1::Order> {
    let request = with_bearer(
        requests::expert_started(order_id, &sim.today_text()),
        &sim.token(&Caller::Caseworker),
    );
    let started = answer(
        "RecordExpertStarted",
        sim.clients
            .ordering
            .clone()
            .record_expert_started(request)
            .await,
    )?
    .order
    .context("RecordExpertStarted answered without the order")?;
    expect_status(&started, OrderStatus::Started)?;
    Ok(started)
}

/// The caseworker records the assignment on `order_id` completed today, the report delivered.
pub async fn complete(sim: &Sim, order_id: &str) -> anyhow::Result<v1::Order> {
    let request = with_bearer(
        requests::order_completed(order_id, &sim.today_text()),
        &sim.token(&Caller::Caseworker),
    );
    let completed = answer(
        "CompleteOrder",
        sim.clients.ordering.clone().complete_order(request).await,
    )?
    .order
    .context("CompleteOrder answered without the order")?;
    expect_status(&completed, OrderStatus::Completed)?;
    Ok(completed)
}

/// The caseworker aborts `order_id` today for `reason`.
pub async fn abort(
    sim: &Sim,
    order_id: &str,
    reason: v1::OrderAbortReason,
) -> anyhow::Result<v1::Order> {
    let request = with_bearer(
        v1::AbortOrderRequest {
            order_id: order_id.to_owned(),
            reason: reason as i32,
            explanation: String::new(),
            aborted_date: sim.today_text(),
        },
        &sim.token(&Caller::Caseworker),
    );
    let aborted = answer(
        "AbortOrder",
        sim.clients.ordering.clone().abort_order(request).await,
    )?
    .order
    .context("AbortOrder answered without the order")?;
    expect_status(&aborted, OrderStatus::Aborted)?;
    Ok(aborted)
}

/// The order's supplier invoices `order` today with invoice `number` for `amount_ore`.
pub async fn invoice(
    sim: &Sim,
    order: &v1::Order,
    number: &str,
    amount_ore: i64,
) -> anyhow::Result<v1::SupplierInvoice> {
    let request = requests::invoice(&order.order_id, number, &sim.today_text(), amount_ore);
    let token = sim.token(&Caller::Supplier(
        order.supplier_organisation_number.clone(),
    ));
    answer(
        "SubmitInvoice",
        sim.clients
            .ordering
            .clone()
            .submit_invoice(with_bearer(request, &token))
            .await,
    )?
    .invoice
    .context("SubmitInvoice answered without the invoice")
}

/// The caseworker attests `invoice_id` (first pair of eyes).
pub async fn attest(sim: &Sim, invoice_id: &str) -> anyhow::Result<v1::SupplierInvoice> {
    let request = with_bearer(
        requests::attestation(invoice_id),
        &sim.token(&Caller::Caseworker),
    );
    let attested = answer(
        "AttestInvoice",
        sim.clients.ordering.clone().attest_invoice(request).await,
    )?
    .invoice
    .context("AttestInvoice answered without the invoice")?;
    ensure!(
        attested.status() == InvoiceStatus::Attested,
        "AttestInvoice left invoice {invoice_id} {:?}",
        attested.status()
    );
    Ok(attested)
}

/// The decider approves `invoice_id` (second pair of eyes).
pub async fn approve(sim: &Sim, invoice_id: &str) -> anyhow::Result<v1::SupplierInvoice> {
    let request = with_bearer(requests::approval(invoice_id), &sim.token(&Caller::Decider));
    let approved = answer(
        "ApproveInvoice",
        sim.clients.ordering.clone().approve_invoice(request).await,
    )?
    .invoice
    .context("ApproveInvoice answered without the invoice")?;
    ensure!(
        approved.status() == InvoiceStatus::Approved,
        "ApproveInvoice left invoice {invoice_id} {:?}",
        approved.status()
    );
    Ok(approved)
}

/// The payment system pays the approved `invoice` of `order_id` and reports it; returns the øre
/// the simulator recorded as paid (0 when another outcome was there first: pilot-ordering's
/// own fake payment system answered, `payment.fake_outcome` is not `deferred`).
pub async fn pay(sim: &Sim, order_id: &str, invoice: &v1::SupplierInvoice) -> anyhow::Result<i64> {
    let reference = format!("{PAYMENT_REFERENCE_PREFIX}{}", invoice.invoice_id);
    let request = with_bearer(
        v1::RecordInvoicePaymentOutcomeRequest {
            invoice_id: invoice.invoice_id.clone(),
            attempt: 1,
            outcome: Some(Outcome::Paid(v1::InvoicePaymentPaid {
                payment_reference: reference.clone(),
            })),
        },
        &sim.token(&Caller::PaymentSystem),
    );
    match sim
        .clients
        .ordering
        .clone()
        .record_invoice_payment_outcome(request)
        .await
    {
        Ok(_) => {}
        Err(status) if reason(&status) == "PAYMENT_OUTCOME_CONFLICT" => {}
        Err(status) => bail!("RecordInvoicePaymentOutcome: {}", refusal(&status)),
    }
    let paid = read(sim, order_id)
        .await?
        .invoices
        .into_iter()
        .find(|found| found.invoice_id == invoice.invoice_id)
        .with_context(|| format!("order {order_id} lost invoice {}", invoice.invoice_id))?;
    let paid_by_simulator =
        paid.payment_status() == InvoicePaymentStatus::Paid && paid.payment_reference == reference;
    if paid_by_simulator {
        sim.record_paid(v1::CommitmentKind::PilotOrder, order_id, paid.amount_ore);
    }
    Ok(if paid_by_simulator {
        paid.amount_ore
    } else {
        0
    })
}

/// Waits for pilot-ordering's sweep to expire `order_id` for `reason`, due on `due` (the first
/// day after the deadline): parks until then, polls a little, and lets a day pass at a time if
/// the sweep is later than that (the service's deadline set longer than its default).
pub async fn expired(
    sim: &Sim,
    order_id: &str,
    reason: OrderExpiryReason,
    due: Date,
) -> anyhow::Result<v1::Order> {
    sim.on(due).await;
    let give_up = due + time::Duration::days(SWEEP_GRACE_DAYS);
    loop {
        let polled_until = tokio::time::Instant::now() + SWEEP_WAIT;
        loop {
            let found = read(sim, order_id).await?;
            match found.status() {
                OrderStatus::Expired if found.expiry_reason() == reason => return Ok(found),
                OrderStatus::Expired | OrderStatus::Cancelled | OrderStatus::Declined => bail!(
                    "order {order_id} ended {:?} ({:?}) while {reason:?} was awaited",
                    found.status(),
                    found.expiry_reason()
                ),
                _ if tokio::time::Instant::now() >= polled_until => break,
                _ => tokio::time::sleep(POLL).await,
            }
        }
        if sim.today() >= give_up {
            bail!(
                "order {order_id} did not expire ({reason:?}) by {give_up}, {SWEEP_GRACE_DAYS} \
                 days after it was due"
            );
        }
        sim.after_days(1).await;
    }
}

/// Budget's reservation for commitment `id` of `kind` once it is final (SETTLED, RELEASED or
/// DENIED): what the case's money came to.
pub async fn final_reservation(
    sim: &Sim,
    kind: v1::CommitmentKind,
    id: &str,
) -> anyhow::Result<v1::Reservation> {
    let token = sim.token(&Caller::Caseworker);
    until(
        &format!("budget's reservation for {id} to be final"),
        || async {
            let found = reservation(&sim.clients, &token, kind, id).await?;
            Ok(found.filter(|found| {
                matches!(
                    found.status(),
                    v1::ReservationStatus::Settled
                        | v1::ReservationStatus::Released
                        | v1::ReservationStatus::Denied
                )
            }))
        },
    )
    .await
}

/// Fails unless `order` is in `status`.
fn expect_status(order: &v1::Order, status: OrderStatus) -> anyhow::Result<()> {
    ensure!(
        order.status() == status,
        "order {} is {:?}, not {status:?}",
        order.order_id,
        order.status()
    );
    Ok(())
}
