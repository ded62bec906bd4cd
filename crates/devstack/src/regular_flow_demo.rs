//! The part of `make run` that walks one case through the regular grant flow to payment,
//! printing each step: a case routed REGULAR (the employer's own expert) → application → five
//! conditions assessed → a caseworker recommends a grant → another person decides → budget
//! reserves → the employer claims the refund → recommended and decided by two people → budget
//! disburses the payout and releases the rest → the payment system pays.
//!
//! It runs after the budget demo, which sets the year's appropriation when there is none. Data
//! is kept between runs, so each run adds one more case (they show in budget's usage); a kept
//! appropriation set too low by hand stops the walk at the funds request, and the walk then
//! says so instead of refusing to serve (see `demo_callers::stopped`).

use ekb_platform::clock::Clock;
use ekb_domain::Money;
use ekb_proto::convert::gross_to_wire;
use ekb_proto::v1::{
    self, ApplicationStatus, CommitmentKind, RefundClaimStatus, RefundPaymentStatus,
    applications_service_client::ApplicationsServiceClient,
    budget_service_client::BudgetServiceClient, refunds_service_client::RefundsServiceClient,
    routing_service_client::RoutingServiceClient,
};
use ekb_testkit::{
    fixtures::{EMPLOYER_ORGNR, LILLEHAMMER, SUPPLIER_ORGNR, case_facts},
    issuer::TestIssuer,
    services::ServiceProcess,
};
use tonic::transport::Channel;

use crate::{
    budget_demo::BUDGET,
    demo::{ROUTING, connect},
    demo_callers::{
        CASEWORKER, Callers, DECIDER, as_caller, open_case_step, oslo_today, refusal, settled_step,
        step, stopped, synthetic_fodselsnummer, wait_for, when_known,
    },
};

/// Applications' name (its catalog entry and binary).
pub const APPLICATIONS: &str = "applications";
/// Refunds' name (its catalog entry and binary).
pub const REFUNDS: &str = "refunds";
/// What the employer estimates, gross.
const ESTIMATED_ORE: i64 = 2_000_000;
/// What is granted, gross.
const GRANTED_ORE: i64 = 1_800_000;
/// What the expert's invoice came to, gross: below the grant, so the rest is released.
const INVOICED_ORE: i64 = 1_500_000;

/// The clients of the walk.
struct Clients {
    routing: RoutingServiceClient<Channel>,
    applications: ApplicationsServiceClient<Channel>,
    refunds: RefundsServiceClient<Channel>,
    budget: BudgetServiceClient<Channel>,
}

/// Walks one regular case to payment, printing each step. `fresh`: the databases were empty
/// when this run started (a walk that stops is then a fault, otherwise a note).
pub async fn run(
    services: &[ServiceProcess],
    issuer: &TestIssuer,
    fresh: bool,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let mut clients = Clients {
        routing: RoutingServiceClient::new(connect(services, ROUTING).await?),
        applications: ApplicationsServiceClient::new(connect(services, APPLICATIONS).await?),
        refunds: RefundsServiceClient::new(connect(services, REFUNDS).await?),
        budget: BudgetServiceClient::new(connect(services, BUDGET).await?),
    };
    println!(
        "\nRegular flow, one case to payment (caseworker {CASEWORKER} recommends, decider \
         {DECIDER} decides; tokens from the local issuer):"
    );
    match walk(&mut clients, &Callers::new(issuer), &oslo_today(clock)).await {
        Ok(()) => Ok(()),
        Err(error) => stopped("regular-flow", error, fresh),
    }
}

/// The walk itself; any step that does not go as the contract says ends it with an error.
async fn walk(clients: &mut Clients, callers: &Callers<'_>, today: &str) -> anyhow::Result<()> {
    let today = today.to_owned();
    let case = open_case_step(
        &mut clients.routing,
        case_facts(LILLEHAMMER, None, &today),
        "3405 Lillehammer, own expert",
    )
    .await?;
    let decision = case.decision.unwrap_or_default();
    anyhow::ensure!(
        decision.flow() == v1::Flow::Regular,
        "the case was routed {:?}, not REGULAR",
        decision.flow()
    );

    let employer = callers.employer(EMPLOYER_ORGNR);
    let request = application_request(&case.case_id, &today);
    let submitted = when_known(
        "applications to know the case (CaseRouted)",
        "SubmitApplication",
        || {
            let mut applications = clients.applications.clone();
            let request = as_caller(request.clone(), &employer);
            async move { applications.submit_application(request).await }
        },
        |response| response.application,
    )
    .await?;
    let application_id = submitted.application_id.clone();
    step(
        2,
        format!(
            "SubmitApplication (employer {EMPLOYER_ORGNR}): application {application_id} \
             {}, estimated {}, employee pseudonym {}…",
            status_name(submitted.status()),
            Money::from_ore(ESTIMATED_ORE),
            submitted.employee_pseudonym.get(..12).unwrap_or_default()
        ),
    );

    let caseworker = callers.caseworker();
    let decider = callers.decider();
    clients
        .applications
        .start_review(as_caller(
            v1::StartReviewRequest {
                application_id: application_id.clone(),
            },
            &caseworker,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("StartReview: {}", refusal(&status)))?;
    for condition in [
        v1::ApplicationCondition::EmploymentRelationship,
        v1::ApplicationCondition::FilledInJointly,
        v1::ApplicationCondition::AccommodationTried,
        v1::ApplicationCondition::SickLeaveHistory,
        v1::ApplicationCondition::ExpertCompetence,
    ] {
        clients
            .applications
            .assess_condition(as_caller(
                v1::AssessConditionRequest {
                    application_id: application_id.clone(),
                    condition: condition as i32,
                    met: true,
                    note: "Dokumentert i søknaden.".to_owned(),
                },
                &caseworker,
            ))
            .await
            .map_err(|status| anyhow::anyhow!("AssessCondition: {}", refusal(&status)))?;
    }
    let recommended = clients
        .applications
        .recommend_decision(as_caller(
            v1::RecommendDecisionRequest {
                application_id: application_id.clone(),
                recommendation: Some(v1::recommend_decision_request::Recommendation::Grant(
                    v1::GrantRecommendation {
                        amount: Some(gross_to_wire(GRANTED_ORE)),
                    },
                )),
                note: "Alle vilkår oppfylt.".to_owned(),
            },
            &caseworker,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("RecommendDecision: {}", refusal(&status)))?
        .into_inner()
        .application
        .unwrap_or_default();
    let version = recommended
        .recommendations
        .last()
        .map(|recommendation| recommendation.version)
        .unwrap_or_default();
    step(
        3,
        format!(
            "StartReview, AssessCondition ×5 (all met), RecommendDecision by {CASEWORKER}: \
             grant {} → {}",
            Money::from_ore(GRANTED_ORE),
            status_name(recommended.status())
        ),
    );

    let decided = clients
        .applications
        .decide_application(as_caller(
            v1::DecideApplicationRequest {
                application_id: application_id.clone(),
                recommendation_version: version,
                verdict: v1::DeciderVerdict::Confirm as i32,
                note: String::new(),
            },
            &decider,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("DecideApplication: {}", refusal(&status)))?
        .into_inner()
        .application
        .unwrap_or_default();
    let grant_id = decided.grant.clone().unwrap_or_default().grant_id;
    step(
        4,
        format!(
            "DecideApplication by {DECIDER} (CONFIRM): {}, grant {grant_id}; GrantRequested \
             to budget",
            status_name(decided.status())
        ),
    );

    let granted = wait_for("budget's answer to the grant (FundsReserved)", || {
        let mut applications = clients.applications.clone();
        let request = as_caller(
            v1::GetApplicationRequest {
                application_id: application_id.clone(),
                purpose: v1::AccessPurpose::CaseProcessing as i32,
            },
            &caseworker,
        );
        async move {
            let application = applications
                .get_application(request)
                .await
                .map_err(|status| anyhow::anyhow!("GetApplication: {}", refusal(&status)))?
                .into_inner()
                .application
                .unwrap_or_default();
            match application.status() {
                ApplicationStatus::GrantPendingFunds => Ok(None),
                ApplicationStatus::Granted => Ok(Some(application)),
                other => Err(anyhow::anyhow!(
                    "the application went {} instead of GRANTED ({:?})",
                    status_name(other),
                    application.rejection
                )),
            }
        }
    })
    .await?;
    let grant = granted.grant.unwrap_or_default();
    step(
        5,
        format!(
            "Budget reserved {} (FundsReserved) → GRANTED; GrantApproved to refunds, refund \
             deadline {}",
            Money::from_ore(grant.granted_amount.unwrap_or_default().ore),
            grant.refund_deadline_date
        ),
    );

    let claim_request = v1::SubmitRefundClaimRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        grant_id: grant_id.clone(),
        employer_organisation_number: EMPLOYER_ORGNR.to_owned(),
        invoice_date: today.clone(),
        invoice_reference: "F-2026-0042".to_owned(),
        invoice_document_id: uuid::Uuid::new_v4().to_string(),
        expert_report_document_id: uuid::Uuid::new_v4().to_string(),
        invoice_amount: Some(gross_to_wire(INVOICED_ORE)),
        assistance_start_date: today.clone(),
        assistance_end_date: today.clone(),
    };
    let claim = when_known(
        "refunds to know the grant (GrantApproved)",
        "SubmitRefundClaim",
        || {
            let mut refunds = clients.refunds.clone();
            let request = as_caller(claim_request.clone(), &employer);
            async move { refunds.submit_refund_claim(request).await }
        },
        |response| response.claim,
    )
    .await?;
    let claim_id = claim.claim_id.clone();
    step(
        6,
        format!(
            "SubmitRefundClaim (employer): claim {claim_id}, invoice {}, payable {}{}",
            Money::from_ore(INVOICED_ORE),
            Money::from_ore(claim.payable_amount.unwrap_or_default().ore),
            if claim.late { ", LATE" } else { ", on time" }
        ),
    );

    let recommended = clients
        .refunds
        .recommend_refund_decision(as_caller(
            v1::RecommendRefundDecisionRequest {
                claim_id: claim_id.clone(),
                recommendation: Some(
                    v1::recommend_refund_decision_request::Recommendation::Approval(
                        v1::RefundApprovalRecommendation {
                            payout: Some(gross_to_wire(INVOICED_ORE)),
                            reduction_reason: v1::PayoutReductionReason::Unspecified as i32,
                            reduction_explanation: String::new(),
                        },
                    ),
                ),
                note: String::new(),
            },
            &caseworker,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("RecommendRefundDecision: {}", refusal(&status)))?
        .into_inner()
        .claim
        .unwrap_or_default();
    let version = recommended
        .recommendations
        .last()
        .map(|recommendation| recommendation.version)
        .unwrap_or_default();
    let decided = clients
        .refunds
        .decide_refund_claim(as_caller(
            v1::DecideRefundClaimRequest {
                claim_id: claim_id.clone(),
                recommendation_version: version,
                verdict: v1::DeciderVerdict::Confirm as i32,
                note: String::new(),
            },
            &decider,
        ))
        .await
        .map_err(|status| anyhow::anyhow!("DecideRefundClaim: {}", refusal(&status)))?
        .into_inner()
        .claim
        .unwrap_or_default();
    anyhow::ensure!(
        decided.status() == RefundClaimStatus::Approved,
        "the claim is {:?}, not APPROVED",
        decided.status()
    );
    step(
        7,
        format!(
            "RecommendRefundDecision by {CASEWORKER}, DecideRefundClaim by {DECIDER}: APPROVED, \
             payout {}; RefundApproved to budget",
            Money::from_ore(decided.payout_amount.unwrap_or_default().ore)
        ),
    );

    settled_step(&clients.budget, 8, CommitmentKind::Grant, &grant_id).await?;

    let paid = wait_for("the payment system's answer (PaymentCompleted)", || {
        let mut refunds = clients.refunds.clone();
        let request = as_caller(
            v1::GetRefundClaimRequest {
                claim_id: claim_id.clone(),
                purpose: v1::AccessPurpose::CaseProcessing as i32,
            },
            &caseworker,
        );
        async move {
            let payment = refunds
                .get_refund_claim(request)
                .await
                .map_err(|status| anyhow::anyhow!("GetRefundClaim: {}", refusal(&status)))?
                .into_inner()
                .claim
                .unwrap_or_default()
                .payment
                .unwrap_or_default();
            Ok(matches!(
                payment.status(),
                RefundPaymentStatus::Paid | RefundPaymentStatus::Failed
            )
            .then_some(payment))
        }
    })
    .await?;
    step(
        9,
        match paid.status() {
            RefundPaymentStatus::Paid => format!(
                "Payment (recording fake payment system): PAID {}, reference {} \
                 (PaymentCompleted)",
                paid.paid_date, paid.payment_reference
            ),
            _ => format!(
                "Payment (recording fake payment system): FAILED {:?} (PaymentFailed; \
                 payment.fake_outcome is set to fail)",
                paid.failure_reason()
            ),
        },
    );
    Ok(())
}

/// `APPLICATION_STATUS_GRANTED` → `GRANTED`.
fn status_name(status: ApplicationStatus) -> &'static str {
    let name = status.as_str_name();
    name.strip_prefix("APPLICATION_STATUS_").unwrap_or(name)
}

/// The walk's application: the fixture's employer, an external expert, today's start.
fn application_request(case_id: &str, today: &str) -> v1::SubmitApplicationRequest {
    v1::SubmitApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        case_id: case_id.to_owned(),
        employee_fodselsnummer: synthetic_fodselsnummer(),
        employee_name: "Ola Testansatt".to_owned(),
        details: Some(v1::ApplicationDetails {
            employer_organisation_number: EMPLOYER_ORGNR.to_owned(),
            contact_person: Some(v1::ContactPerson {
                name: "Kari Kontakt".to_owned(),
                phone_number: "+4791234567".to_owned(),
                email: "kari.kontakt@example.no".to_owned(),
            }),
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
            planned_start_date: today.to_owned(),
            estimated_hours: 20,
            accommodation_tried: "Redusert stilling og endrede arbeidsoppgaver.".to_owned(),
            confirms_parties_agree: true,
            confirms_not_treatment_or_excluded_scheme: true,
            estimated_cost: Some(gross_to_wire(ESTIMATED_ORE)),
            nav_contact_name: String::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use ekb_testkit::catalog;

    use super::*;

    #[test]
    fn the_walk_s_services_are_in_the_catalog() {
        for name in [APPLICATIONS, REFUNDS] {
            assert!(catalog::entry(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_walk_grants_within_the_estimate_and_leaves_a_remainder() {
        let request = application_request("c", "2026-11-30");
        let estimated = request
            .details
            .and_then(|details| details.estimated_cost)
            .unwrap_or_default()
            .ore;
        assert!(INVOICED_ORE < GRANTED_ORE && GRANTED_ORE <= estimated);
        assert_eq!(status_name(ApplicationStatus::Granted), "GRANTED");
    }
}
