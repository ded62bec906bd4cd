//! PostgreSQL for tests and the dev launcher: the server named by `EKB_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`, which `scripts/ensure-postgres.sh`
//! makes sure answers), a fresh, uniquely named database per test, and named databases that
//! the dev launcher drops for `--fresh`.

use anyhow::{Context, bail};
use sqlx::{Connection, Executor, PgConnection};

/// Environment variable naming the admin URL of the test server.
pub const TEST_DATABASE_URL_ENV: &str = "EKB_TEST_DATABASE_URL";

/// Prefix of every database the tests create (`make test` drops leftovers).
pub const TEST_DATABASE_PREFIX: &str = "ekbtest_";

/// The admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var(TEST_DATABASE_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database created for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
}

impl TestDatabase {
    /// Database `name` on the test server, whether or not it exists (nothing is created).
    pub fn named(name: &str) -> Self {
        TestDatabase {
            name: name.to_owned(),
            url: url_for(name),
        }
    }
}

/// The URL of database `name` on the test server.
pub fn url_for(name: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(slash) if admin[..slash].contains("://") && admin[slash..].len() > 1 => {
            let (base, rest) = admin.split_at(slash);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}/{name}{query}")
        }
        _ => format!("{}/{name}", admin.trim_end_matches('/')),
    }
}

/// A unique database name for `purpose` (not created).
pub fn unique_name(purpose: &str) -> String {
    let purpose: String = purpose
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(20)
        .collect();
    format!(
        "{TEST_DATABASE_PREFIX}{purpose}_{}",
        uuid::Uuid::new_v4().simple()
    )
}

/// Creates a new empty database for `purpose`.
pub async fn fresh_database(purpose: &str) -> anyhow::Result<TestDatabase> {
    let name = unique_name(purpose);
    create_database(&name).await?;
    Ok(TestDatabase::named(&name))
}

/// Creates database `name` on the test server.
pub async fn create_database(name: &str) -> anyhow::Result<()> {
    let statement = format!("CREATE DATABASE \"{}\"", quotable(name)?);
    admin_statement(&statement, || format!("creating database {name}")).await
}

/// Drops database `name` from the test server if it exists, ending its open sessions first.
pub async fn drop_database(name: &str) -> anyhow::Result<()> {
    let statement = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        quotable(name)?
    );
    admin_statement(&statement, || format!("dropping database {name}")).await
}

/// The `host:port` part of a database URL (no credentials, no database), for printing.
pub fn server_address(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = without_scheme
        .split(['/', '?'])
        .next()
        .unwrap_or(without_scheme);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port)
        .to_owned()
}

/// `name`, if it can stand between double quotes as an identifier as it is.
fn quotable(name: &str) -> anyhow::Result<&str> {
    if name.is_empty() || name.contains(['"', '\0']) {
        bail!("{name:?} is not a usable database name");
    }
    Ok(name)
}

/// Runs one statement on an admin connection to the test server; `what` describes it if it
/// fails.
async fn admin_statement(statement: &str, what: impl Fn() -> String) -> anyhow::Result<()> {
    let url = admin_url();
    let mut admin = PgConnection::connect(&url).await.with_context(|| {
        format!(
            "connecting to the test PostgreSQL at {} ({TEST_DATABASE_URL_ENV}); run \
             scripts/ensure-postgres.sh",
            server_address(&url)
        )
    })?;
    admin
        .execute(sqlx::AssertSqlSafe(statement.to_owned()))
        .await
        .with_context(what)?;
    admin.close().await?;
    Ok(())
}

/// Connects to a test database.
pub async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    Ok(PgConnection::connect(url).await?)
}

/// A fresh database for `purpose` with `migrations` (SQL texts, in order) applied, as a schema
/// stood before a migration under test; its name (for [`drop_database`]) and a connection.
pub async fn database_at(
    purpose: &str,
    migrations: &[&'static str],
) -> anyhow::Result<(String, PgConnection)> {
    let database = fresh_database(purpose).await?;
    let mut db = connect(&database.url).await?;
    for migration in migrations {
        sqlx::raw_sql(*migration).execute(&mut db).await?;
    }
    Ok((database.name, db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_address_is_host_and_port_only() {
        assert_eq!(
            server_address("postgres://postgres@127.0.0.1:5432/postgres"),
            "127.0.0.1:5432"
        );
        assert_eq!(
            server_address("postgres://u:p@ss@db.local:6543/x?sslmode=require"),
            "db.local:6543"
        );
        assert_eq!(server_address("postgres://localhost"), "localhost");
        assert_eq!(
            server_address("postgres://127.0.0.1:5432/x?application_name=a@b"),
            "127.0.0.1:5432"
        );
    }

    #[test]
    fn names_that_cannot_be_quoted_are_refused() {
        assert_eq!(quotable("ekb_routing").ok(), Some("ekb_routing"));
        assert!(quotable("").is_err());
        assert!(quotable("a\"; DROP").is_err());
    }
}
