//! Authentication and authorization in front of every RPC: a bearer JWT validated against the
//! issuer's JWKS (signature, issuer, audience, expiry, not-before) and the RPC's declared role. Health and
//! reflection stay open.

use ekb_proto::v1::{self, CompetenceArea};
use ekb_testkit::{
    broker::TestBroker,
    issuer::{TEST_AUDIENCE, TEST_ISSUER, TestIssuer},
    postgres::fresh_database,
    services::{InProcessService, TestSettings, start_in_process, with_bearer},
};
use ekb_tests::{HAMAR, case_facts, open_case, unique_topic_prefix};
use tonic::Code;

/// Routing in this process, trusting tokens from a local issuer.
struct RoutingWithAuth {
    _broker: TestBroker,
    issuer: TestIssuer,
    routing: InProcessService,
}

async fn routing_with_auth(
    purpose: &str,
    settings_over: &[(&str, &str)],
) -> anyhow::Result<RoutingWithAuth> {
    let broker = TestBroker::start()?;
    let issuer = TestIssuer::start().await?;
    let database = fresh_database(purpose).await?;
    let mut settings = TestSettings::new(
        &database.url,
        broker.bootstrap_servers(),
        &unique_topic_prefix(),
    )
    .with_auth(&issuer);
    for (key, value) in settings_over {
        settings = settings.with(key, *value);
    }
    let routing = start_in_process::<ekb_routing::Routing>(&settings).await?;
    Ok(RoutingWithAuth {
        _broker: broker,
        issuer,
        routing,
    })
}

#[tokio::test]
async fn tokens_and_roles_are_enforced_and_health_stays_open() -> anyhow::Result<()> {
    let RoutingWithAuth {
        _broker,
        issuer,
        routing,
    } = routing_with_auth("auth", &[]).await?;
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
        (
            "not valid before an hour from now",
            with_bearer(
                request(),
                &issuer.not_yet_valid_token(&["case-writer"], 3600),
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

    // A not-before a few seconds ahead lies within the clock-skew leeway (auth.clock_skew).
    let skewed = issuer.not_yet_valid_token(&["case-writer"], 5);
    client.open_case(with_bearer(request(), &skewed)).await?;

    // Health needs no token (Kubernetes probes carry none).
    assert_eq!(
        ekb_testkit::services::health_status(routing.grpc_addr).await,
        Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );
    routing.stop().await
}

/// A token verified once is remembered, so a client reusing it costs one signature check —
/// but never past its own expiry: forty concurrent calls with one token all pass the check, and
/// once the token has expired the same token is refused.
#[tokio::test]
async fn a_remembered_token_is_refused_once_it_has_expired() -> anyhow::Result<()> {
    let RoutingWithAuth {
        _broker,
        issuer,
        routing,
    } = routing_with_auth("auth_remembered", &[("auth.clock_skew", "0s")]).await?;
    let client = v1::routing_service_client::RoutingServiceClient::connect(routing.url()).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let short_lived = issuer.sign(&serde_json::json!({
        "iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": "short-lived",
        "roles": ["case-reader"], "iat": now, "exp": now + 3,
    }));
    let get_unknown_case = |token: &str| {
        let mut client = client.clone();
        let call = with_bearer(
            v1::GetCaseRequest {
                case_id: uuid::Uuid::new_v4().to_string(),
            },
            token,
        );
        async move { client.get_case(call).await }
    };
    let answers = futures::future::join_all((0..40).map(|_| get_unknown_case(&short_lived))).await;
    for answer in answers {
        let status = answer.expect_err("an unknown case is not found");
        assert_eq!(
            status.code(),
            Code::NotFound,
            "past the token check: {status:?}"
        );
    }
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let status = get_unknown_case(&short_lived)
        .await
        .expect_err("expired token");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    routing.stop().await
}

/// Reflection, as other teams' tools meet it: both protocol versions answer (grpcio's client,
/// older grpcurl and several GUI clients speak only v1alpha), without a token, and list only
/// what this server serves — not the other services of the shared contract.
#[tokio::test]
async fn reflection_answers_v1_and_v1alpha_and_lists_only_this_service() -> anyhow::Result<()> {
    use tonic_reflection::pb::{v1, v1alpha};

    let RoutingWithAuth {
        _broker, routing, ..
    } = routing_with_auth("reflection", &[]).await?;
    let expected = [
        "ekspertbistand.v1.RoutingService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];

    let channel = tonic::transport::Endpoint::from_shared(routing.url())?
        .connect()
        .await?;
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let ask = |request| {
        futures::stream::iter([v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }])
    };
    let mut answers = alpha
        .server_reflection_info(ask(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ))
        .await?
        .into_inner();
    let listed = match answers
        .message()
        .await?
        .and_then(|answer| answer.message_response)
    {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => anyhow::bail!("v1alpha ListServices answered {other:?}"),
    };
    assert_eq!(
        listed, expected,
        "v1alpha lists only this server's services"
    );
    let mut answers = alpha
        .server_reflection_info(ask(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "ekspertbistand.v1.RoutingService".to_owned(),
            ),
        ))
        .await?
        .into_inner();
    assert!(
        matches!(
            answers.message().await?.and_then(|answer| answer.message_response),
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files))
                if !files.file_descriptor_proto.is_empty()
        ),
        "v1alpha describes the service"
    );

    let mut current = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let mut answers = current
        .server_reflection_info(futures::stream::iter([v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        }]))
        .await?
        .into_inner();
    let listed = match answers
        .message()
        .await?
        .and_then(|answer| answer.message_response)
    {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => anyhow::bail!("v1 ListServices answered {other:?}"),
    };
    assert_eq!(listed, expected, "v1 lists only this server's services");
    routing.stop().await
}
