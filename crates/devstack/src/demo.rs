//! The part of `make run` that is about two particular services: once every catalog service is
//! SERVING, load the fixture into the expert registry, wait for routing's read model to follow
//! the registry's events, and route the sample cases. The services are looked up by name among
//! those the launcher started; everything else in the launcher is the same for every service.
//!
//! Data is kept between runs, so the registry may hold more than the fixture (or less of it):
//! the demo reports what it finds — other agreements, sample cases routed otherwise than the
//! fixture alone gives, each with a note saying why — and never refuses to serve because of it.
//! Only on a run whose registry started empty (the fixture entirely new) is a routing read model
//! that does not follow the registry a fault: there, nothing but this run's events fed it.

use std::time::Duration;

use anyhow::bail;
use ekb_proto::v1::{
    expert_registry_service_client::ExpertRegistryServiceClient,
    routing_service_client::RoutingServiceClient,
};
use ekb_testkit::{scenarios::clients::channel, services::ServiceProcess};

use crate::{fixture, sample_cases};

/// The routing service's name (its catalog entry and binary).
pub const ROUTING: &str = "routing";
/// The expert registry's name (its catalog entry and binary).
pub const REGISTRY: &str = "expert-registry";

/// How long routing may take to follow the fixture's agreements into an empty read model.
const READ_MODEL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long routing may take to follow the registry when both kept their data: only events
/// still in the registry's outbox are outstanding then.
const KEPT_READ_MODEL_TIMEOUT: Duration = Duration::from_secs(15);

/// Loads the fixture, waits for routing's read model and routes the sample cases, printing as
/// it goes.
pub async fn run(services: &[ServiceProcess]) -> anyhow::Result<()> {
    let mut registry = ExpertRegistryServiceClient::new(channel(services, REGISTRY).await?);
    let mut routing = RoutingServiceClient::new(channel(services, ROUTING).await?);
    let loaded = fixture::load(&mut registry).await?;
    println!(
        "\nFixture (RegisterAgreement/RegisterExpert): framework agreements in county {} \
         Innlandet, valid {}..{}",
        fixture::COUNTY,
        fixture::VALID_FROM,
        fixture::VALID_TO
    );
    for line in fixture::describe_agreements() {
        println!("  {line}");
    }
    println!(
        "  The fixture leaves {} uncovered.",
        fixture::area_name(fixture::UNCOVERED_AREA)
    );
    println!(
        "  Agreements: {} new, {} already registered. Experts: {} new, {} already registered.",
        loaded.agreements_new, loaded.agreements_kept, loaded.experts_new, loaded.experts_kept
    );
    let started_empty = loaded.agreements_kept == 0 && loaded.experts_kept == 0;
    let timeout = if started_empty {
        READ_MODEL_TIMEOUT
    } else {
        KEPT_READ_MODEL_TIMEOUT
    };
    let check = fixture::wait_for_routing_read_model(&mut routing, &mut registry, timeout).await?;
    let others = fixture::describe_other_agreements(&check.coverage);
    if !others.is_empty() {
        println!(
            "  Also active in county {} on {}, registered in earlier runs (data is kept):",
            fixture::COUNTY,
            fixture::PROBE_DATE
        );
        for line in others {
            println!("    {line}");
        }
    }
    if check.disagreements.is_empty() {
        println!(
            "  Routing's read model agrees with the registry (EvaluateRoute answers PILOT for \
             every area an agreement covers)."
        );
    } else if started_empty {
        bail!(
            "routing's read model did not follow the registry's events within {timeout:?}:\n  {}",
            check.disagreements.join("\n  ")
        );
    } else {
        println!(
            "  Warning: after {timeout:?} routing's read model still differs from the registry \
             (data kept from earlier runs; `scripts/run.sh --fresh` starts empty):"
        );
        for line in &check.disagreements {
            println!("    {line}");
        }
    }

    let rows = sample_cases::route_all(&mut routing).await?;
    println!("\nSample cases (OpenCase):");
    println!("{}", sample_cases::table(&rows));
    let notes = sample_cases::notes(&rows, &mut registry).await?;
    if !notes.is_empty() {
        println!();
    }
    for note in notes {
        println!("  {note}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ekb_testkit::catalog;

    use super::*;

    #[test]
    fn the_demo_services_are_in_the_catalog() {
        for name in [ROUTING, REGISTRY] {
            assert!(catalog::entry(name).is_some(), "{name}");
        }
    }
}
