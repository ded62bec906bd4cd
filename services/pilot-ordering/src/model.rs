//! Orders and invoices as stored, and how they read on the wire. Enum columns hold codes
//! ([`crate::codes`], and `ekb_domain::CompetenceArea`'s for the competence area); a reason not
//! set is `None` and UNSPECIFIED on the wire.

use ekb_domain::{CompetenceArea, month_start, oslo_date};
use ekb_proto::{
    convert::{competence_area_to_wire, date_to_wire, timestamp_to_wire},
    v1,
};
use sqlx::types::Text;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{
    codes::{
        FundsDeniedReason, InvoicePaymentStatus, InvoiceRejectionReason, InvoiceStatus,
        OrderAbortReason, OrderCancellationReason, OrderExpiryReason, OrderStatus,
        SupplierDeclineReason, wire_or_unspecified,
    },
    selection::Agreement,
    store::Case,
};

/// Statuses in which an order is live (work may still be done under it).
pub const LIVE: [OrderStatus; 4] = [
    OrderStatus::FundsPending,
    OrderStatus::Placed,
    OrderStatus::Accepted,
    OrderStatus::Started,
];

/// An order row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Order {
    /// Id.
    pub order_id: Uuid,
    /// Listing sequence.
    pub sequence: i64,
    /// The case.
    pub case_id: Uuid,
    /// County.
    pub county_code: String,
    /// The case's competence area (an order is always under an agreement for it).
    pub competence_area: Text<CompetenceArea>,
    /// Agreement.
    pub agreement_id: Uuid,
    /// Agreement reference.
    pub agreement_reference: String,
    /// Supplier.
    pub supplier_organisation_number: String,
    /// Supplier name.
    pub supplier_name: String,
    /// Fixed price.
    pub price_ore: i64,
    /// Budget year.
    pub budget_year: i32,
    /// Chapter.
    pub account_chapter: i32,
    /// Post.
    pub account_post: i32,
    /// Where the order is.
    pub status: OrderStatus,
    /// Contact name.
    pub contact_name: String,
    /// Contact phone.
    pub contact_phone: String,
    /// Contact e-mail.
    pub contact_email: String,
    /// Assignment text.
    pub assignment_description: String,
    /// Employee pseudonym.
    pub employee_pseudonym: String,
    /// Follow-up of.
    pub previous_order_id: Option<Uuid>,
    /// Followed up by.
    pub next_order_id: Option<Uuid>,
    /// Budget's reservation.
    pub reservation_id: String,
    /// Case opened.
    pub case_opened_at: OffsetDateTime,
    /// Requested.
    pub requested_at: OffsetDateTime,
    /// Placed.
    pub placed_at: Option<OffsetDateTime>,
    /// Accepted (recorded).
    pub accepted_at: Option<OffsetDateTime>,
    /// Answered on.
    pub supplier_responded_date: Option<Date>,
    /// Decline text.
    pub decline_reason: String,
    /// Why the supplier declined.
    pub decline_reason_code: Option<SupplierDeclineReason>,
    /// Expert.
    pub expert_id: Option<Uuid>,
    /// Started on.
    pub started_date: Option<Date>,
    /// Completed on.
    pub completed_date: Option<Date>,
    /// Report.
    pub report_document_id: Option<Uuid>,
    /// Why it was cancelled.
    pub cancellation_reason: Option<OrderCancellationReason>,
    /// Budget's reason, when budget denied the funds.
    pub funds_denied_reason: Option<FundsDeniedReason>,
    /// Cancellation text.
    pub cancellation_explanation: String,
    /// Cancelled at.
    pub cancelled_at: Option<OffsetDateTime>,
    /// Why it was aborted.
    pub abort_reason: Option<OrderAbortReason>,
    /// Abort text.
    pub abort_explanation: String,
    /// Status before the abort.
    pub abort_previous_status: Option<OrderStatus>,
    /// Work stopped on.
    pub aborted_date: Option<Date>,
    /// Aborted at.
    pub aborted_at: Option<OffsetDateTime>,
    /// Last invoicing day.
    pub invoice_deadline_date: Option<Date>,
    /// Why it expired.
    pub expiry_reason: Option<OrderExpiryReason>,
    /// Expired at.
    pub expired_at: Option<OffsetDateTime>,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

/// The columns of [`Order`], for SELECTs.
pub const ORDER_COLUMNS: &str = "order_id, sequence, case_id, county_code, competence_area, \
    agreement_id, agreement_reference, supplier_organisation_number, supplier_name, price_ore, \
    budget_year, account_chapter, account_post, status, contact_name, contact_phone, contact_email, \
    assignment_description, employee_pseudonym, previous_order_id, next_order_id, reservation_id, \
    case_opened_at, requested_at, placed_at, accepted_at, supplier_responded_date, decline_reason, \
    decline_reason_code, expert_id, started_date, completed_date, report_document_id, \
    cancellation_reason, funds_denied_reason, cancellation_explanation, cancelled_at, abort_reason, \
    abort_explanation, abort_previous_status, aborted_date, aborted_at, invoice_deadline_date, \
    expiry_reason, expired_at, updated_at";

fn date(value: Option<Date>) -> String {
    value.map(date_to_wire).unwrap_or_default()
}

fn id(value: Option<Uuid>) -> String {
    value.map(|id| id.to_string()).unwrap_or_default()
}

/// What a new order asks of the supplier, and for whom: given to PlaceOrder, copied to a
/// follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Contact name.
    pub contact_name: String,
    /// Contact phone.
    pub contact_phone: String,
    /// Contact e-mail.
    pub contact_email: String,
    /// What the expert is asked to do.
    pub description: String,
    /// The employee's pseudonym.
    pub employee_pseudonym: String,
}

impl Order {
    /// A new order of `case` in its competence area `area` under `agreement`, requested at
    /// `now` (FUNDS_PENDING), charged to `account` in `now`'s year; `previous_order_id` when it
    /// follows up an order.
    pub fn requested(
        case: &Case,
        area: CompetenceArea,
        agreement: &Agreement,
        account: &v1::BudgetAccount,
        assignment: Assignment,
        previous_order_id: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Order {
        Order {
            order_id: Uuid::now_v7(),
            sequence: 0,
            case_id: case.case_id,
            county_code: case.county_code.clone(),
            competence_area: Text(area),
            agreement_id: agreement.agreement_id,
            agreement_reference: agreement.agreement_reference.clone(),
            supplier_organisation_number: agreement.supplier_organisation_number.clone(),
            supplier_name: agreement.supplier_name.clone(),
            price_ore: agreement.price_ore,
            budget_year: oslo_date(now).year(),
            account_chapter: account.chapter,
            account_post: account.post,
            status: OrderStatus::FundsPending,
            contact_name: assignment.contact_name,
            contact_phone: assignment.contact_phone,
            contact_email: assignment.contact_email,
            assignment_description: assignment.description,
            employee_pseudonym: assignment.employee_pseudonym,
            previous_order_id,
            next_order_id: None,
            reservation_id: String::new(),
            case_opened_at: case.opened_at,
            requested_at: now,
            placed_at: None,
            accepted_at: None,
            supplier_responded_date: None,
            decline_reason: String::new(),
            decline_reason_code: None,
            expert_id: None,
            started_date: None,
            completed_date: None,
            report_document_id: None,
            cancellation_reason: None,
            funds_denied_reason: None,
            cancellation_explanation: String::new(),
            cancelled_at: None,
            abort_reason: None,
            abort_explanation: String::new(),
            abort_previous_status: None,
            aborted_date: None,
            aborted_at: None,
            invoice_deadline_date: None,
            expiry_reason: None,
            expired_at: None,
            updated_at: now,
        }
    }

    /// What this order asks of the supplier, for a follow-up.
    pub fn assignment(&self) -> Assignment {
        Assignment {
            contact_name: self.contact_name.clone(),
            contact_phone: self.contact_phone.clone(),
            contact_email: self.contact_email.clone(),
            description: self.assignment_description.clone(),
            employee_pseudonym: self.employee_pseudonym.clone(),
        }
    }

    /// The month whose capacity the order uses: the month it was requested in (Oslo).
    pub fn usage_month(&self) -> Date {
        month_start(oslo_date(self.requested_at))
    }

    /// The account charged.
    pub fn account(&self) -> v1::BudgetAccount {
        v1::BudgetAccount {
            chapter: self.account_chapter,
            post: self.account_post,
        }
    }

    /// The contract's number of the order's competence area.
    pub fn wire_area(&self) -> i32 {
        competence_area_to_wire(self.competence_area.0) as i32
    }

    /// The contract's order; `full` adds the contact person and the assignment (GetOrder).
    pub fn to_wire(&self, invoices: &[Invoice], full: bool) -> v1::Order {
        v1::Order {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            competence_area: self.wire_area(),
            agreement_id: self.agreement_id.to_string(),
            agreement_reference: self.agreement_reference.clone(),
            supplier_organisation_number: self.supplier_organisation_number.clone(),
            supplier_name: self.supplier_name.clone(),
            price_ore: self.price_ore,
            budget_year: self.budget_year,
            account: Some(self.account()),
            status: self.status.into(),
            contact_person: full.then(|| v1::ContactPerson {
                name: self.contact_name.clone(),
                phone_number: self.contact_phone.clone(),
                email: self.contact_email.clone(),
            }),
            assignment_description: if full {
                self.assignment_description.clone()
            } else {
                String::new()
            },
            previous_order_id: id(self.previous_order_id),
            reservation_id: self.reservation_id.clone(),
            case_opened_at: Some(timestamp_to_wire(self.case_opened_at)),
            requested_at: Some(timestamp_to_wire(self.requested_at)),
            placed_at: self.placed_at.map(timestamp_to_wire),
            supplier_responded_date: date(self.supplier_responded_date),
            decline_reason: self.decline_reason.clone(),
            next_order_id: id(self.next_order_id),
            expert_id: id(self.expert_id),
            started_date: date(self.started_date),
            completed_date: date(self.completed_date),
            cancellation: self.cancelled_at.map(|at| v1::OrderCancellation {
                reason: wire_or_unspecified(self.cancellation_reason),
                funds_denied_reason: wire_or_unspecified(self.funds_denied_reason),
                explanation: self.cancellation_explanation.clone(),
                cancelled_at: Some(timestamp_to_wire(at)),
            }),
            invoices: invoices.iter().map(Invoice::to_wire).collect(),
            updated_at: Some(timestamp_to_wire(self.updated_at)),
            employee_pseudonym: self.employee_pseudonym.clone(),
            report_document_id: id(self.report_document_id),
            abort: self.aborted_at.map(|at| v1::OrderAbort {
                reason: wire_or_unspecified(self.abort_reason),
                explanation: self.abort_explanation.clone(),
                previous_status: wire_or_unspecified(self.abort_previous_status),
                aborted_date: date(self.aborted_date),
                aborted_at: Some(timestamp_to_wire(at)),
            }),
            invoice_deadline_date: date(self.invoice_deadline_date),
            expiry_reason: wire_or_unspecified(self.expiry_reason),
            expired_at: self.expired_at.map(timestamp_to_wire),
            decline_reason_code: wire_or_unspecified(self.decline_reason_code),
        }
    }

    /// OrderRequested for this order.
    pub fn requested_event(&self) -> v1::OrderRequested {
        v1::OrderRequested {
            order_id: self.order_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            competence_area: self.wire_area(),
            agreement_id: self.agreement_id.to_string(),
            supplier_organisation_number: self.supplier_organisation_number.clone(),
            amount_ore: self.price_ore,
            budget_year: self.budget_year,
            account: Some(self.account()),
            previous_order_id: id(self.previous_order_id),
            requested_at: Some(timestamp_to_wire(self.requested_at)),
        }
    }
}

/// An invoice row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invoice {
    /// Id.
    pub invoice_id: Uuid,
    /// Order.
    pub order_id: Uuid,
    /// Request id.
    pub request_id: Uuid,
    /// Request fingerprint.
    pub request_fingerprint: String,
    /// Supplier's number.
    pub invoice_number: String,
    /// Date.
    pub invoice_date: Date,
    /// Amount.
    pub amount_ore: i64,
    /// Document.
    pub invoice_document_id: Uuid,
    /// Where the invoice is.
    pub status: InvoiceStatus,
    /// Why it was rejected.
    pub rejection_reason: Option<InvoiceRejectionReason>,
    /// Rejection text.
    pub rejection_explanation: String,
    /// Registered.
    pub submitted_at: OffsetDateTime,
    /// Decided.
    pub decided_at: Option<OffsetDateTime>,
    /// Decider.
    pub decided_by: String,
    /// Attestant.
    pub attested_by: String,
    /// Attested.
    pub attested_at: Option<OffsetDateTime>,
    /// Where its payment is, once approved.
    pub payment_status: Option<InvoicePaymentStatus>,
    /// Payment reference.
    pub payment_reference: String,
    /// Outcome recorded.
    pub payment_recorded_at: Option<OffsetDateTime>,
    /// Hand-overs so far.
    pub payment_attempt: i32,
    /// Last handed to the payment system.
    pub payment_handed_at: Option<OffsetDateTime>,
}

/// The columns of [`Invoice`].
pub const INVOICE_COLUMNS: &str = "invoice_id, order_id, request_id, request_fingerprint, \
    invoice_number, invoice_date, amount_ore, invoice_document_id, status, rejection_reason, \
    rejection_explanation, submitted_at, decided_at, decided_by, attested_by, attested_at, \
    payment_status, payment_reference, payment_recorded_at, payment_attempt, payment_handed_at";

impl Invoice {
    /// The contract's invoice.
    pub fn to_wire(&self) -> v1::SupplierInvoice {
        v1::SupplierInvoice {
            invoice_id: self.invoice_id.to_string(),
            order_id: self.order_id.to_string(),
            invoice_number: self.invoice_number.clone(),
            invoice_date: date_to_wire(self.invoice_date),
            amount_ore: self.amount_ore,
            invoice_document_id: self.invoice_document_id.to_string(),
            status: self.status.into(),
            rejection_reason: wire_or_unspecified(self.rejection_reason),
            rejection_explanation: self.rejection_explanation.clone(),
            submitted_at: Some(timestamp_to_wire(self.submitted_at)),
            decided_at: self.decided_at.map(timestamp_to_wire),
            decided_by: self.decided_by.clone(),
            payment_reference: self.payment_reference.clone(),
            attested_by: self.attested_by.clone(),
            attested_at: self.attested_at.map(timestamp_to_wire),
            payment_status: wire_or_unspecified(self.payment_status),
            payment_recorded_at: self.payment_recorded_at.map(timestamp_to_wire),
        }
    }
}
