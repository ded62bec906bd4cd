//! Service tests of the expert registry (in-process on port 0, fresh database, the broker
//! process): experts and agreements are registered, updated, ended and found; duplicates are
//! ALREADY_EXISTS; changes to ended agreements are refused; every change queues its event.

use ekb_expert_registry::ExpertRegistry;
use ekb_proto::v1::{self, CompetenceArea};
use ekb_testkit::{
    fixtures::{agreement_terms, register_agreement, register_expert},
    service_under_test::ServiceUnderTest,
};
use prost::Name;
use sqlx::Connection;
use tonic::Code;
use tonic_types::StatusExt;

type RegistryClient =
    v1::expert_registry_service_client::ExpertRegistryServiceClient<tonic::transport::Channel>;

#[tokio::test]
async fn experts_and_agreements_lifecycle() -> anyhow::Result<()> {
    let registry = ServiceUnderTest::start::<ExpertRegistry>("registry").await?;
    let mut client = RegistryClient::new(registry.channel().await?);

    // Experts: register, duplicate, update, get, unknown.
    let expert = client
        .register_expert(register_expert("7654321"))
        .await?
        .into_inner()
        .expert
        .unwrap_or_default();
    assert_eq!(expert.version, 1);
    let duplicate = client
        .register_expert(register_expert("7654321"))
        .await
        .expect_err("same HPR number");
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    let mut details = register_expert("7654321").details.unwrap_or_default();
    details.competence_areas = vec![
        CompetenceArea::ConflictHandling as i32,
        CompetenceArea::ConflictHandling as i32,
    ];
    let updated = client
        .update_expert(v1::UpdateExpertRequest {
            expert_id: expert.expert_id.clone(),
            details: Some(details),
        })
        .await?
        .into_inner()
        .expert
        .unwrap_or_default();
    assert_eq!(updated.version, 2);
    assert_eq!(
        updated.details.clone().unwrap_or_default().competence_areas,
        [CompetenceArea::ConflictHandling as i32],
        "duplicates ignored"
    );
    let fetched = client
        .get_expert(v1::GetExpertRequest {
            expert_id: expert.expert_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(fetched.expert, Some(updated));
    let unknown = client
        .get_expert(v1::GetExpertRequest {
            expert_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .expect_err("unknown expert");
    assert_eq!(unknown.code(), Code::NotFound);

    // Agreements: two rankings in Innlandet, one elsewhere; find by county, area and date.
    let mut second = register_agreement("34", &[CompetenceArea::ConflictHandling]);
    second.terms = Some(v1::AgreementTerms {
        ranking: 2,
        ..agreement_terms(&[CompetenceArea::ConflictHandling])
    });
    let second = client
        .register_agreement(second)
        .await?
        .into_inner()
        .agreement
        .unwrap_or_default();
    let first_request = register_agreement(
        "34",
        &[
            CompetenceArea::ConflictHandling,
            CompetenceArea::Restructuring,
        ],
    );
    let first = client
        .register_agreement(first_request.clone())
        .await?
        .into_inner()
        .agreement
        .unwrap_or_default();
    client
        .register_agreement(register_agreement(
            "46",
            &[CompetenceArea::ConflictHandling],
        ))
        .await?;
    let duplicate = client
        .register_agreement(first_request)
        .await
        .expect_err("same reference");
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    assert_eq!(
        duplicate.message(),
        "agreement_reference is already registered",
        "the service's message for its named constraint, not the constraint's name"
    );

    let find = |date: &str, area: CompetenceArea| v1::FindAgreementsRequest {
        county_code: "34".into(),
        competence_area: area as i32,
        on_date: date.into(),
    };
    let found = client
        .find_agreements(find("2025-06-01", CompetenceArea::ConflictHandling))
        .await?
        .into_inner()
        .agreements;
    let ids: Vec<_> = found.iter().map(|a| a.agreement_id.as_str()).collect();
    assert_eq!(
        ids,
        [first.agreement_id.as_str(), second.agreement_id.as_str()],
        "best ranking first, county 46 excluded"
    );
    assert!(
        client
            .find_agreements(find("2023-06-01", CompetenceArea::ConflictHandling))
            .await?
            .into_inner()
            .agreements
            .is_empty()
    );

    // End the first agreement: not found after its end, no second end, no update.
    let end = |date: &str| v1::EndAgreementRequest {
        agreement_id: first.agreement_id.clone(),
        end_date: date.into(),
        reason: "terminated by NAV".into(),
    };
    let outside = client
        .end_agreement(end("2030-01-01"))
        .await
        .expect_err("end outside validity");
    assert_eq!(outside.code(), Code::InvalidArgument);
    let ended = client
        .end_agreement(end("2025-03-31"))
        .await?
        .into_inner()
        .agreement
        .unwrap_or_default();
    assert_eq!(
        (ended.ended_on_date.as_str(), ended.version),
        ("2025-03-31", 2)
    );
    let found = client
        .find_agreements(find("2025-06-01", CompetenceArea::ConflictHandling))
        .await?
        .into_inner()
        .agreements;
    assert_eq!(found.len(), 1);
    assert_eq!(
        client
            .find_agreements(find("2025-03-31", CompetenceArea::Restructuring))
            .await?
            .into_inner()
            .agreements
            .len(),
        1
    );
    let ended_twice = client
        .end_agreement(end("2025-04-30"))
        .await
        .expect_err("ended twice");
    assert_eq!(ended_twice.code(), Code::FailedPrecondition);
    assert_eq!(
        ended_twice
            .get_error_details()
            .error_info()
            .map(|info| info.reason.as_str()),
        Some("AGREEMENT_ENDED"),
        "a refused transition says why, for machines"
    );
    let update = v1::UpdateAgreementRequest {
        agreement_id: first.agreement_id.clone(),
        terms: Some(agreement_terms(&[CompetenceArea::CareerGuidance])),
    };
    assert_eq!(
        client
            .update_agreement(update)
            .await
            .expect_err("ended")
            .code(),
        Code::FailedPrecondition
    );
    let update_second = v1::UpdateAgreementRequest {
        agreement_id: second.agreement_id.clone(),
        terms: Some(agreement_terms(&[CompetenceArea::CareerGuidance])),
    };
    let updated = client
        .update_agreement(update_second)
        .await?
        .into_inner()
        .agreement
        .unwrap_or_default();
    assert_eq!(updated.version, 2);

    // Every successful change queued exactly one event, in order.
    let mut connection = sqlx::PgConnection::connect(registry.database_url()).await?;
    let types: Vec<String> = sqlx::query_scalar("SELECT event_type FROM outbox ORDER BY id")
        .fetch_all(&mut connection)
        .await?;
    let expected = [
        v1::ExpertRegistered::full_name(),
        v1::ExpertUpdated::full_name(),
        v1::AgreementActivated::full_name(),
        v1::AgreementActivated::full_name(),
        v1::AgreementActivated::full_name(),
        v1::AgreementEnded::full_name(),
        v1::AgreementUpdated::full_name(),
    ];
    assert_eq!(types, expected);
    registry.stop().await
}

#[tokio::test]
async fn a_stored_area_it_cannot_read_is_internal_never_dropped_from_an_event() -> anyhow::Result<()>
{
    let registry = ServiceUnderTest::start::<ExpertRegistry>("registry_corrupt").await?;
    let mut client = RegistryClient::new(registry.channel().await?);
    let agreement = client
        .register_agreement(register_agreement(
            "34",
            &[CompetenceArea::ConflictHandling],
        ))
        .await?
        .into_inner()
        .agreement
        .unwrap_or_default();
    let mut connection = sqlx::PgConnection::connect(registry.database_url()).await?;
    sqlx::query(
        "UPDATE agreements SET competence_areas = ARRAY['CONFLICT_HANDLING', 'NOT_AN_AREA'] \
         WHERE agreement_id = $1::uuid",
    )
    .bind(&agreement.agreement_id)
    .execute(&mut connection)
    .await?;

    let read = client
        .get_agreement(v1::GetAgreementRequest {
            agreement_id: agreement.agreement_id.clone(),
        })
        .await
        .expect_err("an unreadable area");
    assert_eq!(read.code(), Code::Internal);
    assert_eq!(read.message(), "internal error", "no internals leak");
    let end = client
        .end_agreement(v1::EndAgreementRequest {
            agreement_id: agreement.agreement_id.clone(),
            end_date: "2025-06-30".into(),
            reason: "terminated by NAV".into(),
        })
        .await
        .expect_err("an event without the area would shrink routing's coverage");
    assert_eq!(end.code(), Code::Internal);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&mut connection)
        .await?;
    assert_eq!(
        events, 1,
        "only AgreementActivated; no event with the area dropped"
    );
    registry.stop().await
}

#[test]
fn the_catalog_lists_this_service_with_the_roles_its_rpcs_accept() -> anyhow::Result<()> {
    ekb_testkit::catalog::check_entry_of::<ekb_expert_registry::ExpertRegistry>()
}
