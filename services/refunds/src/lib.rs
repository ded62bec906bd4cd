//! The refunds service: the end of the regular grant flow. It learns grants from applications'
//! GrantApproved, takes the employer's refund claim against a grant (invoice, actual assistance
//! dates, the expert's report), has a caseworker recommend and another person decide it (four
//! eyes), publishes RefundApproved (budget disburses the payout and releases the rest) and pays
//! through NAV's payment system behind a port. Unused grants expire after their deadline and a
//! grace period (GrantExpired: budget releases) or are cancelled on applications' request.
//! The contract is refunds.proto; its decisions are ADR 0021, this service's own ADR 0024.
//!
//! [`Refunds`] describes the service to the platform; `main.rs` is one line.

pub mod claim;
pub mod codes;
pub mod commands;
pub mod config;
pub mod consumed;
pub mod grant;
pub mod handlers;
pub mod jobs;
pub mod model;
pub mod payment;
pub mod published;
pub mod store;
#[cfg(test)]
mod test_fixtures;
pub mod trail;

use std::sync::Arc;

use ekb_platform::{
    config::{ConfigError, ServiceConfig},
    messaging::{Db, EventRouter},
    payment::{PaymentPort, RecordingPaymentPort},
    service::{Assembly, ServiceDescription},
};
use ekb_proto::v1::{self, refunds_service_server::RefundsServiceServer};

pub use config::RefundsSettings;
use consumed::RefundsEvents;
use handlers::RefundsApi;
use payment::Payments;

/// The refunds service, as the platform runs it.
#[derive(Debug)]
pub struct Refunds;

/// The employer's representative (employer portal).
pub const EMPLOYER: &str = "refund-employer";
/// A NAV caseworker.
pub const CASEWORKER: &str = "refund-caseworker";
/// A NAV decider.
pub const DECIDER: &str = "refund-decider";
/// Read-only NAV access.
pub const READER: &str = "refund-reader";

impl ServiceDescription for Refunds {
    const NAME: &'static str = "refunds";
    const DEFAULTS: &'static str = config::DEFAULTS;
    const REPLACED_KEYS: &'static [ekb_platform::config::ReplacedKey] = config::REPLACED_KEYS;
    const CONSTRAINTS: ekb_platform::error::ConstraintMessages = &[
        (
            "claims_request_unique",
            "this request id was used for another claim",
        ),
        (
            "claims_one_live_per_grant",
            "a claim against this grant is pending or approved",
        ),
    ];

    type Server = RefundsServiceServer<RefundsApi>;
    type Settings = RefundsSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
        &MIGRATOR
    }

    fn validate(config: &ServiceConfig<RefundsSettings>) -> Result<(), ConfigError> {
        config.settings.rules().map(|_| ())
    }

    fn build(db: Db, settings: RefundsSettings) -> anyhow::Result<Assembly> {
        let port: Arc<dyn PaymentPort> =
            Arc::new(RecordingPaymentPort::new(settings.payment.fake_outcome));
        let rules = Arc::new(settings.rules()?);
        let payments = Payments::new(db.clone(), port);
        let api = RefundsApi::new(db.clone(), rules.clone(), payments.clone());
        let resend_after = rules.payment_resend_after;
        let (expiry_db, retention_db) = (db.clone(), db.clone());
        Ok(Assembly::serving(RefundsServiceServer::new(api))
            .consuming(
                EventRouter::new(RefundsEvents)
                    .from("applications")
                    .on::<v1::GrantApproved>()
                    .on::<v1::GrantCancellationRequested>()
                    .on::<v1::GrantCancelled>(),
            )
            .worker("expiry", {
                let interval = rules.expiry_interval;
                let grace_days = rules.late_claim_grace_days;
                move |cancel, _shutdown_grace| {
                    let clock = expiry_db.clock().clone();
                    ekb_platform::jobs::every("expiry", interval, clock, cancel, move |now| {
                        let db = expiry_db.clone();
                        async move { jobs::expire_due(&db, grace_days, now).await }
                    })
                }
            })
            .worker("retention", {
                let interval = rules.retention_interval;
                let retention = rules.retention;
                move |cancel, _shutdown_grace| {
                    let clock = retention_db.clock().clone();
                    ekb_platform::jobs::every("retention", interval, clock, cancel, move |now| {
                        let db = retention_db.clone();
                        async move { jobs::apply_retention(&db, &retention, now).await }
                    })
                }
            })
            .worker("payments", {
                let interval = rules.payment_worker_interval;
                let clock = db.clock().clone();
                move |cancel, _shutdown_grace| {
                    ekb_platform::jobs::every("payments", interval, clock, cancel, move |now| {
                        let payments = payments.clone();
                        async move { payments.resend_unanswered(resend_after, now).await }
                    })
                }
            }))
    }
}
