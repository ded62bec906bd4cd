//! The routing rule: does a case go to the § 9a pilot flow or the regular grant flow?
//!
//! A case goes to the pilot iff, checked in this order:
//! 1. the employer's business unit lies in a pilot county (else `OUTSIDE_PILOT_COUNTY`),
//! 2. the date lies inside a pilot period (else `OUTSIDE_PILOT_PERIOD`),
//! 3. the employer chose a framework-agreement expert area rather than its own expert
//!    (else `EMPLOYER_CHOSE_OWN_EXPERT`),
//! 4. an active framework agreement covers that area in that county on that date
//!    (else `NO_AGREEMENT_FOR_AREA`).
//!
//! Otherwise the case is `PILOT_ELIGIBLE`. Each check only makes sense once the earlier ones
//! passed: outside the pilot county or period the employer is never offered a framework
//! expert, and an agreement only matters once an area was chosen. So the reason reported is
//! the first gate the case failed, the most fundamental fact about it. That keeps every
//! decision explainable by one stable, machine-readable code, lets the evaluation count each
//! case once, and avoids asking for agreement coverage when it cannot matter.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::error::code_safe_to_show;
use crate::{CompetenceArea, CountyCode, DateRange, DomainError, PilotPolicy};

/// What kind of expert the employer wants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ExpertChoice {
    /// An expert under a framework agreement (rammeavtale) in this competence area.
    FrameworkAgreement(CompetenceArea),
    /// An expert the employer finds and pays itself, refunded through the regular grant flow.
    OwnExpert,
}

/// The flow a case is handled in. Displays and serializes as its code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Flow {
    /// Application, grant (tilsagn), refund claim (refusjonskrav).
    Regular,
    /// § 9a pilot: NAV orders the expert under a framework agreement (avrop).
    Pilot,
}

impl Flow {
    /// Every flow.
    pub const ALL: [Flow; 2] = [Flow::Regular, Flow::Pilot];

    /// The stable code: `REGULAR` or `PILOT`.
    pub const fn code(&self) -> &'static str {
        match self {
            Flow::Regular => "REGULAR",
            Flow::Pilot => "PILOT",
        }
    }

    /// The flow with exactly this code.
    pub fn parse_code(code: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|flow| flow.code() == code)
            .ok_or_else(|| DomainError::UnknownFlow(code_safe_to_show(code)))
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Flow {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_code(s)
    }
}

crate::serde_str::serde_via_str!(Flow);

/// Why a case was routed as it was. Displays and serializes as its code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum RoutingReason {
    /// Every pilot condition holds.
    PilotEligible,
    /// The business unit is not in a pilot county.
    OutsidePilotCounty,
    /// The date is outside every pilot period.
    OutsidePilotPeriod,
    /// The employer prefers its own expert.
    EmployerChoseOwnExpert,
    /// No active framework agreement covers the chosen area in the county on the date.
    NoAgreementForArea,
}

impl RoutingReason {
    /// Every reason.
    pub const ALL: [RoutingReason; 5] = [
        RoutingReason::PilotEligible,
        RoutingReason::OutsidePilotCounty,
        RoutingReason::OutsidePilotPeriod,
        RoutingReason::EmployerChoseOwnExpert,
        RoutingReason::NoAgreementForArea,
    ];

    /// The stable SCREAMING_SNAKE code.
    pub const fn code(&self) -> &'static str {
        match self {
            RoutingReason::PilotEligible => "PILOT_ELIGIBLE",
            RoutingReason::OutsidePilotCounty => "OUTSIDE_PILOT_COUNTY",
            RoutingReason::OutsidePilotPeriod => "OUTSIDE_PILOT_PERIOD",
            RoutingReason::EmployerChoseOwnExpert => "EMPLOYER_CHOSE_OWN_EXPERT",
            RoutingReason::NoAgreementForArea => "NO_AGREEMENT_FOR_AREA",
        }
    }

    /// The reason with exactly this code.
    pub fn parse_code(code: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.code() == code)
            .ok_or_else(|| DomainError::UnknownRoutingReason(code_safe_to_show(code)))
    }

    /// The flow this reason leads to: pilot only for `PILOT_ELIGIBLE`.
    pub const fn flow(&self) -> Flow {
        match self {
            RoutingReason::PilotEligible => Flow::Pilot,
            _ => Flow::Regular,
        }
    }
}

impl fmt::Display for RoutingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for RoutingReason {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_code(s)
    }
}

crate::serde_str::serde_via_str!(RoutingReason);

/// The outcome of routing: the flow and the reason for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct RoutingDecision {
    /// Where the case goes.
    pub flow: Flow,
    /// Why it goes there.
    pub reason: RoutingReason,
}

impl RoutingDecision {
    /// The decision for `reason`, with the flow that reason implies.
    pub const fn because(reason: RoutingReason) -> Self {
        Self {
            flow: reason.flow(),
            reason,
        }
    }
}

/// The facts about one case that routing looks at.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RoutingRequest {
    /// County of the employer's business unit.
    pub county: CountyCode,
    /// The date the decision applies to (normally the day the case is opened).
    pub date: Date,
    /// The kind of expert the employer wants.
    pub choice: ExpertChoice,
}

/// Answers whether a framework agreement is active for an area in a county on a date.
pub trait AgreementCoverage {
    /// True if an active agreement covers `area` in `county` on `date`.
    fn has_active_agreement(&self, county: &CountyCode, area: CompetenceArea, date: Date) -> bool;
}

/// A fixed list of (county, area, validity) agreements; handy in tests and fixtures.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct StaticCoverage(pub Vec<(CountyCode, CompetenceArea, DateRange)>);

impl AgreementCoverage for StaticCoverage {
    fn has_active_agreement(&self, county: &CountyCode, area: CompetenceArea, date: Date) -> bool {
        self.0
            .iter()
            .any(|(c, a, validity)| c == county && *a == area && validity.contains(date))
    }
}

/// Routes one case: county, then period, then the employer's choice, then agreement coverage.
pub fn decide_route(
    policy: &PilotPolicy,
    request: &RoutingRequest,
    coverage: &impl AgreementCoverage,
) -> RoutingDecision {
    let reason = if !policy.is_pilot_county(&request.county) {
        RoutingReason::OutsidePilotCounty
    } else if !policy.is_in_period(request.date) {
        RoutingReason::OutsidePilotPeriod
    } else {
        match request.choice {
            ExpertChoice::OwnExpert => RoutingReason::EmployerChoseOwnExpert,
            ExpertChoice::FrameworkAgreement(area) => {
                if coverage.has_active_agreement(&request.county, area, request.date) {
                    RoutingReason::PilotEligible
                } else {
                    RoutingReason::NoAgreementForArea
                }
            }
        }
    };
    RoutingDecision::because(reason)
}

#[cfg(test)]
mod tests;
