//! Service tests of budget: the real service (in-process on port 0, or as processes for the
//! replica and crash tests), a fresh PostgreSQL database and the broker process. Budget is
//! driven only by the real event types of applications, refunds and pilot-ordering, published
//! on their real topics by testkit's `EventFeed`; what budget answers is read back from its own
//! topic, its dead-letter topic and its database.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use ekb_budget::Budget;
use ekb_platform::messaging::{EventSubject, dead_letter_topic_for};
use ekb_proto::v1::{self, ReservationStatus as Status};
use ekb_testkit::{
    broker::{TestBroker, topic_reader},
    events::EventFeed,
    issuer::TestIssuer,
    postgres::fresh_database,
    service_under_test::{ServiceUnderTest, eventually, unique_topic_prefix},
    services::{ServiceProcess, TestSettings, with_bearer},
};
use prost::{Message as _, Name};
use sqlx::PgPool;
use support::{
    BudgetClient, Closing, Commitment, LAST_YEAR, WAIT, YEAR, appropriation, appropriation_request,
    assert_reconciled, count, new_id, of_type, outbox_counts, read, scheme, set_appropriation,
    violated_fields,
};
use tonic::Code;
use tonic_types::StatusExt;

// Every test runs on a multi-threaded runtime: an in-process service then has threads of its
// own besides the test's, as it has in a pod.

/// Budget alone, with a client and a pool on its database.
async fn start(purpose: &str) -> anyhow::Result<(ServiceUnderTest, BudgetClient, PgPool)> {
    let stack = ServiceUnderTest::start::<Budget>(purpose).await?;
    let client = BudgetClient::new(stack.channel().await?);
    let pool = PgPool::connect(stack.database_url()).await?;
    Ok((stack, client, pool))
}

/// A reader of budget's topic in this test.
fn budget_topic(stack: &ServiceUnderTest) -> anyhow::Result<rdkafka::consumer::StreamConsumer> {
    topic_reader(stack.broker.bootstrap_servers(), &stack.topic("budget"))
}

/// A reader of budget's dead-letter topic in this test.
fn dead_letters(stack: &ServiceUnderTest) -> anyhow::Result<rdkafka::consumer::StreamConsumer> {
    topic_reader(
        stack.broker.bootstrap_servers(),
        &dead_letter_topic_for(&stack.topic_prefix, "budget"),
    )
}

/// Waits until budget's inbox holds `events` event ids (applied, skipped or dead-lettered).
async fn wait_for_inbox(pool: &PgPool, events: i64) -> anyhow::Result<()> {
    eventually(&format!("{events} events in the inbox"), WAIT, || async {
        Ok((count(pool, "SELECT count(*) FROM inbox").await? >= events).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appropriations_are_set_idempotently_refused_below_committed_and_fire_thresholds_once()
-> anyhow::Result<()> {
    let (stack, mut client, pool) = start("appropriations").await?;
    let topic = budget_topic(&stack)?;

    let created = client
        .set_appropriation(appropriation_request(YEAR, 10_000_000))
        .await?
        .into_inner();
    let first = created.appropriation.clone().unwrap_or_default();
    assert!(created.created);
    assert_eq!(
        first.threshold_percents,
        [50, 75, 90, 100],
        "the configured default levels"
    );
    assert_eq!((first.version, first.available_ore), (1, 10_000_000));
    let again = client
        .set_appropriation(appropriation_request(YEAR, 10_000_000))
        .await?
        .into_inner();
    assert!(!again.created);
    assert_eq!(
        again.appropriation.unwrap_or_default().version,
        1,
        "the same values change nothing"
    );
    assert_eq!(appropriation(&mut client, YEAR).await?, first);
    let missing = client
        .get_appropriation(v1::GetAppropriationRequest {
            budget_year: LAST_YEAR,
            account: scheme(),
        })
        .await
        .expect_err("none set");
    assert_eq!(missing.code(), Code::NotFound);

    // 60 % committed: the 50 % level fires.
    let big = Commitment::grant("03");
    big.request(&stack.feed, 6_000_000, YEAR).await?;
    big.wait_for(&client, Status::Reserved).await?;

    // Lowering below what is committed is refused with a reason, and changes nothing.
    let refused = client
        .set_appropriation(appropriation_request(YEAR, 5_999_999))
        .await
        .expect_err("below committed");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let info = refused
        .get_error_details()
        .error_info()
        .cloned()
        .context("ErrorInfo")?;
    assert_eq!(info.reason, "BELOW_COMMITTED");
    assert_eq!(
        appropriation(&mut client, YEAR).await?.appropriated_ore,
        10_000_000
    );

    // Down to exactly what is committed: 100 %, so 75, 90 and 100 fire.
    let lowered = set_appropriation(&mut client, YEAR, 6_000_000).await?;
    assert_eq!((lowered.available_ore, lowered.version), (0, 2));
    assert_eq!(lowered.crossed_threshold_percents, [50, 75, 90, 100]);
    // A raise to 20 MNOK (30 %) re-arms every level; reaching 50 % again fires 50 again.
    let raised = set_appropriation(&mut client, YEAR, 20_000_000).await?;
    assert!(
        raised.crossed_threshold_percents.is_empty(),
        "re-armed: {raised:?}"
    );
    let more = Commitment::order("34");
    more.request(&stack.feed, 4_000_000, YEAR).await?;
    more.wait_for(&client, Status::Reserved).await?;
    let now = appropriation(&mut client, YEAR).await?;
    assert_eq!(
        (now.committed_ore, now.used_basis_points),
        (10_000_000, 5_000)
    );
    assert_eq!(now.crossed_threshold_percents, [50]);

    // Custom levels replace the defaults; a level no longer configured is forgotten.
    let custom = client
        .set_appropriation(v1::SetAppropriationRequest {
            threshold_percents: vec![95, 80],
            ..appropriation_request(YEAR, 20_000_000)
        })
        .await?
        .into_inner()
        .appropriation
        .unwrap_or_default();
    assert_eq!(custom.threshold_percents, [80, 95]);
    assert!(custom.crossed_threshold_percents.is_empty());

    let messages = read(&topic, 7, WAIT, Duration::from_millis(500)).await?;
    let levels: Vec<i32> = of_type::<v1::ThresholdCrossed>(&messages)
        .iter()
        .map(|crossed| crossed.threshold_percent)
        .collect();
    assert_eq!(
        levels,
        [50, 75, 90, 100, 50],
        "each level once, and 50 again after the raise"
    );
    for message in &messages {
        if message.event_type() == v1::ThresholdCrossed::full_name() {
            assert_eq!(
                message.key, first.appropriation_id,
                "keyed by the appropriation"
            );
        }
    }
    assert_eq!(of_type::<v1::FundsReserved>(&messages).len(), 2);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM appropriation_changes").await?,
        4,
        "created, lowered, raised, new levels: each change is in the audit trail"
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reserved_ore_is_disbursed_or_released_on_every_path() -> anyhow::Result<()> {
    let (stack, mut client, pool) = start("paths").await?;
    let topic = budget_topic(&stack)?;
    set_appropriation(&mut client, YEAR, 100_000_000).await?;
    set_appropriation(&mut client, LAST_YEAR, 10_000_000).await?;

    // Every way a commitment ends, with the amount reserved, the year and what is paid. The
    // last is reserved on last year's appropriation and released this year: the money goes
    // back to last year.
    #[rustfmt::skip]
    let paths: Vec<(Commitment, i64, i32, Closing)> = vec![
        (Commitment::grant("03"), 2_400_000, YEAR, Closing::Refund(2_000_000)),
        (Commitment::grant("46"), 2_400_000, YEAR, Closing::Refund(2_400_000)),
        (Commitment::grant("34"), 1_000_000, YEAR, Closing::Withdrawn),
        (Commitment::grant("34"), 1_000_000, YEAR, Closing::Rejected),
        (Commitment::grant("50"), 1_500_000, YEAR, Closing::GrantCancelled),
        (Commitment::grant("50"), 1_500_000, YEAR, Closing::GrantExpired),
        (Commitment::order("34"), 3_000_000, YEAR, Closing::Invoice(2_500_000)),
        (Commitment::order("34"), 3_000_000, YEAR, Closing::Invoice(3_000_000)),
        (Commitment::order("34"), 3_000_000, YEAR, Closing::Declined),
        (Commitment::order("34"), 3_000_000, YEAR, Closing::OrderCancelled),
        (Commitment::order("34"), 3_000_000, YEAR, Closing::OrderExpired),
        (Commitment::grant("03"), 1_000_000, LAST_YEAR, Closing::GrantExpired),
    ];
    for (commitment, amount, year, _) in &paths {
        commitment.request(&stack.feed, *amount, *year).await?;
    }
    for (commitment, ..) in &paths {
        commitment.wait_for(&client, Status::Reserved).await?;
    }
    for (commitment, _, _, closing) in &paths {
        commitment.close(&stack.feed, *closing).await?;
    }
    for (commitment, amount, _, closing) in &paths {
        let done = commitment.wait_for(&client, closing.final_status()).await?;
        assert_eq!(done.reserved_ore, *amount);
        assert_eq!(
            done.outstanding_ore, 0,
            "{closing:?}: nothing left outstanding"
        );
        assert_eq!(
            done.disbursed_ore + done.released_ore,
            done.reserved_ore,
            "{closing:?}: every øre reserved is disbursed or released"
        );
    }

    // What budget published: 12 reservations, 4 disbursements, 10 releases with their causes.
    let messages = read(&topic, 26, WAIT, Duration::from_millis(500)).await?;
    assert_eq!(messages.len(), 26);
    let mut causes: Vec<String> = of_type::<v1::FundsReleased>(&messages)
        .iter()
        .map(|released| released.cause().as_str_name().to_owned())
        .collect();
    causes.sort();
    assert_eq!(
        causes,
        [
            "RELEASE_CAUSE_APPLICATION_REJECTED",
            "RELEASE_CAUSE_APPLICATION_WITHDRAWN",
            "RELEASE_CAUSE_GRANT_CANCELLED",
            "RELEASE_CAUSE_GRANT_EXPIRED",
            "RELEASE_CAUSE_GRANT_EXPIRED",
            "RELEASE_CAUSE_ORDER_CANCELLED",
            "RELEASE_CAUSE_ORDER_DECLINED",
            "RELEASE_CAUSE_ORDER_EXPIRED",
            "RELEASE_CAUSE_SETTLEMENT_REMAINDER",
            "RELEASE_CAUSE_SETTLEMENT_REMAINDER",
        ]
    );
    let remainders: Vec<i64> = of_type::<v1::FundsReleased>(&messages)
        .iter()
        .filter(|released| released.cause() == v1::ReleaseCause::SettlementRemainder)
        .map(|released| released.amount_ore)
        .collect();
    assert_eq!(remainders.iter().sum::<i64>(), 400_000 + 500_000);
    assert_eq!(of_type::<v1::FundsReserved>(&messages).len(), 12);
    let disbursed = of_type::<v1::FundsDisbursed>(&messages);
    assert_eq!(
        disbursed.iter().map(|paid| paid.amount_ore).sum::<i64>(),
        9_900_000
    );
    for message in &messages {
        let envelope = message.envelope.as_ref().context("an envelope")?;
        assert_eq!(message.key, envelope.case_id, "keyed by case");
        assert!(
            paths
                .iter()
                .any(|(commitment, ..)| commitment.case_id == envelope.case_id)
        );
    }

    // The books: this year's money is all settled; last year's came back to last year.
    let this_year = appropriation(&mut client, YEAR).await?;
    assert_eq!(this_year.outstanding_ore, 0);
    assert_eq!(this_year.disbursed_ore, 9_900_000);
    assert_eq!(this_year.released_ore, 24_800_000 - 9_900_000);
    assert_eq!(this_year.available_ore, 100_000_000 - 9_900_000);
    let last_year = appropriation(&mut client, LAST_YEAR).await?;
    assert_eq!(
        (
            last_year.released_ore,
            last_year.committed_ore,
            last_year.available_ore
        ),
        (1_000_000, 0, 10_000_000)
    );
    for year in [YEAR, LAST_YEAR] {
        let report = client
            .reconcile(v1::ReconcileRequest { budget_year: year })
            .await?
            .into_inner();
        assert!(report.consistent, "{report:?}");
        assert!(report.differences.is_empty());
    }

    // Usage: per county, flow and month; the share of the appropriation used.
    let usage = client
        .get_usage(v1::GetUsageRequest {
            budget_year: YEAR,
            ..Default::default()
        })
        .await?
        .into_inner();
    let total = usage.total.unwrap_or_default();
    assert_eq!(usage.appropriated_ore, 100_000_000);
    assert_eq!(
        (
            total.cases,
            total.reserved_ore,
            total.disbursed_ore,
            total.released_ore
        ),
        (11, 24_800_000, 9_900_000, 14_900_000)
    );
    assert_eq!((total.paid_cases, total.cost_per_case_ore), (4, 2_475_000));
    assert_eq!(
        (total.used_ore, total.used_basis_points),
        (9_900_000, 990),
        "9.9 % used"
    );
    let counties: Vec<(&str, i64)> = usage
        .by_county
        .iter()
        .map(|county| {
            (
                county.county_code.as_str(),
                county.figures.unwrap_or_default().cases,
            )
        })
        .collect();
    assert_eq!(counties, [("03", 1), ("34", 7), ("46", 1), ("50", 2)]);
    let flows: Vec<(i32, i64)> = usage
        .by_flow
        .iter()
        .map(|flow| (flow.flow, flow.figures.unwrap_or_default().disbursed_ore))
        .collect();
    assert_eq!(
        flows,
        [
            (v1::Flow::Regular as i32, 4_400_000),
            (v1::Flow::Pilot as i32, 5_500_000)
        ]
    );
    let month: String =
        sqlx::query_scalar("SELECT to_char(now() AT TIME ZONE 'Europe/Oslo', 'YYYY-MM')")
            .fetch_one(&pool)
            .await?;
    assert_eq!(usage.by_month.len(), 1);
    assert_eq!(
        usage.by_month[0].month, month,
        "months are Europe/Oslo months of the entries"
    );
    assert_eq!(
        usage.rows.len(),
        5,
        "03, 34 regular, 34 pilot, 46, 50: {:?}",
        usage.rows
    );
    let pilot_in_innlandet = client
        .get_usage(v1::GetUsageRequest {
            budget_year: YEAR,
            county_code: "34".to_owned(),
            flow: Some(v1::Flow::Pilot as i32),
            month: month.clone(),
            account: scheme(),
        })
        .await?
        .into_inner();
    let pilot = pilot_in_innlandet.total.unwrap_or_default();
    assert_eq!(
        (pilot.cases, pilot.reserved_ore, pilot.disbursed_ore),
        (5, 15_000_000, 5_500_000)
    );
    let last_year_usage = client
        .get_usage(v1::GetUsageRequest {
            budget_year: LAST_YEAR,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        last_year_usage.by_month[0].month, month,
        "last year's money, released this month"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM ledger_entries \
             WHERE booked_month <> to_char(booked_at AT TIME ZONE 'Europe/Oslo', 'YYYY-MM')"
        )
        .await?,
        0,
        "the Oslo month computed in Rust agrees with PostgreSQL's time zone database"
    );

    // The ledger is append-only, and Reconcile sees a balance that drifted from it.
    for tamper in [
        "UPDATE ledger_entries SET amount_ore = amount_ore + 1",
        "DELETE FROM ledger_entries",
    ] {
        let refused = sqlx::query(tamper).execute(&pool).await.expect_err(tamper);
        assert!(refused.to_string().contains("immutable"), "{refused}");
    }
    sqlx::query("UPDATE appropriations SET reserved_ore = reserved_ore + 1 WHERE budget_year = $1")
        .bind(YEAR)
        .execute(&pool)
        .await?;
    let report = client
        .reconcile(v1::ReconcileRequest { budget_year: YEAR })
        .await?
        .into_inner();
    assert!(!report.consistent);
    let difference = &report.differences[0];
    assert_eq!(difference.figure, "reserved_ore");
    assert_eq!(difference.recorded_ore - difference.recomputed_ore, 1);
    assert_eq!(
        report.balances[0].reserved_ore, 24_800_000,
        "recomputed from the entries"
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_repeated_events_have_one_effect_and_bad_ones_are_dead_lettered()
-> anyhow::Result<()> {
    let (stack, mut client, pool) = start("redelivery").await?;
    let topic = budget_topic(&stack)?;
    let dlq = dead_letters(&stack)?;
    set_appropriation(&mut client, YEAR, 50_000_000).await?;
    let feed = &stack.feed;
    let mut events = 0;

    // Every request type, each delivered twice (the same envelope: a redelivery).
    let grant = Commitment::grant("03");
    let order = Commitment::order("34");
    let too_big = Commitment::grant("03");
    let released: Vec<(Commitment, Closing)> = vec![
        (Commitment::grant("03"), Closing::Withdrawn),
        (Commitment::grant("03"), Closing::Rejected),
        (Commitment::grant("03"), Closing::GrantCancelled),
        (Commitment::grant("03"), Closing::GrantExpired),
        (Commitment::order("34"), Closing::Declined),
        (Commitment::order("34"), Closing::OrderCancelled),
        (Commitment::order("34"), Closing::OrderExpired),
    ];
    let overdrawn = Commitment::grant("03");
    let mut requests = vec![
        (&grant, 2_000_000),
        (&order, 3_000_000),
        (&overdrawn, 1_000_000),
    ];
    requests.extend(
        released
            .iter()
            .map(|(commitment, _)| (commitment, 1_000_000)),
    );
    for (commitment, amount) in &requests {
        let envelope = commitment.request(feed, *amount, YEAR).await?;
        feed.publish_envelope(commitment.producer(), &commitment.case_id, &envelope)
            .await?;
        events += 1;
    }
    for (commitment, _) in &requests {
        commitment.wait_for(&client, Status::Reserved).await?;
    }
    let denied_envelope = too_big.request(feed, 60_000_000, YEAR).await?;
    feed.publish_envelope("applications", &too_big.case_id, &denied_envelope)
        .await?;
    events += 1;
    too_big.wait_for(&client, Status::Denied).await?;

    // Every release and disbursement type, each delivered twice too.
    let mut closings: Vec<(&Commitment, Closing)> = released
        .iter()
        .map(|(commitment, closing)| (commitment, *closing))
        .collect();
    closings.push((&grant, Closing::Refund(1_500_000)));
    closings.push((&order, Closing::Invoice(3_000_000)));
    for (commitment, closing) in &closings {
        let envelope = commitment.close(feed, *closing).await?;
        let producer = envelope.producer.clone();
        feed.publish_envelope(&producer, &commitment.case_id, &envelope)
            .await?;
        events += 1;
    }
    for (commitment, closing) in &closings {
        commitment.wait_for(&client, closing.final_status()).await?;
    }

    // Repeats (new event ids, the same content): a request gets its first answer again, a
    // release or a disbursement finds nothing left to do.
    grant.request(feed, 2_000_000, YEAR).await?;
    too_big.request(feed, 60_000_000, YEAR).await?;
    released[0].0.close(feed, Closing::Withdrawn).await?;
    events += 3;

    // Bad events: a repeat with other content, a disbursement larger than what is outstanding,
    // one for a commitment budget never reserved, an id that is no UUID, a payload that does
    // not decode. An event type budget has no handler for is skipped.
    grant.request(feed, 2_500_000, YEAR).await?;
    overdrawn.close(feed, Closing::Refund(1_000_001)).await?;
    Commitment::grant("03")
        .close(feed, Closing::Refund(1_000))
        .await?;
    let no_uuid = v1::GrantRequested {
        grant_id: "grant-1".to_owned(),
        case_id: new_id(),
        county_code: "03".to_owned(),
        amount_ore: 1,
        budget_year: YEAR,
        account: scheme(),
        ..Default::default()
    };
    feed.publish(
        "applications",
        &EventSubject::case(no_uuid.case_id.clone()),
        &no_uuid,
    )
    .await?;
    let mut garbled = ekb_platform::messaging::envelope::wrap(
        "applications",
        &EventSubject::case(new_id()),
        &v1::GrantRequested::default(),
    );
    garbled.payload = vec![0xff, 0xff, 0xff];
    feed.publish_envelope("applications", &garbled.aggregate_id, &garbled)
        .await?;
    let skipped = v1::ApplicationSubmitted {
        application_id: new_id(),
        case_id: new_id(),
        ..Default::default()
    };
    feed.publish(
        "applications",
        &EventSubject::case(skipped.case_id.clone()),
        &skipped,
    )
    .await?;
    events += 6;
    wait_for_inbox(&pool, events).await?;

    let dead = read(&dlq, 5, WAIT, Duration::from_millis(500)).await?;
    let mut reasons: Vec<String> = dead
        .iter()
        .filter_map(|message| message.reason.clone())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    for expected in [
        "was requested before with other content: amount_ore 2000000 before, 2500000 now",
        "disbursement of 1000001 øre is larger than the outstanding reservation of 1000000 øre",
        "which has no reservation",
        "GrantRequested.grant_id must be a UUID",
        "payload does not decode",
    ] {
        assert!(
            reasons.iter().any(|reason| reason.contains(expected)),
            "{expected:?} not among {reasons:?}"
        );
    }
    let outcomes: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome, count(*) FROM inbox GROUP BY outcome ORDER BY outcome")
            .fetch_all(&pool)
            .await?;
    assert_eq!(
        outcomes,
        [
            ("applied".to_owned(), events - 6),
            ("dead_lettered".to_owned(), 5),
            ("skipped_unknown_type".to_owned(), 1)
        ]
    );

    // One effect each: one reservation per commitment, one entry per movement.
    assert_eq!(count(&pool, "SELECT count(*) FROM reservations").await?, 11);
    let entries: Vec<(String, i64)> = sqlx::query_as(
        "SELECT movement, count(*) FROM ledger_entries GROUP BY movement ORDER BY movement",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        entries,
        [
            ("DISBURSE".to_owned(), 2),
            ("RELEASE".to_owned(), 8),
            ("RESERVE".to_owned(), 10)
        ],
        "10 reserved; 7 released, 2 disbursed with 1 remainder; nothing for the refused"
    );
    let overdrawn_now = overdrawn.wait_for(&client, Status::Reserved).await?;
    assert_eq!(
        overdrawn_now.outstanding_ore, 1_000_000,
        "the oversized payout was not booked"
    );
    assert_eq!(
        outbox_counts(&pool).await?,
        [
            ("FundsDenied".to_owned(), 2),
            ("FundsDisbursed".to_owned(), 2),
            ("FundsReleased".to_owned(), 8),
            ("FundsReserved".to_owned(), 11)
        ],
        "the repeated requests were answered again, nothing else twice"
    );
    let answers = read(&topic, 23, WAIT, Duration::from_millis(500)).await?;
    let reserved: Vec<v1::FundsReserved> = of_type(&answers);
    let grant_answers: Vec<&v1::FundsReserved> = reserved
        .iter()
        .filter(|answer| answer.case_id == grant.case_id)
        .collect();
    assert_eq!(grant_answers.len(), 2);
    assert_eq!(
        grant_answers[0], grant_answers[1],
        "a repeated request gets the same answer, the same reservation id"
    );
    let denials: Vec<v1::FundsDenied> = of_type(&answers);
    assert_eq!(denials.len(), 2);
    assert_eq!(denials[0], denials[1]);
    assert_eq!(
        denials[0].reason(),
        v1::FundsDeniedReason::InsufficientFunds
    );
    assert_eq!(
        denials[0].available_ore,
        50_000_000 - 2_000_000 - 3_000_000 - 8_000_000
    );
    assert_reconciled(&client).await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_are_answered_in_request_order_and_early_releases_are_kept()
-> anyhow::Result<()> {
    let (stack, mut client, pool) = start("pending").await?;
    let feed = &stack.feed;

    // January: grants are approved before the year's figure is set. Nothing is denied.
    let waiting = [
        (Commitment::grant("03"), 3_000_000),
        (Commitment::grant("46"), 4_000_000),
        (Commitment::grant("50"), 2_000_000),
        (Commitment::order("34"), 1_000_000),
    ];
    for (commitment, amount) in &waiting {
        commitment.request(feed, *amount, YEAR).await?;
        commitment.wait_for(&client, Status::Pending).await?;
    }
    // One is withdrawn while it waits: it is never answered and nothing is reserved.
    let withdrawn = Commitment::grant("03");
    withdrawn.request(feed, 1_000_000, YEAR).await?;
    withdrawn.wait_for(&client, Status::Pending).await?;
    withdrawn.close(feed, Closing::Withdrawn).await?;
    let gone = withdrawn.wait_for(&client, Status::Released).await?;
    assert_eq!((gone.reserved_ore, gone.answered_at), (0, None));
    // A release that comes before its request is kept; the request is then denied.
    let early = Commitment::order("34");
    early.close(feed, Closing::OrderCancelled).await?;
    wait_for_inbox(&pool, 7).await?;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM parked_releases").await?,
        1
    );
    early.request(feed, 1_000_000, YEAR).await?;
    let refused = early.wait_for(&client, Status::Denied).await?;
    assert_eq!(
        refused.denied_reason(),
        v1::FundsDeniedReason::InvalidRequest
    );
    assert_eq!(refused.reserved_ore, 0);

    let listed = client
        .list_reservations(v1::ListReservationsRequest {
            budget_year: YEAR,
            status: Some(Status::Pending as i32),
            page_size: 3,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        listed.reservations.len(),
        3,
        "a page of the pending requests"
    );
    assert_eq!(
        listed.reservations[0].commitment,
        Some(waiting[3].0.wire()),
        "newest first"
    );
    let rest = client
        .list_reservations(v1::ListReservationsRequest {
            budget_year: YEAR,
            status: Some(Status::Pending as i32),
            page_size: 3,
            page_token: listed.next_page_token.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(rest.reservations.len(), 1);
    assert_eq!(rest.reservations[0].commitment, Some(waiting[0].0.wire()));
    assert!(rest.next_page_token.is_empty());

    // The figure arrives: 8 MNOK. In request order: 3 and 4 fit, 2 does not (1 left), 1 fits.
    let set = set_appropriation(&mut client, YEAR, 8_000_000).await?;
    assert_eq!((set.committed_ore, set.available_ore), (8_000_000, 0));
    assert_eq!(set.crossed_threshold_percents, [50, 75, 90, 100]);
    let expected = [
        Status::Reserved,
        Status::Reserved,
        Status::Denied,
        Status::Reserved,
    ];
    for ((commitment, _), status) in waiting.iter().zip(expected) {
        commitment.wait_for(&client, status).await?;
    }
    let third = waiting[2]
        .0
        .reservation(&mut client)
        .await?
        .unwrap_or_default();
    assert_eq!(
        (third.denied_reason(), third.requested_ore),
        (v1::FundsDeniedReason::InsufficientFunds, 2_000_000)
    );
    // Answered in request order: the answers' outbox rows follow the requests.
    let answered: Vec<String> = sqlx::query_scalar(
        "SELECT replace(event_type, 'ekspertbistand.v1.', '') || ' ' || message_key FROM outbox \
         WHERE event_type IN ('ekspertbistand.v1.FundsReserved', 'ekspertbistand.v1.FundsDenied') \
         ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        answered,
        [
            format!("FundsDenied {}", early.case_id),
            format!("FundsReserved {}", waiting[0].0.case_id),
            format!("FundsReserved {}", waiting[1].0.case_id),
            format!("FundsDenied {}", waiting[2].0.case_id),
            format!("FundsReserved {}", waiting[3].0.case_id),
        ]
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM reservations WHERE status = 'PENDING'"
        )
        .await?,
        0
    );
    let still = withdrawn
        .reservation(&mut client)
        .await?
        .unwrap_or_default();
    assert_eq!(
        still.status(),
        Status::Released,
        "the withdrawn request stayed unanswered"
    );
    let topic_answers = read(&budget_topic(&stack)?, 9, WAIT, Duration::from_millis(500)).await?;
    assert_eq!(of_type::<v1::ThresholdCrossed>(&topic_answers).len(), 4);
    stack.stop().await
}

/// Sends `message` raw (bytes of our choosing) to `method` of budget; the status it gets.
async fn raw_call(
    stack: &ServiceUnderTest,
    method: &'static str,
    message: Vec<u8>,
) -> anyhow::Result<tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(stack.channel().await?);
    grpc.ready().await?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    match grpc
        .unary(tonic::Request::new(message), path, raw::Bytes)
        .await
    {
        Ok(_) => anyhow::bail!("{method} accepted the raw message"),
        Err(status) => Ok(status),
    }
}

/// A codec that sends bytes as they are.
mod raw {
    use prost::bytes::{Buf, BufMut};
    use tonic::{
        Status,
        codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    };

    #[derive(Debug, Clone, Copy, Default)]
    pub struct Bytes;

    impl Codec for Bytes {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Bytes;
        type Decoder = Bytes;

        fn encoder(&mut self) -> Bytes {
            Bytes
        }

        fn decoder(&mut self) -> Bytes {
            Bytes
        }
    }

    impl Encoder for Bytes {
        type Item = Vec<u8>;
        type Error = Status;

        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Bytes {
        type Item = Vec<u8>;
        type Error = Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let mut bytes = vec![0; src.remaining()];
            src.copy_to_slice(&mut bytes);
            Ok(Some(bytes))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_rpc_is_invalid_argument_naming_the_field_and_changes_nothing()
-> anyhow::Result<()> {
    let (stack, mut client, pool) = start("bad_input").await?;
    let unknown_account = Some(v1::BudgetAccount {
        chapter: 2650,
        post: 77,
    });
    let set = |change: fn(&mut v1::SetAppropriationRequest)| {
        let mut request = appropriation_request(YEAR, 1_000);
        change(&mut request);
        request
    };
    let set_cases: Vec<(v1::SetAppropriationRequest, &str)> = vec![
        (set(|r| r.budget_year = 0), "budget_year"),
        (set(|r| r.budget_year = 1999), "budget_year"),
        (set(|r| r.budget_year = 2101), "budget_year"),
        (set(|r| r.account = None), "account"),
        (
            set(|r| {
                r.account = Some(v1::BudgetAccount {
                    chapter: 2650,
                    post: 77,
                })
            }),
            "account",
        ),
        (
            set(|r| {
                r.account = Some(v1::BudgetAccount {
                    chapter: 0,
                    post: 76,
                })
            }),
            "account.chapter",
        ),
        (
            set(|r| {
                r.account = Some(v1::BudgetAccount {
                    chapter: 2650,
                    post: 0,
                })
            }),
            "account.post",
        ),
        (set(|r| r.appropriated_ore = -1), "appropriated_ore"),
        // Far above the ministry's whole chapter: refused, so no sum can overflow later.
        (set(|r| r.appropriated_ore = i64::MAX), "appropriated_ore"),
        (
            set(|r| r.appropriated_ore = ekb_domain::Money::MAX_APPROPRIATION.ore() + 1),
            "appropriated_ore",
        ),
        (
            set(|r| r.threshold_percents = vec![0]),
            "threshold_percents",
        ),
        (
            set(|r| r.threshold_percents = vec![50, 50]),
            "threshold_percents",
        ),
        (set(|r| r.note = "x".repeat(501)), "note"),
        (set(|r| r.note = "line\u{7}bell".to_owned()), "note"),
    ];
    let mut statuses: Vec<(tonic::Status, &str)> = Vec::new();
    for (request, field) in set_cases {
        statuses.push((
            client.set_appropriation(request).await.expect_err(field),
            field,
        ));
    }
    let get_cases = [
        (
            v1::GetAppropriationRequest {
                budget_year: 3000,
                account: scheme(),
            },
            "budget_year",
        ),
        (
            v1::GetAppropriationRequest {
                budget_year: YEAR,
                account: unknown_account,
            },
            "account",
        ),
        (
            v1::GetAppropriationRequest {
                budget_year: YEAR,
                account: None,
            },
            "account",
        ),
    ];
    for (request, field) in get_cases {
        statuses.push((
            client.get_appropriation(request).await.expect_err(field),
            field,
        ));
    }
    let usage_cases = [
        (
            v1::GetUsageRequest {
                budget_year: 0,
                ..Default::default()
            },
            "budget_year",
        ),
        (
            v1::GetUsageRequest {
                budget_year: YEAR,
                county_code: "3".into(),
                ..Default::default()
            },
            "county_code",
        ),
        (
            v1::GetUsageRequest {
                budget_year: YEAR,
                flow: Some(0),
                ..Default::default()
            },
            "flow",
        ),
        (
            v1::GetUsageRequest {
                budget_year: YEAR,
                month: "2026-13".into(),
                ..Default::default()
            },
            "month",
        ),
        (
            v1::GetUsageRequest {
                budget_year: YEAR,
                account: unknown_account,
                ..Default::default()
            },
            "account",
        ),
    ];
    for (request, field) in usage_cases {
        statuses.push((client.get_usage(request).await.expect_err(field), field));
    }
    let list = |change: fn(&mut v1::ListReservationsRequest)| {
        let mut request = v1::ListReservationsRequest {
            budget_year: YEAR,
            ..Default::default()
        };
        change(&mut request);
        request
    };
    let list_cases = [
        (list(|r| r.budget_year = 0), "budget_year"),
        (list(|r| r.status = Some(0)), "status"),
        (list(|r| r.case_id = "not-a-case".into()), "case_id"),
        (list(|r| r.page_size = -1), "page_size"),
        (list(|r| r.page_token = "zz".into()), "page_token"),
    ];
    for (request, field) in list_cases {
        statuses.push((
            client.list_reservations(request).await.expect_err(field),
            field,
        ));
    }
    let reservation_cases = [
        (v1::GetReservationRequest { commitment: None }, "commitment"),
        (
            v1::GetReservationRequest {
                commitment: Some(v1::Commitment {
                    kind: 1,
                    commitment_id: String::new(),
                }),
            },
            "commitment.commitment_id",
        ),
        (
            v1::GetReservationRequest {
                commitment: Some(v1::Commitment {
                    kind: 0,
                    commitment_id: new_id(),
                }),
            },
            "commitment.kind",
        ),
    ];
    for (request, field) in reservation_cases {
        statuses.push((
            client.get_reservation(request).await.expect_err(field),
            field,
        ));
    }
    statuses.push((
        client
            .reconcile(v1::ReconcileRequest { budget_year: 0 })
            .await
            .expect_err("year 0"),
        "budget_year",
    ));
    for (status, field) in &statuses {
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            violated_fields(status)
                .iter()
                .any(|violated| violated == field),
            "{field} not named in {:?}",
            violated_fields(status)
        );
    }

    // A non-integer amount cannot be written in the contract (int64 øre): a client that sends
    // a double in its place is refused by the decoder, and nothing is stored.
    let mut bytes = v1::SetAppropriationRequest {
        appropriated_ore: 0,
        ..appropriation_request(YEAR, 0)
    }
    .encode_to_vec();
    bytes.push(3 << 3 | 1);
    bytes.extend_from_slice(&1.5_f64.to_le_bytes());
    let refused = raw_call(
        &stack,
        "/ekspertbistand.v1.BudgetService/SetAppropriation",
        bytes,
    )
    .await?;
    assert_ne!(refused.code(), Code::Ok);
    eprintln!(
        "a double where int64 øre belong is refused with {:?}",
        refused.code()
    );

    for table in [
        "SELECT count(*) FROM appropriations",
        "SELECT count(*) FROM appropriation_changes",
        "SELECT count(*) FROM reservations",
        "SELECT count(*) FROM ledger_entries",
        "SELECT count(*) FROM outbox",
    ] {
        assert_eq!(count(&pool, table).await?, 0, "{table}");
    }
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_budget_admin_sets_appropriations_and_readers_read() -> anyhow::Result<()> {
    let issuer = TestIssuer::start().await?;
    let stack =
        ServiceUnderTest::start_with::<Budget>("roles", |settings| settings.with_auth(&issuer))
            .await?;
    let mut client = BudgetClient::new(stack.channel().await?);
    let admin = issuer.token("budget-office", &["budget-admin"]);
    let reader = issuer.token("evaluation", &["budget-reader"]);
    let stranger = issuer.token("registry", &["registry-admin"]);

    let denied = client
        .set_appropriation(with_bearer(appropriation_request(YEAR, 1_000), &reader))
        .await
        .expect_err("a reader may not set");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = client
        .set_appropriation(appropriation_request(YEAR, 1_000))
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    client
        .set_appropriation(with_bearer(appropriation_request(YEAR, 1_000), &admin))
        .await?;
    for token in [&reader, &admin] {
        let get = v1::GetAppropriationRequest {
            budget_year: YEAR,
            account: scheme(),
        };
        client.get_appropriation(with_bearer(get, token)).await?;
        let usage = v1::GetUsageRequest {
            budget_year: YEAR,
            ..Default::default()
        };
        client.get_usage(with_bearer(usage, token)).await?;
        let list = v1::ListReservationsRequest {
            budget_year: YEAR,
            ..Default::default()
        };
        client.list_reservations(with_bearer(list, token)).await?;
        client
            .reconcile(with_bearer(
                v1::ReconcileRequest { budget_year: YEAR },
                token,
            ))
            .await?;
        let unknown = v1::GetReservationRequest {
            commitment: Some(Commitment::grant("03").wire()),
        };
        let missing = client
            .get_reservation(with_bearer(unknown, token))
            .await
            .expect_err("no such commitment");
        assert_eq!(missing.code(), Code::NotFound, "allowed in, and not found");
    }
    let outsider = client
        .get_usage(with_bearer(
            v1::GetUsageRequest {
                budget_year: YEAR,
                ..Default::default()
            },
            &stranger,
        ))
        .await
        .expect_err("another service's role");
    assert_eq!(outsider.code(), Code::PermissionDenied);
    stack.stop().await
}

/// How many requests the overdraw tests send, and how many fit.
const REQUESTS: usize = 1_000;
const FITTING: usize = 500;
const AMOUNT: i64 = 2_000_000;

/// Publishes `REQUESTS` GrantRequested for distinct cases (so over every partition) at once,
/// samples the available amount while budget answers them, and checks the outcome: exactly
/// `FITTING` reserved, the rest denied, never below zero, the ledger summing to the
/// appropriation to the øre.
async fn never_overdrawn(
    feed: &EventFeed,
    client: &BudgetClient,
    pool: &PgPool,
) -> anyhow::Result<()> {
    set_appropriation(&mut client.clone(), YEAR, AMOUNT * FITTING as i64).await?;
    let done = Arc::new(AtomicBool::new(false));
    let lowest = Arc::new(AtomicI64::new(i64::MAX));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, lowest, samples) = (done.clone(), lowest.clone(), samples.clone());
        let (mut client, pool) = (client.clone(), pool.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let seen = appropriation(&mut client, YEAR).await?.available_ore;
                let in_table: i64 = sqlx::query_scalar(
                    "SELECT appropriated_ore - (reserved_ore - released_ore) FROM appropriations",
                )
                .fetch_one(&pool)
                .await?;
                lowest.fetch_min(seen.min(in_table), Ordering::SeqCst);
                samples.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(())
        })
    };
    let commitments: Vec<Commitment> = (0..REQUESTS).map(|_| Commitment::grant("34")).collect();
    for batch in commitments.chunks(100) {
        futures::future::try_join_all(
            batch
                .iter()
                .map(|commitment| commitment.request(feed, AMOUNT, YEAR)),
        )
        .await?;
    }
    let started = Instant::now();
    eventually(
        "every request answered",
        Duration::from_secs(50),
        || async {
            let answered = count(
                pool,
                "SELECT count(*) FROM reservations WHERE status <> 'PENDING'",
            )
            .await?;
            Ok((answered == REQUESTS as i64).then_some(()))
        },
    )
    .await?;
    eprintln!("{REQUESTS} requests answered in {:?}", started.elapsed());
    done.store(true, Ordering::SeqCst);
    sampler.await??;

    assert!(
        samples.load(Ordering::SeqCst) >= 5,
        "sampled while consuming"
    );
    assert!(
        lowest.load(Ordering::SeqCst) >= 0,
        "available went below zero: {}",
        lowest.load(Ordering::SeqCst)
    );
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status || coalesce(' ' || denied_reason, ''), count(*) FROM reservations \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    assert_eq!(
        statuses,
        [
            (
                "DENIED INSUFFICIENT_FUNDS".to_owned(),
                (REQUESTS - FITTING) as i64
            ),
            ("RESERVED".to_owned(), FITTING as i64)
        ]
    );
    let reserved = count(
        pool,
        "SELECT sum(amount_ore)::bigint FROM ledger_entries WHERE movement = 'RESERVE'",
    )
    .await?;
    let appropriated = count(pool, "SELECT appropriated_ore FROM appropriations").await?;
    assert_eq!(
        reserved, appropriated,
        "the ledger sums to the appropriation to the øre"
    );
    assert_eq!(
        appropriation(&mut client.clone(), YEAR)
            .await?
            .available_ore,
        0
    );
    assert_eq!(
        count(pool, "SELECT count(DISTINCT kafka_partition) FROM inbox").await?,
        4,
        "requests came on every partition"
    );
    assert_reconciled(client).await?;
    assert_eq!(
        outbox_counts(pool).await?,
        [
            ("FundsDenied".to_owned(), (REQUESTS - FITTING) as i64),
            ("FundsReserved".to_owned(), FITTING as i64),
            ("ThresholdCrossed".to_owned(), 4)
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_never_overdraw_the_appropriation() -> anyhow::Result<()> {
    let (stack, client, pool) = start("overdraw").await?;
    let topic = budget_topic(&stack)?;
    never_overdrawn(&stack.feed, &client, &pool).await?;
    let published = read(&topic, REQUESTS + 4, WAIT, Duration::from_millis(500)).await?;
    assert_eq!(of_type::<v1::FundsReserved>(&published).len(), FITTING);
    assert_eq!(
        of_type::<v1::FundsDenied>(&published).len(),
        REQUESTS - FITTING
    );
    let levels: Vec<i32> = of_type::<v1::ThresholdCrossed>(&published)
        .iter()
        .map(|crossed| crossed.threshold_percent)
        .collect();
    assert_eq!(levels, [50, 75, 90, 100], "each level exactly once");
    stack.stop().await
}

/// Budget as processes on one database and one consumer group.
struct Replicas {
    broker: TestBroker,
    settings: TestSettings,
    feed: EventFeed,
    pool: PgPool,
    log_dir: std::path::PathBuf,
}

impl Replicas {
    async fn prepare(purpose: &str, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let broker = TestBroker::start()?;
        let prefix = unique_topic_prefix();
        let database = fresh_database(purpose).await?;
        let settings = extra.iter().fold(
            TestSettings::new(&database.url, broker.bootstrap_servers(), &prefix),
            |settings, (key, value)| settings.with(key, *value),
        );
        let feed = EventFeed::new(broker.bootstrap_servers(), &prefix)?;
        let pool = PgPool::connect(&database.url).await?;
        let log_dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-logs");
        Ok(Replicas {
            broker,
            settings,
            feed,
            pool,
            log_dir,
        })
    }

    /// The topic prefix of this test.
    fn settings_prefix(&self) -> String {
        self.settings
            .get("kafka.topic_prefix")
            .unwrap_or_default()
            .to_owned()
    }

    async fn spawn(&self) -> anyhow::Result<ServiceProcess> {
        let mut process = ServiceProcess::spawn("budget", &self.settings, &self.log_dir)?;
        process.wait_until_serving(Duration::from_secs(30)).await?;
        Ok(process)
    }
}

async fn client_of(process: &ServiceProcess) -> anyhow::Result<BudgetClient> {
    Ok(BudgetClient::connect(process.url()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_in_one_consumer_group_never_overdraw_the_appropriation() -> anyhow::Result<()>
{
    let replicas = Replicas::prepare("two_replicas", &[]).await?;
    let mut first = replicas.spawn().await?;
    let mut second = replicas.spawn().await?;
    // Wait until both consume. Releases of commitments budget never heard of move no money
    // (they are kept as parked releases), so they serve as the warm-up.
    let both_consume =
        |process: &ServiceProcess| process.log().contains("release before budget received");
    eventually("both replicas to consume", WAIT, || async {
        for _ in 0..20 {
            Commitment::grant("03")
                .close(&replicas.feed, Closing::Withdrawn)
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok((both_consume(&first) && both_consume(&second)).then_some(()))
    })
    .await?;

    let client = client_of(&first).await?;
    never_overdrawn(&replicas.feed, &client, &replicas.pool).await?;
    let answered_by = |process: &ServiceProcess| {
        process
            .log()
            .lines()
            .filter(|line| line.contains("funds reserved") || line.contains("funds denied"))
            .count()
    };
    let (by_first, by_second) = (answered_by(&first), answered_by(&second));
    eprintln!("answered by the first replica: {by_first}, by the second: {by_second}");
    assert!(
        by_first > 0 && by_second > 0,
        "both replicas answered requests"
    );
    assert!(by_first + by_second >= REQUESTS);
    for process in [&mut first, &mut second] {
        let status = process.stop(Duration::from_secs(20)).await?;
        assert!(status.success(), "{}", process.log_tail(20));
    }
    drop(replicas.broker);
    Ok(())
}

/// The value of counter `name` with `label` in the Prometheus text at `addr`.
async fn counter(addr: std::net::SocketAddr, name: &str, label: &str) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_ledger_commit_and_the_offset_commit_applies_each_event_once()
-> anyhow::Result<()> {
    const SENT: i64 = 300;
    let replicas = Replicas::prepare("crash", &[("outbox.lease", "35s")]).await?;
    let first = replicas.spawn().await?;
    set_appropriation(&mut client_of(&first).await?, YEAR, AMOUNT * SENT).await?;
    let commitments: Vec<Commitment> = (0..SENT).map(|_| Commitment::grant("34")).collect();
    for batch in commitments.chunks(100) {
        futures::future::try_join_all(
            batch
                .iter()
                .map(|commitment| commitment.request(&replicas.feed, AMOUNT, YEAR)),
        )
        .await?;
    }
    // kill -9 while it consumes: events applied in the last second have committed their
    // ledger rows but not their offsets (auto-commit runs every second).
    eventually("the first replica to answer some", WAIT, || async {
        Ok((count(&replicas.pool, "SELECT count(*) FROM reservations").await? >= 40).then_some(()))
    })
    .await?;
    let killed = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(first.pid().to_string())
        .status()?;
    assert!(killed.success());
    let at_kill = count(&replicas.pool, "SELECT count(*) FROM reservations").await?;
    drop(first);
    eprintln!("killed after {at_kill} of {SENT} answers");

    let second = replicas.spawn().await?;
    eventually(
        "every request answered after the restart",
        Duration::from_secs(50),
        || async {
            Ok(
                (count(&replicas.pool, "SELECT count(*) FROM reservations").await? == SENT)
                    .then_some(()),
            )
        },
    )
    .await?;
    let duplicates = eventually("the redelivery to be counted", WAIT, || async {
        let seen = counter(
            second.metrics_addr,
            "ekb_consumer_events_total",
            "outcome=\"duplicate\"",
        )
        .await?;
        Ok((seen > 0.0).then_some(seen))
    })
    .await?;
    eprintln!("{duplicates} redelivered events were recognised and skipped");
    for (sql, expected) in [
        (
            "SELECT count(*) FROM reservations WHERE status = 'RESERVED'",
            SENT,
        ),
        ("SELECT count(*) FROM ledger_entries", SENT),
        ("SELECT count(*) FROM inbox", SENT),
        (
            "SELECT count(*) FROM outbox WHERE event_type = 'ekspertbistand.v1.FundsReserved'",
            SENT,
        ),
    ] {
        assert_eq!(count(&replicas.pool, sql).await?, expected, "{sql}");
    }
    assert_reconciled(&client_of(&second).await?).await?;
    Ok(())
}

/// An operator's bad day: 90 concurrent grant requests while every backend of budget's database
/// is terminated five times (a failover, a restart of PostgreSQL). A lost connection is no fault
/// of an event: none is dead-lettered, every request is answered, exactly as many are reserved as
/// fit, and no RPC asked meanwhile answers INTERNAL (UNAVAILABLE with RetryInfo at most).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_database_connections_cost_retries_never_dead_letters_or_internal_errors()
-> anyhow::Result<()> {
    use ekb_testkit::faults::{BackendTerminator, metric_in_process};
    const BURST: usize = 90;
    const FIT: i64 = 60;
    let (stack, client, pool) = start("terminated").await?;
    set_appropriation(&mut client.clone(), YEAR, AMOUNT * FIT).await?;

    // RPCs all through the fault, recording every answer's code and the longest answer.
    let done = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (done, mut client) = (done.clone(), client.clone());
            tokio::spawn(async move {
                let mut answers: Vec<(Code, Duration, bool)> = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let answer = client
                        .get_usage(v1::GetUsageRequest {
                            budget_year: YEAR,
                            ..Default::default()
                        })
                        .await;
                    let (code, retry_info) = match answer {
                        Ok(_) => (Code::Ok, false),
                        Err(status) => (
                            status.code(),
                            status.get_error_details().retry_info().is_some(),
                        ),
                    };
                    answers.push((code, started.elapsed(), retry_info));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                answers
            })
        })
        .collect();

    // First, for certain, mid-handling: the appropriation row is locked, so the consumer's
    // transaction waits inside its handler; then every backend but the lock's is terminated.
    let mut blocker = pool.begin().await?;
    sqlx::query("SELECT 1 FROM appropriations FOR UPDATE")
        .execute(&mut *blocker)
        .await?;
    let started = Instant::now();
    let commitments: Vec<Commitment> = (0..BURST).map(|_| Commitment::grant("34")).collect();
    futures::future::try_join_all(
        commitments
            .iter()
            .map(|commitment| commitment.request(&stack.feed, AMOUNT, YEAR)),
    )
    .await?;
    eventually("a handler waiting inside its transaction", WAIT, || async {
        let waiting = count(
            &pool,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await?;
        Ok((waiting > 0).then_some(()))
    })
    .await?;
    let mid_handling = ekb_testkit::faults::terminate_others(&mut blocker).await?;
    blocker.commit().await?;
    // Then four more times while budget works through the burst.
    let terminator = BackendTerminator::start(stack.database_url(), 4, Duration::from_millis(300));
    let terminated = terminator.finish().await? + mid_handling;
    eventually(
        "every request answered",
        Duration::from_secs(60),
        || async {
            let answered = count(
                &pool,
                "SELECT count(*) FROM reservations WHERE status <> 'PENDING'",
            )
            .await?;
            Ok((answered == BURST as i64).then_some(()))
        },
    )
    .await?;
    let all_answered = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for caller in callers {
        answers.extend(caller.await?);
    }

    let retried = metric_in_process("ekb_consumer_transient_failures_total", "")?;
    let failed_otherwise = metric_in_process("ekb_consumer_retries_total", "")?;
    let dead_lettered = metric_in_process("ekb_consumer_dead_lettered_total", "")?;
    let unavailable = answers
        .iter()
        .filter(|(code, _, _)| *code == Code::Unavailable)
        .count();
    let longest = answers
        .iter()
        .map(|(_, took, _)| *took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{terminated} backends terminated; {BURST} requests answered in {all_answered:?}; \
         {retried} consumer retries of lost connections, {failed_otherwise} of other failures; \
         {dead_lettered} dead letters; \
         {} RPCs, {unavailable} UNAVAILABLE, longest answer {longest:?}",
        answers.len()
    );
    assert!(terminated >= 5, "backends were terminated ({terminated})");
    assert!(
        retried >= 1.0,
        "the consumer retried the transaction terminated mid-handling"
    );
    assert_eq!(
        failed_otherwise, 0.0,
        "a lost connection is not counted as a failure"
    );
    assert_eq!(dead_lettered, 0.0, "a lost connection never dead-letters");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM inbox WHERE outcome = 'dead_lettered'"
        )
        .await?,
        0
    );
    for (code, _, retry_info) in &answers {
        assert!(
            matches!(code, Code::Ok | Code::Unavailable),
            "an RPC answered {code:?} during the fault"
        );
        if *code == Code::Unavailable {
            assert!(retry_info, "UNAVAILABLE carries RetryInfo");
        }
    }
    assert!(answers.iter().any(|(code, _, _)| *code == Code::Ok));
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM reservations GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await?;
    assert_eq!(
        statuses,
        [
            ("DENIED".to_owned(), BURST as i64 - FIT),
            ("RESERVED".to_owned(), FIT)
        ]
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM inbox").await?,
        BURST as i64
    );
    assert_reconciled(&client).await?;
    stack.stop().await
}

/// Two replicas; the one publishing budget's outbox is killed with `kill -9` under load. Its
/// database session ends with it, so the other replica takes over publishing within seconds,
/// not when the lease (60 s) expires: no event waits in the outbox for more than 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_publisher_hands_the_outbox_over_within_seconds() -> anyhow::Result<()> {
    let replicas = Replicas::prepare("handover", &[]).await?;
    let first = replicas.spawn().await?;
    let second = replicas.spawn().await?;
    set_appropriation(&mut client_of(&first).await?, YEAR, AMOUNT * 10_000).await?;
    let holder_of = |process: &ServiceProcess| {
        let addr = process.metrics_addr;
        async move { Ok::<_, anyhow::Error>(counter(addr, "ekb_outbox_lease_held", "").await? == 1.0) }
    };
    let load = {
        let feed = replicas.feed.clone();
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(8);
            let mut sent = 0_i64;
            while Instant::now() < until {
                Commitment::grant("34").request(&feed, AMOUNT, YEAR).await?;
                sent += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(sent)
        })
    };
    let holder_is_first = eventually("one replica to hold the lease", WAIT, || async {
        Ok(
            match (holder_of(&first).await?, holder_of(&second).await?) {
                (true, false) => Some(true),
                (false, true) => Some(false),
                _ => None,
            },
        )
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (holder, mut survivor) = if holder_is_first {
        (first, second)
    } else {
        (second, first)
    };
    let killed = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(holder.pid().to_string())
        .status()?;
    assert!(killed.success());
    let killed_at: time::OffsetDateTime = sqlx::query_scalar("SELECT now()")
        .fetch_one(&replicas.pool)
        .await?;
    drop(holder);
    let sent = load.await??;
    eventually(
        "every request answered and published",
        Duration::from_secs(60),
        || async {
            let answered = count(&replicas.pool, "SELECT count(*) FROM reservations").await?;
            let unpublished = count(
                &replicas.pool,
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            )
            .await?;
            Ok((answered == sent && unpublished == 0).then_some(()))
        },
    )
    .await?;
    let (longest_wait, rows_around_kill): (f64, i64) = sqlx::query_as(
        "SELECT COALESCE(max(EXTRACT(EPOCH FROM published_at - created_at)), 0)::float8, count(*) \
         FROM outbox WHERE created_at >= $1 - interval '3 seconds'",
    )
    .bind(killed_at)
    .fetch_one(&replicas.pool)
    .await?;
    eprintln!(
        "{sent} requests; after kill -9 of the publisher, the longest wait of an event in the \
         outbox was {longest_wait:.2} s ({rows_around_kill} events around the kill)"
    );
    assert!(
        rows_around_kill > 0,
        "events were published around the kill"
    );
    assert!(
        longest_wait < 5.0,
        "an event waited {longest_wait:.2} s for the new publisher"
    );
    assert!(holder_of(&survivor).await?, "the survivor publishes");
    assert!(
        survivor.log().contains("took the publisher's lock"),
        "the survivor took over by the lock, not by the lease's expiry"
    );
    let status = survivor.stop(Duration::from_secs(20)).await?;
    assert!(status.success(), "{}", survivor.log_tail(20));
    Ok(())
}

/// Runs `budget dead-letters <args>` with the replicas' configuration, as an operator would in a
/// pod; returns whether it succeeded and what it printed.
fn operator_command(replicas: &Replicas, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let output = std::process::Command::new(ekb_testkit::binaries::workspace_binary("budget")?)
        .arg("dead-letters")
        .args(args)
        .envs(replicas.settings.as_env())
        .stdin(std::process::Stdio::null())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

/// An operator lists budget's dead letters with their reasons and replays them: a money event
/// dead-lettered by an earlier fault is applied exactly once however often it is replayed, and a
/// message that can never be applied is dead-lettered again, not crashed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_with_their_reasons_and_replayed_once() -> anyhow::Result<()> {
    use rdkafka::{
        message::{Header, OwnedHeaders},
        producer::{FutureProducer, FutureRecord},
    };
    let replicas = Replicas::prepare("replay", &[]).await?;
    let process = replicas.spawn().await?;
    set_appropriation(&mut client_of(&process).await?, YEAR, AMOUNT * 10).await?;
    let listed = |expected: usize| {
        let replicas = &replicas;
        async move {
            let (ok, text) = operator_command(replicas, &["list"])?;
            anyhow::ensure!(ok, "list failed: {text}");
            Ok(text
                .contains(&format!("{expected} dead letter(s) of budget"))
                .then_some(text))
        }
    };

    // 1. A message that is no envelope: dead-lettered by budget itself.
    let commitment = Commitment::grant("34");
    replicas
        .feed
        .publish_bytes(
            "applications",
            &commitment.case_id,
            &v1::GrantRequested::full_name(),
            b"\xff not an envelope",
        )
        .await?;
    eventually("the poison message on the dead-letter topic", WAIT, || {
        listed(1)
    })
    .await?;

    // 2. A valid GrantRequested that an earlier fault dead-lettered (as a version before this
    //    one did with a lost connection): on the dead-letter topic, `dead_lettered` in the inbox.
    let grant = v1::GrantRequested {
        grant_id: commitment.id.clone(),
        application_id: new_id(),
        case_id: commitment.case_id.clone(),
        employer_organisation_number: "974760673".to_owned(),
        county_code: "34".to_owned(),
        amount_ore: AMOUNT,
        budget_year: YEAR,
        account: scheme(),
        requested_at: None,
    };
    let envelope =
        ekb_platform::messaging::envelope::wrap("applications", &commitment.subject(), &grant);
    let reason = "failed 3 times, last: error returned from database: terminating connection";
    let dlq_topic = dead_letter_topic_for(&replicas.settings_prefix(), "budget");
    let producer: FutureProducer =
        ekb_testkit::broker::test_client_config(replicas.broker.bootstrap_servers()).create()?;
    let source_topic =
        ekb_platform::messaging::topic_for(&replicas.settings_prefix(), "applications");
    let headers = [
        ("ekb-event-type", envelope.event_type.as_str()),
        ("ekb-dlq-reason", reason),
        ("ekb-dlq-source-topic", source_topic.as_str()),
        ("ekb-dlq-attempts", "3"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        })
    });
    let payload = envelope.encode_to_vec();
    producer
        .send(
            FutureRecord::to(&dlq_topic)
                .key(commitment.case_id.as_bytes())
                .payload(&payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)?;
    sqlx::query(
        "INSERT INTO inbox (event_id, event_type, topic, kafka_partition, kafka_offset, outcome, detail) \
         VALUES ($1::uuid, $2, $3, 0, 0, 'dead_lettered', $4)",
    )
    .bind(&envelope.event_id)
    .bind(&envelope.event_type)
    .bind(&source_topic)
    .bind(reason)
    .execute(&replicas.pool)
    .await?;

    // The list shows both, with reasons and state.
    let text = eventually("both dead letters listed", WAIT, || listed(2)).await?;
    eprintln!("{text}");
    let line_of = |text: &str, needle: &str| {
        text.lines()
            .find(|line| line.contains(needle))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let valid = line_of(&text, &envelope.event_id);
    assert!(valid.contains("state=dead_lettered"), "{valid}");
    assert!(valid.contains("reason=failed 3 times"), "{valid}");
    assert!(
        valid.contains("ekspertbistand.v1.GrantRequested"),
        "{valid}"
    );
    assert!(
        line_of(&text, "reason=envelope does not decode").contains("attempts=1"),
        "{text}"
    );

    // An unknown event id replays nothing and says so.
    let (ok, text) = operator_command(&replicas, &["replay", "--event-id", &new_id()])?;
    assert!(
        !ok && text.contains("no dead letter of budget has event id"),
        "{text}"
    );

    // Replayed: reserved once. Replayed again (and everything since the start, the poison
    // message too): still once; the poison message is dead-lettered again.
    let (ok, text) = operator_command(&replicas, &["replay", "--event-id", &envelope.event_id])?;
    assert!(ok, "{text}");
    eventually("the replayed request answered", WAIT, || async {
        Ok((count(&replicas.pool, "SELECT count(*) FROM reservations").await? == 1).then_some(()))
    })
    .await?;
    let (ok, text) = operator_command(&replicas, &["replay", "--since", "2000-01-01T00:00:00Z"])?;
    assert!(ok && text.contains("replayed 2 dead letter(s)"), "{text}");
    eventually("the poison message dead-lettered again", WAIT, || listed(3)).await?;
    let duplicates = eventually(
        "the second replay recognised as a duplicate",
        WAIT,
        || async {
            let seen = counter(
                process.metrics_addr,
                "ekb_consumer_events_total",
                "outcome=\"duplicate\"",
            )
            .await?;
            Ok((seen >= 1.0).then_some(seen))
        },
    )
    .await?;
    assert_eq!(duplicates, 1.0);
    for (sql, expected) in [
        (
            "SELECT count(*) FROM reservations WHERE status = 'RESERVED'",
            1,
        ),
        ("SELECT count(*) FROM ledger_entries", 1),
        ("SELECT count(*) FROM inbox WHERE outcome = 'applied'", 1),
    ] {
        assert_eq!(count(&replicas.pool, sql).await?, expected, "{sql}");
    }
    let (_, text) = operator_command(&replicas, &["list"])?;
    assert!(
        line_of(&text, &envelope.event_id).contains("state=applied"),
        "{text}"
    );
    assert_reconciled(&client_of(&process).await?).await?;
    Ok(())
}

#[test]
fn the_catalog_lists_this_service_with_the_roles_its_rpcs_accept() -> anyhow::Result<()> {
    ekb_testkit::catalog::check_entry_of::<ekb_budget::Budget>()
}
