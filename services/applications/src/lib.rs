//! The applications service: the regular grant flow's application (søknad), its assessment of
//! the five conditions, the four-eyes decision and the money saga with budget (ADR 0021).
//!
//! An employer applies for a REGULAR case (routing's cases are a local read model); caseworkers
//! assess and recommend; a different person decides. Confirming a grant publishes
//! GrantRequested; budget's FundsReserved makes it GRANTED (GrantApproved, for refunds), its
//! FundsDenied FUNDS_DENIED (asked again or made final). Cancelling a grant asks refunds first.
//! The fødselsnummer is stored sealed and published only as a keyed pseudonym; every change and
//! every read of personal data is in the audit trail; personal data is erased a configured time
//! after the case ends.
//!
//! [`Applications`] describes the service to the platform; `main.rs` is one line.

pub mod codes;
pub mod commands;
pub mod config;
pub mod decisions;
pub mod events;
pub mod handlers;
pub mod jobs;
pub mod model;
pub mod saga;
pub mod store;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use ekb_platform::{
    config::{ConfigError, ServiceConfig},
    jobs::every,
    messaging::{Db, EventRouter},
    service::{Assembly, ServiceDescription},
};
use ekb_proto::v1::{self, applications_service_server::ApplicationsServiceServer};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

pub use config::ApplicationsSettings;
use config::Policy;
use handlers::ApplicationsApi;
use saga::ApplicationsState;

/// The applications service, as the platform runs it.
#[derive(Debug)]
pub struct Applications;

/// The employer's representative, through the employer portal.
pub const EMPLOYER: &str = "application-employer";
/// A caseworker: reviews, assesses, recommends.
pub const CASEWORKER: &str = "application-caseworker";
/// A decider: decides recommendations, makes a funds denial final, revokes grants.
pub const DECIDER: &str = "application-decider";
/// Read-only NAV access.
pub const READER: &str = "application-reader";

impl ServiceDescription for Applications {
    const NAME: &'static str = "applications";
    const DEFAULTS: &'static str = config::DEFAULTS;
    const LIST_KEYS: &'static [&'static str] = config::LIST_KEYS;
    const REPLACED_KEYS: &'static [ekb_platform::config::ReplacedKey] = config::REPLACED_KEYS;
    const CONSTRAINTS: ekb_platform::error::ConstraintMessages = &[
        (
            "applications_request_id_unique",
            "request_id was used for another application",
        ),
        (
            "applications_one_live_per_case",
            "the case has a live application",
        ),
    ];

    type Server = ApplicationsServiceServer<ApplicationsApi>;
    type Settings = ApplicationsSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
        &MIGRATOR
    }

    fn validate(config: &ServiceConfig<ApplicationsSettings>) -> Result<(), ConfigError> {
        config.settings.policy().map(|_| ())
    }

    fn build(db: Db, settings: ApplicationsSettings) -> anyhow::Result<Assembly> {
        let policy = Arc::new(settings.policy()?);
        let api = ApplicationsApi::new(db.clone(), policy.clone());
        let state = ApplicationsState::new(policy.clone());
        Ok(Assembly::serving(ApplicationsServiceServer::new(api))
            .consuming(
                EventRouter::new(state)
                    .from("routing")
                    .on::<v1::CaseRouted>()
                    .on::<v1::CaseFlowChanged>()
                    .from("budget")
                    .on::<v1::FundsReserved>()
                    .on::<v1::FundsDenied>()
                    .from("refunds")
                    .on::<v1::RefundClaimSubmitted>()
                    .on::<v1::RefundRejected>()
                    .on::<v1::RefundApproved>()
                    .on::<v1::GrantExpired>()
                    .on::<v1::RefundDeadlineExtended>()
                    .on::<v1::GrantCancellationAccepted>()
                    .on::<v1::GrantCancellationRefused>(),
            )
            .worker(
                "funds-request-resend",
                job(
                    &db,
                    &policy,
                    "funds-request-resend",
                    |db, policy, now| async move { jobs::resend_due(&db, &policy, now).await },
                ),
            )
            .worker(
                "personal-data-erasure",
                job(
                    &db,
                    &policy,
                    "personal-data-erasure",
                    |db, policy, now| async move { jobs::erase_due(&db, &policy, now).await },
                ),
            )
            .worker(
                "record-deletion",
                job(
                    &db,
                    &policy,
                    "record-deletion",
                    |db, policy, now| async move {
                        jobs::delete_expired_records(&db, &policy, now).await
                    },
                ),
            ))
    }
}

/// What a worker runs until shutdown.
type WorkerRun = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// The worker that runs job `name` — `run` with the database, the policy and the service
/// clock's now — every `policy.jobs_interval` ([`every`]) until shutdown.
fn job<F, Fut, T>(
    db: &Db,
    policy: &Arc<Policy>,
    name: &'static str,
    run: F,
) -> impl FnOnce(CancellationToken, Duration) -> WorkerRun + Send + 'static
where
    F: Fn(Db, Arc<Policy>, OffsetDateTime) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let (db, policy) = (db.clone(), policy.clone());
    move |shutdown, _grace| {
        Box::pin(async move {
            let clock = db.clock().clone();
            every(name, policy.jobs_interval, clock, shutdown, |now| {
                run(db.clone(), policy.clone(), now)
            })
            .await
        })
    }
}
