//! The requests a simulated regular case sends that the scenario library's builders do not
//! make as the case needs them: the library's walk has one employer and fixed dates, a
//! simulated case has its own employer, area, amounts and days. Each starts from the library's
//! builder where there is one and changes only what the case decides.

use ekb_proto::{convert::date_to_wire, v1};
use ekb_testkit::{
    fixtures::{self, EMPLOYER_ORGNR, SUPPLIER_ORGNR},
    scenarios::requests,
};
use time::Date;

use super::schedule::ClaimPlan;
use crate::plan::CasePlan;

/// The facts `case` is opened with on `today`: its employer in its municipality, choosing its
/// own expert or a framework area.
pub fn case_facts(case: &CasePlan, today: Date) -> v1::CaseFacts {
    v1::CaseFacts {
        employer_organisation_number: case.employer.clone(),
        ..fixtures::case_facts(&case.municipality, case.area, &date_to_wire(today))
    }
}

/// The expert's organisation: the library's supplier, unless that is the case's employer (an
/// expert may not be employed by the employer).
fn expert_organisation(employer: &str) -> &'static str {
    if employer == SUPPLIER_ORGNR {
        EMPLOYER_ORGNR
    } else {
        SUPPLIER_ORGNR
    }
}

/// `case`'s employer applies for `case_id` in `area`, the assistance planned from
/// `planned_start` and estimated at `estimated_ore` gross.
pub fn application(
    case: &CasePlan,
    case_id: &str,
    area: v1::CompetenceArea,
    planned_start: Date,
    estimated_ore: i64,
) -> v1::SubmitApplicationRequest {
    let mut request = requests::application(
        case_id,
        &case.employee,
        &date_to_wire(planned_start),
        estimated_ore,
    );
    if let Some(details) = request.details.as_mut() {
        details.employer_organisation_number = case.employer.clone();
        details.competence_area = area as i32;
        if let Some(expert) = details.expert.as_mut() {
            expert.expert_organisation_number = expert_organisation(&case.employer).to_owned();
        }
    }
    request
}

/// `condition` of application `application_id` assessed as not met.
pub fn condition_not_met(
    application_id: &str,
    condition: v1::ApplicationCondition,
) -> v1::AssessConditionRequest {
    v1::AssessConditionRequest {
        met: false,
        note: "Vilkåret er ikke dokumentert.".to_owned(),
        ..requests::condition_met(application_id, condition)
    }
}

/// A recommendation to reject application `application_id` because a condition is not met.
pub fn rejection_recommendation(application_id: &str) -> v1::RecommendDecisionRequest {
    v1::RecommendDecisionRequest {
        application_id: application_id.to_owned(),
        recommendation: Some(v1::recommend_decision_request::Recommendation::Rejection(
            v1::RejectionRecommendation {
                reason: v1::ApplicationRejectionReason::ConditionsNotMet as i32,
                explanation: "Vilkårene for tilskudd er ikke oppfylt.".to_owned(),
            },
        )),
        note: "Ett vilkår er ikke oppfylt.".to_owned(),
    }
}

/// The employer withdraws application `application_id`.
pub fn withdrawal(application_id: &str) -> v1::WithdrawApplicationRequest {
    v1::WithdrawApplicationRequest {
        application_id: application_id.to_owned(),
        reason: "Behovet er dekket på annen måte.".to_owned(),
    }
}

/// The decider makes the funds denial of application `application_id` final.
pub fn final_funds_rejection(application_id: &str) -> v1::RejectForLackOfFundsRequest {
    v1::RejectForLackOfFundsRequest {
        application_id: application_id.to_owned(),
        explanation: "Bevilgningen for året er brukt opp.".to_owned(),
    }
}

/// `case`'s employer claims `invoice_ore` against `grant_id` with the dates of `plan`.
pub fn claim(
    case: &CasePlan,
    grant_id: &str,
    invoice_ore: i64,
    plan: &ClaimPlan,
) -> v1::SubmitRefundClaimRequest {
    v1::SubmitRefundClaimRequest {
        employer_organisation_number: case.employer.clone(),
        invoice_date: date_to_wire(plan.invoice_date),
        invoice_reference: format!("F-{}-{}", plan.invoice_date.year(), case.number),
        assistance_start_date: date_to_wire(plan.assistance_start),
        assistance_end_date: date_to_wire(plan.assistance_end),
        ..requests::refund_claim(grant_id, invoice_ore, &date_to_wire(plan.invoice_date))
    }
}

/// The caseworker extends grant `grant_id`'s deadline to `new_deadline`: the assistance was
/// delayed.
pub fn extension(grant_id: &str, new_deadline: Date) -> v1::ExtendRefundDeadlineRequest {
    v1::ExtendRefundDeadlineRequest {
        grant_id: grant_id.to_owned(),
        new_deadline_date: date_to_wire(new_deadline),
        reason: v1::RefundDeadlineExtensionReason::AssistanceDelayed as i32,
        explanation: String::new(),
    }
}

/// The payment system paid attempt `attempt` of claim `claim_id` on `today`.
pub fn paid(claim_id: &str, attempt: i32, today: Date) -> v1::RecordPaymentOutcomeRequest {
    v1::RecordPaymentOutcomeRequest {
        claim_id: claim_id.to_owned(),
        attempt,
        outcome: Some(v1::record_payment_outcome_request::Outcome::Paid(
            v1::RefundPaymentPaid {
                payment_reference: format!("SIM-{claim_id}-{attempt}"),
                paid_date: date_to_wire(today),
            },
        )),
    }
}

/// The payment system gave up on attempt `attempt` of claim `claim_id`: no refund account.
pub fn failed(claim_id: &str, attempt: i32) -> v1::RecordPaymentOutcomeRequest {
    v1::RecordPaymentOutcomeRequest {
        claim_id: claim_id.to_owned(),
        attempt,
        outcome: Some(v1::record_payment_outcome_request::Outcome::Failed(
            v1::RefundPaymentFailure {
                reason: v1::RefundPaymentFailureReason::NoRefundAccount as i32,
                detail: "Arbeidsgiver har ikke registrert kontonummer for refusjon.".to_owned(),
            },
        )),
    }
}

/// The caseworker retries the failed payment of claim `claim_id`.
pub fn payment_retry(claim_id: &str) -> v1::RetryPaymentRequest {
    v1::RetryPaymentRequest {
        claim_id: claim_id.to_owned(),
        note: "Kontonummer er registrert.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use ekb_proto::v1::CompetenceArea;
    use time::macros::date;

    use super::*;
    use crate::{plan::Path, regular::RegularPath};

    fn case(employer: &str) -> CasePlan {
        CasePlan {
            number: 12,
            county: "46".to_owned(),
            municipality: "4601".to_owned(),
            opened_on: date!(2027 - 03 - 01),
            employee: "a synthetic employee".to_owned(),
            employer: employer.to_owned(),
            area: None,
            path: Path::Regular(RegularPath::Paid),
            seed: 1,
        }
    }

    #[test]
    fn the_case_names_employer_area_and_dates() {
        let case = case("889640782");
        let facts = case_facts(&case, date!(2027 - 03 - 01));
        assert_eq!(facts.employer_organisation_number, "889640782");
        assert_eq!(facts.municipality_number, "4601");
        assert_eq!(facts.case_date, "2027-03-01");
        let request = application(
            &case,
            "c",
            CompetenceArea::ConflictHandling,
            date!(2027 - 03 - 20),
            2_000_000,
        );
        let details = request.details.unwrap_or_default();
        assert_eq!(details.employer_organisation_number, "889640782");
        assert_eq!(
            details.competence_area,
            CompetenceArea::ConflictHandling as i32
        );
        assert_eq!(details.planned_start_date, "2027-03-20");
        assert_eq!(
            details
                .expert
                .unwrap_or_default()
                .expert_organisation_number,
            SUPPLIER_ORGNR
        );
    }

    #[test]
    fn the_expert_is_never_the_employer() {
        let request = application(
            &case(SUPPLIER_ORGNR),
            "c",
            CompetenceArea::ConflictHandling,
            date!(2027 - 03 - 20),
            2_000_000,
        );
        let expert = request
            .details
            .and_then(|details| details.expert)
            .unwrap_or_default();
        assert_ne!(expert.expert_organisation_number, SUPPLIER_ORGNR);
    }

    #[test]
    fn a_claim_carries_the_plans_dates() {
        let plan = ClaimPlan {
            assistance_start: date!(2027 - 04 - 01),
            assistance_end: date!(2027 - 05 - 01),
            invoice_date: date!(2027 - 05 - 02),
            claim_on: date!(2027 - 05 - 10),
            extension: None,
        };
        let request = claim(&case("889640782"), "g", 1_500_000, &plan);
        assert_eq!(request.employer_organisation_number, "889640782");
        assert_eq!(request.assistance_start_date, "2027-04-01");
        assert_eq!(request.assistance_end_date, "2027-05-01");
        assert_eq!(request.invoice_date, "2027-05-02");
        assert_eq!(request.invoice_amount.unwrap_or_default().ore, 1_500_000);
        assert_eq!(paid("x", 2, plan.claim_on).attempt, 2);
    }
}
