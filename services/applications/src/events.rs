//! The events applications publishes, built from the stored application. None carries the
//! fødselsnummer, the employee's or contact's name or any free text: the employee appears only
//! as the keyed pseudonym. Key = case id; aggregate = the grant id for grant events, the
//! application id for the application's own (ADR 0021 §13).

use ekb_platform::messaging::{EventSubject, UnitOfWork};
use ekb_proto::v1;

fn ore(amount: Option<&v1::Amount>) -> i64 {
    amount.map_or(0, |amount| amount.ore)
}

/// The subject of an event about the application itself.
pub fn of_application(application: &v1::Application) -> EventSubject {
    EventSubject {
        case_id: Some(application.case_id.clone()),
        aggregate_id: application.application_id.clone(),
    }
}

/// The subject of an event about the application's current grant.
pub fn of_current_grant(application: &v1::Application) -> EventSubject {
    EventSubject {
        case_id: Some(application.case_id.clone()),
        aggregate_id: grant_id(application),
    }
}

/// ApplicationSubmitted.
pub fn submitted(application: &v1::Application) -> v1::ApplicationSubmitted {
    let details = application.details.clone().unwrap_or_default();
    v1::ApplicationSubmitted {
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        employer_organisation_number: details.employer_organisation_number.clone(),
        county_code: application.county_code.clone(),
        employee_pseudonym: application.employee_pseudonym.clone(),
        competence_area: details.competence_area,
        expert_profession: details
            .expert
            .as_ref()
            .map_or(0, |expert| expert.profession),
        planned_start_date: details.planned_start_date.clone(),
        estimated_cost_ore: ore(details.estimated_cost.as_ref()),
        estimated_hours: details.estimated_hours,
        submitted_at: application.submitted_at,
        submitted_date: application.submitted_date.clone(),
        case_opened_date: application.case_opened_date.clone(),
    }
}

/// GrantRequested for `request` (identical on every resend).
pub fn grant_requested(
    application: &v1::Application,
    request: &v1::GrantFundsRequest,
) -> v1::GrantRequested {
    v1::GrantRequested {
        grant_id: request.grant_id.clone(),
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        employer_organisation_number: employer(application),
        county_code: application.county_code.clone(),
        amount_ore: ore(request.amount.as_ref()),
        budget_year: request.budget_year,
        account: request.account,
        requested_at: request.requested_at,
    }
}

fn employer(application: &v1::Application) -> String {
    application
        .details
        .as_ref()
        .map(|details| details.employer_organisation_number.clone())
        .unwrap_or_default()
}

/// GrantApproved: what refunds needs to check a claim.
pub fn grant_approved(application: &v1::Application) -> v1::GrantApproved {
    let grant = application.grant.clone().unwrap_or_default();
    let details = application.details.clone().unwrap_or_default();
    let rate = grant.applied_max_rate.clone().unwrap_or_default();
    v1::GrantApproved {
        grant_id: grant.grant_id.clone(),
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        employer_organisation_number: details.employer_organisation_number.clone(),
        county_code: application.county_code.clone(),
        employee_pseudonym: application.employee_pseudonym.clone(),
        granted_amount_ore: ore(grant.granted_amount.as_ref()),
        budget_year: grant.budget_year,
        account: grant.account,
        reservation_id: grant.reservation_id.clone(),
        refund_deadline_date: grant.refund_deadline_date.clone(),
        granted_at: grant.granted_at,
        grant_date: grant.grant_date.clone(),
        submitted_date: application.submitted_date.clone(),
        planned_start_date: details.planned_start_date.clone(),
        expert: details.expert.clone(),
        competence_area: details.competence_area,
        case_opened_date: application.case_opened_date.clone(),
        max_rate_ore: ore(rate.rate.as_ref()),
        max_rate_valid_from_date: rate.valid_from_date.clone(),
        max_rate_source: rate.source.clone(),
        decision_date: application
            .decision
            .as_ref()
            .map(|decision| decision.decision_date.clone())
            .unwrap_or_default(),
    }
}

fn grant_id(application: &v1::Application) -> String {
    application
        .grant
        .as_ref()
        .map(|grant| grant.grant_id.clone())
        .unwrap_or_default()
}

/// ApplicationRejected (final rejections only).
pub fn rejected(application: &v1::Application) -> v1::ApplicationRejected {
    let rejection = application.rejection.clone().unwrap_or_default();
    v1::ApplicationRejected {
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        grant_id: grant_id(application),
        county_code: application.county_code.clone(),
        reason: rejection.reason,
        funds_denied_reason: rejection.funds_denied_reason,
        rejected_at: rejection.rejected_at,
    }
}

/// ApplicationWithdrawn, with the current grant id if any.
pub fn withdrawn(
    application: &v1::Application,
    previous: v1::ApplicationStatus,
) -> v1::ApplicationWithdrawn {
    v1::ApplicationWithdrawn {
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        grant_id: grant_id(application),
        county_code: application.county_code.clone(),
        previous_status: previous as i32,
        withdrawn_at: application
            .withdrawal
            .as_ref()
            .and_then(|withdrawal| withdrawal.withdrawn_at),
    }
}

/// GrantFundsDenied for the current (denied) funds request.
pub fn funds_denied(application: &v1::Application) -> v1::GrantFundsDenied {
    let grant = application.grant.clone().unwrap_or_default();
    let request = grant.funds_requests.last().cloned().unwrap_or_default();
    let denials = grant
        .funds_requests
        .iter()
        .filter(|request| request.outcome == v1::FundsRequestOutcome::Denied as i32)
        .count();
    v1::GrantFundsDenied {
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        grant_id: request.grant_id.clone(),
        county_code: application.county_code.clone(),
        reason: request.denied_reason,
        requested_ore: ore(request.amount.as_ref()),
        available_ore: ore(request.available_when_denied.as_ref()),
        budget_year: request.budget_year,
        denials: i32::try_from(denials).unwrap_or(i32::MAX),
        denied_at: request.answered_at,
    }
}

/// GrantCancellationRequested.
pub fn cancellation_requested(application: &v1::Application) -> v1::GrantCancellationRequested {
    let cancellation = application
        .grant
        .as_ref()
        .and_then(|grant| grant.cancellation.clone())
        .unwrap_or_default();
    v1::GrantCancellationRequested {
        grant_id: grant_id(application),
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        county_code: application.county_code.clone(),
        reason: cancellation.reason,
        requested_by_employer: cancellation.requested_by_employer,
        requested_at: cancellation.requested_at,
    }
}

/// GrantCancelled (budget releases on it).
pub fn cancelled(application: &v1::Application) -> v1::GrantCancelled {
    let grant = application.grant.clone().unwrap_or_default();
    let cancellation = grant.cancellation.clone().unwrap_or_default();
    v1::GrantCancelled {
        grant_id: grant.grant_id.clone(),
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        county_code: application.county_code.clone(),
        granted_amount_ore: ore(grant.granted_amount.as_ref()),
        reason: cancellation.reason,
        cancelled_at: cancellation.cancelled_at,
        requested_by_employer: cancellation.requested_by_employer,
        requested_at: cancellation.requested_at,
    }
}

/// Publishes the application's own event `event`.
pub async fn publish_application<M: prost::Message + prost::Name>(
    work: &mut UnitOfWork,
    application: &v1::Application,
    event: &M,
) -> Result<(), sqlx::Error> {
    work.publish(&of_application(application), event).await?;
    Ok(())
}

/// Publishes `event` about the application's current grant.
pub async fn publish_grant<M: prost::Message + prost::Name>(
    work: &mut UnitOfWork,
    application: &v1::Application,
    event: &M,
) -> Result<(), sqlx::Error> {
    work.publish(&of_current_grant(application), event).await?;
    Ok(())
}
