//! The events refunds publishes (refunds_events.proto), built from its rows: facts for budget,
//! applications and the evaluation. Keyed by case; the aggregate is the claim for claim and
//! payment events and the grant for grant events (ADR 0018). No free text, no documents.

use ekb_platform::messaging::EventSubject;
use ekb_proto::{
    convert::{competence_area_to_wire, date_to_wire, timestamp_to_wire},
    v1,
};
use sqlx::types::Text;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{
    codes::{ExtensionReason, FailureReason, RejectionReason, wire_or_unspecified},
    model::{ClaimRow, GrantRow},
};

/// The subject of an event about `aggregate` in `case`.
pub fn subject(case_id: Uuid, aggregate: Uuid) -> EventSubject {
    EventSubject {
        case_id: Some(case_id.to_string()),
        aggregate_id: aggregate.to_string(),
    }
}

/// A claim was submitted.
pub fn claim_submitted(claim: &ClaimRow, grant: &GrantRow) -> v1::RefundClaimSubmitted {
    v1::RefundClaimSubmitted {
        claim_id: claim.claim_id.to_string(),
        grant_id: grant.grant_id.to_string(),
        application_id: grant.application_id.to_string(),
        case_id: grant.case_id.to_string(),
        county_code: grant.county_code.clone(),
        invoice_amount_ore: claim.invoice_amount_ore,
        payable_amount_ore: claim.payable_amount_ore,
        invoice_date: date_to_wire(claim.invoice_date),
        submitted_at: Some(timestamp_to_wire(claim.submitted_at)),
        employer_organisation_number: claim.employer_organisation_number.clone(),
        assistance_start_date: date_to_wire(claim.assistance_start_date),
        assistance_end_date: date_to_wire(claim.assistance_end_date),
        case_opened_date: grant.case_opened_date.map(date_to_wire).unwrap_or_default(),
        days_from_case_opened_to_expert_start: claim.days_from_case_opened(grant),
        refund_deadline_date: date_to_wire(claim.refund_deadline_date),
        late: claim.late,
        days_late: claim.days_late,
        submitted_date: date_to_wire(claim.submitted_date),
    }
}

/// A claim was approved.
pub fn refund_approved(
    claim: &ClaimRow,
    grant: &GrantRow,
    at: OffsetDateTime,
) -> v1::RefundApproved {
    v1::RefundApproved {
        claim_id: claim.claim_id.to_string(),
        grant_id: grant.grant_id.to_string(),
        application_id: grant.application_id.to_string(),
        case_id: grant.case_id.to_string(),
        county_code: grant.county_code.clone(),
        invoice_amount_ore: claim.invoice_amount_ore,
        granted_amount_ore: grant.granted_amount_ore,
        payout_amount_ore: claim.payout_amount_ore.unwrap_or_default(),
        approved_at: Some(timestamp_to_wire(at)),
        payout_reduction_reason: wire_or_unspecified(claim.payout_reduction_reason),
        assistance_start_date: date_to_wire(claim.assistance_start_date),
        assistance_end_date: date_to_wire(claim.assistance_end_date),
        case_opened_date: grant.case_opened_date.map(date_to_wire).unwrap_or_default(),
        days_from_case_opened_to_expert_start: claim.days_from_case_opened(grant),
        late: claim.late,
        competence_area: grant
            .competence_area
            .map_or(0, |Text(area)| competence_area_to_wire(area) as i32),
    }
}

/// A claim was rejected; the grant is open again until `last_claim_date`.
pub fn refund_rejected(
    claim: &ClaimRow,
    grant: &GrantRow,
    reason: RejectionReason,
    at: OffsetDateTime,
    last_claim_date: Date,
) -> v1::RefundRejected {
    v1::RefundRejected {
        claim_id: claim.claim_id.to_string(),
        grant_id: grant.grant_id.to_string(),
        case_id: grant.case_id.to_string(),
        county_code: grant.county_code.clone(),
        reason: reason.to_wire() as i32,
        refund_deadline_date: date_to_wire(grant.refund_deadline),
        rejected_at: Some(timestamp_to_wire(at)),
        late: claim.late,
        last_claim_date: date_to_wire(last_claim_date),
    }
}

/// A grant expired.
pub fn grant_expired(grant: &GrantRow, at: OffsetDateTime) -> v1::GrantExpired {
    v1::GrantExpired {
        grant_id: grant.grant_id.to_string(),
        application_id: grant.application_id.to_string(),
        case_id: grant.case_id.to_string(),
        county_code: grant.county_code.clone(),
        granted_amount_ore: grant.granted_amount_ore,
        refund_deadline_date: date_to_wire(grant.refund_deadline),
        had_rejected_claim: grant.had_rejected_claim,
        expired_at: Some(timestamp_to_wire(at)),
        original_refund_deadline_date: date_to_wire(grant.original_deadline),
    }
}

/// A grant's deadline was moved.
pub fn deadline_extended(
    grant: &GrantRow,
    previous: Date,
    reason: ExtensionReason,
    at: OffsetDateTime,
) -> v1::RefundDeadlineExtended {
    v1::RefundDeadlineExtended {
        grant_id: grant.grant_id.to_string(),
        application_id: grant.application_id.to_string(),
        case_id: grant.case_id.to_string(),
        county_code: grant.county_code.clone(),
        previous_deadline_date: date_to_wire(previous),
        new_deadline_date: date_to_wire(grant.refund_deadline),
        original_refund_deadline_date: date_to_wire(grant.original_deadline),
        reason: reason.to_wire() as i32,
        extended_at: Some(timestamp_to_wire(at)),
    }
}

/// A payment was made.
pub fn payment_completed(claim: &ClaimRow, at: OffsetDateTime) -> v1::PaymentCompleted {
    v1::PaymentCompleted {
        claim_id: claim.claim_id.to_string(),
        grant_id: claim.grant_id.to_string(),
        case_id: claim.case_id.to_string(),
        county_code: claim.county_code.clone(),
        amount_ore: claim.payout_amount_ore.unwrap_or_default(),
        attempt: claim.payment_attempt,
        payment_reference: claim.payment_reference.clone(),
        paid_date: claim.paid_date.map(date_to_wire).unwrap_or_default(),
        recorded_at: Some(timestamp_to_wire(at)),
    }
}

/// A payment attempt failed.
pub fn payment_failed(
    claim: &ClaimRow,
    reason: FailureReason,
    at: OffsetDateTime,
) -> v1::PaymentFailed {
    v1::PaymentFailed {
        claim_id: claim.claim_id.to_string(),
        grant_id: claim.grant_id.to_string(),
        case_id: claim.case_id.to_string(),
        county_code: claim.county_code.clone(),
        amount_ore: claim.payout_amount_ore.unwrap_or_default(),
        attempt: claim.payment_attempt,
        reason: reason.to_wire() as i32,
        recorded_at: Some(timestamp_to_wire(at)),
    }
}
