//! What pilot-ordering's service tests share: a stack (the service with authentication, the
//! broker, a scripted budget, an issuer of tokens), the upstream events they publish as routing,
//! the registry and budget would, requests, and readers of the service's outbox and tables.

use std::time::Duration;

use anyhow::Context;
use ekb_pilot_ordering::{PilotOrdering, config::OrderingPolicy};
use ekb_platform::{
    messaging::{Db, EventSubject, Outbox},
    service,
};
use ekb_proto::v1::{
    self, EventEnvelope, pilot_ordering_service_client::PilotOrderingServiceClient,
};
pub use ekb_testkit::status::{reason, violated_fields};
use ekb_testkit::{
    events::ScriptedBudget,
    fixtures,
    issuer::TestIssuer,
    service_under_test::{ServiceUnderTest, eventually},
    services::with_bearer,
};
use prost::{Message, Name};
use sqlx::PgPool;
use tonic::transport::Channel;

/// How long a test waits for the service to catch up.
pub const WAIT: Duration = Duration::from_secs(30);
/// Supplier A (ranked first in most tests).
pub const SUPPLIER_A: &str = "923609016";
/// Supplier B.
pub const SUPPLIER_B: &str = "974760673";
/// The county.
pub const COUNTY: &str = "34";
/// The area ordered.
pub const AREA: v1::CompetenceArea = v1::CompetenceArea::ConflictHandling;
/// Agreement price in øre.
pub const PRICE: i64 = 2_400_000;

/// The client type.
pub type Client = PilotOrderingServiceClient<Channel>;

/// The service, with what surrounds it.
pub struct Stack {
    /// The service under test.
    pub sut: ServiceUnderTest,
    /// Token issuer.
    pub issuer: TestIssuer,
    /// The scripted budget, when started (kept alive while the stack lives).
    pub _budget: Option<ScriptedBudget>,
    /// A client.
    pub client: Client,
    /// The service's database.
    pub pool: PgPool,
}

impl Stack {
    /// Starts the service with authentication and, unless `budget_ore` is None, a scripted
    /// budget with that much to reserve.
    pub async fn start(purpose: &str, budget_ore: Option<i64>) -> anyhow::Result<Self> {
        Self::start_with(purpose, budget_ore, &[]).await
    }

    /// As [`Stack::start`], with the settings in `overrides` (key, value) applied last.
    pub async fn start_with(
        purpose: &str,
        budget_ore: Option<i64>,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let issuer = TestIssuer::start().await?;
        let sut = ServiceUnderTest::start_with::<PilotOrdering>(purpose, |settings| {
            overrides.iter().fold(
                settings
                    .with_auth(&issuer)
                    .with("pilot_ordering.dispatch_interval", "100ms")
                    .with("database.max_connections", "12"),
                |settings, (key, value)| settings.with(key, *value),
            )
        })
        .await?;
        let budget = match budget_ore {
            Some(ore) => Some(
                ScriptedBudget::start(sut.broker.bootstrap_servers(), &sut.topic_prefix, ore)
                    .await?,
            ),
            None => None,
        };
        let client = PilotOrderingServiceClient::new(sut.channel().await?);
        let pool = PgPool::connect(sut.database_url()).await?;
        Ok(Stack {
            sut,
            issuer,
            _budget: budget,
            client,
            pool,
        })
    }

    /// A caseworker's token (NAV ident `ident`).
    pub fn caseworker(&self, ident: &str) -> String {
        self.issuer.token(ident, &["pilot-caseworker"])
    }

    /// An approver's token.
    pub fn approver(&self, ident: &str) -> String {
        self.issuer.token(ident, &["pilot-approver"])
    }

    /// An auditor's token (NAV ident `ident`).
    pub fn auditor(&self, ident: &str) -> String {
        self.issuer.token(ident, &["pilot-auditor"])
    }

    /// A supplier system's token for `organisation`.
    pub fn supplier(&self, organisation: &str) -> String {
        self.issuer.token_for_organisations(
            &format!("system-{organisation}"),
            &["pilot-supplier"],
            &[organisation],
        )
    }

    /// The checked policy the service runs with.
    pub fn policy(&self) -> anyhow::Result<OrderingPolicy> {
        let loader = self
            .sut
            .settings
            .apply(service::config_loader::<PilotOrdering>());
        Ok(service::load_config::<PilotOrdering>(&loader)?
            .settings
            .policy()?)
    }

    /// A unit-of-work source on the service's database and outbox (for the sweep).
    pub fn db(&self) -> Db {
        Db::new(
            self.pool.clone(),
            Outbox::for_service(&self.sut.topic_prefix, "pilot-ordering"),
        )
    }

    /// Publishes CaseRouted PILOT for a new case, and waits until the service has it.
    pub async fn pilot_case(&self) -> anyhow::Result<String> {
        let case_id = uuid::Uuid::now_v7().to_string();
        self.route(&case_id, v1::Flow::Pilot).await?;
        self.wait_for_case(&case_id).await?;
        Ok(case_id)
    }

    /// Publishes CaseRouted for `case_id` with `flow`.
    pub async fn route(&self, case_id: &str, flow: v1::Flow) -> anyhow::Result<EventEnvelope> {
        let event = v1::CaseRouted {
            case_id: case_id.to_owned(),
            employer_organisation_number: fixtures::EMPLOYER_ORGNR.to_owned(),
            municipality_number: fixtures::HAMAR.to_owned(),
            county_code: COUNTY.to_owned(),
            expert_choice: Some(v1::ExpertChoice {
                choice: Some(v1::expert_choice::Choice::FrameworkAgreement(
                    v1::FrameworkAgreementChoice {
                        competence_area: AREA as i32,
                    },
                )),
            }),
            case_date: "2026-01-05".to_owned(),
            flow: flow as i32,
            reason: v1::RoutingReason::PilotEligible as i32,
            opened_at: Some(prost_types::Timestamp {
                seconds: time::OffsetDateTime::now_utc().unix_timestamp() - 86_400,
                nanos: 0,
            }),
        };
        self.sut
            .feed
            .publish("routing", &EventSubject::case(case_id), &event)
            .await
    }

    /// Waits until case `case_id` is in the read model.
    pub async fn wait_for_case(&self, case_id: &str) -> anyhow::Result<()> {
        let id = uuid::Uuid::parse_str(case_id)?;
        eventually("the case to arrive", WAIT, || async {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1::bigint FROM cases WHERE case_id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(found)
        })
        .await?;
        Ok(())
    }

    /// Publishes an agreement (AgreementActivated, or `E`) and waits until it is stored at
    /// that version.
    pub async fn agreement(&self, agreement: &v1::Agreement) -> anyhow::Result<()> {
        self.publish_agreement(&v1::AgreementActivated {
            agreement: Some(agreement.clone()),
        })
        .await?;
        self.wait_for_agreement(agreement).await
    }

    /// Publishes an agreement event as the registry would.
    pub async fn publish_agreement<M: Message + Name>(
        &self,
        event: &M,
    ) -> anyhow::Result<EventEnvelope> {
        self.sut
            .feed
            .publish(
                "expert-registry",
                &EventSubject::aggregate(uuid::Uuid::now_v7().to_string()),
                event,
            )
            .await
    }

    /// Publishes a budget event about case `case_id` as budget would.
    pub async fn publish_budget<M: Message + Name>(
        &self,
        case_id: &str,
        event: &M,
    ) -> anyhow::Result<EventEnvelope> {
        self.sut
            .feed
            .publish("budget", &EventSubject::case(case_id), event)
            .await
    }

    /// Waits until `agreement` is stored at its version.
    pub async fn wait_for_agreement(&self, agreement: &v1::Agreement) -> anyhow::Result<()> {
        let id = uuid::Uuid::parse_str(&agreement.agreement_id)?;
        let version = agreement.version;
        eventually("the agreement to arrive", WAIT, || async {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT version FROM agreements WHERE agreement_id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(found.filter(|stored| *stored >= version))
        })
        .await?;
        Ok(())
    }

    /// Places an order for `case_id` as caseworker `ident`.
    pub async fn place(&self, case_id: &str, ident: &str) -> Result<v1::Order, tonic::Status> {
        let response = self
            .client
            .clone()
            .place_order(with_bearer(place_request(case_id), &self.caseworker(ident)))
            .await?;
        Ok(response.into_inner().order.unwrap_or_default())
    }

    /// GetOrder as a reader.
    pub async fn order(&self, order_id: &str) -> anyhow::Result<v1::Order> {
        let token = self.issuer.token("Z000001", &["pilot-reader"]);
        self.client
            .clone()
            .get_order(with_bearer(
                v1::GetOrderRequest {
                    order_id: order_id.to_owned(),
                },
                &token,
            ))
            .await?
            .into_inner()
            .order
            .context("no order")
    }

    /// Waits until order `order_id` has `status`.
    pub async fn wait_status(
        &self,
        order_id: &str,
        status: v1::OrderStatus,
    ) -> anyhow::Result<v1::Order> {
        eventually(
            &format!("order {order_id} to be {status:?}"),
            WAIT,
            || async {
                let order = self.order(order_id).await?;
                Ok((order.status() == status).then_some(order))
            },
        )
        .await
    }

    /// The supplier `organisation` answers `order_id`.
    pub async fn answer(
        &self,
        order_id: &str,
        organisation: &str,
        response: v1::SupplierResponse,
    ) -> Result<v1::RecordSupplierResponseResponse, tonic::Status> {
        let declined = response == v1::SupplierResponse::Declined;
        Ok(self
            .client
            .clone()
            .record_supplier_response(with_bearer(
                v1::RecordSupplierResponseRequest {
                    order_id: order_id.to_owned(),
                    response: response as i32,
                    responded_date: today(),
                    decline_reason: String::new(),
                    decline_reason_code: if declined {
                        v1::SupplierDeclineReason::NoCapacity as i32
                    } else {
                        0
                    },
                },
                &self.supplier(organisation),
            ))
            .await?
            .into_inner())
    }

    /// RecordExpertStarted for `order_id`, started today by `expert_id` (none when empty), as
    /// `token`; returns the order.
    pub async fn start_expert(
        &self,
        order_id: &str,
        expert_id: &str,
        token: &str,
    ) -> Result<v1::Order, tonic::Status> {
        Ok(self
            .client
            .clone()
            .record_expert_started(with_bearer(
                v1::RecordExpertStartedRequest {
                    order_id: order_id.to_owned(),
                    started_date: today(),
                    expert_id: expert_id.to_owned(),
                },
                token,
            ))
            .await?
            .into_inner()
            .order
            .unwrap_or_default())
    }

    /// CompleteOrder for `order_id`, completed today with a new report, as `token`; returns the
    /// order.
    pub async fn complete(&self, order_id: &str, token: &str) -> Result<v1::Order, tonic::Status> {
        Ok(self
            .client
            .clone()
            .complete_order(with_bearer(
                v1::CompleteOrderRequest {
                    order_id: order_id.to_owned(),
                    completed_date: today(),
                    report_document_id: uuid::Uuid::now_v7().to_string(),
                },
                token,
            ))
            .await?
            .into_inner()
            .order
            .unwrap_or_default())
    }

    /// AbortOrder for `order_id` with `reason` (no explanation), aborted today, as `token`;
    /// returns the order.
    pub async fn abort(
        &self,
        order_id: &str,
        reason: v1::OrderAbortReason,
        token: &str,
    ) -> Result<v1::Order, tonic::Status> {
        Ok(self
            .client
            .clone()
            .abort_order(with_bearer(
                v1::AbortOrderRequest {
                    order_id: order_id.to_owned(),
                    reason: reason as i32,
                    explanation: String::new(),
                    aborted_date: today(),
                },
                token,
            ))
            .await?
            .into_inner()
            .order
            .unwrap_or_default())
    }

    /// CancelOrder for `order_id` with `reason` and `explanation`, as `token`; returns the order.
    pub async fn cancel(
        &self,
        order_id: &str,
        reason: v1::OrderCancellationReason,
        explanation: &str,
        token: &str,
    ) -> Result<v1::Order, tonic::Status> {
        Ok(self
            .client
            .clone()
            .cancel_order(with_bearer(
                v1::CancelOrderRequest {
                    order_id: order_id.to_owned(),
                    reason: reason as i32,
                    explanation: explanation.to_owned(),
                },
                token,
            ))
            .await?
            .into_inner()
            .order
            .unwrap_or_default())
    }

    /// SubmitInvoice of `amount_ore` for `order_id` ([`invoice_request`]) as supplier
    /// `organisation`; returns the invoice.
    pub async fn submit_invoice(
        &self,
        order_id: &str,
        amount_ore: i64,
        organisation: &str,
    ) -> Result<v1::SupplierInvoice, tonic::Status> {
        Ok(self
            .client
            .clone()
            .submit_invoice(with_bearer(
                invoice_request(order_id, amount_ore),
                &self.supplier(organisation),
            ))
            .await?
            .into_inner()
            .invoice
            .unwrap_or_default())
    }

    /// AttestInvoice `invoice_id` as `token`; returns the invoice.
    pub async fn attest(
        &self,
        invoice_id: &str,
        token: &str,
    ) -> Result<v1::SupplierInvoice, tonic::Status> {
        Ok(self
            .client
            .clone()
            .attest_invoice(with_bearer(
                v1::AttestInvoiceRequest {
                    invoice_id: invoice_id.to_owned(),
                },
                token,
            ))
            .await?
            .into_inner()
            .invoice
            .unwrap_or_default())
    }

    /// ApproveInvoice `invoice_id` as `token`; returns the invoice.
    pub async fn approve(
        &self,
        invoice_id: &str,
        token: &str,
    ) -> Result<v1::SupplierInvoice, tonic::Status> {
        Ok(self
            .client
            .clone()
            .approve_invoice(with_bearer(
                v1::ApproveInvoiceRequest {
                    invoice_id: invoice_id.to_owned(),
                },
                token,
            ))
            .await?
            .into_inner()
            .invoice
            .unwrap_or_default())
    }

    /// RecordInvoicePaymentOutcome `request` as `token`; returns the invoice.
    pub async fn record_outcome(
        &self,
        request: v1::RecordInvoicePaymentOutcomeRequest,
        token: &str,
    ) -> Result<v1::SupplierInvoice, tonic::Status> {
        Ok(self
            .client
            .clone()
            .record_invoice_payment_outcome(with_bearer(request, token))
            .await?
            .into_inner()
            .invoice
            .unwrap_or_default())
    }

    /// ListOrders `request` as `token`.
    pub async fn list_orders(
        &self,
        request: v1::ListOrdersRequest,
        token: &str,
    ) -> Result<v1::ListOrdersResponse, tonic::Status> {
        Ok(self
            .client
            .clone()
            .list_orders(with_bearer(request, token))
            .await?
            .into_inner())
    }

    /// Publishes routing's CaseFlowChanged moving `case_id` from PILOT to REGULAR for `reason`,
    /// from `source`, changed by `changed_by`.
    pub async fn leave_pilot(
        &self,
        case_id: &str,
        reason: v1::FlowChangeReason,
        source: v1::FlowChangeSource,
        changed_by: &str,
    ) -> anyhow::Result<EventEnvelope> {
        self.sut
            .feed
            .publish(
                "routing",
                &EventSubject::case(case_id),
                &v1::CaseFlowChanged {
                    case_id: case_id.to_owned(),
                    from_flow: v1::Flow::Pilot as i32,
                    to_flow: v1::Flow::Regular as i32,
                    reason: reason as i32,
                    source: source as i32,
                    changed_by: changed_by.to_owned(),
                    sequence: 1,
                    county_code: COUNTY.to_owned(),
                    employer_organisation_number: fixtures::EMPLOYER_ORGNR.to_owned(),
                    opened_at: Some(prost_types::Timestamp {
                        seconds: 1_780_000_000,
                        nanos: 0,
                    }),
                    changed_at: None,
                    fallback_event_id: String::new(),
                },
            )
            .await
    }

    /// The events in the outbox, in order: (type short name, envelope).
    pub async fn outbox(&self) -> anyhow::Result<Vec<(String, EventEnvelope)>> {
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT event_type, payload FROM outbox ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(event_type, payload)| {
                let envelope = EventEnvelope::decode(payload.as_slice())?;
                Ok((event_type.replace("ekspertbistand.v1.", ""), envelope))
            })
            .collect()
    }

    /// The outbox's events of type `M`.
    pub async fn events<M: Message + Name + Default>(&self) -> anyhow::Result<Vec<M>> {
        Ok(self
            .outbox()
            .await?
            .into_iter()
            .filter(|(_, envelope)| envelope.event_type == M::full_name())
            .filter_map(|(_, envelope)| M::decode(envelope.payload.as_slice()).ok())
            .collect())
    }

    /// The order ids (`order_id` of each) of the outbox's events of type `M`, in order.
    pub async fn order_ids<M: Message + Name + Default>(
        &self,
        order_id: impl Fn(M) -> String,
    ) -> anyhow::Result<Vec<String>> {
        Ok(self
            .events::<M>()
            .await?
            .into_iter()
            .map(order_id)
            .collect())
    }

    /// The outbox's event type names, in order.
    pub async fn event_types(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .outbox()
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// Every order requested (OrderRequested) ends in exactly one money-closing event
    /// (OrderDeclined, OrderCancelled, OrderExpired or InvoiceApproved), or is still live in
    /// `live`; an order with a reservation is never left holding money otherwise.
    pub async fn assert_money_closed(&self, live: &[&str]) -> anyhow::Result<()> {
        let requested = self.events::<v1::OrderRequested>().await?;
        let closing: Vec<String> = [
            self.order_ids(|e: v1::OrderDeclined| e.order_id).await?,
            self.order_ids(|e: v1::OrderCancelled| e.order_id).await?,
            self.order_ids(|e: v1::OrderExpired| e.order_id).await?,
            self.order_ids(|e: v1::InvoiceApproved| e.order_id).await?,
        ]
        .concat();
        for request in &requested {
            let closes = closing.iter().filter(|id| **id == request.order_id).count();
            if live.contains(&request.order_id.as_str()) {
                anyhow::ensure!(closes == 0, "live order {} was closed", request.order_id);
            } else {
                anyhow::ensure!(
                    closes == 1,
                    "order {} has {closes} closing events, not one",
                    request.order_id
                );
            }
        }
        Ok(())
    }
}

/// Today in Oslo, `YYYY-MM-DD`.
pub fn today() -> String {
    ekb_proto::convert::date_to_wire(ekb_domain::oslo_date(time::OffsetDateTime::now_utc()))
}

/// A valid (non-synthetic) fødselsnummer for the tests: born 1 January 1990.
pub fn fodselsnummer() -> String {
    ekb_testkit::people::fodselsnummer("010190", 100)
}

/// A valid SubmitInvoice of `amount_ore` for `order_id`, dated today, with a fresh request id.
pub fn invoice_request(order_id: &str, amount_ore: i64) -> v1::SubmitInvoiceRequest {
    v1::SubmitInvoiceRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        order_id: order_id.to_owned(),
        invoice_number: "F-2026-001".to_owned(),
        invoice_date: today(),
        amount_ore,
        invoice_document_id: uuid::Uuid::now_v7().to_string(),
    }
}

/// A valid PlaceOrder for `case_id` with a fresh request id.
pub fn place_request(case_id: &str) -> v1::PlaceOrderRequest {
    v1::PlaceOrderRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.to_owned(),
        contact_person: Some(v1::ContactPerson {
            name: "Kari Nordmann".to_owned(),
            phone_number: "+47 99 88 77 66".to_owned(),
            email: "kari@example.no".to_owned(),
        }),
        assignment_description: "Kartlegging av arbeidsmiljø og konflikt i avdelingen.".to_owned(),
        employee_fodselsnummer: fodselsnummer(),
    }
}

/// An active agreement for county 34 and [`AREA`] with `supplier`, `ranking`, `price_ore`,
/// `capacity` (valid 2024 to 2028), at version 1.
pub fn agreement(
    supplier: &str,
    reference: &str,
    ranking: i32,
    price_ore: i64,
    capacity: i32,
) -> v1::Agreement {
    let mut agreement =
        fixtures::agreement_state(&uuid::Uuid::now_v7().to_string(), COUNTY, &[AREA], 1);
    agreement.agreement_reference = reference.to_owned();
    agreement.supplier_organisation_number = supplier.to_owned();
    agreement.supplier_name = format!("Supplier {supplier}");
    agreement.terms = Some(v1::AgreementTerms {
        ranking,
        price_per_assignment_ore: price_ore,
        monthly_capacity: capacity,
        validity: Some(fixtures::date_range("2024-01-01", "2028-12-31")),
        ..fixtures::agreement_terms(&[AREA])
    });
    agreement
}
