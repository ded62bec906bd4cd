//! Routing's requests parsed into validated commands (`TryFrom<wire request>`), and the case
//! facts they carry. Every broken rule is a field violation (INVALID_ARGUMENT names the field
//! and the rule; nothing is stored).

use ekb_domain::{CompetenceArea, ExpertChoice, MunicipalityNumber, OrganisationNumber};
use ekb_platform::{ApiError, Violations, validate::FromWire};
use ekb_proto::{
    convert::{choice_to_wire, competence_area_from_wire, date_to_wire},
    v1,
};
use time::{Date, Duration};
use uuid::Uuid;

/// The longest caseworker's note on a flow change.
const MAX_NOTE_CHARS: usize = 2000;
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

/// OpenCase, validated.
#[derive(Debug, Clone)]
pub struct OpenCase {
    /// The client's idempotency key.
    pub request_id: Uuid,
    /// The facts.
    pub facts: CaseFacts,
}

/// GetCase, validated.
#[derive(Debug, Clone, Copy)]
pub struct GetCase {
    /// The case asked for.
    pub case_id: Uuid,
}

/// EvaluateRoute, validated.
#[derive(Debug, Clone)]
pub struct EvaluateRoute {
    /// The facts to decide on.
    pub facts: CaseFacts,
}

/// SendToRegularFlow, validated.
#[derive(Debug, Clone)]
pub struct SendToRegularFlow {
    /// The case to move.
    pub case_id: Uuid,
    /// Why (not UNSPECIFIED).
    pub reason: v1::FlowChangeReason,
    /// The caseworker's note, trimmed; empty if none.
    pub note: String,
}

impl OpenCase {
    /// Parses `request` on `today` (the service clock's date in Oslo).
    pub fn parse(request: &v1::OpenCaseRequest, today: Date) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let request_id = check.uuid("request_id", &request.request_id);
        let facts = check.part("facts", request.facts.as_ref());
        check_not_too_far_ahead(request.facts.as_ref(), today, &mut check);
        check.finish_with(|| {
            Some(OpenCase {
                request_id: request_id?,
                facts: facts?,
            })
        })
    }
}

impl TryFrom<v1::GetCaseRequest> for GetCase {
    type Error = ApiError;

    fn try_from(request: v1::GetCaseRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let case_id = check.uuid("case_id", &request.case_id);
        check.finish_with(|| Some(GetCase { case_id: case_id? }))
    }
}

impl EvaluateRoute {
    /// Parses `request` on `today` (the service clock's date in Oslo).
    pub fn parse(request: &v1::EvaluateRouteRequest, today: Date) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let facts = check.part("facts", request.facts.as_ref());
        check_not_too_far_ahead(request.facts.as_ref(), today, &mut check);
        check.finish_with(|| Some(EvaluateRoute { facts: facts? }))
    }
}

/// A case date may lie at most [`MAX_DAYS_AHEAD`] days after `today`. Checked beside the facts'
/// own rules, so a request learns about every broken rule at once.
fn check_not_too_far_ahead(facts: Option<&v1::CaseFacts>, today: Date, check: &mut Violations) {
    let date = facts.and_then(|facts| ekb_domain::parse_iso_date(&facts.case_date).ok());
    if date.is_some_and(|date| date > today + Duration::days(MAX_DAYS_AHEAD)) {
        check.add(
            "facts.case_date",
            format!("must not be more than {MAX_DAYS_AHEAD} days ahead"),
        );
    }
}

impl TryFrom<v1::SendToRegularFlowRequest> for SendToRegularFlow {
    type Error = ApiError;

    fn try_from(request: v1::SendToRegularFlowRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let case_id = check.uuid("case_id", &request.case_id);
        let reason = check.enumeration::<v1::FlowChangeReason>("reason", request.reason);
        let note = check.optional_text("note", &request.note, MAX_NOTE_CHARS);
        if reason == Some(v1::FlowChangeReason::CaseworkerDecision) && note.as_deref() == Some("") {
            check.add("note", "is required when the reason is CASEWORKER_DECISION");
        }
        check.finish_with(|| {
            Some(SendToRegularFlow {
                case_id: case_id?,
                reason: reason?,
                note: note?,
            })
        })
    }
}

impl FromWire<v1::CaseFacts> for CaseFacts {
    fn from_wire(field: &str, facts: &v1::CaseFacts, check: &mut Violations) -> Option<Self> {
        let employer = check.check(
            &format!("{field}.employer_organisation_number"),
            OrganisationNumber::parse(&facts.employer_organisation_number),
        );
        let municipality = check.check(
            &format!("{field}.municipality_number"),
            MunicipalityNumber::parse(&facts.municipality_number),
        );
        let choice = check_choice(
            &format!("{field}.expert_choice"),
            facts.expert_choice.as_ref(),
            check,
        );
        let date = check_case_date(&format!("{field}.case_date"), &facts.case_date, check);
        // A municipality must exist in the structure in force on the case date: `9999` would
        // otherwise count as county "99" in every per-county figure.
        let municipality = match (municipality, date) {
            (Some(municipality), Some(date)) => check.check(
                &format!("{field}.municipality_number"),
                municipality.check_exists_on(date),
            ),
            _ => None,
        };
        Some(CaseFacts {
            employer: employer?,
            municipality: municipality?,
            choice: choice?,
            date: date?,
        })
    }
}

impl CaseFacts {
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

fn check_choice(
    field: &str,
    choice: Option<&v1::ExpertChoice>,
    check: &mut Violations,
) -> Option<ExpertChoice> {
    match choice.and_then(|choice| choice.choice.as_ref()) {
        None => {
            check.add(field, "is required: set framework_agreement or own_expert");
            None
        }
        Some(v1::expert_choice::Choice::OwnExpert(_)) => Some(ExpertChoice::OwnExpert),
        Some(v1::expert_choice::Choice::FrameworkAgreement(framework)) => check
            .check(
                &format!("{field}.framework_agreement.competence_area"),
                competence_area_from_wire(framework.competence_area),
            )
            .map(ExpertChoice::FrameworkAgreement),
    }
}

fn check_case_date(field: &str, text: &str, check: &mut Violations) -> Option<Date> {
    let date = check.date(field, text)?;
    if date.year() < EARLIEST_CASE_YEAR {
        check.add(
            field,
            format!("must not be before {EARLIEST_CASE_YEAR}-01-01"),
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

    fn evaluate(facts: Option<v1::CaseFacts>) -> Result<EvaluateRoute, ApiError> {
        EvaluateRoute::parse(
            &v1::EvaluateRouteRequest { facts },
            time::macros::date!(2026 - 12 - 06),
        )
    }

    fn violated_fields(facts: v1::CaseFacts) -> Vec<String> {
        match evaluate(Some(facts)) {
            Err(ApiError::InvalidArgument(violations)) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn valid_facts_pass_and_fingerprint_is_stable() {
        let facts = evaluate(Some(valid())).expect("valid").facts;
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
    fn a_municipality_must_exist_on_the_case_date() {
        let mut facts = valid();
        facts.municipality_number = "9999".to_owned();
        assert_eq!(violated_fields(facts), ["facts.municipality_number"]);
        // 3001 was Halden in the 2020 structure and is nothing since 2024.
        let mut facts = valid();
        facts.municipality_number = "3001".to_owned();
        facts.case_date = "2023-12-31".to_owned();
        evaluate(Some(facts.clone())).expect("Halden in 2023");
        facts.case_date = "2024-01-01".to_owned();
        assert_eq!(violated_fields(facts), ["facts.municipality_number"]);
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
        // "Ahead" counts from the service clock's today (2026-12-06 here), not the wall clock.
        let mut ahead = valid();
        ahead.case_date = "2027-12-08".to_owned();
        assert_eq!(violated_fields(ahead.clone()), ["facts.case_date"]);
        ahead.case_date = "2027-12-07".to_owned();
        assert!(evaluate(Some(ahead)).is_ok());
    }

    fn send_fields(request: v1::SendToRegularFlowRequest) -> Vec<String> {
        match SendToRegularFlow::try_from(request) {
            Err(ApiError::InvalidArgument(violations)) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_flow_change_needs_a_case_a_reason_and_for_a_decision_a_note() {
        let valid = v1::SendToRegularFlowRequest {
            case_id: Uuid::now_v7().to_string(),
            reason: v1::FlowChangeReason::EmployerChoseOwnExpert as i32,
            note: "  ".to_owned(),
        };
        let parsed = SendToRegularFlow::try_from(valid.clone()).expect("valid");
        assert_eq!(parsed.note, "", "a blank note is no note");
        assert_eq!(
            send_fields(v1::SendToRegularFlowRequest {
                case_id: "case-1".to_owned(),
                reason: 0,
                note: "x".repeat(MAX_NOTE_CHARS + 1),
            }),
            ["case_id", "reason", "note"]
        );
        assert_eq!(
            send_fields(v1::SendToRegularFlowRequest {
                reason: 99,
                ..valid.clone()
            }),
            ["reason"]
        );
        let decision = v1::SendToRegularFlowRequest {
            reason: v1::FlowChangeReason::CaseworkerDecision as i32,
            ..valid
        };
        assert_eq!(send_fields(decision.clone()), ["note"]);
        let explained = v1::SendToRegularFlowRequest {
            note: "Arbeidsgiver har inngått egen avtale".to_owned(),
            ..decision
        };
        assert!(SendToRegularFlow::try_from(explained).is_ok());
    }

    #[test]
    fn missing_facts_are_rejected() {
        assert!(matches!(evaluate(None), Err(ApiError::InvalidArgument(_))));
    }
}
