//! The services of the system, listed once.
//!
//! Whatever runs "every service" iterates [`SERVICES`]: the dev launcher (`make run` starts,
//! waits for and stops each entry, creates its topic and names its database), and any test
//! that brings the whole system up. Adding a service is one entry here; the rest of what a new
//! service touches outside its own crate is listed in `docs/adding-a-service.md`.
//!
//! An entry holds only what is not in the service's `ServiceDescription` and cannot be: testkit
//! does not depend on the service crates (it starts them as binaries, by name), and the ports
//! below are a property of the developer's machine, not of the service.

/// One service, as the tools that run the whole system need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service's `ServiceDescription::NAME`, which is also its binary's name (`[[bin]]` in
    /// its Cargo.toml): topics `<prefix>.<name>.v1`, consumer group, database, log file.
    pub name: &'static str,
    /// Its gRPC port on 127.0.0.1 under `make run` (`ekb-dev --port <name>=N` moves it).
    pub dev_grpc_port: u16,
    /// Its Prometheus metrics port on 127.0.0.1 under `make run`.
    pub dev_metrics_port: u16,
    /// The roles a client needs to call every one of its RPCs: the union of the roles in its
    /// `ServiceDescription::ROLES`. An all-powerful test token carries these.
    pub client_roles: &'static [&'static str],
}

/// Every service, in start order: producers before their consumers (routing consumes the
/// registry's events; applications, refunds and pilot-ordering consume routing's and each
/// other's; budget consumes theirs), though nothing depends on the order beyond readable output.
pub const SERVICES: &[ServiceEntry] = &[
    ServiceEntry {
        name: "expert-registry",
        dev_grpc_port: 50052,
        dev_metrics_port: 9095,
        client_roles: &["registry-admin", "registry-reader"],
    },
    ServiceEntry {
        name: "routing",
        dev_grpc_port: 50051,
        dev_metrics_port: 9091,
        client_roles: &["case-writer", "case-reader", "pilot-caseworker"],
    },
    ServiceEntry {
        name: "applications",
        dev_grpc_port: 50053,
        dev_metrics_port: 9092,
        client_roles: &[
            "application-employer",
            "application-caseworker",
            "application-decider",
            "application-reader",
            "application-auditor",
        ],
    },
    ServiceEntry {
        name: "refunds",
        dev_grpc_port: 50054,
        dev_metrics_port: 9093,
        client_roles: &[
            "refund-employer",
            "refund-caseworker",
            "refund-decider",
            "refund-reader",
            "refund-auditor",
            "refund-payment-system",
        ],
    },
    ServiceEntry {
        name: "pilot-ordering",
        dev_grpc_port: 50055,
        dev_metrics_port: 9094,
        client_roles: &[
            "pilot-caseworker",
            "pilot-approver",
            "pilot-supplier",
            "pilot-reader",
            "pilot-payment-system",
            "pilot-auditor",
        ],
    },
    ServiceEntry {
        name: "budget",
        dev_grpc_port: 50056,
        dev_metrics_port: 9096,
        client_roles: &["budget-admin", "budget-reader"],
    },
];

/// The prefix of the services' database names under `make run` (`ekb_routing`, …).
pub const DEV_DATABASE_PREFIX: &str = "ekb_";

impl ServiceEntry {
    /// Its database name: `prefix` followed by the name with `-` as `_`
    /// (`expert-registry` → `ekb_expert_registry` for prefix `ekb_`).
    pub fn database_name(&self, prefix: &str) -> String {
        database_name(prefix, self.name)
    }
}

/// The database of service `name`: `prefix` followed by the name with `-` as `_`, so it needs
/// no quoting in SQL.
pub fn database_name(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", name.replace('-', "_"))
}

/// The entry of service `name`, if the catalog has one.
pub fn entry(name: &str) -> Option<&'static ServiceEntry> {
    SERVICES.iter().find(|service| service.name == name)
}

/// Every service's name, in start order.
pub fn names() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|service| service.name)
}

/// Every role of every service, each once, in catalog order: what a token needs to call any RPC
/// of the system.
pub fn all_client_roles() -> Vec<&'static str> {
    let mut roles: Vec<&'static str> = Vec::new();
    for role in SERVICES.iter().flat_map(|service| service.client_roles) {
        if !roles.contains(role) {
            roles.push(role);
        }
    }
    roles
}

/// Checks that the catalog's entry for service `S` names it as its description does and lists
/// exactly the roles its RPCs accept; each service's own test suite calls this, so the catalog
/// cannot drift from the services it lists.
pub fn check_entry_of<S: ekb_platform::service::ServiceDescription>() -> anyhow::Result<()> {
    let entry = entry(S::NAME)
        .ok_or_else(|| anyhow::anyhow!("service {} has no entry in the catalog", S::NAME))?;
    let mut described: Vec<&str> = S::ROLES
        .iter()
        .flat_map(|(_, roles)| roles.iter().copied())
        .collect();
    described.sort_unstable();
    described.dedup();
    let mut listed = entry.client_roles.to_vec();
    listed.sort_unstable();
    anyhow::ensure!(
        listed == described,
        "the catalog lists roles {listed:?} for {}, its RPCs accept {described:?}",
        S::NAME
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique_binary_and_topic_safe() {
        let mut seen = HashSet::new();
        for name in names() {
            assert!(seen.insert(name), "{name} is listed twice");
            let safe = name.starts_with(|c: char| c.is_ascii_lowercase())
                && !name.ends_with('-')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            assert!(safe, "{name}: a-z, 0-9 and inner '-' only");
        }
        assert!(!SERVICES.is_empty());
    }

    #[test]
    fn every_dev_port_is_distinct() {
        let mut seen = HashSet::new();
        for service in SERVICES {
            for port in [service.dev_grpc_port, service.dev_metrics_port] {
                assert!(port > 0, "{}: port 0", service.name);
                assert!(seen.insert(port), "{}: port {port} is taken", service.name);
            }
        }
    }

    #[test]
    fn database_names_are_distinct_and_follow_the_names() {
        let databases: HashSet<String> = SERVICES
            .iter()
            .map(|service| service.database_name(DEV_DATABASE_PREFIX))
            .collect();
        assert_eq!(databases.len(), SERVICES.len());
        assert_eq!(
            database_name("ekb_", "expert-registry"),
            "ekb_expert_registry"
        );
        assert_eq!(
            entry("routing").map(|routing| routing.database_name("ekbtest_x_")),
            Some("ekbtest_x_routing".to_owned())
        );
        assert_eq!(entry("no-such-service"), None);
    }

    #[test]
    fn every_service_has_client_roles_and_the_union_has_each_once() {
        for service in SERVICES {
            assert!(!service.client_roles.is_empty(), "{}", service.name);
        }
        let roles = all_client_roles();
        let distinct: HashSet<_> = roles.iter().collect();
        assert_eq!(distinct.len(), roles.len());
        assert!(roles.contains(&"case-writer") && roles.contains(&"registry-admin"));
        assert!(roles.contains(&"budget-admin") && roles.contains(&"budget-reader"));
    }
}
