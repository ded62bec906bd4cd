//! No fødselsnummer on any topic, in any log, or in clear in any database.
//!
//! Why everywhere: the services are written to keep the number out (events carry a keyed
//! pseudonym, pilot-ordering stores it sealed, logs never name it), but a leak is one careless
//! field away — an error message that quotes the request, a debug line, a free-text note in
//! which a caseworker pasted it. Only reading everything the system wrote finds it:
//!
//! - every record of every topic under the prefix (domain, dead-letter and replay topics):
//!   key, headers and payload, the payload opened as protobuf
//!   ([`super::protobuf_strings`]);
//! - every line of every file in the log directory;
//! - every column of every table of every service database that can hold text (text,
//!   varchar, json/jsonb, arrays and enums as text, bytea opened as protobuf), and bigint and
//!   numeric columns for the listed numbers only (an amount in øre can have eleven digits).
//!   Migrations' bookkeeping (`_sqlx_migrations`, which holds the migrations' SQL) is skipped.
//!
//! Each place reports the listed employees' numbers and the look-alikes
//! ([`super::fnr_detector`]) as counts with the first place they were seen — never the digits.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
};

use futures::TryStreamExt as _;
use sqlx::{PgPool, Row as _};

use super::{
    Context, Violation,
    databases::{self, Column, quoted},
    fnr_detector::{Findings, FnrDetector},
    topics,
};

/// A fødselsnummer on a topic.
pub const NONE_ON_TOPICS: &str = "no fødselsnummer on any topic";
/// A fødselsnummer in a log.
pub const NONE_IN_LOGS: &str = "no fødselsnummer in any log";
/// A fødselsnummer in clear in a database.
pub const NONE_IN_DATABASES: &str = "no fødselsnummer in clear in any database";

/// Tables not scanned (they hold code, not data).
const SKIPPED_TABLES: &[&str] = &["_sqlx_migrations"];

/// What was found in one place (a topic, a log file, a column), with the first occurrence of
/// each kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Records, lines or rows holding a listed number.
    pub listed: usize,
    /// Records, lines or rows holding a look-alike.
    pub look_alike: usize,
    /// Where a listed number was first seen.
    pub first_listed: Option<String>,
    /// Where a look-alike was first seen.
    pub first_look_alike: Option<String>,
}

impl Tally {
    /// Counts one record, line or row with `findings`, at `place` (made only when needed).
    pub fn record(&mut self, findings: Findings, place: impl FnOnce() -> String) {
        if !findings.any() {
            return;
        }
        let place = place();
        if findings.listed > 0 {
            self.listed += 1;
            self.first_listed.get_or_insert_with(|| place.clone());
        }
        if findings.look_alike > 0 {
            self.look_alike += 1;
            self.first_look_alike.get_or_insert(place);
        }
    }

    /// The violations this tally makes for `what` (a topic, a file, a column).
    pub fn violations(&self, invariant: &'static str, what: &str, unit: &str) -> Vec<Violation> {
        let mut violations = Vec::new();
        if self.listed > 0 {
            violations.push(Violation::new(
                invariant,
                format!(
                    "{what}: {} {unit}(s) hold an employee's fødselsnummer (first: {})",
                    self.listed,
                    self.first_listed.as_deref().unwrap_or("?")
                ),
            ));
        }
        if self.look_alike > 0 {
            violations.push(Violation::new(
                invariant,
                format!(
                    "{what}: {} {unit}(s) hold eleven digits that pass the fødselsnummer checks \
                     (first: {})",
                    self.look_alike,
                    self.first_look_alike.as_deref().unwrap_or("?")
                ),
            ));
        }
        violations
    }
}

/// Checks the topics, the logs and the databases of `ctx`.
pub async fn check(ctx: &Context<'_>) -> anyhow::Result<Vec<Violation>> {
    let detector = FnrDetector::new(ctx.employees);
    let mut violations = on_topics(ctx.brokers, ctx.topic_prefix, &detector).await?;
    if let Some(log_dir) = ctx.log_dir {
        violations.extend(in_logs(log_dir, &detector).await?);
    }
    for (service, url) in ctx.database_urls {
        let pool = databases::connect(service, url).await?;
        violations.extend(in_database(service, &pool, &detector).await?);
        pool.close().await;
    }
    Ok(violations)
}

/// Every record of every topic under `prefix`.
pub async fn on_topics(
    brokers: &str,
    prefix: &str,
    detector: &FnrDetector,
) -> anyhow::Result<Vec<Violation>> {
    let (brokers, prefix, detector) = (brokers.to_owned(), prefix.to_owned(), detector.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Violation>> {
        let mut violations = Vec::new();
        for topic in topics::topics_with_prefix(&brokers, &prefix)? {
            let mut tally = Tally::default();
            topics::read_all(&brokers, &topic, |record| {
                let mut findings = detector.scan_text(&record.key);
                findings.add(detector.scan_protobuf(&record.payload));
                for (_, value) in &record.headers {
                    findings.add(detector.scan_text(value));
                }
                tally.record(findings, || record.place());
            })?;
            violations.extend(tally.violations(NONE_ON_TOPICS, &topic, "record"));
        }
        Ok(violations)
    })
    .await?
}

/// Every line of every file under `log_dir`.
pub async fn in_logs(log_dir: &Path, detector: &FnrDetector) -> anyhow::Result<Vec<Violation>> {
    let (log_dir, detector) = (log_dir.to_owned(), detector.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Violation>> {
        let mut violations = Vec::new();
        for file in files_under(&log_dir)? {
            let tally = scan_log(&file, &detector)?;
            violations.extend(tally.violations(NONE_IN_LOGS, &file.display().to_string(), "line"));
        }
        Ok(violations)
    })
    .await?
}

/// Scans one log file line by line.
pub fn scan_log(file: &Path, detector: &FnrDetector) -> anyhow::Result<Tally> {
    let reader = BufReader::new(std::fs::File::open(file)?);
    let mut tally = Tally::default();
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        tally.record(detector.scan_text(&line), || {
            format!("{}:{}", file.display(), index + 1)
        });
    }
    Ok(tally)
}

fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// How a column is read and scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// As text: listed numbers and look-alikes.
    Text,
    /// As bytes opened as protobuf.
    Bytes,
    /// As its decimal text, for the listed numbers only.
    Number,
}

/// How a column of `data_type` (`information_schema.columns.data_type`) is scanned, if at all.
pub fn scan_for(data_type: &str) -> Option<Scan> {
    match data_type {
        "text" | "character varying" | "character" | "json" | "jsonb" | "ARRAY"
        | "USER-DEFINED" | "xml" => Some(Scan::Text),
        "bytea" => Some(Scan::Bytes),
        "bigint" | "numeric" => Some(Scan::Number),
        _ => None,
    }
}

/// Every scannable column of every table of one service's database.
pub async fn in_database(
    service: &str,
    pool: &PgPool,
    detector: &FnrDetector,
) -> anyhow::Result<Vec<Violation>> {
    let mut tables: BTreeMap<(String, String), Vec<(Column, Scan)>> = BTreeMap::new();
    for column in databases::columns(pool).await? {
        if SKIPPED_TABLES.contains(&column.table.as_str()) {
            continue;
        }
        if let Some(scan) = scan_for(&column.data_type) {
            tables
                .entry((column.schema.clone(), column.table.clone()))
                .or_default()
                .push((column, scan));
        }
    }
    let mut violations = Vec::new();
    for ((schema, table), columns) in tables {
        let selected: Vec<String> = columns
            .iter()
            .map(|(column, scan)| match scan {
                Scan::Bytes => quoted(&column.column),
                Scan::Text | Scan::Number => format!("{}::text", quoted(&column.column)),
            })
            .collect();
        let query = format!(
            "SELECT ctid::text, {} FROM {}.{}",
            selected.join(", "),
            quoted(&schema),
            quoted(&table)
        );
        let mut tallies = vec![Tally::default(); columns.len()];
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(query)).fetch(pool);
        while let Some(row) = rows.try_next().await? {
            let ctid: String = row.try_get(0)?;
            for (position, (_, scan)) in columns.iter().enumerate() {
                let index = position + 1;
                let findings = match scan {
                    Scan::Bytes => row
                        .try_get::<Option<Vec<u8>>, _>(index)?
                        .map(|bytes| detector.scan_protobuf(&bytes)),
                    Scan::Text => row
                        .try_get::<Option<String>, _>(index)?
                        .map(|text| detector.scan_text(text.as_bytes())),
                    Scan::Number => row
                        .try_get::<Option<String>, _>(index)?
                        .map(|text| Findings {
                            listed: detector.scan_text(text.as_bytes()).listed,
                            look_alike: 0,
                        }),
                };
                if let Some(findings) = findings {
                    tallies[position].record(findings, || format!("row at ctid {ctid}"));
                }
            }
        }
        for ((column, _), tally) in columns.iter().zip(tallies) {
            let what = format!("{service}: {table}.{}", column.column);
            violations.extend(tally.violations(NONE_IN_DATABASES, &what, "row"));
        }
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_records_and_keeps_the_first_place_of_each_kind() {
        let mut tally = Tally::default();
        tally.record(Findings::default(), || {
            unreachable!("nothing found, no place made")
        });
        tally.record(
            Findings {
                listed: 2,
                look_alike: 0,
            },
            || "t[0]@4".to_owned(),
        );
        tally.record(
            Findings {
                listed: 1,
                look_alike: 1,
            },
            || "t[1]@9".to_owned(),
        );
        assert_eq!(
            tally,
            Tally {
                listed: 2,
                look_alike: 1,
                first_listed: Some("t[0]@4".to_owned()),
                first_look_alike: Some("t[1]@9".to_owned()),
            }
        );
        let violations = tally.violations(NONE_ON_TOPICS, "t", "record");
        assert_eq!(violations.len(), 2);
        assert_eq!(
            violations[0].detail,
            "t: 2 record(s) hold an employee's fødselsnummer (first: t[0]@4)"
        );
    }

    #[test]
    fn text_bytes_and_numbers_are_scanned_and_other_types_are_not() {
        assert_eq!(scan_for("jsonb"), Some(Scan::Text));
        assert_eq!(scan_for("bytea"), Some(Scan::Bytes));
        assert_eq!(scan_for("bigint"), Some(Scan::Number));
        assert_eq!(scan_for("uuid"), None);
        assert_eq!(scan_for("timestamp with time zone"), None);
    }

    #[test]
    fn a_log_line_with_a_listed_number_is_found_by_its_line() {
        let dir = std::env::temp_dir().join(format!("ekb-invariants-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let number = "01819012345".to_owned(); // listed here; whether it passes checks is moot
        let file = dir.join("budget.log");
        std::fs::write(
            &file,
            format!("started\n{{\"fnr\":\"{number}\"}}\nstopped\n"),
        )
        .expect("write");
        let tally = scan_log(&file, &FnrDetector::new(&[number])).expect("scans");
        assert_eq!(tally.listed, 1);
        assert_eq!(tally.first_listed, Some(format!("{}:2", file.display())));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
