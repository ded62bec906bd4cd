//! Messaging: fault tests of routing's event consumer, with routing as a separate process and
//! events injected on the expert-registry topic through the broker: a redelivered event is applied
//! once; a poison message ends in the dead-letter topic while later messages on the same
//! partition still flow; an unknown event type is skipped explicitly (recorded, not crashed on).
//! Also the housekeeping around it (outbox and inbox pruned by age, the relay woken by commits)
//! and testkit's scripted budget, the counterpart other services' tests rely on.

use std::time::Duration;

use ekb_platform::messaging::{EventSubject, envelope::wrap};
use ekb_proto::v1::{self, CompetenceArea, Flow, RoutingReason};
use ekb_tests::{
    HAMAR, ProcessStack, agreement_state, case_facts, read_until, send, test_producer, topic_reader,
};
use prost::{Message as _, Name};
use rdkafka::{Message, message::Headers};
use sqlx::Connection;

fn agreement_event(
    agreement_id: &str,
    areas: &[CompetenceArea],
    version: i64,
) -> v1::EventEnvelope {
    let agreement = agreement_state(agreement_id, "34", areas, version);
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

/// Both ends of the messaging tables are pruned by age: published outbox rows after
/// `outbox.retention`, inbox rows after `consumer.inbox_retention`; an unpublished
/// outbox row is never deleted, however old.
#[tokio::test]
async fn outbox_and_inbox_are_pruned_by_age_and_unpublished_rows_stay() -> anyhow::Result<()> {
    use ekb_platform::{
        messaging::{consumer::prune_inbox, relay::prune_outbox},
        service::ServiceDescription,
    };

    let database = ekb_testkit::postgres::fresh_database("retention").await?;
    let pool = sqlx::PgPool::connect(&database.url).await?;
    ekb_platform::db::migrate(&pool, ekb_routing::Routing::migrator()).await?;
    for (age_hours, published) in [(1, true), (200, true), (200, false)] {
        sqlx::query(
            "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at, published_at) \
             VALUES ($1, 't', 'k', 'x', '\\x00', now() - make_interval(hours => $2), \
                     CASE WHEN $3 THEN now() - make_interval(hours => $2) END)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(age_hours)
        .bind(published)
        .execute(&pool)
        .await?;
    }
    for age_hours in [1, 2000] {
        sqlx::query(
            "INSERT INTO inbox (event_id, event_type, topic, kafka_partition, kafka_offset, outcome, received_at) \
             VALUES ($1, 'x', 't', 0, 0, 'applied', now() - make_interval(hours => $2))",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(age_hours)
        .execute(&pool)
        .await?;
    }
    assert_eq!(
        prune_outbox(&pool, Duration::from_secs(168 * 3600)).await?,
        1,
        "only the old published row"
    );
    assert_eq!(
        prune_inbox(&pool, Duration::from_secs(1440 * 3600)).await?,
        1,
        "only the old inbox row"
    );
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox WHERE published_at IS NULL), \
         (SELECT count(*) FROM inbox)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(left, (2, 1, 1));
    Ok(())
}

/// A commit wakes the relay (LISTEN/NOTIFY): with the safety-net poll set to ten minutes, each
/// event is still acknowledged by the broker moments after its commit.
#[tokio::test]
async fn a_commit_wakes_the_relay_without_polling() -> anyhow::Result<()> {
    use ekb_tests::{RegistryClient, register_agreement};

    let broker = ekb_testkit::broker::TestBroker::start()?;
    let database = ekb_testkit::postgres::fresh_database("wakeup").await?;
    let settings = ekb_testkit::services::TestSettings::new(
        &database.url,
        broker.bootstrap_servers(),
        &ekb_tests::unique_topic_prefix(),
    )
    .with("outbox.poll_interval", "10m");
    let registry =
        ekb_testkit::services::start_in_process::<ekb_expert_registry::ExpertRegistry>(&settings)
            .await?;
    let mut client = RegistryClient::connect(registry.url()).await?;
    let pool = sqlx::PgPool::connect(&database.url).await?;
    // The relay's first round ran at start; from now on only a notification can wake it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for round in 1..=3_i64 {
        client
            .register_agreement(register_agreement("34", &[CompetenceArea::Restructuring]))
            .await?;
        let delay: f64 = ekb_tests::eventually(
            "the relay to publish the event",
            Duration::from_secs(10),
            || async {
                Ok(sqlx::query_scalar(
                    "SELECT EXTRACT(EPOCH FROM published_at - created_at)::float8 FROM outbox \
                     WHERE published_at IS NOT NULL ORDER BY id OFFSET $1 LIMIT 1",
                )
                .bind(round - 1)
                .fetch_optional(&pool)
                .await?)
            },
        )
        .await?;
        assert!(
            delay < 2.0,
            "event {round} waited {delay:.3} s after its commit: the relay did not wake"
        );
    }
    registry.stop().await
}

/// testkit's scripted budget answers a funds request as budget would: FundsReserved while the
/// money lasts, then FundsDenied(INSUFFICIENT_FUNDS) with what is left, on budget's topic keyed
/// by case; service tests of applications and pilot-ordering rely on it.
#[tokio::test]
async fn the_scripted_budget_reserves_what_fits_and_denies_the_rest() -> anyhow::Result<()> {
    use ekb_testkit::events::{EventFeed, ScriptedBudget};

    let broker = ekb_testkit::broker::TestBroker::start()?;
    let prefix = ekb_tests::unique_topic_prefix();
    let budget = ScriptedBudget::start(broker.bootstrap_servers(), &prefix, 3_000_000).await?;
    let feed = EventFeed::new(broker.bootstrap_servers(), &prefix)?;
    let reader = topic_reader(
        broker.bootstrap_servers(),
        &ekb_platform::messaging::topic_for(&prefix, "budget"),
    )?;
    let case_ids: Vec<String> = (0..2).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for case_id in &case_ids {
        let grant_id = uuid::Uuid::now_v7().to_string();
        feed.publish(
            "applications",
            &EventSubject {
                case_id: Some(case_id.clone()),
                aggregate_id: grant_id.clone(),
            },
            &v1::GrantRequested {
                grant_id,
                case_id: case_id.clone(),
                county_code: "34".into(),
                amount_ore: 2_000_000,
                budget_year: 2026,
                ..Default::default()
            },
        )
        .await?;
    }
    let answers = read_until(&reader, Duration::from_secs(30), |read| read.len() >= 2).await?;
    // The two requests may sit on different partitions, so either may come first.
    let mut reserved = Vec::new();
    let mut denied = Vec::new();
    for message in &answers {
        let envelope = v1::EventEnvelope::decode(message.payload().unwrap_or_default())?;
        assert_eq!(
            message.key(),
            Some(envelope.case_id.as_bytes()),
            "keyed by case"
        );
        assert!(case_ids.contains(&envelope.case_id));
        if envelope.event_type == v1::FundsReserved::full_name() {
            reserved.push(v1::FundsReserved::decode(envelope.payload.as_slice())?);
        } else {
            assert_eq!(envelope.event_type, v1::FundsDenied::full_name());
            denied.push(v1::FundsDenied::decode(envelope.payload.as_slice())?);
        }
    }
    assert_eq!((reserved.len(), denied.len()), (1, 1));
    assert_eq!(reserved[0].amount_ore, 2_000_000);
    assert_eq!(denied[0].reason(), v1::FundsDeniedReason::InsufficientFunds);
    assert_eq!(denied[0].available_ore, 1_000_000);
    assert_ne!(reserved[0].case_id, denied[0].case_id);
    assert_eq!((budget.answered(), budget.available_ore()), (2, 1_000_000));
    Ok(())
}

/// A consumer of routing's topic whose handler fails as the case id says: `outage-…` has its own
/// database backend terminated twice mid-handling (PostgreSQL restarting under it) and then
/// succeeds; `bug-…` fails the same way every time; `poison-…` is refused as invalid.
struct FlakyHandler {
    attempts: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl ekb_platform::messaging::Handles<v1::CaseRouted> for FlakyHandler {
    async fn handle(
        &self,
        work: &mut ekb_platform::messaging::UnitOfWork,
        event: v1::CaseRouted,
        _envelope: &v1::EventEnvelope,
    ) -> Result<(), ekb_platform::messaging::HandlerError> {
        use ekb_platform::messaging::HandlerError;
        let attempt = {
            let mut attempts = self.attempts.lock().expect("not poisoned");
            let attempt = attempts.entry(event.case_id.clone()).or_default();
            *attempt += 1;
            *attempt
        };
        if event.case_id.starts_with("poison-") {
            return Err(HandlerError::Permanent("case_id is not a UUID".to_owned()));
        }
        if event.case_id.starts_with("bug-") {
            return Err(HandlerError::Transient(anyhow::anyhow!(
                "a bug: attempt {attempt} failed like the others"
            )));
        }
        sqlx::query("INSERT INTO applied (case_id) VALUES ($1)")
            .bind(&event.case_id)
            .execute(work.db())
            .await?;
        if attempt <= 2 {
            // The backend dies under the open transaction, as in a failover.
            sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
                .execute(work.db())
                .await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_retried_without_limit_and_only_the_message_s_own_failures_dead_letter()
-> anyhow::Result<()> {
    use ekb_platform::{
        config::{ConfigLoader, NoSettings},
        messaging::{EventConsumer, EventRouter, Outbox, kafka::idempotent_producer},
    };
    static NO_SERVICE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
    let broker = ekb_testkit::broker::TestBroker::start()?;
    let prefix = ekb_tests::unique_topic_prefix();
    let database = ekb_testkit::postgres::fresh_database("fault_classes").await?;
    let settings = ekb_testkit::services::TestSettings::new(
        &database.url,
        broker.bootstrap_servers(),
        &prefix,
    );
    let config = settings
        .apply(ConfigLoader::new())
        .load::<NoSettings>()?
        .platform;
    let pool = sqlx::PgPool::connect(&database.url).await?;
    ekb_platform::db::migrate(&pool, &NO_SERVICE_MIGRATIONS).await?;
    sqlx::query("CREATE TABLE applied (case_id text PRIMARY KEY)")
        .execute(&pool)
        .await?;
    let handler = FlakyHandler {
        attempts: Default::default(),
    };
    let events = EventRouter::new(handler)
        .from("routing")
        .on::<v1::CaseRouted>()
        .build();
    let consumer = EventConsumer::new(
        "classes",
        &config.kafka,
        pool.clone(),
        Outbox::for_service(&prefix, "classes"),
        events,
        config.consumer.clone(),
        idempotent_producer(&config.kafka)?,
    )?;
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(consumer.run(stop.clone()));

    let producer = test_producer(broker.bootstrap_servers())?;
    let topic = ekb_platform::messaging::topic_for(&prefix, "routing");
    let mut ids = Vec::new();
    for kind in ["outage", "bug", "poison"] {
        let case_id = format!("{kind}-{}", uuid::Uuid::now_v7());
        let envelope = wrap(
            "routing",
            &EventSubject::case(case_id.clone()),
            &v1::CaseRouted {
                case_id: case_id.clone(),
                ..Default::default()
            },
        );
        send(
            &producer,
            &topic,
            &case_id,
            &envelope.encode_to_vec(),
            Some(&v1::CaseRouted::full_name()),
        )
        .await?;
        ids.push((kind, envelope.event_id));
    }
    let outcomes = ekb_tests::eventually(
        "every event's final outcome",
        Duration::from_secs(60),
        || async {
            let rows: Vec<(String, String, Option<String>)> =
                sqlx::query_as("SELECT event_id::text, outcome, detail FROM inbox")
                    .fetch_all(&pool)
                    .await?;
            Ok((rows.len() == 3).then_some(rows))
        },
    )
    .await?;
    stop.cancel();
    running.await??;
    let outcome_of = |kind: &str| {
        let id = &ids.iter().find(|(k, _)| *k == kind).expect("sent").1;
        outcomes
            .iter()
            .find(|(event_id, _, _)| event_id == id)
            .cloned()
            .expect("in the inbox")
    };
    // Infrastructure: retried past max_attempts (3), applied once, never dead-lettered.
    assert_eq!(outcome_of("outage").1, "applied");
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM applied")
            .fetch_one(&pool)
            .await?,
        1
    );
    // The work's own failure: dead-lettered after max_attempts, with the last error.
    let (_, outcome, detail) = outcome_of("bug");
    assert_eq!(outcome, "dead_lettered");
    let detail = detail.unwrap_or_default();
    assert!(
        detail.starts_with("failed 3 times, last: a bug: attempt 3"),
        "{detail}"
    );
    // A permanent refusal: dead-lettered at once.
    let (_, outcome, detail) = outcome_of("poison");
    assert_eq!(outcome, "dead_lettered");
    assert_eq!(detail.as_deref(), Some("case_id is not a UUID"));
    Ok(())
}
