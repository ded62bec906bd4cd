//! How framework agreements are stored: one row per agreement, unique on NAV's reference,
//! versioned, with the early end date kept beside the validity period.

use ekb_domain::{CompetenceArea, CountyCode, OrganisationNumber};
use ekb_platform::ApiError;
use ekb_proto::{convert::date_to_wire, v1};
use sqlx::PgConnection;
use time::Date;
use uuid::Uuid;

use crate::{
    expert_store::{areas_to_wire, codes},
    validation::ValidTerms,
};

#[derive(sqlx::FromRow)]
struct AgreementRow {
    agreement_id: Uuid,
    agreement_reference: String,
    supplier_organisation_number: String,
    supplier_name: String,
    county_code: String,
    competence_areas: Vec<String>,
    price_per_assignment_ore: i64,
    ranking: i32,
    monthly_capacity: i32,
    valid_from: Date,
    valid_to: Date,
    ended_on: Option<Date>,
    version: i64,
}

macro_rules! agreement_columns {
    () => {
        "agreement_id, agreement_reference, supplier_organisation_number, supplier_name, county_code, \
         competence_areas, price_per_assignment_ore, ranking, monthly_capacity, valid_from, valid_to, ended_on, version"
    };
}

/// A stored agreement with the facts handlers check before changing it.
#[derive(Debug, Clone)]
pub struct StoredAgreement {
    /// The contract form.
    pub wire: v1::Agreement,
    /// Validity start.
    pub valid_from: Date,
    /// Validity end.
    pub valid_to: Date,
    /// Set once ended.
    pub ended_on: Option<Date>,
}

impl From<AgreementRow> for StoredAgreement {
    fn from(row: AgreementRow) -> Self {
        let wire = v1::Agreement {
            agreement_id: row.agreement_id.to_string(),
            agreement_reference: row.agreement_reference,
            supplier_organisation_number: row.supplier_organisation_number,
            supplier_name: row.supplier_name,
            county_code: row.county_code,
            terms: Some(v1::AgreementTerms {
                competence_areas: areas_to_wire(&row.competence_areas),
                price_per_assignment_ore: row.price_per_assignment_ore,
                ranking: row.ranking,
                monthly_capacity: row.monthly_capacity,
                validity: Some(v1::DateRange {
                    from_date: date_to_wire(row.valid_from),
                    to_date: date_to_wire(row.valid_to),
                }),
            }),
            ended_on_date: row.ended_on.map(date_to_wire).unwrap_or_default(),
            version: row.version,
        };
        StoredAgreement {
            wire,
            valid_from: row.valid_from,
            valid_to: row.valid_to,
            ended_on: row.ended_on,
        }
    }
}

/// A new agreement's identity.
#[derive(Debug, Clone)]
pub struct NewAgreement {
    /// NAV's reference.
    pub reference: String,
    /// Supplier.
    pub supplier: OrganisationNumber,
    /// Supplier name.
    pub supplier_name: String,
    /// County.
    pub county: CountyCode,
    /// Terms.
    pub terms: ValidTerms,
}

/// Inserts a new agreement (version 1).
pub async fn insert(
    connection: &mut PgConnection,
    agreement: &NewAgreement,
) -> Result<StoredAgreement, ApiError> {
    let terms = &agreement.terms;
    let row: AgreementRow = sqlx::query_as(concat!(
        "INSERT INTO agreements (agreement_id, agreement_reference, supplier_organisation_number, supplier_name, \
         county_code, competence_areas, price_per_assignment_ore, ranking, monthly_capacity, valid_from, valid_to, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1) RETURNING ",
        agreement_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(&agreement.reference)
    .bind(agreement.supplier.as_str())
    .bind(&agreement.supplier_name)
    .bind(agreement.county.as_str())
    .bind(codes(&terms.areas))
    .bind(terms.price_ore)
    .bind(terms.ranking)
    .bind(terms.monthly_capacity)
    .bind(terms.validity.from())
    .bind(terms.validity.to())
    .fetch_one(connection)
    .await
    .map_err(|error| match ApiError::from(error) {
        ApiError::AlreadyExists(_) => ApiError::AlreadyExists("agreement_reference is already registered".to_owned()),
        other => other,
    })?;
    Ok(row.into())
}

/// An agreement by id, locked for update within the caller's transaction.
pub async fn find_for_update(
    connection: &mut PgConnection,
    agreement_id: Uuid,
) -> Result<Option<StoredAgreement>, ApiError> {
    fetch_by_id(
        connection,
        concat!(
            "SELECT ",
            agreement_columns!(),
            " FROM agreements WHERE agreement_id = $1 FOR UPDATE"
        ),
        agreement_id,
    )
    .await
}

/// An agreement by id.
pub async fn find(
    connection: &mut PgConnection,
    agreement_id: Uuid,
) -> Result<Option<StoredAgreement>, ApiError> {
    fetch_by_id(
        connection,
        concat!(
            "SELECT ",
            agreement_columns!(),
            " FROM agreements WHERE agreement_id = $1"
        ),
        agreement_id,
    )
    .await
}

async fn fetch_by_id(
    connection: &mut PgConnection,
    sql: &'static str,
    agreement_id: Uuid,
) -> Result<Option<StoredAgreement>, ApiError> {
    let row: Option<AgreementRow> = sqlx::query_as(sql)
        .bind(agreement_id)
        .fetch_optional(connection)
        .await?;
    Ok(row.map(Into::into))
}

/// Replaces the terms and bumps the version.
pub async fn update_terms(
    connection: &mut PgConnection,
    agreement_id: Uuid,
    terms: &ValidTerms,
) -> Result<StoredAgreement, ApiError> {
    let row: AgreementRow = sqlx::query_as(concat!(
        "UPDATE agreements SET competence_areas = $2, price_per_assignment_ore = $3, ranking = $4, \
         monthly_capacity = $5, valid_from = $6, valid_to = $7, version = version + 1, updated_at = now() \
         WHERE agreement_id = $1 RETURNING ",
        agreement_columns!()
    ))
    .bind(agreement_id)
    .bind(codes(&terms.areas))
    .bind(terms.price_ore)
    .bind(terms.ranking)
    .bind(terms.monthly_capacity)
    .bind(terms.validity.from())
    .bind(terms.validity.to())
    .fetch_one(connection)
    .await?;
    Ok(row.into())
}

/// Ends the agreement on `end_date` and bumps the version.
pub async fn end(
    connection: &mut PgConnection,
    agreement_id: Uuid,
    end_date: Date,
    reason: &str,
) -> Result<StoredAgreement, ApiError> {
    let row: AgreementRow = sqlx::query_as(concat!(
        "UPDATE agreements SET ended_on = $2, end_reason = $3, version = version + 1, updated_at = now() \
         WHERE agreement_id = $1 RETURNING ",
        agreement_columns!()
    ))
    .bind(agreement_id)
    .bind(end_date)
    .bind(reason)
    .fetch_one(connection)
    .await?;
    Ok(row.into())
}

/// Agreements covering `area` in `county` on `date`, best ranking first.
pub async fn find_covering(
    connection: &mut PgConnection,
    county: &CountyCode,
    area: CompetenceArea,
    date: Date,
) -> Result<Vec<v1::Agreement>, ApiError> {
    let rows: Vec<AgreementRow> = sqlx::query_as(concat!(
        "SELECT ",
        agreement_columns!(),
        " FROM agreements WHERE county_code = $1 AND $2 = ANY(competence_areas) \
         AND valid_from <= $3 AND valid_to >= $3 AND (ended_on IS NULL OR ended_on >= $3) \
         ORDER BY ranking, agreement_reference"
    ))
    .bind(county.as_str())
    .bind(area.code())
    .bind(date)
    .fetch_all(connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| StoredAgreement::from(row).wire)
        .collect())
}
