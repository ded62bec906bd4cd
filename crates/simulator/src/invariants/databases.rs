//! Reading the services' databases directly, for what no contract shows: the inboxes, the
//! ledger's entries per event, and every column that might hold personal data.
//!
//! Only reads; the checks never write to a service's database.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::{
    PgPool, Row as _,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A small pool on one service's database.
pub async fn connect(service: &str, url: &str) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .with_context(|| format!("the database URL of {service} is malformed"))?;
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to the database of {service}"))
}

/// Whether table `name` exists in the `public` schema.
pub async fn has_table(pool: &PgPool, name: &str) -> anyhow::Result<bool> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The table's schema.
    pub schema: String,
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// `information_schema.columns.data_type`, e.g. `text`, `jsonb`, `bytea`, `ARRAY`.
    pub data_type: String,
}

/// Every column of every base table outside PostgreSQL's own schemas, in table order.
pub async fn columns(pool: &PgPool) -> anyhow::Result<Vec<Column>> {
    let rows = sqlx::query(
        "SELECT c.table_schema::text, c.table_name::text, c.column_name::text, c.data_type::text \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE t.table_type = 'BASE TABLE' \
           AND c.table_schema NOT IN ('pg_catalog', 'information_schema') \
           AND c.table_schema NOT LIKE 'pg_toast%' \
         ORDER BY c.table_schema, c.table_name, c.ordinal_position",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Column {
                schema: row.try_get(0)?,
                table: row.try_get(1)?,
                column: row.try_get(2)?,
                data_type: row.try_get(3)?,
            })
        })
        .collect()
}

/// `name` quoted as an SQL identifier.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_their_quotes_doubled() {
        assert_eq!(quoted("ledger_entries"), "\"ledger_entries\"");
        assert_eq!(quoted("we\"ird"), "\"we\"\"ird\"");
    }
}
