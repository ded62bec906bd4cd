//! The whole system for the flow tests: the broker, every service of the catalog as its own
//! process (with authentication on, trusting a local token issuer), typed clients, the tokens
//! of the people and systems that call it, and a reader that records every event every service
//! publishes, so a test can assert on state over gRPC and on the events read back from the
//! broker.
//!
//! Why a second stack beside [`crate::ProcessStack`]: that one starts only routing and the
//! registry (the routing suites need nothing else and start faster); the flow tests need all of
//! them, each with the few settings that differ from a production default, which its catalog
//! entry lists (`dev_settings`, `test_settings`: synthetic test fødselsnumre accepted, refunds'
//! expiry job every second…). The people who call it, the requests, the waits and the walks are
//! the scenario library's (`ekb_testkit::scenarios`), shared with `make run`.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use ekb_platform::messaging::topic_for;
use ekb_proto::v1::{self, EventEnvelope};
use ekb_testkit::{
    broker::{TestBroker, create_topic, topic_reader},
    catalog::{self, SERVICES},
    issuer::TestIssuer,
    postgres::fresh_database,
    scenarios::{Clients, People, both_flows::open_case, waits::STEP_TIMEOUT},
    services::{ServiceProcess, TestSettings},
};
use prost::{Message as _, Name};
use rdkafka::Message as _;
use tokio::task::JoinHandle;
use tonic::{Code, transport::Channel};

use crate::{test_log_dir, unique_topic_prefix};

/// How long a service may take from spawn to SERVING (migrations run at start).
const SERVING_TIMEOUT: Duration = Duration::from_secs(90);

/// Applications, over a plain channel.
pub type ApplicationsClient = v1::applications_service_client::ApplicationsServiceClient<Channel>;
/// Refunds, over a plain channel.
pub type RefundsClient = v1::refunds_service_client::RefundsServiceClient<Channel>;
/// Pilot-ordering, over a plain channel.
pub type PilotOrderingClient =
    v1::pilot_ordering_service_client::PilotOrderingServiceClient<Channel>;
/// Budget, over a plain channel.
pub type BudgetClient = v1::budget_service_client::BudgetServiceClient<Channel>;
/// Routing, over a plain channel.
pub type RoutingClient = v1::routing_service_client::RoutingServiceClient<Channel>;
/// The registry, over a plain channel.
pub type RegistryClient = v1::expert_registry_service_client::ExpertRegistryServiceClient<Channel>;

/// The broker, every catalog service as a process, the issuer they trust and a recording of
/// every topic.
pub struct SystemStack {
    /// The broker.
    pub broker: TestBroker,
    /// The token issuer the services trust.
    pub issuer: TestIssuer,
    /// Topic prefix of this test.
    pub topic_prefix: String,
    /// Every service, in catalog order.
    pub services: Vec<ServiceProcess>,
    /// Each service's database URL, by service name, in catalog order.
    pub database_urls: Vec<(&'static str, String)>,
    /// Every event published on any service's topic, as read back from the broker.
    pub events: EventLog,
}

impl SystemStack {
    /// Starts the broker and every catalog service on fresh databases named after `purpose`,
    /// and waits until all are SERVING.
    pub async fn start(purpose: &str) -> anyhow::Result<Self> {
        Self::start_with(purpose, &[]).await
    }

    /// As [`Self::start`], with `extra` settings `(service, key, value)` on top (e.g. how the
    /// fake payment system answers).
    pub async fn start_with(purpose: &str, extra: &[(&str, &str, &str)]) -> anyhow::Result<Self> {
        let broker = TestBroker::start()?;
        let issuer = TestIssuer::start().await?;
        let topic_prefix = unique_topic_prefix();
        let topics: Vec<String> = catalog::names()
            .map(|name| topic_for(&topic_prefix, name))
            .collect();
        for topic in &topics {
            create_topic(broker.bootstrap_servers(), topic, 4).await?;
        }
        let events = EventLog::start(broker.bootstrap_servers(), &topics)?;
        let mut services = Vec::new();
        let mut database_urls = Vec::new();
        for entry in SERVICES {
            let database = fresh_database(&format!("{purpose}_{}", entry.name)).await?;
            database_urls.push((entry.name, database.url.clone()));
            let extra = extra
                .iter()
                .filter(|(service, _, _)| *service == entry.name)
                .map(|(_, key, value)| (*key, *value));
            let settings = entry
                .dev_settings
                .iter()
                .chain(entry.test_settings)
                .copied()
                .chain(extra)
                .fold(
                    TestSettings::new(&database.url, broker.bootstrap_servers(), &topic_prefix)
                        .with_auth(&issuer)
                        .with("telemetry.log_format", "json"),
                    |settings, (key, value)| settings.with(key, value),
                );
            services.push(ServiceProcess::spawn(
                entry.name,
                &settings,
                &test_log_dir(),
            )?);
        }
        for service in &mut services {
            service.wait_until_serving(SERVING_TIMEOUT).await?;
        }
        Ok(SystemStack {
            broker,
            issuer,
            topic_prefix,
            services,
            database_urls,
            events,
        })
    }

    /// The URL of service `name`'s own database, for a test that must reach behind the service
    /// (e.g. to move a stored date when simulating the passing of time).
    pub fn database_url(&self, name: &str) -> anyhow::Result<&str> {
        self.database_urls
            .iter()
            .find(|(service, _)| *service == name)
            .map(|(_, url)| url.as_str())
            .with_context(|| format!("{name} has no database in this stack"))
    }

    /// The running service `name`.
    pub fn service(&self, name: &str) -> anyhow::Result<&ServiceProcess> {
        self.services
            .iter()
            .find(|service| service.name == name)
            .with_context(|| format!("{name} is not running in this stack"))
    }

    /// A channel to service `name`.
    pub async fn channel(&self, name: &str) -> anyhow::Result<Channel> {
        let url = self.service(name)?.url();
        Ok(Channel::from_shared(url)?.connect().await?)
    }

    /// A routing client.
    pub async fn routing(&self) -> anyhow::Result<RoutingClient> {
        Ok(RoutingClient::new(self.channel("routing").await?))
    }

    /// A registry client.
    pub async fn registry(&self) -> anyhow::Result<RegistryClient> {
        Ok(RegistryClient::new(self.channel("expert-registry").await?))
    }

    /// An applications client.
    pub async fn applications(&self) -> anyhow::Result<ApplicationsClient> {
        Ok(ApplicationsClient::new(self.channel("applications").await?))
    }

    /// A refunds client.
    pub async fn refunds(&self) -> anyhow::Result<RefundsClient> {
        Ok(RefundsClient::new(self.channel("refunds").await?))
    }

    /// A pilot-ordering client.
    pub async fn pilot_ordering(&self) -> anyhow::Result<PilotOrderingClient> {
        Ok(PilotOrderingClient::new(
            self.channel("pilot-ordering").await?,
        ))
    }

    /// A budget client.
    pub async fn budget(&self) -> anyhow::Result<BudgetClient> {
        Ok(BudgetClient::new(self.channel("budget").await?))
    }

    /// The clients of every service the walks call.
    pub async fn clients(&self) -> anyhow::Result<Clients> {
        Clients::connect(&self.services).await
    }

    /// The people and systems that call it, with tokens from this stack's issuer.
    pub fn people(&self) -> People<'_> {
        People::new(&self.issuer)
    }

    /// Opens a case with `facts` (as the NAV system), asserts that routing sent it to `flow`,
    /// and returns it.
    pub async fn open_routed_case(
        &self,
        facts: v1::CaseFacts,
        flow: v1::Flow,
    ) -> anyhow::Result<v1::Case> {
        let case = open_case(&self.clients().await?, &self.people(), facts).await?;
        assert_eq!(case.decision.unwrap_or_default().flow(), flow);
        Ok(case)
    }

    /// Everything every service has logged so far, one log after another.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.services
            .iter()
            .map(|service| (service.name.clone(), service.log()))
            .collect()
    }

    /// Fails, naming the service and quoting its log, if any service has died.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        for service in &mut self.services {
            service.ensure_running()?;
        }
        Ok(())
    }
}

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The topic it was on.
    pub topic: String,
    /// Its Kafka key.
    pub key: Vec<u8>,
    /// Its raw payload (the encoded envelope).
    pub payload: Vec<u8>,
    /// The envelope, when the payload decodes as one.
    pub envelope: Option<EventEnvelope>,
}

/// Reads every topic of the stack from the beginning into memory, for the whole test.
pub struct EventLog {
    records: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventLog {
    /// Starts reading `topics` on `brokers`.
    pub fn start(brokers: &str, topics: &[String]) -> anyhow::Result<Self> {
        let first = topics.first().context("no topic to read")?;
        let consumer = topic_reader(brokers, first)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        rdkafka::consumer::Consumer::subscribe(&consumer, &names)?;
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = records.clone();
        let task = tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(message) => {
                        let payload = message.payload().unwrap_or_default().to_vec();
                        let record = Recorded {
                            topic: message.topic().to_owned(),
                            key: message.key().unwrap_or_default().to_vec(),
                            envelope: EventEnvelope::decode(payload.as_slice()).ok(),
                            payload,
                        };
                        if let Ok(mut records) = sink.lock() {
                            records.push(record);
                        }
                    }
                    Err(error) => {
                        eprintln!("event log: consumer error (continuing): {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(EventLog { records, task })
    }

    /// Every message read so far.
    pub fn all(&self) -> Vec<Recorded> {
        self.records
            .lock()
            .map(|records| records.clone())
            .unwrap_or_default()
    }

    /// Every event of type `M` read so far, with its envelope, in the order read; each event
    /// once (a redelivery carries the same event id, and counts as the same event).
    pub fn of<M: prost::Message + Name + Default>(&self) -> Vec<(EventEnvelope, M)> {
        let mut seen = std::collections::HashSet::new();
        self.all()
            .into_iter()
            .filter_map(|record| record.envelope)
            .filter(|envelope| envelope.event_type == M::full_name())
            .filter(|envelope| seen.insert(envelope.event_id.clone()))
            .filter_map(|envelope| {
                let event = M::decode(envelope.payload.as_slice()).ok()?;
                Some((envelope, event))
            })
            .collect()
    }

    /// The events of type `M` that satisfy `matches`.
    pub fn matching<M: prost::Message + Name + Default>(
        &self,
        matches: impl Fn(&M) -> bool,
    ) -> Vec<M> {
        self.of::<M>()
            .into_iter()
            .map(|(_, event)| event)
            .filter(|event| matches(event))
            .collect()
    }

    /// Waits for the first event of type `M` that satisfies `matches`.
    pub async fn wait_for<M: prost::Message + Name + Default>(
        &self,
        matches: impl Fn(&M) -> bool,
    ) -> anyhow::Result<M> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(event) = self.matching(&matches).into_iter().next() {
                return Ok(event);
            }
            if tokio::time::Instant::now() >= deadline {
                let seen: Vec<String> = self
                    .all()
                    .into_iter()
                    .filter_map(|record| record.envelope)
                    .map(|envelope| envelope.event_type)
                    .collect();
                anyhow::bail!(
                    "no matching {} within {STEP_TIMEOUT:?}; events seen: {seen:?}",
                    M::full_name()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Publishes again, with its original envelope (the same event id), the first event of type
    /// `M` that satisfies `matches`, on `producer`'s topic, as that producer's outbox relay does
    /// after a crash between sending and marking the row sent. Fails if there is no such event.
    pub async fn redeliver<M: prost::Message + Name + Default>(
        &self,
        feed: &ekb_testkit::events::EventFeed,
        producer: &str,
        matches: impl Fn(&M) -> bool,
    ) -> anyhow::Result<()> {
        let (envelope, _) = self
            .of::<M>()
            .into_iter()
            .find(|(_, event)| matches(event))
            .with_context(|| format!("no {} to redeliver", M::full_name()))?;
        let key = if envelope.case_id.is_empty() {
            envelope.aggregate_id.clone()
        } else {
            envelope.case_id.clone()
        };
        feed.publish_envelope(producer, &key, &envelope).await
    }

    /// How many distinct events of type `M` satisfy `matches`.
    pub fn count<M: prost::Message + Name + Default>(&self, matches: impl Fn(&M) -> bool) -> usize {
        self.matching(matches).len()
    }

    /// Asserts that every type in `expected` (short names, as [`Self::types_for_case`] gives
    /// them) is among the events keyed by case `case_id`; returns all their types.
    pub fn assert_case_story(&self, case_id: &str, expected: &[&str]) -> Vec<String> {
        let types = self.types_for_case(case_id);
        for expected in expected {
            assert!(
                types.iter().any(|seen| seen == expected),
                "{expected} missing from {types:?}"
            );
        }
        types
    }

    /// The types of the events keyed by case `case_id`, in the order read.
    pub fn types_for_case(&self, case_id: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|record| record.key == case_id.as_bytes())
            .filter_map(|record| record.envelope)
            .map(|envelope| {
                envelope
                    .event_type
                    .trim_start_matches("ekspertbistand.v1.")
                    .to_owned()
            })
            .collect()
    }
}

/// Asserts that `result` is a refusal with `code` and reason `reason`.
pub fn assert_refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    reason: &str,
) {
    match result {
        Ok(response) => panic!(
            "expected {code:?} {reason}, got {:?}",
            response.into_inner()
        ),
        Err(status) => {
            assert_eq!(
                (status.code(), ekb_testkit::status::reason(&status).as_str()),
                (code, reason),
                "{}",
                status.message()
            );
        }
    }
}
