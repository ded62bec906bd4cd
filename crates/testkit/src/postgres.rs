//! PostgreSQL for tests: the server named by `EKB_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, which `scripts/ensure-postgres.sh` makes sure
//! answers), and a fresh, uniquely named database per test.

use anyhow::Context;
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
    Ok(TestDatabase {
        url: url_for(&name),
        name,
    })
}

/// Creates database `name` on the test server.
pub async fn create_database(name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .with_context(|| format!("connecting to the test PostgreSQL ({TEST_DATABASE_URL_ENV}); run scripts/ensure-postgres.sh"))?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .with_context(|| format!("creating database {name}"))?;
    admin.close().await?;
    Ok(())
}

/// Connects to a test database.
pub async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    Ok(PgConnection::connect(url).await?)
}
