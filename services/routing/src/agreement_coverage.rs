//! Routing's read model of framework-agreement coverage, fed by expert-registry events
//! (AgreementActivated, AgreementUpdated, AgreementEnded), so the routing decision needs no
//! synchronous call to the registry. Each event carries the agreement's full state and version;
//! an older version never overwrites a newer one, so redelivery and replays are harmless.

use std::collections::HashSet;

use ekb_domain::{AgreementCoverage, CompetenceArea, CountyCode, DateRange};
use ekb_platform::messaging::{HandlerError, Handles, UnitOfWork};
use ekb_proto::{
    convert::competence_area_from_wire,
    events::CarriesAgreement,
    v1::{self, EventEnvelope},
};
use time::Date;
use uuid::Uuid;

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
pub trait AgreementEvent: CarriesAgreement + Send + 'static {}

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
        store(work, event.agreement()).await
    }
}

/// Stores the coverage of `agreement` unless a newer version is stored already.
async fn store(
    work: &mut UnitOfWork,
    agreement: Option<&v1::Agreement>,
) -> Result<(), HandlerError> {
    let coverage = Coverage::from_wire(agreement)?;
    sqlx::query(
        "INSERT INTO agreement_coverage (agreement_id, county_code, competence_areas, valid_from, valid_to, version) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (agreement_id) DO UPDATE SET county_code = EXCLUDED.county_code, \
           competence_areas = EXCLUDED.competence_areas, valid_from = EXCLUDED.valid_from, \
           valid_to = EXCLUDED.valid_to, version = EXCLUDED.version, updated_at = now() \
         WHERE agreement_coverage.version < EXCLUDED.version",
    )
    .bind(coverage.agreement_id)
    .bind(coverage.county.as_str())
    .bind(&coverage.areas)
    .bind(coverage.covered.from())
    .bind(coverage.covered.to())
    .bind(coverage.version)
    .execute(work.db())
    .await?;
    Ok(())
}

/// The part of an agreement routing needs, validated.
struct Coverage {
    agreement_id: Uuid,
    county: CountyCode,
    areas: Vec<String>,
    covered: DateRange,
    version: i64,
}

impl Coverage {
    fn from_wire(agreement: Option<&v1::Agreement>) -> Result<Self, HandlerError> {
        let invalid =
            |what: &str| HandlerError::Permanent(format!("agreement event has an invalid {what}"));
        let agreement = agreement.ok_or_else(|| invalid("agreement (missing)"))?;
        let terms = agreement
            .terms
            .as_ref()
            .ok_or_else(|| invalid("terms (missing)"))?;
        let validity = terms
            .validity
            .as_ref()
            .ok_or_else(|| invalid("validity (missing)"))?;
        let from = ekb_domain::parse_iso_date(&validity.from_date)
            .map_err(|_| invalid("validity.from_date"))?;
        let mut to = ekb_domain::parse_iso_date(&validity.to_date)
            .map_err(|_| invalid("validity.to_date"))?;
        if !agreement.ended_on_date.is_empty() {
            let ended = ekb_domain::parse_iso_date(&agreement.ended_on_date)
                .map_err(|_| invalid("ended_on_date"))?;
            to = to.min(ended);
        }
        let areas = terms
            .competence_areas
            .iter()
            .map(|value| competence_area_from_wire(*value).map(|area| area.code().to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid("competence area"))?;
        // An agreement ended before it started covers nothing: store an empty range's stand-in.
        let covered = if to < from {
            DateRange::new(from, from).map_err(|_| invalid("validity"))?
        } else {
            DateRange::new(from, to).map_err(|_| invalid("validity"))?
        };
        let areas = if to < from { Vec::new() } else { areas };
        Ok(Coverage {
            agreement_id: Uuid::parse_str(&agreement.agreement_id)
                .map_err(|_| invalid("agreement_id"))?,
            county: CountyCode::parse(&agreement.county_code)
                .map_err(|_| invalid("county_code"))?,
            areas,
            covered,
            version: agreement.version,
        })
    }
}
