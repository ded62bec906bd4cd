//! Case builders for the figures' unit tests: a case with every fact at its "nothing happened"
//! value, so each test states only the facts it is about.

use time::Date;

use crate::case_facts::{CaseFacts, CaseMoney, Flow, PilotFacts, RegularFacts, RoutingReason};

/// A pilot case opened in `county` on `opened_on`, with nothing done yet.
pub fn pilot_case(county: &str, opened_on: Date) -> CaseFacts {
    CaseFacts {
        county: county.to_owned(),
        opened_on,
        flow: Flow::Pilot,
        routing_reason: RoutingReason::PilotEligible,
        fallback: None,
        pilot: PilotFacts::default(),
        regular: RegularFacts::default(),
        decided_or_ordered_on: None,
        expert_started_on: None,
        nav_steps: 0,
        employer_steps: 0,
        money: CaseMoney::default(),
    }
}

/// A regular case outside the pilot county opened in `county` on `opened_on`.
pub fn regular_case(county: &str, opened_on: Date) -> CaseFacts {
    CaseFacts {
        flow: Flow::Regular,
        routing_reason: RoutingReason::OutsidePilotCounty,
        ..pilot_case(county, opened_on)
    }
}
