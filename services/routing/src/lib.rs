//! The routing service: decides for each new case whether it follows the regular grant flow or
//! the § 9a pilot flow (the rule lives in `ekb_domain::decide_route`), stores the case and
//! publishes CaseRouted in one unit of work. Agreement coverage comes from a local read model
//! fed by expert-registry events. A PILOT case falls back to the regular flow on the same case
//! (ADR 0022) when pilot-ordering asks (PilotFallbackRequested) or a pilot caseworker does
//! (SendToRegularFlow); routing records the change and publishes CaseFlowChanged.
//!
//! [`Routing`] describes the service to the platform; `main.rs` is one line.

pub mod agreement_coverage;
pub mod case_store;
pub mod config;
pub mod coverage_snapshot;
pub mod facts;
pub mod flow_change;
pub mod handlers;
pub mod pilot_ordering_events;

use ekb_platform::{
    config::{ConfigError, ServiceConfig},
    messaging::{Db, EventRouter},
    service::{Assembly, ServiceDescription},
};
use ekb_proto::v1::{self, routing_service_server::RoutingServiceServer};

pub use config::RoutingSettings;
use handlers::RoutingApi;

/// The routing service, as the platform runs it.
#[derive(Debug)]
pub struct Routing;

/// The state routing's event handlers share: they need only the consumer's unit of work. The
/// agreement-coverage read model (`agreement_coverage`) and the pilot-ordering events
/// (`pilot_ordering_events`) implement their handlers on it.
#[derive(Debug, Clone)]
pub struct RoutingEvents {
    /// The service's clock (when a flow change happened).
    pub clock: ekb_platform::clock::SharedClock,
}

impl ServiceDescription for Routing {
    const NAME: &'static str = "routing";
    const DEFAULTS: &'static str = config::DEFAULTS;
    const LIST_KEYS: &'static [&'static str] = &["pilot.counties", "pilot.periods"];
    const REPLACED_KEYS: &'static [ekb_platform::config::ReplacedKey] = &[(
        "coverage.max_age_ms",
        "coverage.max_age (a duration, e.g. \"1s\")",
    )];

    type Server = RoutingServiceServer<RoutingApi>;
    type Settings = RoutingSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
        &MIGRATOR
    }

    fn validate(config: &ServiceConfig<RoutingSettings>) -> Result<(), ConfigError> {
        config.settings.policy().map(|_| ())
    }

    fn build(db: Db, settings: RoutingSettings) -> anyhow::Result<Assembly> {
        let coverage = coverage_snapshot::CoverageSnapshot::new(
            db.pool().clone(),
            settings.coverage_max_age(),
        );
        let api = RoutingApi::new(db.clone(), settings.policy()?, coverage);
        Ok(Assembly::serving(RoutingServiceServer::new(api)).consuming(
            EventRouter::new(RoutingEvents {
                clock: db.clock().clone(),
            })
            .from("expert-registry")
            .on::<v1::AgreementActivated>()
            .on::<v1::AgreementUpdated>()
            .on::<v1::AgreementEnded>()
            .from("pilot-ordering")
            .on::<v1::PilotFallbackRequested>()
            .on::<v1::OrderStarted>(),
        ))
    }
}
