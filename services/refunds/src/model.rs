//! Refunds' records as stored (one struct per table row) and as the contract shows them. Enums
//! are the coded enums of `codes.rs`, stored under their short codes.

use ekb_domain::CompetenceArea;
use ekb_proto::{
    convert::{competence_area_to_wire, date_to_wire, gross_to_wire, timestamp_to_wire},
    v1,
};
use prost::Message as _;
use sqlx::types::Text;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use crate::codes::{
    ClaimStatus, ExtensionReason, FailureReason, GrantStatus, PaymentStatus, ReductionReason,
    RejectionReason, wire_or_unspecified,
};
use crate::commands::SubmitClaim;

fn ts(at: Option<OffsetDateTime>) -> Option<prost_types::Timestamp> {
    at.map(timestamp_to_wire)
}

fn day(date: Option<Date>) -> String {
    date.map(date_to_wire).unwrap_or_default()
}

/// A grant as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    /// Grant id.
    pub grant_id: Uuid,
    /// Application id.
    pub application_id: Uuid,
    /// Case id.
    pub case_id: Uuid,
    /// The employer.
    pub employer_organisation_number: String,
    /// County code.
    pub county_code: String,
    /// Keyed pseudonym of the employee.
    pub employee_pseudonym: String,
    /// Granted, gross øre.
    pub granted_amount_ore: i64,
    /// The grant date.
    pub grant_date: Date,
    /// The application's submission date.
    pub application_submitted_date: Option<Date>,
    /// Planned start.
    pub planned_start_date: Option<Date>,
    /// The case's opened date.
    pub case_opened_date: Option<Date>,
    /// The deadline GrantApproved set.
    pub original_deadline: Date,
    /// The current deadline.
    pub refund_deadline: Date,
    /// When the grant became final.
    pub granted_at: OffsetDateTime,
    /// The competence area granted for, if GrantApproved named one (stored as its code).
    pub competence_area: Option<Text<CompetenceArea>>,
    /// ProposedExpert, encoded.
    pub expert: Vec<u8>,
    /// Where the grant is.
    pub status: GrantStatus,
    /// When it expired.
    pub expired_at: Option<OffsetDateTime>,
    /// When it was cancelled.
    pub cancelled_at: Option<OffsetDateTime>,
    /// Whether a claim against it was rejected.
    pub had_rejected_claim: bool,
    /// When it ended (retention counts from here).
    pub ended_at: Option<OffsetDateTime>,
}

impl GrantRow {
    /// The last day a claim can be submitted at all.
    pub fn last_claim_date(&self, grace_days: i64) -> Date {
        self.refund_deadline + Duration::days(grace_days)
    }

    /// The contract's view, with its extensions.
    pub fn to_wire(&self, extensions: &[ExtensionRow], grace_days: i64) -> v1::ClaimableGrant {
        v1::ClaimableGrant {
            grant_id: self.grant_id.to_string(),
            application_id: self.application_id.to_string(),
            case_id: self.case_id.to_string(),
            employer_organisation_number: self.employer_organisation_number.clone(),
            county_code: self.county_code.clone(),
            refund_deadline_date: date_to_wire(self.refund_deadline),
            status: self.status.to_wire() as i32,
            granted_at: ts(Some(self.granted_at)),
            expired_at: ts(self.expired_at),
            granted_amount: Some(gross_to_wire(self.granted_amount_ore)),
            grant_date: date_to_wire(self.grant_date),
            application_submitted_date: day(self.application_submitted_date),
            planned_start_date: day(self.planned_start_date),
            expert: v1::ProposedExpert::decode(self.expert.as_slice()).ok(),
            competence_area: self
                .competence_area
                .map_or(0, |Text(area)| competence_area_to_wire(area) as i32),
            employee_pseudonym: self.employee_pseudonym.clone(),
            case_opened_date: day(self.case_opened_date),
            original_refund_deadline_date: date_to_wire(self.original_deadline),
            deadline_extensions: extensions.iter().map(ExtensionRow::to_wire).collect(),
            cancelled_at: ts(self.cancelled_at),
            last_claim_date: date_to_wire(self.last_claim_date(grace_days)),
        }
    }
}

/// One deadline extension as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExtensionRow {
    /// The deadline before.
    pub previous_deadline: Date,
    /// The deadline after.
    pub new_deadline: Date,
    /// Why.
    pub reason: ExtensionReason,
    /// Explanation (free text; erased by retention).
    pub explanation: String,
    /// Who.
    pub extended_by: String,
    /// When.
    pub extended_at: OffsetDateTime,
}

impl ExtensionRow {
    fn to_wire(&self) -> v1::RefundDeadlineExtension {
        v1::RefundDeadlineExtension {
            previous_deadline_date: date_to_wire(self.previous_deadline),
            new_deadline_date: date_to_wire(self.new_deadline),
            reason: self.reason.to_wire() as i32,
            explanation: self.explanation.clone(),
            extended_by: self.extended_by.clone(),
            extended_at: ts(Some(self.extended_at)),
        }
    }
}

/// A claim as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimRow {
    /// Claim id.
    pub claim_id: Uuid,
    /// Grant id.
    pub grant_id: Uuid,
    /// Case id.
    pub case_id: Uuid,
    /// The submitting request's id.
    pub request_id: Uuid,
    /// The submitting request's fingerprint (ekb_platform::idempotency).
    pub request_digest: String,
    /// The claiming employer.
    pub employer_organisation_number: String,
    /// County code.
    pub county_code: String,
    /// Invoice date.
    pub invoice_date: Date,
    /// Invoice reference.
    pub invoice_reference: String,
    /// Invoice document.
    pub invoice_document_id: Uuid,
    /// Expert's report document.
    pub expert_report_document_id: Uuid,
    /// Invoice total, gross øre.
    pub invoice_amount_ore: i64,
    /// min(invoice, granted).
    pub payable_amount_ore: i64,
    /// First day of the assistance.
    pub assistance_start_date: Date,
    /// Last day of the assistance.
    pub assistance_end_date: Date,
    /// When submitted.
    pub submitted_at: OffsetDateTime,
    /// Submission date (Oslo).
    pub submitted_date: Date,
    /// The deadline at submission.
    pub refund_deadline_date: Date,
    /// Submitted after the deadline.
    pub late: bool,
    /// Days after the deadline.
    pub days_late: i32,
    /// Where the claim is.
    pub status: ClaimStatus,
    /// Why, when rejected.
    pub rejection_reason: Option<RejectionReason>,
    /// Rejection explanation.
    pub rejection_explanation: String,
    /// When decided.
    pub decided_at: Option<OffsetDateTime>,
    /// Decider.
    pub decided_by: String,
    /// The confirmed recommendation's caseworker.
    pub recommended_by: String,
    /// Payout when approved.
    pub payout_amount_ore: Option<i64>,
    /// Why the payout is below the payable amount, if it is.
    pub payout_reduction_reason: Option<ReductionReason>,
    /// Reduction explanation.
    pub payout_reduction_explanation: String,
    /// Where the payment is, when approved.
    pub payment_status: Option<PaymentStatus>,
    /// Current payment attempt.
    pub payment_attempt: i32,
    /// Payment reference when paid.
    pub payment_reference: String,
    /// Paid date.
    pub paid_date: Option<Date>,
    /// Why the payment failed, when it did.
    pub failure_reason: Option<FailureReason>,
    /// Failure detail.
    pub failure_detail: String,
    /// When the current attempt was first handed over.
    pub payment_sent_at: Option<OffsetDateTime>,
    /// When the current attempt's outcome was recorded.
    pub payment_outcome_at: Option<OffsetDateTime>,
    /// When the current attempt was last handed over (the resend worker's mark; `None` until
    /// the first hand-over and again after a retry).
    pub payment_handed_at: Option<OffsetDateTime>,
    /// Row sequence (work-list order).
    pub sequence: i64,
}

impl ClaimRow {
    /// The claim `command` submits against `grant` at `now` (`today` in Oslo), its request
    /// fingerprinted as `request_digest`: SUBMITTED, payable at most the granted amount, and late
    /// by the days after the grant's refund deadline.
    pub fn submitted(
        grant: &GrantRow,
        command: SubmitClaim,
        request_digest: String,
        now: OffsetDateTime,
        today: Date,
    ) -> Self {
        let days_late = (today - grant.refund_deadline).whole_days().max(0);
        ClaimRow {
            claim_id: Uuid::now_v7(),
            grant_id: grant.grant_id,
            case_id: grant.case_id,
            request_id: command.request_id,
            request_digest,
            employer_organisation_number: command.employer.as_str().to_owned(),
            county_code: grant.county_code.clone(),
            invoice_date: command.invoice_date,
            invoice_reference: command.invoice_reference,
            invoice_document_id: command.invoice_document_id,
            expert_report_document_id: command.expert_report_document_id,
            invoice_amount_ore: command.invoice_amount_ore,
            payable_amount_ore: payable_amount(
                command.invoice_amount_ore,
                grant.granted_amount_ore,
            ),
            assistance_start_date: command.start,
            assistance_end_date: command.end,
            submitted_at: now,
            submitted_date: today,
            refund_deadline_date: grant.refund_deadline,
            late: days_late > 0,
            days_late: i32::try_from(days_late).unwrap_or(i32::MAX),
            status: ClaimStatus::Submitted,
            rejection_reason: None,
            rejection_explanation: String::new(),
            decided_at: None,
            decided_by: String::new(),
            recommended_by: String::new(),
            payout_amount_ore: None,
            payout_reduction_reason: None,
            payout_reduction_explanation: String::new(),
            payment_status: None,
            payment_attempt: 0,
            payment_reference: String::new(),
            paid_date: None,
            failure_reason: None,
            failure_detail: String::new(),
            payment_sent_at: None,
            payment_outcome_at: None,
            payment_handed_at: None,
            sequence: 0,
        }
    }

    /// Calendar days from the case's opening to the assistance's start (0 when unknown).
    pub fn days_from_case_opened(&self, grant: &GrantRow) -> i32 {
        grant
            .case_opened_date
            .map(|opened| (self.assistance_start_date - opened).whole_days().max(0))
            .and_then(|days| i32::try_from(days).ok())
            .unwrap_or(0)
    }

    /// The payment system's idempotency key of the current attempt.
    pub fn payment_key(&self) -> String {
        format!("{}/{}", self.claim_id, self.payment_attempt)
    }

    /// The contract's view, with its recommendations.
    pub fn to_wire(&self, recommendations: &[RecommendationRow]) -> v1::RefundClaim {
        let rejection = self.rejection_reason.map(|reason| v1::RefundRejection {
            reason: reason.to_wire() as i32,
            explanation: self.rejection_explanation.clone(),
        });
        let payment = self.payment_status.map(|status| v1::RefundPayment {
            status: status.to_wire() as i32,
            attempt: self.payment_attempt,
            payment_reference: self.payment_reference.clone(),
            paid_date: day(self.paid_date),
            failure_reason: wire_or_unspecified(self.failure_reason),
            failure_detail: self.failure_detail.clone(),
            sent_at: ts(self.payment_sent_at),
            outcome_at: ts(self.payment_outcome_at),
        });
        v1::RefundClaim {
            claim_id: self.claim_id.to_string(),
            grant_id: self.grant_id.to_string(),
            case_id: self.case_id.to_string(),
            employer_organisation_number: self.employer_organisation_number.clone(),
            invoice_date: date_to_wire(self.invoice_date),
            invoice_reference: self.invoice_reference.clone(),
            invoice_document_id: self.invoice_document_id.to_string(),
            expert_report_document_id: self.expert_report_document_id.to_string(),
            status: self.status.to_wire() as i32,
            rejection,
            submitted_at: ts(Some(self.submitted_at)),
            decided_at: ts(self.decided_at),
            decided_by: self.decided_by.clone(),
            invoice_amount: Some(gross_to_wire(self.invoice_amount_ore)),
            payable_amount: Some(gross_to_wire(self.payable_amount_ore)),
            payout_amount: self.payout_amount_ore.map(gross_to_wire),
            assistance_start_date: date_to_wire(self.assistance_start_date),
            assistance_end_date: date_to_wire(self.assistance_end_date),
            submitted_date: date_to_wire(self.submitted_date),
            refund_deadline_date: date_to_wire(self.refund_deadline_date),
            late: self.late,
            days_late: self.days_late,
            recommendations: recommendations
                .iter()
                .map(RecommendationRow::to_wire)
                .collect(),
            recommended_by: self.recommended_by.clone(),
            payout_reduction_reason: wire_or_unspecified(self.payout_reduction_reason),
            payout_reduction_explanation: self.payout_reduction_explanation.clone(),
            payment,
        }
    }

    /// The work list's summary (no free text).
    pub fn summary(&self, current_recommender: Option<&str>) -> v1::RefundClaimSummary {
        v1::RefundClaimSummary {
            claim_id: self.claim_id.to_string(),
            grant_id: self.grant_id.to_string(),
            case_id: self.case_id.to_string(),
            county_code: self.county_code.clone(),
            employer_organisation_number: self.employer_organisation_number.clone(),
            status: self.status.to_wire() as i32,
            late: self.late,
            submitted_at: ts(Some(self.submitted_at)),
            payable_amount: Some(gross_to_wire(self.payable_amount_ore)),
            payment_status: wire_or_unspecified(self.payment_status),
            recommended_by: current_recommender.unwrap_or_default().to_owned(),
        }
    }
}

/// One recommendation version as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecommendationRow {
    /// Its claim.
    pub claim_id: Uuid,
    /// Version, from 1.
    pub version: i32,
    /// Approve (else reject).
    pub approve: bool,
    /// Payout when approving.
    pub payout_ore: Option<i64>,
    /// Why the payout is reduced, when approving below the payable amount.
    pub reduction_reason: Option<ReductionReason>,
    /// Reduction explanation.
    pub reduction_explanation: String,
    /// Why, when rejecting.
    pub rejection_reason: Option<RejectionReason>,
    /// Rejection explanation.
    pub rejection_explanation: String,
    /// Note to the decider.
    pub note: String,
    /// Caseworker.
    pub recommended_by: String,
    /// When.
    pub recommended_at: OffsetDateTime,
    /// Decider who returned it.
    pub returned_by: String,
    /// When returned.
    pub returned_at: Option<OffsetDateTime>,
    /// Return note.
    pub return_note: String,
}

impl RecommendationRow {
    fn to_wire(&self) -> v1::RefundRecommendation {
        use v1::refund_recommendation::Recommendation;
        let recommendation = if self.approve {
            Recommendation::Approval(v1::RefundApprovalRecommendation {
                payout: self.payout_ore.map(gross_to_wire),
                reduction_reason: wire_or_unspecified(self.reduction_reason),
                reduction_explanation: self.reduction_explanation.clone(),
            })
        } else {
            Recommendation::Rejection(v1::RefundRejection {
                reason: wire_or_unspecified(self.rejection_reason),
                explanation: self.rejection_explanation.clone(),
            })
        };
        v1::RefundRecommendation {
            version: self.version,
            recommendation: Some(recommendation),
            note: self.note.clone(),
            recommended_by: self.recommended_by.clone(),
            recommended_at: ts(Some(self.recommended_at)),
            returned_by: self.returned_by.clone(),
            returned_at: ts(self.returned_at),
            return_note: self.return_note.clone(),
        }
    }
}

/// The payout rule: min(invoice amount, granted amount), gross øre.
pub fn payable_amount(invoice_ore: i64, granted_ore: i64) -> i64 {
    invoice_ore.min(granted_ore)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::payable_amount;

    proptest! {
        #[test]
        fn the_payable_amount_is_the_smaller_of_claimed_and_granted(
            invoice in 1i64..=1_000_000_000_000,
            granted in 1i64..=1_000_000_000_000,
        ) {
            let payable = payable_amount(invoice, granted);
            prop_assert!(payable <= invoice && payable <= granted);
            prop_assert!(payable == invoice || payable == granted);
            prop_assert!(payable > 0);
        }
    }
}
