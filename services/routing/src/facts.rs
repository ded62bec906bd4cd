//! Validating the case facts of a request into domain types, collecting every broken rule as a
//! field violation (INVALID_ARGUMENT names the field and the rule; nothing is stored).

use ekb_domain::{
    CompetenceArea, ExpertChoice, MunicipalityNumber, OrganisationNumber, parse_iso_date,
};
use ekb_platform::{ApiError, Violations, error::validated};
use ekb_proto::{
    convert::{competence_area_from_wire, competence_area_to_wire, date_to_wire},
    v1,
};
use time::{Date, Duration, OffsetDateTime};

/// How far ahead a case date may lie: cases are opened for now, not for next year.
const MAX_DAYS_AHEAD: i64 = 366;
/// The scheme's case dates start long after this; earlier dates are typing errors.
const EARLIEST_CASE_YEAR: i32 = 2000;

/// Case facts that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    /// The employer.
    pub employer: OrganisationNumber,
    /// The business unit's municipality.
    pub municipality: MunicipalityNumber,
    /// The employer's choice of expert.
    pub choice: ExpertChoice,
    /// The case date.
    pub date: Date,
}

impl CaseFacts {
    /// Validates `facts` found at `field` (e.g. `facts`), adding violations to `violations`.
    pub fn check(
        field: &str,
        facts: Option<&v1::CaseFacts>,
        violations: &mut Violations,
    ) -> Option<CaseFacts> {
        let Some(facts) = facts else {
            violations.add(field, "is required");
            return None;
        };
        let employer = violations.check(
            &format!("{field}.employer_organisation_number"),
            OrganisationNumber::parse(&facts.employer_organisation_number),
        );
        let municipality = violations.check(
            &format!("{field}.municipality_number"),
            MunicipalityNumber::parse(&facts.municipality_number),
        );
        let choice = check_choice(
            &format!("{field}.expert_choice"),
            facts.expert_choice.as_ref(),
            violations,
        );
        let date = check_case_date(&format!("{field}.case_date"), &facts.case_date, violations);
        Some(CaseFacts {
            employer: employer?,
            municipality: municipality?,
            choice: choice?,
            date: date?,
        })
    }

    /// Validates a request's facts; INVALID_ARGUMENT if anything is wrong.
    pub fn from_request(field: &str, facts: Option<&v1::CaseFacts>) -> Result<CaseFacts, ApiError> {
        let mut violations = Violations::new();
        let checked = Self::check(field, facts, &mut violations);
        violations.finish()?;
        validated(checked, field)
    }

    /// The competence area chosen, if the employer chose a framework-agreement expert.
    pub fn competence_area(&self) -> Option<CompetenceArea> {
        match self.choice {
            ExpertChoice::FrameworkAgreement(area) => Some(area),
            ExpertChoice::OwnExpert => None,
        }
    }

    /// The facts in one canonical line, to recognise a retried request.
    pub fn fingerprint(&self) -> String {
        let choice = self
            .competence_area()
            .map_or("OWN_EXPERT", |area| area.code());
        format!(
            "{}|{}|{}|{}",
            self.employer,
            self.municipality.as_str(),
            choice,
            date_to_wire(self.date)
        )
    }

    /// The facts as the contract carries them.
    pub fn to_wire(&self) -> v1::CaseFacts {
        v1::CaseFacts {
            employer_organisation_number: self.employer.to_string(),
            municipality_number: self.municipality.as_str().to_owned(),
            expert_choice: Some(choice_to_wire(self.choice)),
            case_date: date_to_wire(self.date),
        }
    }
}

/// The wire form of an expert choice.
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

fn check_choice(
    field: &str,
    choice: Option<&v1::ExpertChoice>,
    violations: &mut Violations,
) -> Option<ExpertChoice> {
    match choice.and_then(|choice| choice.choice.as_ref()) {
        None => {
            violations.add(field, "is required: set framework_agreement or own_expert");
            None
        }
        Some(v1::expert_choice::Choice::OwnExpert(_)) => Some(ExpertChoice::OwnExpert),
        Some(v1::expert_choice::Choice::FrameworkAgreement(framework)) => violations
            .check(
                &format!("{field}.framework_agreement.competence_area"),
                competence_area_from_wire(framework.competence_area),
            )
            .map(ExpertChoice::FrameworkAgreement),
    }
}

fn check_case_date(field: &str, text: &str, violations: &mut Violations) -> Option<Date> {
    let date = violations.check(field, parse_iso_date(text))?;
    let latest = OffsetDateTime::now_utc().date() + Duration::days(MAX_DAYS_AHEAD);
    if date.year() < EARLIEST_CASE_YEAR {
        violations.add(
            field,
            format!("must not be before {EARLIEST_CASE_YEAR}-01-01"),
        );
        return None;
    }
    if date > latest {
        violations.add(
            field,
            format!("must not be more than {MAX_DAYS_AHEAD} days ahead"),
        );
        return None;
    }
    Some(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> v1::CaseFacts {
        v1::CaseFacts {
            employer_organisation_number: "974760673".to_owned(),
            municipality_number: "3403".to_owned(),
            expert_choice: Some(choice_to_wire(ExpertChoice::FrameworkAgreement(
                CompetenceArea::ConflictHandling,
            ))),
            case_date: "2024-05-02".to_owned(),
        }
    }

    fn violated_fields(facts: v1::CaseFacts) -> Vec<String> {
        match CaseFacts::from_request("facts", Some(&facts)) {
            Err(ApiError::InvalidArgument(violations)) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn valid_facts_pass_and_fingerprint_is_stable() {
        let facts = CaseFacts::from_request("facts", Some(&valid())).expect("valid");
        assert_eq!(
            facts.fingerprint(),
            "974760673|3403|CONFLICT_HANDLING|2024-05-02"
        );
        assert_eq!(facts.to_wire(), valid());
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_field() {
        let mut facts = valid();
        facts.employer_organisation_number = "974760674".to_owned();
        facts.municipality_number = "34".to_owned();
        facts.case_date = "2024-02-30".to_owned();
        assert_eq!(
            violated_fields(facts),
            [
                "facts.employer_organisation_number",
                "facts.municipality_number",
                "facts.case_date"
            ]
        );
    }

    #[test]
    fn unspecified_and_unknown_areas_are_rejected() {
        for value in [0, 42] {
            let mut facts = valid();
            facts.expert_choice = Some(v1::ExpertChoice {
                choice: Some(v1::expert_choice::Choice::FrameworkAgreement(
                    v1::FrameworkAgreementChoice {
                        competence_area: value,
                    },
                )),
            });
            assert_eq!(
                violated_fields(facts),
                ["facts.expert_choice.framework_agreement.competence_area"]
            );
        }
    }

    #[test]
    fn missing_choice_and_absurd_dates_are_rejected() {
        let mut facts = valid();
        facts.expert_choice = None;
        facts.case_date = "9999-01-01".to_owned();
        assert_eq!(
            violated_fields(facts),
            ["facts.expert_choice", "facts.case_date"]
        );
        let mut old = valid();
        old.case_date = "1999-12-31".to_owned();
        assert_eq!(violated_fields(old), ["facts.case_date"]);
    }

    #[test]
    fn missing_facts_are_rejected() {
        assert!(matches!(
            CaseFacts::from_request("facts", None),
            Err(ApiError::InvalidArgument(_))
        ));
    }
}
