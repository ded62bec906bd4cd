//! The bad-input corpus: bad checksums, unknown enums, empty fields, wrong dates, oversize
//! strings. Each request must fail with INVALID_ARGUMENT naming the field (in the message and in
//! the `BadRequest` details), and nothing may be stored or published. A request that is valid but
//! refused carries a reason from its service's contract: [`bad_input::refusal_reasons`] holds the
//! reasons in the code and the contracts' refusal enums together.

mod bad_input {
    pub mod refusal_reasons;
}

use ekb_proto::v1::{self, CompetenceArea};
use ekb_testkit::services::with_bearer;
use ekb_tests::{HAMAR, ProcessStack, case_facts, open_case, register_agreement, register_expert};
use sqlx::Connection;
use tonic::Code;
use tonic_types::StatusExt;

const OVERSIZE: usize = 10_000;

fn assert_invalid(status: &tonic::Status, field: &str, case: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    assert!(
        status.message().contains(field),
        "{case}: message {:?} does not name {field}",
        status.message()
    );
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    assert!(
        violations
            .iter()
            .any(|v| v.field == field && !v.description.is_empty()),
        "{case}: no field violation for {field} in {violations:?}"
    );
}

async fn count(url: &str, query: &'static str) -> anyhow::Result<i64> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    Ok(sqlx::query_scalar(query).fetch_one(&mut connection).await?)
}

type Mutation<T> = (&'static str, &'static str, fn(&mut T));

#[tokio::test]
async fn bad_input_is_rejected_naming_the_field_and_changes_nothing() -> anyhow::Result<()> {
    let stack = ProcessStack::start("bad_input").await?;
    let token = stack.admin_token();

    let open_case_corpus: Vec<Mutation<v1::OpenCaseRequest>> = vec![
        ("request id not a UUID", "request_id", |r| {
            r.request_id = "retry-1".into()
        }),
        ("request id oversize", "request_id", |r| {
            r.request_id = "x".repeat(OVERSIZE)
        }),
        ("facts missing", "facts", |r| r.facts = None),
        (
            "orgnr bad check digit",
            "facts.employer_organisation_number",
            |r| facts(r).employer_organisation_number = "974760674".into(),
        ),
        (
            "orgnr 8 digits",
            "facts.employer_organisation_number",
            |r| facts(r).employer_organisation_number = "97476067".into(),
        ),
        ("orgnr letters", "facts.employer_organisation_number", |r| {
            facts(r).employer_organisation_number = "97476067A".into()
        }),
        ("orgnr empty", "facts.employer_organisation_number", |r| {
            facts(r).employer_organisation_number.clear()
        }),
        (
            "orgnr oversize",
            "facts.employer_organisation_number",
            |r| facts(r).employer_organisation_number = "9".repeat(OVERSIZE),
        ),
        ("municipality 3 digits", "facts.municipality_number", |r| {
            facts(r).municipality_number = "340".into()
        }),
        ("municipality empty", "facts.municipality_number", |r| {
            facts(r).municipality_number.clear()
        }),
        ("choice missing", "facts.expert_choice", |r| {
            facts(r).expert_choice = None
        }),
        (
            "area unspecified",
            "facts.expert_choice.framework_agreement.competence_area",
            |r| set_area(r, 0),
        ),
        (
            "area unknown enum",
            "facts.expert_choice.framework_agreement.competence_area",
            |r| set_area(r, 77),
        ),
        ("date 30 February", "facts.case_date", |r| {
            facts(r).case_date = "2025-02-30".into()
        }),
        ("date month 13", "facts.case_date", |r| {
            facts(r).case_date = "2025-13-01".into()
        }),
        ("date Norwegian format", "facts.case_date", |r| {
            facts(r).case_date = "01.03.2025".into()
        }),
        ("date empty", "facts.case_date", |r| {
            facts(r).case_date.clear()
        }),
        ("date far future", "facts.case_date", |r| {
            facts(r).case_date = "2999-01-01".into()
        }),
    ];
    let mut routing = stack.routing_client().await?;
    for (case, field, mutate) in &open_case_corpus {
        let mut request = open_case(case_facts(
            HAMAR,
            Some(CompetenceArea::ConflictHandling),
            "2025-03-01",
        ));
        mutate(&mut request);
        let status = routing
            .open_case(with_bearer(request, &token))
            .await
            .expect_err(case);
        assert_invalid(&status, field, case);
    }
    let status = routing
        .get_case(with_bearer(
            v1::GetCaseRequest {
                case_id: "not-a-uuid".into(),
            },
            &token,
        ))
        .await
        .expect_err("bad case id");
    assert_invalid(&status, "case_id", "GetCase with a bad id");

    let agreement_corpus: Vec<Mutation<v1::RegisterAgreementRequest>> = vec![
        ("reference empty", "agreement_reference", |r| {
            r.agreement_reference.clear()
        }),
        ("reference oversize", "agreement_reference", |r| {
            r.agreement_reference = "R".repeat(OVERSIZE)
        }),
        ("supplier orgnr bad", "supplier_organisation_number", |r| {
            r.supplier_organisation_number = "923609017".into()
        }),
        ("supplier name blank", "supplier_name", |r| {
            r.supplier_name = "   ".into()
        }),
        ("supplier name oversize", "supplier_name", |r| {
            r.supplier_name = "N".repeat(OVERSIZE)
        }),
        ("county unknown", "county_code", |r| {
            r.county_code = "99".into()
        }),
        ("county 3 digits", "county_code", |r| {
            r.county_code = "034".into()
        }),
        ("terms missing", "terms", |r| r.terms = None),
        ("no areas", "terms.competence_areas", |r| {
            terms(r).competence_areas.clear()
        }),
        ("unknown area", "terms.competence_areas[0]", |r| {
            terms(r).competence_areas = vec![99]
        }),
        ("price zero", "terms.price_per_assignment_ore", |r| {
            terms(r).price_per_assignment_ore = 0
        }),
        ("price negative", "terms.price_per_assignment_ore", |r| {
            terms(r).price_per_assignment_ore = -100
        }),
        (
            "price above the bound",
            "terms.price_per_assignment_ore",
            |r| terms(r).price_per_assignment_ore = i64::MAX,
        ),
        ("ranking zero", "terms.ranking", |r| terms(r).ranking = 0),
        ("capacity zero", "terms.monthly_capacity", |r| {
            terms(r).monthly_capacity = 0
        }),
        ("validity missing", "terms.validity", |r| {
            terms(r).validity = None
        }),
        ("validity reversed", "terms.validity", |r| {
            terms(r).validity = Some(range("2026-01-01", "2025-01-01"))
        }),
        ("validity bad date", "terms.validity.to_date", |r| {
            terms(r).validity = Some(range("2025-01-01", "2025-02-29"))
        }),
    ];
    let mut registry = stack.registry_client().await?;
    for (case, field, mutate) in &agreement_corpus {
        let mut request = register_agreement("34", &[CompetenceArea::ConflictHandling]);
        mutate(&mut request);
        let status = registry
            .register_agreement(with_bearer(request, &token))
            .await
            .expect_err(case);
        assert_invalid(&status, field, case);
    }

    let expert_corpus: Vec<Mutation<v1::RegisterExpertRequest>> = vec![
        ("details missing", "details", |r| r.details = None),
        ("name empty", "details.name", |r| expert(r).name.clear()),
        ("name with control character", "details.name", |r| {
            expert(r).name = "Kari\u{0007}".into()
        }),
        ("profession unspecified", "details.profession", |r| {
            expert(r).profession = 0
        }),
        ("profession unknown", "details.profession", |r| {
            expert(r).profession = 42
        }),
        ("authorisation missing", "details.authorisation", |r| {
            expert(r).authorisation = None
        }),
        (
            "HPR number not digits",
            "details.authorisation.reference",
            |r| {
                if let Some(authorisation) = expert(r).authorisation.as_mut() {
                    authorisation.reference = "HPR-12".into();
                }
            },
        ),
        ("no areas", "details.competence_areas", |r| {
            expert(r).competence_areas.clear()
        }),
    ];
    for (case, field, mutate) in &expert_corpus {
        let mut request = register_expert("1234567");
        mutate(&mut request);
        let status = registry
            .register_expert(with_bearer(request, &token))
            .await
            .expect_err(case);
        assert_invalid(&status, field, case);
    }

    // Nothing was stored, nothing was queued for publishing.
    assert_eq!(
        count(&stack.routing_db_url, "SELECT count(*) FROM cases").await?,
        0
    );
    assert_eq!(
        count(&stack.routing_db_url, "SELECT count(*) FROM outbox").await?,
        0
    );
    assert_eq!(
        count(&stack.registry_db_url, "SELECT count(*) FROM agreements").await?,
        0
    );
    assert_eq!(
        count(&stack.registry_db_url, "SELECT count(*) FROM experts").await?,
        0
    );
    assert_eq!(
        count(&stack.registry_db_url, "SELECT count(*) FROM outbox").await?,
        0
    );
    Ok(())
}

fn facts(request: &mut v1::OpenCaseRequest) -> &mut v1::CaseFacts {
    request.facts.get_or_insert_with(Default::default)
}

fn set_area(request: &mut v1::OpenCaseRequest, value: i32) {
    facts(request).expert_choice = Some(v1::ExpertChoice {
        choice: Some(v1::expert_choice::Choice::FrameworkAgreement(
            v1::FrameworkAgreementChoice {
                competence_area: value,
            },
        )),
    });
}

fn terms(request: &mut v1::RegisterAgreementRequest) -> &mut v1::AgreementTerms {
    request.terms.get_or_insert_with(Default::default)
}

fn expert(request: &mut v1::RegisterExpertRequest) -> &mut v1::ExpertDetails {
    request.details.get_or_insert_with(Default::default)
}

fn range(from: &str, to: &str) -> v1::DateRange {
    v1::DateRange {
        from_date: from.into(),
        to_date: to.into(),
    }
}
