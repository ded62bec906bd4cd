//! How routed cases are stored: one row per case, keyed by case id, unique on the client's
//! request id so a retried OpenCase finds the case its first attempt created. A case's flow
//! changes (ADR 0022) are rows of `case_flow_changes`; the case row keeps its routing decision
//! and holds the flow it follows now.

use ekb_domain::{Flow, RoutingDecision, RoutingReason};
use ekb_platform::ApiError;
use ekb_proto::{
    convert::{date_to_wire, decision_to_wire, flow_to_wire, reason_to_wire, timestamp_to_wire},
    v1,
};
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{facts::CaseFacts, flow_change::FlowChange};

/// A stored case.
#[derive(Debug, Clone)]
pub struct StoredCase {
    /// Case id.
    pub case_id: Uuid,
    /// The canonical facts line it was opened with.
    pub facts_fingerprint: String,
    /// The facts.
    pub facts: CaseFacts,
    /// The decision made when it was opened; never changed.
    pub decision: RoutingDecision,
    /// When it was opened; never changed.
    pub opened_at: OffsetDateTime,
    /// The flow it follows now: the decision's until a flow change.
    pub current_flow: Flow,
    /// The day an expert started on one of its pilot orders, if one has.
    pub pilot_expert_started: Option<Date>,
    /// Its flow changes, oldest first.
    pub flow_changes: Vec<FlowChange>,
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
    current_flow: String,
    pilot_expert_started_date: Option<Date>,
}

/// The columns OpenCase writes, as a literal so queries stay static SQL.
macro_rules! case_columns {
    () => {
        "case_id, facts_fingerprint, employer_organisation_number, municipality_number, \
         competence_area, case_date, flow, reason, opened_at, current_flow"
    };
}

/// `SELECT` of every column of [`CaseRow`].
macro_rules! select_case {
    () => {
        concat!(
            "SELECT ",
            case_columns!(),
            ", pilot_expert_started_date FROM cases "
        )
    };
}

impl StoredCase {
    fn from_row(row: CaseRow, flow_changes: Vec<FlowChange>) -> Result<Self, ApiError> {
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
            current_flow: Flow::parse_code(&row.current_flow)
                .map_err(|_| corrupt("current flow"))?,
            pilot_expert_started: row.pilot_expert_started_date,
            flow_changes,
        })
    }

    /// A new case opened at `opened_at` with `facts` and `decision`; nothing is stored yet.
    pub fn open(facts: CaseFacts, decision: RoutingDecision, opened_at: OffsetDateTime) -> Self {
        StoredCase {
            case_id: Uuid::now_v7(),
            facts_fingerprint: facts.fingerprint(),
            facts,
            current_flow: decision.flow,
            decision,
            opened_at,
            pilot_expert_started: None,
            flow_changes: Vec::new(),
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
        ", request_id, county_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
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
    .bind(case.current_flow.code())
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
    find_one(
        connection,
        concat!(select_case!(), "WHERE request_id = $1"),
        request_id,
    )
    .await
}

/// A case by id.
pub async fn find_by_case_id(
    connection: &mut PgConnection,
    case_id: Uuid,
) -> Result<Option<StoredCase>, ApiError> {
    find_one(
        connection,
        concat!(select_case!(), "WHERE case_id = $1"),
        case_id,
    )
    .await
}

/// A case by id, its row locked until the transaction ends, so two flow changes of one case
/// (a caseworker's and pilot-ordering's) happen one after the other.
pub async fn lock(
    connection: &mut PgConnection,
    case_id: Uuid,
) -> Result<Option<StoredCase>, ApiError> {
    find_one(
        connection,
        concat!(select_case!(), "WHERE case_id = $1 FOR UPDATE"),
        case_id,
    )
    .await
}

/// The case `sql` selects by `id`, with its flow changes.
async fn find_one(
    connection: &mut PgConnection,
    sql: &'static str,
    id: Uuid,
) -> Result<Option<StoredCase>, ApiError> {
    let row: Option<CaseRow> = sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(&mut *connection)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let changes = crate::flow_change::list(connection, row.case_id).await?;
    StoredCase::from_row(row, changes).map(Some)
}

/// Sets the flow `case_id` follows now.
pub async fn set_current_flow(
    connection: &mut PgConnection,
    case_id: Uuid,
    flow: Flow,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE cases SET current_flow = $2 WHERE case_id = $1")
        .bind(case_id)
        .bind(flow.code())
        .execute(connection)
        .await?;
    Ok(())
}

/// Records that an expert started on a pilot order of `case_id` on `date` (the earliest such day
/// is kept); whether routing has the case.
pub async fn record_expert_started(
    connection: &mut PgConnection,
    case_id: Uuid,
    date: Date,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE cases SET pilot_expert_started_date = \
           LEAST(COALESCE(pilot_expert_started_date, $2), $2) WHERE case_id = $1",
    )
    .bind(case_id)
    .bind(date)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(updated == 1)
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
            current_flow: flow_to_wire(self.current_flow) as i32,
            flow_changes: self.flow_changes.iter().map(FlowChange::to_wire).collect(),
            pilot_expert_started_date: self
                .pilot_expert_started
                .map(date_to_wire)
                .unwrap_or_default(),
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
