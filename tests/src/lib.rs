//! Shared fixtures of the service and end-to-end tests: valid requests that each test then
//! breaks in one way (built in `ekb_testkit::fixtures`, re-exported here), and helpers that
//! start the service under test, or the whole system, for a test.

use std::time::{Duration, Instant};

use ekb_proto::v1;
use ekb_testkit::{broker::TestBroker, postgres::fresh_database, services::TestSettings};

pub mod ledger;
pub mod people;
pub mod system;

pub use ekb_testkit::broker::topic_reader;
pub use ekb_testkit::fixtures::*;

/// A routing client over a plain channel.
pub type RoutingClient =
    v1::routing_service_client::RoutingServiceClient<tonic::transport::Channel>;
/// An expert-registry client over a plain channel.
pub type RegistryClient =
    v1::expert_registry_service_client::ExpertRegistryServiceClient<tonic::transport::Channel>;

pub use ekb_testkit::service_under_test::{ServiceUnderTest, eventually, unique_topic_prefix};

/// The broker, both services as separate processes, and a token issuer: the system as another
/// NAV system sees it, for the end-to-end tests.
pub struct ProcessStack {
    /// The broker.
    pub broker: TestBroker,
    /// The token issuer the services trust.
    pub issuer: ekb_testkit::issuer::TestIssuer,
    /// Topic prefix of this test.
    pub topic_prefix: String,
    /// Routing's database URL.
    pub routing_db_url: String,
    /// The registry's database URL.
    pub registry_db_url: String,
    /// The registry process.
    pub registry: ekb_testkit::services::ServiceProcess,
    /// The routing process.
    pub routing: ekb_testkit::services::ServiceProcess,
}

/// Where end-to-end tests write service logs.
pub fn test_log_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs")
}

impl ProcessStack {
    /// Starts everything and waits until both services are SERVING.
    pub async fn start(purpose: &str) -> anyhow::Result<Self> {
        Self::start_with(purpose, &[]).await
    }

    /// As [`Self::start`], with `extra` settings for both services.
    pub async fn start_with(purpose: &str, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let broker = TestBroker::start()?;
        let issuer = ekb_testkit::issuer::TestIssuer::start().await?;
        let topic_prefix = unique_topic_prefix();
        let registry_db = fresh_database(&format!("{purpose}_reg")).await?;
        let routing_db = fresh_database(&format!("{purpose}_rt")).await?;
        let settings = |url: &str| {
            extra.iter().fold(
                TestSettings::new(url, broker.bootstrap_servers(), &topic_prefix)
                    .with_auth(&issuer)
                    .with("telemetry.log_format", "json"),
                |settings, (key, value)| settings.with(key, *value),
            )
        };
        let mut registry = ekb_testkit::services::ServiceProcess::spawn(
            "expert-registry",
            &settings(&registry_db.url),
            &test_log_dir(),
        )?;
        let mut routing = ekb_testkit::services::ServiceProcess::spawn(
            "routing",
            &settings(&routing_db.url),
            &test_log_dir(),
        )?;
        for process in [&mut registry, &mut routing] {
            process.wait_until_serving(Duration::from_secs(60)).await?;
        }
        Ok(ProcessStack {
            broker,
            issuer,
            topic_prefix,
            routing_db_url: routing_db.url,
            registry_db_url: registry_db.url,
            registry,
            routing,
        })
    }

    /// A token with every role of both services.
    pub fn admin_token(&self) -> String {
        self.issuer.token(
            "e2e-tests",
            &[
                "case-writer",
                "case-reader",
                "registry-admin",
                "registry-reader",
            ],
        )
    }

    /// A routing client.
    pub async fn routing_client(&self) -> anyhow::Result<RoutingClient> {
        Ok(RoutingClient::connect(self.routing.url()).await?)
    }

    /// A registry client.
    pub async fn registry_client(&self) -> anyhow::Result<RegistryClient> {
        Ok(RegistryClient::connect(self.registry.url()).await?)
    }

    /// Asks routing which flow `facts` would get now (dry run).
    pub async fn evaluate(
        &self,
        facts: v1::CaseFacts,
    ) -> anyhow::Result<(v1::Flow, v1::RoutingReason)> {
        let request = ekb_testkit::services::with_bearer(
            v1::EvaluateRouteRequest { facts: Some(facts) },
            &self.admin_token(),
        );
        let decision = self
            .routing_client()
            .await?
            .evaluate_route(request)
            .await?
            .into_inner()
            .decision
            .unwrap_or_default();
        Ok((decision.flow(), decision.reason()))
    }

    /// Waits until routing routes `facts` to `expected`.
    pub async fn wait_for_route(
        &self,
        facts: v1::CaseFacts,
        expected: (v1::Flow, v1::RoutingReason),
    ) -> anyhow::Result<()> {
        eventually(
            &format!("routing to give {expected:?}"),
            Duration::from_secs(30),
            || async { Ok((self.evaluate(facts.clone()).await? == expected).then_some(())) },
        )
        .await
    }

    /// The topic a service publishes on in this test.
    pub fn topic(&self, service: &str) -> String {
        ekb_platform::messaging::topic_for(&self.topic_prefix, service)
    }
}

/// Reads messages from `consumer` until `done` says so or `timeout` passes.
pub async fn read_until<F>(
    consumer: &rdkafka::consumer::StreamConsumer,
    timeout: Duration,
    mut done: F,
) -> anyhow::Result<Vec<rdkafka::message::OwnedMessage>>
where
    F: FnMut(&[rdkafka::message::OwnedMessage]) -> bool,
{
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    while !done(&messages) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            anyhow::bail!(
                "timed out after {timeout:?} with {} messages read",
                messages.len()
            );
        }
        match tokio::time::timeout(remaining, consumer.recv()).await {
            Ok(Ok(message)) => messages.push(message.detach()),
            Ok(Err(error)) => eprintln!("consumer error (continuing): {error}"),
            Err(_) => {}
        }
    }
    Ok(messages)
}

/// A producer for injecting events in tests.
pub fn test_producer(brokers: &str) -> anyhow::Result<rdkafka::producer::FutureProducer> {
    Ok(ekb_testkit::broker::test_client_config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?)
}

/// Sends one message and waits for the broker's acknowledgement.
pub async fn send(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    event_type: Option<&str>,
) -> anyhow::Result<()> {
    let mut headers = rdkafka::message::OwnedHeaders::new();
    if let Some(event_type) = event_type {
        headers = headers.insert(rdkafka::message::Header {
            key: "ekb-event-type",
            value: Some(event_type),
        });
    }
    let record = rdkafka::producer::FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(error, _)| anyhow::anyhow!("send failed: {error}"))?;
    Ok(())
}
