//! The case read model (from routing), the fallback noted on a case, and the PILOT cases no agreement covers any more.

use ekb_domain::CompetenceArea;
use sqlx::{AssertSqlSafe, PgConnection, types::Text};
use time::{Date, OffsetDateTime};

use super::HOLDING;
use uuid::Uuid;

/// A case from the read model.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Case {
    /// Id.
    pub case_id: Uuid,
    /// Sequence (work-list paging).
    pub sequence: i64,
    /// County.
    pub county_code: String,
    /// The framework-agreement area; None when the employer chose its own expert.
    pub competence_area: Option<Text<CompetenceArea>>,
    /// `PILOT` or `REGULAR`.
    pub flow: String,
    /// Opened.
    pub opened_at: OffsetDateTime,
}

impl Case {
    /// The framework-agreement area; None when the employer chose its own expert.
    pub fn area(&self) -> Option<CompetenceArea> {
        self.competence_area.map(|Text(area)| area)
    }

    /// Whether the case is in the pilot flow.
    pub fn is_pilot(&self) -> bool {
        self.flow == "PILOT"
    }
}

/// A case as routing's events tell it.
#[derive(Debug, Clone)]
pub struct RoutedCase<'a> {
    /// Id.
    pub case_id: Uuid,
    /// County.
    pub county: &'a str,
    /// The employer.
    pub employer: &'a str,
    /// The framework-agreement area; None when the employer chose its own expert.
    pub area: Option<CompetenceArea>,
    /// Opened.
    pub opened_at: OffsetDateTime,
    /// When this service received it (the service clock).
    pub received_at: OffsetDateTime,
}

/// Stores a routed case in `flow` (first delivery wins; a case never changes its routing).
pub async fn insert_case(
    db: &mut PgConnection,
    case: &RoutedCase<'_>,
    flow: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (case_id, county_code, employer_organisation_number, competence_area, \
         flow, opened_at, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (case_id) DO NOTHING",
    )
    .bind(case.case_id)
    .bind(case.county)
    .bind(case.employer)
    .bind(case.area.map(Text))
    .bind(flow)
    .bind(case.opened_at)
    .bind(case.received_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks the case REGULAR, storing it if it is unknown here.
pub async fn set_case_regular(
    db: &mut PgConnection,
    case: &RoutedCase<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (case_id, county_code, employer_organisation_number, competence_area, \
         flow, opened_at, received_at) VALUES ($1, $2, $3, $4, 'REGULAR', $5, $6) \
         ON CONFLICT (case_id) DO UPDATE SET flow = 'REGULAR'",
    )
    .bind(case.case_id)
    .bind(case.county)
    .bind(case.employer)
    .bind(case.area.map(Text))
    .bind(case.opened_at)
    .bind(case.received_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The case, locked for update when `lock`.
pub async fn find_case(
    db: &mut PgConnection,
    case_id: Uuid,
    lock: bool,
) -> Result<Option<Case>, sqlx::Error> {
    let sql = format!(
        "SELECT case_id, sequence, county_code, competence_area, flow, opened_at FROM cases \
         WHERE case_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(case_id)
        .fetch_optional(db)
        .await
}

/// Notes that a fallback was requested for the case at `at` (so no sweep asks again).
pub async fn note_fallback(
    db: &mut PgConnection,
    case_id: Uuid,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cases SET fallback_requested_at = $2 WHERE case_id = $1")
        .bind(case_id)
        .bind(at)
        .execute(db)
        .await?;
    Ok(())
}

/// PILOT cases with no order that holds them (FUNDS_PENDING, PLACED, ACCEPTED, STARTED,
/// COMPLETED), no fallback asked yet, and no active agreement covering them on `today`.
/// With `agreement`, only cases that agreement covers.
pub async fn uncovered_pilot_cases(
    db: &mut PgConnection,
    today: Date,
    agreement: Option<Uuid>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.case_id FROM cases c WHERE c.flow = 'PILOT' AND c.fallback_requested_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.case_id = c.case_id AND o.status = ANY($2)) \
         AND NOT EXISTS (SELECT 1 FROM agreements a WHERE a.county_code = c.county_code \
             AND c.competence_area = ANY(a.competence_areas) AND a.valid_from <= $1 \
             AND a.valid_to >= $1 AND (a.ended_on IS NULL OR a.ended_on >= $1)) \
         AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM agreements a WHERE a.agreement_id = $3 \
             AND a.county_code = c.county_code AND c.competence_area = ANY(a.competence_areas))) \
         ORDER BY c.opened_at",
    )
    .bind(today)
    .bind(HOLDING.as_slice())
    .bind(agreement)
    .fetch_all(db)
    .await
}
