//! Valid requests to the services' APIs, built one way for everyone who needs them: the
//! service and end-to-end tests (which start from a valid request and break it in one way),
//! and the dev launcher (whose fixture and sample cases fill in their own data).
//!
//! The organisation numbers pass the mod-11 check; the municipalities are real.

use ekb_proto::v1::{self, CompetenceArea};

/// A valid organisation number of an employer in Innlandet.
pub const EMPLOYER_ORGNR: &str = "974760673";
/// A valid organisation number of an expert supplier.
pub const SUPPLIER_ORGNR: &str = "923609016";
/// The name that goes with [`SUPPLIER_ORGNR`].
pub const SUPPLIER_NAME: &str = "Innlandet Arbeidshelse AS";

/// Innlandet, the pilot county (county code).
pub const INNLANDET: &str = "34";
/// Hamar, Innlandet (county 34).
pub const HAMAR: &str = "3403";
/// Lillehammer, Innlandet (county 34).
pub const LILLEHAMMER: &str = "3405";
/// Gjøvik, Innlandet (county 34).
pub const GJOVIK: &str = "3407";
/// Bergen, Vestland (county 46).
pub const BERGEN: &str = "4601";
/// Oslo (county 03).
pub const OSLO: &str = "0301";

/// `areas` as the `competence_areas` field of a request.
pub fn competence_areas(areas: &[CompetenceArea]) -> Vec<i32> {
    areas.iter().map(|area| *area as i32).collect()
}

/// The dates `from` to `to`, both included (`YYYY-MM-DD`).
pub fn date_range(from: &str, to: &str) -> v1::DateRange {
    v1::DateRange {
        from_date: from.to_owned(),
        to_date: to.to_owned(),
    }
}

/// Terms of a valid Innlandet agreement covering `areas` in 2024–2026 (24 000 kr per
/// assignment, ranked first, 10 assignments a month). Override fields with
/// `v1::AgreementTerms { ranking: 2, ..agreement_terms(areas) }`.
pub fn agreement_terms(areas: &[CompetenceArea]) -> v1::AgreementTerms {
    v1::AgreementTerms {
        competence_areas: competence_areas(areas),
        price_per_assignment_ore: 2_400_000,
        ranking: 1,
        monthly_capacity: 10,
        validity: Some(date_range("2024-01-01", "2028-12-31")),
    }
}

/// A RegisterAgreement request for agreement `reference` with supplier `supplier_orgnr`
/// (`supplier_name`) in county `county`, on `terms`.
pub fn agreement_request(
    reference: &str,
    supplier_orgnr: &str,
    supplier_name: &str,
    county: &str,
    terms: v1::AgreementTerms,
) -> v1::RegisterAgreementRequest {
    v1::RegisterAgreementRequest {
        agreement_reference: reference.to_owned(),
        supplier_organisation_number: supplier_orgnr.to_owned(),
        supplier_name: supplier_name.to_owned(),
        county_code: county.to_owned(),
        terms: Some(terms),
    }
}

/// A valid RegisterAgreement request for county `county` (reference made unique).
pub fn register_agreement(county: &str, areas: &[CompetenceArea]) -> v1::RegisterAgreementRequest {
    let reference = format!(
        "RA-{county}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    agreement_request(
        &reference,
        SUPPLIER_ORGNR,
        SUPPLIER_NAME,
        county,
        agreement_terms(areas),
    )
}

/// An agreement in county `county` covering `areas` as the registry's events carry it (full
/// state), at `version`, for feeding a consumer the registry's events directly.
pub fn agreement_state(
    agreement_id: &str,
    county: &str,
    areas: &[CompetenceArea],
    version: i64,
) -> v1::Agreement {
    v1::Agreement {
        agreement_id: agreement_id.to_owned(),
        agreement_reference: format!("RA-TEST-{version}"),
        supplier_organisation_number: SUPPLIER_ORGNR.to_owned(),
        supplier_name: SUPPLIER_NAME.to_owned(),
        county_code: county.to_owned(),
        terms: Some(agreement_terms(areas)),
        ended_on_date: String::new(),
        version,
    }
}

/// A RegisterExpert request for `name`, working for supplier `supplier_orgnr` as a
/// `profession` in `areas`, authorised by `authorisation` (`reference`: an HPR number or the
/// education).
pub fn expert_request(
    name: &str,
    supplier_orgnr: &str,
    profession: v1::Profession,
    authorisation: v1::AuthorisationKind,
    reference: &str,
    areas: &[CompetenceArea],
) -> v1::RegisterExpertRequest {
    v1::RegisterExpertRequest {
        details: Some(v1::ExpertDetails {
            name: name.to_owned(),
            supplier_organisation_number: supplier_orgnr.to_owned(),
            profession: profession as i32,
            authorisation: Some(v1::Authorisation {
                kind: authorisation as i32,
                reference: reference.to_owned(),
            }),
            competence_areas: competence_areas(areas),
        }),
    }
}

/// A valid RegisterExpert request: a physiotherapist with HPR number `hpr_number`.
pub fn register_expert(hpr_number: &str) -> v1::RegisterExpertRequest {
    expert_request(
        "Kari Nordmann",
        SUPPLIER_ORGNR,
        v1::Profession::Physiotherapist,
        v1::AuthorisationKind::HealthPersonnel,
        hpr_number,
        &[CompetenceArea::SickLeaveFollowUp],
    )
}

/// Case facts: employer in `municipality`, choosing a framework expert in `area` (or their own
/// expert when `None`), on `date`.
pub fn case_facts(municipality: &str, area: Option<CompetenceArea>, date: &str) -> v1::CaseFacts {
    let choice = match area {
        Some(area) => v1::expert_choice::Choice::FrameworkAgreement(v1::FrameworkAgreementChoice {
            competence_area: area as i32,
        }),
        None => v1::expert_choice::Choice::OwnExpert(v1::OwnExpertChoice {}),
    };
    v1::CaseFacts {
        employer_organisation_number: EMPLOYER_ORGNR.to_owned(),
        municipality_number: municipality.to_owned(),
        expert_choice: Some(v1::ExpertChoice {
            choice: Some(choice),
        }),
        case_date: date.to_owned(),
    }
}

/// An OpenCase request with a fresh request id.
pub fn open_case(facts: v1::CaseFacts) -> v1::OpenCaseRequest {
    v1::OpenCaseRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        facts: Some(facts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_references_are_unique_and_name_the_county() {
        let a = register_agreement(INNLANDET, &[CompetenceArea::ConflictHandling]);
        let b = register_agreement(INNLANDET, &[CompetenceArea::ConflictHandling]);
        assert_ne!(a.agreement_reference, b.agreement_reference);
        assert!(a.agreement_reference.starts_with("RA-34-"));
        assert_eq!(a.county_code, INNLANDET);
    }

    #[test]
    fn case_facts_carry_the_choice() {
        let framework = case_facts(HAMAR, Some(CompetenceArea::Restructuring), "2026-03-02");
        assert!(matches!(
            framework.expert_choice.and_then(|c| c.choice),
            Some(v1::expert_choice::Choice::FrameworkAgreement(choice))
                if choice.competence_area == CompetenceArea::Restructuring as i32
        ));
        let own = case_facts(BERGEN, None, "2026-03-02");
        assert!(matches!(
            own.expert_choice.and_then(|c| c.choice),
            Some(v1::expert_choice::Choice::OwnExpert(_))
        ));
        assert_ne!(
            open_case(own_facts()).request_id,
            open_case(own_facts()).request_id
        );
    }

    fn own_facts() -> v1::CaseFacts {
        case_facts(OSLO, None, "2026-03-02")
    }
}
