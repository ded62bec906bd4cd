//! Authentication and authorization in front of every RPC: a bearer JWT validated against the
//! issuer's JWKS (signature, issuer, audience, expiry) and the RPC's declared role. Health and
//! reflection stay open.

use ekb_proto::v1::{self, CompetenceArea};
use ekb_testkit::{
    broker::TestBroker,
    issuer::TestIssuer,
    postgres::fresh_database,
    services::{TestSettings, start_routing, with_bearer},
};
use ekb_tests::{HAMAR, case_facts, open_case, unique_topic_prefix};
use tonic::Code;

#[tokio::test]
async fn tokens_and_roles_are_enforced_and_health_stays_open() -> anyhow::Result<()> {
    let broker = TestBroker::start()?;
    let issuer = TestIssuer::start().await?;
    let database = fresh_database("auth").await?;
    let settings = TestSettings::new(
        &database.url,
        broker.bootstrap_servers(),
        &unique_topic_prefix(),
    )
    .with_auth(&issuer);
    let routing = start_routing(&settings).await?;
    let mut client =
        v1::routing_service_client::RoutingServiceClient::connect(routing.url()).await?;
    let request = || {
        open_case(case_facts(
            HAMAR,
            Some(CompetenceArea::ConflictHandling),
            "2025-03-01",
        ))
    };

    let refused = [
        ("no token", tonic::Request::new(request())),
        ("garbage token", with_bearer(request(), "not.a.jwt")),
        (
            "expired token",
            with_bearer(request(), &issuer.expired_token(&["case-writer"])),
        ),
        (
            "wrong audience",
            with_bearer(
                request(),
                &issuer.token_for_audience("someone-else", &["case-writer"]),
            ),
        ),
    ];
    for (case, call) in refused {
        let status = client.open_case(call).await.expect_err(case);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
    }

    let reader_only = issuer.token("reader-app", &["case-reader"]);
    let status = client
        .open_case(with_bearer(request(), &reader_only))
        .await
        .expect_err("reader cannot write");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("case-writer"), "{status:?}");

    let writer = issuer.token("writer-app", &["case-writer"]);
    let created = client
        .open_case(with_bearer(request(), &writer))
        .await?
        .into_inner();
    assert!(created.created);
    let case_id = created.case.unwrap_or_default().case_id;
    let fetched = client
        .get_case(with_bearer(
            v1::GetCaseRequest {
                case_id: case_id.clone(),
            },
            &reader_only,
        ))
        .await?
        .into_inner();
    assert_eq!(fetched.case.unwrap_or_default().case_id, case_id);

    // Health needs no token (Kubernetes probes carry none).
    assert_eq!(
        ekb_testkit::services::health_status(routing.grpc_addr).await,
        Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );
    routing.stop().await
}
