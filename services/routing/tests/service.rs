//! Service tests of routing (in-process on port 0, fresh database, the broker process): the
//! routing rule with every reason, idempotent OpenCase, the dry run, and the bad-input corpus.
//! Only routing runs: the agreement coverage is fed the registry's real events, published on
//! the registry's topic through testkit's `EventFeed`, and routing's consumer applies them.

use std::time::Duration;

use ekb_platform::messaging::EventSubject;
use ekb_proto::v1::{self, CompetenceArea, Flow, RoutingReason};
use ekb_routing::Routing;
use ekb_testkit::{
    fixtures::{BERGEN, HAMAR, agreement_state, case_facts, open_case},
    service_under_test::{ServiceUnderTest, eventually},
};
use sqlx::Connection;
use tonic::Code;

type RoutingClient = v1::routing_service_client::RoutingServiceClient<tonic::transport::Channel>;

async fn routing_client(stack: &ServiceUnderTest) -> anyhow::Result<RoutingClient> {
    Ok(RoutingClient::new(stack.channel().await?))
}

async fn route_now(
    stack: &ServiceUnderTest,
    facts: v1::CaseFacts,
) -> anyhow::Result<(Flow, RoutingReason)> {
    let decision = routing_client(stack)
        .await?
        .evaluate_route(v1::EvaluateRouteRequest { facts: Some(facts) })
        .await?
        .into_inner()
        .decision
        .unwrap_or_default();
    Ok((decision.flow(), decision.reason()))
}

/// How many cases routing stored and how many events it queued in its outbox.
async fn case_and_event_counts(stack: &ServiceUnderTest) -> anyhow::Result<(i64, i64)> {
    let mut connection = sqlx::PgConnection::connect(stack.database_url()).await?;
    Ok(
        sqlx::query_as("SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM outbox)")
            .fetch_one(&mut connection)
            .await?,
    )
}

/// Routing alone, fed an Innlandet agreement for conflict handling (AgreementActivated on the
/// registry's topic), once it routes by it.
async fn stack_with_conflict_agreement(
    purpose: &str,
) -> anyhow::Result<(ServiceUnderTest, v1::Agreement)> {
    let stack = ServiceUnderTest::start::<Routing>(purpose).await?;
    let agreement = agreement_state(
        &uuid::Uuid::now_v7().to_string(),
        "34",
        &[CompetenceArea::ConflictHandling],
        1,
    );
    stack
        .feed
        .publish(
            "expert-registry",
            &EventSubject::aggregate(&agreement.agreement_id),
            &v1::AgreementActivated {
                agreement: Some(agreement.clone()),
            },
        )
        .await?;
    eventually(
        "routing's read model to see the agreement",
        Duration::from_secs(30),
        || async {
            let routed = route_now(
                &stack,
                case_facts(HAMAR, Some(CompetenceArea::ConflictHandling), "2025-03-01"),
            )
            .await?;
            Ok((routed.0 == Flow::Pilot).then_some(()))
        },
    )
    .await?;
    Ok((stack, agreement))
}

#[tokio::test]
async fn routes_by_county_period_choice_and_agreement() -> anyhow::Result<()> {
    let (stack, _) = stack_with_conflict_agreement("rules").await?;
    let mut routing = routing_client(&stack).await?;
    let cases = [
        (
            case_facts(HAMAR, Some(CompetenceArea::ConflictHandling), "2025-03-01"),
            Flow::Pilot,
            RoutingReason::PilotEligible,
        ),
        (
            case_facts(BERGEN, Some(CompetenceArea::ConflictHandling), "2025-03-01"),
            Flow::Regular,
            RoutingReason::OutsidePilotCounty,
        ),
        (
            case_facts(HAMAR, None, "2025-03-01"),
            Flow::Regular,
            RoutingReason::EmployerChoseOwnExpert,
        ),
        (
            case_facts(HAMAR, Some(CompetenceArea::ConflictHandling), "2021-06-01"),
            Flow::Regular,
            RoutingReason::OutsidePilotPeriod,
        ),
        (
            case_facts(HAMAR, Some(CompetenceArea::CareerGuidance), "2025-03-01"),
            Flow::Regular,
            RoutingReason::NoAgreementForArea,
        ),
    ];
    for (facts, flow, reason) in cases {
        let opened = routing
            .open_case(open_case(facts.clone()))
            .await?
            .into_inner();
        assert!(opened.created);
        let case = opened.case.unwrap_or_default();
        let decision = case.decision.unwrap_or_default();
        assert_eq!(
            (decision.flow(), decision.reason()),
            (flow, reason),
            "facts {facts:?}"
        );
        assert_eq!(case.facts.as_ref(), Some(&facts));
        let fetched = routing
            .get_case(v1::GetCaseRequest {
                case_id: case.case_id.clone(),
            })
            .await?
            .into_inner()
            .case
            .unwrap_or_default();
        assert_eq!(fetched, case, "GetCase returns what OpenCase stored");
    }
    stack.stop().await
}

#[tokio::test]
async fn an_ended_agreement_stops_covering_and_a_retry_returns_the_same_case() -> anyhow::Result<()>
{
    let (stack, agreement) = stack_with_conflict_agreement("ended").await?;
    let mut routing = routing_client(&stack).await?;

    let request = open_case(case_facts(
        HAMAR,
        Some(CompetenceArea::ConflictHandling),
        "2025-03-01",
    ));
    let first = routing.open_case(request.clone()).await?.into_inner();
    let retry = routing.open_case(request.clone()).await?.into_inner();
    assert!(first.created && !retry.created);
    assert_eq!(
        first.case, retry.case,
        "a retry returns the first attempt's case"
    );
    let mut changed = request.clone();
    changed.facts = Some(case_facts(BERGEN, None, "2025-03-01"));
    let reused = routing
        .open_case(changed)
        .await
        .expect_err("same id, other facts");
    assert_eq!(reused.code(), Code::AlreadyExists);

    let ended = v1::Agreement {
        ended_on_date: "2025-01-31".to_owned(),
        version: 2,
        ..agreement.clone()
    };
    stack
        .feed
        .publish(
            "expert-registry",
            &EventSubject::aggregate(&ended.agreement_id),
            &v1::AgreementEnded {
                agreement: Some(ended),
                reason: "supplier bankrupt".to_owned(),
            },
        )
        .await?;
    eventually(
        "routing to see the agreement end",
        Duration::from_secs(30),
        || async {
            let routed = route_now(
                &stack,
                case_facts(HAMAR, Some(CompetenceArea::ConflictHandling), "2025-03-01"),
            )
            .await?;
            Ok((routed == (Flow::Regular, RoutingReason::NoAgreementForArea)).then_some(()))
        },
    )
    .await?;
    // Before the end date the agreement still covered the area.
    let before_end = route_now(
        &stack,
        case_facts(HAMAR, Some(CompetenceArea::ConflictHandling), "2025-01-15"),
    )
    .await?;
    assert_eq!(before_end, (Flow::Pilot, RoutingReason::PilotEligible));

    assert_eq!(
        case_and_event_counts(&stack).await?,
        (1, 1),
        "one case and one CaseRouted, however often it was retried"
    );
    stack.stop().await
}

#[tokio::test]
async fn concurrent_twins_of_one_request_open_one_case() -> anyhow::Result<()> {
    let (stack, _) = stack_with_conflict_agreement("twins").await?;
    let request = open_case(case_facts(
        HAMAR,
        Some(CompetenceArea::ConflictHandling),
        "2025-03-01",
    ));
    // Eight clients, eight connections, the same request id at the same moment: the insert's
    // ON CONFLICT makes the losers wait for the winner and then answer with its case.
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut routing = routing_client(&stack).await?;
        let request = request.clone();
        calls.push(async move { routing.open_case(request).await });
    }
    let answers: Vec<v1::OpenCaseResponse> = futures::future::try_join_all(calls)
        .await?
        .into_iter()
        .map(tonic::Response::into_inner)
        .collect();
    assert_eq!(
        answers.iter().filter(|answer| answer.created).count(),
        1,
        "exactly one twin created the case"
    );
    let first = answers[0].case.clone();
    assert!(first.is_some());
    assert!(
        answers.iter().all(|answer| answer.case == first),
        "every twin got the same case"
    );

    assert_eq!(
        case_and_event_counts(&stack).await?,
        (1, 1),
        "one case, one CaseRouted"
    );
    stack.stop().await
}

#[test]
fn the_catalog_lists_this_service_with_the_roles_its_rpcs_accept() -> anyhow::Result<()> {
    ekb_testkit::catalog::check_entry_of::<ekb_routing::Routing>()
}
