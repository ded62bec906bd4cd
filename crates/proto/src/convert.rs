//! Conversions between contract enums and domain types, written once for every service.
//! Decoding from the wire is fallible: proto enums arrive as `i32`, and UNSPECIFIED or unknown
//! values are input errors, not domain values.

use ekb_domain::{CompetenceArea, ExpertChoice, Flow, RoutingDecision, RoutingReason};

use crate::v1;

/// Why a contract value has no domain meaning (shown to callers as the broken rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// The enum value is the UNSPECIFIED zero.
    #[error("must be set (UNSPECIFIED is not allowed)")]
    Unspecified,
    /// The number is not a value of the enum in this contract version.
    #[error("unknown enum value {0}")]
    UnknownValue(i32),
}

/// A competence area from its wire value.
pub fn competence_area_from_wire(value: i32) -> Result<CompetenceArea, ContractError> {
    match v1::CompetenceArea::try_from(value) {
        Ok(v1::CompetenceArea::Unspecified) => Err(ContractError::Unspecified),
        Ok(v1::CompetenceArea::WorkplaceRelations) => Ok(CompetenceArea::WorkplaceRelations),
        Ok(v1::CompetenceArea::SickLeaveFollowUp) => Ok(CompetenceArea::SickLeaveFollowUp),
        Ok(v1::CompetenceArea::ConflictHandling) => Ok(CompetenceArea::ConflictHandling),
        Ok(v1::CompetenceArea::Restructuring) => Ok(CompetenceArea::Restructuring),
        Ok(v1::CompetenceArea::WorkCapacityAssessment) => {
            Ok(CompetenceArea::WorkCapacityAssessment)
        }
        Ok(v1::CompetenceArea::CareerGuidance) => Ok(CompetenceArea::CareerGuidance),
        Err(_) => Err(ContractError::UnknownValue(value)),
    }
}

/// The wire enum of a competence area.
pub fn competence_area_to_wire(area: CompetenceArea) -> v1::CompetenceArea {
    match area {
        CompetenceArea::WorkplaceRelations => v1::CompetenceArea::WorkplaceRelations,
        CompetenceArea::SickLeaveFollowUp => v1::CompetenceArea::SickLeaveFollowUp,
        CompetenceArea::ConflictHandling => v1::CompetenceArea::ConflictHandling,
        CompetenceArea::Restructuring => v1::CompetenceArea::Restructuring,
        CompetenceArea::WorkCapacityAssessment => v1::CompetenceArea::WorkCapacityAssessment,
        CompetenceArea::CareerGuidance => v1::CompetenceArea::CareerGuidance,
    }
}

/// The wire values of competence areas (a repeated enum field).
pub fn competence_areas_to_wire(areas: &[CompetenceArea]) -> Vec<i32> {
    areas
        .iter()
        .map(|area| competence_area_to_wire(*area) as i32)
        .collect()
}

/// The wire enum of a flow.
pub fn flow_to_wire(flow: Flow) -> v1::Flow {
    match flow {
        Flow::Regular => v1::Flow::Regular,
        Flow::Pilot => v1::Flow::Pilot,
    }
}

/// The wire enum of a routing reason.
pub fn reason_to_wire(reason: RoutingReason) -> v1::RoutingReason {
    match reason {
        RoutingReason::PilotEligible => v1::RoutingReason::PilotEligible,
        RoutingReason::OutsidePilotCounty => v1::RoutingReason::OutsidePilotCounty,
        RoutingReason::OutsidePilotPeriod => v1::RoutingReason::OutsidePilotPeriod,
        RoutingReason::EmployerChoseOwnExpert => v1::RoutingReason::EmployerChoseOwnExpert,
        RoutingReason::NoAgreementForArea => v1::RoutingReason::NoAgreementForArea,
    }
}

/// The wire form of a routing decision.
pub fn decision_to_wire(decision: RoutingDecision) -> v1::RoutingDecision {
    v1::RoutingDecision {
        flow: flow_to_wire(decision.flow) as i32,
        reason: reason_to_wire(decision.reason) as i32,
    }
}

/// The wire form of an employer's expert choice.
pub fn choice_to_wire(choice: ExpertChoice) -> v1::ExpertChoice {
    let choice = match choice {
        ExpertChoice::FrameworkAgreement(area) => {
            v1::expert_choice::Choice::FrameworkAgreement(v1::FrameworkAgreementChoice {
                competence_area: competence_area_to_wire(area) as i32,
            })
        }
        ExpertChoice::OwnExpert => v1::expert_choice::Choice::OwnExpert(v1::OwnExpertChoice {}),
    };
    v1::ExpertChoice {
        choice: Some(choice),
    }
}

/// An amount in øre as the contracts carry it where people type numbers: gross, VAT included
/// (§ 5 covers costs including VAT; ADR 0021 decision 9).
pub fn gross_to_wire(ore: i64) -> v1::Amount {
    v1::Amount {
        ore,
        vat: v1::VatTreatment::Included as i32,
    }
}

/// A date as the contracts carry it (`YYYY-MM-DD`).
pub fn date_to_wire(date: time::Date) -> String {
    let (year, month, day) = (date.year(), u8::from(date.month()), date.day());
    format!("{year:04}-{month:02}-{day:02}")
}

/// An instant as the contracts carry it.
pub fn timestamp_to_wire(at: time::OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_area_round_trips_and_zero_is_rejected() {
        for area in CompetenceArea::ALL {
            assert_eq!(
                competence_area_from_wire(competence_area_to_wire(area) as i32),
                Ok(area)
            );
        }
        assert_eq!(
            competence_area_from_wire(0),
            Err(ContractError::Unspecified)
        );
        assert_eq!(
            competence_area_from_wire(99),
            Err(ContractError::UnknownValue(99))
        );
    }

    #[test]
    fn dates_are_iso() {
        let date = time::Date::from_calendar_date(2024, time::Month::March, 5).expect("valid date");
        assert_eq!(date_to_wire(date), "2024-03-05");
    }
}
