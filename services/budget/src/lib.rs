//! The budget service: the money ledger both flows reserve from, disburse from and report usage
//! on. Appropriations per budget year and account (chapter 2650 post 76 for grants and pilot
//! orders; 605.01 for pilot administration), one reservation per commitment (grant or pilot
//! order), and an append-only ledger of reserve, release and disburse entries from which every
//! balance derives (docs/budget-ledger-and-saga.md, ADR 0020).
//!
//! Money moves only by events: GrantRequested and OrderRequested are answered FundsReserved or
//! FundsDenied (or wait as PENDING until the year's appropriation is set); refunds, invoices,
//! withdrawals, rejections, cancellations and expiries disburse or release. The RPCs set
//! appropriations and report.
//!
//! [`Budget`] describes the service to the platform; `main.rs` is one line.

pub mod commands;
pub mod config;
pub mod handlers;
pub mod ledger;
pub mod model;
pub mod reconcile;
pub mod requests;
pub mod rules;
pub mod saga;
pub mod usage;

use std::sync::Arc;

use ekb_platform::{
    config::{ConfigError, ServiceConfig},
    messaging::{Db, EventRouter},
    service::{Assembly, ServiceDescription},
};
use ekb_proto::v1::{self, budget_service_server::BudgetServiceServer};

pub use config::BudgetSettings;
use handlers::BudgetApi;
use saga::BudgetState;

/// The budget service, as the platform runs it.
#[derive(Debug)]
pub struct Budget;

impl ServiceDescription for Budget {
    const NAME: &'static str = "budget";
    const DEFAULTS: &'static str = config::DEFAULTS;
    const LIST_KEYS: &'static [&'static str] = config::LIST_KEYS;

    type Server = BudgetServiceServer<BudgetApi>;
    type Settings = BudgetSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
        &MIGRATOR
    }

    fn validate(config: &ServiceConfig<BudgetSettings>) -> Result<(), ConfigError> {
        config.settings.policy().map(|_| ())
    }

    fn build(db: Db, settings: BudgetSettings) -> anyhow::Result<Assembly> {
        let policy = Arc::new(settings.policy()?);
        let clock = db.clock().clone();
        let api = BudgetApi::new(db, policy.clone());
        Ok(Assembly::serving(BudgetServiceServer::new(api)).consuming(
            EventRouter::new(BudgetState::new(policy, clock))
                .from("applications")
                .on_each::<(
                    v1::GrantRequested,
                    v1::ApplicationWithdrawn,
                    v1::ApplicationRejected,
                    v1::GrantCancelled,
                )>()
                .from("refunds")
                .on_each::<(v1::RefundApproved, v1::GrantExpired)>()
                .from("pilot-ordering")
                .on_each::<(
                    v1::OrderRequested,
                    v1::OrderDeclined,
                    v1::OrderCancelled,
                    v1::OrderExpired,
                    v1::InvoiceApproved,
                )>(),
        ))
    }
}
