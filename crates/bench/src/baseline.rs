//! The pgbench baseline: how many OpenCase-shaped transactions PostgreSQL itself completes on
//! this machine at the same concurrency, with no service in between. It answers "how much does
//! the service cost on top of its database?", which a bare requests-per-second figure cannot.
//!
//! The transaction is the one OpenCase commits through the platform's unit of work: `BEGIN`,
//! insert the case (`ON CONFLICT (request_id) DO NOTHING`), insert its outbox row, `COMMIT` —
//! four statements and four round trips, as routing sends them — on a fresh database migrated
//! by routing's own migrations (so tables, indexes, constraints and the outbox's wake-up
//! trigger are identical), with the column values copied from a case the service just stored
//! and an event it published (same payload bytes, same trace context), only the ids fresh.
//! pgbench runs with prepared statements, as sqlx uses them ([`crate::pgbench`]).

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::Context;
use ekb_platform::messaging::envelope::EVENT_TYPE_HEADER;
use ekb_testkit::{
    broker::topic_reader,
    postgres::{TestDatabase, fresh_database},
};
use rdkafka::{Message, message::Headers};
use sqlx::{Connection, PgConnection, postgres::PgPoolOptions};

use crate::{
    options::Options,
    pgbench::{self, PgbenchResult},
    postgres,
    workload::PILOT_COUNTY,
};

/// How long reading back one published event may take (a new consumer group on the mock
/// broker waits about 3 s for its assignment).
const EVENT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One case row and one outbox row as routing wrote them, to copy into the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSample {
    facts_fingerprint: String,
    employer_organisation_number: String,
    municipality_number: String,
    county_code: String,
    competence_area: Option<String>,
    case_date: String,
    flow: String,
    reason: String,
    topic: String,
    event_type: String,
    payload: Vec<u8>,
    trace_context: String,
}

impl RowSample {
    /// Size of the outbox payload in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// Reads the latest PILOT case of routing's database, and the first CaseRouted routing
    /// published on `topic`, as the broker delivered it.
    pub async fn read(routing_db_url: &str, brokers: &str, topic: &str) -> anyhow::Result<Self> {
        let mut connection = PgConnection::connect(routing_db_url).await?;
        let case: (
            String,
            String,
            String,
            String,
            Option<String>,
            String,
            String,
            String,
        ) = sqlx::query_as(
            "SELECT facts_fingerprint, employer_organisation_number, municipality_number, \
                 county_code, competence_area, case_date::text, flow, reason \
                 FROM cases WHERE flow = 'PILOT' ORDER BY opened_at DESC LIMIT 1",
        )
        .fetch_optional(&mut connection)
        .await?
        .context("routing stored no PILOT case")?;
        let event = published_event(brokers, topic).await?;
        connection.close().await?;
        Ok(RowSample {
            facts_fingerprint: case.0,
            employer_organisation_number: case.1,
            municipality_number: case.2,
            county_code: case.3,
            competence_area: case.4,
            case_date: case.5,
            flow: case.6,
            reason: case.7,
            topic: topic.to_owned(),
            event_type: event.event_type,
            payload: event.payload,
            trace_context: event.trace_context,
        })
    }
}

/// What the baseline copies of one published event.
struct PublishedEvent {
    event_type: String,
    payload: Vec<u8>,
    /// The trace headers as the JSON object the outbox stores.
    trace_context: String,
}

/// The first event on `topic`, read back from the broker.
async fn published_event(brokers: &str, topic: &str) -> anyhow::Result<PublishedEvent> {
    let reader = topic_reader(brokers, topic)?;
    let message = tokio::time::timeout(EVENT_READ_TIMEOUT, reader.recv())
        .await
        .with_context(|| format!("no event on {topic} within {EVENT_READ_TIMEOUT:?}"))??;
    let mut event_type = None;
    let mut trace_context = BTreeMap::new();
    for header in message.headers().iter().flat_map(|headers| headers.iter()) {
        let value = String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
        match header.key {
            EVENT_TYPE_HEADER => event_type = Some(value),
            "traceparent" | "tracestate" => {
                trace_context.insert(header.key.to_owned(), value);
            }
            _ => {}
        }
    }
    Ok(PublishedEvent {
        event_type: event_type.context("the event has no event-type header")?,
        payload: message.payload().unwrap_or_default().to_vec(),
        trace_context: serde_json::to_string(&trace_context)?,
    })
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A bytea literal in hex form.
fn bytea_literal(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("'\\x{hex}'::bytea")
}

/// The pgbench script: OpenCase's unit of work for one case, with values copied from
/// `sample`: `BEGIN`, the case insert, the outbox insert, `COMMIT`, one statement per line, as
/// routing sends them (`handlers::open_case`: `case_store::insert`, then `UnitOfWork::publish`
/// and `commit`). Only the ids are fresh and the opening time is the server's.
fn script(sample: &RowSample) -> String {
    format!(
        "BEGIN;\n{};\nINSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ({});\nCOMMIT;\n",
        case_insert(sample),
        outbox_values(sample),
    )
}

/// The outbox columns the script fills, in the order of [`outbox_values`] (the platform's
/// `Outbox::record`).
const OUTBOX_COLUMNS: &str = "event_id, topic, message_key, event_type, payload, trace_context";

/// The insert of one case with `sample`'s values, fresh ids and the server's time, skipped if
/// the request id is taken (routing's `case_store::insert`).
fn case_insert(sample: &RowSample) -> String {
    format!(
        "INSERT INTO cases (case_id, request_id, opened_at, facts_fingerprint, \
         employer_organisation_number, municipality_number, competence_area, case_date, flow, \
         reason, county_code, current_flow) \
         VALUES (gen_random_uuid(), gen_random_uuid(), now(), {}, {}, {}, {}, {}::date, {}, {}, {}, {}) \
         ON CONFLICT (request_id) DO NOTHING",
        literal(&sample.facts_fingerprint),
        literal(&sample.employer_organisation_number),
        literal(&sample.municipality_number),
        area_literal(sample),
        literal(&sample.case_date),
        literal(&sample.flow),
        literal(&sample.reason),
        literal(&sample.county_code),
        // A new case's current flow is its routing decision's (routing's migration 101).
        literal(&sample.flow),
    )
}

/// The values of one outbox row for [`OUTBOX_COLUMNS`], with a fresh event id and a fresh
/// message key as long as routing's (a case id).
fn outbox_values(sample: &RowSample) -> String {
    format!(
        "gen_random_uuid(), {}, gen_random_uuid()::text, {}, {}, {}::jsonb",
        literal(&sample.topic),
        literal(&sample.event_type),
        bytea_literal(&sample.payload),
        literal(&sample.trace_context),
    )
}

/// The competence area as a literal, or `NULL` for an own-expert case.
fn area_literal(sample: &RowSample) -> String {
    sample
        .competence_area
        .as_deref()
        .map_or_else(|| "NULL".to_owned(), literal)
}

/// One baseline measurement: a fresh database with routing's schema (its name pushed onto
/// `databases`, for the caller to drop), the script written to `script_path`, a `CHECKPOINT`,
/// a warm-up run as long as the open loop's, then the measured run, each with as many clients
/// as the open loop has calls in flight.
pub async fn measure(
    options: &Options,
    pgbench: &Path,
    sample: &RowSample,
    script_path: &Path,
    databases: &mut Vec<String>,
) -> anyhow::Result<PgbenchResult> {
    let database = prepare_database(sample).await?;
    databases.push(database.name.clone());
    std::fs::write(script_path, script(sample))
        .with_context(|| format!("writing {}", script_path.display()))?;
    let run = |seconds: u64| {
        pgbench::run(
            pgbench,
            &database.url,
            script_path,
            options.concurrency,
            seconds,
        )
    };
    postgres::checkpoint().await;
    if options.warmup_seconds > 0 {
        run(options.warmup_seconds)
            .await
            .context("pgbench warm-up")?;
    }
    run(options.seconds).await
}

/// Creates a fresh database with routing's schema (platform + routing migrations, exactly as
/// the service applies them) and one active Innlandet agreement-coverage row.
async fn prepare_database(sample: &RowSample) -> anyhow::Result<TestDatabase> {
    let database = fresh_database("bench_pgbench").await?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&database.url)
        .await
        .context("connecting to the baseline database")?;
    ekb_platform::db::migrate(
        &pool,
        <ekb_routing::Routing as ekb_platform::service::ServiceDescription>::migrator(),
    )
    .await
    .context("migrating the baseline database")?;
    let areas: Vec<String> = sample.competence_area.iter().cloned().collect();
    sqlx::query(
        "INSERT INTO agreement_coverage (agreement_id, county_code, competence_areas, valid_from, \
         valid_to, version) VALUES (gen_random_uuid(), $1, $2, DATE '2024-01-01', \
         DATE '2026-12-31', 1)",
    )
    .bind(PILOT_COUNTY)
    .bind(&areas)
    .execute(&pool)
    .await?;
    pool.close().await;
    Ok(database)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RowSample {
        RowSample {
            facts_fingerprint: "974760673|3403|CONFLICT_HANDLING|2025-03-01".to_owned(),
            employer_organisation_number: "974760673".to_owned(),
            municipality_number: "3403".to_owned(),
            county_code: "34".to_owned(),
            competence_area: Some("CONFLICT_HANDLING".to_owned()),
            case_date: "2025-03-01".to_owned(),
            flow: "PILOT".to_owned(),
            reason: "PILOT_ELIGIBLE".to_owned(),
            topic: "ekbbench.routing.v1".to_owned(),
            event_type: "ekspertbistand.v1.CaseRouted".to_owned(),
            payload: vec![0x0a, 0xff, 0x27],
            trace_context: r#"{"traceparent": "00-ab-cd-01", "note": "it's"}"#.to_owned(),
        }
    }

    #[test]
    fn the_script_is_the_unit_of_work_of_two_inserts() {
        let text = script(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "one statement per line: {text}");
        assert_eq!(lines[0], "BEGIN;");
        assert!(lines[1].starts_with("INSERT INTO cases"));
        assert!(lines[1].contains("'CONFLICT_HANDLING'"));
        assert!(lines[1].ends_with("ON CONFLICT (request_id) DO NOTHING;"));
        assert!(lines[2].starts_with("INSERT INTO outbox"));
        assert!(lines[2].contains("'\\x0aff27'::bytea"));
        assert!(lines[2].contains("it''s"), "quotes are doubled");
        assert_eq!(lines[3], "COMMIT;");
    }

    #[test]
    fn own_expert_cases_insert_null() {
        let mut own = sample();
        own.competence_area = None;
        assert!(script(&own).contains("'3403', NULL, '2025-03-01'::date"));
    }
}
