//! Requests parsed into checked commands: every broken rule becomes one field violation, so a
//! caller learns about all of them at once, and nothing is stored or published for a bad
//! request. Rules that need the order (dates against its own dates) are checked in the
//! handlers, still as field violations.

use ekb_domain::{Fodselsnummer, SyntheticPolicy};
use ekb_platform::{ApiError, Violations, validate::Page};
use ekb_proto::v1::{self, SupplierResponse};
use time::Date;
use uuid::Uuid;

use crate::{
    codes::{
        InvoiceRejectionReason, OrderAbortReason, OrderCancellationReason, OrderStatus,
        SupplierDeclineReason,
    },
    model::LIVE,
};

/// Longest explanation or decline reason.
const EXPLANATION_CHARS: usize = 2000;

/// A date not after `today`.
fn date_not_after(check: &mut Violations, field: &str, text: &str, today: Date) -> Option<Date> {
    let date = check.date(field, text)?;
    if date > today {
        check.add(field, "must not be after today");
        return None;
    }
    Some(date)
}

/// An explanation: optional, required (1–2000) when `required`.
fn explanation(check: &mut Violations, field: &str, text: &str, required: bool) -> Option<String> {
    if required && text.trim().is_empty() {
        check.add(field, "is required when the reason is OTHER");
        return None;
    }
    check.optional_text(field, text, EXPLANATION_CHARS)
}

/// PlaceOrder, checked.
#[derive(Debug)]
pub struct PlaceOrder {
    /// Idempotency key.
    pub request_id: Uuid,
    /// The case.
    pub case_id: Uuid,
    /// Contact name.
    pub contact_name: String,
    /// Contact phone.
    pub contact_phone: String,
    /// Contact e-mail.
    pub contact_email: String,
    /// Assignment text.
    pub assignment: String,
    /// The employee.
    pub fodselsnummer: Fodselsnummer,
}

impl PlaceOrder {
    /// Parses `request`; synthetic fødselsnumre pass only under `synthetic`.
    pub fn parse(
        request: &v1::PlaceOrderRequest,
        synthetic: SyntheticPolicy,
    ) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let request_id = check.uuid("request_id", &request.request_id);
        let case_id = check.uuid("case_id", &request.case_id);
        let contact = check.contact_person("contact_person", request.contact_person.as_ref());
        let assignment = check.text(
            "assignment_description",
            &request.assignment_description,
            4000,
        );
        let fodselsnummer = check.fodselsnummer(
            "employee_fodselsnummer",
            &request.employee_fodselsnummer,
            synthetic,
        );
        check.finish_with(|| {
            let contact = contact?;
            Some(PlaceOrder {
                request_id: request_id?,
                case_id: case_id?,
                contact_name: contact.name,
                contact_phone: contact.phone_number,
                contact_email: contact.email,
                assignment: assignment?,
                fodselsnummer: fodselsnummer?,
            })
        })
    }
}

/// An order id or invoice id parameter.
pub fn id(field: &str, text: &str) -> Result<Uuid, ApiError> {
    let mut check = Violations::new();
    let id = check.uuid(field, text);
    check.finish_with(|| id)
}

/// ListOrders, checked.
#[derive(Debug)]
pub struct ListOrders {
    /// Statuses wanted.
    pub statuses: Vec<OrderStatus>,
    /// County, if any.
    pub county: Option<String>,
    /// The page.
    pub page: Page,
}

fn county(check: &mut Violations, text: &str) -> Option<Option<String>> {
    if text.is_empty() {
        return Some(None);
    }
    if text.len() == 2 && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Some(Some(text.to_owned()));
    }
    check.add(
        "county_code",
        "must be 2 digits (or empty for every county)",
    );
    None
}

impl TryFrom<v1::ListOrdersRequest> for ListOrders {
    type Error = ApiError;

    fn try_from(request: v1::ListOrdersRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let mut statuses = Vec::new();
        for (index, value) in request.statuses.iter().enumerate() {
            if let Some(status) =
                check.enumeration::<OrderStatus>(&format!("statuses[{index}]"), *value)
            {
                statuses.push(status);
            }
        }
        if request.statuses.is_empty() {
            statuses = LIVE.to_vec();
        }
        let county = county(&mut check, &request.county_code);
        // Bound to the contract's numbers, as tokens were before the statuses became codes.
        let numbers: Vec<i32> = statuses.iter().copied().map(i32::from).collect();
        let page = check.page(request.page_size, &request.page_token, &(&numbers, &county));
        check.finish_with(|| {
            Some(ListOrders {
                statuses,
                county: county?,
                page: page?,
            })
        })
    }
}

/// ListCasesAwaitingOrder, checked.
#[derive(Debug)]
pub struct ListCasesAwaitingOrder {
    /// County, if any.
    pub county: Option<String>,
    /// The page.
    pub page: Page,
}

impl TryFrom<v1::ListCasesAwaitingOrderRequest> for ListCasesAwaitingOrder {
    type Error = ApiError;

    fn try_from(request: v1::ListCasesAwaitingOrderRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let county = county(&mut check, &request.county_code);
        let page = check.page(request.page_size, &request.page_token, &county);
        check.finish_with(|| {
            Some(ListCasesAwaitingOrder {
                county: county?,
                page: page?,
            })
        })
    }
}

/// The supplier's answer, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Accepted.
    Accepted,
    /// Declined, with the code and the text.
    Declined(SupplierDeclineReason, String),
}

/// RecordSupplierResponse, checked.
#[derive(Debug)]
pub struct RecordSupplierResponse {
    /// The order.
    pub order_id: Uuid,
    /// The answer.
    pub answer: Answer,
    /// The day of the answer.
    pub responded_date: Date,
}

impl RecordSupplierResponse {
    /// Parses `request` against `today`.
    pub fn parse(
        request: &v1::RecordSupplierResponseRequest,
        today: Date,
    ) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let order_id = check.uuid("order_id", &request.order_id);
        let response = check.enumeration::<SupplierResponse>("response", request.response);
        let responded_date =
            date_not_after(&mut check, "responded_date", &request.responded_date, today);
        let answer = match response {
            Some(SupplierResponse::Accepted) => {
                if request.decline_reason_code != 0 {
                    check.add("decline_reason_code", "is not allowed with ACCEPTED");
                }
                if !request.decline_reason.trim().is_empty() {
                    check.add("decline_reason", "is only allowed with DECLINED");
                }
                Some(Answer::Accepted)
            }
            Some(SupplierResponse::Declined) => {
                let code = check.enumeration::<SupplierDeclineReason>(
                    "decline_reason_code",
                    request.decline_reason_code,
                );
                let text = explanation(
                    &mut check,
                    "decline_reason",
                    &request.decline_reason,
                    code == Some(SupplierDeclineReason::Other),
                );
                code.zip(text)
                    .map(|(code, text)| Answer::Declined(code, text))
            }
            _ => None,
        };
        check.finish_with(|| {
            Some(RecordSupplierResponse {
                order_id: order_id?,
                answer: answer?,
                responded_date: responded_date?,
            })
        })
    }
}

/// RecordExpertStarted, checked (the opened-date rule is checked with the order).
#[derive(Debug)]
pub struct RecordExpertStarted {
    /// The order.
    pub order_id: Uuid,
    /// Started on.
    pub started_date: Date,
    /// The expert, if given.
    pub expert_id: Option<Uuid>,
}

impl RecordExpertStarted {
    /// Parses `request` against `today`.
    pub fn parse(request: &v1::RecordExpertStartedRequest, today: Date) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let order_id = check.uuid("order_id", &request.order_id);
        let started_date = date_not_after(&mut check, "started_date", &request.started_date, today);
        let expert_id = if request.expert_id.is_empty() {
            Some(None)
        } else {
            check.uuid("expert_id", &request.expert_id).map(Some)
        };
        check.finish_with(|| {
            Some(RecordExpertStarted {
                order_id: order_id?,
                started_date: started_date?,
                expert_id: expert_id?,
            })
        })
    }
}

/// CompleteOrder, checked.
#[derive(Debug)]
pub struct CompleteOrder {
    /// The order.
    pub order_id: Uuid,
    /// Completed on.
    pub completed_date: Date,
    /// The report.
    pub report_document_id: Uuid,
}

impl CompleteOrder {
    /// Parses `request` against `today`.
    pub fn parse(request: &v1::CompleteOrderRequest, today: Date) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let order_id = check.uuid("order_id", &request.order_id);
        let completed_date =
            date_not_after(&mut check, "completed_date", &request.completed_date, today);
        let report = check.uuid("report_document_id", &request.report_document_id);
        check.finish_with(|| {
            Some(CompleteOrder {
                order_id: order_id?,
                completed_date: completed_date?,
                report_document_id: report?,
            })
        })
    }
}

/// CancelOrder, checked.
#[derive(Debug)]
pub struct CancelOrder {
    /// The order.
    pub order_id: Uuid,
    /// Why.
    pub reason: OrderCancellationReason,
    /// Explanation.
    pub explanation: String,
}

impl TryFrom<v1::CancelOrderRequest> for CancelOrder {
    type Error = ApiError;

    fn try_from(request: v1::CancelOrderRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let order_id = check.uuid("order_id", &request.order_id);
        let reason = check
            .enumeration::<OrderCancellationReason>("reason", request.reason)
            .and_then(|reason| match reason {
                OrderCancellationReason::FundsDenied
                | OrderCancellationReason::CaseLeftPilot
                | OrderCancellationReason::AgreementEnded => {
                    check.add("reason", "is set only by the service");
                    None
                }
                reason => Some(reason),
            });
        let text = explanation(
            &mut check,
            "explanation",
            &request.explanation,
            reason == Some(OrderCancellationReason::Other),
        );
        check.finish_with(|| {
            Some(CancelOrder {
                order_id: order_id?,
                reason: reason?,
                explanation: text?,
            })
        })
    }
}

/// AbortOrder, checked (the accepted-date rule is checked with the order).
#[derive(Debug)]
pub struct AbortOrder {
    /// The order.
    pub order_id: Uuid,
    /// Why.
    pub reason: OrderAbortReason,
    /// Explanation.
    pub explanation: String,
    /// Work stopped on.
    pub aborted_date: Date,
}

impl AbortOrder {
    /// Parses `request` against `today`.
    pub fn parse(request: &v1::AbortOrderRequest, today: Date) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let order_id = check.uuid("order_id", &request.order_id);
        let reason = check.enumeration::<OrderAbortReason>("reason", request.reason);
        let text = explanation(
            &mut check,
            "explanation",
            &request.explanation,
            reason == Some(OrderAbortReason::Other),
        );
        let aborted_date = date_not_after(&mut check, "aborted_date", &request.aborted_date, today);
        check.finish_with(|| {
            Some(AbortOrder {
                order_id: order_id?,
                reason: reason?,
                explanation: text?,
                aborted_date: aborted_date?,
            })
        })
    }
}

/// SubmitInvoice, checked.
#[derive(Debug)]
pub struct SubmitInvoice {
    /// Idempotency key.
    pub request_id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The supplier's number.
    pub invoice_number: String,
    /// Date.
    pub invoice_date: Date,
    /// Amount.
    pub amount_ore: i64,
    /// Document.
    pub document_id: Uuid,
}

impl SubmitInvoice {
    /// Parses `request` against `today`.
    pub fn parse(request: &v1::SubmitInvoiceRequest, today: Date) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let request_id = check.uuid("request_id", &request.request_id);
        let order_id = check.uuid("order_id", &request.order_id);
        let number = check.text("invoice_number", &request.invoice_number, 64);
        let invoice_date = date_not_after(&mut check, "invoice_date", &request.invoice_date, today);
        let amount = check
            .positive_money("amount_ore", request.amount_ore)
            .map(|amount| amount.ore());
        let document = check.uuid("invoice_document_id", &request.invoice_document_id);
        check.finish_with(|| {
            Some(SubmitInvoice {
                request_id: request_id?,
                order_id: order_id?,
                invoice_number: number?,
                invoice_date: invoice_date?,
                amount_ore: amount?,
                document_id: document?,
            })
        })
    }

    /// The request's content, to tell a retry from a reuse of its id.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.order_id,
            self.invoice_number,
            self.invoice_date,
            self.amount_ore,
            self.document_id
        )
    }
}

/// RejectInvoice, checked.
#[derive(Debug)]
pub struct RejectInvoice {
    /// The invoice.
    pub invoice_id: Uuid,
    /// Why.
    pub reason: InvoiceRejectionReason,
    /// Explanation.
    pub explanation: String,
}

impl TryFrom<v1::RejectInvoiceRequest> for RejectInvoice {
    type Error = ApiError;

    fn try_from(request: v1::RejectInvoiceRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let invoice_id = check.uuid("invoice_id", &request.invoice_id);
        let reason = check
            .enumeration::<InvoiceRejectionReason>("reason", request.reason)
            .and_then(|reason| {
                if reason == InvoiceRejectionReason::PriceAboveAgreement {
                    check.add("reason", "PRICE_ABOVE_AGREEMENT is set only by the service");
                    None
                } else {
                    Some(reason)
                }
            });
        let text = explanation(
            &mut check,
            "explanation",
            &request.explanation,
            reason == Some(InvoiceRejectionReason::Other),
        );
        check.finish_with(|| {
            Some(RejectInvoice {
                invoice_id: invoice_id?,
                reason: reason?,
                explanation: text?,
            })
        })
    }
}

/// Longest payment reference.
const PAYMENT_REFERENCE_CHARS: usize = 64;
/// Longest failure reason from the payment system.
const FAILURE_REASON_CHARS: usize = 500;

/// RecordInvoicePaymentOutcome, checked.
#[derive(Debug)]
pub struct RecordInvoicePaymentOutcome {
    /// The invoice.
    pub invoice_id: Uuid,
    /// The hand-over the outcome is for.
    pub attempt: i32,
    /// The outcome.
    pub outcome: crate::transitions::Outcome,
}

impl TryFrom<v1::RecordInvoicePaymentOutcomeRequest> for RecordInvoicePaymentOutcome {
    type Error = ApiError;

    fn try_from(request: v1::RecordInvoicePaymentOutcomeRequest) -> Result<Self, ApiError> {
        use crate::transitions::Outcome;
        use v1::record_invoice_payment_outcome_request::Outcome as Wire;
        let mut check = Violations::new();
        let invoice_id = check.uuid("invoice_id", &request.invoice_id);
        let attempt = check.positive("attempt", request.attempt);
        let outcome = match &request.outcome {
            None => {
                check.add("outcome", "paid or failed is required");
                None
            }
            Some(Wire::Paid(paid)) => check
                .text(
                    "paid.payment_reference",
                    &paid.payment_reference,
                    PAYMENT_REFERENCE_CHARS,
                )
                .map(|reference| Outcome::Paid { reference }),
            Some(Wire::Failed(failed)) => check
                .text("failed.reason", &failed.reason, FAILURE_REASON_CHARS)
                .map(|reason| Outcome::Failed { reason }),
        };
        check.finish_with(|| {
            Some(RecordInvoicePaymentOutcome {
                invoice_id: invoice_id?,
                attempt: attempt?,
                outcome: outcome?,
            })
        })
    }
}
