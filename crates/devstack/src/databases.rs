//! The services' databases on the local PostgreSQL server.
//!
//! The services create their own database at start (`database.create_if_missing=true`), so
//! the launcher only names them and, for `--fresh`, drops them first. By default data is kept
//! between runs so that what a developer registered by hand is still there tomorrow; that is
//! why the fixture loading must tolerate finding its agreements already registered.

use anyhow::Context;
use ekb_testkit::postgres::{TEST_DATABASE_URL_ENV, admin_url, url_for};
use sqlx::{Connection, Executor, PgConnection};

/// One service's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDatabase {
    /// Database name, e.g. `ekb_routing`.
    pub name: String,
    /// URL the service connects with (may hold credentials: never print it, see
    /// [`without_credentials`]).
    pub url: String,
}

impl ServiceDatabase {
    /// The database of `service` (`expert-registry` → `<prefix>expert_registry`) on the
    /// server named by `EKB_TEST_DATABASE_URL`.
    pub fn for_service(prefix: &str, service: &str) -> Self {
        let name = format!("{prefix}{}", service.replace('-', "_"));
        ServiceDatabase {
            url: url_for(&name),
            name,
        }
    }
}

/// Drops `databases` (terminating their sessions), so the services recreate them empty.
pub async fn drop_all(databases: &[&ServiceDatabase]) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&admin_url()).await.with_context(|| {
        format!(
            "connecting to PostgreSQL at {} ({TEST_DATABASE_URL_ENV}); run scripts/ensure-postgres.sh",
            without_credentials(&admin_url())
        )
    })?;
    for database in databases {
        // The name passed `options::identifier` and a fixed service name, so quoting suffices.
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                database.name
            )))
            .await
            .with_context(|| format!("dropping database {}", database.name))?;
    }
    admin.close().await?;
    Ok(())
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

/// `url` with any user and password removed, for printing.
pub fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}{}", &url[..scheme_end + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_follow_the_service_names() {
        assert_eq!(
            ServiceDatabase::for_service("ekb_", "expert-registry").name,
            "ekb_expert_registry"
        );
        assert_eq!(
            ServiceDatabase::for_service("ekb_", "routing").name,
            "ekb_routing"
        );
    }

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
    fn credentials_never_reach_the_output() {
        assert_eq!(
            without_credentials("postgres://user:secret@db:5432/ekb_routing"),
            "postgres://db:5432/ekb_routing"
        );
        assert_eq!(
            without_credentials("postgres://postgres@127.0.0.1:5432/x"),
            "postgres://127.0.0.1:5432/x"
        );
        assert_eq!(
            without_credentials("postgres://127.0.0.1/x"),
            "postgres://127.0.0.1/x"
        );
    }
}
