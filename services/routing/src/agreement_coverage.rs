//! Routing's read model of framework-agreement coverage, fed by expert-registry events
//! (AgreementActivated, AgreementUpdated, AgreementEnded), so the routing decision needs no
//! synchronous call to the registry. Each event carries the agreement's full state and version;
//! an older version never overwrites a newer one, so redelivery and replays are harmless.

use std::collections::HashSet;

use ekb_domain::{AgreementCoverage, CompetenceArea, CountyCode};
use ekb_platform::messaging::{HandlerError, Handles, UnitOfWork, parts::AgreementState};
use ekb_proto::{
    events::CarriesAgreement,
    v1::{self, EventEnvelope},
};
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

/// The registry events routing's read model applies alike, each carrying the agreement's full
/// state: AgreementActivated, AgreementUpdated and AgreementEnded. (A trait of routing's own, so
/// the one generic handler below can sit beside the handlers of other events.)
pub trait AgreementEvent: CarriesAgreement + prost::Name + Send + 'static {}

impl AgreementEvent for v1::AgreementActivated {}
impl AgreementEvent for v1::AgreementUpdated {}
impl AgreementEvent for v1::AgreementEnded {}

impl<E: AgreementEvent> Handles<E> for RoutingEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: E,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        store(work, &AgreementState::read(&event)?).await
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
