//! The ApplicationsService RPCs, as plain async functions over [`ApplicationsApi`]: each parses
//! its request, makes its change and answers. A change is a pure method of [`Stored`]
//! (`decisions`), applied by [`apply_change`] with `change::apply`: the application loaded
//! locked, the decision, the document saved, its events published and its audit entry (the
//! caller's, added to the decision's effects) recorded in one unit of work, so an event, its
//! change and its audit entry exist together or not at all. Reads of personal data
//! are recorded before the response leaves. No request field is logged or put in a span.

use std::sync::Arc;

use ekb_domain::oslo_date;
use ekb_platform::{
    ApiError, Violations,
    audit::{self, AuditActor},
    auth::{Caller, Organisations},
    change::{self, Audit, Decision, Effects},
    grpc::Call,
    messaging::{Db, UnitOfWork},
};
use ekb_proto::v1::{
    self, AccessPurpose, ApplicationStatus as Status, AuditEntryKind,
    applications_service_server::ApplicationsService,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    Applications, CASEWORKER, DECIDER, EMPLOYER, READER,
    codes::ApplicationStatus,
    commands::{self, Cancel, Decide, NOTE, Recommend, Submit},
    config::Policy,
    decisions::FundsTerms,
    events,
    model::{self, day, stamp},
    store::{self, Stored},
};

ekb_platform::grpc_handlers! {
    Applications => ApplicationsApi: ApplicationsService {
        submit_application(v1::SubmitApplicationRequest) -> v1::SubmitApplicationResponse = submit_application;
        get_application(v1::GetApplicationRequest) -> v1::GetApplicationResponse = get_application;
        list_applications_for_case(v1::ListApplicationsForCaseRequest) -> v1::ListApplicationsForCaseResponse = list_applications_for_case;
        list_applications_for_employer(v1::ListApplicationsForEmployerRequest) -> v1::ListApplicationsForEmployerResponse = list_applications_for_employer;
        list_applications(v1::ListApplicationsRequest) -> v1::ListApplicationsResponse = list_applications;
        start_review(v1::StartReviewRequest) -> v1::StartReviewResponse = start_review;
        assess_condition(v1::AssessConditionRequest) -> v1::AssessConditionResponse = assess_condition;
        recommend_decision(v1::RecommendDecisionRequest) -> v1::RecommendDecisionResponse = recommend_decision;
        decide_application(v1::DecideApplicationRequest) -> v1::DecideApplicationResponse = decide_application;
        request_funds_again(v1::RequestFundsAgainRequest) -> v1::RequestFundsAgainResponse = request_funds_again;
        reject_for_lack_of_funds(v1::RejectForLackOfFundsRequest) -> v1::RejectForLackOfFundsResponse = reject_for_lack_of_funds;
        withdraw_application(v1::WithdrawApplicationRequest) -> v1::WithdrawApplicationResponse = withdraw_application;
        cancel_grant(v1::CancelGrantRequest) -> v1::CancelGrantResponse = cancel_grant;
        list_audit_entries(v1::ListAuditEntriesRequest) -> v1::ListAuditEntriesResponse = list_audit_entries;
    }
}

/// What applications' handlers work with.
#[derive(Debug, Clone)]
pub struct ApplicationsApi {
    db: Db,
    policy: Arc<Policy>,
}

impl ApplicationsApi {
    /// Handlers over the service's database (which tells time by the service clock), applying
    /// `policy`.
    pub fn new(db: Db, policy: Arc<Policy>) -> Self {
        ApplicationsApi { db, policy }
    }
}

/// Whether the caller acts as an employer's representative (the portal), not as NAV.
fn is_employer(caller: &Caller) -> bool {
    caller.has_role(EMPLOYER) && !caller.has_any_role(&[CASEWORKER, DECIDER, READER])
}

/// Whether authentication is off (a local run): every check beyond the role is open.
fn is_local(caller: &Caller) -> bool {
    matches!(caller.organisations, Organisations::Unrestricted) && caller.roles.is_empty()
}

fn actor(caller: &Caller, employer: &str) -> AuditActor {
    if is_employer(caller) {
        AuditActor::organisation(caller, employer)
    } else {
        AuditActor::nav_employee(caller)
    }
}

fn purpose_of(caller: &Caller) -> AccessPurpose {
    if is_employer(caller) {
        AccessPurpose::EmployerSelfService
    } else {
        AccessPurpose::CaseProcessing
    }
}

/// Records the submission of `stored` by `caller` at `at`, in `work` (a new application, so
/// not a change of a stored one through `change::apply`).
async fn record_submission(
    work: &mut UnitOfWork,
    stored: &Stored,
    caller: &Caller,
    at: OffsetDateTime,
) -> Result<(), ApiError> {
    let actor = actor(caller, stored.employer());
    stored
        .audit(
            work.db(),
            AuditEntryKind::Change,
            "SubmitApplication",
            &actor,
            purpose_of(caller),
            at,
        )
        .await?;
    Ok(())
}

/// How a change is audited: [`Effects::audited`] (kind DECISION: a decision on the
/// application) or [`Effects::audited_change`] (kind CHANGE: submissions, reviews,
/// assessments, recommendations, withdrawals), as the contract records each RPC.
type Auditing = fn(Effects, Audit) -> Effects;

/// Makes the change `decide` (a method of [`Stored`], see `decisions`) to application `id` by
/// `caller`, audited by `auditing` as `action` by the caller, with `change::apply`; returns the
/// application as it now is (as it was, for a repeat, which commits nothing). NOT_FOUND if the
/// application is unknown, PERMISSION_DENIED for an employer caller not representing its
/// employer.
async fn apply_change<D>(
    api: &ApplicationsApi,
    caller: &Caller,
    id: Uuid,
    auditing: Auditing,
    action: &'static str,
    decide: D,
) -> Result<v1::Application, ApiError>
where
    D: FnOnce(&mut Stored, OffsetDateTime) -> Result<Decision, ApiError> + Send,
{
    let applied = change::apply(&api.db, &id, |stored: &mut Stored, now| {
        if is_employer(caller) {
            caller.require_represents(stored.employer())?;
        }
        Ok(match decide(stored, now)? {
            Decision::Changed(effects) => {
                let audit = Audit {
                    case_id: stored.case_id(),
                    subject_id: stored.id(),
                    action,
                    actor: actor(caller, stored.employer()),
                    purpose: purpose_of(caller),
                };
                auditing(effects, audit).changed()
            }
            Decision::Unchanged => Decision::Unchanged,
        })
    })
    .await?;
    Ok(applied.record.application)
}

/// The request's fingerprint, with the fødselsnummer replaced by its pseudonym first.
fn digest(request: &v1::SubmitApplicationRequest, pseudonym: &str) -> String {
    let mut masked = request.clone();
    masked.employee_fodselsnummer = pseudonym.to_owned();
    ekb_platform::idempotency::fingerprint(&masked)
}

async fn submit_application(
    api: &ApplicationsApi,
    call: Call,
    request: v1::SubmitApplicationRequest,
) -> Result<v1::SubmitApplicationResponse, ApiError> {
    let now = api.db.clock().now();
    let command = Submit::parse(&request, api.policy.synthetic, oslo_date(now))?;
    let employer = command.details.employer_organisation_number.clone();
    call.caller.require_represents(&employer)?;
    let pseudonym = command.fodselsnummer.pseudonym(&api.policy.pseudonym_key);
    let request_digest = digest(&request, &pseudonym);
    let mut work = api.db.begin().await?;
    // Copies of this request wait for the first; other requests for the case see its answer.
    ekb_platform::idempotency::serialise(
        &mut work,
        &[
            format!("SubmitApplication:{}", command.request_id),
            format!("case:{}", command.case_id),
        ],
    )
    .await?;
    if let Some((existing, earlier_digest)) =
        store::find_by_request(work.db(), command.request_id).await?
    {
        if earlier_digest != request_digest {
            return Err(ApiError::AlreadyExists(
                "request_id was used for a different application".to_owned(),
            ));
        }
        return Ok(v1::SubmitApplicationResponse {
            application: Some(existing.application),
            created: false,
        });
    }
    let case = store::find_case(work.db(), command.case_id)
        .await?
        .ok_or_else(|| ApiError::not_arrived_yet(format!("case {}", command.case_id)))?;
    if case.flow != v1::Flow::Regular {
        return Err(ApiError::refused(
            "CASE_IN_PILOT_FLOW",
            format!("case {} is in the pilot flow", case.case_id),
        ));
    }
    if case.employer_organisation_number != employer {
        return Err(ApiError::refused(
            "EMPLOYER_NOT_CASE_EMPLOYER",
            format!("the employer is not case {}'s employer", case.case_id),
        ));
    }
    if store::has_live(work.db(), case.case_id).await? {
        return Err(ApiError::refused(
            "APPLICATION_EXISTS_FOR_CASE",
            format!("case {} has a live application", case.case_id),
        ));
    }
    let application = v1::Application {
        application_id: Uuid::now_v7().to_string(),
        case_id: case.case_id.to_string(),
        county_code: case.county_code.clone(),
        employee_pseudonym: pseudonym,
        details: Some(command.details),
        status: Status::Submitted as i32,
        submitted_at: stamp(now),
        submitted_date: day(oslo_date(now)),
        updated_at: stamp(now),
        employee_name: command.employee_name,
        case_opened_date: day(oslo_date(case.opened_at)),
        ..Default::default()
    };
    let stored = Stored {
        application,
        fodselsnummer_sealed: Some(api.policy.cipher.seal_fodselsnummer(&command.fodselsnummer)),
        resend_at: None,
        resend_interval_seconds: None,
        status_changed_at: now,
        sequence: 0,
    };
    store::insert(work.db(), &stored, command.request_id, &request_digest).await?;
    events::publish_application(
        &mut work,
        &stored.application,
        &events::submitted(&stored.application),
    )
    .await?;
    record_submission(&mut work, &stored, &call.caller, now).await?;
    work.commit().await?;
    tracing::info!(application_id = %stored.id(), case_id = %stored.case_id(), "application submitted");
    Ok(v1::SubmitApplicationResponse {
        application: Some(stored.application),
        created: true,
    })
}

/// Records reads of personal data by `caller` (kind READ), before the response leaves.
async fn record_reads(
    api: &ApplicationsApi,
    caller: &Caller,
    purpose: AccessPurpose,
    action: &str,
    read: &[&Stored],
) -> Result<(), ApiError> {
    let reads: Vec<audit::Read<'_>> = read
        .iter()
        .map(|stored| audit::Read {
            case_id: stored.case_id(),
            subject_id: stored.id(),
            action,
            actor: actor(caller, stored.employer()),
            purpose,
        })
        .collect();
    audit::record_reads(&api.db, &reads).await
}

async fn get_application(
    api: &ApplicationsApi,
    call: Call,
    request: v1::GetApplicationRequest,
) -> Result<v1::GetApplicationResponse, ApiError> {
    let employer = is_employer(&call.caller);
    let mut check = Violations::new();
    let id = check.uuid("application_id", &request.application_id);
    let purpose = if employer {
        Some(AccessPurpose::EmployerSelfService)
    } else {
        commands::nav_purpose(&mut check, request.purpose)
    };
    let (id, purpose) = check.finish_with(|| Some((id?, purpose?)))?;
    let mut db = api.db.read().await?;
    let stored = store::load(&mut db, id, false)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("application {id} is not known")))?;
    drop(db);
    if employer {
        call.caller.require_represents(stored.employer())?;
    }
    record_reads(api, &call.caller, purpose, "GetApplication", &[&stored]).await?;
    Ok(v1::GetApplicationResponse {
        application: Some(stored.application),
    })
}

async fn list_applications_for_case(
    api: &ApplicationsApi,
    call: Call,
    request: v1::ListApplicationsForCaseRequest,
) -> Result<v1::ListApplicationsForCaseResponse, ApiError> {
    let mut check = Violations::new();
    let case_id = check.uuid("case_id", &request.case_id);
    let purpose = commands::nav_purpose(&mut check, request.purpose);
    let (case_id, purpose) = check.finish_with(|| Some((case_id?, purpose?)))?;
    let mut db = api.db.read().await?;
    let rows = store::list_for_case(&mut db, case_id).await?;
    drop(db);
    let read: Vec<&Stored> = rows.iter().collect();
    record_reads(api, &call.caller, purpose, "ListApplicationsForCase", &read).await?;
    Ok(v1::ListApplicationsForCaseResponse {
        applications: rows.into_iter().map(|stored| stored.application).collect(),
    })
}

/// The summary of `stored`, without personal data.
fn summary(stored: &Stored) -> v1::ApplicationSummary {
    let application = &stored.application;
    let details = application.details.clone().unwrap_or_default();
    let status = model::status(application);
    let recommended_by = if status == Status::Recommended {
        application
            .recommendations
            .last()
            .map(|recommendation| recommendation.recommended_by.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let granted_amount = application
        .grant
        .as_ref()
        .and_then(|grant| grant.granted_amount)
        .or_else(|| {
            application.recommendations.iter().rev().find_map(
                |recommendation| match &recommendation.recommendation {
                    Some(v1::application_recommendation::Recommendation::Grant(grant)) => {
                        grant.amount
                    }
                    _ => None,
                },
            )
        });
    v1::ApplicationSummary {
        application_id: application.application_id.clone(),
        case_id: application.case_id.clone(),
        county_code: application.county_code.clone(),
        employer_organisation_number: details.employer_organisation_number,
        status: application.status,
        competence_area: details.competence_area,
        planned_start_date: details.planned_start_date,
        estimated_cost: details.estimated_cost,
        submitted_at: application.submitted_at,
        status_changed_at: stamp(stored.status_changed_at),
        recommended_by,
        grant_status: if status == Status::Granted {
            model::grant_status(application) as i32
        } else {
            0
        },
        granted_amount,
    }
}

async fn list_applications_for_employer(
    api: &ApplicationsApi,
    call: Call,
    request: v1::ListApplicationsForEmployerRequest,
) -> Result<v1::ListApplicationsForEmployerResponse, ApiError> {
    let mut check = Violations::new();
    let employer = check.organisation_number(
        "employer_organisation_number",
        &request.employer_organisation_number,
    );
    let page = check.page(request.page_size, &request.page_token, &employer);
    let (employer, page) = check.finish_with(|| Some((employer?, page?)))?;
    call.caller.require_represents(employer.as_str())?;
    let mut db = api.db.read().await?;
    let rows = store::list_for_employer(&mut db, employer.as_str(), page.after, page.fetch_limit())
        .await?;
    let (rows, next_page_token) = page.finish(rows, |stored| stored.sequence);
    Ok(v1::ListApplicationsForEmployerResponse {
        applications: rows.iter().map(summary).collect(),
        next_page_token,
    })
}

async fn list_applications(
    api: &ApplicationsApi,
    _call: Call,
    request: v1::ListApplicationsRequest,
) -> Result<v1::ListApplicationsResponse, ApiError> {
    let mut check = Violations::new();
    let mut statuses = Vec::new();
    for (index, status) in request.statuses.iter().enumerate() {
        let status: Option<Status> = check.enumeration(&format!("statuses[{index}]"), *status);
        if let Some(status) = status.and_then(|status| ApplicationStatus::from_wire(status as i32))
        {
            statuses.push(status.code());
        }
    }
    let mut counties = Vec::new();
    for (index, county) in request.county_codes.iter().enumerate() {
        if let Some(county) = check.check(
            &format!("county_codes[{index}]"),
            ekb_domain::CountyCode::parse(county).map_err(|_| "must be a county code of 2 digits"),
        ) {
            counties.push(county.as_str().to_owned());
        }
    }
    statuses.sort();
    statuses.dedup();
    counties.sort();
    counties.dedup();
    let page = check.page(
        request.page_size,
        &request.page_token,
        &(&statuses, &counties),
    );
    let page = check.finish_with(|| page)?;
    let mut db = api.db.read().await?;
    let rows = store::list_work(
        &mut db,
        &statuses,
        &counties,
        page.after,
        page.fetch_limit(),
    )
    .await?;
    let (rows, next) = page.finish(rows, |stored| stored.sequence);
    Ok(v1::ListApplicationsResponse {
        applications: rows.iter().map(summary).collect(),
        next_page_token: next,
    })
}

async fn start_review(
    api: &ApplicationsApi,
    call: Call,
    request: v1::StartReviewRequest,
) -> Result<v1::StartReviewResponse, ApiError> {
    let id = commands::application_id(&request.application_id)?;
    let by = &call.caller.subject;
    let application = apply_change(
        api,
        &call.caller,
        id,
        Effects::audited_change,
        "StartReview",
        |stored, now| stored.start_review(by, now),
    )
    .await?;
    Ok(v1::StartReviewResponse {
        application: Some(application),
    })
}

async fn assess_condition(
    api: &ApplicationsApi,
    call: Call,
    request: v1::AssessConditionRequest,
) -> Result<v1::AssessConditionResponse, ApiError> {
    let mut check = Violations::new();
    let id = check.uuid("application_id", &request.application_id);
    let condition: Option<v1::ApplicationCondition> =
        check.enumeration("condition", request.condition);
    let note = if request.met {
        check.optional_text("note", &request.note, NOTE)
    } else {
        check.text("note", &request.note, NOTE)
    };
    let (id, condition, note) = check.finish_with(|| Some((id?, condition?, note?)))?;
    let by = &call.caller.subject;
    let application = apply_change(
        api,
        &call.caller,
        id,
        Effects::audited_change,
        "AssessCondition",
        |stored, now| stored.assess(by, condition, request.met, note, now),
    )
    .await?;
    Ok(v1::AssessConditionResponse {
        application: Some(application),
    })
}

async fn recommend_decision(
    api: &ApplicationsApi,
    call: Call,
    request: v1::RecommendDecisionRequest,
) -> Result<v1::RecommendDecisionResponse, ApiError> {
    let command = Recommend::parse(&request)?;
    let by = &call.caller.subject;
    let application = apply_change(
        api,
        &call.caller,
        command.application_id,
        Effects::audited_change,
        "RecommendDecision",
        |stored, now| {
            let rate = api.policy.max_rate_on(oslo_date(now));
            stored.recommend(by, &command, rate, now)
        },
    )
    .await?;
    Ok(v1::RecommendDecisionResponse {
        application: Some(application),
    })
}

async fn decide_application(
    api: &ApplicationsApi,
    call: Call,
    request: v1::DecideApplicationRequest,
) -> Result<v1::DecideApplicationResponse, ApiError> {
    let command = Decide::parse(&request)?;
    let by = &call.caller.subject;
    let terms = FundsTerms::from(api.policy.as_ref());
    let application = apply_change(
        api,
        &call.caller,
        command.application_id,
        Effects::audited,
        "DecideApplication",
        |stored, now| {
            let rate = api.policy.max_rate_on(oslo_date(now));
            stored.decide(by, &command, rate, &terms, now)
        },
    )
    .await?;
    Ok(v1::DecideApplicationResponse {
        application: Some(application),
    })
}

async fn request_funds_again(
    api: &ApplicationsApi,
    call: Call,
    request: v1::RequestFundsAgainRequest,
) -> Result<v1::RequestFundsAgainResponse, ApiError> {
    let id = commands::application_id(&request.application_id)?;
    let by = &call.caller.subject;
    let terms = FundsTerms::from(api.policy.as_ref());
    let application = apply_change(
        api,
        &call.caller,
        id,
        Effects::audited_change,
        "RequestFundsAgain",
        |stored, now| stored.request_funds_again(by, &terms, now),
    )
    .await?;
    Ok(v1::RequestFundsAgainResponse {
        application: Some(application),
    })
}

async fn reject_for_lack_of_funds(
    api: &ApplicationsApi,
    call: Call,
    request: v1::RejectForLackOfFundsRequest,
) -> Result<v1::RejectForLackOfFundsResponse, ApiError> {
    let mut check = Violations::new();
    let id = check.uuid("application_id", &request.application_id);
    let explanation = check.optional_text("explanation", &request.explanation, NOTE);
    let (id, explanation) = check.finish_with(|| Some((id?, explanation?)))?;
    let by = &call.caller.subject;
    let application = apply_change(
        api,
        &call.caller,
        id,
        Effects::audited,
        "RejectForLackOfFunds",
        |stored, now| stored.reject_for_lack_of_funds(by, explanation, now),
    )
    .await?;
    Ok(v1::RejectForLackOfFundsResponse {
        application: Some(application),
    })
}

async fn withdraw_application(
    api: &ApplicationsApi,
    call: Call,
    request: v1::WithdrawApplicationRequest,
) -> Result<v1::WithdrawApplicationResponse, ApiError> {
    let mut check = Violations::new();
    let id = check.uuid("application_id", &request.application_id);
    let reason = check.optional_text("reason", &request.reason, NOTE);
    let (id, reason) = check.finish_with(|| Some((id?, reason?)))?;
    let caller = &call.caller;
    let application = apply_change(
        api,
        caller,
        id,
        Effects::audited_change,
        "WithdrawApplication",
        |stored, now| {
            caller.require_represents(stored.employer())?;
            stored.withdraw(&caller.subject, reason, now)
        },
    )
    .await?;
    Ok(v1::WithdrawApplicationResponse {
        application: Some(application),
    })
}

async fn cancel_grant(
    api: &ApplicationsApi,
    call: Call,
    request: v1::CancelGrantRequest,
) -> Result<v1::CancelGrantResponse, ApiError> {
    let employer = is_employer(&call.caller);
    let command = Cancel::parse(&request, employer)?;
    let revoking = command.reason == v1::GrantCancellationReason::Revoked;
    if revoking && !call.caller.has_role(DECIDER) && !is_local(&call.caller) {
        return Err(ApiError::PermissionDenied {
            reason: "REVOCATION_REQUIRES_DECIDER",
            message: "only a decider may revoke a grant".to_owned(),
        });
    }
    let by = &call.caller.subject;
    let application = apply_change(
        api,
        &call.caller,
        command.application_id,
        Effects::audited_change,
        "CancelGrant",
        |stored, now| stored.cancel_grant(by, &command, employer, now),
    )
    .await?;
    Ok(v1::CancelGrantResponse {
        application: Some(application),
    })
}

async fn list_audit_entries(
    api: &ApplicationsApi,
    call: Call,
    request: v1::ListAuditEntriesRequest,
) -> Result<v1::ListAuditEntriesResponse, ApiError> {
    audit::list_audit_entries(&api.db, &call.caller, &request).await
}
