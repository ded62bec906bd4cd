//! What `ekb-dev` prints once the system is up: where everything listens and how to poke at it
//! with tools nobody on this project wrote (grpcurl, kcat, curl), so a newcomer can go from
//! `make run` to their first call without reading code.

use std::fmt::Write as _;

use ekb_platform::messaging::{dead_letter_topic_for, dead_letters::replay_topic_for, topic_for};
use ekb_testkit::services::ServiceProcess;

use crate::{
    budget_demo::{ACCOUNT, BUDGET},
    demo::{REGISTRY, ROUTING},
    fixture::{UNCOVERED_AREA, area_name},
};

/// The "how to call it" block, for the running `services` on `brokers`: where each listens,
/// then examples against routing, the registry and budget (those of them that run).
pub fn how_to_call(
    services: &[ServiceProcess],
    brokers: &str,
    topic_prefix: &str,
    budget_year: i32,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason only.
    let _ = writeln!(
        out,
        "The system is running (auth is OFF, no token needed, except for {}: see the token \
         below).",
        crate::demo_callers::authenticated_services().join(", ")
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "  gRPC (reflection on, plaintext):");
    for service in services {
        let _ = writeln!(out, "    {:<16} {}", service.name, service.grpc_addr);
    }
    let _ = writeln!(out, "  Metrics:");
    for service in services {
        let _ = writeln!(
            out,
            "    {:<16} http://{}/metrics",
            service.name, service.metrics_addr
        );
    }
    let _ = writeln!(out, "  Kafka {brokers}, topics:");
    for service in services {
        let _ = writeln!(
            out,
            "    {:<16} {}  (dead letters: {}, replays: {})",
            service.name,
            topic_for(topic_prefix, &service.name),
            dead_letter_topic_for(topic_prefix, &service.name),
            replay_topic_for(topic_prefix, &service.name)
        );
    }
    let _ = writeln!(out, "  Logs:");
    for service in services {
        let _ = writeln!(
            out,
            "    {:<16} {}",
            service.name,
            service.log_path.display()
        );
    }
    let find = |name: &str| services.iter().find(|service| service.name == name);
    let mut examples = String::new();
    if let (Some(routing), Some(registry)) = (find(ROUTING), find(REGISTRY)) {
        routing_examples(&mut examples, routing, registry, brokers, topic_prefix);
    }
    if let Some(budget) = find(BUDGET) {
        budget_examples(&mut examples, budget, budget_year);
    }
    if examples.is_empty() {
        return out;
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Try:");
    out.push_str(&examples);
    let _ = writeln!(
        out,
        "Data is kept between runs (what you register or set here is there next time, and the \
         demo notes where it changes the sample cases or the appropriation); scripts/run.sh \
         --fresh starts empty."
    );
    out
}

/// grpcurl, scripts/call_routing.py, kcat and curl against routing and the registry.
fn routing_examples(
    out: &mut String,
    routing: &ServiceProcess,
    registry: &ServiceProcess,
    brokers: &str,
    topic_prefix: &str,
) {
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
        "  grpcurl -plaintext -d '{{\"agreement_reference\":\"RA-2026-34-101\",\
         \"supplier_organisation_number\":\"923609016\",\"supplier_name\":\"Innlandet Arbeidshelse AS\",\
         \"county_code\":\"34\",\"terms\":{{\"competence_areas\":[\"COMPETENCE_AREA_{uncovered}\"],\
         \"price_per_assignment_ore\":\"1800000\",\"ranking\":1,\"monthly_capacity\":6,\
         \"validity\":{{\"from_date\":\"2026-01-01\",\"to_date\":\"2028-12-31\"}}}}}}' \
         {} ekspertbistand.v1.ExpertRegistryService/RegisterAgreement   \
         # then {uncovered} in county 34 routes PILOT",
        registry.grpc_addr,
        uncovered = area_name(UNCOVERED_AREA),
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
    let _ = writeln!(
        out,
        "  EKB__KAFKA__BROKERS={brokers} EKB__KAFKA__TOPIC_PREFIX={topic_prefix} EKB__AUTH__MODE=disabled \
         target/debug/{} dead-letters list   # and `replay`: docs/operations/dead-letters.md",
        routing.name
    );
}

/// grpcurl against budget: the year's usage, and a change of the fixture's appropriation.
fn budget_examples(out: &mut String, budget: &ServiceProcess, year: i32) {
    let _ = writeln!(
        out,
        "  grpcurl -plaintext -d '{{\"budget_year\":{year}}}' {} \
         ekspertbistand.v1.BudgetService/GetUsage",
        budget.grpc_addr
    );
    let _ = writeln!(
        out,
        "  grpcurl -plaintext -d '{{\"budget_year\":{year},\"account\":{{\"chapter\":{},\"post\":{}}},\
         \"appropriated_ore\":\"6000000000\",\"note\":\"revised budget\"}}' {} \
         ekspertbistand.v1.BudgetService/SetAppropriation   \
         # 60 MNOK: kept, and reported by the next make run",
        ACCOUNT.chapter, ACCOUNT.post, budget.grpc_addr
    );
}
