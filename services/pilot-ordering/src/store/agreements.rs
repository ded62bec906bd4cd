//! The agreement and expert read models (from the registry): an older version never overwrites a newer one.

use ekb_domain::CompetenceArea;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::codes::OrderStatus;

/// An agreement's full state from a registry event.
#[derive(Debug, Clone)]
pub struct AgreementState {
    /// Id.
    pub agreement_id: Uuid,
    /// Reference.
    pub reference: String,
    /// Supplier.
    pub supplier: String,
    /// Supplier name.
    pub supplier_name: String,
    /// County.
    pub county: String,
    /// The areas it covers (at least one).
    pub areas: Vec<CompetenceArea>,
    /// Price.
    pub price_ore: i64,
    /// Ranking.
    pub ranking: i32,
    /// Capacity.
    pub capacity: i32,
    /// Valid from.
    pub valid_from: Date,
    /// Valid to.
    pub valid_to: Date,
    /// Ended on.
    pub ended_on: Option<Date>,
    /// Version.
    pub version: i64,
}

/// Stores `agreement` unless a newer version is stored, noting `now` as its last change; true
/// if it was stored.
pub async fn upsert_agreement(
    db: &mut PgConnection,
    agreement: &AgreementState,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO agreements (agreement_id, agreement_reference, supplier_organisation_number, \
         supplier_name, county_code, competence_areas, price_ore, ranking, monthly_capacity, \
         valid_from, valid_to, ended_on, version, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (agreement_id) DO UPDATE SET agreement_reference = EXCLUDED.agreement_reference, \
           supplier_organisation_number = EXCLUDED.supplier_organisation_number, \
           supplier_name = EXCLUDED.supplier_name, county_code = EXCLUDED.county_code, \
           competence_areas = EXCLUDED.competence_areas, price_ore = EXCLUDED.price_ore, \
           ranking = EXCLUDED.ranking, monthly_capacity = EXCLUDED.monthly_capacity, \
           valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to, \
           ended_on = EXCLUDED.ended_on, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at \
         WHERE agreements.version < EXCLUDED.version",
    )
    .bind(agreement.agreement_id)
    .bind(&agreement.reference)
    .bind(&agreement.supplier)
    .bind(&agreement.supplier_name)
    .bind(&agreement.county)
    .bind(
        agreement
            .areas
            .iter()
            .map(CompetenceArea::code)
            .collect::<Vec<_>>(),
    )
    .bind(agreement.price_ore)
    .bind(agreement.ranking)
    .bind(agreement.capacity)
    .bind(agreement.valid_from)
    .bind(agreement.valid_to)
    .bind(agreement.ended_on)
    .bind(agreement.version)
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Stores an expert unless a newer version is stored.
pub async fn upsert_expert(
    db: &mut PgConnection,
    expert_id: Uuid,
    supplier: &str,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO experts (expert_id, supplier_organisation_number, version) VALUES ($1, $2, $3) \
         ON CONFLICT (expert_id) DO UPDATE SET supplier_organisation_number = \
         EXCLUDED.supplier_organisation_number, version = EXCLUDED.version \
         WHERE experts.version < EXCLUDED.version",
    )
    .bind(expert_id)
    .bind(supplier)
    .bind(version)
    .execute(db)
    .await?;
    Ok(())
}

/// Agreements no longer active on `today` (validity over or ended) with FUNDS_PENDING or
/// PLACED orders.
pub async fn stopped_agreements_with_open_orders(
    db: &mut PgConnection,
    today: Date,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT a.agreement_id FROM agreements a JOIN orders o USING (agreement_id) \
         WHERE o.status IN ($2, $3) AND (a.valid_to < $1 OR a.valid_from > $1 OR a.ended_on < $1)",
    )
    .bind(today)
    .bind(OrderStatus::FundsPending)
    .bind(OrderStatus::Placed)
    .fetch_all(db)
    .await
}
