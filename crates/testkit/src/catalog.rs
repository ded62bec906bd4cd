//! The services of the system, listed once.
//!
//! Whatever runs "every service" iterates [`SERVICES`]: the dev launcher (`make run` starts,
//! waits for and stops each entry, creates its topic and names its database), any test that
//! brings the whole system up, and the laptop compose file (`ekb-compose` in ekb-devstack
//! generates `deploy/compose/docker-compose.yaml` from this list). Adding a service is one entry
//! here; the rest of what a new service touches outside its own crate is listed in
//! `docs/adding-a-service.md`.
//!
//! An entry holds only what is not in the service's `ServiceDescription` and cannot be: testkit
//! does not depend on the service crates (it starts them as binaries, by name), and the ports
//! below are a property of the developer's machine, not of the service. What the contract says
//! is read from it: an entry's gRPC service follows from its name, and its client roles are the
//! roles the contract's `roles` options give that service's RPCs.

use std::sync::LazyLock;

use ekb_platform::auth::RoleTable;

/// One service, as the tools that run the whole system need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service's `ServiceDescription::NAME`, which is also its binary's name (`[[bin]]` in
    /// its Cargo.toml): topics `<prefix>.<name>.v1`, consumer group, database, log file.
    pub name: &'static str,
    /// Its gRPC port on 127.0.0.1 under `make run` (`ekb-dev --port <name>=N` moves it) and in
    /// the compose file, which puts its metrics on 9100 + this − 50050 (so: 50051..=50149).
    pub dev_grpc_port: u16,
    /// Its Prometheus metrics port on 127.0.0.1 under `make run`.
    pub dev_metrics_port: u16,
    /// Whether it checks tokens under `make run` (from the local issuer): on where a rule needs
    /// to know who calls (four eyes needs two people), off elsewhere so a developer can call it
    /// without a token. The whole-system tests run every service with tokens.
    pub dev_auth: bool,
    /// `(key, value)` beyond its defaults wherever the whole system runs locally: `make run` and
    /// the whole-system tests (e.g. accepting the synthetic fødselsnumre the walks use).
    pub dev_settings: &'static [(&'static str, &'static str)],
    /// `(key, value)` on top of `dev_settings` in the whole-system tests only (e.g. a job every
    /// second instead of every hour, so a test need not wait for it).
    pub test_settings: &'static [(&'static str, &'static str)],
}

/// Every service, in start order: producers before their consumers (routing consumes the
/// registry's events; applications, refunds and pilot-ordering consume routing's and each
/// other's; budget consumes theirs), though nothing depends on the order beyond readable output.
pub const SERVICES: &[ServiceEntry] = &[
    ServiceEntry {
        name: "expert-registry",
        dev_grpc_port: 50052,
        dev_metrics_port: 9095,
        dev_auth: false,
        dev_settings: &[],
        test_settings: &[],
    },
    ServiceEntry {
        name: "routing",
        dev_grpc_port: 50051,
        dev_metrics_port: 9091,
        dev_auth: false,
        dev_settings: &[],
        test_settings: &[],
    },
    ServiceEntry {
        name: "applications",
        dev_grpc_port: 50053,
        dev_metrics_port: 9092,
        dev_auth: true,
        dev_settings: &[SYNTHETIC_FODSELSNUMRE],
        test_settings: &[("privacy.pseudonym_key", TEST_PSEUDONYM_KEY)],
    },
    ServiceEntry {
        name: "refunds",
        dev_grpc_port: 50054,
        dev_metrics_port: 9093,
        dev_auth: true,
        dev_settings: &[],
        test_settings: &[
            // The expiry job every second (default hourly), so a grant whose deadline a test
            // moved into the past expires within the test's wait.
            ("refunds.expiry_interval", "1s"),
        ],
    },
    ServiceEntry {
        name: "pilot-ordering",
        dev_grpc_port: 50055,
        dev_metrics_port: 9094,
        dev_auth: true,
        dev_settings: &[SYNTHETIC_FODSELSNUMRE],
        test_settings: &[
            ("privacy.pseudonym_key", TEST_PSEUDONYM_KEY),
            ("pilot_ordering.dispatch_interval", "200ms"),
        ],
    },
    ServiceEntry {
        name: "budget",
        dev_grpc_port: 50056,
        dev_metrics_port: 9096,
        dev_auth: false,
        dev_settings: &[],
        test_settings: &[],
    },
    ServiceEntry {
        name: "evaluation",
        dev_grpc_port: 50057,
        dev_metrics_port: 9097,
        dev_auth: false,
        dev_settings: &[],
        test_settings: &[
            // Every figure shown, from one case up (default 5), so the end-to-end test compares
            // exact figures with its own; it checks the default's suppression on a second
            // evaluation of its own.
            ("evaluation.min_cases", "1"),
        ],
    },
];

/// Accepting synthetic (Tenor: month + 80) test fødselsnumre, which the walks' employees have
/// and production refuses.
const SYNTHETIC_FODSELSNUMRE: (&str, &str) = ("privacy.accept_synthetic_fodselsnummer", "true");

/// The pseudonym key of the whole-system tests, the same in applications and pilot-ordering as
/// the contracts require (so a person can be followed across both flows).
const TEST_PSEUDONYM_KEY: &str = "ZTJlLXRlc3RzLW9ubHktcHNldWRvbnltLWtleS0zMmI=";

/// The prefix of the services' database names under `make run` (`ekb_routing`, …).
pub const DEV_DATABASE_PREFIX: &str = "ekb_";

impl ServiceEntry {
    /// Its gRPC service's full name, by the contracts' naming rule: `ekspertbistand.v1.`, the
    /// name in upper camel case, `Service` (`pilot-ordering` →
    /// `ekspertbistand.v1.PilotOrderingService`). [`check_entry_of`] holds each service to it.
    pub fn grpc_service(&self) -> String {
        let camel: String = self
            .name
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect();
        format!("ekspertbistand.v1.{camel}Service")
    }

    /// The roles a client needs to call every one of its RPCs: the union of the roles the
    /// contract gives them, in the contract's order. An all-powerful test token carries these.
    ///
    /// # Panics
    ///
    /// If the contract has no service of this entry's [`Self::grpc_service`] name or one of its
    /// RPCs names no role (the unit tests below check that neither happens).
    pub fn client_roles(&self) -> Vec<&'static str> {
        let index = SERVICES
            .iter()
            .position(|service| service.name == self.name)
            .unwrap_or_else(|| panic!("{} is not an entry of the catalog", self.name));
        CONTRACT_ROLES[index].roles()
    }

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

/// The role table of each entry of [`SERVICES`], in catalog order, read once from the contract.
static CONTRACT_ROLES: LazyLock<Vec<RoleTable>> = LazyLock::new(|| {
    SERVICES
        .iter()
        .map(|service| {
            RoleTable::from_contract(&service.grpc_service(), ekb_proto::FILE_DESCRIPTOR_SET)
                .unwrap_or_else(|error| panic!("the catalog's {}: {error:#}", service.name))
        })
        .collect()
});

/// Every role of every service, each once, in catalog order: what a token needs to call any RPC
/// of the system.
pub fn all_client_roles() -> Vec<&'static str> {
    let mut roles: Vec<&'static str> = Vec::new();
    for role in SERVICES.iter().flat_map(ServiceEntry::client_roles) {
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles
}

/// Checks that the catalog's entry for service `S` names it as its description does and that
/// the gRPC service the entry derives from that name ([`ServiceEntry::grpc_service`], whose
/// roles become its client roles) is the one `S` serves; each service's own test suite calls
/// this, so the catalog cannot drift from the services it lists.
pub fn check_entry_of<S: ekb_platform::service::ServiceDescription>() -> anyhow::Result<()> {
    let entry = entry(S::NAME)
        .ok_or_else(|| anyhow::anyhow!("service {} has no entry in the catalog", S::NAME))?;
    let served = <S::Server as tonic::server::NamedService>::NAME;
    anyhow::ensure!(
        entry.grpc_service() == served,
        "the catalog derives gRPC service {} from the name {}, but it serves {served}",
        entry.grpc_service(),
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
    fn a_service_sets_each_key_once_and_only_the_flow_services_check_tokens_locally() {
        for service in SERVICES {
            let keys: Vec<&str> = service
                .dev_settings
                .iter()
                .chain(service.test_settings)
                .map(|(key, _)| *key)
                .collect();
            let distinct: HashSet<&&str> = keys.iter().collect();
            assert_eq!(distinct.len(), keys.len(), "{}: {keys:?}", service.name);
        }
        let checking: Vec<&str> = SERVICES
            .iter()
            .filter(|service| service.dev_auth)
            .map(|service| service.name)
            .collect();
        assert_eq!(checking, ["applications", "refunds", "pilot-ordering"]);
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
            assert!(!service.client_roles().is_empty(), "{}", service.name);
        }
        let roles = all_client_roles();
        let distinct: HashSet<_> = roles.iter().collect();
        assert_eq!(distinct.len(), roles.len());
        assert!(roles.contains(&"case-writer") && roles.contains(&"registry-admin"));
        assert!(roles.contains(&"budget-admin") && roles.contains(&"budget-reader"));
        assert_eq!(
            entry("pilot-ordering").map(ServiceEntry::grpc_service),
            Some("ekspertbistand.v1.PilotOrderingService".to_owned())
        );
    }

    #[test]
    fn every_service_of_the_contract_is_in_the_catalog_with_every_role() {
        let contract = RoleTable::every_service(ekb_proto::FILE_DESCRIPTOR_SET)
            .expect("the contract's role tables");
        let catalogued: Vec<String> = SERVICES.iter().map(ServiceEntry::grpc_service).collect();
        for (service, table) in &contract {
            assert!(
                catalogued.contains(service),
                "{service} is in the contract but not in the catalog"
            );
            for role in table.roles() {
                assert!(all_client_roles().contains(&role), "{service}: {role}");
            }
        }
        assert_eq!(contract.len(), SERVICES.len());
    }

    /// The Helm chart's values.yaml says, above each service's block, which callers hold which
    /// of its roles, so an operator knows whom to declare in `allowedCallers`. It must name
    /// every role the contract gives the service's RPCs, and no role of the system it does not.
    #[test]
    fn the_helm_values_name_each_services_roles_as_the_contract_gives_them() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../helm/ekspertbistand/values.yaml"
        );
        let values = std::fs::read_to_string(path).expect("the chart's values.yaml");
        let system = all_client_roles();
        for service in SERVICES {
            let comment = helm_comment_above(&values, service.name);
            let mut named: Vec<&str> = comment
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .filter(|word| system.contains(word))
                .collect();
            named.sort_unstable();
            named.dedup();
            let mut roles = service.client_roles();
            roles.sort_unstable();
            assert_eq!(
                named, roles,
                "values.yaml's comment above services.{} names roles {named:?}; its RPCs accept {roles:?}",
                service.name
            );
        }
    }

    /// The `#` comment lines directly above `  <name>:` in the `services:` map of values.yaml.
    fn helm_comment_above(values: &str, name: &str) -> String {
        let lines: Vec<&str> = values
            .lines()
            .skip_while(|line| *line != "services:")
            .collect();
        let key = format!("  {name}:");
        let at = lines
            .iter()
            .position(|line| *line == key)
            .unwrap_or_else(|| panic!("values.yaml has no block services.{name}"));
        let mut comment: Vec<&str> = lines[..at]
            .iter()
            .rev()
            .take_while(|line| line.trim_start().starts_with('#'))
            .copied()
            .collect();
        comment.reverse();
        comment.join("\n")
    }
}
