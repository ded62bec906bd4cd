//! What `ekb-dev` prints once the system is up: where everything listens and how to poke at it
//! with tools nobody on this project wrote (grpcurl, kcat, curl), so a newcomer can go from
//! `make run` to their first call without reading code.

use std::fmt::Write as _;

use ekb_platform::messaging::{dead_letter_topic_for, topic_for};
use ekb_testkit::services::ServiceProcess;

/// The "how to call it" block, for the running `routing` and `registry` on `brokers`.
pub fn how_to_call(
    routing: &ServiceProcess,
    registry: &ServiceProcess,
    brokers: &str,
    topic_prefix: &str,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason only.
    let _ = writeln!(out, "The system is running (auth is OFF: no token needed).");
    let _ = writeln!(out);
    let _ = writeln!(out, "  gRPC (reflection on, plaintext):");
    for service in [routing, registry] {
        let _ = writeln!(out, "    {:<16} {}", service.name, service.grpc_addr);
    }
    let _ = writeln!(out, "  Metrics:");
    for service in [routing, registry] {
        let _ = writeln!(
            out,
            "    {:<16} http://{}/metrics",
            service.name, service.metrics_addr
        );
    }
    let _ = writeln!(out, "  Kafka {brokers}, topics:");
    for service in [routing, registry] {
        let _ = writeln!(
            out,
            "    {:<16} {}  (dead letters: {})",
            service.name,
            topic_for(topic_prefix, &service.name),
            dead_letter_topic_for(topic_prefix, &service.name)
        );
    }
    let _ = writeln!(out, "  Logs:");
    for service in [routing, registry] {
        let _ = writeln!(
            out,
            "    {:<16} {}",
            service.name,
            service.log_path.display()
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Try:");
    let _ = writeln!(
        out,
        "  grpcurl -plaintext -d '{{\"facts\":{{\"employer_organisation_number\":\"974760673\",\
         \"municipality_number\":\"3403\",\"case_date\":\"2026-03-02\",\"expert_choice\":\
         {{\"framework_agreement\":{{\"competence_area\":\"COMPETENCE_AREA_CONFLICT_HANDLING\"}}}}}}}}' \
         {} ekspertbistand.v1.RoutingService/EvaluateRoute",
        routing.grpc_addr
    );
    let _ = writeln!(
        out,
        "  grpcurl -plaintext -d '{{\"county_code\":\"34\",\"competence_area\":\
         \"COMPETENCE_AREA_CONFLICT_HANDLING\",\"on_date\":\"2026-03-02\"}}' \
         {} ekspertbistand.v1.ExpertRegistryService/FindAgreements",
        registry.grpc_addr
    );
    let _ = writeln!(
        out,
        "  scripts/call_routing.py {} --municipality 3403 --area CONFLICT_HANDLING   \
         # Python grpcio: pip install grpcio grpcio-tools",
        routing.grpc_addr
    );
    let _ = writeln!(
        out,
        "  kcat -b {brokers} -C -t {} -f '%k %h\\n'   # CaseRouted events: key = case id, headers",
        topic_for(topic_prefix, &routing.name)
    );
    let _ = writeln!(
        out,
        "  curl -s http://{}/metrics | grep -v '^#'",
        routing.metrics_addr
    );
    out
}
