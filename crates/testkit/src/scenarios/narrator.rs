//! What a walk tells whoever runs it, step by step. The launcher's narrator prints each step as
//! a numbered line; a test's records the steps and, at the points where the contract promises
//! something more (only the order's supplier may answer it, the recommender may not decide),
//! calls the system to check it before the walk goes on. So a step carries the state the
//! services answered with, not text.

use std::future::Future;

use ekb_proto::v1;

/// One step of a walk, after it happened, with what the services answered.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// Routing opened `case` in `place` (both walks' first step).
    CaseOpened {
        /// The case with routing's decision.
        case: &'a v1::Case,
        /// Where the employer is and what expert it chose, in words.
        place: &'a str,
    },
    /// The employer submitted `application` (SUBMITTED).
    ApplicationSubmitted {
        /// The application as stored.
        application: &'a v1::Application,
    },
    /// The caseworker started the review, found all five conditions met and recommended a grant.
    GrantRecommended {
        /// The application, RECOMMENDED.
        application: &'a v1::Application,
    },
    /// The decider confirmed the recommendation; the funds are requested from budget.
    ApplicationDecided {
        /// The application, GRANT_PENDING_FUNDS with its grant.
        application: &'a v1::Application,
    },
    /// Budget reserved the funds: the application is GRANTED.
    Granted {
        /// The application, GRANTED.
        application: &'a v1::Application,
    },
    /// The employer claimed the refund.
    ClaimSubmitted {
        /// The claim as stored.
        claim: &'a v1::RefundClaim,
    },
    /// The caseworker recommended approving the claim.
    ClaimRecommended {
        /// The claim, RECOMMENDED.
        claim: &'a v1::RefundClaim,
    },
    /// The decider confirmed: the claim is APPROVED.
    ClaimApproved {
        /// The claim, APPROVED.
        claim: &'a v1::RefundClaim,
    },
    /// Budget disbursed the payout (or invoice) and released the rest: the reservation is
    /// SETTLED.
    Settled {
        /// Budget's reservation.
        reservation: &'a v1::Reservation,
    },
    /// The payment system answered for the refund (PAID, or FAILED when configured to fail).
    RefundPaid {
        /// The claim's payment.
        payment: &'a v1::RefundPayment,
    },
    /// The framework agreements covering the pilot walk's area, by rank (before its case).
    Suppliers {
        /// The agreements, best-ranked first.
        agreements: &'a [v1::Agreement],
        /// Their county.
        county: &'a str,
        /// The walk's competence area.
        area: v1::CompetenceArea,
        /// The day they were looked up for.
        date: &'a str,
    },
    /// The caseworker ordered: the best-ranked supplier with capacity left (FUNDS_PENDING).
    OrderRequested {
        /// The order.
        order: &'a v1::Order,
        /// The agreements covering its area, by rank.
        agreements: &'a [v1::Agreement],
    },
    /// Budget reserved the order's price: the order is PLACED, sent to the supplier.
    OrderPlaced {
        /// The order, PLACED.
        order: &'a v1::Order,
    },
    /// The supplier accepted the order.
    SupplierAccepted {
        /// The order, ACCEPTED.
        order: &'a v1::Order,
    },
    /// The expert started.
    ExpertStarted {
        /// The order, STARTED.
        order: &'a v1::Order,
    },
    /// The order was completed with the expert's report, on `date` (the day it started too).
    OrderCompleted {
        /// The order, COMPLETED.
        order: &'a v1::Order,
        /// The day.
        date: &'a str,
    },
    /// The supplier invoiced, below the order's price.
    InvoiceSubmitted {
        /// The invoice, SUBMITTED.
        invoice: &'a v1::SupplierInvoice,
        /// The supplier's organisation number.
        supplier: &'a str,
        /// The order's price.
        price_ore: i64,
    },
    /// The caseworker attested the invoice.
    InvoiceAttested {
        /// The invoice, ATTESTED.
        invoice: &'a v1::SupplierInvoice,
    },
    /// The decider approved the invoice.
    InvoiceApproved {
        /// The invoice, APPROVED.
        invoice: &'a v1::SupplierInvoice,
    },
    /// The payment system answered for the invoice (PAID, or FAILED when configured to fail).
    InvoicePaid {
        /// The invoice with its payment status.
        invoice: &'a v1::SupplierInvoice,
    },
}

impl Step<'_> {
    /// The step's name (its variant), for a test that records the order of steps.
    pub fn name(&self) -> &'static str {
        match self {
            Step::CaseOpened { .. } => "CaseOpened",
            Step::ApplicationSubmitted { .. } => "ApplicationSubmitted",
            Step::GrantRecommended { .. } => "GrantRecommended",
            Step::ApplicationDecided { .. } => "ApplicationDecided",
            Step::Granted { .. } => "Granted",
            Step::ClaimSubmitted { .. } => "ClaimSubmitted",
            Step::ClaimRecommended { .. } => "ClaimRecommended",
            Step::ClaimApproved { .. } => "ClaimApproved",
            Step::Settled { .. } => "Settled",
            Step::RefundPaid { .. } => "RefundPaid",
            Step::Suppliers { .. } => "Suppliers",
            Step::OrderRequested { .. } => "OrderRequested",
            Step::OrderPlaced { .. } => "OrderPlaced",
            Step::SupplierAccepted { .. } => "SupplierAccepted",
            Step::ExpertStarted { .. } => "ExpertStarted",
            Step::OrderCompleted { .. } => "OrderCompleted",
            Step::InvoiceSubmitted { .. } => "InvoiceSubmitted",
            Step::InvoiceAttested { .. } => "InvoiceAttested",
            Step::InvoiceApproved { .. } => "InvoiceApproved",
            Step::InvoicePaid { .. } => "InvoicePaid",
        }
    }
}

/// Hears a walk's steps as they happen.
pub trait Narrator {
    /// Hears `step`; an error ends the walk there.
    fn step(&mut self, step: Step<'_>) -> impl Future<Output = anyhow::Result<()>>;
}
