//! What applications' service tests share: the stack (the service with authentication on, the
//! broker, a fresh database), tokens for each kind of caller, the upstream events routing,
//! budget and refunds would publish, a valid application, and readers of the service's topic.

use ekb_proto::convert::gross_to_wire;
use std::time::{Duration, Instant};

use anyhow::Context;
use ekb_applications::Applications;
use ekb_platform::messaging::{Db, EventSubject, Outbox};
use ekb_proto::v1;
use ekb_testkit::{
    broker::topic_reader, issuer::TestIssuer, service_under_test::ServiceUnderTest,
    services::with_bearer,
};
pub use ekb_testkit::{
    people::fodselsnummer,
    status::{reason, violated_fields},
    topic_reader::{Received, envelopes_of, of_type},
};
use rdkafka::consumer::StreamConsumer;
use sqlx::PgPool;

/// How long a test waits for the service to catch up.
pub const WAIT: Duration = Duration::from_secs(30);
/// The employer of every test case (valid mod-11).
pub const EMPLOYER: &str = "974760673";
/// Another organisation (valid mod-11), e.g. the expert's.
pub const OTHER_ORG: &str = "923609016";
/// The county of every test case.
pub const COUNTY: &str = "34";

/// An applications client over a plain channel.
pub type Client =
    v1::applications_service_client::ApplicationsServiceClient<tonic::transport::Channel>;

/// The service under test, its token issuer, a client and a pool on its database.
pub struct Stack {
    /// The service, broker and feed.
    pub stack: ServiceUnderTest,
    /// Issues tokens the service accepts.
    pub issuer: TestIssuer,
    /// A client.
    pub client: Client,
    /// The service's database.
    pub pool: PgPool,
}

impl Stack {
    /// Starts applications with authentication on and synthetic numbers refused.
    pub async fn start(purpose: &str) -> anyhow::Result<Stack> {
        let issuer = TestIssuer::start().await?;
        let stack = ServiceUnderTest::start_with::<Applications>(purpose, |settings| {
            settings
                .with_auth(&issuer)
                .with("applications.funds_request_resend_after", "15 minutes")
                .with("applications.funds_request_resend_max_interval", "1 hour")
        })
        .await?;
        let client = Client::new(stack.channel().await?);
        let pool = PgPool::connect(stack.database_url()).await?;
        Ok(Stack {
            stack,
            issuer,
            client,
            pool,
        })
    }

    /// The employer's representative for `organisations`.
    pub fn employer(&self, organisations: &[&str]) -> String {
        self.issuer.token_for_organisations(
            "portal-user-1",
            &["application-employer"],
            organisations,
        )
    }

    /// A NAV employee `ident` holding `roles`.
    pub fn nav(&self, ident: &str, roles: &[&str]) -> String {
        self.issuer.token(ident, roles)
    }

    /// A reader of the service's own topic, from its beginning.
    pub fn topic(&self) -> anyhow::Result<StreamConsumer> {
        topic_reader(
            self.stack.broker.bootstrap_servers(),
            &self.stack.topic("applications"),
        )
    }

    /// A reader of budget's topic (what the scripted budget answers).
    pub fn budget_topic(&self) -> anyhow::Result<StreamConsumer> {
        topic_reader(
            self.stack.broker.bootstrap_servers(),
            &self.stack.topic("budget"),
        )
    }

    /// The platform's unit-of-work factory over the service's database and topic, for running
    /// the jobs with a moved clock.
    pub fn db(&self) -> Db {
        Db::new(
            self.pool.clone(),
            Outbox::for_service(&self.stack.topic_prefix, "applications"),
        )
    }

    /// Publishes CaseRouted for a new case in `flow`; returns the case id.
    pub async fn open_case(&self, flow: v1::Flow) -> anyhow::Result<String> {
        let case_id = uuid::Uuid::now_v7().to_string();
        self.stack
            .feed
            .publish(
                "routing",
                &EventSubject::case(case_id.clone()),
                &v1::CaseRouted {
                    case_id: case_id.clone(),
                    employer_organisation_number: EMPLOYER.to_owned(),
                    municipality_number: "3403".to_owned(),
                    county_code: COUNTY.to_owned(),
                    case_date: "2026-11-01".to_owned(),
                    flow: flow as i32,
                    // A PILOT case always names its framework-agreement area (the contract).
                    expert_choice: (flow == v1::Flow::Pilot).then_some(v1::ExpertChoice {
                        choice: Some(v1::expert_choice::Choice::FrameworkAgreement(
                            v1::FrameworkAgreementChoice {
                                competence_area: v1::CompetenceArea::WorkplaceRelations as i32,
                            },
                        )),
                    }),
                    opened_at: Some(prost_types::Timestamp {
                        seconds: 1_793_000_000,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
            )
            .await?;
        Ok(case_id)
    }

    /// Waits until the case has arrived.
    pub async fn wait_for_case(&self, case_id: &str) -> anyhow::Result<()> {
        let id = uuid::Uuid::parse_str(case_id)?;
        ekb_testkit::service_under_test::eventually("the case arrives", WAIT, || async {
            let found: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM cases WHERE case_id = $1)")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
            Ok(found.then_some(()))
        })
        .await
    }

    /// Opens a REGULAR case and waits for it.
    pub async fn regular_case(&self) -> anyhow::Result<String> {
        let case_id = self.open_case(v1::Flow::Regular).await?;
        self.wait_for_case(&case_id).await?;
        Ok(case_id)
    }

    /// Submits a valid application for `case_id` as the employer.
    pub async fn submit(&mut self, case_id: &str) -> anyhow::Result<v1::Application> {
        let token = self.employer(&[EMPLOYER]);
        self.client
            .submit_application(with_bearer(submission(case_id), &token))
            .await?
            .into_inner()
            .application
            .context("no application")
    }

    /// Takes `application_id` through review, all five conditions met, and a grant
    /// recommendation of `amount_ore` by caseworker `cw-1`; returns the recommendation version.
    pub async fn recommend_grant(
        &mut self,
        application_id: &str,
        amount_ore: i64,
    ) -> anyhow::Result<i32> {
        let caseworker = self.nav("cw-1", &["application-caseworker"]);
        self.start_review_as(&caseworker, application_id).await?;
        for condition in 1..=5 {
            self.assess_as(&caseworker, application_id, condition, true, "ok")
                .await?;
        }
        let recommended = self
            .recommend_as(&caseworker, application_id, amount_ore, "recommend")
            .await?;
        Ok(recommended
            .recommendations
            .last()
            .map_or(0, |recommendation| recommendation.version))
    }

    /// Decider `dec-1` confirms `version`.
    pub async fn confirm(
        &mut self,
        application_id: &str,
        version: i32,
    ) -> Result<v1::Application, tonic::Status> {
        let decider = self.nav("dec-1", &["application-decider"]);
        self.decide_as(
            &decider,
            application_id,
            version,
            v1::DeciderVerdict::Confirm,
            "",
        )
        .await
    }

    /// Opens a REGULAR case, submits an application for it and takes it to a grant of
    /// `amount_ore` that decider `dec-1` confirms (see [`Stack::recommend_grant`]); returns the
    /// case id and the application as confirmed.
    pub async fn confirmed_grant(
        &mut self,
        amount_ore: i64,
    ) -> anyhow::Result<(String, v1::Application)> {
        let case_id = self.regular_case().await?;
        let id = self.submit(&case_id).await?.application_id;
        let version = self.recommend_grant(&id, amount_ore).await?;
        let confirmed = self.confirm(&id, version).await?;
        Ok((case_id, confirmed))
    }

    /// StartReview of `application_id` as the caller of `token`.
    pub async fn start_review_as(
        &self,
        token: &str,
        application_id: &str,
    ) -> Result<v1::Application, tonic::Status> {
        let request = v1::StartReviewRequest {
            application_id: application_id.to_owned(),
        };
        application_of(
            self.client
                .clone()
                .start_review(with_bearer(request, token))
                .await,
        )
    }

    /// AssessCondition: `condition` of `application_id` is `met` (with `note`), as the caller
    /// of `token`.
    pub async fn assess_as(
        &self,
        token: &str,
        application_id: &str,
        condition: i32,
        met: bool,
        note: &str,
    ) -> Result<v1::Application, tonic::Status> {
        let request = v1::AssessConditionRequest {
            application_id: application_id.to_owned(),
            condition,
            met,
            note: note.to_owned(),
        };
        application_of(
            self.client
                .clone()
                .assess_condition(with_bearer(request, token))
                .await,
        )
    }

    /// RecommendDecision: a grant of `amount_ore` on `application_id` (with `note`), as the
    /// caller of `token`.
    pub async fn recommend_as(
        &self,
        token: &str,
        application_id: &str,
        amount_ore: i64,
        note: &str,
    ) -> Result<v1::Application, tonic::Status> {
        let request = v1::RecommendDecisionRequest {
            application_id: application_id.to_owned(),
            recommendation: Some(v1::recommend_decision_request::Recommendation::Grant(
                v1::GrantRecommendation {
                    amount: Some(gross_to_wire(amount_ore)),
                },
            )),
            note: note.to_owned(),
        };
        application_of(
            self.client
                .clone()
                .recommend_decision(with_bearer(request, token))
                .await,
        )
    }

    /// DecideApplication: `verdict` (with `note`) on recommendation `version` of
    /// `application_id`, as the caller of `token`.
    pub async fn decide_as(
        &self,
        token: &str,
        application_id: &str,
        version: i32,
        verdict: v1::DeciderVerdict,
        note: &str,
    ) -> Result<v1::Application, tonic::Status> {
        let request = v1::DecideApplicationRequest {
            application_id: application_id.to_owned(),
            recommendation_version: version,
            verdict: verdict as i32,
            note: note.to_owned(),
        };
        application_of(
            self.client
                .clone()
                .decide_application(with_bearer(request, token))
                .await,
        )
    }

    /// GetApplication of `application_id` for `purpose`, as the caller of `token`.
    pub async fn get_as(
        &self,
        token: &str,
        application_id: &str,
        purpose: v1::AccessPurpose,
    ) -> Result<v1::Application, tonic::Status> {
        let request = v1::GetApplicationRequest {
            application_id: application_id.to_owned(),
            purpose: purpose as i32,
        };
        application_of(
            self.client
                .clone()
                .get_application(with_bearer(request, token))
                .await,
        )
    }

    /// WithdrawApplication of `application_id` giving `reason`, as the caller of `token`.
    pub async fn withdraw_as(
        &self,
        token: &str,
        application_id: &str,
        reason: &str,
    ) -> Result<v1::Application, tonic::Status> {
        let request = v1::WithdrawApplicationRequest {
            application_id: application_id.to_owned(),
            reason: reason.to_owned(),
        };
        application_of(
            self.client
                .clone()
                .withdraw_application(with_bearer(request, token))
                .await,
        )
    }

    /// RejectForLackOfFunds of `application_id` with `explanation`, as the caller of `token`.
    pub async fn reject_for_lack_of_funds_as(
        &self,
        token: &str,
        application_id: &str,
        explanation: &str,
    ) -> Result<v1::Application, tonic::Status> {
        let request = v1::RejectForLackOfFundsRequest {
            application_id: application_id.to_owned(),
            explanation: explanation.to_owned(),
        };
        application_of(
            self.client
                .clone()
                .reject_for_lack_of_funds(with_bearer(request, token))
                .await,
        )
    }

    /// CancelGrant of `application_id` for `reason` with `explanation`, as the caller of
    /// `token`.
    pub async fn cancel_grant_as(
        &self,
        token: &str,
        application_id: &str,
        reason: v1::GrantCancellationReason,
        explanation: &str,
    ) -> Result<v1::Application, tonic::Status> {
        let request = v1::CancelGrantRequest {
            application_id: application_id.to_owned(),
            reason: reason as i32,
            explanation: explanation.to_owned(),
        };
        application_of(
            self.client
                .clone()
                .cancel_grant(with_bearer(request, token))
                .await,
        )
    }

    /// The application as a NAV reader sees it.
    pub async fn get(&mut self, application_id: &str) -> anyhow::Result<v1::Application> {
        let reader = self.nav("reader-1", &["application-reader"]);
        self.client
            .get_application(with_bearer(
                v1::GetApplicationRequest {
                    application_id: application_id.to_owned(),
                    purpose: v1::AccessPurpose::CaseProcessing as i32,
                },
                &reader,
            ))
            .await?
            .into_inner()
            .application
            .context("no application")
    }

    /// Waits until the application has `status`.
    pub async fn wait_for_status(
        &mut self,
        application_id: &str,
        status: v1::ApplicationStatus,
    ) -> anyhow::Result<v1::Application> {
        let deadline = Instant::now() + WAIT;
        loop {
            let application = self.get(application_id).await?;
            if application.status == status as i32 {
                return Ok(application);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "application stayed {:?}, not {status:?}",
                application.status()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One number from the service's database.
    pub async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(&self.pool).await?)
    }
}

/// A response of the service that carries the application.
pub trait CarriesApplication {
    /// The application it carries.
    fn application(self) -> Option<v1::Application>;
}

/// Implements [`CarriesApplication`] for each named response (all have `application`).
macro_rules! carries_application {
    ($($response:ident),+ $(,)?) => {
        $(impl CarriesApplication for v1::$response {
            fn application(self) -> Option<v1::Application> {
                self.application
            }
        })+
    };
}

carries_application!(
    StartReviewResponse,
    AssessConditionResponse,
    RecommendDecisionResponse,
    DecideApplicationResponse,
    GetApplicationResponse,
    WithdrawApplicationResponse,
    RejectForLackOfFundsResponse,
    CancelGrantResponse,
    RequestFundsAgainResponse,
);

/// The application `answer` carries (the default one where it carries none), or the status it
/// failed with.
pub fn application_of<R: CarriesApplication>(
    answer: Result<tonic::Response<R>, tonic::Status>,
) -> Result<v1::Application, tonic::Status> {
    Ok(answer?.into_inner().application().unwrap_or_default())
}

/// The reason (`ErrorInfo`) `answer` was refused with; panics with `what` where it succeeded.
pub fn refusal<T: std::fmt::Debug>(answer: Result<T, tonic::Status>, what: &str) -> String {
    reason(&answer.expect_err(what))
}

/// The test employee's fødselsnummer.
pub fn employee() -> String {
    fodselsnummer("150385", 493)
}

/// Today in Oslo plus `days`, `YYYY-MM-DD` (the tests run near the real date).
pub fn date_in(days: i64) -> String {
    let today = ekb_domain::oslo_date(time::OffsetDateTime::now_utc());
    ekb_applications::model::day(today + time::Duration::days(days))
}

/// A valid submission for `case_id`.
pub fn submission(case_id: &str) -> v1::SubmitApplicationRequest {
    v1::SubmitApplicationRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        case_id: case_id.to_owned(),
        employee_fodselsnummer: employee(),
        employee_name: "Kari Nordmann".to_owned(),
        details: Some(v1::ApplicationDetails {
            employer_organisation_number: EMPLOYER.to_owned(),
            contact_person: Some(v1::ContactPerson {
                name: "Ola Leder".to_owned(),
                phone_number: "+47 99 88 77 66".to_owned(),
                email: "ola@example.no".to_owned(),
            }),
            competence_area: v1::CompetenceArea::SickLeaveFollowUp as i32,
            expert: Some(v1::ProposedExpert {
                name: "Eva Ekspert".to_owned(),
                profession: v1::Profession::Psychologist as i32,
                authorisation: Some(v1::Authorisation {
                    kind: 1,
                    reference: "1234567".to_owned(),
                }),
                expert_organisation_number: OTHER_ORG.to_owned(),
                employer_attests_expert_not_employed: true,
            }),
            problem_description: "Long sick leave; needs a workplace assessment.".to_owned(),
            planned_start_date: date_in(14),
            estimated_hours: 20,
            accommodation_tried: "Adjusted hours and tasks.".to_owned(),
            confirms_parties_agree: true,
            confirms_not_treatment_or_excluded_scheme: true,
            estimated_cost: Some(gross_to_wire(2_000_000)),
            nav_contact_name: "Nina NAV".to_owned(),
        }),
    }
}

/// Reads `count` messages (fails after [`WAIT`]), then whatever arrives within `quiet` more.
pub async fn read(
    consumer: &StreamConsumer,
    count: usize,
    quiet: Duration,
) -> anyhow::Result<Vec<Received>> {
    ekb_testkit::topic_reader::read(consumer, count, WAIT, quiet).await
}
