//! The outbox relay: publishes committed outbox rows with the idempotent producer, awaits their
//! delivery in batches, then marks them published (DESIGN.md §3, docs/adr/0017).
//!
//! - **No transaction or lock while Kafka acknowledges.** One relay per database publishes: the
//!   holder of the lease row `outbox_relay_lease`, renewed at the start of every round (a short
//!   statement of its own). Rows are read, sent and awaited outside any transaction, then marked
//!   in one statement.
//! - **A dead holder hands over at once, a stalled one at lease expiry.** Each relay keeps one
//!   database session of its own (the *lease session*, outside the pool) and tries to take a
//!   session-level advisory lock on it ([`RELAY_LOCK_KEY`]). PostgreSQL releases that lock the
//!   moment the session ends, and a process that dies (`kill -9`, a crash, a node lost) ends its
//!   session with it. The relay holding the lock takes the lease whoever held it, so a
//!   successor takes over within one follower round ([`FOLLOWER_ROUND`]) instead of waiting for
//!   the lease to expire. A holder that stalls (paused, stuck) keeps its session and its lock,
//!   so it is replaced only when its lease expires (`outbox.lease`, default 60 s): a
//!   stall is not a death. Should it wake up, it takes the lease back (it still holds the
//!   lock), and the other relay, finding the lease gone, steps back. A relay that publishes
//!   after being replaced may publish rows its successor publishes too: delivery is at least
//!   once anyway, every publisher sends in id order, and consumers de-duplicate on the event
//!   id, so the first copy of each event still arrives in key order.
//! - **Woken, not polling.** Every insert into the outbox notifies channel `ekb_outbox` at
//!   commit (a trigger); a listener task turns notifications into one wake-up permit, so the
//!   relay publishes at once, and a burst of commits costs one more round, not one per commit.
//!   `outbox.poll_interval` is only the safety net for a lost notification or a lease to take
//!   over, so an idle service does almost nothing.
//! - **Never waits without end.** A round waits for its delivery reports at most
//!   [`REPORTS_WITHIN`] (the producer's message timeout and a margin) and for the lease session
//!   at most 10 s; past that the round fails, is logged and retried, and a producer whose reports
//!   are overdue is replaced by a new one. A stalled relay with unpublished rows and nothing in
//!   its log was found by the simulation campaign (fault seed 12).
//! - **Traceable.** Each row is sent inside a PRODUCER span (`<topic> publish`) that is a child
//!   of the context stored with the row, and that span's context travels in the Kafka headers.
//!
//! A row is marked only after Kafka acknowledged it (`acks=all`); marking stops at the first
//! failed delivery so per-key order holds on retry.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::message::{Header, OwnedHeaders};
use sqlx::{Connection, PgConnection, PgPool, postgres::PgListener};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::{
    EventProducer, envelope::EVENT_TYPE_HEADER, kafka::MESSAGE_TIMEOUT, producer::Delivery,
};
use crate::{
    config::OutboxConfig,
    metrics::{
        OUTBOX_BACKLOG, OUTBOX_FAILURES, OUTBOX_LEASE_HELD, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED,
    },
    trace_context::{context_fields_of, set_remote_parent},
};

/// The channel the outbox trigger notifies (migration 2).
pub const WAKEUP_CHANNEL: &str = "ekb_outbox";

/// The session-level advisory lock whose holder is the live publisher of its database (locks are
/// per database, and every service has its own). Any constant no other code locks will do.
pub const RELAY_LOCK_KEY: i64 = 0x656b_625f_7265_6c61; // "ekb_rela"

/// How often a relay that does not publish checks whether the publisher's session is gone, so
/// rows committed before the holder died are published within about this long.
pub const FOLLOWER_ROUND: Duration = Duration::from_secs(1);

/// How long a round waits for the delivery reports of what it sent: the producer's own message
/// timeout and a margin. The producer answers every record within its message timeout, delivered
/// or failed; a report later than this means the producer is stuck, and the round fails instead
/// of waiting on it forever (fault seed 12 of the simulation campaign, docs/benchmarks.md).
pub const REPORTS_WITHIN: Duration = Duration::from_secs(MESSAGE_TIMEOUT.as_secs() + 3);

/// How long the lease session may take to take or renew the lease (two one-row statements); a
/// session that does not answer is dropped and made anew next round.
const LEASE_ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A round slower than this is logged, so a slow or stuck relay shows in the service's log.
const SLOW_ROUND: Duration = Duration::from_secs(10);

const METRICS_INTERVAL: Duration = Duration::from_secs(15);
const CLEANUP_INTERVAL: Duration = Duration::from_secs(600);

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    topic: String,
    message_key: String,
    event_type: String,
    payload: Vec<u8>,
    trace_context: sqlx::types::Json<HashMap<String, String>>,
}

/// Publishes one service's outbox.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    /// The producer it publishes with; replaced by a new one when reports are overdue.
    producer: Arc<std::sync::Mutex<EventProducer>>,
    config: OutboxConfig,
    /// This relay's identity in the lease row.
    holder: uuid::Uuid,
    /// The lease session (see the module docs); `None` until connected or after it broke.
    session: Arc<Mutex<Option<LeaseSession>>>,
}

/// A relay's own database session and whether it holds [`RELAY_LOCK_KEY`] on it.
struct LeaseSession {
    connection: PgConnection,
    locked: bool,
}

/// What one relay round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Another relay holds the lease; nothing was published.
    Follower,
    /// This relay holds the lease and published this many rows.
    Published(usize),
}

impl OutboxRelay {
    /// A relay for the service's pool and producer.
    pub fn new(pool: PgPool, producer: EventProducer, config: OutboxConfig) -> Self {
        OutboxRelay {
            pool,
            producer: Arc::new(std::sync::Mutex::new(producer)),
            config,
            holder: uuid::Uuid::now_v7(),
            session: Arc::new(Mutex::new(None)),
        }
    }

    /// Publishes until `stop` is cancelled, then publishes what is left once and flushes the
    /// producer within `grace`.
    pub async fn run(self, stop: CancellationToken, grace: Duration) -> anyhow::Result<()> {
        let poll = self.config.poll_interval;
        // Commits wake the relay through `wake`: a permit, not a queue, so however many commits
        // notify during a round, one more round follows it, not one round per commit.
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(forward_commits(
            self.pool.clone(),
            wake.clone(),
            poll,
            stop.clone(),
        ));
        let mut last_metrics = Instant::now() - METRICS_INTERVAL;
        let mut last_cleanup = Instant::now();
        let mut failures: u32 = 0;
        while !stop.is_cancelled() {
            let started = Instant::now();
            let round = self.publish_batch().await;
            if started.elapsed() >= SLOW_ROUND {
                tracing::warn!(took = ?started.elapsed(), "outbox relay round was slow");
            }
            let delay = match round {
                Ok(Round::Published(published)) if published as i64 >= self.config.batch_size => {
                    failures = 0;
                    Duration::ZERO
                }
                Ok(Round::Published(_)) => {
                    failures = 0;
                    poll
                }
                Ok(Round::Follower) => {
                    failures = 0;
                    poll.min(FOLLOWER_ROUND)
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    metrics::counter!(OUTBOX_FAILURES, "reason" => "round").increment(1);
                    tracing::warn!(error = %format!("{error:#}"), failures, "outbox relay round failed; retrying");
                    Duration::from_millis(100) * 2u32.saturating_pow(failures.min(6))
                }
            };
            if last_metrics.elapsed() >= METRICS_INTERVAL {
                last_metrics = Instant::now();
                if let Err(error) = self.record_backlog().await {
                    tracing::debug!(%error, "could not measure the outbox backlog");
                }
            }
            if last_cleanup.elapsed() >= CLEANUP_INTERVAL {
                last_cleanup = Instant::now();
                if let Err(error) = self.delete_old_rows().await {
                    tracing::warn!(%error, "could not clean up published outbox rows");
                }
            }
            if delay.is_zero() {
                continue;
            }
            // A failed round backs off whatever wakes it; otherwise a commit wakes the relay.
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(delay) => {}
                () = wake.notified(), if failures == 0 => {}
            }
        }
        listener.abort();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match self.publish_batch().await {
                Ok(Round::Published(published)) if (published as i64) >= self.config.batch_size => {
                    continue;
                }
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "final outbox round failed; rows stay for the next start");
                    break;
                }
            }
        }
        self.release_lease().await;
        let producer = self.current_producer();
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::task::spawn_blocking(move || producer.flush(remaining)).await??;
        tracing::info!("outbox relay stopped");
        Ok(())
    }

    /// Takes or renews the lease; whether this relay is the publisher now. Runs on the lease
    /// session, taking the advisory lock first if this session does not hold it yet; a broken
    /// session is dropped (its lock with it) and reconnected next round.
    async fn hold_lease(&self) -> Result<bool, sqlx::Error> {
        let mut slot = self.session.lock().await;
        let outcome = tokio::time::timeout(LEASE_ANSWER_WITHIN, self.hold_lease_on(&mut slot))
            .await
            .unwrap_or_else(|_| {
                Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the lease session did not answer within {LEASE_ANSWER_WITHIN:?}"),
                )))
            });
        if outcome.is_err() {
            *slot = None;
        }
        let held = matches!(outcome, Ok(true));
        metrics::gauge!(OUTBOX_LEASE_HELD).set(if held { 1.0 } else { 0.0 });
        outcome
    }

    async fn hold_lease_on(&self, slot: &mut Option<LeaseSession>) -> Result<bool, sqlx::Error> {
        let session = match slot {
            Some(session) => session,
            None => {
                let options = (*self.pool.connect_options())
                    .clone()
                    .application_name("ekb-outbox-relay-lease");
                slot.insert(LeaseSession {
                    connection: PgConnection::connect_with(&options).await?,
                    locked: false,
                })
            }
        };
        if !session.locked {
            session.locked = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK_KEY)
                .fetch_one(&mut session.connection)
                .await?;
            if session.locked {
                tracing::info!(holder = %self.holder, "outbox relay: took the publisher's lock (the previous publisher's session ended)");
            }
        }
        let held: Option<uuid::Uuid> = sqlx::query_scalar(
            "INSERT INTO outbox_relay_lease (singleton, holder, expires_at) \
             VALUES (true, $1, now() + make_interval(secs => $2)) \
             ON CONFLICT (singleton) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE outbox_relay_lease.holder = EXCLUDED.holder OR outbox_relay_lease.expires_at < now() OR $3 \
             RETURNING holder",
        )
        .bind(self.holder)
        .bind(self.config.lease.as_secs_f64())
        .bind(session.locked)
        .fetch_optional(&mut session.connection)
        .await?;
        Ok(held.is_some())
    }

    /// Gives the lease and the lock up at a clean stop, so a successor need not wait.
    async fn release_lease(&self) {
        let released = sqlx::query("DELETE FROM outbox_relay_lease WHERE holder = $1")
            .bind(self.holder)
            .execute(&self.pool)
            .await;
        if let Err(error) = released {
            tracing::debug!(%error, "could not release the relay lease; it expires by itself");
        }
        if let Some(session) = self.session.lock().await.take()
            && let Err(error) = session.connection.close().await
        {
            tracing::debug!(%error, "could not close the lease session; its lock ends with it");
        }
        metrics::gauge!(OUTBOX_LEASE_HELD).set(0.0);
    }

    /// Publishes up to one batch if this relay holds the lease; says how many rows were marked
    /// published, or that another relay publishes.
    pub async fn publish_batch(&self) -> anyhow::Result<Round> {
        if !self.hold_lease().await? {
            return Ok(Round::Follower);
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, topic, message_key, event_type, payload, trace_context FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.config.batch_size)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(Round::Published(0));
        }
        let producer = self.current_producer();

        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let span = tracing::info_span!(
                "outbox.publish",
                otel.name = %format!("{} publish", row.topic),
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.operation.type = "publish",
                messaging.destination.name = %row.topic,
                event_type = %row.event_type,
            );
            set_remote_parent(&span, &row.trace_context);
            let headers_context = context_fields_of(&span);
            let mut headers = OwnedHeaders::new().insert(Header {
                key: EVENT_TYPE_HEADER,
                value: Some(row.event_type.as_bytes()),
            });
            for (key, value) in &headers_context {
                headers = headers.insert(Header {
                    key: key.as_str(),
                    value: Some(value.as_bytes()),
                });
            }
            let sent = producer.send(
                &row.topic,
                Some(row.message_key.as_bytes()),
                Some(row.payload.as_slice()),
                headers,
            );
            match sent {
                Ok(delivery) => deliveries.push((delivery, span)),
                Err(error) => {
                    tracing::warn!(%error, "producer queue refused a record; publishing the rest later");
                    break;
                }
            }
        }

        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        let Reports {
            delivered_ids,
            first_failure,
            overdue,
        } = await_reports(&ids, deliveries, Instant::now() + REPORTS_WITHIN).await;
        if overdue {
            self.renew_producer(&producer);
        }
        if !delivered_ids.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&delivered_ids)
                .execute(&self.pool)
                .await?;
        }
        let published = delivered_ids.len();
        metrics::counter!(OUTBOX_PUBLISHED).increment(published as u64);
        if let Some(error) = first_failure {
            let reason = if overdue { "overdue" } else { "delivery" };
            metrics::counter!(OUTBOX_FAILURES, "reason" => reason).increment(1);
            anyhow::bail!("delivery failed after {published} published: {error}");
        }
        Ok(Round::Published(published))
    }

    /// The producer rounds publish with now.
    fn current_producer(&self) -> EventProducer {
        self.producer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces `stuck` (if it is still the current producer) with a new one of the same
    /// settings. The old one is dropped on a blocking thread: librdkafka's destroy may wait for
    /// its broker threads. If no new producer can be made, the old one stays and the next
    /// overdue round tries again.
    fn renew_producer(&self, stuck: &EventProducer) {
        let renewed = match stuck.renewed() {
            Ok(renewed) => renewed,
            Err(error) => {
                tracing::warn!(%error, "could not make a new producer; keeping the one whose reports are overdue");
                return;
            }
        };
        let old = {
            let mut current = self
                .producer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !current.is_same(stuck) {
                return;
            }
            std::mem::replace(&mut *current, renewed)
        };
        tracing::warn!(
            within = ?REPORTS_WITHIN,
            "outbox relay: delivery reports overdue; publishing with a new producer from now on"
        );
        tokio::task::spawn_blocking(move || drop(old));
    }

    async fn record_backlog(&self) -> anyhow::Result<()> {
        let (backlog, oldest_age): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM (now() - min(created_at)))::float8 \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        metrics::gauge!(OUTBOX_BACKLOG).set(backlog as f64);
        metrics::gauge!(OUTBOX_OLDEST_AGE).set(oldest_age.unwrap_or(0.0));
        Ok(())
    }

    async fn delete_old_rows(&self) -> Result<u64, sqlx::Error> {
        prune_outbox(&self.pool, self.config.retention).await
    }
}

/// What the delivery reports of one round said.
#[derive(Debug, PartialEq, Eq)]
struct Reports {
    /// Rows acknowledged before the first failure, in id order: the ones to mark published.
    delivered_ids: Vec<i64>,
    /// The first failure, if any.
    first_failure: Option<String>,
    /// Some report did not arrive by the deadline.
    overdue: bool,
}

/// Awaits the reports of `deliveries` (sent for the rows `ids`, in order) until `deadline`.
/// Rows are marked only up to the first failure, so per-key order holds when the rest are sent
/// again; a report missing at the deadline is a failure (`overdue`), never a wait without end.
async fn await_reports(
    ids: &[i64],
    deliveries: Vec<(Delivery, tracing::Span)>,
    deadline: Instant,
) -> Reports {
    let mut reports = Reports {
        delivered_ids: Vec::with_capacity(deliveries.len()),
        first_failure: None,
        overdue: false,
    };
    for (id, (delivery, span)) in ids.iter().zip(deliveries) {
        let failure = match tokio::time::timeout_at(deadline.into(), delivery).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(error))) => Some(error.to_string()),
            Ok(Err(_)) => Some("delivery report lost".to_owned()),
            Err(_) => {
                reports.overdue = true;
                Some(format!("no delivery report within {REPORTS_WITHIN:?}"))
            }
        };
        match failure {
            None if reports.first_failure.is_none() => reports.delivered_ids.push(*id),
            None => {}
            Some(error) => {
                span.in_scope(|| tracing::warn!(%error, "delivery failed"));
                reports.first_failure.get_or_insert(error);
            }
        }
    }
    reports
}

/// Deletes outbox rows published more than `retention` ago; returns how many. Unpublished rows
/// are never deleted.
pub async fn prune_outbox(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1::float8)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Listens on the wake-up channel and turns every commit notification into a permit on `wake`
/// (one permit however many arrive). A permit is also given as soon as listening starts, so a
/// commit made before that is not left to the safety-net poll. If listening fails, it tries
/// again after `retry`; meanwhile the relay polls.
async fn forward_commits(
    pool: PgPool,
    wake: Arc<Notify>,
    retry: Duration,
    stop: CancellationToken,
) {
    // The listener keeps its connection for as long as it listens: a pool of one of its own, so
    // it never takes one of the service's pooled connections (the connection budget counts it
    // beside the pool, with the lease session).
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(
            (*pool.connect_options())
                .clone()
                .application_name("ekb-outbox-relay-listen"),
        );
    while !stop.is_cancelled() {
        let listening = async {
            let mut listener = PgListener::connect_with(&own).await?;
            listener.listen(WAKEUP_CHANNEL).await?;
            wake.notify_one();
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
        };
        let lost: Result<(), sqlx::Error> = tokio::select! {
            () = stop.cancelled() => return,
            lost = listening => lost,
        };
        if let Err(error) = lost {
            tracing::debug!(%error, "not listening for outbox commits; polling until listening again");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use tokio::sync::oneshot;

    use super::{Reports, await_reports};

    /// A delivery already answered with `outcome`.
    fn answered(outcome: Result<(), KafkaError>) -> (super::Delivery, tracing::Span) {
        let (reply, delivery) = oneshot::channel();
        reply.send(outcome).expect("the receiver waits");
        (delivery, tracing::Span::none())
    }

    #[tokio::test]
    async fn rows_are_marked_up_to_the_first_failure() {
        let failed = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let reports = await_reports(
            &[1, 2, 3],
            vec![answered(Ok(())), answered(Err(failed)), answered(Ok(()))],
            Instant::now() + Duration::from_secs(5),
        )
        .await;
        assert_eq!(reports.delivered_ids, vec![1]);
        assert!(!reports.overdue);
        assert!(
            reports
                .first_failure
                .is_some_and(|e| e.contains("timed out"))
        );
    }

    /// A report that never comes (the producer kept the record and went silent) fails the round
    /// at the deadline; the rows acknowledged before it are still marked.
    #[tokio::test]
    async fn a_report_that_never_comes_fails_the_round_at_the_deadline() {
        let (_silent_sender, silent) = oneshot::channel();
        let started = Instant::now();
        let Reports {
            delivered_ids,
            first_failure,
            overdue,
        } = await_reports(
            &[7, 8, 9],
            vec![
                answered(Ok(())),
                (silent, tracing::Span::none()),
                answered(Ok(())),
            ],
            started + Duration::from_millis(200),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "it waited past the deadline"
        );
        assert_eq!(delivered_ids, vec![7]);
        assert!(overdue);
        assert!(first_failure.is_some_and(|e| e.contains("no delivery report within")));
    }

    /// A producer that dropped a record's reply is a failure too, not a success.
    #[tokio::test]
    async fn a_lost_report_is_a_failure() {
        let (reply, lost) = oneshot::channel::<Result<(), KafkaError>>();
        drop(reply);
        let reports = await_reports(
            &[1],
            vec![(lost, tracing::Span::none())],
            Instant::now() + Duration::from_secs(5),
        )
        .await;
        assert!(reports.delivered_ids.is_empty());
        assert!(!reports.overdue);
        assert_eq!(
            reports.first_failure.as_deref(),
            Some("delivery report lost")
        );
    }
}
