//! How framework agreements are stored: one row per agreement, unique on NAV's reference,
//! versioned, with the early end date kept beside the validity period.

use ekb_domain::{CompetenceArea, CountyCode, DateRange, OrganisationNumber};
use ekb_platform::{ApiError, change, messaging::UnitOfWork};
use ekb_proto::{
    convert::{competence_areas_to_wire, date_to_wire},
    v1,
};
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{
    commands::{RegisterAgreement, ValidTerms},
    expert_store::{areas_from_codes, codes, corrupt},
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
    end_reason: Option<String>,
    version: i64,
}

macro_rules! agreement_columns {
    () => {
        "agreement_id, agreement_reference, supplier_organisation_number, supplier_name, county_code, \
         competence_areas, price_per_assignment_ore, ranking, monthly_capacity, valid_from, valid_to, ended_on, \
         end_reason, version"
    };
}

/// A stored framework agreement.
#[derive(Debug, Clone)]
pub struct StoredAgreement {
    /// Id.
    pub agreement_id: Uuid,
    /// NAV's reference.
    pub reference: String,
    /// Supplier.
    pub supplier: OrganisationNumber,
    /// Supplier name.
    pub supplier_name: String,
    /// County.
    pub county: CountyCode,
    /// Terms (validity included).
    pub terms: ValidTerms,
    /// Set once ended early.
    pub ended_on: Option<Date>,
    /// Why it was ended early (empty while it has not ended).
    pub end_reason: String,
    /// Incremented by every change.
    pub version: i64,
}

impl TryFrom<AgreementRow> for StoredAgreement {
    type Error = ApiError;

    fn try_from(row: AgreementRow) -> Result<Self, ApiError> {
        let id = row.agreement_id;
        Ok(StoredAgreement {
            agreement_id: id,
            supplier: row
                .supplier_organisation_number
                .parse()
                .map_err(|_| corrupt("supplier", id, &row.supplier_organisation_number))?,
            county: CountyCode::parse(&row.county_code)
                .map_err(|_| corrupt("county", id, &row.county_code))?,
            terms: ValidTerms {
                areas: areas_from_codes(&row.competence_areas, id)?,
                price_ore: row.price_per_assignment_ore,
                ranking: row.ranking,
                monthly_capacity: row.monthly_capacity,
                validity: DateRange::new(row.valid_from, row.valid_to)
                    .map_err(|_| corrupt("validity", id, &row.valid_to.to_string()))?,
            },
            reference: row.agreement_reference,
            supplier_name: row.supplier_name,
            ended_on: row.ended_on,
            end_reason: row.end_reason.unwrap_or_default(),
            version: row.version,
        })
    }
}

impl StoredAgreement {
    /// The contract's agreement.
    pub fn to_wire(&self) -> v1::Agreement {
        let terms = &self.terms;
        v1::Agreement {
            agreement_id: self.agreement_id.to_string(),
            agreement_reference: self.reference.clone(),
            supplier_organisation_number: self.supplier.to_string(),
            supplier_name: self.supplier_name.clone(),
            county_code: self.county.as_str().to_owned(),
            terms: Some(v1::AgreementTerms {
                competence_areas: competence_areas_to_wire(&terms.areas),
                price_per_assignment_ore: terms.price_ore,
                ranking: terms.ranking,
                monthly_capacity: terms.monthly_capacity,
                validity: Some(v1::DateRange {
                    from_date: date_to_wire(terms.validity.from()),
                    to_date: date_to_wire(terms.validity.to()),
                }),
            }),
            ended_on_date: self.ended_on.map(date_to_wire).unwrap_or_default(),
            version: self.version,
        }
    }
}

/// Inserts a new agreement (version 1).
pub async fn insert(
    connection: &mut PgConnection,
    agreement: &RegisterAgreement,
    now: OffsetDateTime,
) -> Result<StoredAgreement, ApiError> {
    let terms = &agreement.terms;
    let row: AgreementRow = sqlx::query_as(concat!(
        "INSERT INTO agreements (agreement_id, agreement_reference, supplier_organisation_number, supplier_name, \
         county_code, competence_areas, price_per_assignment_ore, ranking, monthly_capacity, valid_from, valid_to, version, \
         registered_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12) RETURNING ",
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
    .bind(now)
    .fetch_one(connection)
    .await?;
    row.try_into()
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
    row.map(StoredAgreement::try_from).transpose()
}

impl change::Record for StoredAgreement {
    type Key = Uuid;

    async fn load_locked(work: &mut UnitOfWork, agreement_id: &Uuid) -> Result<Self, ApiError> {
        find_for_update(work.db(), *agreement_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no agreement {agreement_id}")))
    }

    async fn save(&self, work: &mut UnitOfWork) -> Result<(), ApiError> {
        let now = work.now();
        let terms = &self.terms;
        sqlx::query(
            "UPDATE agreements SET competence_areas = $2, price_per_assignment_ore = $3, ranking = $4, \
             monthly_capacity = $5, valid_from = $6, valid_to = $7, ended_on = $8, end_reason = $9, \
             version = $10, updated_at = $11 WHERE agreement_id = $1",
        )
        .bind(self.agreement_id)
        .bind(codes(&terms.areas))
        .bind(terms.price_ore)
        .bind(terms.ranking)
        .bind(terms.monthly_capacity)
        .bind(terms.validity.from())
        .bind(terms.validity.to())
        .bind(self.ended_on)
        .bind((!self.end_reason.is_empty()).then_some(&self.end_reason))
        .bind(self.version)
        .bind(now)
        .execute(work.db())
        .await?;
        Ok(())
    }
}

/// Agreements covering `area` in `county` on `date`, best ranking first.
pub async fn find_covering(
    connection: &mut PgConnection,
    county: &CountyCode,
    area: CompetenceArea,
    date: Date,
) -> Result<Vec<StoredAgreement>, ApiError> {
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
    rows.into_iter().map(StoredAgreement::try_from).collect()
}
