//! How routed cases are stored: one row per case, keyed by case id, unique on the client's
//! request id so a retried OpenCase finds the case its first attempt created.

use ekb_domain::{Flow, RoutingDecision, RoutingReason};
use ekb_platform::ApiError;
use ekb_proto::{
    convert::{flow_to_wire, reason_to_wire, timestamp_to_wire},
    v1,
};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::facts::CaseFacts;

/// A stored case.
#[derive(Debug, Clone)]
pub struct StoredCase {
    /// Case id.
    pub case_id: Uuid,
    /// The canonical facts line it was opened with.
    pub facts_fingerprint: String,
    /// The facts.
    pub facts: CaseFacts,
    /// The decision.
    pub decision: RoutingDecision,
    /// When it was opened.
    pub opened_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct CaseRow {
    case_id: Uuid,
    facts_fingerprint: String,
    employer_organisation_number: String,
    municipality_number: String,
    competence_area: Option<String>,
    case_date: time::Date,
    flow: String,
    reason: String,
    opened_at: OffsetDateTime,
}

/// The columns of [`CaseRow`], as a literal so queries stay static SQL.
macro_rules! case_columns {
    () => {
        "case_id, facts_fingerprint, employer_organisation_number, municipality_number, \
         competence_area, case_date, flow, reason, opened_at"
    };
}

impl TryFrom<CaseRow> for StoredCase {
    type Error = ApiError;

    fn try_from(row: CaseRow) -> Result<Self, ApiError> {
        let corrupt = |what: &str| {
            ApiError::internal(anyhow::anyhow!(
                "stored case {} has an invalid {what}",
                row.case_id
            ))
        };
        let choice = match &row.competence_area {
            Some(code) => ekb_domain::ExpertChoice::FrameworkAgreement(
                ekb_domain::CompetenceArea::parse_code(code)
                    .map_err(|_| corrupt("competence area"))?,
            ),
            None => ekb_domain::ExpertChoice::OwnExpert,
        };
        let facts = CaseFacts {
            employer: row
                .employer_organisation_number
                .parse()
                .map_err(|_| corrupt("organisation number"))?,
            municipality: row
                .municipality_number
                .parse()
                .map_err(|_| corrupt("municipality number"))?,
            choice,
            date: row.case_date,
        };
        let decision = RoutingDecision {
            flow: Flow::parse_code(&row.flow).map_err(|_| corrupt("flow"))?,
            reason: RoutingReason::parse_code(&row.reason).map_err(|_| corrupt("reason"))?,
        };
        Ok(StoredCase {
            case_id: row.case_id,
            facts_fingerprint: row.facts_fingerprint,
            facts,
            decision,
            opened_at: row.opened_at,
        })
    }
}

/// Inserts a new case unless the request id is taken; returns `None` when it was.
pub async fn insert_case(
    connection: &mut PgConnection,
    case_id: Uuid,
    request_id: Uuid,
    facts: &CaseFacts,
    decision: RoutingDecision,
) -> Result<Option<StoredCase>, ApiError> {
    let row: Option<CaseRow> = sqlx::query_as(concat!(
        "INSERT INTO cases (case_id, request_id, facts_fingerprint, employer_organisation_number, \
         municipality_number, county_code, competence_area, case_date, flow, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (request_id) DO NOTHING RETURNING ",
        case_columns!()
    ))
    .bind(case_id)
    .bind(request_id)
    .bind(facts.fingerprint())
    .bind(facts.employer.as_str())
    .bind(facts.municipality.as_str())
    .bind(facts.municipality.county().as_str())
    .bind(facts.competence_area().map(|area| area.code()))
    .bind(facts.date)
    .bind(decision.flow.code())
    .bind(decision.reason.code())
    .fetch_optional(connection)
    .await?;
    row.map(StoredCase::try_from).transpose()
}

/// The case a request id created, if any.
pub async fn find_by_request_id(
    connection: &mut PgConnection,
    request_id: Uuid,
) -> Result<Option<StoredCase>, ApiError> {
    let row: Option<CaseRow> = sqlx::query_as(concat!(
        "SELECT ",
        case_columns!(),
        " FROM cases WHERE request_id = $1"
    ))
    .bind(request_id)
    .fetch_optional(connection)
    .await?;
    row.map(StoredCase::try_from).transpose()
}

/// A case by id.
pub async fn find_by_case_id(
    connection: &mut PgConnection,
    case_id: Uuid,
) -> Result<Option<StoredCase>, ApiError> {
    let row: Option<CaseRow> = sqlx::query_as(concat!(
        "SELECT ",
        case_columns!(),
        " FROM cases WHERE case_id = $1"
    ))
    .bind(case_id)
    .fetch_optional(connection)
    .await?;
    row.map(StoredCase::try_from).transpose()
}

/// The contract's routing decision.
pub fn decision_to_wire(decision: RoutingDecision) -> v1::RoutingDecision {
    v1::RoutingDecision {
        flow: flow_to_wire(decision.flow) as i32,
        reason: reason_to_wire(decision.reason) as i32,
    }
}

impl StoredCase {
    /// The contract's case.
    pub fn to_wire(&self) -> v1::Case {
        v1::Case {
            case_id: self.case_id.to_string(),
            facts: Some(self.facts.to_wire()),
            county_code: self.facts.municipality.county().as_str().to_owned(),
            decision: Some(decision_to_wire(self.decision)),
            opened_at: Some(timestamp_to_wire(self.opened_at)),
        }
    }

    /// The CaseRouted event of this case.
    pub fn routed_event(&self) -> v1::CaseRouted {
        let wire = self.to_wire();
        let facts = wire.facts.unwrap_or_default();
        v1::CaseRouted {
            case_id: wire.case_id,
            employer_organisation_number: facts.employer_organisation_number,
            municipality_number: facts.municipality_number,
            county_code: wire.county_code,
            expert_choice: facts.expert_choice,
            case_date: facts.case_date,
            flow: flow_to_wire(self.decision.flow) as i32,
            reason: reason_to_wire(self.decision.reason) as i32,
            opened_at: wire.opened_at,
        }
    }
}
