//! Fault tests of routing's event consumer, with routing as a separate process and events
//! injected on the expert-registry topic through the broker: a redelivered event is applied
//! once; a poison message ends in the dead-letter topic while later messages on the same
//! partition still flow; an unknown event type is skipped explicitly (recorded, not crashed on).

use std::time::Duration;

use ekb_platform::messaging::{EventSubject, envelope::wrap};
use ekb_proto::v1::{self, CompetenceArea, Flow, RoutingReason};
use ekb_tests::{
    HAMAR, ProcessStack, agreement_terms, case_facts, read_until, send, test_producer, topic_reader,
};
use prost::{Message as _, Name};
use rdkafka::{Message, message::Headers};
use sqlx::Connection;

fn agreement_event(
    agreement_id: &str,
    areas: &[CompetenceArea],
    version: i64,
) -> v1::EventEnvelope {
    let agreement = v1::Agreement {
        agreement_id: agreement_id.to_owned(),
        agreement_reference: format!("RA-TEST-{version}"),
        supplier_organisation_number: ekb_tests::SUPPLIER_ORGNR.to_owned(),
        supplier_name: "Test AS".to_owned(),
        county_code: "34".to_owned(),
        terms: Some(agreement_terms(areas)),
        ended_on_date: String::new(),
        version,
    };
    wrap(
        "expert-registry",
        &EventSubject::aggregate(agreement_id),
        &v1::AgreementActivated {
            agreement: Some(agreement),
        },
    )
}

async fn inbox_outcomes(stack: &ProcessStack) -> anyhow::Result<Vec<(String, String)>> {
    let mut connection = sqlx::PgConnection::connect(&stack.routing_db_url).await?;
    Ok(
        sqlx::query_as("SELECT event_id::text, outcome FROM inbox ORDER BY received_at")
            .fetch_all(&mut connection)
            .await?,
    )
}

#[tokio::test]
async fn redelivery_is_applied_once_and_poison_is_dead_lettered_while_later_messages_flow()
-> anyhow::Result<()> {
    let stack = ProcessStack::start("faults").await?;
    let producer = test_producer(stack.broker.bootstrap_servers())?;
    let topic = stack.topic("expert-registry");
    let agreement_id = uuid::Uuid::now_v7().to_string();
    let activated = agreement_event(&agreement_id, &[CompetenceArea::ConflictHandling], 1);
    let activated_type = v1::AgreementActivated::full_name();

    // 1. A poison message (not an envelope), then an envelope whose payload does not decode,
    //    then a good event — all on the same key, so the same partition, in this order.
    send(
        &producer,
        &topic,
        &agreement_id,
        b"\x00\x01 definitely not protobuf \xff",
        None,
    )
    .await?;
    let mut broken = activated.clone();
    broken.event_id = uuid::Uuid::now_v7().to_string();
    broken.payload = vec![0xff, 0xff, 0xff];
    send(
        &producer,
        &topic,
        &agreement_id,
        &broken.encode_to_vec(),
        Some(&activated_type),
    )
    .await?;
    send(
        &producer,
        &topic,
        &agreement_id,
        &activated.encode_to_vec(),
        Some(&activated_type),
    )
    .await?;

    // The good event behind the poison is applied: the partition is not blocked.
    let facts = case_facts(HAMAR, Some(CompetenceArea::ConflictHandling), "2025-05-05");
    stack
        .wait_for_route(facts.clone(), (Flow::Pilot, RoutingReason::PilotEligible))
        .await?;

    // Both bad messages are on the dead-letter topic with the reason and their origin.
    let dlq_topic = ekb_platform::messaging::dead_letter_topic_for(&stack.topic_prefix, "routing");
    let reader = topic_reader(stack.broker.bootstrap_servers(), &dlq_topic)?;
    let messages = read_until(&reader, Duration::from_secs(30), |read| read.len() >= 2).await?;
    let reasons: Vec<String> = messages
        .iter()
        .map(|message| {
            let headers = message.headers().expect("dead letters carry headers");
            let reason = headers
                .iter()
                .find(|h| h.key == "ekb-dlq-reason")
                .and_then(|h| h.value)
                .unwrap_or_default();
            let source = headers
                .iter()
                .find(|h| h.key == "ekb-dlq-source-topic")
                .and_then(|h| h.value)
                .unwrap_or_default();
            assert_eq!(source, topic.as_bytes());
            assert_eq!(
                message.key(),
                Some(agreement_id.as_bytes()),
                "dead letter keeps the original key"
            );
            String::from_utf8_lossy(reason).into_owned()
        })
        .collect();
    assert!(
        reasons[0].contains("envelope does not decode"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("payload does not decode"),
        "{reasons:?}"
    );

    // 2. Redelivery: the same event (same id) again changes nothing and is recorded once.
    send(
        &producer,
        &topic,
        &agreement_id,
        &activated.encode_to_vec(),
        Some(&activated_type),
    )
    .await?;
    // An update (version 2) behind it proves the redelivery was consumed before it.
    let mut updated = agreement_event(&agreement_id, &[CompetenceArea::CareerGuidance], 2);
    updated.event_type = v1::AgreementUpdated::full_name();
    send(
        &producer,
        &topic,
        &agreement_id,
        &updated.encode_to_vec(),
        Some(&v1::AgreementUpdated::full_name()),
    )
    .await?;
    stack
        .wait_for_route(
            case_facts(HAMAR, Some(CompetenceArea::CareerGuidance), "2025-05-05"),
            (Flow::Pilot, RoutingReason::PilotEligible),
        )
        .await?;
    assert_eq!(
        stack.evaluate(facts).await?,
        (Flow::Regular, RoutingReason::NoAgreementForArea),
        "version 2 replaced the areas"
    );

    // 3. An event type routing does not know is skipped explicitly.
    let unknown = v1::EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "ekspertbistand.v1.SupplierRenamed".to_owned(),
        aggregate_id: agreement_id.clone(),
        schema_version: 1,
        producer: "expert-registry".to_owned(),
        ..Default::default()
    };
    send(
        &producer,
        &topic,
        &agreement_id,
        &unknown.encode_to_vec(),
        Some(&unknown.event_type),
    )
    .await?;
    let outcomes = ekb_tests::eventually(
        "the unknown type to be recorded",
        Duration::from_secs(30),
        || async {
            let outcomes = inbox_outcomes(&stack).await?;
            Ok(outcomes
                .iter()
                .any(|(id, _)| *id == unknown.event_id)
                .then_some(outcomes))
        },
    )
    .await?;
    let outcome_of = |event_id: &str| -> Vec<&str> {
        outcomes
            .iter()
            .filter(|(id, _)| id == event_id)
            .map(|(_, outcome)| outcome.as_str())
            .collect()
    };
    assert_eq!(
        outcome_of(&activated.event_id),
        ["applied"],
        "delivered twice, applied once"
    );
    assert_eq!(outcome_of(&updated.event_id), ["applied"]);
    assert_eq!(outcome_of(&broken.event_id), ["dead_lettered"]);
    assert_eq!(outcome_of(&unknown.event_id), ["skipped_unknown_type"]);
    let mut stack = stack;
    assert!(
        stack.routing.is_running(),
        "routing survived every bad message"
    );
    Ok(())
}
