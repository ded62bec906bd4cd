//! How experts are stored: one row per expert, unique on (authorisation kind, reference), with
//! a version incremented by every change.

use ekb_domain::CompetenceArea;
use ekb_platform::ApiError;
use ekb_proto::{convert::competence_area_to_wire, v1};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::validation::ValidExpert;
use ekb_proto::convert::timestamp_to_wire;

#[derive(sqlx::FromRow)]
struct ExpertRow {
    expert_id: Uuid,
    name: String,
    supplier_organisation_number: String,
    profession: String,
    authorisation_kind: String,
    authorisation_reference: String,
    competence_areas: Vec<String>,
    version: i64,
    registered_at: OffsetDateTime,
}

macro_rules! expert_columns {
    () => {
        "expert_id, name, supplier_organisation_number, profession, authorisation_kind, \
         authorisation_reference, competence_areas, version, registered_at"
    };
}

fn area_codes(areas: &[CompetenceArea]) -> Vec<String> {
    areas.iter().map(|area| area.code().to_owned()).collect()
}

/// Wire enums of stored area codes.
pub fn areas_to_wire(codes: &[String]) -> Vec<i32> {
    codes
        .iter()
        .filter_map(|code| CompetenceArea::parse_code(code).ok())
        .map(|area| competence_area_to_wire(area) as i32)
        .collect()
}

impl From<ExpertRow> for v1::Expert {
    fn from(row: ExpertRow) -> Self {
        v1::Expert {
            expert_id: row.expert_id.to_string(),
            details: Some(v1::ExpertDetails {
                name: row.name,
                supplier_organisation_number: row.supplier_organisation_number,
                profession: v1::Profession::from_str_name(&row.profession).unwrap_or_default()
                    as i32,
                authorisation: Some(v1::Authorisation {
                    kind: v1::AuthorisationKind::from_str_name(&row.authorisation_kind)
                        .unwrap_or_default() as i32,
                    reference: row.authorisation_reference,
                }),
                competence_areas: areas_to_wire(&row.competence_areas),
            }),
            version: row.version,
            registered_at: Some(timestamp_to_wire(row.registered_at)),
        }
    }
}

type PgQueryAs<'q, O> = sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>;

/// Binds the details as parameters $2–$7 (insert and update share the order).
fn bind_details<'q, O>(query: PgQueryAs<'q, O>, expert: &'q ValidExpert) -> PgQueryAs<'q, O> {
    query
        .bind(expert.name.as_str())
        .bind(expert.supplier.as_str())
        .bind(expert.profession.as_str_name())
        .bind(expert.authorisation_kind.as_str_name())
        .bind(expert.authorisation_reference.as_str())
        .bind(area_codes(&expert.areas))
}

/// Inserts a new expert (version 1).
pub async fn insert(
    connection: &mut PgConnection,
    expert: &ValidExpert,
) -> Result<v1::Expert, ApiError> {
    let query = sqlx::query_as(concat!(
        "INSERT INTO experts (expert_id, name, supplier_organisation_number, profession, authorisation_kind, \
         authorisation_reference, competence_areas, version) VALUES ($1, $2, $3, $4, $5, $6, $7, 1) RETURNING ",
        expert_columns!()
    ))
    .bind(Uuid::now_v7());
    let row: ExpertRow = bind_details(query, expert)
        .fetch_one(connection)
        .await
        .map_err(|error| match ApiError::from(error) {
            ApiError::AlreadyExists(_) => ApiError::AlreadyExists(
                "an expert with this authorisation kind and reference is registered".to_owned(),
            ),
            other => other,
        })?;
    Ok(row.into())
}

/// Replaces an expert's details and bumps its version; `None` if unknown.
pub async fn update(
    connection: &mut PgConnection,
    expert_id: Uuid,
    expert: &ValidExpert,
) -> Result<Option<v1::Expert>, ApiError> {
    let query = sqlx::query_as(concat!(
        "UPDATE experts SET name = $2, supplier_organisation_number = $3, profession = $4, authorisation_kind = $5, \
         authorisation_reference = $6, competence_areas = $7, version = version + 1, updated_at = now() \
         WHERE expert_id = $1 RETURNING ",
        expert_columns!()
    ))
    .bind(expert_id);
    let row: Option<ExpertRow> = bind_details(query, expert)
        .fetch_optional(connection)
        .await?;
    Ok(row.map(Into::into))
}

/// An expert by id.
pub async fn find(
    connection: &mut PgConnection,
    expert_id: Uuid,
) -> Result<Option<v1::Expert>, ApiError> {
    let row: Option<ExpertRow> = sqlx::query_as(concat!(
        "SELECT ",
        expert_columns!(),
        " FROM experts WHERE expert_id = $1"
    ))
    .bind(expert_id)
    .fetch_optional(connection)
    .await?;
    Ok(row.map(Into::into))
}

/// Area codes for storage.
pub fn codes(areas: &[CompetenceArea]) -> Vec<String> {
    area_codes(areas)
}
