//! Requests parsed into checked commands. Every rule of a field is checked here, on the server,
//! and every broken rule is reported at once (INVALID_ARGUMENT naming the field), before
//! anything is read or stored. The fødselsnummer is checked without ever being repeated in a
//! message.

use ekb_domain::{Fodselsnummer, SyntheticPolicy};
use ekb_platform::{ApiError, Violations};
use ekb_proto::convert::gross_to_wire;
use ekb_proto::v1;
use time::Date;
use uuid::Uuid;

/// Longest free text of the problem and the accommodation tried.
pub const LONG_TEXT: usize = 4_000;
/// Longest note, explanation or reason.
pub const NOTE: usize = 2_000;
/// Longest name.
pub const NAME: usize = 200;

/// A checked SubmitApplication.
#[derive(Debug)]
pub struct Submit {
    /// Idempotency key.
    pub request_id: Uuid,
    /// The case.
    pub case_id: Uuid,
    /// The employee.
    pub fodselsnummer: Fodselsnummer,
    /// The employee's name.
    pub employee_name: String,
    /// The details, trimmed.
    pub details: v1::ApplicationDetails,
    /// Planned start.
    pub planned_start: Date,
}

fn must_be_true(check: &mut Violations, field: &str, value: bool, what: &str) {
    if !value {
        check.add(field, format!("must be true: {what}"));
    }
}

impl Submit {
    /// Checks `request`; `today` is the Europe/Oslo date the planned start may not precede.
    pub fn parse(
        request: &v1::SubmitApplicationRequest,
        synthetic: SyntheticPolicy,
        today: Date,
    ) -> Result<Submit, ApiError> {
        let mut check = Violations::new();
        let request_id = check.uuid("request_id", &request.request_id);
        let case_id = check.uuid("case_id", &request.case_id);
        let fodselsnummer = check.fodselsnummer(
            "employee_fodselsnummer",
            &request.employee_fodselsnummer,
            synthetic,
        );
        let employee_name = check.text("employee_name", &request.employee_name, NAME);
        let details = check
            .required("details", request.details.as_ref())
            .and_then(|details| Self::details(&mut check, details, today));
        check.finish_with(|| {
            let (details, planned_start) = details?;
            Some(Submit {
                request_id: request_id?,
                case_id: case_id?,
                fodselsnummer: fodselsnummer?,
                employee_name: employee_name?,
                details,
                planned_start,
            })
        })
    }

    fn details(
        check: &mut Violations,
        details: &v1::ApplicationDetails,
        today: Date,
    ) -> Option<(v1::ApplicationDetails, Date)> {
        let employer = check.organisation_number(
            "details.employer_organisation_number",
            &details.employer_organisation_number,
        );
        let contact =
            check.contact_person("details.contact_person", details.contact_person.as_ref());
        let area: Option<v1::CompetenceArea> =
            check.enumeration("details.competence_area", details.competence_area);
        let expert = check
            .required("details.expert", details.expert.as_ref())
            .and_then(|expert| {
                let name = check.text("details.expert.name", &expert.name, NAME);
                let profession: Option<v1::Profession> =
                    check.enumeration("details.expert.profession", expert.profession);
                let authorisation = check
                    .required("details.expert.authorisation", expert.authorisation.as_ref())
                    .and_then(|authorisation| {
                        let kind: Option<v1::AuthorisationKind> = check.enumeration(
                            "details.expert.authorisation.kind",
                            authorisation.kind,
                        );
                        let reference = check.text(
                            "details.expert.authorisation.reference",
                            &authorisation.reference,
                            NAME,
                        );
                        Some(v1::Authorisation {
                            kind: kind? as i32,
                            reference: reference?,
                        })
                    });
                let organisation = check.organisation_number(
                    "details.expert.expert_organisation_number",
                    &expert.expert_organisation_number,
                );
                if let (Some(expert_org), Some(employer)) = (organisation.as_ref(), employer.as_ref())
                    && expert_org == employer
                {
                    check.add(
                        "details.expert.expert_organisation_number",
                        "must differ from the employer's organisation number (the expert is external)",
                    );
                }
                must_be_true(
                    check,
                    "details.expert.employer_attests_expert_not_employed",
                    expert.employer_attests_expert_not_employed,
                    "the employer attests that the expert is not employed by the employer",
                );
                Some(v1::ProposedExpert {
                    name: name?,
                    profession: profession? as i32,
                    authorisation: Some(authorisation?),
                    expert_organisation_number: organisation?.as_str().to_owned(),
                    employer_attests_expert_not_employed: true,
                })
            });
        let problem = check.text(
            "details.problem_description",
            &details.problem_description,
            LONG_TEXT,
        );
        let accommodation = check.text(
            "details.accommodation_tried",
            &details.accommodation_tried,
            LONG_TEXT,
        );
        let planned_start = check.date("details.planned_start_date", &details.planned_start_date);
        if let Some(start) = planned_start
            && start < today
        {
            check.add(
                "details.planned_start_date",
                "must be today or later (Europe/Oslo): apply before the assistance starts (§ 6)",
            );
        }
        let hours = if (1..=1_000).contains(&details.estimated_hours) {
            Some(details.estimated_hours)
        } else {
            check.add("details.estimated_hours", "must be from 1 to 1000");
            None
        };
        must_be_true(
            check,
            "details.confirms_parties_agree",
            details.confirms_parties_agree,
            "employer, employee and NAV agree (§ 4)",
        );
        must_be_true(
            check,
            "details.confirms_not_treatment_or_excluded_scheme",
            details.confirms_not_treatment_or_excluded_scheme,
            "the assistance is not treatment nor covered by an excluded scheme (§ 4)",
        );
        let cost = check
            .gross_amount("details.estimated_cost", details.estimated_cost.as_ref())
            .map(|money| money.ore());
        let nav_contact =
            check.optional_text("details.nav_contact_name", &details.nav_contact_name, NAME);
        let planned_start = planned_start.filter(|start| *start >= today)?;
        Some((
            v1::ApplicationDetails {
                employer_organisation_number: employer?.as_str().to_owned(),
                contact_person: Some(contact?),
                competence_area: area? as i32,
                expert: Some(expert?),
                problem_description: problem?,
                planned_start_date: crate::model::day(planned_start),
                estimated_hours: hours?,
                accommodation_tried: accommodation?,
                confirms_parties_agree: true,
                confirms_not_treatment_or_excluded_scheme: true,
                estimated_cost: Some(gross_to_wire(cost?)),
                nav_contact_name: nav_contact?,
            },
            planned_start,
        ))
    }
}

/// A required application id.
pub fn application_id(id: &str) -> Result<Uuid, ApiError> {
    let mut check = Violations::new();
    let id = check.uuid("application_id", id);
    check.finish_with(|| id)
}

/// A NAV caller's why-code for a read: required, and not one only the service sets.
pub fn nav_purpose(check: &mut Violations, purpose: i32) -> Option<v1::AccessPurpose> {
    let purpose: v1::AccessPurpose = check.enumeration("purpose", purpose)?;
    if matches!(
        purpose,
        v1::AccessPurpose::EmployerSelfService | v1::AccessPurpose::System
    ) {
        check.add(
            "purpose",
            "must be a NAV purpose (not EMPLOYER_SELF_SERVICE or SYSTEM)",
        );
        return None;
    }
    Some(purpose)
}

/// A checked recommendation.
#[derive(Debug, Clone)]
pub enum Recommendation {
    /// Grant this many øre, gross.
    Grant(i64),
    /// Reject for this reason with this explanation.
    Reject(v1::ApplicationRejectionReason, String),
}

/// A checked RecommendDecision.
#[derive(Debug)]
pub struct Recommend {
    /// The application.
    pub application_id: Uuid,
    /// What is recommended.
    pub recommendation: Recommendation,
    /// The note to the decider.
    pub note: String,
}

impl Recommend {
    /// Checks `request`.
    pub fn parse(request: &v1::RecommendDecisionRequest) -> Result<Recommend, ApiError> {
        use v1::recommend_decision_request::Recommendation as Wire;
        let mut check = Violations::new();
        let application_id = check.uuid("application_id", &request.application_id);
        let recommendation = match &request.recommendation {
            None => {
                check.add("recommendation", "is required: a grant or a rejection");
                None
            }
            Some(Wire::Grant(grant)) => check
                .gross_amount("grant.amount", grant.amount.as_ref())
                .map(|money| Recommendation::Grant(money.ore())),
            Some(Wire::Rejection(rejection)) => {
                let reason: Option<v1::ApplicationRejectionReason> =
                    check.enumeration("rejection.reason", rejection.reason);
                let reason = reason.filter(|reason| {
                    let service_only = *reason == v1::ApplicationRejectionReason::FundsDenied;
                    if service_only {
                        check.add(
                            "rejection.reason",
                            "FUNDS_DENIED is set only by the service",
                        );
                    }
                    !service_only
                });
                let explanation = if reason == Some(v1::ApplicationRejectionReason::Other) {
                    check.text("rejection.explanation", &rejection.explanation, NOTE)
                } else {
                    check.optional_text("rejection.explanation", &rejection.explanation, NOTE)
                };
                reason
                    .zip(explanation)
                    .map(|(reason, explanation)| Recommendation::Reject(reason, explanation))
            }
        };
        let note = check.optional_text("note", &request.note, NOTE);
        check.finish_with(|| {
            Some(Recommend {
                application_id: application_id?,
                recommendation: recommendation?,
                note: note?,
            })
        })
    }
}

/// A checked DecideApplication.
#[derive(Debug, Clone)]
pub struct Decide {
    /// The application.
    pub application_id: Uuid,
    /// Confirm the recommendation or return it.
    pub verdict: v1::DeciderVerdict,
    /// The recommendation decided (1 or more).
    pub recommendation_version: i32,
    /// The decider's note (required for a return).
    pub note: String,
}

impl Decide {
    /// Checks `request`.
    pub fn parse(request: &v1::DecideApplicationRequest) -> Result<Decide, ApiError> {
        let mut check = Violations::new();
        let application_id = check.uuid("application_id", &request.application_id);
        let verdict: Option<v1::DeciderVerdict> = check.enumeration("verdict", request.verdict);
        if request.recommendation_version < 1 {
            check.add("recommendation_version", "must be 1 or more");
        }
        let note = if verdict == Some(v1::DeciderVerdict::Return) {
            check.text("note", &request.note, NOTE)
        } else {
            check.optional_text("note", &request.note, NOTE)
        };
        check.finish_with(|| {
            Some(Decide {
                application_id: application_id?,
                verdict: verdict?,
                recommendation_version: request.recommendation_version,
                note: note?,
            })
        })
    }
}

/// A checked CancelGrant.
#[derive(Debug, Clone)]
pub struct Cancel {
    /// The application.
    pub application_id: Uuid,
    /// Why the grant is cancelled.
    pub reason: v1::GrantCancellationReason,
    /// The explanation (required for a revocation and for OTHER).
    pub explanation: String,
}

impl Cancel {
    /// Checks `request`; an employer (`by_employer`) may only give EMPLOYER_REQUEST.
    pub fn parse(request: &v1::CancelGrantRequest, by_employer: bool) -> Result<Cancel, ApiError> {
        use v1::GrantCancellationReason as Reason;
        let mut check = Violations::new();
        let application_id = check.uuid("application_id", &request.application_id);
        let reason: Option<Reason> = check.enumeration("reason", request.reason);
        if by_employer && reason.is_some_and(|reason| reason != Reason::EmployerRequest) {
            check.add("reason", "an employer may only give EMPLOYER_REQUEST");
        }
        let explanation = if matches!(reason, Some(Reason::Revoked | Reason::Other)) {
            check.text("explanation", &request.explanation, NOTE)
        } else {
            check.optional_text("explanation", &request.explanation, NOTE)
        };
        check.finish_with(|| {
            Some(Cancel {
                application_id: application_id?,
                reason: reason?,
                explanation: explanation?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ekb_domain::oslo_date;
    use ekb_platform::clock::{Clock as _, ManualClock};
    use time::macros::{date, datetime};

    fn request(planned_start: &str) -> v1::SubmitApplicationRequest {
        v1::SubmitApplicationRequest {
            request_id: Uuid::nil().to_string(),
            case_id: Uuid::nil().to_string(),
            employee_fodselsnummer: valid_fodselsnummer(),
            employee_name: "Kari Nordmann".to_owned(),
            details: Some(v1::ApplicationDetails {
                employer_organisation_number: "974760673".to_owned(),
                contact_person: Some(v1::ContactPerson {
                    name: "Ola".to_owned(),
                    phone_number: "+4799887766".to_owned(),
                    email: "ola@example.no".to_owned(),
                }),
                competence_area: 1,
                expert: Some(v1::ProposedExpert {
                    name: "Eva".to_owned(),
                    profession: 1,
                    authorisation: Some(v1::Authorisation {
                        kind: 1,
                        reference: "123".to_owned(),
                    }),
                    expert_organisation_number: "923609016".to_owned(),
                    employer_attests_expert_not_employed: true,
                }),
                problem_description: "Problem".to_owned(),
                planned_start_date: planned_start.to_owned(),
                estimated_hours: 10,
                accommodation_tried: "Tried".to_owned(),
                confirms_parties_agree: true,
                confirms_not_treatment_or_excluded_scheme: true,
                estimated_cost: Some(gross_to_wire(100_000)),
                nav_contact_name: String::new(),
            }),
        }
    }

    /// A valid (non-synthetic) number born 15 March 1985.
    fn valid_fodselsnummer() -> String {
        let check = |digits: &[u32], weights: &[u32]| {
            let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
            match 11 - sum % 11 {
                11 => Some(0),
                10 => None,
                digit => Some(digit),
            }
        };
        (400..500)
            .find_map(|individual| {
                let base = format!("150385{individual:03}");
                let mut digits: Vec<u32> = base.chars().filter_map(|c| c.to_digit(10)).collect();
                let k1 = check(&digits, &[3, 7, 6, 1, 8, 9, 4, 5, 2])?;
                digits.push(k1);
                let k2 = check(&digits, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2])?;
                Some(format!("{base}{k1}{k2}"))
            })
            .unwrap_or_default()
    }

    fn fields(error: ApiError) -> Vec<String> {
        match error {
            ApiError::InvalidArgument(violations) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => vec![format!("{other:?}")],
        }
    }

    #[test]
    fn the_planned_start_is_today_or_later_in_oslo_by_the_injected_clock() {
        // 23:30 UTC on 30 November is already 1 December in Oslo.
        let clock = ManualClock::new(datetime!(2026-11-30 23:30 UTC));
        let today = oslo_date(clock.now());
        assert_eq!(today, date!(2026 - 12 - 01));
        let refused = Submit::parse(&request("2026-11-30"), SyntheticPolicy::Reject, today)
            .expect_err("yesterday in Oslo");
        assert_eq!(fields(refused), ["details.planned_start_date"]);
        let accepted = Submit::parse(&request("2026-12-01"), SyntheticPolicy::Reject, today)
            .map_err(fields)
            .expect("today in Oslo");
        assert_eq!(accepted.planned_start, date!(2026 - 12 - 01));
    }
}
