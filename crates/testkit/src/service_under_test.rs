//! One service under test: the service in this process on port 0, the broker, a fresh
//! database, and a feed for the events its upstream services would publish. A service's own
//! test suite (`services/<name>/tests/service.rs`) starts only that service; cross-service
//! tests live in `tests/`.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use ekb_platform::service::ServiceDescription;

use crate::{
    broker::TestBroker,
    events::EventFeed,
    postgres::fresh_database,
    services::{InProcessService, TestSettings, start_in_process},
};

/// A unique topic prefix for one test, so runs against a shared real Kafka never mix.
pub fn unique_topic_prefix() -> String {
    format!("ekbtest{}", uuid::Uuid::new_v4().simple())
}

/// Service `S` under test, with what it needs around it.
pub struct ServiceUnderTest {
    /// The broker (mock process or external).
    pub broker: TestBroker,
    /// Topic prefix of this test.
    pub topic_prefix: String,
    /// The service's settings.
    pub settings: TestSettings,
    /// The running service.
    pub service: InProcessService,
    /// Publishes upstream events on their real topics.
    pub feed: EventFeed,
}

impl ServiceUnderTest {
    /// Starts service `S` with authentication disabled, on a fresh database named after
    /// `purpose`.
    pub async fn start<S: ServiceDescription>(purpose: &str) -> anyhow::Result<Self> {
        Self::start_with::<S>(purpose, |settings| settings).await
    }

    /// As [`Self::start`], with the settings changed by `adjust` first.
    pub async fn start_with<S: ServiceDescription>(
        purpose: &str,
        adjust: impl FnOnce(TestSettings) -> TestSettings,
    ) -> anyhow::Result<Self> {
        let broker = TestBroker::start()?;
        let topic_prefix = unique_topic_prefix();
        let database = fresh_database(purpose).await?;
        let settings = adjust(TestSettings::new(
            &database.url,
            broker.bootstrap_servers(),
            &topic_prefix,
        ));
        let service = start_in_process::<S>(&settings).await?;
        let feed = EventFeed::new(broker.bootstrap_servers(), &topic_prefix)?;
        Ok(ServiceUnderTest {
            broker,
            topic_prefix,
            settings,
            service,
            feed,
        })
    }

    /// The service's database URL.
    pub fn database_url(&self) -> &str {
        self.settings.get("database.url").unwrap_or_default()
    }

    /// A channel to the service.
    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        Ok(tonic::transport::Endpoint::from_shared(self.service.url())?
            .connect()
            .await?)
    }

    /// The topic service `producer` publishes on in this test.
    pub fn topic(&self, producer: &str) -> String {
        ekb_platform::messaging::topic_for(&self.topic_prefix, producer)
    }

    /// Stops the service.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.service.stop().await
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
