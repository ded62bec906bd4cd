//! How experts are stored: one row per expert, unique on (authorisation kind, reference), with
//! a version incremented by every change.

use ekb_domain::CompetenceArea;
use ekb_platform::ApiError;
use ekb_proto::{
    convert::{competence_areas_to_wire, timestamp_to_wire},
    v1,
};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::commands::ValidExpert;

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

/// A stored expert.
#[derive(Debug, Clone)]
pub struct StoredExpert {
    /// Id.
    pub expert_id: Uuid,
    /// The details.
    pub details: ValidExpert,
    /// Incremented by every change.
    pub version: i64,
    /// When registered.
    pub registered_at: OffsetDateTime,
}

/// Why a stored row cannot be read: a bug or a corrupt database, never the caller's fault, and
/// never papered over (an unreadable area must not silently vanish from an event).
pub fn corrupt(what: &str, id: Uuid, value: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "stored {what} of {id} is unreadable: {value:?}"
    ))
}

/// Domain areas of stored area codes; INTERNAL if one is unreadable.
pub fn areas_from_codes(codes: &[String], id: Uuid) -> Result<Vec<CompetenceArea>, ApiError> {
    codes
        .iter()
        .map(|code| {
            CompetenceArea::parse_code(code).map_err(|_| corrupt("competence area", id, code))
        })
        .collect()
}

/// Area codes for storage.
pub fn codes(areas: &[CompetenceArea]) -> Vec<String> {
    areas.iter().map(|area| area.code().to_owned()).collect()
}

impl TryFrom<ExpertRow> for StoredExpert {
    type Error = ApiError;

    fn try_from(row: ExpertRow) -> Result<Self, ApiError> {
        let id = row.expert_id;
        let details = ValidExpert {
            supplier: row
                .supplier_organisation_number
                .parse()
                .map_err(|_| corrupt("supplier", id, &row.supplier_organisation_number))?,
            profession: v1::Profession::from_str_name(&row.profession)
                .ok_or_else(|| corrupt("profession", id, &row.profession))?,
            authorisation_kind: v1::AuthorisationKind::from_str_name(&row.authorisation_kind)
                .ok_or_else(|| corrupt("authorisation kind", id, &row.authorisation_kind))?,
            areas: areas_from_codes(&row.competence_areas, id)?,
            name: row.name,
            authorisation_reference: row.authorisation_reference,
        };
        Ok(StoredExpert {
            expert_id: id,
            details,
            version: row.version,
            registered_at: row.registered_at,
        })
    }
}

impl StoredExpert {
    /// The contract's expert.
    pub fn to_wire(&self) -> v1::Expert {
        let details = &self.details;
        v1::Expert {
            expert_id: self.expert_id.to_string(),
            details: Some(v1::ExpertDetails {
                name: details.name.clone(),
                supplier_organisation_number: details.supplier.to_string(),
                profession: details.profession as i32,
                authorisation: Some(v1::Authorisation {
                    kind: details.authorisation_kind as i32,
                    reference: details.authorisation_reference.clone(),
                }),
                competence_areas: competence_areas_to_wire(&details.areas),
            }),
            version: self.version,
            registered_at: Some(timestamp_to_wire(self.registered_at)),
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
        .bind(codes(&expert.areas))
}

/// Inserts a new expert (version 1).
pub async fn insert(
    connection: &mut PgConnection,
    expert: &ValidExpert,
    now: OffsetDateTime,
) -> Result<StoredExpert, ApiError> {
    let query = sqlx::query_as(concat!(
        "INSERT INTO experts (expert_id, name, supplier_organisation_number, profession, authorisation_kind, \
         authorisation_reference, competence_areas, version, registered_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8) RETURNING ",
        expert_columns!()
    ))
    .bind(Uuid::now_v7());
    let row: ExpertRow = bind_details(query, expert)
        .bind(now)
        .fetch_one(connection)
        .await?;
    row.try_into()
}

/// Replaces an expert's details and bumps its version; `None` if unknown.
pub async fn update(
    connection: &mut PgConnection,
    expert_id: Uuid,
    expert: &ValidExpert,
    now: OffsetDateTime,
) -> Result<Option<StoredExpert>, ApiError> {
    let query = sqlx::query_as(concat!(
        "UPDATE experts SET name = $2, supplier_organisation_number = $3, profession = $4, authorisation_kind = $5, \
         authorisation_reference = $6, competence_areas = $7, version = version + 1, updated_at = $8 \
         WHERE expert_id = $1 RETURNING ",
        expert_columns!()
    ))
    .bind(expert_id);
    let row: Option<ExpertRow> = bind_details(query, expert)
        .bind(now)
        .fetch_optional(connection)
        .await?;
    row.map(StoredExpert::try_from).transpose()
}

/// An expert by id.
pub async fn find(
    connection: &mut PgConnection,
    expert_id: Uuid,
) -> Result<Option<StoredExpert>, ApiError> {
    let row: Option<ExpertRow> = sqlx::query_as(concat!(
        "SELECT ",
        expert_columns!(),
        " FROM experts WHERE expert_id = $1"
    ))
    .bind(expert_id)
    .fetch_optional(connection)
    .await?;
    row.map(StoredExpert::try_from).transpose()
}
