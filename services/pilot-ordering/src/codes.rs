//! The enums pilot-ordering stores, under the one storage rule (ADR 0028): a short UPPER_SNAKE
//! code in a `TEXT` column whose CHECK constraint lists the codes (migration 102), converted by
//! [`ekb_domain::coded_enum!`]. Each type is named after the contract enum it is carried as on
//! the wire, with the same variants, so a rule reads the same in the record and in the contract;
//! a reason that is not set is `None` (NULL), never UNSPECIFIED.
//!
//! [`ekb_platform::stored_codes!`] lets sqlx read and write these types as their codes (a column, or an array
//! for `= ANY($n)`), and the request validator take them from contract numbers
//! (`Violations::enumeration`), so no number is converted by hand.

use ekb_proto::v1;

pub use ekb_platform::stored_codes::wire_or_unspecified;

ekb_domain::coded_enum! {
    /// Where an order is.
    OrderStatus => v1::OrderStatus {
        /// Requested; budget's answer is awaited.
        FundsPending = "FUNDS_PENDING",
        /// Funds reserved; sent to the supplier.
        Placed = "PLACED",
        /// The supplier accepted.
        Accepted = "ACCEPTED",
        /// The supplier declined.
        Declined = "DECLINED",
        /// The expert started.
        Started = "STARTED",
        /// Completed; invoicing follows.
        Completed = "COMPLETED",
        /// Cancelled.
        Cancelled = "CANCELLED",
        /// Aborted after acceptance.
        Aborted = "ABORTED",
        /// Expired.
        Expired = "EXPIRED",
    }
}

ekb_domain::coded_enum! {
    /// Why a supplier declined an order.
    SupplierDeclineReason => v1::SupplierDeclineReason {
        /// No expert free.
        NoCapacity = "NO_CAPACITY",
        /// No expert with the competence needed.
        NoQualifiedExpert = "NO_QUALIFIED_EXPERT",
        /// A conflict of interest.
        ConflictOfInterest = "CONFLICT_OF_INTEREST",
        /// Another reason, in the text.
        Other = "OTHER",
    }
}

ekb_domain::coded_enum! {
    /// Why an order was cancelled.
    OrderCancellationReason => v1::OrderCancellationReason {
        /// The employer no longer wants the assistance.
        EmployerWithdrew = "EMPLOYER_WITHDREW",
        /// The need went away.
        NoLongerNeeded = "NO_LONGER_NEEDED",
        /// Budget denied the funds.
        FundsDenied = "FUNDS_DENIED",
        /// Another reason, in the explanation.
        Other = "OTHER",
        /// The case left the pilot flow.
        CaseLeftPilot = "CASE_LEFT_PILOT",
        /// The agreement stopped being active before the supplier accepted.
        AgreementEnded = "AGREEMENT_ENDED",
    }
}

ekb_domain::coded_enum! {
    /// Why budget denied an order's funds, as budget said.
    FundsDeniedReason => v1::FundsDeniedReason {
        /// Less available than asked.
        InsufficientFunds = "INSUFFICIENT_FUNDS",
        /// No appropriation (not sent by budget today; kept as the contract keeps it).
        NoAppropriation = "NO_APPROPRIATION",
        /// The request cannot be honoured as stated.
        InvalidRequest = "INVALID_REQUEST",
    }
}

ekb_domain::coded_enum! {
    /// Why an accepted order was aborted.
    OrderAbortReason => v1::OrderAbortReason {
        /// The supplier cannot deliver after all.
        ExpertUnavailable = "EXPERT_UNAVAILABLE",
        /// The employer no longer wants the assistance.
        EmployerWithdrew = "EMPLOYER_WITHDREW",
        /// The employee no longer agrees.
        EmployeeWithdrew = "EMPLOYEE_WITHDREW",
        /// The supplier does not deliver as agreed.
        SupplierBreach = "SUPPLIER_BREACH",
        /// Another reason, in the explanation.
        Other = "OTHER",
    }
}

ekb_domain::coded_enum! {
    /// Why an order expired.
    OrderExpiryReason => v1::OrderExpiryReason {
        /// The supplier did not answer in time.
        SupplierDidNotAnswer = "SUPPLIER_DID_NOT_ANSWER",
        /// The expert did not start in time.
        NotStartedInTime = "NOT_STARTED_IN_TIME",
        /// Nothing was invoiced before the deadline.
        InvoiceDeadlinePassed = "INVOICE_DEADLINE_PASSED",
    }
}

ekb_domain::coded_enum! {
    /// Where an invoice is.
    InvoiceStatus => v1::InvoiceStatus {
        /// Registered; awaits attestation.
        Submitted = "SUBMITTED",
        /// Approved for payment.
        Approved = "APPROVED",
        /// Rejected.
        Rejected = "REJECTED",
        /// Attested; awaits approval by someone else.
        Attested = "ATTESTED",
    }
}

ekb_domain::coded_enum! {
    /// Why an invoice was rejected.
    InvoiceRejectionReason => v1::InvoiceRejectionReason {
        /// Not delivered as agreed.
        NotDeliveredAsAgreed = "NOT_DELIVERED_AS_AGREED",
        /// Formally wrong.
        InvoiceInvalid = "INVOICE_INVALID",
        /// Already invoiced.
        Duplicate = "DUPLICATE",
        /// Another reason, in the explanation.
        Other = "OTHER",
        /// Above the order's price.
        PriceAboveAgreement = "PRICE_ABOVE_AGREEMENT",
    }
}

ekb_domain::coded_enum! {
    /// Where an approved invoice's payment is.
    InvoicePaymentStatus => v1::InvoicePaymentStatus {
        /// Being handed to the payment system.
        Pending = "PENDING",
        /// Paid.
        Paid = "PAID",
        /// Refused by the payment system.
        Failed = "FAILED",
    }
}

ekb_platform::stored_codes!(
    OrderStatus,
    SupplierDeclineReason,
    OrderCancellationReason,
    FundsDeniedReason,
    OrderAbortReason,
    OrderExpiryReason,
    InvoiceStatus,
    InvoiceRejectionReason,
    InvoicePaymentStatus,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_value_has_a_code_and_unspecified_has_none() {
        for status in OrderStatus::ALL {
            assert_eq!(
                OrderStatus::from_wire(status.to_wire() as i32),
                Some(*status)
            );
            assert_eq!(OrderStatus::parse_code(status.code()), Some(*status));
        }
        // Every number the contract defines except UNSPECIFIED converts.
        let known = |max: i32, from: fn(i32) -> Option<()>| (1..=max).all(|n| from(n).is_some());
        assert!(known(9, |n| OrderStatus::from_wire(n).map(drop)));
        assert!(known(4, |n| SupplierDeclineReason::from_wire(n).map(drop)));
        assert!(known(6, |n| OrderCancellationReason::from_wire(n).map(drop)));
        assert!(known(3, |n| FundsDeniedReason::from_wire(n).map(drop)));
        assert!(known(5, |n| OrderAbortReason::from_wire(n).map(drop)));
        assert!(known(3, |n| OrderExpiryReason::from_wire(n).map(drop)));
        assert!(known(4, |n| InvoiceStatus::from_wire(n).map(drop)));
        assert!(known(5, |n| InvoiceRejectionReason::from_wire(n).map(drop)));
        assert!(known(3, |n| InvoicePaymentStatus::from_wire(n).map(drop)));
        assert_eq!(OrderStatus::try_from(0), Err(()));
        assert_eq!(
            wire_or_unspecified(Some(OrderAbortReason::SupplierBreach)),
            4
        );
        assert_eq!(wire_or_unspecified(None::<OrderAbortReason>), 0);
    }
}
