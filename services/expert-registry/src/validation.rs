//! Input rules of the registry's requests, turned into domain values or field violations.

use std::collections::BTreeSet;

use ekb_domain::{
    CompetenceArea, CountyCode, DateRange, OrganisationNumber, parse_iso_date, validate_name,
};
use ekb_platform::Violations;
use ekb_proto::{convert::competence_area_from_wire, v1};

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

/// Checks a required UUID field.
pub fn check_uuid(field: &str, value: &str, violations: &mut Violations) -> Option<uuid::Uuid> {
    violations.check(
        field,
        uuid::Uuid::parse_str(value).map_err(|_| "must be a UUID"),
    )
}

/// Checks a name-like free text.
pub fn check_name(
    field: &str,
    value: &str,
    max: usize,
    violations: &mut Violations,
) -> Option<String> {
    violations.check(field, validate_name(value, max).map(str::to_owned))
}

/// Checks a 2-digit county code of the current county structure.
pub fn check_county(field: &str, value: &str, violations: &mut Violations) -> Option<CountyCode> {
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
pub fn check_areas(
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

/// Checks an enum field that must be a known, non-zero value.
pub fn check_enum<E: TryFrom<i32>>(
    field: &str,
    value: i32,
    violations: &mut Violations,
) -> Option<E> {
    if value == 0 {
        violations.add(field, "must be set (UNSPECIFIED is not allowed)");
        return None;
    }
    match E::try_from(value) {
        Ok(known) => Some(known),
        Err(_) => {
            violations.add(field, format!("unknown enum value {value}"));
            None
        }
    }
}

/// Checks an inclusive date range.
pub fn check_range(
    field: &str,
    range: Option<&v1::DateRange>,
    violations: &mut Violations,
) -> Option<DateRange> {
    let Some(range) = range else {
        violations.add(field, "is required");
        return None;
    };
    let from = violations.check(
        &format!("{field}.from_date"),
        parse_iso_date(&range.from_date),
    );
    let to = violations.check(&format!("{field}.to_date"), parse_iso_date(&range.to_date));
    violations.check(field, DateRange::new(from?, to?))
}

/// Checks expert details at `field`.
pub fn check_expert(
    field: &str,
    details: Option<&v1::ExpertDetails>,
    violations: &mut Violations,
) -> Option<ValidExpert> {
    let Some(details) = details else {
        violations.add(field, "is required");
        return None;
    };
    let name = check_name(
        &format!("{field}.name"),
        &details.name,
        MAX_NAME_CHARS,
        violations,
    );
    let supplier = violations.check(
        &format!("{field}.supplier_organisation_number"),
        OrganisationNumber::parse(&details.supplier_organisation_number),
    );
    let profession = check_enum::<v1::Profession>(
        &format!("{field}.profession"),
        details.profession,
        violations,
    );
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

fn check_authorisation(
    field: &str,
    authorisation: Option<&v1::Authorisation>,
    violations: &mut Violations,
) -> Option<(v1::AuthorisationKind, String)> {
    let Some(authorisation) = authorisation else {
        violations.add(field, "is required");
        return None;
    };
    let kind = check_enum::<v1::AuthorisationKind>(
        &format!("{field}.kind"),
        authorisation.kind,
        violations,
    );
    let reference_field = format!("{field}.reference");
    let reference = check_name(
        &reference_field,
        &authorisation.reference,
        MAX_REFERENCE_CHARS,
        violations,
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

/// Checks agreement terms at `field`.
pub fn check_terms(
    field: &str,
    terms: Option<&v1::AgreementTerms>,
    violations: &mut Violations,
) -> Option<ValidTerms> {
    let Some(terms) = terms else {
        violations.add(field, "is required");
        return None;
    };
    let areas = check_areas(
        &format!("{field}.competence_areas"),
        &terms.competence_areas,
        violations,
    );
    let mut positive = |name: &str, value: i64| {
        if value <= 0 {
            violations.add(&format!("{field}.{name}"), "must be greater than zero");
        }
    };
    positive("price_per_assignment_ore", terms.price_per_assignment_ore);
    positive("ranking", i64::from(terms.ranking));
    positive("monthly_capacity", i64::from(terms.monthly_capacity));
    let validity = check_range(
        &format!("{field}.validity"),
        terms.validity.as_ref(),
        violations,
    );
    if terms.price_per_assignment_ore <= 0 || terms.ranking <= 0 || terms.monthly_capacity <= 0 {
        return None;
    }
    Some(ValidTerms {
        areas: areas?,
        price_ore: terms.price_per_assignment_ore,
        ranking: terms.ranking,
        monthly_capacity: terms.monthly_capacity,
        validity: validity?,
    })
}

/// Checks an agreement reference: 1–64 characters of letters, digits and `-_/.`.
pub fn check_agreement_reference(
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
