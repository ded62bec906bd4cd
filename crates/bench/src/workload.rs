//! The request mix. Most cases are Innlandet employers choosing a framework-agreement area, so
//! routing runs its real coverage query and answers PILOT; the rest are the REGULAR paths (a
//! county outside the pilot, and an Innlandet employer choosing its own expert). Every request
//! has a fresh request id, so each one opens a new case, and each carries the decision it must
//! get, so a wrong answer counts as an error instead of a fast success.

use ekb_proto::v1::{self, CompetenceArea, Flow, RoutingReason};

/// A valid organisation number of the framework-agreement supplier.
pub const SUPPLIER_ORGNR: &str = "923609016";
/// The pilot county (Innlandet).
pub const PILOT_COUNTY: &str = "34";
/// Innlandet municipalities: Hamar, Lillehammer, Gjøvik.
const INNLANDET: [&str; 3] = ["3403", "3405", "3407"];
/// Bergen, Vestland: outside the pilot.
const BERGEN: &str = "4601";
/// The areas the benchmark's agreement covers, and that pilot cases choose from.
pub const AGREEMENT_AREAS: [CompetenceArea; 2] = [
    CompetenceArea::ConflictHandling,
    CompetenceArea::SickLeaveFollowUp,
];
/// Out of every ten requests, how many are pilot cases (the rest split between the two
/// regular paths).
const PILOT_PER_TEN: u64 = 8;

/// The decision a request must get.
pub type Expected = (Flow, RoutingReason);

/// Request number `index` of the run and the decision routing must answer with.
pub fn open_case(index: u64) -> (v1::OpenCaseRequest, Expected) {
    // Dates spread over 2025: inside the pilot period and the agreement's validity.
    let date = format!("2025-{:02}-{:02}", 1 + index % 12, 1 + (index / 12) % 28);
    let innlandet = INNLANDET[(index % INNLANDET.len() as u64) as usize];
    let area = AGREEMENT_AREAS[((index / 10) % AGREEMENT_AREAS.len() as u64) as usize];
    let (municipality, choice, expected) = match index % 10 {
        slot if slot < PILOT_PER_TEN => (
            innlandet,
            Some(area),
            (Flow::Pilot, RoutingReason::PilotEligible),
        ),
        slot if slot == PILOT_PER_TEN => (
            BERGEN,
            Some(area),
            (Flow::Regular, RoutingReason::OutsidePilotCounty),
        ),
        _ => (
            innlandet,
            None,
            (Flow::Regular, RoutingReason::EmployerChoseOwnExpert),
        ),
    };
    (
        v1::OpenCaseRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            facts: Some(case_facts(municipality, choice, &date)),
        },
        expected,
    )
}

/// Case facts of the benchmark's employer (the test fixtures' employer) in `municipality`,
/// choosing `area` under a framework agreement (or its own expert when `None`), on `date`.
pub use ekb_testkit::fixtures::case_facts;

/// A RegisterAgreement request for an Innlandet agreement covering [`AGREEMENT_AREAS`] from
/// 2024 to the end of 2026.
pub fn pilot_agreement() -> v1::RegisterAgreementRequest {
    v1::RegisterAgreementRequest {
        agreement_reference: format!(
            "RA-BENCH-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        supplier_organisation_number: SUPPLIER_ORGNR.to_owned(),
        supplier_name: "Innlandet Arbeidshelse AS".to_owned(),
        county_code: PILOT_COUNTY.to_owned(),
        terms: Some(v1::AgreementTerms {
            competence_areas: AGREEMENT_AREAS.iter().map(|area| *area as i32).collect(),
            price_per_assignment_ore: 2_400_000,
            ranking: 1,
            monthly_capacity: 1_000,
            validity: Some(v1::DateRange {
                from_date: "2024-01-01".to_owned(),
                to_date: "2026-12-31".to_owned(),
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_mostly_pilot_with_both_regular_paths() {
        let decisions: Vec<Expected> = (0..100).map(|index| open_case(index).1).collect();
        let pilot = decisions.iter().filter(|d| d.0 == Flow::Pilot).count();
        assert_eq!(pilot, 80);
        assert!(decisions.contains(&(Flow::Regular, RoutingReason::OutsidePilotCounty)));
        assert!(decisions.contains(&(Flow::Regular, RoutingReason::EmployerChoseOwnExpert)));
    }

    #[test]
    fn every_request_has_its_own_id_and_a_2025_date() {
        let (a, _) = open_case(7);
        let (b, _) = open_case(7);
        assert_ne!(a.request_id, b.request_id);
        for index in 0..400 {
            let date = open_case(index).0.facts.unwrap_or_default().case_date;
            assert!(date.starts_with("2025-"), "{date}");
            assert_eq!(date.len(), 10, "{date}");
        }
    }
}
