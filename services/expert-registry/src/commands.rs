//! The registry's requests parsed into validated commands (`TryFrom<wire request>`), and the
//! expert details and agreement terms they carry (`FromWire`). Every broken rule is a field
//! violation; nothing is stored.

use std::collections::BTreeSet;

use ekb_domain::{CompetenceArea, CountyCode, DateRange, OrganisationNumber};
use ekb_platform::{ApiError, Violations, validate::FromWire};
use ekb_proto::{convert::competence_area_from_wire, v1};
use time::Date;
use uuid::Uuid;

/// Longest name (expert, supplier) accepted.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest authorisation reference accepted.
pub const MAX_REFERENCE_CHARS: usize = 200;
/// Longest agreement reference accepted.
pub const MAX_AGREEMENT_REFERENCE_CHARS: usize = 64;
/// Longest end reason accepted.
pub const MAX_REASON_CHARS: usize = 500;

/// Validated expert details.
#[derive(Debug, Clone)]
pub struct ValidExpert {
    /// Name, trimmed.
    pub name: String,
    /// Supplier.
    pub supplier: OrganisationNumber,
    /// Profession.
    pub profession: v1::Profession,
    /// Authorisation kind.
    pub authorisation_kind: v1::AuthorisationKind,
    /// Authorisation reference, trimmed.
    pub authorisation_reference: String,
    /// Areas, de-duplicated, in a stable order.
    pub areas: Vec<CompetenceArea>,
}

/// Validated agreement terms.
#[derive(Debug, Clone)]
pub struct ValidTerms {
    /// Areas, de-duplicated.
    pub areas: Vec<CompetenceArea>,
    /// Price per assignment in øre.
    pub price_ore: i64,
    /// Ranking, 1 first.
    pub ranking: i32,
    /// Monthly capacity.
    pub monthly_capacity: i32,
    /// Validity.
    pub validity: DateRange,
}

/// Checks a 2-digit county code of the current county structure.
fn check_county(field: &str, value: &str, violations: &mut Violations) -> Option<CountyCode> {
    let county = violations.check(field, CountyCode::parse(value))?;
    if county.name().is_none() {
        violations.add(
            field,
            "must be a county code of the current county structure",
        );
        return None;
    }
    Some(county)
}

/// Checks a repeated competence area field: at least one, each a known value.
fn check_areas(
    field: &str,
    values: &[i32],
    violations: &mut Violations,
) -> Option<Vec<CompetenceArea>> {
    if values.is_empty() {
        violations.add(field, "must contain at least one competence area");
        return None;
    }
    let mut areas = BTreeSet::new();
    let mut valid = true;
    for (index, value) in values.iter().enumerate() {
        match violations.check(
            &format!("{field}[{index}]"),
            competence_area_from_wire(*value),
        ) {
            Some(area) => {
                areas.insert(area);
            }
            None => valid = false,
        }
    }
    valid.then(|| areas.into_iter().collect())
}

impl FromWire<v1::ExpertDetails> for ValidExpert {
    fn from_wire(
        field: &str,
        details: &v1::ExpertDetails,
        violations: &mut Violations,
    ) -> Option<Self> {
        let name = violations.text(&format!("{field}.name"), &details.name, MAX_NAME_CHARS);
        let supplier = violations.check(
            &format!("{field}.supplier_organisation_number"),
            OrganisationNumber::parse(&details.supplier_organisation_number),
        );
        let profession = violations
            .enumeration::<v1::Profession>(&format!("{field}.profession"), details.profession);
        let authorisation = check_authorisation(
            &format!("{field}.authorisation"),
            details.authorisation.as_ref(),
            violations,
        );
        let areas = check_areas(
            &format!("{field}.competence_areas"),
            &details.competence_areas,
            violations,
        );
        let (authorisation_kind, authorisation_reference) = authorisation?;
        Some(ValidExpert {
            name: name?,
            supplier: supplier?,
            profession: profession?,
            authorisation_kind,
            authorisation_reference,
            areas: areas?,
        })
    }
}

fn check_authorisation(
    field: &str,
    authorisation: Option<&v1::Authorisation>,
    violations: &mut Violations,
) -> Option<(v1::AuthorisationKind, String)> {
    let Some(authorisation) = authorisation else {
        violations.add(field, "is required");
        return None;
    };
    let kind = violations
        .enumeration::<v1::AuthorisationKind>(&format!("{field}.kind"), authorisation.kind);
    let reference_field = format!("{field}.reference");
    let reference = violations.text(
        &reference_field,
        &authorisation.reference,
        MAX_REFERENCE_CHARS,
    );
    let (kind, reference) = (kind?, reference?);
    let is_hpr_number = reference.len() <= 9 && reference.bytes().all(|b| b.is_ascii_digit());
    if kind == v1::AuthorisationKind::HealthPersonnel && !is_hpr_number {
        violations.add(
            &reference_field,
            "must be an HPR number (1 to 9 digits) for health-personnel authorisation",
        );
        return None;
    }
    Some((kind, reference))
}

impl FromWire<v1::AgreementTerms> for ValidTerms {
    fn from_wire(
        field: &str,
        terms: &v1::AgreementTerms,
        violations: &mut Violations,
    ) -> Option<Self> {
        let areas = check_areas(
            &format!("{field}.competence_areas"),
            &terms.competence_areas,
            violations,
        );
        // A price is a case amount: above zero and at most Money::MAX_CASE_AMOUNT.
        let price = violations.positive_money(
            &format!("{field}.price_per_assignment_ore"),
            terms.price_per_assignment_ore,
        );
        let ranking = violations.positive(&format!("{field}.ranking"), terms.ranking);
        let monthly_capacity =
            violations.positive(&format!("{field}.monthly_capacity"), terms.monthly_capacity);
        let validity = violations.date_range(&format!("{field}.validity"), terms.validity.as_ref());
        Some(ValidTerms {
            areas: areas?,
            price_ore: price?.ore(),
            ranking: ranking?,
            monthly_capacity: monthly_capacity?,
            validity: validity?,
        })
    }
}

/// Checks an agreement reference: 1–64 characters of letters, digits and `-_/.`.
fn check_agreement_reference(
    field: &str,
    value: &str,
    violations: &mut Violations,
) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_/.".contains(c);
    if value.is_empty() {
        violations.add(field, "must not be empty");
        None
    } else if value.chars().count() > MAX_AGREEMENT_REFERENCE_CHARS {
        violations.add(
            field,
            format!("must be at most {MAX_AGREEMENT_REFERENCE_CHARS} characters"),
        );
        None
    } else if !value.chars().all(allowed) {
        violations.add(field, "may contain only letters, digits and - _ / .");
        None
    } else {
        Some(value.to_owned())
    }
}

/// RegisterExpert, validated.
#[derive(Debug, Clone)]
pub struct RegisterExpert {
    /// The expert.
    pub details: ValidExpert,
}

/// UpdateExpert, validated.
#[derive(Debug, Clone)]
pub struct UpdateExpert {
    /// Which expert.
    pub expert_id: Uuid,
    /// The new details.
    pub details: ValidExpert,
}

/// GetExpert or GetAgreement, validated: one id.
#[derive(Debug, Clone, Copy)]
pub struct ById(pub Uuid);

/// RegisterAgreement, validated.
#[derive(Debug, Clone)]
pub struct RegisterAgreement {
    /// NAV's reference.
    pub reference: String,
    /// Supplier.
    pub supplier: OrganisationNumber,
    /// Supplier name.
    pub supplier_name: String,
    /// County.
    pub county: CountyCode,
    /// Terms.
    pub terms: ValidTerms,
}

/// UpdateAgreement, validated.
#[derive(Debug, Clone)]
pub struct UpdateAgreement {
    /// Which agreement.
    pub agreement_id: Uuid,
    /// The new terms.
    pub terms: ValidTerms,
}

/// EndAgreement, validated.
#[derive(Debug, Clone)]
pub struct EndAgreement {
    /// Which agreement.
    pub agreement_id: Uuid,
    /// Its last day.
    pub end_date: Date,
    /// Why.
    pub reason: String,
}

/// FindAgreements, validated.
#[derive(Debug, Clone, Copy)]
pub struct FindAgreements {
    /// County.
    pub county: CountyCode,
    /// Area.
    pub area: CompetenceArea,
    /// Date.
    pub date: Date,
}

impl TryFrom<v1::RegisterExpertRequest> for RegisterExpert {
    type Error = ApiError;

    fn try_from(request: v1::RegisterExpertRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let details = check.part("details", request.details.as_ref());
        check.finish_with(|| Some(RegisterExpert { details: details? }))
    }
}

impl TryFrom<v1::UpdateExpertRequest> for UpdateExpert {
    type Error = ApiError;

    fn try_from(request: v1::UpdateExpertRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let expert_id = check.uuid("expert_id", &request.expert_id);
        let details = check.part("details", request.details.as_ref());
        check.finish_with(|| {
            Some(UpdateExpert {
                expert_id: expert_id?,
                details: details?,
            })
        })
    }
}

impl TryFrom<v1::GetExpertRequest> for ById {
    type Error = ApiError;

    fn try_from(request: v1::GetExpertRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let id = check.uuid("expert_id", &request.expert_id);
        check.finish_with(|| Some(ById(id?)))
    }
}

impl TryFrom<v1::GetAgreementRequest> for ById {
    type Error = ApiError;

    fn try_from(request: v1::GetAgreementRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let id = check.uuid("agreement_id", &request.agreement_id);
        check.finish_with(|| Some(ById(id?)))
    }
}

impl TryFrom<v1::RegisterAgreementRequest> for RegisterAgreement {
    type Error = ApiError;

    fn try_from(request: v1::RegisterAgreementRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let reference = check_agreement_reference(
            "agreement_reference",
            &request.agreement_reference,
            &mut check,
        );
        let supplier = check.check(
            "supplier_organisation_number",
            OrganisationNumber::parse(&request.supplier_organisation_number),
        );
        let supplier_name = check.text("supplier_name", &request.supplier_name, MAX_NAME_CHARS);
        let county = check_county("county_code", &request.county_code, &mut check);
        let terms = check.part("terms", request.terms.as_ref());
        check.finish_with(|| {
            Some(RegisterAgreement {
                reference: reference?,
                supplier: supplier?,
                supplier_name: supplier_name?,
                county: county?,
                terms: terms?,
            })
        })
    }
}

impl TryFrom<v1::UpdateAgreementRequest> for UpdateAgreement {
    type Error = ApiError;

    fn try_from(request: v1::UpdateAgreementRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let agreement_id = check.uuid("agreement_id", &request.agreement_id);
        let terms = check.part("terms", request.terms.as_ref());
        check.finish_with(|| {
            Some(UpdateAgreement {
                agreement_id: agreement_id?,
                terms: terms?,
            })
        })
    }
}

impl TryFrom<v1::EndAgreementRequest> for EndAgreement {
    type Error = ApiError;

    fn try_from(request: v1::EndAgreementRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let agreement_id = check.uuid("agreement_id", &request.agreement_id);
        let end_date = check.date("end_date", &request.end_date);
        let reason = check.text("reason", &request.reason, MAX_REASON_CHARS);
        check.finish_with(|| {
            Some(EndAgreement {
                agreement_id: agreement_id?,
                end_date: end_date?,
                reason: reason?,
            })
        })
    }
}

impl TryFrom<v1::FindAgreementsRequest> for FindAgreements {
    type Error = ApiError;

    fn try_from(request: v1::FindAgreementsRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let county = check.check("county_code", CountyCode::parse(&request.county_code));
        let area = check.check(
            "competence_area",
            competence_area_from_wire(request.competence_area),
        );
        let date = check.date("on_date", &request.on_date);
        check.finish_with(|| {
            Some(FindAgreements {
                county: county?,
                area: area?,
                date: date?,
            })
        })
    }
}
