//! A small, realistic fixture for the § 9a pilot: framework agreements in Innlandet (county
//! 34) and a few experts, loaded through the registry's public gRPC API exactly as an
//! administrator's tool would, so the registry publishes its events and routing builds its
//! read model the real way.
//!
//! The fixture covers five of the six competence areas and deliberately leaves career guidance
//! uncovered, so that a sample case shows `NO_AGREEMENT_FOR_AREA`. References and
//! authorisation numbers are fixed: when the databases are kept between runs, registering
//! them again answers ALREADY_EXISTS, which counts as "already there".

use std::time::{Duration, Instant};

use anyhow::Context;
use ekb_domain::with_valid_check_digit;
use ekb_proto::v1::{
    self, CompetenceArea, expert_registry_service_client::ExpertRegistryServiceClient,
    routing_service_client::RoutingServiceClient,
};
use ekb_testkit::fixtures::{
    HAMAR, INNLANDET, agreement_request, agreement_terms, case_facts, date_range, expert_request,
};
use tonic::{Code, transport::Channel};

/// The pilot county of the fixture (Innlandet).
pub const COUNTY: &str = INNLANDET;
/// Validity of every fixture agreement: the configured pilot period.
pub const VALID_FROM: &str = "2022-01-01";
/// Last day of every fixture agreement: the end of the pilot period (§ 10: the regulation runs to
/// 31 December 2028), so `make run` walks the pilot on every day of it.
pub const VALID_TO: &str = "2028-12-31";
/// The one area no fixture agreement covers.
pub const UNCOVERED_AREA: CompetenceArea = CompetenceArea::CareerGuidance;

/// The date the read-model check evaluates (in Hamar, inside the pilot period).
pub const PROBE_DATE: &str = "2026-03-02";

/// A supplier's organisation number: a fixed valid one, or the first eight digits completed
/// with their mod-11 check digit.
#[derive(Debug, Clone, Copy)]
enum Orgnr {
    /// Nine digits already valid.
    Full(&'static str),
    /// Eight digits to complete.
    Completed(&'static str),
}

impl Orgnr {
    fn resolve(self) -> anyhow::Result<String> {
        match self {
            Orgnr::Full(digits) => Ok(digits.to_owned()),
            Orgnr::Completed(first8) => with_valid_check_digit(first8)
                .map(|orgnr| orgnr.as_str().to_owned())
                .with_context(|| format!("{first8} has no valid check digit")),
        }
    }
}

/// One framework agreement of the fixture.
#[derive(Debug, Clone, Copy)]
struct FixtureAgreement {
    reference: &'static str,
    supplier: &'static str,
    supplier_orgnr: Orgnr,
    areas: &'static [CompetenceArea],
    price_ore: i64,
    ranking: i32,
    monthly_capacity: i32,
}

/// Three suppliers; prices per assignment in øre excluding VAT (2 400 000 øre = 24 000 kr).
const AGREEMENTS: [FixtureAgreement; 3] = [
    FixtureAgreement {
        reference: "RA-2022-34-001",
        supplier: "Innlandet Arbeidshelse AS",
        supplier_orgnr: Orgnr::Full("923609016"),
        areas: &[
            CompetenceArea::SickLeaveFollowUp,
            CompetenceArea::WorkCapacityAssessment,
        ],
        price_ore: 2_400_000,
        ranking: 1,
        monthly_capacity: 12,
    },
    FixtureAgreement {
        reference: "RA-2022-34-002",
        supplier: "Mjøsa Konflikt og Kommunikasjon AS",
        supplier_orgnr: Orgnr::Completed("92345678"),
        areas: &[
            CompetenceArea::ConflictHandling,
            CompetenceArea::WorkplaceRelations,
        ],
        price_ore: 2_150_000,
        ranking: 2,
        monthly_capacity: 8,
    },
    FixtureAgreement {
        reference: "RA-2022-34-003",
        supplier: "Gudbrandsdal Omstilling og HR AS",
        supplier_orgnr: Orgnr::Completed("93456789"),
        areas: &[
            CompetenceArea::Restructuring,
            CompetenceArea::WorkplaceRelations,
            CompetenceArea::ConflictHandling,
        ],
        price_ore: 2_650_000,
        ranking: 3,
        monthly_capacity: 5,
    },
];

/// One expert of the fixture, working for the supplier of agreement `supplier_index`.
#[derive(Debug, Clone, Copy)]
struct FixtureExpert {
    name: &'static str,
    supplier_index: usize,
    profession: v1::Profession,
    authorisation: v1::AuthorisationKind,
    reference: &'static str,
    areas: &'static [CompetenceArea],
}

/// Synthetic names and authorisation numbers.
const EXPERTS: [FixtureExpert; 3] = [
    FixtureExpert {
        name: "Kari Nordmann",
        supplier_index: 0,
        profession: v1::Profession::Physiotherapist,
        authorisation: v1::AuthorisationKind::HealthPersonnel,
        reference: "9100001",
        areas: &[
            CompetenceArea::SickLeaveFollowUp,
            CompetenceArea::WorkCapacityAssessment,
        ],
    },
    FixtureExpert {
        name: "Ola Bakken",
        supplier_index: 1,
        profession: v1::Profession::Psychologist,
        authorisation: v1::AuthorisationKind::HealthPersonnel,
        reference: "9100002",
        areas: &[
            CompetenceArea::ConflictHandling,
            CompetenceArea::WorkplaceRelations,
        ],
    },
    FixtureExpert {
        name: "Ingrid Haugen",
        supplier_index: 2,
        profession: v1::Profession::HrConsultant,
        authorisation: v1::AuthorisationKind::ApprovedEducation,
        reference: "Master i organisasjon og ledelse, Høgskolen i Innlandet",
        areas: &[CompetenceArea::Restructuring],
    },
];

/// How many fixture records were new and how many were there from an earlier run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Agreements registered now.
    pub agreements_new: usize,
    /// Agreements found registered already.
    pub agreements_kept: usize,
    /// Experts registered now.
    pub experts_new: usize,
    /// Experts found registered already.
    pub experts_kept: usize,
}

/// One line per fixture agreement, for the launcher's output.
pub fn describe_agreements() -> Vec<String> {
    AGREEMENTS
        .iter()
        .map(|agreement| {
            let areas: Vec<&str> = agreement.areas.iter().map(|a| area_name(*a)).collect();
            format!(
                "{}  rank {}  {:>6} kr  {}: {}",
                agreement.reference,
                agreement.ranking,
                kroner(agreement.price_ore),
                agreement.supplier,
                areas.join(", ")
            )
        })
        .collect()
}

/// Registers the fixture's agreements and experts, treating ALREADY_EXISTS as success.
pub async fn load(registry: &mut ExpertRegistryServiceClient<Channel>) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut supplier_orgnrs = Vec::with_capacity(AGREEMENTS.len());
    for agreement in AGREEMENTS {
        let orgnr = agreement.supplier_orgnr.resolve()?;
        let terms = v1::AgreementTerms {
            price_per_assignment_ore: agreement.price_ore,
            ranking: agreement.ranking,
            monthly_capacity: agreement.monthly_capacity,
            validity: Some(date_range(VALID_FROM, VALID_TO)),
            ..agreement_terms(agreement.areas)
        };
        let request = agreement_request(
            agreement.reference,
            &orgnr,
            agreement.supplier,
            COUNTY,
            terms,
        );
        match registry.register_agreement(request).await {
            Ok(_) => loaded.agreements_new += 1,
            Err(status) if status.code() == Code::AlreadyExists => loaded.agreements_kept += 1,
            Err(status) => {
                return Err(status)
                    .with_context(|| format!("registering agreement {}", agreement.reference));
            }
        }
        supplier_orgnrs.push(orgnr);
    }
    for expert in EXPERTS {
        let supplier = supplier_orgnrs
            .get(expert.supplier_index)
            .with_context(|| format!("expert {} names no fixture supplier", expert.name))?;
        let request = expert_request(
            expert.name,
            supplier,
            expert.profession,
            expert.authorisation,
            expert.reference,
            expert.areas,
        );
        match registry.register_expert(request).await {
            Ok(_) => loaded.experts_new += 1,
            Err(status) if status.code() == Code::AlreadyExists => loaded.experts_kept += 1,
            Err(status) => {
                return Err(status).with_context(|| format!("registering expert {}", expert.name));
            }
        }
    }
    Ok(loaded)
}

/// What the registry answers for one competence area in county [`COUNTY`] on the probe date.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaCoverage {
    /// The area.
    pub area: CompetenceArea,
    /// The agreements FindAgreements returns for it (active on the probe date), best first.
    pub agreements: Vec<v1::Agreement>,
}

/// How routing's read model compared with the registry once the wait ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadModelCheck {
    /// The registry's coverage of every demo area ([`demo_areas`]).
    pub coverage: Vec<AreaCoverage>,
    /// Where routing still disagreed with the registry when the time was up, one line each;
    /// empty when it agreed on every area.
    pub disagreements: Vec<String>,
}

/// Waits until routing's read model, fed by the registry's events, agrees with the registry
/// for every demo area in Innlandet: EvaluateRoute (which stores and publishes nothing) answers
/// PILOT_ELIGIBLE exactly where FindAgreements finds an active agreement. The registry is the
/// truth, not the fixture: data kept from earlier runs may add agreements (or end the
/// fixture's), and routing must reflect that too. Returns what it saw; where routing still
/// disagrees after `timeout`, that is in [`ReadModelCheck::disagreements`] for the caller to
/// judge (a fault on a fresh run, a leftover of an earlier run otherwise).
pub async fn wait_for_routing_read_model(
    routing: &mut RoutingServiceClient<Channel>,
    registry: &mut ExpertRegistryServiceClient<Channel>,
    timeout: Duration,
) -> anyhow::Result<ReadModelCheck> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut check = ReadModelCheck {
            coverage: Vec::new(),
            disagreements: Vec::new(),
        };
        for area in demo_areas() {
            let agreements = covering_agreements(registry, COUNTY, area, PROBE_DATE).await?;
            let decision = routing
                .evaluate_route(v1::EvaluateRouteRequest {
                    facts: Some(case_facts(HAMAR, Some(area), PROBE_DATE)),
                })
                .await
                .context("EvaluateRoute")?
                .into_inner()
                .decision
                .unwrap_or_default();
            let reason = decision.reason();
            // Outside the pilot county or period (routing's pilot settings overridden), the
            // answer does not depend on agreements: nothing to compare.
            let depends_on_agreements = matches!(
                reason,
                v1::RoutingReason::PilotEligible | v1::RoutingReason::NoAgreementForArea
            );
            let pilot = reason == v1::RoutingReason::PilotEligible;
            if depends_on_agreements && pilot == agreements.is_empty() {
                check.disagreements.push(if pilot {
                    format!(
                        "routing routes {} in county {COUNTY} on {PROBE_DATE} to the pilot, but \
                         the registry has no agreement covering it",
                        area_name(area)
                    )
                } else {
                    format!(
                        "routing finds no agreement for {} in county {COUNTY} on {PROBE_DATE}, \
                         but the registry has {}",
                        area_name(area),
                        references(&agreements)
                    )
                });
            }
            check.coverage.push(AreaCoverage { area, agreements });
        }
        if check.disagreements.is_empty() || Instant::now() >= deadline {
            return Ok(check);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The registry's agreements covering `area` in `county` on `date` (FindAgreements).
pub async fn covering_agreements(
    registry: &mut ExpertRegistryServiceClient<Channel>,
    county: &str,
    area: CompetenceArea,
    date: &str,
) -> anyhow::Result<Vec<v1::Agreement>> {
    Ok(registry
        .find_agreements(v1::FindAgreementsRequest {
            county_code: county.to_owned(),
            competence_area: area as i32,
            on_date: date.to_owned(),
        })
        .await
        .with_context(|| format!("FindAgreements for {} in county {county}", area_name(area)))?
        .into_inner()
        .agreements)
}

/// The fixture's suppliers' organisation numbers, in agreement order (those that complete).
pub fn supplier_organisation_numbers() -> Vec<String> {
    AGREEMENTS
        .iter()
        .filter_map(|agreement| agreement.supplier_orgnr.resolve().ok())
        .collect()
}

/// Whether `reference` names one of the fixture's agreements.
pub fn is_fixture_agreement(reference: &str) -> bool {
    AGREEMENTS
        .iter()
        .any(|agreement| agreement.reference == reference)
}

/// `RA-1 (Supplier AS), RA-2 (Other AS)`.
pub fn references(agreements: &[v1::Agreement]) -> String {
    let names: Vec<String> = agreements
        .iter()
        .map(|agreement| {
            format!(
                "{} ({})",
                agreement.agreement_reference, agreement.supplier_name
            )
        })
        .collect();
    names.join(", ")
}

/// One line per agreement in `coverage` that is not the fixture's (registered by hand in an
/// earlier run, its data kept), each once, for the launcher's output.
pub fn describe_other_agreements(coverage: &[AreaCoverage]) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut lines = Vec::new();
    for agreement in coverage.iter().flat_map(|area| &area.agreements) {
        let reference = agreement.agreement_reference.as_str();
        if is_fixture_agreement(reference) || seen.contains(&reference) {
            continue;
        }
        seen.push(reference);
        let terms = agreement.terms.clone().unwrap_or_default();
        let areas: Vec<&str> = terms
            .competence_areas
            .iter()
            .filter_map(|value| CompetenceArea::try_from(*value).ok())
            .map(area_name)
            .collect();
        lines.push(format!(
            "{reference}  rank {}  {:>6} kr  {}: {}",
            terms.ranking,
            kroner(terms.price_per_assignment_ore),
            agreement.supplier_name,
            areas.join(", ")
        ));
    }
    lines
}

/// Every area the demo shows: those the fixture covers and the one it leaves uncovered, in
/// enum order.
pub fn demo_areas() -> Vec<CompetenceArea> {
    let mut areas = covered_areas();
    areas.push(UNCOVERED_AREA);
    areas.sort_by_key(|area| *area as i32);
    areas
}

/// Every area some fixture agreement covers, each once, in enum order.
fn covered_areas() -> Vec<CompetenceArea> {
    let mut areas: Vec<CompetenceArea> = AGREEMENTS
        .iter()
        .flat_map(|agreement| agreement.areas.iter().copied())
        .collect();
    areas.sort_by_key(|area| *area as i32);
    areas.dedup();
    areas
}

/// `COMPETENCE_AREA_CONFLICT_HANDLING` → `CONFLICT_HANDLING`.
pub fn area_name(area: CompetenceArea) -> &'static str {
    let name = area.as_str_name();
    name.strip_prefix("COMPETENCE_AREA_").unwrap_or(name)
}

/// Øre as whole kroner with a space every three digits (`2_400_000` → `24 000`).
fn kroner(ore: i64) -> String {
    let digits = (ore / 100).to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use ekb_domain::OrganisationNumber;

    use super::*;

    #[test]
    fn every_supplier_orgnr_is_valid() {
        for agreement in AGREEMENTS {
            let orgnr = agreement.supplier_orgnr.resolve().expect("completes");
            OrganisationNumber::parse(&orgnr).expect("valid organisation number");
        }
        OrganisationNumber::parse(ekb_testkit::fixtures::EMPLOYER_ORGNR).expect("valid employer");
    }

    #[test]
    fn the_fixture_covers_all_areas_but_career_guidance() {
        let covered = covered_areas();
        assert_eq!(covered.len(), 5);
        assert!(!covered.contains(&UNCOVERED_AREA));
        assert!(!covered.contains(&CompetenceArea::Unspecified));
    }

    #[test]
    fn the_demo_shows_every_area_once() {
        let areas = demo_areas();
        assert_eq!(areas.len(), 6);
        assert!(areas.contains(&UNCOVERED_AREA));
        let mut distinct = areas.clone();
        distinct.dedup();
        assert_eq!(distinct, areas);
    }

    #[test]
    fn only_other_agreements_are_described_each_once() {
        let agreement = |reference: &str| v1::Agreement {
            agreement_reference: reference.to_owned(),
            supplier_name: "Karriere Innlandet AS".to_owned(),
            terms: Some(v1::AgreementTerms {
                ranking: 1,
                price_per_assignment_ore: 1_800_000,
                ..agreement_terms(&[UNCOVERED_AREA, CompetenceArea::Restructuring])
            }),
            ..Default::default()
        };
        let coverage = [
            AreaCoverage {
                area: UNCOVERED_AREA,
                agreements: vec![agreement("RA-EXTRA-1")],
            },
            AreaCoverage {
                area: CompetenceArea::Restructuring,
                agreements: vec![agreement(AGREEMENTS[2].reference), agreement("RA-EXTRA-1")],
            },
        ];
        let lines = describe_other_agreements(&coverage);
        assert_eq!(
            lines,
            [format!(
                "RA-EXTRA-1  rank 1  18 000 kr  Karriere Innlandet AS: {}",
                expected_areas()
            )]
        );
        assert!(is_fixture_agreement("RA-2022-34-001"));
        assert!(!is_fixture_agreement("RA-EXTRA-1"));
    }

    /// The two areas of the test agreement, in the order the terms list them.
    fn expected_areas() -> String {
        format!(
            "{}, {}",
            area_name(UNCOVERED_AREA),
            area_name(CompetenceArea::Restructuring)
        )
    }

    #[test]
    fn agreements_have_distinct_references_and_rankings_one_to_three() {
        let mut references: Vec<_> = AGREEMENTS.iter().map(|a| a.reference).collect();
        references.dedup();
        assert_eq!(references.len(), AGREEMENTS.len());
        let rankings: Vec<_> = AGREEMENTS.iter().map(|a| a.ranking).collect();
        assert_eq!(rankings, [1, 2, 3]);
    }

    #[test]
    fn experts_work_for_fixture_suppliers_within_its_areas() {
        for expert in EXPERTS {
            let agreement = AGREEMENTS
                .get(expert.supplier_index)
                .expect("supplier exists");
            assert!(
                expert.areas.iter().all(|a| agreement.areas.contains(a)),
                "{}",
                expert.name
            );
        }
    }

    #[test]
    fn prices_print_as_grouped_kroner() {
        assert_eq!(kroner(2_400_000), "24 000");
        assert_eq!(kroner(150_000_000), "1 500 000");
        assert_eq!(kroner(99_900), "999");
    }
}
