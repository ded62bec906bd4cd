//! The database side of the end-of-run invariants against a real PostgreSQL: the scanner finds
//! a fødselsnummer planted in a column and in a protobuf payload, and the applied-once check
//! finds an event booked twice in budget's ledger — on the platform's and budget's own schema;
//! a run refuses databases another process is still connected to; and pgbench runs both
//! baselines.

use ekb_domain::{Fodselsnummer, SyntheticPolicy};
use ekb_simulator::invariants::{
    applied_once::{self, APPLIED_ONCE},
    databases,
    fnr_detector::FnrDetector,
    personal_data::{self, NONE_IN_DATABASES},
};

const PLATFORM: &str = include_str!("../../platform/migrations/1_messaging.sql");
const BUDGET: &str = include_str!(
    "../../../services/budget/migrations/100_appropriations_reservations_and_ledger.sql"
);

/// A synthetic number (month + 80) with valid check digits, made here.
fn synthetic(day: u32) -> String {
    for serial in 0..1000u32 {
        for check in 0..100u32 {
            let candidate = format!("{day:02}8190{serial:03}{check:02}");
            if Fodselsnummer::parse(&candidate, SyntheticPolicy::Accept).is_ok() {
                return candidate;
            }
        }
    }
    panic!("no synthetic number with valid check digits");
}

#[tokio::test]
async fn planted_personal_data_and_a_doubled_ledger_entry_are_found() -> anyhow::Result<()> {
    let (name, db) = ekb_testkit::postgres::database_at("invariants", &[PLATFORM, BUDGET]).await?;
    drop(db);
    let url = ekb_testkit::postgres::url_for(&name);
    let pool = databases::connect("budget", &url).await?;
    let listed = synthetic(1);
    let unlisted = synthetic(2);

    let event = uuid::Uuid::new_v4();
    let reservation = uuid::Uuid::new_v4();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO inbox (event_id, event_type, topic, kafka_partition, kafka_offset, outcome, detail) \
           VALUES ('{event}', 'ekspertbistand.v1.GrantRequested', 't', 0, 1, 'applied', \
                   'request for {listed} refused'); \
         INSERT INTO reservations (reservation_id, commitment_kind, commitment_id, case_id, \
             county_code, flow, budget_year, chapter, post, status, requested_ore, reserved_ore, \
             request_event_id, created_at, answered_at, updated_at) \
           VALUES ('{reservation}', 'GRANT', gen_random_uuid(), gen_random_uuid(), '03', \
                   'REGULAR', 2027, 2650, 76, 'RESERVED', 1000, 1000, '{event}', now(), now(), now()); \
         INSERT INTO ledger_entries (reservation_id, movement, amount_ore, commitment_kind, \
             commitment_id, case_id, county_code, flow, budget_year, chapter, post, event_id, \
             booked_at, booked_month) \
           SELECT reservation_id, 'RESERVE', 1000, commitment_kind, commitment_id, case_id, \
                  county_code, flow, budget_year, chapter, post, '{event}', now(), '2027-01' \
           FROM reservations, generate_series(1, 2);"
    )))
    .execute(&pool)
    .await?;
    // An outbox payload: a string field (6) with the unlisted number, then a varint field 6
    // whose tag is the byte '0'.
    let mut payload = vec![0x32, 11];
    payload.extend_from_slice(unlisted.as_bytes());
    payload.extend([0x30, 0x01]);
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, payload) \
         VALUES (gen_random_uuid(), 't', 'k', 'x', $1)",
    )
    .bind(payload)
    .execute(&pool)
    .await?;

    let applied_twice = applied_once::check_database("budget", &pool).await?;
    let details: Vec<&str> = applied_twice.iter().map(|v| v.detail.as_str()).collect();
    assert!(applied_twice.iter().all(|v| v.invariant == APPLIED_ONCE));
    assert_eq!(
        details,
        vec![
            "budget: ledger_entries.event_id, reservation_id, movement: event ids with more than one row: 1",
            "budget: ledger_entries: reservations with more than one entry of one movement: 1",
        ],
        "the reservation's request event id is once per reservation"
    );

    let leaks = personal_data::in_database(
        "budget",
        &pool,
        &FnrDetector::new(std::slice::from_ref(&listed)),
    )
    .await?;
    let details: Vec<String> = leaks.iter().map(|v| v.detail.clone()).collect();
    assert!(leaks.iter().all(|v| v.invariant == NONE_IN_DATABASES));
    assert_eq!(leaks.len(), 2, "{details:#?}");
    assert!(
        details[0].starts_with("budget: inbox.detail: 1 row(s) hold an employee's fødselsnummer")
    );
    assert!(details[1].starts_with("budget: outbox.payload: 1 row(s) hold eleven digits"));
    assert!(
        details
            .iter()
            .all(|detail| !detail.contains(&listed) && !detail.contains(&unlisted)),
        "a violation never shows the number"
    );

    pool.close().await;
    ekb_testkit::postgres::drop_database(&name).await?;
    Ok(())
}

#[tokio::test]
async fn every_record_of_the_prefixed_topics_is_read_and_judged() -> anyhow::Result<()> {
    use ekb_simulator::invariants::{dead_letters, personal_data::NONE_ON_TOPICS, topics};
    use rdkafka::{
        message::{Header, OwnedHeaders},
        producer::{FutureProducer, FutureRecord},
    };

    let broker = ekb_testkit::broker::TestBroker::start()?;
    let brokers = broker.bootstrap_servers().to_owned();
    let prefix = ekb_testkit::broker::unique_topic("invariants");
    let (domain, dead) = (
        format!("{prefix}.budget.v1"),
        format!("{prefix}.budget.dlq.v1"),
    );
    let listed = synthetic(3);
    let producer: FutureProducer = ekb_testkit::broker::test_client_config(&brokers).create()?;
    for n in 0..5 {
        let payload = if n == 3 {
            format!("event for {listed}")
        } else {
            format!("event {n}")
        };
        producer
            .send(
                FutureRecord::to(&domain)
                    .key("k")
                    .payload(payload.as_bytes()),
                std::time::Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)?;
    }
    producer
        .send(
            FutureRecord::to(&dead)
                .key("k")
                .payload("poison")
                .headers(OwnedHeaders::new().insert(Header {
                    key: "ekb-dlq-reason",
                    value: Some("does not decode"),
                })),
            std::time::Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)?;

    let (found, read) = tokio::task::spawn_blocking({
        let (brokers, prefix, domain) = (brokers.clone(), prefix.clone(), domain.clone());
        move || -> anyhow::Result<_> {
            let found = topics::topics_with_prefix(&brokers, &prefix)?;
            let read = topics::read_all(&brokers, &domain, |_| {})?;
            Ok((found, read))
        }
    })
    .await??;
    assert_eq!(found, vec![dead.clone(), domain.clone()]);
    assert_eq!(read, 5, "every record, then the end of every partition");

    let dead_letters = dead_letters::check(&brokers, &prefix, &[], false).await?;
    assert_eq!(dead_letters.len(), 1, "{dead_letters:#?}");
    assert_eq!(
        dead_letters[0].detail,
        format!("{dead} holds 1 record(s); 1× does not decode")
    );
    assert_eq!(
        dead_letters::check(&brokers, &prefix, &[], true).await?,
        vec![]
    );

    let leaks = personal_data::on_topics(
        &brokers,
        &prefix,
        &FnrDetector::new(std::slice::from_ref(&listed)),
    )
    .await?;
    assert_eq!(leaks.len(), 1, "{leaks:#?}");
    assert_eq!(leaks[0].invariant, NONE_ON_TOPICS);
    assert!(
        leaks[0]
            .detail
            .starts_with(&format!("{domain}: 1 record(s) hold an employee's"))
    );
    drop(broker);
    Ok(())
}

#[tokio::test]
async fn a_run_refuses_databases_another_process_is_connected_to() -> anyhow::Result<()> {
    let prefix = format!("ekb_simtest_{}_", uuid::Uuid::new_v4().simple());
    let routing = ekb_testkit::catalog::SERVICES
        .iter()
        .find(|entry| entry.name == "routing")
        .expect("routing is in the catalog")
        .database_name(&prefix);
    ekb_testkit::postgres::create_database(&routing).await?;
    ekb_simulator::system::refuse_databases_in_use(&prefix).await?;

    let orphan = ekb_testkit::postgres::connect(&ekb_testkit::postgres::url_for(&routing)).await?;
    let refused = ekb_simulator::system::refuse_databases_in_use(&prefix)
        .await
        .expect_err("a database in use is refused");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("{routing} (1 connected)")),
        "{message}"
    );
    assert!(message.contains("stop them first"), "{message}");

    drop(orphan);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ekb_simulator::system::refuse_databases_in_use(&prefix)
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed connection still counts"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ekb_testkit::postgres::drop_database(&routing).await?;
    Ok(())
}

#[tokio::test]
async fn pgbench_runs_the_year_s_commit_shape_and_one_row_commits() -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!(
        "ekb-simulator-baseline-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&scratch)?;
    let shape = ekb_simulator::commits::CommitShape {
        inserted: 2.4,
        updated: 1.3,
        deleted: 0.2,
        read: 3.7,
    };
    let baselines = ekb_simulator::baseline::measure(&scratch, shape, 1).await?;
    for run in [&baselines.same_shape, &baselines.one_row] {
        assert!(run.commits_per_second > 0.0 && run.commits > 0, "{run:?}");
        assert!(run.time_for(run.commits).as_secs_f64() > 0.5, "{run:?}");
    }
    // Writing several rows a commit is slower than writing one.
    assert!(
        baselines.same_shape.commits_per_second < baselines.one_row.commits_per_second,
        "{baselines:?}"
    );
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
