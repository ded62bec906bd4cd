//! Routing's read model of framework-agreement coverage, fed by expert-registry events
//! (AgreementActivated, AgreementUpdated, AgreementEnded), so the routing decision needs no
//! synchronous call to the registry. Each event carries the agreement's full state and version;
//! an older version never overwrites a newer one, so redelivery and replays are harmless.

use std::collections::HashSet;

use ekb_domain::{AgreementCoverage, CompetenceArea, CountyCode};
use ekb_platform::messaging::{HandlerError, UnitOfWork, parts::AgreementState};
use ekb_proto::{
    events::CarriesAgreement,
    v1::{self, EventEnvelope},
};
use prost::Name;
use time::Date;

use crate::RoutingEvents;

/// The competence areas covered by an active agreement in one county on one date.
#[derive(Debug, Default)]
pub struct CoveredAreas(HashSet<CompetenceArea>);

impl FromIterator<CompetenceArea> for CoveredAreas {
    fn from_iter<I: IntoIterator<Item = CompetenceArea>>(areas: I) -> Self {
        CoveredAreas(areas.into_iter().collect())
    }
}

impl AgreementCoverage for CoveredAreas {
    fn has_active_agreement(
        &self,
        _county: &CountyCode,
        area: CompetenceArea,
        _date: Date,
    ) -> bool {
        self.0.contains(&area)
    }
}

ekb_platform::handle_with!(
    RoutingEvents,
    apply_agreement: v1::AgreementActivated,
    v1::AgreementUpdated,
    v1::AgreementEnded,
);

impl RoutingEvents {
    /// Applies the agreement state any of the registry's agreement events carries.
    async fn apply_agreement<E: CarriesAgreement + Name>(
        &self,
        work: &mut UnitOfWork,
        event: &E,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        store(work, &AgreementState::read(event)?).await
    }
}

/// Stores the coverage of `agreement` unless a newer version is stored already. An agreement
/// ended before it started covers nothing: its row keeps the start day and no areas.
async fn store(work: &mut UnitOfWork, agreement: &AgreementState) -> Result<(), HandlerError> {
    let (areas, covered): (Vec<&str>, (Date, Date)) = match agreement.covered() {
        Some(covered) => (
            agreement.areas.iter().map(|area| area.code()).collect(),
            (covered.from(), covered.to()),
        ),
        None => (Vec::new(), (agreement.valid_from, agreement.valid_from)),
    };
    sqlx::query(
        "INSERT INTO agreement_coverage (agreement_id, county_code, competence_areas, valid_from, valid_to, version, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (agreement_id) DO UPDATE SET county_code = EXCLUDED.county_code, \
           competence_areas = EXCLUDED.competence_areas, valid_from = EXCLUDED.valid_from, \
           valid_to = EXCLUDED.valid_to, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at \
         WHERE agreement_coverage.version < EXCLUDED.version",
    )
    .bind(agreement.agreement_id)
    .bind(agreement.county.as_str())
    .bind(&areas)
    .bind(covered.0)
    .bind(covered.1)
    .bind(agreement.version)
    .bind(work.now())
    .execute(work.db())
    .await?;
    Ok(())
}
