//! The service's one Kafka producer: librdkafka's idempotent producer, with each record's
//! delivery report handed to a future, polled by a thread of its own.
//!
//! Why not rust-rdkafka's `FutureProducer`: its polling thread calls `poll(100 ms)` in a loop,
//! and rdkafka 0.39 turns the last sub-millisecond of each call into a 0 ms timeout and spins
//! until the deadline — about 0.9 % of a core in every idle service (docs/benchmarks.md). This
//! thread polls with a one-second timeout instead: a delivery report still wakes it at once
//! (poll returns as soon as one is queued), and the spin happens once a second, not ten times.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    ClientConfig, ClientContext,
    error::{KafkaError, KafkaResult},
    message::OwnedHeaders,
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext},
};
use tokio::sync::oneshot;

/// How long one poll of the delivery reports may wait when none arrives.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// The outcome of one record: `Ok(())` once Kafka acknowledged it (`acks=all`).
pub type Delivery = oneshot::Receiver<Result<(), KafkaError>>;

/// Hands each delivery report to the record's waiting future.
struct DeliveryReports;

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = Box<oneshot::Sender<Result<(), KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((error, _)) => Err(error.clone()),
        };
        // The sender is gone only if nobody waits for this record any more.
        let _ = reply.send(outcome);
    }
}

/// Stops the polling thread when the last handle is dropped.
struct Poller {
    stop: Arc<AtomicBool>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An idempotent producer; cheap to clone (every clone is the same producer).
#[derive(Clone)]
pub struct EventProducer {
    producer: Arc<BaseProducer<DeliveryReports>>,
    /// The settings it was made with, so that [`EventProducer::renewed`] can make another.
    config: ClientConfig,
    _poller: Arc<Poller>,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").finish_non_exhaustive()
    }
}

impl EventProducer {
    /// A producer with `config`, and its polling thread.
    pub fn new(config: &ClientConfig) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<DeliveryReports>> =
            Arc::new(config.create_with_context(DeliveryReports)?);
        let stop = Arc::new(AtomicBool::new(false));
        let polled = producer.clone();
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name("kafka-delivery-reports".to_owned())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    polled.poll(POLL_TIMEOUT);
                }
            })
            .map_err(|error| KafkaError::ClientCreation(error.to_string()))?;
        Ok(EventProducer {
            producer,
            config: config.clone(),
            _poller: Arc::new(Poller { stop }),
        })
    }

    /// A new producer (a new librdkafka client and producer id) with the same settings: the way
    /// out when this one stopped answering (the outbox relay's overdue delivery reports).
    pub fn renewed(&self) -> KafkaResult<Self> {
        EventProducer::new(&self.config)
    }

    /// Queues one record; the returned [`Delivery`] resolves when Kafka acknowledged it or gave
    /// up. Fails at once if the local queue refuses it (full): the caller retries later.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<Delivery, KafkaError> {
        let (reply, delivery) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(reply)).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.producer
            .send(record)
            .map(|()| delivery)
            .map_err(|(error, _)| error)
    }

    /// Whether `other` is a handle of this same producer.
    pub fn is_same(&self, other: &EventProducer) -> bool {
        Arc::ptr_eq(&self.producer, &other.producer)
    }

    /// Waits (blocking) until every queued record was delivered or `timeout` passed.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.producer.flush(timeout)
    }

    /// Whether the cluster answers a metadata request within `timeout` (blocking).
    pub fn cluster_answers(&self, timeout: Duration) -> bool {
        self.producer.client().fetch_metadata(None, timeout).is_ok()
    }
}
