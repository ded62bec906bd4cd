//! Parts of the contract's events that several services read, read once: the routed case that
//! CaseRouted carries and the flow change CaseFlowChanged carries (applications,
//! pilot-ordering), and the agreement state the registry's agreement events carry (routing,
//! pilot-ordering). Each is checked field by field with
//! [`EventFields`], so a part that breaks the contract is a permanent error naming the event, the
//! field and the rule, the same in every consumer.

use ekb_domain::{CompetenceArea, CountyCode, DateRange, Flow, Money};
use ekb_proto::{convert::competence_area_from_wire, events::CarriesAgreement, v1};
use prost::Name;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{EventFields, HandlerError};

/// The case CaseRouted announces, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedCase {
    /// The case.
    pub case_id: Uuid,
    /// The flow routing chose.
    pub flow: Flow,
    /// The county of the workplace.
    pub county: CountyCode,
    /// The employer, as routing received it.
    pub employer_organisation_number: String,
    /// When the case was opened.
    pub opened_at: OffsetDateTime,
    /// The framework-agreement area the employer chose; `None` for the employer's own expert.
    /// Always `Some` for a PILOT case.
    pub framework_area: Option<CompetenceArea>,
}

impl RoutedCase {
    /// Reads `event`; a PILOT case must name a framework-agreement area.
    pub fn read(event: &v1::CaseRouted) -> Result<Self, HandlerError> {
        let fields = EventFields::of(event);
        let flow = match fields.enumeration::<v1::Flow>("flow", event.flow)? {
            v1::Flow::Pilot => Flow::Pilot,
            _ => Flow::Regular,
        };
        let framework_area = match event.expert_choice.and_then(|choice| choice.choice) {
            Some(v1::expert_choice::Choice::FrameworkAgreement(choice)) => Some(
                competence_area_from_wire(choice.competence_area).map_err(|_| {
                    fields.refuse(
                        "expert_choice.framework_agreement",
                        "must name a known area",
                    )
                })?,
            ),
            _ => None,
        };
        if flow == Flow::Pilot && framework_area.is_none() {
            return Err(fields.refuse(
                "expert_choice",
                "must name a framework-agreement competence area when the flow is PILOT",
            ));
        }
        Ok(RoutedCase {
            case_id: fields.uuid("case_id", &event.case_id)?,
            flow,
            county: fields.county("county_code", &event.county_code)?,
            employer_organisation_number: event.employer_organisation_number.clone(),
            opened_at: fields.instant("opened_at", event.opened_at.as_ref())?,
            framework_area,
        })
    }
}

/// A case's move to another flow, as CaseFlowChanged carries it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowChanged {
    /// The case.
    pub case_id: Uuid,
    /// The flow it moved to.
    pub to_flow: Flow,
    /// The county of the workplace.
    pub county: CountyCode,
    /// The employer, as routing received it.
    pub employer_organisation_number: String,
    /// When the case was opened.
    pub opened_at: OffsetDateTime,
    /// The case's flow-change count (1 for its first change): a later change wins.
    pub sequence: i32,
}

impl FlowChanged {
    /// Reads `event`.
    pub fn read(event: &v1::CaseFlowChanged) -> Result<Self, HandlerError> {
        let fields = EventFields::of(event);
        let to_flow = match fields.enumeration::<v1::Flow>("to_flow", event.to_flow)? {
            v1::Flow::Pilot => Flow::Pilot,
            _ => Flow::Regular,
        };
        Ok(FlowChanged {
            case_id: fields.uuid("case_id", &event.case_id)?,
            to_flow,
            county: fields.county("county_code", &event.county_code)?,
            employer_organisation_number: event.employer_organisation_number.clone(),
            opened_at: fields.instant("opened_at", event.opened_at.as_ref())?,
            sequence: event.sequence.max(1),
        })
    }
}

/// An agreement's full state, as AgreementActivated, AgreementUpdated and AgreementEnded carry
/// it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementState {
    /// The agreement.
    pub agreement_id: Uuid,
    /// Its reference in the procurement.
    pub reference: String,
    /// The supplier's organisation number.
    pub supplier_organisation_number: String,
    /// The supplier's name.
    pub supplier_name: String,
    /// The county it serves.
    pub county: CountyCode,
    /// The areas it covers (at least one).
    pub areas: Vec<CompetenceArea>,
    /// Price per assignment, a case amount.
    pub price: Money,
    /// Its rank in the county (1 is asked first).
    pub ranking: i32,
    /// Assignments per month.
    pub monthly_capacity: i32,
    /// The validity as agreed.
    pub valid_from: Date,
    /// The last day as agreed.
    pub valid_to: Date,
    /// The day it was ended early, if it was.
    pub ended_on: Option<Date>,
    /// The registry's version of it (a newer version replaces an older, never the reverse).
    pub version: i64,
}

impl AgreementState {
    /// Reads the agreement `event` carries.
    pub fn read<E: CarriesAgreement + Name>(event: &E) -> Result<Self, HandlerError> {
        let fields = EventFields::of(event);
        let agreement = fields.required("agreement", event.agreement())?;
        let terms = fields.required("agreement.terms", agreement.terms.as_ref())?;
        let validity = fields.required("agreement.terms.validity", terms.validity.as_ref())?;
        let areas = terms
            .competence_areas
            .iter()
            .map(|area| competence_area_from_wire(*area))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                fields.refuse("agreement.terms.competence_areas", "must be known areas")
            })?;
        if areas.is_empty() {
            return Err(fields.refuse("agreement.terms.competence_areas", "must not be empty"));
        }
        if terms.monthly_capacity <= 0 {
            return Err(fields.refuse("agreement.terms.monthly_capacity", "must be positive"));
        }
        if terms.ranking <= 0 {
            return Err(fields.refuse("agreement.terms.ranking", "must be positive"));
        }
        Ok(AgreementState {
            agreement_id: fields.uuid("agreement.agreement_id", &agreement.agreement_id)?,
            reference: agreement.agreement_reference.clone(),
            supplier_organisation_number: agreement.supplier_organisation_number.clone(),
            supplier_name: agreement.supplier_name.clone(),
            county: fields.county("agreement.county_code", &agreement.county_code)?,
            areas,
            price: fields.case_amount(
                "agreement.terms.price_per_assignment_ore",
                terms.price_per_assignment_ore,
            )?,
            ranking: terms.ranking,
            monthly_capacity: terms.monthly_capacity,
            valid_from: fields.date("agreement.terms.validity.from_date", &validity.from_date)?,
            valid_to: fields.date("agreement.terms.validity.to_date", &validity.to_date)?,
            ended_on: fields.optional_date("agreement.ended_on_date", &agreement.ended_on_date)?,
            version: agreement.version,
        })
    }

    /// The days it covers: its validity, cut at the day it was ended; `None` if it was ended
    /// before it started (it covers nothing).
    pub fn covered(&self) -> Option<DateRange> {
        let to = self
            .ended_on
            .map_or(self.valid_to, |ended| ended.min(self.valid_to));
        DateRange::new(self.valid_from, to).ok()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn agreement(ended_on: &str) -> v1::AgreementActivated {
        v1::AgreementActivated {
            agreement: Some(v1::Agreement {
                agreement_id: Uuid::now_v7().to_string(),
                county_code: "34".to_owned(),
                ended_on_date: ended_on.to_owned(),
                version: 2,
                terms: Some(v1::AgreementTerms {
                    competence_areas: vec![v1::CompetenceArea::WorkplaceRelations as i32],
                    price_per_assignment_ore: 2_000_000,
                    ranking: 1,
                    monthly_capacity: 3,
                    validity: Some(v1::DateRange {
                        from_date: "2026-01-01".to_owned(),
                        to_date: "2028-12-31".to_owned(),
                    }),
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn an_agreement_covers_its_validity_cut_at_its_end() {
        let state = AgreementState::read(&agreement("")).expect("valid");
        assert_eq!(state.version, 2);
        let covered = state.covered().expect("covers");
        assert_eq!(
            (covered.from(), covered.to()),
            (date!(2026 - 01 - 01), date!(2028 - 12 - 31))
        );
        let ended = AgreementState::read(&agreement("2027-06-30")).expect("valid");
        assert_eq!(
            ended.covered().map(|range| range.to()),
            Some(date!(2027 - 06 - 30))
        );
        let never = AgreementState::read(&agreement("2025-12-31")).expect("valid");
        assert_eq!(never.covered(), None);
    }

    #[test]
    fn a_broken_agreement_or_case_is_a_permanent_error_naming_the_field() {
        let mut event = agreement("");
        if let Some(terms) = event.agreement.as_mut().and_then(|a| a.terms.as_mut()) {
            terms.ranking = 0;
        }
        let Err(HandlerError::Permanent(reason)) = AgreementState::read(&event) else {
            panic!("a ranking of 0 is refused");
        };
        assert_eq!(
            reason,
            "AgreementActivated.agreement.terms.ranking must be positive"
        );
        let pilot_without_area = v1::CaseRouted {
            case_id: Uuid::now_v7().to_string(),
            flow: v1::Flow::Pilot as i32,
            county_code: "34".to_owned(),
            opened_at: Some(prost_types::Timestamp::default()),
            ..Default::default()
        };
        let Err(HandlerError::Permanent(reason)) = RoutedCase::read(&pilot_without_area) else {
            panic!("a PILOT case without an area is refused");
        };
        assert!(reason.starts_with("CaseRouted.expert_choice "), "{reason}");
    }
}
