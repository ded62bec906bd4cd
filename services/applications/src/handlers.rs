//! The ApplicationsService RPCs, as plain async functions over [`ApplicationsApi`]. Each change
//! loads the application locked, checks the transition, saves the document, records the audit
//! entry and publishes its event in one unit of work, so an event, its change and its audit
//! entry exist together or not at all. Reads of personal data are recorded before the response
//! leaves. No request field is logged or put in a span.

use ekb_domain::oslo_date;
use ekb_platform::clock::Clock;
use ekb_proto::convert::gross_to_wire;
use std::sync::Arc;

use ekb_platform::{
    ApiError, Violations,
    audit::{self, AuditActor},
    auth::{Caller, Organisations},
    grpc::Call,
    messaging::{Db, UnitOfWork},
};
use ekb_proto::v1::{
    self, AccessPurpose, ApplicationStatus as Status, AuditEntryKind, GrantStatus,
    applications_service_server::ApplicationsService,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    Applications, CASEWORKER, DECIDER, EMPLOYER, READER,
    commands::{self, NOTE, Recommend, Recommendation, Submit},
    config::Policy,
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
    clock: Arc<dyn Clock>,
}

impl ApplicationsApi {
    /// Handlers over the service's database, applying `policy`, telling time by `clock`.
    pub fn new(db: Db, policy: Arc<Policy>, clock: Arc<dyn Clock>) -> Self {
        ApplicationsApi { db, policy, clock }
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

/// Records a change or decision by `caller` on `stored`, in `work`.
async fn record(
    work: &mut UnitOfWork,
    stored: &Stored,
    caller: &Caller,
    kind: AuditEntryKind,
    action: &str,
) -> Result<(), ApiError> {
    let actor = actor(caller, stored.employer());
    let now = work.now();
    stored
        .audit(work.db(), kind, action, &actor, purpose_of(caller), now)
        .await?;
    Ok(())
}

/// Loads the application `id` locked in `work`; NOT_FOUND if unknown, PERMISSION_DENIED for an
/// employer caller not representing its employer.
async fn load(work: &mut UnitOfWork, id: Uuid, caller: &Caller) -> Result<Stored, ApiError> {
    let stored = store::load(work.db(), id, true)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("application {id} is not known")))?;
    if is_employer(caller) {
        caller.require_represents(stored.employer())?;
    }
    Ok(stored)
}

fn refused(reason: &'static str, application: &v1::Application) -> ApiError {
    ApiError::refused(
        reason,
        format!(
            "application {} is {}",
            application.application_id,
            model::status(application).as_str_name()
        ),
    )
}

/// An application loaded locked for a change by `caller`, in the unit of work that saves it,
/// with the time the change is made at.
struct Change<'a> {
    work: UnitOfWork,
    stored: Stored,
    caller: &'a Caller,
    now: OffsetDateTime,
}

impl<'a> Change<'a> {
    /// Begins the unit of work and loads application `id` locked in it (see [`load`]).
    async fn begin(
        api: &ApplicationsApi,
        id: Uuid,
        caller: &'a Caller,
    ) -> Result<Change<'a>, ApiError> {
        let now = api.clock.now();
        let mut work = api.db.begin().await?;
        let stored = load(&mut work, id, caller).await?;
        Ok(Change {
            work,
            stored,
            caller,
            now,
        })
    }

    /// Refuses with `reason` (naming the current status) unless the application is `status`.
    fn require(&self, status: Status, reason: &'static str) -> Result<(), ApiError> {
        let application = &self.stored.application;
        if model::status(application) == status {
            Ok(())
        } else {
            Err(refused(reason, application))
        }
    }

    /// Saves the application, records the entry (`kind`, `action`) and commits; returns the
    /// application as saved.
    async fn finish(
        mut self,
        kind: AuditEntryKind,
        action: &str,
    ) -> Result<v1::Application, ApiError> {
        let stored = &mut self.stored;
        stored.application.updated_at = stamp(self.now);
        store::save(self.work.db(), stored, self.now).await?;
        record(&mut self.work, stored, self.caller, kind, action).await?;
        self.work.commit().await?;
        Ok(self.stored.application)
    }
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
    let now = api.clock.now();
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
    if case.flow != "REGULAR" {
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
    record(
        &mut work,
        &stored,
        &call.caller,
        AuditEntryKind::Change,
        "SubmitApplication",
    )
    .await?;
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
    if read.is_empty() {
        return Ok(());
    }
    let mut work = api.db.begin().await?;
    let now = work.now();
    for stored in read {
        let actor = actor(caller, stored.employer());
        stored
            .audit(
                work.db(),
                AuditEntryKind::Read,
                action,
                &actor,
                purpose,
                now,
            )
            .await?;
    }
    work.commit().await?;
    Ok(())
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
        if let Some(status) = status {
            statuses.push(model::status_name(status).to_owned());
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
    let mut change = Change::begin(api, id, &call.caller).await?;
    let application = &mut change.stored.application;
    match model::status(application) {
        Status::Submitted => {}
        Status::UnderReview if application.reviewed_by == call.caller.subject => {
            return Ok(v1::StartReviewResponse {
                application: Some(change.stored.application),
            });
        }
        _ => return Err(refused("NOT_SUBMITTED", application)),
    }
    application.status = Status::UnderReview as i32;
    application.reviewed_by = call.caller.subject.clone();
    application.review_started_at = stamp(change.now);
    let application = change.finish(AuditEntryKind::Change, "StartReview").await?;
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
    let mut change = Change::begin(api, id, &call.caller).await?;
    change.require(Status::UnderReview, "ASSESSMENT_LOCKED")?;
    let application = &mut change.stored.application;
    let unchanged = application.conditions.iter().any(|assessed| {
        assessed.condition == condition as i32
            && assessed.met == request.met
            && assessed.note == note
            && assessed.assessed_by == call.caller.subject
    });
    if unchanged {
        return Ok(v1::AssessConditionResponse {
            application: Some(change.stored.application),
        });
    }
    application
        .conditions
        .retain(|assessed| assessed.condition != condition as i32);
    application.conditions.push(v1::ConditionAssessment {
        condition: condition as i32,
        met: request.met,
        note,
        assessed_by: call.caller.subject.clone(),
        assessed_at: stamp(change.now),
    });
    application
        .conditions
        .sort_by_key(|assessed| assessed.condition);
    let application = change
        .finish(AuditEntryKind::Change, "AssessCondition")
        .await?;
    Ok(v1::AssessConditionResponse {
        application: Some(application),
    })
}

/// The five conditions of NAV's practice.
const CONDITIONS: usize = 5;

fn estimated_cost(application: &v1::Application) -> i64 {
    application
        .details
        .as_ref()
        .and_then(|details| details.estimated_cost)
        .map_or(0, |amount| amount.ore)
}

async fn recommend_decision(
    api: &ApplicationsApi,
    call: Call,
    request: v1::RecommendDecisionRequest,
) -> Result<v1::RecommendDecisionResponse, ApiError> {
    let command = Recommend::parse(&request)?;
    let mut change = Change::begin(api, command.application_id, &call.caller).await?;
    change.require(Status::UnderReview, "NOT_UNDER_REVIEW")?;
    let now = change.now;
    let application = &mut change.stored.application;
    if application.conditions.len() < CONDITIONS {
        return Err(ApiError::refused(
            "CONDITIONS_NOT_ASSESSED",
            format!(
                "{} of the {CONDITIONS} conditions are assessed",
                application.conditions.len()
            ),
        ));
    }
    let wire = match &command.recommendation {
        Recommendation::Grant(ore) => {
            if application.conditions.iter().any(|assessed| !assessed.met) {
                return Err(ApiError::refused(
                    "CONDITION_NOT_MET",
                    "a grant needs all five conditions met",
                ));
            }
            let rate = api.policy.max_rate_on(oslo_date(now)).ok_or_else(|| {
                ApiError::refused("MAX_RATE_NOT_CONFIGURED", "no max rate is in force today")
            })?;
            let mut check = Violations::new();
            if *ore > estimated_cost(application) {
                check.add("grant.amount.ore", "must not exceed the estimated cost");
            }
            if *ore > rate.ore {
                check.add(
                    "grant.amount.ore",
                    format!(
                        "must not exceed the max rate in force today ({} øre)",
                        rate.ore
                    ),
                );
            }
            check.finish()?;
            v1::application_recommendation::Recommendation::Grant(v1::GrantRecommendation {
                amount: Some(gross_to_wire(*ore)),
            })
        }
        Recommendation::Reject(reason, explanation) => {
            v1::application_recommendation::Recommendation::Rejection(v1::RejectionRecommendation {
                reason: *reason as i32,
                explanation: explanation.clone(),
            })
        }
    };
    let version = i32::try_from(application.recommendations.len()).unwrap_or(i32::MAX - 1) + 1;
    application
        .recommendations
        .push(v1::ApplicationRecommendation {
            version,
            recommendation: Some(wire),
            note: command.note,
            recommended_by: call.caller.subject.clone(),
            recommended_at: stamp(now),
            ..Default::default()
        });
    application.status = Status::Recommended as i32;
    let application = change
        .finish(AuditEntryKind::Change, "RecommendDecision")
        .await?;
    Ok(v1::RecommendDecisionResponse {
        application: Some(application),
    })
}

/// Starts a new funds request under a new grant id, published in the change's unit of work.
async fn request_funds(
    api: &ApplicationsApi,
    change: &mut Change<'_>,
    requested_by: &str,
) -> Result<(), ApiError> {
    let Change {
        work, stored, now, ..
    } = change;
    let now = *now;
    let grant_id = Uuid::now_v7();
    store::insert_grant_id(work.db(), grant_id, stored.id()).await?;
    let application = &mut stored.application;
    let grant = application.grant.get_or_insert_with(Default::default);
    let request = v1::GrantFundsRequest {
        grant_id: grant_id.to_string(),
        budget_year: oslo_date(now).year(),
        account: Some(api.policy.account),
        amount: grant.granted_amount,
        requested_at: stamp(now),
        last_sent_at: stamp(now),
        times_sent: 1,
        outcome: v1::FundsRequestOutcome::Pending as i32,
        requested_by: requested_by.to_owned(),
        ..Default::default()
    };
    grant.grant_id = request.grant_id.clone();
    grant.budget_year = request.budget_year;
    grant.account = request.account;
    if grant.requested_at.is_none() {
        grant.requested_at = stamp(now);
    }
    grant.funds_requests.push(request.clone());
    application.status = Status::GrantPendingFunds as i32;
    application.rejection = None;
    let wait = api.policy.resend_after;
    stored.resend_at = Some(now + wait);
    stored.resend_interval_seconds = Some(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX));
    let event = events::grant_requested(&stored.application, &request);
    events::publish_grant(work, &stored.application, &event).await?;
    Ok(())
}

async fn decide_application(
    api: &ApplicationsApi,
    call: Call,
    request: v1::DecideApplicationRequest,
) -> Result<v1::DecideApplicationResponse, ApiError> {
    let mut check = Violations::new();
    let id = check.uuid("application_id", &request.application_id);
    let verdict: Option<v1::DeciderVerdict> = check.enumeration("verdict", request.verdict);
    if request.recommendation_version < 1 {
        check.add("recommendation_version", "must be 1 or more");
    }
    let note = if verdict == Some(v1::DeciderVerdict::Return) {
        check.text("note", &request.note, NOTE)
    } else {
        check.optional_text("note", &request.note, NOTE)
    };
    let (id, verdict, note) = check.finish_with(|| Some((id?, verdict?, note?)))?;
    let subject = call.caller.subject.clone();
    let mut change = Change::begin(api, id, &call.caller).await?;
    let now = change.now;
    let application = &change.stored.application;
    let repeat = verdict == v1::DeciderVerdict::Confirm
        && application.decision.as_ref().is_some_and(|decision| {
            decision.decided_by == subject
                && decision.recommendation_version == request.recommendation_version
        });
    if repeat {
        return Ok(v1::DecideApplicationResponse {
            application: Some(change.stored.application),
        });
    }
    change.require(Status::Recommended, "NOT_RECOMMENDED")?;
    let application = &mut change.stored.application;
    if application
        .recommendations
        .iter()
        .any(|recommendation| recommendation.recommended_by == subject)
    {
        return Err(ApiError::PermissionDenied {
            reason: "DECIDER_IS_RECOMMENDER",
            message: "the decider recommended on this application; another person must decide"
                .to_owned(),
        });
    }
    let current = application
        .recommendations
        .last()
        .cloned()
        .unwrap_or_default();
    if current.version != request.recommendation_version {
        return Err(ApiError::refused(
            "RECOMMENDATION_CHANGED",
            format!("the current recommendation is version {}", current.version),
        ));
    }
    if verdict == v1::DeciderVerdict::Return {
        if let Some(last) = application.recommendations.last_mut() {
            last.returned_by = subject.clone();
            last.returned_at = stamp(now);
            last.return_note = note;
        }
        application.status = Status::UnderReview as i32;
        let application = change
            .finish(AuditEntryKind::Decision, "DecideApplication")
            .await?;
        return Ok(v1::DecideApplicationResponse {
            application: Some(application),
        });
    }
    let decision_date = oslo_date(now);
    let mut decision = v1::ApplicationDecision {
        outcome: v1::ApplicationDecisionOutcome::Reject as i32,
        recommendation_version: current.version,
        conditions: application.conditions.clone(),
        recommended_by: current.recommended_by.clone(),
        decided_by: subject.clone(),
        decided_at: stamp(now),
        decision_date: day(decision_date),
    };
    match current.recommendation {
        Some(v1::application_recommendation::Recommendation::Grant(grant)) => {
            let ore = grant.amount.map_or(0, |amount| amount.ore);
            let rate = api.policy.max_rate_on(decision_date).ok_or_else(|| {
                ApiError::refused(
                    "MAX_RATE_NOT_CONFIGURED",
                    "no max rate is in force on the decision date",
                )
            })?;
            if ore > rate.ore {
                return Err(ApiError::refused(
                    "AMOUNT_ABOVE_MAX_RATE",
                    format!(
                        "the max rate in force today is {} øre, below the recommended amount: return it",
                        rate.ore
                    ),
                ));
            }
            decision.outcome = v1::ApplicationDecisionOutcome::Grant as i32;
            application.decision = Some(decision);
            application.grant = Some(v1::Grant {
                granted_amount: Some(gross_to_wire(ore)),
                applied_max_rate: Some(rate.to_wire()),
                ..Default::default()
            });
            request_funds(api, &mut change, &subject).await?;
        }
        Some(v1::application_recommendation::Recommendation::Rejection(rejection)) => {
            application.decision = Some(decision);
            application.rejection = Some(v1::ApplicationRejection {
                reason: rejection.reason,
                funds_denied_reason: 0,
                explanation: rejection.explanation,
                rejected_by: subject.clone(),
                rejected_at: stamp(now),
                is_final: true,
            });
            application.status = Status::Rejected as i32;
            let event = events::rejected(application);
            events::publish_application(&mut change.work, &change.stored.application, &event)
                .await?;
        }
        None => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "a stored recommendation has no content"
            )));
        }
    }
    let application = change
        .finish(AuditEntryKind::Decision, "DecideApplication")
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
    let mut change = Change::begin(api, id, &call.caller).await?;
    change.require(Status::FundsDenied, "NOT_FUNDS_DENIED")?;
    request_funds(api, &mut change, &call.caller.subject).await?;
    let application = change
        .finish(AuditEntryKind::Change, "RequestFundsAgain")
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
    let mut change = Change::begin(api, id, &call.caller).await?;
    change.require(Status::FundsDenied, "NOT_FUNDS_DENIED")?;
    let application = &mut change.stored.application;
    let rejection = application.rejection.get_or_insert_with(Default::default);
    rejection.reason = v1::ApplicationRejectionReason::FundsDenied as i32;
    rejection.explanation = explanation;
    rejection.rejected_by = call.caller.subject.clone();
    rejection.is_final = true;
    application.status = Status::Rejected as i32;
    let event = events::rejected(application);
    events::publish_application(&mut change.work, &change.stored.application, &event).await?;
    let application = change
        .finish(AuditEntryKind::Decision, "RejectForLackOfFunds")
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
    let mut change = Change::begin(api, id, &call.caller).await?;
    call.caller.require_represents(change.stored.employer())?;
    let now = change.now;
    let application = &mut change.stored.application;
    let previous = model::status(application);
    match previous {
        Status::Granted => return Err(refused("ALREADY_GRANTED", application)),
        Status::Rejected => return Err(refused("ALREADY_REJECTED", application)),
        Status::Withdrawn => {
            let same = application.withdrawal.as_ref().is_some_and(|withdrawal| {
                withdrawal.withdrawn_by == call.caller.subject && withdrawal.reason == reason
            });
            if same {
                return Ok(v1::WithdrawApplicationResponse {
                    application: Some(change.stored.application),
                });
            }
            return Err(refused("ALREADY_WITHDRAWN", application));
        }
        _ => {}
    }
    if let Some(request) = model::current_request(application)
        && request.outcome == v1::FundsRequestOutcome::Pending as i32
    {
        request.outcome = v1::FundsRequestOutcome::Withdrawn as i32;
        request.answered_at = stamp(now);
    }
    application.withdrawal = Some(v1::ApplicationWithdrawal {
        reason,
        withdrawn_at: stamp(now),
        withdrawn_by: call.caller.subject.clone(),
    });
    application.status = Status::Withdrawn as i32;
    change.stored.resend_at = None;
    change.stored.resend_interval_seconds = None;
    let event = events::withdrawn(&change.stored.application, previous);
    events::publish_application(&mut change.work, &change.stored.application, &event).await?;
    let application = change
        .finish(AuditEntryKind::Change, "WithdrawApplication")
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
    use v1::GrantCancellationReason as Reason;
    let employer = is_employer(&call.caller);
    let mut check = Violations::new();
    let id = check.uuid("application_id", &request.application_id);
    let reason: Option<Reason> = check.enumeration("reason", request.reason);
    if employer && reason.is_some_and(|reason| reason != Reason::EmployerRequest) {
        check.add("reason", "an employer may only give EMPLOYER_REQUEST");
    }
    let explanation = if matches!(reason, Some(Reason::Revoked | Reason::Other)) {
        check.text("explanation", &request.explanation, NOTE)
    } else {
        check.optional_text("explanation", &request.explanation, NOTE)
    };
    let (id, reason, explanation) = check.finish_with(|| Some((id?, reason?, explanation?)))?;
    if reason == Reason::Revoked && !call.caller.has_role(DECIDER) && !is_local(&call.caller) {
        return Err(ApiError::PermissionDenied {
            reason: "REVOCATION_REQUIRES_DECIDER",
            message: "only a decider may revoke a grant".to_owned(),
        });
    }
    let mut change = Change::begin(api, id, &call.caller).await?;
    change.require(Status::Granted, "NOT_GRANTED")?;
    let application = &mut change.stored.application;
    let refusal = match model::grant_status(application) {
        GrantStatus::Active => None,
        GrantStatus::ClaimPending => Some("GRANT_HAS_CLAIM"),
        GrantStatus::Settled => Some("GRANT_SETTLED"),
        GrantStatus::Expired => Some("GRANT_EXPIRED"),
        GrantStatus::Cancelled => Some("GRANT_CANCELLED"),
        GrantStatus::CancellationRequested | GrantStatus::Unspecified => {
            let same = application
                .grant
                .as_ref()
                .and_then(|grant| grant.cancellation.as_ref())
                .is_some_and(|cancellation| {
                    cancellation.reason == reason as i32
                        && cancellation.explanation == explanation
                        && cancellation.requested_by == call.caller.subject
                });
            if same {
                return Ok(v1::CancelGrantResponse {
                    application: Some(change.stored.application),
                });
            }
            Some("CANCELLATION_PENDING")
        }
    };
    if let Some(reason) = refusal {
        return Err(ApiError::refused(
            reason,
            format!("the grant of application {id} cannot be cancelled now"),
        ));
    }
    let grant = application.grant.get_or_insert_with(Default::default);
    grant.cancellation = Some(v1::GrantCancellation {
        reason: reason as i32,
        explanation,
        requested_by: call.caller.subject.clone(),
        requested_by_employer: employer,
        requested_at: stamp(change.now),
        ..Default::default()
    });
    grant.status = GrantStatus::CancellationRequested as i32;
    let event = events::cancellation_requested(application);
    events::publish_grant(&mut change.work, &change.stored.application, &event).await?;
    let application = change.finish(AuditEntryKind::Change, "CancelGrant").await?;
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
