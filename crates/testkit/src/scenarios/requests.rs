//! Valid requests to the flow services (applications, refunds, pilot-ordering, budget), built
//! one way for the walks and the tests; a test that needs an invalid one starts from these and
//! breaks it in one way. Routing's and the registry's are in [`crate::fixtures`].
//!
//! Dates are arguments: under `make run` "today" is the service clock's (which may be
//! simulated), in a test the real one.

use ekb_proto::{convert::gross_to_wire, v1};

use crate::fixtures::{EMPLOYER_ORGNR, SUPPLIER_ORGNR};

/// The five conditions a caseworker assesses, in the contract's order.
pub const CONDITIONS: [v1::ApplicationCondition; 5] = [
    v1::ApplicationCondition::EmploymentRelationship,
    v1::ApplicationCondition::FilledInJointly,
    v1::ApplicationCondition::AccommodationTried,
    v1::ApplicationCondition::SickLeaveHistory,
    v1::ApplicationCondition::ExpertCompetence,
];

/// The employer's contact person.
pub fn contact_person() -> v1::ContactPerson {
    v1::ContactPerson {
        name: "Kari Kontakt".to_owned(),
        phone_number: "+4791234567".to_owned(),
        email: "kari.kontakt@example.no".to_owned(),
    }
}

/// A complete application for `case_id` by [`EMPLOYER_ORGNR`] about the employee with
/// `fodselsnummer`: an external physiotherapist from `start_date`, estimated at `estimated_ore`
/// gross.
pub fn application(
    case_id: &str,
    fodselsnummer: &str,
    start_date: &str,
    estimated_ore: i64,
) -> v1::SubmitApplicationRequest {
    v1::SubmitApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        case_id: case_id.to_owned(),
        employee_fodselsnummer: fodselsnummer.to_owned(),
        employee_name: "Ola Testansatt".to_owned(),
        details: Some(v1::ApplicationDetails {
            employer_organisation_number: EMPLOYER_ORGNR.to_owned(),
            contact_person: Some(contact_person()),
            competence_area: v1::CompetenceArea::SickLeaveFollowUp as i32,
            expert: Some(v1::ProposedExpert {
                name: "Eva Ekspert".to_owned(),
                profession: v1::Profession::Physiotherapist as i32,
                authorisation: Some(v1::Authorisation {
                    kind: v1::AuthorisationKind::HealthPersonnel as i32,
                    reference: "9100001".to_owned(),
                }),
                expert_organisation_number: SUPPLIER_ORGNR.to_owned(),
                employer_attests_expert_not_employed: true,
            }),
            problem_description: "Lang sykefraværshistorikk; trenger vurdering av \
                                  tilrettelegging på arbeidsplassen."
                .to_owned(),
            planned_start_date: start_date.to_owned(),
            estimated_hours: 20,
            accommodation_tried: "Redusert stilling og endrede arbeidsoppgaver.".to_owned(),
            confirms_parties_agree: true,
            confirms_not_treatment_or_excluded_scheme: true,
            estimated_cost: Some(gross_to_wire(estimated_ore)),
            nav_contact_name: String::new(),
        }),
    }
}

/// Reading application `application_id` for case processing.
pub fn get_application(application_id: &str) -> v1::GetApplicationRequest {
    v1::GetApplicationRequest {
        application_id: application_id.to_owned(),
        purpose: v1::AccessPurpose::CaseProcessing as i32,
    }
}

/// Starting the review of application `application_id`.
pub fn start_review(application_id: &str) -> v1::StartReviewRequest {
    v1::StartReviewRequest {
        application_id: application_id.to_owned(),
    }
}

/// `condition` of application `application_id` assessed as met.
pub fn condition_met(
    application_id: &str,
    condition: v1::ApplicationCondition,
) -> v1::AssessConditionRequest {
    v1::AssessConditionRequest {
        application_id: application_id.to_owned(),
        condition: condition as i32,
        met: true,
        note: "Dokumentert i søknaden.".to_owned(),
    }
}

/// A recommendation to grant `amount_ore` gross on application `application_id`.
pub fn grant_recommendation(application_id: &str, amount_ore: i64) -> v1::RecommendDecisionRequest {
    v1::RecommendDecisionRequest {
        application_id: application_id.to_owned(),
        recommendation: Some(v1::recommend_decision_request::Recommendation::Grant(
            v1::GrantRecommendation {
                amount: Some(gross_to_wire(amount_ore)),
            },
        )),
        note: "Alle vilkår oppfylt.".to_owned(),
    }
}

/// The version of an application's current (last) recommendation among `recommendations`.
pub fn current_version(recommendations: &[v1::ApplicationRecommendation]) -> i32 {
    recommendations
        .last()
        .map(|recommendation| recommendation.version)
        .unwrap_or_default()
}

/// A decision confirming recommendation `version` of application `application_id`.
pub fn confirmation(application_id: &str, version: i32) -> v1::DecideApplicationRequest {
    v1::DecideApplicationRequest {
        application_id: application_id.to_owned(),
        recommendation_version: version,
        verdict: v1::DeciderVerdict::Confirm as i32,
        note: String::new(),
    }
}

/// The employer's request to cancel the grant of application `application_id` early.
pub fn employer_cancellation(application_id: &str) -> v1::CancelGrantRequest {
    v1::CancelGrantRequest {
        application_id: application_id.to_owned(),
        reason: v1::GrantCancellationReason::EmployerRequest as i32,
        explanation: String::new(),
    }
}

/// A refund claim by [`EMPLOYER_ORGNR`] against `grant_id` for an invoice of `invoice_ore`
/// gross, invoiced and the assistance given on `date`.
pub fn refund_claim(grant_id: &str, invoice_ore: i64, date: &str) -> v1::SubmitRefundClaimRequest {
    v1::SubmitRefundClaimRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        grant_id: grant_id.to_owned(),
        employer_organisation_number: EMPLOYER_ORGNR.to_owned(),
        invoice_date: date.to_owned(),
        invoice_reference: "F-2026-0042".to_owned(),
        invoice_document_id: uuid::Uuid::new_v4().to_string(),
        expert_report_document_id: uuid::Uuid::new_v4().to_string(),
        invoice_amount: Some(gross_to_wire(invoice_ore)),
        assistance_start_date: date.to_owned(),
        assistance_end_date: date.to_owned(),
    }
}

/// Reading claim `claim_id` for case processing.
pub fn get_claim(claim_id: &str) -> v1::GetRefundClaimRequest {
    v1::GetRefundClaimRequest {
        claim_id: claim_id.to_owned(),
        purpose: v1::AccessPurpose::CaseProcessing as i32,
    }
}

/// Reading refunds' view of grant `grant_id` for case processing.
pub fn get_claimable_grant(grant_id: &str) -> v1::GetClaimableGrantRequest {
    v1::GetClaimableGrantRequest {
        grant_id: grant_id.to_owned(),
        purpose: v1::AccessPurpose::CaseProcessing as i32,
    }
}

/// A recommendation to approve claim `claim_id` with a payout of `payout_ore`, unreduced.
pub fn refund_approval(claim_id: &str, payout_ore: i64) -> v1::RecommendRefundDecisionRequest {
    v1::RecommendRefundDecisionRequest {
        claim_id: claim_id.to_owned(),
        recommendation: Some(
            v1::recommend_refund_decision_request::Recommendation::Approval(
                v1::RefundApprovalRecommendation {
                    payout: Some(gross_to_wire(payout_ore)),
                    reduction_reason: v1::PayoutReductionReason::Unspecified as i32,
                    reduction_explanation: String::new(),
                },
            ),
        ),
        note: String::new(),
    }
}

/// A recommendation to reject claim `claim_id` for `reason`.
pub fn refund_rejection(
    claim_id: &str,
    reason: v1::RefundRejectionReason,
) -> v1::RecommendRefundDecisionRequest {
    v1::RecommendRefundDecisionRequest {
        claim_id: claim_id.to_owned(),
        recommendation: Some(
            v1::recommend_refund_decision_request::Recommendation::Rejection(v1::RefundRejection {
                reason: reason as i32,
                explanation: String::new(),
            }),
        ),
        note: String::new(),
    }
}

/// The decider's `verdict` on the current recommendation of `claim`, with `note`.
pub fn refund_verdict(
    claim: &v1::RefundClaim,
    verdict: v1::DeciderVerdict,
    note: &str,
) -> v1::DecideRefundClaimRequest {
    v1::DecideRefundClaimRequest {
        claim_id: claim.claim_id.clone(),
        recommendation_version: claim
            .recommendations
            .last()
            .map(|recommendation| recommendation.version)
            .unwrap_or_default(),
        verdict: verdict as i32,
        note: note.to_owned(),
    }
}

/// An order for `case_id` about the employee with `fodselsnummer`, for the assignment
/// `description`.
pub fn order(case_id: &str, fodselsnummer: &str, description: &str) -> v1::PlaceOrderRequest {
    v1::PlaceOrderRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        case_id: case_id.to_owned(),
        contact_person: Some(contact_person()),
        assignment_description: description.to_owned(),
        employee_fodselsnummer: fodselsnummer.to_owned(),
    }
}

/// Reading order `order_id`.
pub fn get_order(order_id: &str) -> v1::GetOrderRequest {
    v1::GetOrderRequest {
        order_id: order_id.to_owned(),
    }
}

/// The supplier's `response` to order `order_id` on `date` (a decline for lack of capacity).
pub fn supplier_answer(
    order_id: &str,
    response: v1::SupplierResponse,
    date: &str,
) -> v1::RecordSupplierResponseRequest {
    let declined = response == v1::SupplierResponse::Declined;
    v1::RecordSupplierResponseRequest {
        order_id: order_id.to_owned(),
        response: response as i32,
        responded_date: date.to_owned(),
        decline_reason: String::new(),
        decline_reason_code: if declined {
            v1::SupplierDeclineReason::NoCapacity as i32
        } else {
            v1::SupplierDeclineReason::Unspecified as i32
        },
    }
}

/// The expert started on order `order_id` on `date`.
pub fn expert_started(order_id: &str, date: &str) -> v1::RecordExpertStartedRequest {
    v1::RecordExpertStartedRequest {
        order_id: order_id.to_owned(),
        started_date: date.to_owned(),
        expert_id: String::new(),
    }
}

/// Order `order_id` completed on `date`, with the expert's report.
pub fn order_completed(order_id: &str, date: &str) -> v1::CompleteOrderRequest {
    v1::CompleteOrderRequest {
        order_id: order_id.to_owned(),
        completed_date: date.to_owned(),
        report_document_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// Order `order_id` cancelled by NAV before any work, as no longer needed.
pub fn order_cancellation(order_id: &str) -> v1::CancelOrderRequest {
    v1::CancelOrderRequest {
        order_id: order_id.to_owned(),
        reason: v1::OrderCancellationReason::NoLongerNeeded as i32,
        explanation: String::new(),
    }
}

/// The supplier's invoice `number` for order `order_id`, of `amount_ore`, dated `date`.
pub fn invoice(
    order_id: &str,
    number: &str,
    date: &str,
    amount_ore: i64,
) -> v1::SubmitInvoiceRequest {
    v1::SubmitInvoiceRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        order_id: order_id.to_owned(),
        invoice_number: number.to_owned(),
        invoice_date: date.to_owned(),
        amount_ore,
        invoice_document_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// Attesting invoice `invoice_id` (first pair of eyes).
pub fn attestation(invoice_id: &str) -> v1::AttestInvoiceRequest {
    v1::AttestInvoiceRequest {
        invoice_id: invoice_id.to_owned(),
    }
}

/// Approving invoice `invoice_id` (second pair of eyes).
pub fn approval(invoice_id: &str) -> v1::ApproveInvoiceRequest {
    v1::ApproveInvoiceRequest {
        invoice_id: invoice_id.to_owned(),
    }
}

/// Reading budget's reservation for commitment `id` of `kind`.
pub fn get_reservation(kind: v1::CommitmentKind, id: &str) -> v1::GetReservationRequest {
    v1::GetReservationRequest {
        commitment: Some(v1::Commitment {
            kind: kind as i32,
            commitment_id: id.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_fresh_request_ids_and_the_given_dates() {
        let first = application("case", "fnr", "2027-06-01", 2_000_000);
        let second = application("case", "fnr", "2027-06-01", 2_000_000);
        assert_ne!(first.request_id, second.request_id);
        let details = first.details.unwrap_or_default();
        assert_eq!(details.planned_start_date, "2027-06-01");
        assert_eq!(details.estimated_cost.unwrap_or_default().ore, 2_000_000);
        let claim = refund_claim("grant", 1_500_000, "2027-06-02");
        assert_eq!(
            (
                claim.invoice_date.as_str(),
                claim.assistance_end_date.as_str()
            ),
            ("2027-06-02", "2027-06-02")
        );
        assert_eq!(
            supplier_answer("o", v1::SupplierResponse::Declined, "2027-06-01").decline_reason_code,
            v1::SupplierDeclineReason::NoCapacity as i32
        );
    }
}
