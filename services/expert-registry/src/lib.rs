//! The expert registry: experts, suppliers, competence areas and NAV's framework agreements for
//! the § 9a pilot. Every change is published on `ekspertbistand.expert-registry.v1` with the
//! full state, which routing (agreement coverage) and pilot-ordering keep local read models of.
//!
//! [`ExpertRegistry`] describes the service to the platform; `main.rs` is one line.

mod agreement_changes;
mod agreement_store;
pub mod commands;
pub mod expert_store;
pub mod handlers;

use ekb_platform::{
    config::NoSettings,
    messaging::Db,
    service::{Assembly, ServiceDescription},
};
use ekb_proto::v1::expert_registry_service_server::ExpertRegistryServiceServer;

use handlers::RegistryApi;

/// The expert registry, as the platform runs it.
#[derive(Debug)]
pub struct ExpertRegistry;

impl ServiceDescription for ExpertRegistry {
    const NAME: &'static str = "expert-registry";
    const DEFAULTS: &'static str = r#"
[database]
url = "postgres://postgres@127.0.0.1:5432/ekb_expert_registry"
"#;
    const CONSTRAINTS: ekb_platform::error::ConstraintMessages = &[
        (
            "experts_authorisation_unique",
            "an expert with this authorisation kind and reference is registered",
        ),
        (
            "agreements_reference_unique",
            "agreement_reference is already registered",
        ),
    ];

    type Server = ExpertRegistryServiceServer<RegistryApi>;
    type Settings = NoSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
        &MIGRATOR
    }

    fn build(db: Db, _settings: NoSettings) -> anyhow::Result<Assembly> {
        Ok(Assembly::serving(ExpertRegistryServiceServer::new(
            RegistryApi::new(db),
        )))
    }
}
