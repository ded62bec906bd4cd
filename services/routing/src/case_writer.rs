//! Group commit for OpenCase (ADR 0015).
//!
//! Each new case is one `INSERT` of the case and one of its CaseRouted outbox row. Sent one case
//! per statement, every case pays a round trip, a statement's parse/plan/protocol work and a
//! commit (a WAL flush) in PostgreSQL, and the service pays a query's worth of sqlx, TLS and
//! socket work. Under load many OpenCase calls wait for the database at the same moment, so the
//! writer hands them to the database together: one statement inserts every waiting case and
//! its event, and one commit makes them all durable.
//!
//! The batching is "natural": nothing waits for a batch to fill. A fixed number of writers
//! (`case_writer.concurrent_batches`) each take everything queued when they become free, up to
//! `case_writer.max_batch_size`. With no load a case is written alone and at once; under load
//! the batches grow by themselves, and the database's work per case falls.
//!
//! A batch is one statement, so it commits or fails as a whole. When it fails, its cases are
//! written one by one, so a case that cannot be stored fails only its own call.
//!
//! Each writer keeps its pool connection from one batch to the next ([`HeldConnection`]):
//! sqlx's pool tests every connection given back to it with a round trip to PostgreSQL, which
//! cost a tenth of routing's CPU per case in the benchmark (docs/benchmarks.md). A writer gives
//! its connection back after a failed statement (the pool then tests it and closes it if it is
//! broken), after holding it for [`HOLD_AT_MOST`], so the pool's lifetime rules still apply,
//! and when the pool closes, so closing it at shutdown does not wait forever.
//! The writers' connections come out of `database.max_connections`, which must leave room for
//! everything else (the configuration checks it).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ekb_platform::ApiError;
use sqlx::{PgPool, Postgres, pool::PoolConnection};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::case_store::{self, NewCase};

/// What became of a [`NewCase`].
#[derive(Debug)]
pub enum WriteOutcome {
    /// Stored, with its event queued for publishing.
    Inserted(NewCase),
    /// Not stored: its request id already has a case (a retry, or a concurrent twin). That case
    /// is committed and visible when this outcome arrives.
    RequestIdTaken(NewCase),
}

/// How the writer batches (the `case_writer` section of routing's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct CaseWriterSettings {
    /// Batches in flight at once, each on a connection it keeps.
    pub concurrent_batches: usize,
    /// Most cases in one statement.
    pub max_batch_size: usize,
}

struct Job {
    new_case: NewCase,
    reply: oneshot::Sender<Result<WriteOutcome, ApiError>>,
}

/// The handle OpenCase writes through; cheap to clone. The writers stop when every handle is
/// gone, after finishing the batches they hold.
#[derive(Debug, Clone)]
pub struct CaseWriter {
    queue: mpsc::Sender<Job>,
}

impl CaseWriter {
    /// Starts `settings.concurrent_batches` writers on `pool`.
    pub fn start(pool: PgPool, settings: CaseWriterSettings) -> Self {
        let batches = settings.concurrent_batches.max(1);
        let max_batch_size = settings.max_batch_size.max(1);
        let (queue, receiver) = mpsc::channel(batches * max_batch_size);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..batches {
            tokio::spawn(run_writer(pool.clone(), receiver.clone(), max_batch_size));
        }
        CaseWriter { queue }
    }

    /// Stores `new_case` with its event in the next batch and waits for the commit.
    pub async fn write(&self, new_case: NewCase) -> Result<WriteOutcome, ApiError> {
        let (reply, outcome) = oneshot::channel();
        let stopped = || ApiError::Unavailable("case writer stopped".to_owned());
        self.queue
            .send(Job { new_case, reply })
            .await
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// How long a writer keeps one pool connection before giving it back for the pool to test,
/// age and hand out again.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(60);

/// A writer's connection, kept between statements while they succeed (see the module doc).
struct HeldConnection {
    pool: PgPool,
    held: Option<(PoolConnection<Postgres>, Instant)>,
}

impl HeldConnection {
    fn new(pool: PgPool) -> Self {
        HeldConnection { pool, held: None }
    }

    /// Stores `cases` on the held connection (taking one from the pool if none is held).
    async fn insert(&mut self, cases: &[&NewCase]) -> Result<Vec<Uuid>, ApiError> {
        let (mut connection, since) = match self.held.take() {
            Some(held) => held,
            None => (self.pool.acquire().await?, Instant::now()),
        };
        let result = case_store::insert_with_events(&mut connection, cases).await;
        // Dropping the connection gives it back to the pool.
        if result.is_ok() && since.elapsed() < HOLD_AT_MOST {
            self.held = Some((connection, since));
        }
        result
    }
}

/// One writer: takes everything queued (up to `max_batch_size`) whenever it is free.
async fn run_writer(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_batch_size: usize,
) {
    // Closing the pool waits for every connection to come back, the held one too: a writer
    // stops when the pool closes, and cases still queued then fail as Unavailable.
    let mut pool_closed = std::pin::pin!(pool.close_event());
    let mut connection = HeldConnection::new(pool);
    let mut jobs = Vec::with_capacity(max_batch_size);
    loop {
        let received = tokio::select! {
            received = async {
                receiver.lock().await.recv_many(&mut jobs, max_batch_size).await
            } => received,
            () = pool_closed.as_mut() => 0,
        };
        if received == 0 {
            return;
        }
        write_batch(&mut connection, std::mem::take(&mut jobs)).await;
    }
}

/// Writes `jobs` in one statement and answers each; if the statement fails, writes them one
/// by one so each call gets its own answer.
async fn write_batch(connection: &mut HeldConnection, mut jobs: Vec<Job>) {
    // Concurrent batches take request-id locks in the same order, so twins of two requests
    // split over two batches cannot deadlock.
    jobs.sort_unstable_by_key(|job| job.new_case.request_id);
    metrics::histogram!("ekb_routing_case_batch_size").record(jobs.len() as f64);
    let result = {
        let cases: Vec<&NewCase> = jobs.iter().map(|job| &job.new_case).collect();
        connection.insert(&cases).await
    };
    match result {
        Ok(inserted) => {
            for job in jobs {
                answer(job, Ok(&inserted));
            }
        }
        Err(error) if jobs.len() == 1 => answer(jobs.remove(0), Err(error)),
        Err(error) => {
            tracing::warn!(
                cases = jobs.len(),
                error = %error,
                "a batch of new cases failed; writing them one by one"
            );
            for job in jobs {
                match connection.insert(&[&job.new_case]).await {
                    Ok(inserted) => answer(job, Ok(&inserted)),
                    Err(error) => answer(job, Err(error)),
                }
            }
        }
    }
}

/// Sends `job` its outcome, given the ids of the cases its statement inserted: its case was
/// stored if its id is among them, and otherwise its request id was taken. A caller that gave
/// up (its RPC was cancelled) is no longer listening; its case stays stored for a retry to find.
fn answer(job: Job, inserted: Result<&[Uuid], ApiError>) {
    let outcome = inserted.map(|inserted| {
        if inserted.contains(&job.new_case.case.case_id) {
            WriteOutcome::Inserted(job.new_case)
        } else {
            WriteOutcome::RequestIdTaken(job.new_case)
        }
    });
    let _ = job.reply.send(outcome);
}
