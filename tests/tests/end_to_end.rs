//! End-to-end: the services as separate processes, talking to the broker process over TCP,
//! called over gRPC with bearer tokens like another NAV system would. Here: the whole § 9a
//! routing path (agreement registered → AgreementActivated → routing's read model → OpenCase
//! routes to PILOT; every REGULAR reason; CaseRouted read back from the broker with its key,
//! type header and the caller's trace context) and the spans it leaves. The two flows a case
//! then follows, with every service running, are in the submodules: [`end_to_end::regular_flow`]
//! (application → grant → refund → payment; withdrawal, lack of funds, early cancellation,
//! expiry, a late claim and a failed payment) and
//! [`end_to_end::pilot_flow`] (order → supplier → invoice → payment, and the fallback to the regular
//! flow). [`end_to_end::evaluation`] drives a known set of cases through both flows and compares
//! the evaluation's every figure with its own, then rebuilds the read model from the topics.
//! One test binary for the whole suite.

mod end_to_end {
    pub mod evaluation;
    pub mod pilot_flow;
    pub mod regular_flow;
}

use std::time::Duration;

use ekb_platform::messaging::envelope::EVENT_TYPE_HEADER;
use ekb_proto::v1::{self, CompetenceArea, Flow, RoutingReason};
use ekb_testkit::services::with_bearer;
use ekb_tests::{
    BERGEN, HAMAR, ProcessStack, case_facts, open_case, read_until, register_agreement,
    topic_reader,
};
use prost::{Message as _, Name};
use rdkafka::{Message, message::Headers};

/// A W3C traceparent the "calling system" sends; its trace id must reach the event.
const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn header<'a>(message: &'a rdkafka::message::OwnedMessage, key: &str) -> Option<&'a str> {
    message
        .headers()?
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| header.value)
        .and_then(|value| std::str::from_utf8(value).ok())
}

#[tokio::test]
async fn agreement_event_drives_routing_and_case_routed_reaches_the_broker() -> anyhow::Result<()> {
    let stack = ProcessStack::start("e2e_flow").await?;
    let token = stack.admin_token();

    // The registry publishes AgreementActivated; routing's consumer builds its read model.
    let pilot_facts = case_facts(HAMAR, Some(CompetenceArea::SickLeaveFollowUp), "2025-10-01");
    assert_eq!(
        stack.evaluate(pilot_facts.clone()).await?,
        (Flow::Regular, RoutingReason::NoAgreementForArea),
        "before any agreement, Innlandet framework cases go to the regular flow"
    );
    stack
        .registry_client()
        .await?
        .register_agreement(with_bearer(
            register_agreement(
                "34",
                &[
                    CompetenceArea::SickLeaveFollowUp,
                    CompetenceArea::ConflictHandling,
                ],
            ),
            &token,
        ))
        .await?;
    stack
        .wait_for_route(
            pilot_facts.clone(),
            (Flow::Pilot, RoutingReason::PilotEligible),
        )
        .await?;

    let cases = [
        (pilot_facts, Flow::Pilot, RoutingReason::PilotEligible),
        (
            case_facts(
                BERGEN,
                Some(CompetenceArea::SickLeaveFollowUp),
                "2025-10-01",
            ),
            Flow::Regular,
            RoutingReason::OutsidePilotCounty,
        ),
        (
            case_facts(HAMAR, None, "2025-10-01"),
            Flow::Regular,
            RoutingReason::EmployerChoseOwnExpert,
        ),
        (
            case_facts(HAMAR, Some(CompetenceArea::SickLeaveFollowUp), "2021-10-01"),
            Flow::Regular,
            RoutingReason::OutsidePilotPeriod,
        ),
        (
            case_facts(HAMAR, Some(CompetenceArea::Restructuring), "2025-10-01"),
            Flow::Regular,
            RoutingReason::NoAgreementForArea,
        ),
    ];
    let mut routing = stack.routing_client().await?;
    let mut opened = Vec::new();
    for (facts, flow, reason) in cases {
        let mut request = with_bearer(open_case(facts), &token);
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{CALLER_TRACE_ID}-00f067aa0ba902b7-01").parse()?,
        );
        let case = routing
            .open_case(request)
            .await?
            .into_inner()
            .case
            .unwrap_or_default();
        let decision = case.decision.unwrap_or_default();
        assert_eq!((decision.flow(), decision.reason()), (flow, reason));
        opened.push(case);
    }

    // Every CaseRouted is on the broker, keyed by case id, typed, carrying the caller's trace.
    let reader = topic_reader(stack.broker.bootstrap_servers(), &stack.topic("routing"))?;
    let messages = read_until(&reader, Duration::from_secs(30), |read| {
        read.len() >= opened.len()
    })
    .await?;
    assert_eq!(
        messages.len(),
        opened.len(),
        "exactly one CaseRouted per case"
    );
    for case in &opened {
        let message = messages
            .iter()
            .find(|message| message.key() == Some(case.case_id.as_bytes()))
            .unwrap_or_else(|| panic!("no event keyed by case {}", case.case_id));
        assert_eq!(
            header(message, EVENT_TYPE_HEADER),
            Some(v1::CaseRouted::full_name().as_str())
        );
        let traceparent = header(message, "traceparent").expect("traceparent header");
        assert!(
            traceparent.starts_with(&format!("00-{CALLER_TRACE_ID}-")),
            "event continues the caller's trace, got {traceparent}"
        );
        let envelope = v1::EventEnvelope::decode(message.payload().unwrap_or_default())?;
        assert_eq!(envelope.case_id, case.case_id);
        assert_eq!(envelope.producer, "routing");
        assert_eq!(envelope.schema_version, 1);
        assert_eq!(
            uuid::Uuid::parse_str(&envelope.event_id)?.get_version_num(),
            7
        );
        let routed = v1::CaseRouted::decode(envelope.payload.as_slice())?;
        let decision = case.decision.unwrap_or_default();
        assert_eq!(
            (routed.flow, routed.reason),
            (decision.flow, decision.reason)
        );
        assert_eq!(
            Some(routed.county_code.as_str()),
            Some(case.county_code.as_str())
        );
    }

    // Routing's JSON log line for each case carries the caller's trace id, so an operator can
    // go from the line to the trace.
    let log = stack.routing.log();
    for case in &opened {
        let line = log
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["fields"]["case_id"] == case.case_id.as_str())
            .unwrap_or_else(|| panic!("no log line for case {}:\n{log}", case.case_id));
        assert_eq!(line["fields"]["message"], "case opened and routed");
        assert_eq!(line["trace_id"], CALLER_TRACE_ID, "{line}");
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");
        assert_eq!(line["span"]["name"], "grpc.server", "{line}");
        assert_eq!(
            line["span"]["otel.name"], "ekspertbistand.v1.RoutingService/OpenCase",
            "{line}"
        );
    }
    Ok(())
}

/// What a trace UI shows for one RegisterAgreement: the server span named after the RPC, the
/// relay's PRODUCER span and routing's CONSUMER span, all in the caller's trace, named and
/// attributed as OpenTelemetry's RPC and messaging conventions say.
#[tokio::test]
async fn spans_follow_opentelemetry_conventions_across_kafka() -> anyhow::Result<()> {
    use ekb_testkit::otlp::{SpanKind, TraceCollector};

    let collector = TraceCollector::start().await?;
    let endpoint = collector.endpoint();
    let mut stack =
        ProcessStack::start_with("e2e_spans", &[("telemetry.otlp_endpoint", &endpoint)]).await?;
    let token = stack.admin_token();
    let mut request = with_bearer(
        register_agreement("34", &[CompetenceArea::Restructuring]),
        &token,
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{CALLER_TRACE_ID}-00f067aa0ba902b7-01").parse()?,
    );
    stack
        .registry_client()
        .await?
        .register_agreement(request)
        .await?;
    stack
        .wait_for_route(
            case_facts(HAMAR, Some(CompetenceArea::Restructuring), "2025-10-01"),
            (Flow::Pilot, RoutingReason::PilotEligible),
        )
        .await?;
    // Stopping flushes both services' span exporters.
    stack.registry.stop(Duration::from_secs(20)).await?;
    stack.routing.stop(Duration::from_secs(20)).await?;

    let spans = collector.spans();
    let in_trace: Vec<_> = spans
        .iter()
        .filter(|span| span.trace_id == CALLER_TRACE_ID)
        .collect();
    let describe = || format!("{in_trace:#?}");
    let server = in_trace
        .iter()
        .find(|span| span.name == "ekspertbistand.v1.ExpertRegistryService/RegisterAgreement")
        .ok_or_else(|| anyhow::anyhow!("no server span named after the RPC: {}", describe()))?;
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(server.attribute("rpc.system"), Some("grpc"));
    assert_eq!(
        server.attribute("rpc.service"),
        Some("ekspertbistand.v1.ExpertRegistryService")
    );
    assert_eq!(server.attribute("rpc.method"), Some("RegisterAgreement"));
    assert_eq!(server.attribute("rpc.grpc.status_code"), Some("0"));

    let registry_topic = stack.topic("expert-registry");
    let producer = in_trace
        .iter()
        .find(|span| span.name == format!("{registry_topic} publish"))
        .ok_or_else(|| anyhow::anyhow!("no PRODUCER span for the relay: {}", describe()))?;
    assert_eq!(producer.kind, SpanKind::Producer);
    assert_eq!(producer.service, "expert-registry");
    assert_eq!(producer.attribute("messaging.system"), Some("kafka"));

    let consumer = in_trace
        .iter()
        .find(|span| span.name == format!("{registry_topic} process"))
        .ok_or_else(|| anyhow::anyhow!("no CONSUMER span in routing: {}", describe()))?;
    assert_eq!(consumer.kind, SpanKind::Consumer);
    assert_eq!(consumer.service, "routing");
    assert_eq!(consumer.attribute("messaging.system"), Some("kafka"));
    assert!(
        !spans.iter().any(|span| span.name == "grpc"),
        "no span is named just `grpc`"
    );
    Ok(())
}
