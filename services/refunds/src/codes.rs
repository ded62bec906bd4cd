//! The enums refunds stores, each under a short UPPER_SNAKE code in a TEXT column whose CHECK
//! constraint lists the codes (ADR 0028; migration 102). [`ekb_domain::coded_enum!`] writes each
//! enum's code and its contract value once; `ekb_platform::stored_codes!` lets the rows read and write the
//! enums themselves and the request validator take them from contract numbers, so no contract
//! name or string constant is stored or compared. A reason a caller may leave out
//! (a payout reduction, say) is an `Option` and NULL when absent: the contract's UNSPECIFIED is
//! never stored. The competence area is the domain's [`ekb_domain::CompetenceArea`], stored as
//! its own code.

use ekb_proto::v1;

pub use ekb_platform::stored_codes::wire_or_unspecified;

ekb_domain::coded_enum! {
    /// Where a claimable grant is.
    GrantStatus => v1::ClaimableGrantStatus {
        /// Open for a claim.
        Active = "ACTIVE",
        /// A claim awaits a decision.
        ClaimPending = "CLAIM_PENDING",
        /// Paid out.
        Settled = "SETTLED",
        /// Expired unclaimed.
        Expired = "EXPIRED",
        /// Cancelled unused.
        Cancelled = "CANCELLED",
    }
}

ekb_domain::coded_enum! {
    /// Where a refund claim is.
    ClaimStatus => v1::RefundClaimStatus {
        /// Awaits a recommendation.
        Submitted = "SUBMITTED",
        /// Awaits a decider.
        Recommended = "RECOMMENDED",
        /// Approved.
        Approved = "APPROVED",
        /// Rejected.
        Rejected = "REJECTED",
    }
}

ekb_domain::coded_enum! {
    /// Where an approved claim's payment is.
    PaymentStatus => v1::RefundPaymentStatus {
        /// Handed over, outcome awaited.
        Pending = "PENDING",
        /// Paid.
        Paid = "PAID",
        /// Failed.
        Failed = "FAILED",
    }
}

ekb_domain::coded_enum! {
    /// Why a refund deadline was extended.
    ExtensionReason => v1::RefundDeadlineExtensionReason {
        /// The assistance was delayed.
        AssistanceDelayed = "ASSISTANCE_DELAYED",
        /// The expert's report was delayed.
        ReportDelayed = "REPORT_DELAYED",
        /// The invoice was delayed.
        InvoiceDelayed = "INVOICE_DELAYED",
        /// Another reason, explained.
        Other = "OTHER",
    }
}

ekb_domain::coded_enum! {
    /// Why a claim is (recommended to be) rejected.
    RejectionReason => v1::RefundRejectionReason {
        /// The expert's report does not do.
        ExpertReportInadequate = "EXPERT_REPORT_INADEQUATE",
        /// The invoice is not valid.
        InvoiceInvalid = "INVOICE_INVALID",
        /// The expert is not the one granted for.
        ExpertNotAsGranted = "EXPERT_NOT_AS_GRANTED",
        /// The invoice is for treatment.
        TreatmentInvoiced = "TREATMENT_INVOICED",
        /// Another reason, explained.
        Other = "OTHER",
        /// Submitted after the deadline.
        LateClaim = "LATE_CLAIM",
        /// The assistance started before the grant.
        StartedBeforeGrant = "STARTED_BEFORE_GRANT",
        /// The measure was not carried out.
        MeasureNotCarriedOut = "MEASURE_NOT_CARRIED_OUT",
    }
}

ekb_domain::coded_enum! {
    /// Why a payout is below the payable amount.
    ReductionReason => v1::PayoutReductionReason {
        /// Costs not documented.
        CostsNotDocumented = "COSTS_NOT_DOCUMENTED",
        /// Costs the grant does not cover.
        CostsNotCovered = "COSTS_NOT_COVERED",
        /// Assistance beyond what was granted.
        BeyondGrantedAssistance = "BEYOND_GRANTED_ASSISTANCE",
        /// Another reason, explained.
        Other = "OTHER",
    }
}

ekb_domain::coded_enum! {
    /// Why a payment failed.
    FailureReason => v1::RefundPaymentFailureReason {
        /// The employer has no refund account.
        NoRefundAccount = "NO_REFUND_ACCOUNT",
        /// The account is not valid.
        AccountInvalid = "ACCOUNT_INVALID",
        /// The payment system refused the payment.
        Rejected = "REJECTED",
        /// Another reason.
        Other = "OTHER",
    }
}

ekb_platform::stored_codes!(
    GrantStatus,
    ClaimStatus,
    PaymentStatus,
    ExtensionReason,
    RejectionReason,
    ReductionReason,
    FailureReason,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code and contract value converts back, UNSPECIFIED is no value, and each code is
    /// the contract name without its enum's prefix (what migration 102 rewrote stored names to).
    #[test]
    fn every_code_is_the_contract_name_without_its_prefix_and_round_trips() {
        macro_rules! check {
            ($name:ident, $prefix:literal) => {
                for value in $name::ALL.iter().copied() {
                    assert_eq!($name::parse_code(value.code()), Some(value));
                    assert_eq!($name::from_wire(value.to_wire() as i32), Some(value));
                    assert_eq!(
                        value.to_wire().as_str_name(),
                        format!("{}{}", $prefix, value.code())
                    );
                }
                assert_eq!($name::from_wire(0), None);
            };
        }
        check!(GrantStatus, "CLAIMABLE_GRANT_STATUS_");
        check!(ClaimStatus, "REFUND_CLAIM_STATUS_");
        check!(PaymentStatus, "REFUND_PAYMENT_STATUS_");
        check!(ExtensionReason, "REFUND_DEADLINE_EXTENSION_REASON_");
        check!(RejectionReason, "REFUND_REJECTION_REASON_");
        check!(ReductionReason, "PAYOUT_REDUCTION_REASON_");
        check!(FailureReason, "REFUND_PAYMENT_FAILURE_REASON_");
        assert_eq!(
            GrantStatus::parse_code("CLAIMABLE_GRANT_STATUS_ACTIVE"),
            None
        );
        assert_eq!(GrantStatus::try_from(0), Err(()));
        assert_eq!(wire_or_unspecified(Some(ReductionReason::Other)), 4);
        assert_eq!(wire_or_unspecified(None::<ReductionReason>), 0);
        // The competence area is the domain's, stored under its own code: the same rule.
        for area in ekb_domain::CompetenceArea::ALL {
            assert_eq!(
                ekb_proto::convert::competence_area_to_wire(area).as_str_name(),
                format!("COMPETENCE_AREA_{}", area.code())
            );
        }
    }
}
