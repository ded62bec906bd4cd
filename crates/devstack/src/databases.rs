//! The services' databases on the local PostgreSQL server.
//!
//! The services create their own database at start (`database.create_if_missing=true`), so
//! the launcher only names them and, for `--fresh`, drops them first
//! (`ekb_testkit::postgres::drop_database`). By default data is kept between runs so that what
//! a developer registered by hand is still there tomorrow; that is why the fixture loading must
//! tolerate finding its agreements already registered, and why the demo reports what routing
//! does with that data rather than insisting on what the fixture alone would give.

use ekb_testkit::{catalog::ServiceEntry, postgres::TestDatabase};

/// The database of `service` (`expert-registry` → `<prefix>expert_registry`) on the server
/// named by `EKB_TEST_DATABASE_URL`. Its URL may hold credentials: never print it.
pub fn for_service(prefix: &str, service: &ServiceEntry) -> TestDatabase {
    TestDatabase::named(&service.database_name(prefix))
}

#[cfg(test)]
mod tests {
    use ekb_testkit::catalog;

    use super::*;

    #[test]
    fn database_names_follow_the_service_names() {
        let registry = catalog::entry("expert-registry").expect("in the catalog");
        let routing = catalog::entry("routing").expect("in the catalog");
        assert_eq!(for_service("ekb_", registry).name, "ekb_expert_registry");
        assert_eq!(for_service("ekb_", routing).name, "ekb_routing");
    }
}
