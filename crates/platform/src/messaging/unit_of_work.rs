//! One unit of work for every write (DESIGN.md §3): a database transaction in which the state
//! change and the events it publishes commit together. RPC handlers begin one from [`Db`];
//! event handlers get the consumer's (which also holds the inbox row). Either way an event is
//! published if and only if the change committed, and every write in every service reads the
//! same: `let mut work = db.begin().await?; …; work.publish(…).await?; work.commit().await?`.

use prost::{Message, Name};
use sqlx::{PgConnection, PgPool, Postgres, Transaction, pool::PoolConnection};

use super::{EventSubject, Outbox};
use crate::clock::{SharedClock, SystemClock};

/// A service's database: the pool, the outbox its writes publish through, and the clock every
/// "now" of the service reads (the system clock, or a test's or a simulation's).
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    outbox: Outbox,
    clock: SharedClock,
}

impl Db {
    /// The database of a service publishing through `outbox`, on the system clock.
    pub fn new(pool: PgPool, outbox: Outbox) -> Self {
        Db {
            pool,
            outbox,
            clock: std::sync::Arc::new(SystemClock),
        }
    }

    /// The same database with its "now" read from `clock` (which also dates its events).
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Db {
            outbox: self.outbox.with_clock(clock.clone()),
            clock,
            pool: self.pool,
        }
    }

    /// The service's clock: every "now" of its handlers, event handlers and jobs.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Starts a unit of work.
    pub async fn begin(&self) -> Result<UnitOfWork, sqlx::Error> {
        Ok(UnitOfWork::new(
            self.pool.begin().await?,
            self.outbox.clone(),
        ))
    }

    /// A connection for reads that change nothing.
    pub async fn read(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// The pool (for read models and background jobs that need it directly).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The outbox (for tests and tools that build events without a write).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

/// A transaction whose state changes and published events commit together, or not at all
/// (dropping it uncommitted rolls both back).
#[derive(Debug)]
pub struct UnitOfWork {
    tx: Transaction<'static, Postgres>,
    outbox: Outbox,
    published: usize,
}

impl UnitOfWork {
    /// A unit of work on an open transaction.
    pub fn new(tx: Transaction<'static, Postgres>, outbox: Outbox) -> Self {
        UnitOfWork {
            tx,
            outbox,
            published: 0,
        }
    }

    /// The current instant by the service's clock (which also dates this unit's events).
    pub fn now(&self) -> time::OffsetDateTime {
        self.outbox.now()
    }

    /// The transaction's connection, for the service's own statements.
    pub fn db(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Publishes `event` about `subject` when (and only if) this unit of work commits. Returns
    /// the event id.
    pub async fn publish<M: Message + Name>(
        &mut self,
        subject: &EventSubject,
        event: &M,
    ) -> Result<uuid::Uuid, sqlx::Error> {
        let event_id = self.outbox.record(&mut self.tx, subject, event).await?;
        self.published += 1;
        Ok(event_id)
    }

    /// [`Self::publish`] for a payload already encoded, of type `event_type` (its full name).
    pub async fn publish_encoded(
        &mut self,
        subject: &EventSubject,
        event_type: String,
        payload: Vec<u8>,
    ) -> Result<uuid::Uuid, sqlx::Error> {
        let event_id = self
            .outbox
            .record_encoded(&mut self.tx, subject, event_type, payload)
            .await?;
        self.published += 1;
        Ok(event_id)
    }

    /// How many events this unit of work publishes so far.
    pub fn published(&self) -> usize {
        self.published
    }

    /// Commits the change and its events.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}
