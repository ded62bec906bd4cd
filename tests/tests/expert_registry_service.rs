//! Service tests of the expert registry (in-process on port 0, fresh database, the broker
//! process): experts and agreements are registered, updated, ended and found; duplicates are
//! ALREADY_EXISTS; changes to ended agreements are refused; every change queues its event.

use ekb_proto::v1::{self, CompetenceArea};
use ekb_testkit::{
    broker::TestBroker,
    postgres::fresh_database,
    services::{TestSettings, start_expert_registry},
};
use ekb_tests::{agreement_terms, register_agreement, register_expert, unique_topic_prefix};
use prost::Name;
use sqlx::Connection;
use tonic::Code;

#[tokio::test]
async fn experts_and_agreements_lifecycle() -> anyhow::Result<()> {
    let broker = TestBroker::start()?;
    let database = fresh_database("registry").await?;
    let settings = TestSettings::new(
        &database.url,
        broker.bootstrap_servers(),
        &unique_topic_prefix(),
    );
    let registry = start_expert_registry(&settings).await?;
    let mut client =
        v1::expert_registry_service_client::ExpertRegistryServiceClient::connect(registry.url())
            .await?;

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
    assert_eq!(
        client
            .end_agreement(end("2025-04-30"))
            .await
            .expect_err("ended twice")
            .code(),
        Code::FailedPrecondition
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
    let mut connection = sqlx::PgConnection::connect(&database.url).await?;
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
