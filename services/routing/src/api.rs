//! The RoutingService RPCs: validate, decide, store with the CaseRouted event in one
//! transaction (OpenCase); read (GetCase); decide without storing (EvaluateRoute).

use std::sync::Arc;

use ekb_domain::{PilotPolicy, RoutingDecision, RoutingRequest, decide_route};
use ekb_platform::{
    ApiError, Violations,
    error::validated,
    messaging::{EventSubject, Outbox},
};
use ekb_proto::v1::{self, routing_service_server::RoutingService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    case_store::{self, NewCase, decision_to_wire},
    case_writer::{CaseWriter, WriteOutcome},
    coverage_snapshot::CoverageSnapshot,
    facts::CaseFacts,
};

/// The gRPC service name, for health and roles.
pub const GRPC_NAME: &str = "ekspertbistand.v1.RoutingService";

/// The role each RPC needs.
pub const RPC_ROLES: &[(&str, &str)] = &[
    ("OpenCase", "case-writer"),
    ("GetCase", "case-reader"),
    ("EvaluateRoute", "case-reader"),
];

/// Routing's handlers.
#[derive(Debug, Clone)]
pub struct RoutingApi {
    pool: PgPool,
    policy: Arc<PilotPolicy>,
    coverage: Arc<CoverageSnapshot>,
    writer: CaseWriter,
    outbox: Outbox,
}

impl RoutingApi {
    /// Handlers over the service's pool, pilot policy, coverage snapshot, case writer and
    /// outbox.
    pub fn new(
        pool: PgPool,
        policy: PilotPolicy,
        coverage: CoverageSnapshot,
        writer: CaseWriter,
        outbox: Outbox,
    ) -> Self {
        RoutingApi {
            pool,
            policy: Arc::new(policy),
            coverage: Arc::new(coverage),
            writer,
            outbox,
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

    async fn open_case(
        &self,
        request: v1::OpenCaseRequest,
    ) -> Result<v1::OpenCaseResponse, ApiError> {
        let mut violations = Violations::new();
        let request_id = violations.check(
            "request_id",
            Uuid::parse_str(&request.request_id).map_err(|_| "must be a UUID"),
        );
        let facts = CaseFacts::check("facts", request.facts.as_ref(), &mut violations);
        violations.finish()?;
        let (request_id, facts) = (
            validated(request_id, "request_id")?,
            validated(facts, "facts")?,
        );

        // Decide first (no round trip: coverage comes from the snapshot), build the case and its
        // CaseRouted event, then hand both to the writer, which stores them in one statement
        // with whatever other cases are waiting (group commit, ADR 0015) and detects a retry.
        let decision = self.decide(&facts).await?;
        let case = case_store::StoredCase::open(facts, decision);
        let event = self.outbox.pending(
            &EventSubject::case(case.case_id.to_string()),
            &case.routed_event(),
        )?;
        let new_case = NewCase {
            case,
            request_id,
            event,
        };
        let case = match self.writer.write(new_case).await? {
            WriteOutcome::Inserted(new_case) => new_case.case,
            WriteOutcome::RequestIdTaken(attempt) => {
                // A retry (or a concurrent twin) with this request id: its case is visible now.
                let mut connection = self.pool.acquire().await?;
                let existing = case_store::find_by_request_id(&mut connection, request_id)
                    .await?
                    .ok_or_else(|| {
                        ApiError::internal(anyhow::anyhow!("case of request {request_id} vanished"))
                    })?;
                return replayed(existing, &attempt.case);
            }
        };
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
}

/// The answer to a retried OpenCase: the first attempt's case, if it was opened with the same
/// facts as `attempt`, the case this retry would have opened.
fn replayed(
    existing: case_store::StoredCase,
    attempt: &case_store::StoredCase,
) -> Result<v1::OpenCaseResponse, ApiError> {
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

#[tonic::async_trait]
impl RoutingService for RoutingApi {
    async fn open_case(
        &self,
        request: Request<v1::OpenCaseRequest>,
    ) -> Result<Response<v1::OpenCaseResponse>, Status> {
        Ok(Response::new(
            RoutingApi::open_case(self, request.into_inner()).await?,
        ))
    }

    async fn get_case(
        &self,
        request: Request<v1::GetCaseRequest>,
    ) -> Result<Response<v1::GetCaseResponse>, Status> {
        let case_id = Uuid::parse_str(&request.get_ref().case_id)
            .map_err(|_| ApiError::invalid("case_id", "must be a UUID"))?;
        let mut connection = self.pool.acquire().await.map_err(ApiError::from)?;
        let case = case_store::find_by_case_id(&mut connection, case_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no case {case_id}")))?;
        Ok(Response::new(v1::GetCaseResponse {
            case: Some(case.to_wire()),
        }))
    }

    async fn evaluate_route(
        &self,
        request: Request<v1::EvaluateRouteRequest>,
    ) -> Result<Response<v1::EvaluateRouteResponse>, Status> {
        let facts = CaseFacts::from_request("facts", request.get_ref().facts.as_ref())?;
        let decision = self.decide(&facts).await?;
        Ok(Response::new(v1::EvaluateRouteResponse {
            decision: Some(decision_to_wire(decision)),
            county_code: facts.municipality.county().as_str().to_owned(),
        }))
    }
}
