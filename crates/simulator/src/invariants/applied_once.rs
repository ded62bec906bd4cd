//! No event applied twice by any consumer.
//!
//! What "applied twice" can look like, given the platform's inbox (crates/platform,
//! migrations/1_messaging.sql and messaging/consumer.rs): each service's `inbox` has the event
//! id as its PRIMARY KEY, and the consumer inserts that row in the same transaction as the
//! handler's effect. So the inbox itself cannot hold an event twice — the check that it does
//! not is kept only as a guard against a schema change. An event can still be applied twice
//! where that guard does not reach: after its inbox row was pruned (`consumer.inbox_retention`)
//! and the event came again, through a handler that commits its effect outside the consumer's
//! transaction, or when a producer publishes the same fact twice under two event ids. Those
//! show in the effects, so the effects are checked:
//!
//! - every table with an event-id column (`event_id`, `…_event_id`; besides the inbox and the
//!   outbox) records one row per event — budget's `reservations.request_event_id` and
//!   `parked_releases.event_id`, routing's `case_flow_changes.fallback_event_id` — except
//!   those listed in [`MANY_ROWS_PER_EVENT`] with the key that is one per event there;
//! - budget's ledger: one event books at most one entry of each movement on a reservation,
//!   and a reservation has at most one RESERVE, one DISBURSE and one RELEASE entry, ever
//!   (budget's saga: a release takes everything outstanding and closes the reservation; a
//!   disbursement settles it) — so a second one is an event applied twice, whatever its id.
//!
//! The other services' handlers change state guarded by the state itself (a grant arrives
//! once: its id is the key; an order's status moves forward only), so an event applied twice
//! there is refused by a key or changes nothing; the money it would move is budget's, checked
//! above.

use sqlx::PgPool;

use super::{
    Violation,
    databases::{self, quoted},
};

/// An event applied twice.
pub const APPLIED_ONCE: &str = "no event applied twice";

/// Tables where one event legitimately makes several rows, with the columns that, together
/// with the event id, are one per event.
pub const MANY_ROWS_PER_EVENT: &[(&str, &[&str])] =
    &[("ledger_entries", &["reservation_id", "movement"])];

/// Checks every service database in `database_urls` (service, URL).
pub async fn check(database_urls: &[(String, String)]) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for (service, url) in database_urls {
        let pool = databases::connect(service, url).await?;
        violations.extend(check_database(service, &pool).await?);
        pool.close().await;
    }
    Ok(violations)
}

/// Checks one service's database.
pub async fn check_database(service: &str, pool: &PgPool) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    let mut queries: Vec<(String, String)> = Vec::new();
    if databases::has_table(pool, "inbox").await? {
        queries.push((
            "inbox: event ids held more than once".to_owned(),
            duplicates_query("public", "inbox", &["event_id"]),
        ));
    }
    for column in databases::columns(pool).await? {
        if !is_event_id_column(&column.column)
            || matches!(column.table.as_str(), "inbox" | "outbox")
        {
            continue;
        }
        let mut key = vec![column.column.as_str()];
        if let Some((_, more)) = MANY_ROWS_PER_EVENT
            .iter()
            .find(|(table, _)| *table == column.table)
        {
            key.extend(more.iter().copied());
        }
        queries.push((
            format!(
                "{}.{}: event ids with more than one row",
                column.table,
                key.join(", ")
            ),
            duplicates_query(&column.schema, &column.table, &key),
        ));
    }
    if databases::has_table(pool, "ledger_entries").await? {
        queries.push((
            "ledger_entries: reservations with more than one entry of one movement".to_owned(),
            duplicates_query("public", "ledger_entries", &["reservation_id", "movement"]),
        ));
    }
    for (what, query) in queries {
        let duplicated: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .fetch_one(pool)
            .await
            .map_err(|error| anyhow::anyhow!("{service}: counting {what}: {error}"))?;
        if duplicated > 0 {
            violations.push(Violation::new(
                APPLIED_ONCE,
                format!("{service}: {what}: {duplicated}"),
            ));
        }
    }
    Ok(violations)
}

/// Whether a column holds the id of an event (the inbox's and outbox's excepted by the caller).
pub fn is_event_id_column(name: &str) -> bool {
    name == "event_id" || name.ends_with("_event_id")
}

/// Counts the values of `key` (not null) held by more than one row of `schema.table`.
pub fn duplicates_query(schema: &str, table: &str, key: &[&str]) -> String {
    let columns: Vec<String> = key.iter().map(|column| quoted(column)).collect();
    let columns = columns.join(", ");
    format!(
        "SELECT count(*)::bigint FROM (SELECT 1 FROM {}.{} WHERE {} IS NOT NULL \
         GROUP BY {columns} HAVING count(*) > 1) AS duplicated",
        quoted(schema),
        quoted(table),
        quoted(key[0]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_columns_are_recognised_by_name() {
        assert!(is_event_id_column("event_id"));
        assert!(is_event_id_column("fallback_event_id"));
        assert!(is_event_id_column("request_event_id"));
        assert!(!is_event_id_column("event_type"));
        assert!(!is_event_id_column("eventide"));
    }

    #[test]
    fn the_duplicates_query_groups_by_the_whole_key() {
        assert_eq!(
            duplicates_query(
                "public",
                "ledger_entries",
                &["event_id", "reservation_id", "movement"]
            ),
            "SELECT count(*)::bigint FROM (SELECT 1 FROM \"public\".\"ledger_entries\" WHERE \
             \"event_id\" IS NOT NULL GROUP BY \"event_id\", \"reservation_id\", \"movement\" \
             HAVING count(*) > 1) AS duplicated"
        );
    }
}
