//! Upstream events for one service at a time: a service test starts only the service under
//! test and feeds it the events its upstream services would publish, as real envelopes on the
//! real topics ([`EventFeed`]); and a scripted counterpart answers a service's requests by rule
//! ([`ScriptedBudget`] answers GrantRequested and OrderRequested as budget would). Both speak
//! the same envelope, headers and topic names as the platform's relay; nothing here is a mock
//! of the service under test.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use ekb_platform::messaging::{
    EventSubject,
    envelope::{EVENT_TYPE_HEADER, wrap},
    topic_for,
};
use ekb_proto::v1::{self, EventEnvelope};
use prost::{Message as _, Name};
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use tokio::task::JoinHandle;

use crate::broker::{test_client_config, unique_topic};

/// Publishes events on another service's topic, as that service's outbox relay would.
#[derive(Clone)]
pub struct EventFeed {
    producer: FutureProducer,
    topic_prefix: String,
}

impl EventFeed {
    /// A feed to the broker at `brokers`, on topics under `topic_prefix`.
    pub fn new(brokers: &str, topic_prefix: &str) -> anyhow::Result<Self> {
        let producer = test_client_config(brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()
            .context("creating the event feed's producer")?;
        Ok(EventFeed {
            producer,
            topic_prefix: topic_prefix.to_owned(),
        })
    }

    /// Publishes `event` about `subject` as service `producer` would (its topic, a new
    /// envelope, the event-type header); returns the envelope, for redelivering it.
    pub async fn publish<M: prost::Message + Name>(
        &self,
        producer: &str,
        subject: &EventSubject,
        event: &M,
    ) -> anyhow::Result<EventEnvelope> {
        let envelope = wrap(producer, subject, event);
        self.publish_envelope(producer, subject.key(), &envelope)
            .await?;
        Ok(envelope)
    }

    /// Publishes `envelope` (again) on `producer`'s topic with Kafka key `key`.
    pub async fn publish_envelope(
        &self,
        producer: &str,
        key: &str,
        envelope: &EventEnvelope,
    ) -> anyhow::Result<()> {
        self.publish_bytes(
            producer,
            key,
            &envelope.event_type,
            &envelope.encode_to_vec(),
        )
        .await
    }

    /// Publishes raw bytes as a message of type `event_type` (for malformed-event tests).
    pub async fn publish_bytes(
        &self,
        producer: &str,
        key: &str,
        event_type: &str,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        let topic = topic_for(&self.topic_prefix, producer);
        let headers = OwnedHeaders::new().insert(Header {
            key: EVENT_TYPE_HEADER,
            value: Some(event_type.as_bytes()),
        });
        let record = FutureRecord::to(&topic)
            .key(key.as_bytes())
            .payload(payload)
            .headers(headers);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| anyhow::anyhow!("publishing on {topic}: {error}"))?;
        Ok(())
    }
}

/// A scripted budget: reserves what fits in a fixed amount and denies the rest
/// (INSUFFICIENT_FUNDS), answering GrantRequested (applications) and OrderRequested
/// (pilot-ordering) on budget's topic, keyed by case. For service tests of budget's
/// counterparts before, and besides, the real budget service.
pub struct ScriptedBudget {
    available_ore: Arc<AtomicI64>,
    answered: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ScriptedBudget {
    /// Starts answering requests on the topics under `topic_prefix`, with `available_ore` to
    /// reserve from.
    pub async fn start(
        brokers: &str,
        topic_prefix: &str,
        available_ore: i64,
    ) -> anyhow::Result<Self> {
        let consumer: StreamConsumer = test_client_config(brokers)
            .set("group.id", unique_topic("scripted-budget-"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        let topics = [
            topic_for(topic_prefix, "applications"),
            topic_for(topic_prefix, "pilot-ordering"),
        ];
        for topic in &topics {
            // Asking for a topic's metadata creates it where auto-creation is on.
            let _ = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        }
        consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
        let feed = EventFeed::new(brokers, topic_prefix)?;
        let available = Arc::new(AtomicI64::new(available_ore));
        let answered = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(answer_requests(
            consumer,
            feed,
            available.clone(),
            answered.clone(),
        ));
        Ok(ScriptedBudget {
            available_ore: available,
            answered,
            task,
        })
    }

    /// What is left to reserve.
    pub fn available_ore(&self) -> i64 {
        self.available_ore.load(Ordering::SeqCst)
    }

    /// How many requests it has answered.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedBudget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One funds request, whichever service asked.
struct FundsRequest {
    commitment: v1::Commitment,
    case_id: String,
    county_code: String,
    flow: v1::Flow,
    budget_year: i32,
    account: Option<v1::BudgetAccount>,
    amount_ore: i64,
}

impl FundsRequest {
    fn from_envelope(envelope: &EventEnvelope) -> Option<Self> {
        let payload = envelope.payload.as_slice();
        if envelope.event_type == v1::GrantRequested::full_name() {
            let request = v1::GrantRequested::decode(payload).ok()?;
            Some(FundsRequest {
                commitment: v1::Commitment {
                    kind: v1::CommitmentKind::Grant as i32,
                    commitment_id: request.grant_id,
                },
                case_id: request.case_id,
                county_code: request.county_code,
                flow: v1::Flow::Regular,
                budget_year: request.budget_year,
                account: request.account,
                amount_ore: request.amount_ore,
            })
        } else if envelope.event_type == v1::OrderRequested::full_name() {
            let request = v1::OrderRequested::decode(payload).ok()?;
            Some(FundsRequest {
                commitment: v1::Commitment {
                    kind: v1::CommitmentKind::PilotOrder as i32,
                    commitment_id: request.order_id,
                },
                case_id: request.case_id,
                county_code: request.county_code,
                flow: v1::Flow::Pilot,
                budget_year: request.budget_year,
                account: request.account,
                amount_ore: request.amount_ore,
            })
        } else {
            None
        }
    }
}

async fn answer_requests(
    consumer: StreamConsumer,
    feed: EventFeed,
    available: Arc<AtomicI64>,
    answered: Arc<AtomicUsize>,
) {
    loop {
        let Ok(message) = consumer.recv().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some(request) = message
            .payload()
            .and_then(|bytes| EventEnvelope::decode(bytes).ok())
            .as_ref()
            .and_then(FundsRequest::from_envelope)
        else {
            continue;
        };
        let reserved = available.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            (left >= request.amount_ore).then_some(left - request.amount_ore)
        });
        let now = Some(prost_types::Timestamp::from(std::time::SystemTime::now()));
        let subject = EventSubject {
            case_id: Some(request.case_id.clone()),
            aggregate_id: request.commitment.commitment_id.clone(),
        };
        let published = match reserved {
            Ok(_) => {
                let event = v1::FundsReserved {
                    reservation_id: uuid::Uuid::now_v7().to_string(),
                    commitment: Some(request.commitment),
                    case_id: request.case_id,
                    county_code: request.county_code,
                    flow: request.flow as i32,
                    budget_year: request.budget_year,
                    account: request.account,
                    amount_ore: request.amount_ore,
                    reserved_at: now,
                };
                feed.publish("budget", &subject, &event).await
            }
            Err(left) => {
                let event = v1::FundsDenied {
                    commitment: Some(request.commitment),
                    case_id: request.case_id,
                    county_code: request.county_code,
                    flow: request.flow as i32,
                    budget_year: request.budget_year,
                    account: request.account,
                    requested_ore: request.amount_ore,
                    available_ore: left,
                    reason: v1::FundsDeniedReason::InsufficientFunds as i32,
                    denied_at: now,
                };
                feed.publish("budget", &subject, &event).await
            }
        };
        match published {
            Ok(_) => {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) => tracing::warn!(%error, "the scripted budget could not answer"),
        }
    }
}
