//! The evaluation service: the § 9a pilot's evaluation figures. The pilot exists to learn
//! whether ordering experts under framework agreements increases use of the grant through
//! simpler administration for employers and NAV; this service reads every domain topic into a
//! read model without personal data and answers, per county, flow and month cases were opened
//! in, the figures an evaluator needs — over gRPC, as CSV and as an HTML report
//! (docs/evaluation.md, docs/adr/0033, docs/adr/0034).
//!
//! Events are stored as facts per case (`read_model`, `store`); a table folds them into
//! [`case_facts::CaseFacts`] (`fold`), computes the suppressed cells (`cohorts`) and renders them
//! (`csv_export`, `report`). [`Evaluation`] describes the service to the platform; `main.rs` is
//! one line.

pub mod case_facts;
pub mod cohorts;
pub mod commands;
pub mod config;
pub mod csv_export;
pub mod employees;
pub mod fingerprint;
pub mod fold;
pub mod handlers;
pub mod read_model;
pub mod report;
pub mod store;
pub mod suppression;
pub mod table;

use ekb_platform::{
    config::{ConfigError, ServiceConfig},
    messaging::{Db, EventRouter},
    service::{Assembly, ServiceDescription},
};
use ekb_proto::v1::{self, evaluation_service_server::EvaluationServiceServer};

pub use config::EvaluationSettings;
use handlers::EvaluationApi;
use read_model::EvaluationEvents;

/// The evaluation service, as the platform runs it.
#[derive(Debug)]
pub struct Evaluation;

impl ServiceDescription for Evaluation {
    const NAME: &'static str = "evaluation";
    const DEFAULTS: &'static str = config::DEFAULTS;

    type Server = EvaluationServiceServer<EvaluationApi>;
    type Settings = EvaluationSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
        &MIGRATOR
    }

    fn validate(config: &ServiceConfig<EvaluationSettings>) -> Result<(), ConfigError> {
        config.settings.policy().map(|_| ())
    }

    fn build(db: Db, settings: EvaluationSettings) -> anyhow::Result<Assembly> {
        let policy = settings.policy()?;
        let events = EvaluationEvents::new(policy.case_key.clone());
        let api = EvaluationApi::new(db, policy);
        Ok(
            Assembly::serving(EvaluationServiceServer::new(api)).consuming(
                EventRouter::new(events)
                    .from("routing")
                    .on_each::<(v1::CaseRouted, v1::CaseFlowChanged)>()
                    .from("applications")
                    .on_each::<(
                        v1::ApplicationSubmitted,
                        v1::GrantRequested,
                        v1::GrantApproved,
                        v1::ApplicationRejected,
                        v1::ApplicationWithdrawn,
                        v1::GrantCancellationRequested,
                        v1::GrantCancelled,
                    )>()
                    .from("refunds")
                    .on_each::<(
                        v1::RefundClaimSubmitted,
                        v1::RefundApproved,
                        v1::RefundRejected,
                        v1::GrantExpired,
                        v1::RefundDeadlineExtended,
                        v1::PaymentCompleted,
                        v1::PaymentFailed,
                    )>()
                    .from("pilot-ordering")
                    .on_each::<(
                        v1::OrderRequested,
                        v1::OrderPlaced,
                        v1::OrderAccepted,
                        v1::OrderDeclined,
                        v1::OrderStarted,
                        v1::OrderCompleted,
                        v1::OrderCancelled,
                        v1::OrderAborted,
                    )>()
                    .on_each::<(v1::InvoiceApproved, v1::InvoiceRejected)>()
                    .from("budget")
                    .on_each::<(v1::FundsDisbursed, v1::FundsReleased)>()
                    .from("expert-registry")
                    .on_each::<(
                        v1::AgreementActivated,
                        v1::AgreementUpdated,
                        v1::AgreementEnded,
                    )>(),
            ),
        )
    }
}
