//! The competence areas NAV names for expert assistance; framework agreements in the pilot are
//! made per area, so routing and the expert registry share this list and its stable codes.

use std::fmt;
use std::str::FromStr;

use crate::DomainError;
use crate::error::code_safe_to_show;

/// An area of expertise an employer can ask for. Displays and serializes as its code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum CompetenceArea {
    /// Relations and communication at the workplace (relasjoner og kommunikasjon på arbeidsplassen).
    WorkplaceRelations,
    /// Sick-leave follow-up and accommodation (sykefraværsoppfølging og tilrettelegging).
    SickLeaveFollowUp,
    /// Conflict handling (konflikthåndtering).
    ConflictHandling,
    /// Restructuring (omstilling).
    Restructuring,
    /// Work-capacity and workplace assessment (arbeidsevne- og arbeidsplassvurdering).
    WorkCapacityAssessment,
    /// Career guidance (karriereveiledning).
    CareerGuidance,
}

impl CompetenceArea {
    /// Every competence area, in declaration order.
    pub const ALL: [CompetenceArea; 6] = [
        CompetenceArea::WorkplaceRelations,
        CompetenceArea::SickLeaveFollowUp,
        CompetenceArea::ConflictHandling,
        CompetenceArea::Restructuring,
        CompetenceArea::WorkCapacityAssessment,
        CompetenceArea::CareerGuidance,
    ];

    /// The stable SCREAMING_SNAKE code used in APIs, events and databases.
    pub const fn code(&self) -> &'static str {
        match self {
            CompetenceArea::WorkplaceRelations => "WORKPLACE_RELATIONS",
            CompetenceArea::SickLeaveFollowUp => "SICK_LEAVE_FOLLOW_UP",
            CompetenceArea::ConflictHandling => "CONFLICT_HANDLING",
            CompetenceArea::Restructuring => "RESTRUCTURING",
            CompetenceArea::WorkCapacityAssessment => "WORK_CAPACITY_ASSESSMENT",
            CompetenceArea::CareerGuidance => "CAREER_GUIDANCE",
        }
    }

    /// The area with exactly this code (case-sensitive).
    pub fn parse_code(code: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|area| area.code() == code)
            .ok_or_else(|| DomainError::UnknownCompetenceArea(code_safe_to_show(code)))
    }
}

impl fmt::Display for CompetenceArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for CompetenceArea {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_code(s)
    }
}

crate::serde_str::serde_via_str!(CompetenceArea);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde_str::testing;

    #[test]
    fn codes_are_stable() {
        let codes: Vec<&str> = CompetenceArea::ALL.iter().map(|a| a.code()).collect();
        assert_eq!(
            codes,
            [
                "WORKPLACE_RELATIONS",
                "SICK_LEAVE_FOLLOW_UP",
                "CONFLICT_HANDLING",
                "RESTRUCTURING",
                "WORK_CAPACITY_ASSESSMENT",
                "CAREER_GUIDANCE",
            ]
        );
    }

    #[test]
    fn every_code_round_trips() {
        for area in CompetenceArea::ALL {
            assert_eq!(CompetenceArea::parse_code(area.code()), Ok(area));
            assert_eq!(area.to_string(), area.code());
            assert_eq!(area.code().parse::<CompetenceArea>(), Ok(area));
            let via_serde: CompetenceArea = testing::from_str(area.code()).expect("known code");
            assert_eq!(via_serde, area);
        }
    }

    #[test]
    fn unknown_codes_are_rejected_and_named() {
        let err = CompetenceArea::parse_code("YOGA").expect_err("unknown");
        assert_eq!(err, DomainError::UnknownCompetenceArea("YOGA".to_owned()));
        assert_eq!(
            err.to_string(),
            "must be a known competence area code, got 'YOGA'"
        );
        assert!(CompetenceArea::parse_code("conflict_handling").is_err());
        assert!(CompetenceArea::parse_code("").is_err());
        assert!(testing::from_str::<CompetenceArea>("YOGA").is_err());
    }

    #[test]
    fn arbitrary_input_is_not_echoed() {
        let err = CompetenceArea::parse_code("15019012317").expect_err("unknown");
        assert!(!err.to_string().contains("15019012317"));
    }
}
