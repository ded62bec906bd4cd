//! What refunds' service tests share: the harness (refunds with authentication, tokens for each
//! role, a client, a pool and a job handle on its database), applications' GrantApproved built
//! with the real v1 type and published on applications' real topic, and readers of refunds'
//! topic (over the testkit's topic reader) and outbox.

use ekb_proto::convert::gross_to_wire;
use std::time::{Duration, Instant};

use anyhow::Context;
use ekb_platform::messaging::{Db, EventSubject, Outbox};
use ekb_proto::v1::{self, EventEnvelope};
use ekb_refunds::Refunds;
pub use ekb_testkit::status::{reason, violated_fields};
pub use ekb_testkit::topic_reader::{Received, of_type};
use ekb_testkit::{
    broker::topic_reader,
    issuer::TestIssuer,
    service_under_test::{ServiceUnderTest, eventually},
    services::{TestSettings, with_bearer},
    topic_reader::read,
};
use prost::Name;
use rdkafka::consumer::StreamConsumer;
use sqlx::PgPool;
use time::{Date, Duration as Days, OffsetDateTime};
use tonic::Code;

/// How long a test waits for the service to catch up.
pub const WAIT: Duration = Duration::from_secs(30);
/// The employer of most grants.
pub const EMPLOYER_ORG: &str = "974760673";
/// Another organisation (valid mod-11).
pub const OTHER_ORG: &str = "889640782";

/// A refunds client.
pub type Client = v1::refunds_service_client::RefundsServiceClient<tonic::transport::Channel>;

/// Refunds with authentication and everything a test needs around it.
pub struct Harness {
    /// The service under test.
    pub stack: ServiceUnderTest,
    /// A client.
    pub client: Client,
    /// A pool on its database.
    pub pool: PgPool,
    /// The jobs' handle on its database (publishing through its outbox).
    pub db: Db,
    /// The token issuer.
    pub issuer: TestIssuer,
    /// The employer's representative for EMPLOYER_ORG.
    pub employer: String,
    /// Caseworker Z990001.
    pub caseworker: String,
    /// Another caseworker, Z990003.
    pub caseworker2: String,
    /// Decider Z990002.
    pub decider: String,
    /// Reader.
    pub reader: String,
    /// Auditor.
    pub auditor: String,
    /// The payment system.
    pub payment_system: String,
}

impl Harness {
    /// Starts refunds with `adjust`ed settings.
    pub async fn start(
        purpose: &str,
        adjust: impl FnOnce(TestSettings) -> TestSettings,
    ) -> anyhow::Result<Self> {
        let issuer = TestIssuer::start().await?;
        let stack = ServiceUnderTest::start_with::<Refunds>(purpose, |settings| {
            adjust(settings.with_auth(&issuer))
        })
        .await?;
        let client = Client::new(stack.channel().await?);
        let pool = PgPool::connect(stack.database_url()).await?;
        let db = Db::new(
            pool.clone(),
            Outbox::for_service(&stack.topic_prefix, "refunds"),
        );
        Ok(Harness {
            employer: issuer.token_for_organisations(
                "portal-user",
                &["refund-employer"],
                &[EMPLOYER_ORG],
            ),
            caseworker: issuer.token("Z990001", &["refund-caseworker"]),
            caseworker2: issuer.token("Z990003", &["refund-caseworker"]),
            decider: issuer.token("Z990002", &["refund-decider"]),
            reader: issuer.token("Z990004", &["refund-reader"]),
            auditor: issuer.token("Z990005", &["refund-auditor"]),
            payment_system: issuer.token("payment-adapter", &["refund-payment-system"]),
            stack,
            client,
            pool,
            db,
            issuer,
        })
    }

    /// A reader of refunds' topic in this test.
    pub fn refunds_topic(&self) -> anyhow::Result<StreamConsumer> {
        topic_reader(
            self.stack.broker.bootstrap_servers(),
            &self.stack.topic("refunds"),
        )
    }

    /// Publishes `event` about `subject` on applications' topic, as applications would.
    pub async fn publish_from_applications<M: prost::Message + Name>(
        &self,
        subject: &EventSubject,
        event: &M,
    ) -> anyhow::Result<EventEnvelope> {
        self.stack
            .feed
            .publish("applications", subject, event)
            .await
    }

    /// Publishes `grant` as applications would and waits until refunds has it.
    pub async fn approve(&self, grant: &Grant) -> anyhow::Result<EventEnvelope> {
        let envelope = self
            .publish_from_applications(&grant.subject(), &grant.approved())
            .await?;
        self.wait_for_grant(&grant.grant_id).await?;
        Ok(envelope)
    }

    /// Waits until refunds' inbox holds at least `deliveries` deliveries (`what` names them).
    pub async fn wait_for_inbox(&self, what: &str, deliveries: i64) -> anyhow::Result<()> {
        eventually(what, WAIT, || async {
            Ok((self.count("SELECT count(*) FROM inbox").await? >= deliveries).then_some(()))
        })
        .await
    }

    /// Waits until refunds knows `grant_id`.
    pub async fn wait_for_grant(&self, grant_id: &str) -> anyhow::Result<v1::ClaimableGrant> {
        eventually(&format!("grant {grant_id}"), WAIT, || async {
            self.grant(grant_id).await
        })
        .await
    }

    /// The grant as refunds has it, if it has it.
    pub async fn grant(&self, grant_id: &str) -> anyhow::Result<Option<v1::ClaimableGrant>> {
        let request = v1::GetClaimableGrantRequest {
            grant_id: grant_id.to_owned(),
            purpose: v1::AccessPurpose::CaseProcessing as i32,
        };
        match self
            .client
            .clone()
            .get_claimable_grant(with_bearer(request, &self.reader))
            .await
        {
            Ok(response) => Ok(response.into_inner().grant),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }

    /// The status of the grant as refunds has it (UNSPECIFIED if it has none).
    pub async fn grant_status(&self, grant_id: &str) -> anyhow::Result<v1::ClaimableGrantStatus> {
        Ok(self.grant(grant_id).await?.unwrap_or_default().status())
    }

    /// Submits `request` as the employer.
    pub async fn submit(
        &self,
        request: v1::SubmitRefundClaimRequest,
    ) -> Result<v1::RefundClaim, tonic::Status> {
        let response = self
            .client
            .clone()
            .submit_refund_claim(with_bearer(request, &self.employer))
            .await?;
        Ok(response.into_inner().claim.unwrap_or_default())
    }

    /// Recommends approving `payout_ore` (no reduction) as caseworker Z990001.
    pub async fn recommend_approval(
        &self,
        claim_id: &str,
        payout_ore: i64,
    ) -> Result<v1::RefundClaim, tonic::Status> {
        self.recommend(&self.caseworker, claim_id, approval(payout_ore))
            .await
    }

    /// Recommends `recommendation` with `token`.
    pub async fn recommend(
        &self,
        token: &str,
        claim_id: &str,
        recommendation: v1::recommend_refund_decision_request::Recommendation,
    ) -> Result<v1::RefundClaim, tonic::Status> {
        let request = v1::RecommendRefundDecisionRequest {
            claim_id: claim_id.to_owned(),
            recommendation: Some(recommendation),
            note: "ser greit ut".to_owned(),
        };
        let response = self
            .client
            .clone()
            .recommend_refund_decision(with_bearer(request, token))
            .await?;
        Ok(response.into_inner().claim.unwrap_or_default())
    }

    /// Decides `version` of `claim_id` with `verdict`, as `token`.
    pub async fn decide(
        &self,
        token: &str,
        claim_id: &str,
        version: i32,
        verdict: v1::DeciderVerdict,
    ) -> Result<v1::RefundClaim, tonic::Status> {
        let request = v1::DecideRefundClaimRequest {
            claim_id: claim_id.to_owned(),
            recommendation_version: version,
            verdict: verdict as i32,
            note: if verdict == v1::DeciderVerdict::Return {
                "mangler timeliste".to_owned()
            } else {
                String::new()
            },
        };
        let response = self
            .client
            .clone()
            .decide_refund_claim(with_bearer(request, token))
            .await?;
        Ok(response.into_inner().claim.unwrap_or_default())
    }

    /// Confirms `version` of `claim_id` as decider Z990002.
    pub async fn confirm(
        &self,
        claim_id: &str,
        version: i32,
    ) -> Result<v1::RefundClaim, tonic::Status> {
        self.decide(
            &self.decider,
            claim_id,
            version,
            v1::DeciderVerdict::Confirm,
        )
        .await
    }

    /// The claim, read by a caseworker.
    pub async fn claim(&self, claim_id: &str) -> anyhow::Result<v1::RefundClaim> {
        let request = v1::GetRefundClaimRequest {
            claim_id: claim_id.to_owned(),
            purpose: v1::AccessPurpose::CaseProcessing as i32,
        };
        self.client
            .clone()
            .get_refund_claim(with_bearer(request, &self.caseworker))
            .await?
            .into_inner()
            .claim
            .context("no claim")
    }

    /// One number from refunds' database.
    pub async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(&self.pool).await?)
    }

    /// How many events of short type `name` refunds' outbox holds.
    pub async fn outbox(&self, name: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE event_type = 'ekspertbistand.v1.' || $1",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }
}

/// A recommendation to approve `payout_ore`, without a reduction.
pub fn approval(payout_ore: i64) -> v1::recommend_refund_decision_request::Recommendation {
    v1::recommend_refund_decision_request::Recommendation::Approval(
        v1::RefundApprovalRecommendation {
            payout: Some(gross_to_wire(payout_ore)),
            ..Default::default()
        },
    )
}

/// Today in Europe/Oslo.
pub fn today() -> Date {
    ekb_domain::oslo_date(OffsetDateTime::now_utc())
}

/// `YYYY-MM-DD`.
pub fn iso(date: Date) -> String {
    ekb_proto::convert::date_to_wire(date)
}

/// A fresh UUID v7 as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A grant under test.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Grant id.
    pub grant_id: String,
    /// Application id.
    pub application_id: String,
    /// Case id.
    pub case_id: String,
    /// The employer.
    pub employer: String,
    /// Granted, øre.
    pub granted_ore: i64,
    /// The grant date.
    pub grant_date: Date,
    /// The refund deadline.
    pub deadline: Date,
}

impl Grant {
    /// A grant of `granted_ore` for EMPLOYER_ORG, granted 10 days ago, deadline in 30 days.
    pub fn new(granted_ore: i64) -> Self {
        Grant {
            grant_id: new_id(),
            application_id: new_id(),
            case_id: new_id(),
            employer: EMPLOYER_ORG.to_owned(),
            granted_ore,
            grant_date: today() - Days::days(10),
            deadline: today() + Days::days(30),
        }
    }

    /// The same grant with refund deadline `deadline`.
    pub fn with_deadline(self, deadline: Date) -> Self {
        Grant { deadline, ..self }
    }

    /// Its events' subject (key: the case; aggregate: the grant).
    pub fn subject(&self) -> EventSubject {
        EventSubject {
            case_id: Some(self.case_id.clone()),
            aggregate_id: self.grant_id.clone(),
        }
    }

    /// Applications' GrantApproved for it.
    pub fn approved(&self) -> v1::GrantApproved {
        v1::GrantApproved {
            grant_id: self.grant_id.clone(),
            application_id: self.application_id.clone(),
            case_id: self.case_id.clone(),
            employer_organisation_number: self.employer.clone(),
            county_code: "34".to_owned(),
            employee_pseudonym: "psd-1f2e3d".to_owned(),
            granted_amount_ore: self.granted_ore,
            budget_year: self.grant_date.year(),
            account: Some(v1::BudgetAccount {
                chapter: 2650,
                post: 76,
            }),
            reservation_id: new_id(),
            refund_deadline_date: iso(self.deadline),
            granted_at: Some(ekb_proto::convert::timestamp_to_wire(
                OffsetDateTime::now_utc() - Days::days(10),
            )),
            grant_date: iso(self.grant_date),
            submitted_date: iso(self.grant_date - Days::days(20)),
            planned_start_date: iso(self.grant_date + Days::days(2)),
            expert: Some(v1::ProposedExpert {
                name: "Ekspert Eksempelsen".to_owned(),
                profession: 1,
                authorisation: None,
                expert_organisation_number: "923609016".to_owned(),
                employer_attests_expert_not_employed: true,
            }),
            competence_area: v1::CompetenceArea::ConflictHandling as i32,
            case_opened_date: iso(self.grant_date - Days::days(40)),
            max_rate_ore: 2_230_000,
            max_rate_valid_from_date: "2023-01-01".to_owned(),
            max_rate_source: "test".to_owned(),
            decision_date: iso(self.grant_date),
        }
    }

    /// A valid claim of `invoice_ore` against it, started on the grant date and ended today.
    pub fn claim(&self, invoice_ore: i64) -> v1::SubmitRefundClaimRequest {
        v1::SubmitRefundClaimRequest {
            request_id: new_id(),
            grant_id: self.grant_id.clone(),
            employer_organisation_number: self.employer.clone(),
            invoice_date: iso(today()),
            invoice_reference: "F-2026-117".to_owned(),
            invoice_document_id: new_id(),
            expert_report_document_id: new_id(),
            invoice_amount: Some(gross_to_wire(invoice_ore)),
            assistance_start_date: iso(self.grant_date),
            assistance_end_date: iso(today()),
        }
    }
}

/// Reads messages from `consumer` (one at a time, with the testkit's reader) until `done` is
/// satisfied by them, or fails after `WAIT`.
pub async fn read_until(
    consumer: &StreamConsumer,
    what: &str,
    done: impl Fn(&[Received]) -> bool,
) -> anyhow::Result<Vec<Received>> {
    let deadline = Instant::now() + WAIT;
    let mut received = Vec::new();
    while !done(&received) {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = read(consumer, 1, left, Duration::ZERO)
            .await
            .with_context(|| {
                format!(
                    "timed out waiting for {what}; read {:?}",
                    received
                        .iter()
                        .map(Received::event_type)
                        .collect::<Vec<_>>()
                )
            })?;
        received.extend(next);
    }
    Ok(received)
}

/// Whether `received` holds at least `count` events of type `M`.
pub fn has<M: Name>(received: &[Received], count: usize) -> bool {
    received
        .iter()
        .filter(|message| message.event_type() == M::full_name())
        .count()
        >= count
}
