//! Tests for the routing rule, its order of checks and its codes.

use std::cell::Cell;

use time::macros::date;

use super::*;
use crate::serde_str::testing;

const AREA: CompetenceArea = CompetenceArea::ConflictHandling;

fn oslo() -> CountyCode {
    CountyCode::parse("03").expect("valid")
}

fn coverage() -> StaticCoverage {
    StaticCoverage(vec![(
        CountyCode::INNLANDET,
        AREA,
        DateRange::parse_iso("2023-01-01/2025-12-31").expect("valid"),
    )])
}

fn request(county: CountyCode, date: Date, choice: ExpertChoice) -> RoutingRequest {
    RoutingRequest {
        county,
        date,
        choice,
    }
}

fn decide(county: CountyCode, date: Date, choice: ExpertChoice) -> RoutingDecision {
    decide_route(
        &PilotPolicy::default(),
        &request(county, date, choice),
        &coverage(),
    )
}

/// Coverage that counts how often it is asked.
struct Counting {
    answer: bool,
    calls: Cell<u32>,
}

impl AgreementCoverage for Counting {
    fn has_active_agreement(&self, _: &CountyCode, _: CompetenceArea, _: Date) -> bool {
        self.calls.set(self.calls.get() + 1);
        self.answer
    }
}

#[test]
fn pilot_when_every_condition_holds() {
    let decision = decide(
        CountyCode::INNLANDET,
        date!(2024 - 03 - 01),
        ExpertChoice::FrameworkAgreement(AREA),
    );
    assert_eq!(
        decision,
        RoutingDecision {
            flow: Flow::Pilot,
            reason: RoutingReason::PilotEligible
        }
    );
}

#[test]
fn outside_pilot_county_goes_regular() {
    let decision = decide(
        oslo(),
        date!(2024 - 03 - 01),
        ExpertChoice::FrameworkAgreement(AREA),
    );
    assert_eq!(decision.flow, Flow::Regular);
    assert_eq!(decision.reason, RoutingReason::OutsidePilotCounty);
}

#[test]
fn outside_pilot_period_goes_regular() {
    for date in [date!(2022 - 03 - 24), date!(2029 - 01 - 01)] {
        let decision = decide(
            CountyCode::INNLANDET,
            date,
            ExpertChoice::FrameworkAgreement(AREA),
        );
        assert_eq!(decision.flow, Flow::Regular);
        assert_eq!(decision.reason, RoutingReason::OutsidePilotPeriod);
    }
}

#[test]
fn own_expert_goes_regular() {
    let decision = decide(
        CountyCode::INNLANDET,
        date!(2024 - 03 - 01),
        ExpertChoice::OwnExpert,
    );
    assert_eq!(decision.flow, Flow::Regular);
    assert_eq!(decision.reason, RoutingReason::EmployerChoseOwnExpert);
}

#[test]
fn missing_agreement_goes_regular() {
    // Other area, same county and date.
    let decision = decide(
        CountyCode::INNLANDET,
        date!(2024 - 03 - 01),
        ExpertChoice::FrameworkAgreement(CompetenceArea::CareerGuidance),
    );
    assert_eq!(decision.reason, RoutingReason::NoAgreementForArea);
    assert_eq!(decision.flow, Flow::Regular);
    // In the pilot period, but before the agreement's validity starts.
    let decision = decide(
        CountyCode::INNLANDET,
        date!(2022 - 06 - 01),
        ExpertChoice::FrameworkAgreement(AREA),
    );
    assert_eq!(decision.reason, RoutingReason::NoAgreementForArea);
}

#[test]
fn county_is_checked_before_period() {
    let decision = decide(oslo(), date!(2030 - 01 - 01), ExpertChoice::OwnExpert);
    assert_eq!(decision.reason, RoutingReason::OutsidePilotCounty);
}

#[test]
fn period_is_checked_before_choice() {
    let decision = decide(
        CountyCode::INNLANDET,
        date!(2030 - 01 - 01),
        ExpertChoice::OwnExpert,
    );
    assert_eq!(decision.reason, RoutingReason::OutsidePilotPeriod);
}

#[test]
fn coverage_is_asked_only_when_it_can_matter() {
    let policy = PilotPolicy::default();
    let never = Counting {
        answer: true,
        calls: Cell::new(0),
    };
    let cases = [
        request(
            oslo(),
            date!(2024 - 03 - 01),
            ExpertChoice::FrameworkAgreement(AREA),
        ),
        request(
            CountyCode::INNLANDET,
            date!(2030 - 03 - 01),
            ExpertChoice::FrameworkAgreement(AREA),
        ),
        request(
            CountyCode::INNLANDET,
            date!(2024 - 03 - 01),
            ExpertChoice::OwnExpert,
        ),
    ];
    for case in &cases {
        assert_eq!(decide_route(&policy, case, &never).flow, Flow::Regular);
    }
    assert_eq!(never.calls.get(), 0);
    let no = Counting {
        answer: false,
        calls: Cell::new(0),
    };
    let eligible = request(
        CountyCode::INNLANDET,
        date!(2024 - 03 - 01),
        ExpertChoice::FrameworkAgreement(AREA),
    );
    assert_eq!(
        decide_route(&policy, &eligible, &no).reason,
        RoutingReason::NoAgreementForArea
    );
    assert_eq!(no.calls.get(), 1);
}

#[test]
fn pilot_off_routes_everything_regular() {
    let off = PilotPolicy::new([], []);
    let decision = decide_route(
        &off,
        &request(
            CountyCode::INNLANDET,
            date!(2024 - 03 - 01),
            ExpertChoice::FrameworkAgreement(AREA),
        ),
        &coverage(),
    );
    assert_eq!(decision.reason, RoutingReason::OutsidePilotCounty);
}

#[test]
fn static_coverage_matches_county_area_and_date() {
    let coverage = coverage();
    let inside = date!(2024 - 01 - 01);
    assert!(coverage.has_active_agreement(&CountyCode::INNLANDET, AREA, inside));
    assert!(coverage.has_active_agreement(&CountyCode::INNLANDET, AREA, date!(2025 - 12 - 31)));
    assert!(!coverage.has_active_agreement(&CountyCode::INNLANDET, AREA, date!(2026 - 01 - 01)));
    assert!(!coverage.has_active_agreement(&oslo(), AREA, inside));
    assert!(!coverage.has_active_agreement(
        &CountyCode::INNLANDET,
        CompetenceArea::Restructuring,
        inside
    ));
    assert!(!StaticCoverage::default().has_active_agreement(&CountyCode::INNLANDET, AREA, inside));
}

#[test]
fn reason_codes_are_stable_and_round_trip() {
    let codes: Vec<&str> = RoutingReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [
            "PILOT_ELIGIBLE",
            "OUTSIDE_PILOT_COUNTY",
            "OUTSIDE_PILOT_PERIOD",
            "EMPLOYER_CHOSE_OWN_EXPERT",
            "NO_AGREEMENT_FOR_AREA",
        ]
    );
    for reason in RoutingReason::ALL {
        assert_eq!(RoutingReason::parse_code(reason.code()), Ok(reason));
        assert_eq!(reason.to_string(), reason.code());
        let via_serde: RoutingReason = testing::from_str(reason.code()).expect("known");
        assert_eq!(via_serde, reason);
    }
    assert_eq!(
        RoutingReason::parse_code("MAYBE"),
        Err(DomainError::UnknownRoutingReason("MAYBE".to_owned()))
    );
    assert_eq!(
        RoutingReason::parse_code("pilot_eligible"),
        Err(DomainError::UnknownRoutingReason("<not a code>".to_owned()))
    );
}

#[test]
fn flow_codes_round_trip() {
    assert_eq!(Flow::Regular.code(), "REGULAR");
    assert_eq!(Flow::Pilot.code(), "PILOT");
    for flow in Flow::ALL {
        assert_eq!(Flow::parse_code(flow.code()), Ok(flow));
        assert_eq!(flow.to_string(), flow.code());
    }
    assert!(Flow::parse_code("BOTH").is_err());
}

#[test]
fn only_pilot_eligible_leads_to_pilot() {
    for reason in RoutingReason::ALL {
        let expected = if reason == RoutingReason::PilotEligible {
            Flow::Pilot
        } else {
            Flow::Regular
        };
        assert_eq!(reason.flow(), expected);
        assert_eq!(RoutingDecision::because(reason).flow, expected);
    }
}
