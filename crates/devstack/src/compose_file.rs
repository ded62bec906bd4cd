//! `deploy/compose/docker-compose.yaml`, generated from the service catalog.
//!
//! Why: compose is YAML read by Docker, which cannot read the catalog, so a hand-written file
//! would be one more copy of what the catalog says (names, ports, databases) for every new
//! service to edit. The fixed parts (broker, PostgreSQL, collector, the `*service` and
//! `*service-env` anchors) live in `deploy/compose/docker-compose.template.yaml`; this module
//! fills in its service list and one block per catalog entry. `ekb-compose` prints the result,
//! and the unit test below fails, naming [`REGENERATE`], while the committed file differs.

use anyhow::{Context, ensure};
use ekb_testkit::catalog::{self, SERVICES, ServiceEntry};

/// The fixed parts of the file, with the two placeholders the catalog fills.
pub const TEMPLATE: &str = include_str!("../../../deploy/compose/docker-compose.template.yaml");

/// The generated file's path, from the repository root.
pub const PATH: &str = "deploy/compose/docker-compose.yaml";

/// The command that regenerates the file, run from the repository root.
pub const REGENERATE: &str =
    "cargo run -q -p ekb-devstack --bin ekb-compose > deploy/compose/docker-compose.yaml";

/// Replaced by every service's name, space-separated (`x-service-names`).
const NAMES: &str = "{{service-names}}";
/// Replaced by one block under `services:` per service, a blank line between two.
const BLOCKS: &str = "{{service-blocks}}";

/// Where every service listens inside its container (`EKB__GRPC__ADDR` in `*service-env`).
const CONTAINER_GRPC_PORT: u16 = 50051;
/// Where every service serves metrics inside its container (`EKB__METRICS__ADDR`).
const CONTAINER_METRICS_PORT: u16 = 9090;

/// The compose file for every service of the catalog.
pub fn render() -> anyhow::Result<String> {
    render_with(TEMPLATE, SERVICES)
}

/// The compose file for `services`, from `template`.
fn render_with(template: &str, services: &[ServiceEntry]) -> anyhow::Result<String> {
    for placeholder in [NAMES, BLOCKS] {
        ensure!(
            template.matches(placeholder).count() == 1,
            "the compose template must hold {placeholder} once"
        );
    }
    let names: Vec<&str> = services.iter().map(|service| service.name).collect();
    let blocks = services
        .iter()
        .map(block)
        .collect::<anyhow::Result<Vec<String>>>()?;
    Ok(template
        .replace(NAMES, &names.join(" "))
        .replace(BLOCKS, &blocks.join("\n\n")))
}

/// One service's block: its binary, its database (postgres-init creates it with an owner role
/// and password of the same name) and its host ports; the anchors give the rest.
fn block(service: &ServiceEntry) -> anyhow::Result<String> {
    let name = service.name;
    let database = catalog::database_name("", name);
    let grpc = service.dev_grpc_port;
    let metrics = host_metrics_port(service)?;
    Ok(format!(
        "  {name}:\n    \
         <<: *service\n    \
         command: [/usr/local/bin/{name}]\n    \
         environment: {{<<: *service-env, EKB__DATABASE__URL: \
         \"postgres://{database}:{database}@postgres:5432/{database}\"}}\n    \
         ports: [\"127.0.0.1:{grpc}:{CONTAINER_GRPC_PORT}\", \
         \"127.0.0.1:{metrics}:{CONTAINER_METRICS_PORT}\"]"
    ))
}

/// Its metrics port on the laptop: 9100 + its gRPC port - 50050 (routing's 50051 → 9101). Not
/// the catalog's `make run` metrics port: those are 909x, and compose's Kafka holds 9092.
fn host_metrics_port(service: &ServiceEntry) -> anyhow::Result<u16> {
    service
        .dev_grpc_port
        .checked_sub(50050)
        .filter(|offset| (1..100).contains(offset))
        .map(|offset| 9100 + offset)
        .with_context(|| {
            format!(
                "{}: compose derives the metrics port from a gRPC port in 50051..=50149, not {}",
                service.name, service.dev_grpc_port
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_compose_file_is_the_generated_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/compose/docker-compose.yaml"
        );
        let committed = std::fs::read_to_string(path).expect("the committed compose file");
        let generated = render().expect("the compose file renders");
        let same_lines = committed
            .lines()
            .zip(generated.lines())
            .take_while(|(left, right)| left == right)
            .count();
        assert!(
            committed == generated,
            "{PATH} is not what the catalog and its template give (first difference at line \
             {}); regenerate it from the repository root:\n  {REGENERATE}",
            same_lines + 1
        );
    }

    #[test]
    fn a_block_has_the_binary_database_and_ports() {
        let registry = catalog::entry("expert-registry").expect("expert-registry");
        assert_eq!(
            block(registry).expect("a block"),
            "  expert-registry:\n    <<: *service\n    command: [/usr/local/bin/expert-registry]\n    \
             environment: {<<: *service-env, EKB__DATABASE__URL: \
             \"postgres://expert_registry:expert_registry@postgres:5432/expert_registry\"}\n    \
             ports: [\"127.0.0.1:50052:50051\", \"127.0.0.1:9102:9090\"]"
        );
    }

    #[test]
    fn every_service_is_listed_and_has_a_block() {
        let file = render().expect("the compose file renders");
        let names: Vec<&str> = catalog::names().collect();
        let listed = format!("x-service-names: &service-names {}\n", names.join(" "));
        assert!(file.contains(&listed), "{file}");
        for name in names {
            assert!(
                file.contains(&format!("\n  {name}:\n    <<: *service\n")),
                "{name}"
            );
        }
        assert!(!file.contains("{{"), "a placeholder is left: {file}");
    }

    #[test]
    fn a_grpc_port_outside_the_range_or_a_template_without_placeholders_is_refused() {
        let odd = ServiceEntry {
            dev_grpc_port: 6000,
            ..SERVICES[0]
        };
        let error = render_with(TEMPLATE, &[odd]).expect_err("port 6000");
        assert!(error.to_string().contains("6000"), "{error:#}");
        let error = render_with("services:\n", SERVICES).expect_err("no placeholders");
        assert!(error.to_string().contains(NAMES), "{error:#}");
    }
}
