//! The pilot-ordering service: the § 9a pilot flow. For a PILOT case NAV orders (avrop) an
//! expert under a framework agreement — the best-ranked active agreement with capacity left
//! this month — reserves its price through budget (saga over events), sends the order to the
//! supplier, follows it through accepted, started and completed, and pays the supplier's
//! invoice after four-eyes approval. When no supplier can take the case it asks routing to move
//! it to the regular flow on the same case id (PilotFallbackRequested). Contract:
//! `proto/ekspertbistand/v1/pilot_ordering*.proto`; decisions: ADR 0022 and ADR 0025.
//!
//! [`PilotOrdering`] describes the service to the platform; `main.rs` is one line.

pub mod codes;
pub mod commands;
pub mod config;
pub mod events;
pub mod handlers;
pub mod model;
pub mod ordering;
pub mod payments;
pub mod selection;
pub mod store;
pub mod suppliers;
pub mod sweep;
pub mod transitions;

use std::sync::Arc;

use ekb_platform::{
    config::{ConfigError, ServiceConfig},
    jobs,
    messaging::{Db, EventRouter},
    payment::{PaymentPort, RecordingPaymentPort},
    service::{Assembly, ServiceDescription},
};
use ekb_proto::v1::{self, pilot_ordering_service_server::PilotOrderingServiceServer};

pub use config::PilotOrderingSettings;
use ekb_platform::clock::SharedClock;
use events::OrderingEvents;
use handlers::PilotOrderingApi;
use suppliers::{RecordingSupplierNotifier, SupplierNotifier};

/// The pilot-ordering service, as the platform runs it.
#[derive(Debug)]
pub struct PilotOrdering;

/// NAV Innlandet's pilot caseworkers.
pub const CASEWORKER: &str = "pilot-caseworker";
/// Budget authority: approves invoices.
pub const APPROVER: &str = "pilot-approver";
/// Reads and work lists.
pub const READER: &str = "pilot-reader";
/// A supplier's system.
pub const SUPPLIER: &str = "pilot-supplier";

impl ServiceDescription for PilotOrdering {
    const NAME: &'static str = "pilot-ordering";
    const DEFAULTS: &'static str = config::DEFAULTS;
    const REPLACED_KEYS: &'static [ekb_platform::config::ReplacedKey] = config::REPLACED_KEYS;
    const CONSTRAINTS: ekb_platform::error::ConstraintMessages = &[
        (
            "orders_request_id_unique",
            "an order was created for this request id already",
        ),
        (
            "invoices_request_id_unique",
            "an invoice was registered for this request id already",
        ),
    ];

    type Server = PilotOrderingServiceServer<PilotOrderingApi>;
    type Settings = PilotOrderingSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
        &MIGRATOR
    }

    fn validate(config: &ServiceConfig<PilotOrderingSettings>) -> Result<(), ConfigError> {
        config.settings.policy().map(|_| ())
    }

    fn build(db: Db, settings: PilotOrderingSettings) -> anyhow::Result<Assembly> {
        let policy = Arc::new(settings.policy()?);
        let clock: SharedClock = db.clock().clone();
        let payment: Arc<dyn PaymentPort> =
            Arc::new(RecordingPaymentPort::new(settings.payment.fake_outcome));
        let notifier: Arc<dyn SupplierNotifier> = Arc::new(RecordingSupplierNotifier::default());
        let api = PilotOrderingApi::new(db.clone(), policy.clone(), payment.clone());
        let events = OrderingEvents {
            policy: policy.clone(),
            clock: clock.clone(),
        };
        let (sweep_db, sweep_policy, sweep_clock) = (db.clone(), policy.clone(), clock.clone());
        let (dispatch_db, dispatch_policy, dispatch_clock) = (db, policy, clock);
        Ok(Assembly::serving(PilotOrderingServiceServer::new(api))
            .consuming(
                EventRouter::new(events)
                    .from("routing")
                    .on::<v1::CaseRouted>()
                    .on::<v1::CaseFlowChanged>()
                    .from("expert-registry")
                    .on::<v1::AgreementActivated>()
                    .on::<v1::AgreementUpdated>()
                    .on::<v1::AgreementEnded>()
                    .on::<v1::ExpertRegistered>()
                    .on::<v1::ExpertUpdated>()
                    .from("budget")
                    .on::<v1::FundsReserved>()
                    .on::<v1::FundsDenied>(),
            )
            .worker("pilot-ordering-sweep", move |shutdown, _grace| async move {
                let interval = sweep_policy.sweep_interval;
                jobs::every("sweep", interval, sweep_clock, shutdown, |now| {
                    sweep::sweep(&sweep_db, &sweep_policy, now)
                })
                .await
            })
            .worker(
                "pilot-ordering-dispatch",
                move |shutdown, _grace| async move {
                    let interval = dispatch_policy.dispatch_interval;
                    jobs::every("dispatch", interval, dispatch_clock, shutdown, |now| {
                        sweep::dispatch(
                            &dispatch_db,
                            &dispatch_policy,
                            notifier.as_ref(),
                            payment.as_ref(),
                            now,
                        )
                    })
                    .await
                },
            ))
    }
}
