//! The RoutingService RPCs, as plain async functions over [`RoutingApi`]: OpenCase validates,
//! decides, and stores the case with its CaseRouted event in one unit of work; GetCase reads;
//! EvaluateRoute decides without storing; SendToRegularFlow moves a PILOT case to the regular
//! flow with its CaseFlowChanged event in one unit of work.

use std::sync::Arc;

use ekb_domain::{PilotPolicy, RoutingDecision, RoutingRequest, decide_route};
use ekb_platform::{
    ApiError,
    grpc::Call,
    messaging::{Db, EventSubject},
};
use ekb_proto::{
    convert::decision_to_wire,
    v1::{self, routing_service_server::RoutingService},
};

use crate::{
    Routing,
    case_store::{self, StoredCase},
    coverage_snapshot::CoverageSnapshot,
    facts::{CaseFacts, EvaluateRoute, GetCase, OpenCase, SendToRegularFlow},
    flow_change::{self, ChangedBy, ToRegularFlow},
};

ekb_platform::grpc_handlers! {
    Routing => RoutingApi: RoutingService {
        open_case(v1::OpenCaseRequest) -> v1::OpenCaseResponse = open_case;
        get_case(v1::GetCaseRequest) -> v1::GetCaseResponse = get_case;
        evaluate_route(v1::EvaluateRouteRequest) -> v1::EvaluateRouteResponse = evaluate_route;
        send_to_regular_flow(v1::SendToRegularFlowRequest) -> v1::SendToRegularFlowResponse
            = send_to_regular_flow;
    }
}

/// What routing's handlers work with.
#[derive(Debug, Clone)]
pub struct RoutingApi {
    db: Db,
    policy: Arc<PilotPolicy>,
    coverage: Arc<CoverageSnapshot>,
}

impl RoutingApi {
    /// Handlers over the service's database, pilot policy and coverage snapshot.
    pub fn new(db: Db, policy: PilotPolicy, coverage: CoverageSnapshot) -> Self {
        RoutingApi {
            db,
            policy: Arc::new(policy),
            coverage: Arc::new(coverage),
        }
    }

    /// Applies the routing rule, reading agreement coverage only for pilot counties.
    async fn decide(&self, facts: &CaseFacts) -> Result<RoutingDecision, ApiError> {
        let county = facts.municipality.county();
        let coverage =
            if self.policy.is_pilot_county(&county) && self.policy.is_in_period(facts.date) {
                self.coverage.covered_areas(&county, facts.date).await?
            } else {
                Default::default()
            };
        let request = RoutingRequest {
            county,
            date: facts.date,
            choice: facts.choice,
        };
        Ok(decide_route(&self.policy, &request, &coverage))
    }
}

/// OpenCase: a retry with the same request id and facts gets the first attempt's case
/// (`created = false`); the same request id with other facts is ALREADY_EXISTS.
async fn open_case(
    api: &RoutingApi,
    _call: Call,
    request: v1::OpenCaseRequest,
) -> Result<v1::OpenCaseResponse, ApiError> {
    let now = api.db.clock().now();
    let OpenCase { request_id, facts } = OpenCase::parse(&request, ekb_domain::oslo_date(now))?;
    let decision = api.decide(&facts).await?;
    let case = StoredCase::open(facts, decision, now);

    let mut work = api.db.begin().await?;
    if !case_store::insert(work.db(), &case, request_id).await? {
        let existing = case_store::find_by_request_id(work.db(), request_id)
            .await?
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("case of request {request_id} vanished"))
            })?;
        return replayed(existing, &case);
    }
    work.publish(
        &EventSubject::case(case.case_id.to_string()),
        &case.routed_event(),
    )
    .await?;
    work.commit().await?;

    tracing::info!(
        case_id = %case.case_id,
        county = %case.facts.municipality.county(),
        flow = case.decision.flow.code(),
        reason = case.decision.reason.code(),
        "case opened and routed"
    );
    metrics::counter!("ekb_routing_cases_total", "flow" => case.decision.flow.code(), "reason" => case.decision.reason.code())
        .increment(1);
    Ok(v1::OpenCaseResponse {
        case: Some(case.to_wire()),
        created: true,
    })
}

/// The answer to a retried OpenCase: the first attempt's case, if it was opened with the same
/// facts as `attempt`, the case this retry would have opened.
fn replayed(existing: StoredCase, attempt: &StoredCase) -> Result<v1::OpenCaseResponse, ApiError> {
    if existing.facts_fingerprint != attempt.facts_fingerprint {
        return Err(ApiError::AlreadyExists(
            "request_id was already used for a case with different facts".to_owned(),
        ));
    }
    Ok(v1::OpenCaseResponse {
        case: Some(existing.to_wire()),
        created: false,
    })
}

async fn get_case(
    api: &RoutingApi,
    _call: Call,
    request: v1::GetCaseRequest,
) -> Result<v1::GetCaseResponse, ApiError> {
    let GetCase { case_id } = request.try_into()?;
    let case = case_store::find_by_case_id(&mut *api.db.read().await?, case_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no case {case_id}")))?;
    Ok(v1::GetCaseResponse {
        case: Some(case.to_wire()),
    })
}

async fn evaluate_route(
    api: &RoutingApi,
    _call: Call,
    request: v1::EvaluateRouteRequest,
) -> Result<v1::EvaluateRouteResponse, ApiError> {
    let today = ekb_domain::oslo_date(api.db.clock().now());
    let EvaluateRoute { facts } = EvaluateRoute::parse(&request, today)?;
    let decision = api.decide(&facts).await?;
    Ok(v1::EvaluateRouteResponse {
        decision: Some(decision_to_wire(decision)),
        county_code: facts.municipality.county().as_str().to_owned(),
    })
}

/// SendToRegularFlow: the caller (the token's subject) is recorded as who changed the flow.
async fn send_to_regular_flow(
    api: &RoutingApi,
    call: Call,
    request: v1::SendToRegularFlowRequest,
) -> Result<v1::SendToRegularFlowResponse, ApiError> {
    let SendToRegularFlow {
        case_id,
        reason,
        note,
    } = request.try_into()?;
    let change = ToRegularFlow {
        case_id,
        reason,
        note,
        by: ChangedBy::Caseworker(call.caller.subject),
        at: api.db.clock().now(),
    };
    let mut work = api.db.begin().await?;
    let case = flow_change::to_regular(&mut work, &change).await??;
    work.commit().await?;
    Ok(v1::SendToRegularFlowResponse {
        case: Some(case.to_wire()),
    })
}
