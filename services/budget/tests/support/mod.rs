//! What budget's service tests share: the commitments they reserve for, the upstream events
//! they publish on the real topics (as applications, refunds and pilot-ordering will), readers
//! of budget's own topic and dead-letter topic, and counts from budget's database.

use std::time::Duration;

use anyhow::Context;
use ekb_platform::messaging::EventSubject;
use ekb_proto::v1::{self, EventEnvelope};
use ekb_testkit::{events::EventFeed, service_under_test::eventually};
pub use ekb_testkit::{
    status::violated_fields,
    topic_reader::{of_type, read},
};
use sqlx::PgPool;
use tonic::Code;

/// The budget year most tests book on.
pub const YEAR: i32 = 2026;
/// The year before, for money released in a later year.
pub const LAST_YEAR: i32 = 2025;
/// How long a test waits for the service to catch up.
pub const WAIT: Duration = Duration::from_secs(30);

/// A budget client over a plain channel.
pub type BudgetClient = v1::budget_service_client::BudgetServiceClient<tonic::transport::Channel>;

/// Chapter 2650 post 76.
pub fn scheme() -> Option<v1::BudgetAccount> {
    Some(v1::BudgetAccount {
        chapter: 2650,
        post: 76,
    })
}

/// A fresh UUID v7 as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// SetAppropriation of `amount_ore` on 2650.76 for `year`, with the configured levels.
pub fn appropriation_request(year: i32, amount_ore: i64) -> v1::SetAppropriationRequest {
    v1::SetAppropriationRequest {
        budget_year: year,
        account: scheme(),
        appropriated_ore: amount_ore,
        threshold_percents: Vec::new(),
        note: "test".to_owned(),
    }
}

/// Sets the appropriation of `year` to `amount_ore`.
pub async fn set_appropriation(
    client: &mut BudgetClient,
    year: i32,
    amount_ore: i64,
) -> anyhow::Result<v1::Appropriation> {
    client
        .set_appropriation(appropriation_request(year, amount_ore))
        .await?
        .into_inner()
        .appropriation
        .context("no appropriation in the response")
}

/// The appropriation of `year` on 2650.76.
pub async fn appropriation(
    client: &mut BudgetClient,
    year: i32,
) -> anyhow::Result<v1::Appropriation> {
    client
        .get_appropriation(v1::GetAppropriationRequest {
            budget_year: year,
            account: scheme(),
        })
        .await?
        .into_inner()
        .appropriation
        .context("no appropriation in the response")
}

/// A grant or pilot order under test, with its case.
#[derive(Debug, Clone)]
pub struct Commitment {
    /// Grant or order.
    pub kind: v1::CommitmentKind,
    /// The grant id or order id.
    pub id: String,
    /// Its case.
    pub case_id: String,
    /// Its county.
    pub county: &'static str,
}

/// How a test ends a commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// ApplicationWithdrawn (grant).
    Withdrawn,
    /// ApplicationRejected (grant).
    Rejected,
    /// GrantCancelled.
    GrantCancelled,
    /// GrantExpired (refunds).
    GrantExpired,
    /// RefundApproved paying this much (refunds).
    Refund(i64),
    /// OrderDeclined.
    Declined,
    /// OrderCancelled.
    OrderCancelled,
    /// OrderExpired.
    OrderExpired,
    /// InvoiceApproved paying this much.
    Invoice(i64),
}

impl Closing {
    /// The status the commitment's reservation ends in: SETTLED when paid, else RELEASED.
    pub fn final_status(self) -> v1::ReservationStatus {
        match self {
            Closing::Refund(_) | Closing::Invoice(_) => v1::ReservationStatus::Settled,
            _ => v1::ReservationStatus::Released,
        }
    }
}

impl Commitment {
    /// A new grant in `county`.
    pub fn grant(county: &'static str) -> Self {
        Commitment {
            kind: v1::CommitmentKind::Grant,
            id: new_id(),
            case_id: new_id(),
            county,
        }
    }

    /// A new pilot order in `county`.
    pub fn order(county: &'static str) -> Self {
        Commitment {
            kind: v1::CommitmentKind::PilotOrder,
            ..Commitment::grant(county)
        }
    }

    /// The contract's commitment.
    pub fn wire(&self) -> v1::Commitment {
        v1::Commitment {
            kind: self.kind as i32,
            commitment_id: self.id.clone(),
        }
    }

    /// The service that publishes its events (requests and releases).
    pub fn producer(&self) -> &'static str {
        match self.kind {
            v1::CommitmentKind::PilotOrder => "pilot-ordering",
            _ => "applications",
        }
    }

    /// Its events' subject: keyed by case.
    pub fn subject(&self) -> EventSubject {
        EventSubject {
            case_id: Some(self.case_id.clone()),
            aggregate_id: self.id.clone(),
        }
    }

    /// The request its owner publishes (GrantRequested or OrderRequested).
    pub async fn request(
        &self,
        feed: &EventFeed,
        amount_ore: i64,
        year: i32,
    ) -> anyhow::Result<EventEnvelope> {
        match self.kind {
            v1::CommitmentKind::PilotOrder => {
                let event = v1::OrderRequested {
                    order_id: self.id.clone(),
                    case_id: self.case_id.clone(),
                    county_code: self.county.to_owned(),
                    competence_area: v1::CompetenceArea::ConflictHandling as i32,
                    agreement_id: new_id(),
                    supplier_organisation_number: "974760673".to_owned(),
                    amount_ore,
                    budget_year: year,
                    account: scheme(),
                    previous_order_id: String::new(),
                    requested_at: None,
                };
                feed.publish("pilot-ordering", &self.subject(), &event)
                    .await
            }
            _ => {
                let event = v1::GrantRequested {
                    grant_id: self.id.clone(),
                    application_id: new_id(),
                    case_id: self.case_id.clone(),
                    employer_organisation_number: "974760673".to_owned(),
                    county_code: self.county.to_owned(),
                    amount_ore,
                    budget_year: year,
                    account: scheme(),
                    requested_at: None,
                };
                feed.publish("applications", &self.subject(), &event).await
            }
        }
    }

    /// The event that ends it as `closing` says, published on its producer's topic.
    pub async fn close(&self, feed: &EventFeed, closing: Closing) -> anyhow::Result<EventEnvelope> {
        let subject = self.subject();
        let (id, case_id, county_code) = (
            self.id.clone(),
            self.case_id.clone(),
            self.county.to_owned(),
        );
        macro_rules! publish {
            ($producer:literal, $event:expr) => {
                feed.publish($producer, &subject, &$event).await
            };
        }
        match closing {
            Closing::Withdrawn => publish!(
                "applications",
                v1::ApplicationWithdrawn {
                    grant_id: id,
                    case_id,
                    county_code,
                    ..Default::default()
                }
            ),
            Closing::Rejected => publish!(
                "applications",
                v1::ApplicationRejected {
                    grant_id: id,
                    case_id,
                    county_code,
                    ..Default::default()
                }
            ),
            Closing::GrantCancelled => publish!(
                "applications",
                v1::GrantCancelled {
                    grant_id: id,
                    case_id,
                    county_code,
                    reason: v1::GrantCancellationReason::EmployerRequest as i32,
                    ..Default::default()
                }
            ),
            Closing::GrantExpired => publish!(
                "refunds",
                v1::GrantExpired {
                    grant_id: id,
                    case_id,
                    county_code,
                    ..Default::default()
                }
            ),
            Closing::Refund(payout_amount_ore) => publish!(
                "refunds",
                v1::RefundApproved {
                    claim_id: new_id(),
                    grant_id: id,
                    case_id,
                    county_code,
                    payout_amount_ore,
                    ..Default::default()
                }
            ),
            Closing::Declined => publish!(
                "pilot-ordering",
                v1::OrderDeclined {
                    order_id: id,
                    case_id,
                    county_code,
                    ..Default::default()
                }
            ),
            Closing::OrderCancelled => publish!(
                "pilot-ordering",
                v1::OrderCancelled {
                    order_id: id,
                    case_id,
                    county_code,
                    ..Default::default()
                }
            ),
            Closing::OrderExpired => publish!(
                "pilot-ordering",
                v1::OrderExpired {
                    order_id: id,
                    case_id,
                    county_code,
                    reason: v1::OrderExpiryReason::SupplierDidNotAnswer as i32,
                    ..Default::default()
                }
            ),
            Closing::Invoice(amount_ore) => publish!(
                "pilot-ordering",
                v1::InvoiceApproved {
                    invoice_id: new_id(),
                    order_id: id,
                    case_id,
                    county_code,
                    amount_ore,
                    ..Default::default()
                }
            ),
        }
    }

    /// Budget's reservation of it, if budget has its request.
    pub async fn reservation(
        &self,
        client: &mut BudgetClient,
    ) -> anyhow::Result<Option<v1::Reservation>> {
        match client
            .get_reservation(v1::GetReservationRequest {
                commitment: Some(self.wire()),
            })
            .await
        {
            Ok(response) => Ok(response.into_inner().reservation),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }

    /// Waits until its reservation has `status`.
    pub async fn wait_for(
        &self,
        client: &BudgetClient,
        status: v1::ReservationStatus,
    ) -> anyhow::Result<v1::Reservation> {
        eventually(
            &format!("{} {} to be {status:?}", self.kind.as_str_name(), self.id),
            WAIT,
            || async {
                let found = self.reservation(&mut client.clone()).await?;
                Ok(found.filter(|reservation| reservation.status() == status))
            },
        )
        .await
    }
}

/// Asserts that `Reconcile` finds the ledger of `YEAR` consistent: every øre reserved is
/// disbursed, released or still reserved, and the running totals match the entries.
pub async fn assert_reconciled(client: &BudgetClient) -> anyhow::Result<()> {
    let report = client
        .clone()
        .reconcile(v1::ReconcileRequest { budget_year: YEAR })
        .await?
        .into_inner();
    assert!(report.consistent, "{report:?}");
    Ok(())
}

/// One number from budget's database.
pub async fn count(pool: &PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// How many events of each type budget's outbox holds, by short type name.
pub async fn outbox_counts(pool: &PgPool) -> anyhow::Result<Vec<(String, i64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT replace(event_type, 'ekspertbistand.v1.', ''), count(*) FROM outbox \
         GROUP BY event_type ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
