//! Tests of routing's group commit (ADR 0015) against a fresh database migrated by routing's
//! own migrations: cases waiting together are stored in one transaction, a request id that
//! appears twice is stored once, a batch that fails is retried case by case so only the
//! bad case fails, and closing the pool takes back the connection a writer keeps.

use ekb_domain::{Flow, RoutingDecision, RoutingReason};
use ekb_platform::{
    ApiError,
    messaging::{EventSubject, Outbox},
};
use ekb_routing::{
    case_store::{NewCase, StoredCase},
    case_writer::{CaseWriter, CaseWriterSettings, WriteOutcome},
    facts::CaseFacts,
};
use ekb_testkit::postgres::{TestDatabase, drop_database, fresh_database};
use ekb_tests::{HAMAR, case_facts};
use futures::future::join_all;
use sqlx::{PgPool, postgres::PgPoolOptions};
use std::time::Duration;

use uuid::Uuid;

/// A fresh database with routing's schema, and a pool on it.
async fn routing_database(purpose: &str) -> anyhow::Result<(TestDatabase, PgPool)> {
    let database = fresh_database(purpose).await?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&database.url)
        .await?;
    ekb_platform::db::migrate(&pool, &ekb_routing::MIGRATOR).await?;
    Ok((database, pool))
}

/// A case writer with a single writer, so cases queued together form one batch.
fn one_writer(pool: &PgPool) -> CaseWriter {
    CaseWriter::start(
        pool.clone(),
        CaseWriterSettings {
            concurrent_batches: 1,
            max_batch_size: 64,
        },
    )
}

/// A new pilot case in Hamar with its CaseRouted event, for `request_id`.
fn new_case(request_id: Uuid) -> anyhow::Result<NewCase> {
    let facts = CaseFacts::from_request(
        "facts",
        Some(&case_facts(
            HAMAR,
            Some(ekb_proto::v1::CompetenceArea::ConflictHandling),
            "2025-03-01",
        )),
    )?;
    let decision = RoutingDecision {
        flow: Flow::Pilot,
        reason: RoutingReason::PilotEligible,
    };
    let case = StoredCase::open(facts, decision);
    let event = Outbox::for_service("ekb-test", "routing").pending(
        &EventSubject::case(case.case_id.to_string()),
        &case.routed_event(),
    )?;
    Ok(NewCase {
        case,
        request_id,
        event,
    })
}

/// Cases stored, outbox rows queued, and the transactions that stored the cases.
async fn stored(pool: &PgPool) -> anyhow::Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM outbox), \
         (SELECT count(DISTINCT xmin::text) FROM cases)",
    )
    .fetch_one(pool)
    .await?)
}

/// Whether an outcome is a stored case.
fn inserted(outcome: &WriteOutcome) -> bool {
    matches!(outcome, WriteOutcome::Inserted(_))
}

#[tokio::test]
async fn cases_waiting_together_commit_in_one_transaction_each_with_its_event() -> anyhow::Result<()>
{
    let (database, pool) = routing_database("writer_batch").await?;
    let writer = one_writer(&pool);
    // On this single-threaded runtime all twenty are queued before the writer first runs.
    let cases = (0..20)
        .map(|_| new_case(Uuid::new_v4()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let outcomes = join_all(cases.into_iter().map(|case| writer.write(case))).await;
    for outcome in &outcomes {
        assert!(inserted(outcome.as_ref().expect("stored")), "{outcome:?}");
    }
    assert_eq!(stored(&pool).await?, (20, 20, 1), "one transaction for all");
    let events_of_other_cases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox o WHERE NOT EXISTS \
         (SELECT 1 FROM cases c WHERE c.case_id::text = o.message_key)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(events_of_other_cases, 0, "every event is keyed by its case");

    // Without company, a case is written at once, on its own.
    let alone = writer.write(new_case(Uuid::new_v4())?).await?;
    assert!(inserted(&alone));
    assert_eq!(stored(&pool).await?, (21, 21, 2));
    pool.close().await;
    drop_database(&database.name).await
}

#[tokio::test]
async fn a_request_id_twice_in_one_batch_is_stored_once() -> anyhow::Result<()> {
    let (database, pool) = routing_database("writer_twins").await?;
    let writer = one_writer(&pool);
    let request_id = Uuid::new_v4();
    let twins = [
        new_case(request_id)?,
        new_case(request_id)?,
        new_case(Uuid::new_v4())?,
    ];
    let outcomes = join_all(twins.into_iter().map(|case| writer.write(case))).await;
    let outcomes = outcomes.into_iter().collect::<Result<Vec<_>, _>>()?;
    assert_eq!(outcomes.iter().filter(|o| inserted(o)).count(), 2);
    let taken: Vec<Uuid> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            WriteOutcome::RequestIdTaken(attempt) => Some(attempt.request_id),
            WriteOutcome::Inserted(_) => None,
        })
        .collect();
    assert_eq!(taken, [request_id]);
    assert_eq!(stored(&pool).await?, (2, 2, 1));
    pool.close().await;
    drop_database(&database.name).await
}

#[tokio::test]
async fn a_failing_batch_is_retried_case_by_case_and_only_the_bad_case_fails() -> anyhow::Result<()>
{
    let (database, pool) = routing_database("writer_fallback").await?;
    let writer = one_writer(&pool);
    let first = new_case(Uuid::new_v4())?;
    let first_request = first.request_id;
    // Same case id, another request: the batch breaks the primary key and fails as a whole.
    let mut clash = new_case(Uuid::new_v4())?;
    clash.case.case_id = first.case.case_id;
    let clash_request = clash.request_id;
    let batch = [
        first,
        clash,
        new_case(Uuid::new_v4())?,
        new_case(Uuid::new_v4())?,
    ];
    let outcomes = join_all(batch.into_iter().map(|case| writer.write(case))).await;

    let failed: Vec<_> = outcomes.iter().filter(|o| o.is_err()).collect();
    assert_eq!(failed.len(), 1, "{outcomes:?}");
    let message = format!("{:?}", failed[0]);
    assert!(message.contains("already exists"), "{message}");
    let (cases, events, transactions) = stored(&pool).await?;
    assert_eq!((cases, events), (3, 3));
    assert_eq!(transactions, 3, "written one by one after the batch failed");
    // Which of the two clashing cases is stored depends on the order; exactly one of them is.
    let clashing_stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM cases WHERE request_id IN ($1, $2)")
            .bind(first_request)
            .bind(clash_request)
            .fetch_one(&pool)
            .await?;
    assert_eq!(clashing_stored, 1);
    pool.close().await;
    drop_database(&database.name).await
}

#[tokio::test]
async fn closing_the_pool_takes_back_the_writers_connection_and_stops_the_writer()
-> anyhow::Result<()> {
    let (database, pool) = routing_database("writer_close").await?;
    let writer = one_writer(&pool);
    // The writer now keeps the connection it stored this case with.
    assert!(inserted(&writer.write(new_case(Uuid::new_v4())?).await?));
    tokio::time::timeout(Duration::from_secs(10), pool.close())
        .await
        .map_err(|_| anyhow::anyhow!("closing the pool waited for the writer's connection"))?;
    let after_close = writer.write(new_case(Uuid::new_v4())?).await;
    assert!(
        matches!(after_close, Err(ApiError::Unavailable(_))),
        "{after_close:?}"
    );
    drop_database(&database.name).await
}
