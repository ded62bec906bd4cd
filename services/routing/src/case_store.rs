//! How routed cases are stored: one row per case, keyed by case id, unique on the client's
//! request id so a retried OpenCase finds the case its first attempt created.

use ekb_domain::{Flow, RoutingDecision, RoutingReason};
use ekb_platform::ApiError;
use ekb_proto::{
    convert::{decision_to_wire, flow_to_wire, reason_to_wire, timestamp_to_wire},
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

impl StoredCase {
    /// A new case opened now with `facts` and `decision`; nothing is stored yet. The opening
    /// time is cut to microseconds, PostgreSQL's precision, so the stored case and its event
    /// carry the same instant.
    pub fn open(facts: CaseFacts, decision: RoutingDecision) -> Self {
        let now = OffsetDateTime::now_utc();
        let opened_at = now
            .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now);
        StoredCase {
            case_id: Uuid::now_v7(),
            facts_fingerprint: facts.fingerprint(),
            facts,
            decision,
            opened_at,
        }
    }
}

/// Stores `case` under the client's `request_id` unless that request id is taken already;
/// whether it was stored. When the request id belongs to a transaction still in progress,
/// `ON CONFLICT` waits for it, so a case that was not stored has a visible twin afterwards.
pub async fn insert(
    connection: &mut PgConnection,
    case: &StoredCase,
    request_id: Uuid,
) -> Result<bool, ApiError> {
    let inserted = sqlx::query(concat!(
        "INSERT INTO cases (",
        case_columns!(),
        ", request_id, county_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (request_id) DO NOTHING"
    ))
    .bind(case.case_id)
    .bind(&case.facts_fingerprint)
    .bind(case.facts.employer.as_str())
    .bind(case.facts.municipality.as_str())
    .bind(case.facts.competence_area().map(|area| area.code()))
    .bind(case.facts.date)
    .bind(case.decision.flow.code())
    .bind(case.decision.reason.code())
    .bind(case.opened_at)
    .bind(request_id)
    .bind(case.facts.municipality.county().as_str())
    .execute(connection)
    .await?
    .rows_affected();
    Ok(inserted == 1)
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
