//! Dead-letter topics empty unless a fault was injected on purpose.
//!
//! Why: a dead letter is an event a consumer gave up on (ADR 0005; crates/platform
//! messaging/consumer.rs) — its effect never happened, and for budget that is money reserved
//! or released in nobody's books. Failures of the infrastructure (a database restarted, a
//! broker down) are retried without limit and never dead-letter, so even a run with a fault
//! schedule should leave these topics empty; but a schedule may inject a poison record on
//! purpose, so with `--faults` dead letters are not judged here (the money checks still see
//! what they cost).
//!
//! Both sides are read: every `<prefix>.<service>.dlq.v1` topic in the cluster
//! (`ekb_platform::messaging::dead_letter_topic_for`), and each service's inbox rows whose
//! outcome is `dead_lettered` (what the consumer recorded when it gave up; a later replay
//! that applied the event changes the row to `applied`). The reasons are shown with long
//! digit runs hidden.

use std::collections::BTreeMap;

use super::{
    Violation, databases,
    fnr_detector::redact,
    topics::{self, TopicRecord},
};

/// A dead letter in a run without faults.
pub const DEAD_LETTERS_EMPTY: &str = "dead-letter topics empty";

/// The header a dead letter's reason is in.
const REASON_HEADER: &str = "ekb-dlq-reason";
/// The suffix of a dead-letter topic (`<prefix>.<service>.dlq.v1`).
const DEAD_LETTER_SUFFIX: &str = ".dlq.v1";
/// How many distinct reasons are shown per topic.
const REASONS_SHOWN: usize = 3;

/// Checks the dead-letter topics under `topic_prefix` and the inboxes of `database_urls`.
pub async fn check(
    brokers: &str,
    topic_prefix: &str,
    database_urls: &[(String, String)],
    poison_injected: bool,
) -> anyhow::Result<Vec<Violation>> {
    if poison_injected {
        return Ok(Vec::new());
    }
    let mut violations = Vec::new();
    let (brokers, prefix) = (brokers.to_owned(), topic_prefix.to_owned());
    let per_topic = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut found = Vec::new();
        for topic in topics::topics_with_prefix(&brokers, &prefix)? {
            if !topic.ends_with(DEAD_LETTER_SUFFIX) {
                continue;
            }
            let mut records = Vec::new();
            topics::read_all(&brokers, &topic, |record| records.push(record))?;
            found.push((topic, records));
        }
        Ok(found)
    })
    .await??;
    for (topic, records) in per_topic {
        if let Some(detail) = describe_topic(&topic, &records) {
            violations.push(Violation::new(DEAD_LETTERS_EMPTY, detail));
        }
    }
    for (service, url) in database_urls {
        let pool = databases::connect(service, url).await?;
        if databases::has_table(&pool, "inbox").await? {
            let rows: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT event_type, detail FROM inbox WHERE outcome = 'dead_lettered' \
                 ORDER BY received_at",
            )
            .fetch_all(&pool)
            .await?;
            if let Some(detail) = describe_inbox(service, &rows) {
                violations.push(Violation::new(DEAD_LETTERS_EMPTY, detail));
            }
        }
        pool.close().await;
    }
    Ok(violations)
}

/// What a dead-letter topic holds, if anything: how many, and the first distinct reasons.
pub fn describe_topic(topic: &str, records: &[TopicRecord]) -> Option<String> {
    if records.is_empty() {
        return None;
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for record in records {
        let reason = record
            .header(REASON_HEADER)
            .map_or_else(|| "(no reason)".to_owned(), |reason| redact(&reason));
        *reasons.entry(reason).or_default() += 1;
    }
    Some(format!(
        "{topic} holds {} record(s); {}",
        records.len(),
        summarise(reasons)
    ))
}

/// What a service's inbox says it dead-lettered, if anything.
pub fn describe_inbox(service: &str, rows: &[(String, Option<String>)]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (event_type, detail) in rows {
        let detail = detail.as_deref().map_or_else(String::new, redact);
        *reasons
            .entry(format!("{event_type}: {detail}"))
            .or_default() += 1;
    }
    Some(format!(
        "{service}'s inbox holds {} dead-lettered event(s); {}",
        rows.len(),
        summarise(reasons)
    ))
}

fn summarise(reasons: BTreeMap<String, usize>) -> String {
    let mut by_count: Vec<(String, usize)> = reasons.into_iter().collect();
    by_count.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let shown: Vec<String> = by_count
        .iter()
        .take(REASONS_SHOWN)
        .map(|(reason, count)| format!("{count}× {}", shorten(reason)))
        .collect();
    let more = by_count.len().saturating_sub(REASONS_SHOWN);
    if more > 0 {
        format!("{} (and {more} other reasons)", shown.join(" | "))
    } else {
        shown.join(" | ")
    }
}

fn shorten(reason: &str) -> String {
    const LONGEST: usize = 300;
    if reason.chars().count() <= LONGEST {
        return reason.to_owned();
    }
    let mut short: String = reason.chars().take(LONGEST).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter(reason: &str) -> TopicRecord {
        TopicRecord {
            topic: "ekspertbistand.budget.dlq.v1".to_owned(),
            partition: 0,
            offset: 0,
            key: Vec::new(),
            payload: Vec::new(),
            headers: vec![(REASON_HEADER.to_owned(), reason.as_bytes().to_vec())],
        }
    }

    #[test]
    fn an_empty_topic_is_fine_and_a_full_one_says_why_without_long_numbers() {
        assert_eq!(describe_topic("t", &[]), None);
        let records = [
            dead_letter("disbursement larger than the reservation"),
            dead_letter("disbursement larger than the reservation"),
            dead_letter("payload for 12345678901 does not decode"),
        ];
        let detail = describe_topic("ekspertbistand.budget.dlq.v1", &records).expect("violation");
        assert_eq!(
            detail,
            "ekspertbistand.budget.dlq.v1 holds 3 record(s); 2× disbursement larger than the \
             reservation | 1× payload for <digits> does not decode"
        );
    }

    #[test]
    fn an_inbox_with_dead_lettered_rows_is_described_per_event_type() {
        assert_eq!(describe_inbox("budget", &[]), None);
        let rows = vec![(
            "ekspertbistand.v1.InvoiceApproved".to_owned(),
            Some("too large".to_owned()),
        )];
        assert_eq!(
            describe_inbox("budget", &rows).as_deref(),
            Some(
                "budget's inbox holds 1 dead-lettered event(s); 1× \
                 ekspertbistand.v1.InvoiceApproved: too large"
            )
        );
    }
}
