//! The outbox relay: publishes committed outbox rows with the idempotent producer, awaits their
//! delivery in batches, then marks them published (DESIGN.md §3).
//!
//! One relay per database publishes at a time: each round takes a transaction-scoped advisory
//! lock, so rows of one key can never overtake each other across replicas. The lock is also why
//! the rows are read without `FOR UPDATE`: no other relay can be reading them, and a row lock
//! would cost a WAL record per event for nothing. A row is marked only after Kafka acknowledged it
//! (`acks=all`); marking stops at the first failed delivery so per-key order holds on retry.
//! Delivery is at least once; consumers de-duplicate on the event id.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::envelope::EVENT_TYPE_HEADER;
use crate::{
    config::OutboxConfig,
    metrics::{OUTBOX_BACKLOG, OUTBOX_FAILURES, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED},
};

/// Advisory lock key that makes one relay per database the publisher ("ekb-outbox" in ASCII).
const RELAY_LOCK_KEY: i64 = 0x656b_622d_6f75_7462;

const METRICS_INTERVAL: Duration = Duration::from_secs(5);
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
    producer: FutureProducer,
    config: OutboxConfig,
}

impl OutboxRelay {
    /// A relay for the service's pool and producer.
    pub fn new(pool: PgPool, producer: FutureProducer, config: OutboxConfig) -> Self {
        OutboxRelay {
            pool,
            producer,
            config,
        }
    }

    /// Publishes until `stop` is cancelled, then publishes what is left once and flushes the
    /// producer within `grace`.
    pub async fn run(self, stop: CancellationToken, grace: Duration) -> anyhow::Result<()> {
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let mut last_metrics = Instant::now() - METRICS_INTERVAL;
        let mut last_cleanup = Instant::now();
        let mut failures: u32 = 0;
        while !stop.is_cancelled() {
            let delay = match self.publish_batch().await {
                Ok(published) if published as i64 >= self.config.batch_size => {
                    failures = 0;
                    Duration::ZERO
                }
                Ok(_) => {
                    failures = 0;
                    poll
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    metrics::counter!(OUTBOX_FAILURES, "reason" => "round").increment(1);
                    tracing::warn!(error = %error, failures, "outbox relay round failed; retrying");
                    poll * 2u32.saturating_pow(failures.min(6))
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
            if !delay.is_zero() {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match self.publish_batch().await {
                Ok(published) if (published as i64) < self.config.batch_size => break,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "final outbox round failed; rows stay for the next start");
                    break;
                }
            }
        }
        let producer = self.producer.clone();
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::task::spawn_blocking(move || producer.flush(remaining)).await??;
        tracing::info!("outbox relay stopped");
        Ok(())
    }

    /// Publishes up to one batch; returns how many rows were marked published.
    pub async fn publish_batch(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let is_publisher: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
        if !is_publisher {
            tx.rollback().await?;
            return Ok(0);
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, topic, message_key, event_type, payload, trace_context FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.config.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }

        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut headers = OwnedHeaders::new().insert(Header {
                key: EVENT_TYPE_HEADER,
                value: Some(row.event_type.as_bytes()),
            });
            for (key, value) in row.trace_context.iter() {
                headers = headers.insert(Header {
                    key: key.as_str(),
                    value: Some(value.as_bytes()),
                });
            }
            let record = FutureRecord::to(&row.topic)
                .key(row.message_key.as_bytes())
                .payload(row.payload.as_slice())
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => {
                    tracing::warn!(%error, "producer queue refused a record; publishing the rest later");
                    break;
                }
            }
        }

        let mut delivered_ids = Vec::with_capacity(deliveries.len());
        let mut first_failure = None;
        for (row, delivery) in rows.iter().zip(deliveries) {
            match delivery.await {
                Ok(Ok(_)) if first_failure.is_none() => delivered_ids.push(row.id),
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => {
                    first_failure.get_or_insert_with(|| error.to_string());
                }
                Err(_) => {
                    first_failure.get_or_insert_with(|| "delivery cancelled".to_owned());
                }
            }
        }
        if !delivered_ids.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&delivered_ids)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let published = delivered_ids.len();
        metrics::counter!(OUTBOX_PUBLISHED).increment(published as u64);
        if let Some(error) = first_failure {
            metrics::counter!(OUTBOX_FAILURES, "reason" => "delivery").increment(1);
            anyhow::bail!("delivery failed after {published} published: {error}");
        }
        Ok(published)
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

    async fn delete_old_rows(&self) -> anyhow::Result<()> {
        sqlx::query(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(hours => $1::int)",
        )
        .bind(self.config.retention_hours as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
