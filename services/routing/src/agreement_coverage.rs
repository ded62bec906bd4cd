//! Routing's read model of framework-agreement coverage, fed by expert-registry events
//! (AgreementActivated, AgreementUpdated, AgreementEnded), so the routing decision needs no
//! synchronous call to the registry. Each event carries the agreement's full state and version;
//! an older version never overwrites a newer one, so redelivery and replays are harmless.

use std::collections::HashSet;

use ekb_domain::{AgreementCoverage, CompetenceArea, CountyCode, DateRange};
use ekb_platform::messaging::{EventFields, HandlerError, Handles, UnitOfWork};
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
        store(work, EventFields::of(&event), event.agreement()).await
    }
}

/// Stores the coverage of `agreement` unless a newer version is stored already.
async fn store(
    work: &mut UnitOfWork,
    fields: EventFields,
    agreement: Option<&v1::Agreement>,
) -> Result<(), HandlerError> {
    let coverage = Coverage::from_wire(fields, agreement)?;
    sqlx::query(
        "INSERT INTO agreement_coverage (agreement_id, county_code, competence_areas, valid_from, valid_to, version, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (agreement_id) DO UPDATE SET county_code = EXCLUDED.county_code, \
           competence_areas = EXCLUDED.competence_areas, valid_from = EXCLUDED.valid_from, \
           valid_to = EXCLUDED.valid_to, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at \
         WHERE agreement_coverage.version < EXCLUDED.version",
    )
    .bind(coverage.agreement_id)
    .bind(coverage.county.as_str())
    .bind(&coverage.areas)
    .bind(coverage.covered.from())
    .bind(coverage.covered.to())
    .bind(coverage.version)
    .bind(work.now())
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
    fn from_wire(
        fields: EventFields,
        agreement: Option<&v1::Agreement>,
    ) -> Result<Self, HandlerError> {
        let agreement = fields.required("agreement", agreement)?;
        let terms = fields.required("agreement.terms", agreement.terms.as_ref())?;
        let validity = fields.required("agreement.terms.validity", terms.validity.as_ref())?;
        let from = fields.date("agreement.terms.validity.from_date", &validity.from_date)?;
        let mut to = fields.date("agreement.terms.validity.to_date", &validity.to_date)?;
        if let Some(ended) = fields.optional_date("agreement.ended_on_date", &agreement.ended_on_date)? {
            to = to.min(ended);
        }
        let areas = terms
            .competence_areas
            .iter()
            .map(|value| competence_area_from_wire(*value).map(|area| area.code().to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| fields.refuse("agreement.terms.competence_areas", "must be known areas"))?;
        // An agreement ended before it started covers nothing: store an empty range's stand-in.
        let covered = DateRange::new(from, to.max(from))
            .map_err(|_| fields.refuse("agreement.terms.validity", "must be a date range"))?;
        let areas = if to < from { Vec::new() } else { areas };
        Ok(Coverage {
            agreement_id: fields.uuid("agreement.agreement_id", &agreement.agreement_id)?,
            county: fields.county("agreement.county_code", &agreement.county_code)?,
            areas,
            covered,
            version: agreement.version,
        })
    }
}
