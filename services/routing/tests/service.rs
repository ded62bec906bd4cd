//! Service tests of routing (in-process on port 0, fresh database, the broker process): the
//! routing rule with every reason, idempotent OpenCase, the dry run, the bad-input corpus, and a
//! pilot case's fallback to the regular flow (ADR 0022). Only routing runs: the agreement
//! coverage is fed the registry's real events and the fallback pilot-ordering's, published on
//! their producers' topics through testkit's `EventFeed`, and routing's consumer applies them;
//! what routing publishes is read back from its own topic.

use std::time::{Duration, Instant};

use anyhow::Context;
use ekb_platform::messaging::EventSubject;
use ekb_proto::v1::{self, CompetenceArea, EventEnvelope, Flow, FlowChangeReason, RoutingReason};
use ekb_routing::Routing;
use ekb_testkit::{
    broker::topic_reader,
    fixtures::{BERGEN, HAMAR, agreement_state, case_facts, open_case},
    service_under_test::{ServiceUnderTest, eventually},
    status::violated_fields,
};
use prost::{Message as _, Name};
use rdkafka::{Message as _, consumer::StreamConsumer};
use sqlx::Connection;
use tonic::Code;
use tonic_types::StatusExt;

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

/// How long a test waits for routing to apply or publish something.
const WAIT: Duration = Duration::from_secs(30);

/// A PILOT case opened on `stack` (Hamar, conflict handling, an Innlandet agreement covering it).
async fn open_pilot_case(stack: &ServiceUnderTest) -> anyhow::Result<v1::Case> {
    let case = routing_client(stack)
        .await?
        .open_case(open_case(case_facts(
            HAMAR,
            Some(CompetenceArea::ConflictHandling),
            "2025-03-01",
        )))
        .await?
        .into_inner()
        .case
        .context("OpenCase returns the case")?;
    let decision = case.decision.unwrap_or_default();
    anyhow::ensure!(decision.flow() == Flow::Pilot, "not a pilot case: {case:?}");
    Ok(case)
}

/// The case as GetCase returns it.
async fn get_case(stack: &ServiceUnderTest, case_id: &str) -> anyhow::Result<v1::Case> {
    routing_client(stack)
        .await?
        .get_case(v1::GetCaseRequest {
            case_id: case_id.to_owned(),
        })
        .await?
        .into_inner()
        .case
        .context("GetCase returns the case")
}

/// Waits until GetCase shows `case_id` following `flow`.
async fn wait_for_flow(stack: &ServiceUnderTest, case_id: &str, flow: Flow) -> anyhow::Result<()> {
    eventually(
        &format!("case {case_id} to follow {flow:?}"),
        WAIT,
        || async { Ok((get_case(stack, case_id).await?.current_flow() == flow).then_some(())) },
    )
    .await
}

/// One number from routing's database.
async fn count(stack: &ServiceUnderTest, sql: &'static str) -> anyhow::Result<i64> {
    let mut connection = sqlx::PgConnection::connect(stack.database_url()).await?;
    Ok(sqlx::query_scalar(sql).fetch_one(&mut connection).await?)
}

/// Asks pilot-ordering's way for `case_id` to fall back (PilotFallbackRequested on its topic).
async fn request_fallback(
    stack: &ServiceUnderTest,
    case_id: &str,
    reason: FlowChangeReason,
) -> anyhow::Result<EventEnvelope> {
    stack
        .feed
        .publish(
            "pilot-ordering",
            &EventSubject::case(case_id),
            &v1::PilotFallbackRequested {
                case_id: case_id.to_owned(),
                reason: reason as i32,
                county_code: "34".to_owned(),
                last_order_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            },
        )
        .await
}

/// Waits until routing's consumer has recorded the event `event_id` in its inbox; its outcome.
async fn inbox_outcome(
    stack: &ServiceUnderTest,
    event_id: &str,
) -> anyhow::Result<(String, String)> {
    let event_id = uuid::Uuid::parse_str(event_id)?;
    eventually("routing's inbox to record the event", WAIT, || async {
        let mut connection = sqlx::PgConnection::connect(stack.database_url()).await?;
        Ok(
            sqlx::query_as("SELECT outcome, coalesce(detail, '') FROM inbox WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(&mut connection)
                .await?,
        )
    })
    .await
}

/// Routing's topic in this test, read from the start: `(Kafka key, envelope)` of the first
/// `expected` messages, failing after [`WAIT`], then of any that arrive within `quiet` more, so a
/// test can also assert that nothing else was published.
async fn routing_topic(
    stack: &ServiceUnderTest,
    expected: usize,
    quiet: Duration,
) -> anyhow::Result<Vec<(String, EventEnvelope)>> {
    let reader: StreamConsumer =
        topic_reader(stack.broker.bootstrap_servers(), &stack.topic("routing"))?;
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let wait = if seen.len() < expected {
            deadline.saturating_duration_since(Instant::now())
        } else {
            quiet
        };
        match tokio::time::timeout(wait, reader.recv()).await {
            Ok(message) => {
                let message = message?;
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                seen.push((
                    key,
                    EventEnvelope::decode(message.payload().unwrap_or_default())?,
                ));
            }
            Err(_) if seen.len() >= expected => return Ok(seen),
            Err(_) => anyhow::bail!("{} of {expected} events on routing's topic", seen.len()),
        }
    }
}

/// The payloads of type `M` among `events`, with their keys.
fn of_type<M: prost::Message + Name + Default>(
    events: &[(String, EventEnvelope)],
) -> anyhow::Result<Vec<(String, M)>> {
    events
        .iter()
        .filter(|(_, envelope)| envelope.event_type == M::full_name())
        .map(|(key, envelope)| Ok((key.clone(), M::decode(envelope.payload.as_slice())?)))
        .collect()
}

/// The reason of a FAILED_PRECONDITION (or PERMISSION_DENIED) status, from its ErrorInfo.
fn refusal_reason(status: &tonic::Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

#[tokio::test]
async fn a_pilot_fallback_moves_the_case_to_the_regular_flow_once() -> anyhow::Result<()> {
    let (stack, _) = stack_with_conflict_agreement("fallback").await?;
    let opened = open_pilot_case(&stack).await?;

    let fallback = request_fallback(
        &stack,
        &opened.case_id,
        FlowChangeReason::NoSupplierAvailable,
    )
    .await?;
    wait_for_flow(&stack, &opened.case_id, Flow::Regular).await?;

    // The same case: its id, opened-at and original routing decision stand; the change is told.
    let case = get_case(&stack, &opened.case_id).await?;
    assert_eq!(
        (&case.case_id, &case.facts, &case.decision, &case.opened_at),
        (
            &opened.case_id,
            &opened.facts,
            &opened.decision,
            &opened.opened_at
        )
    );
    let [change] = case.flow_changes.as_slice() else {
        panic!("one flow change: {case:?}");
    };
    assert_eq!(
        (
            change.sequence,
            change.from_flow(),
            change.to_flow(),
            change.reason()
        ),
        (
            1,
            Flow::Pilot,
            Flow::Regular,
            FlowChangeReason::NoSupplierAvailable
        )
    );
    assert_eq!(change.source(), v1::FlowChangeSource::PilotOrdering);
    assert_eq!(
        (change.changed_by.as_str(), change.note.as_str()),
        ("pilot-ordering", "")
    );

    // On routing's topic: CaseRouted, then CaseFlowChanged, both keyed by the case.
    let events = routing_topic(&stack, 2, Duration::from_millis(500)).await?;
    assert_eq!(
        events
            .iter()
            .map(|(_, e)| e.event_type.as_str())
            .collect::<Vec<_>>(),
        [
            v1::CaseRouted::full_name(),
            v1::CaseFlowChanged::full_name()
        ]
    );
    let [(key, changed)] = of_type::<v1::CaseFlowChanged>(&events)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("one CaseFlowChanged"))?;
    assert_eq!(key, opened.case_id);
    assert_eq!(
        (
            changed.from_flow(),
            changed.to_flow(),
            changed.reason(),
            changed.source()
        ),
        (
            Flow::Pilot,
            Flow::Regular,
            FlowChangeReason::NoSupplierAvailable,
            v1::FlowChangeSource::PilotOrdering
        )
    );
    assert_eq!(changed.case_id, opened.case_id);
    assert_eq!(changed.sequence, 1);
    assert_eq!(changed.county_code, "34");
    assert_eq!(
        changed.opened_at, opened.opened_at,
        "the case keeps its opened date"
    );
    assert_eq!(changed.changed_at, change.changed_at);
    assert_eq!(changed.fallback_event_id, fallback.event_id);

    // Redelivered, and asked again with a new event: applied once, nothing more published.
    stack
        .feed
        .publish_envelope("pilot-ordering", &opened.case_id, &fallback)
        .await?;
    let again = request_fallback(&stack, &opened.case_id, FlowChangeReason::AgreementsFull).await?;
    assert_eq!(inbox_outcome(&stack, &again.event_id).await?.0, "applied");
    assert_eq!(
        get_case(&stack, &opened.case_id).await?,
        case,
        "nothing changed"
    );
    assert_eq!(
        routing_topic(&stack, 2, Duration::from_secs(1))
            .await?
            .len(),
        2
    );
    assert_eq!(
        case_and_event_counts(&stack).await?,
        (1, 2),
        "one case, counted once; CaseRouted and one CaseFlowChanged"
    );
    assert_eq!(
        count(&stack, "SELECT count(*) FROM case_flow_changes").await?,
        1
    );

    // A fallback for a case routing never had cannot be early (routing mints every case id):
    // dead-lettered at once, nothing written.
    let unknown = uuid::Uuid::now_v7().to_string();
    let stray = request_fallback(&stack, &unknown, FlowChangeReason::AgreementEnded).await?;
    let (outcome, detail) = inbox_outcome(&stack, &stray.event_id).await?;
    assert_eq!(outcome, "dead_lettered");
    assert!(
        detail.contains(&format!("routing has no case {unknown}")),
        "{detail}"
    );
    assert_eq!(case_and_event_counts(&stack).await?, (1, 2));
    stack.stop().await
}

#[tokio::test]
async fn a_pilot_caseworker_sends_a_case_to_the_regular_flow_with_a_reason() -> anyhow::Result<()> {
    let (stack, _) = stack_with_conflict_agreement("send_to_regular").await?;
    let mut routing = routing_client(&stack).await?;
    let pilot = open_pilot_case(&stack).await?;
    let regular = routing
        .open_case(open_case(case_facts(BERGEN, None, "2025-03-01")))
        .await?
        .into_inner()
        .case
        .context("a regular case")?;
    let send = |case_id: &str, reason: FlowChangeReason, note: &str| v1::SendToRegularFlowRequest {
        case_id: case_id.to_owned(),
        reason: reason as i32,
        note: note.to_owned(),
    };

    // Bad input names every field and stores nothing.
    let bad = routing
        .send_to_regular_flow(v1::SendToRegularFlowRequest {
            case_id: "not-a-uuid".to_owned(),
            reason: 0,
            note: "x".repeat(2001),
        })
        .await
        .expect_err("bad input");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["case_id", "reason", "note"]);
    let unexplained = routing
        .send_to_regular_flow(send(
            &pilot.case_id,
            FlowChangeReason::CaseworkerDecision,
            " ",
        ))
        .await
        .expect_err("a decision needs a note");
    assert_eq!(
        (unexplained.code(), violated_fields(&unexplained)),
        (Code::InvalidArgument, vec!["note".to_owned()])
    );
    assert_eq!(
        get_case(&stack, &pilot.case_id).await?,
        pilot,
        "nothing stored"
    );
    assert_eq!(case_and_event_counts(&stack).await?, (2, 2));

    let missing = routing
        .send_to_regular_flow(send(
            &uuid::Uuid::now_v7().to_string(),
            FlowChangeReason::EmployerChoseOwnExpert,
            "",
        ))
        .await
        .expect_err("unknown case");
    assert_eq!(missing.code(), Code::NotFound);

    // The change: recorded with who (the caller; `local` without authentication) and the note.
    let note = "Arbeidsgiver ønsker egen ekspert";
    let moved = routing
        .send_to_regular_flow(send(
            &pilot.case_id,
            FlowChangeReason::EmployerChoseOwnExpert,
            note,
        ))
        .await?
        .into_inner()
        .case
        .context("the case")?;
    assert_eq!(moved.current_flow(), Flow::Regular);
    assert_eq!(
        moved.decision, pilot.decision,
        "the routing decision stays recorded"
    );
    assert_eq!(moved.opened_at, pilot.opened_at);
    let [change] = moved.flow_changes.as_slice() else {
        panic!("one flow change: {moved:?}");
    };
    assert_eq!(
        (
            change.reason(),
            change.source(),
            change.changed_by.as_str(),
            change.note.as_str()
        ),
        (
            FlowChangeReason::EmployerChoseOwnExpert,
            v1::FlowChangeSource::Caseworker,
            "local",
            note
        )
    );
    assert_eq!(get_case(&stack, &pilot.case_id).await?, moved);

    // Already regular — moved before, or routed there — is refused with a reason for machines.
    for case_id in [&pilot.case_id, &regular.case_id] {
        let refused = routing
            .send_to_regular_flow(send(case_id, FlowChangeReason::AgreementsFull, ""))
            .await
            .expect_err("already regular");
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(
            refusal_reason(&refused).as_deref(),
            Some("CASE_ALREADY_REGULAR")
        );
    }

    let events = routing_topic(&stack, 3, Duration::from_millis(500)).await?;
    let [(key, changed)] = of_type::<v1::CaseFlowChanged>(&events)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("one CaseFlowChanged"))?;
    assert_eq!(key, pilot.case_id);
    assert_eq!(
        (
            changed.source(),
            changed.changed_by.as_str(),
            changed.fallback_event_id.as_str()
        ),
        (v1::FlowChangeSource::Caseworker, "local", "")
    );
    assert_eq!(
        case_and_event_counts(&stack).await?,
        (2, 3),
        "two cases, each counted once; two CaseRouted and one CaseFlowChanged"
    );
    stack.stop().await
}

#[tokio::test]
async fn once_an_expert_started_only_pilot_ordering_may_move_the_case() -> anyhow::Result<()> {
    let (stack, _) = stack_with_conflict_agreement("expert_started").await?;
    let case = open_pilot_case(&stack).await?;
    stack
        .feed
        .publish(
            "pilot-ordering",
            &EventSubject::case(&case.case_id),
            &v1::OrderStarted {
                order_id: uuid::Uuid::now_v7().to_string(),
                case_id: case.case_id.clone(),
                county_code: "34".to_owned(),
                started_date: "2025-03-10".to_owned(),
                ..Default::default()
            },
        )
        .await?;
    eventually("routing to record the start", WAIT, || async {
        let case = get_case(&stack, &case.case_id).await?;
        Ok((case.pilot_expert_started_date == "2025-03-10").then_some(()))
    })
    .await?;

    let refused = routing_client(&stack)
        .await?
        .send_to_regular_flow(v1::SendToRegularFlowRequest {
            case_id: case.case_id.clone(),
            reason: FlowChangeReason::EmployerChoseOwnExpert as i32,
            note: String::new(),
        })
        .await
        .expect_err("an expert is at work");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refusal_reason(&refused).as_deref(),
        Some("PILOT_EXPERT_STARTED")
    );
    assert_eq!(
        get_case(&stack, &case.case_id).await?.current_flow(),
        Flow::Pilot
    );

    // Pilot-ordering knows its orders (e.g. the started one was aborted, no supplier is left).
    request_fallback(&stack, &case.case_id, FlowChangeReason::NoSupplierAvailable).await?;
    wait_for_flow(&stack, &case.case_id, Flow::Regular).await?;
    assert_eq!(case_and_event_counts(&stack).await?, (1, 2));
    stack.stop().await
}

#[test]
fn the_catalog_lists_this_service_with_the_roles_its_rpcs_accept() -> anyhow::Result<()> {
    ekb_testkit::catalog::check_entry_of::<ekb_routing::Routing>()
}
