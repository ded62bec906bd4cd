//! An in-memory snapshot of the agreement-coverage read model, so the routing decision costs no
//! database round trip. The read model has at most a few hundred rows (agreements per county
//! and area), so the whole table is loaded, and reloaded once the snapshot is older than
//! `coverage.max_age` (default 1 s). Coverage is eventually consistent anyway — it follows
//! expert-registry events — and this adds at most that age to the delay, on every replica alike.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ekb_domain::{CompetenceArea, CountyCode};
use sqlx::PgPool;
use time::Date;
use tokio::sync::RwLock;

use crate::agreement_coverage::CoveredAreas;

struct CoverageRow {
    county_code: String,
    areas: Vec<CompetenceArea>,
    valid_from: Date,
    valid_to: Date,
}

struct Loaded {
    at: Instant,
    rows: Arc<Vec<CoverageRow>>,
}

/// The coverage read model, cached for a bounded time.
pub struct CoverageSnapshot {
    pool: PgPool,
    max_age: Duration,
    loaded: RwLock<Option<Loaded>>,
}

impl std::fmt::Debug for CoverageSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoverageSnapshot")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl CoverageSnapshot {
    /// A snapshot over routing's pool, reloaded when older than `max_age`.
    pub fn new(pool: PgPool, max_age: Duration) -> Self {
        CoverageSnapshot {
            pool,
            max_age,
            loaded: RwLock::new(None),
        }
    }

    /// The areas covered by an active agreement in `county` on `date`.
    pub async fn covered_areas(
        &self,
        county: &CountyCode,
        date: Date,
    ) -> Result<CoveredAreas, sqlx::Error> {
        let rows = self.rows().await?;
        Ok(CoveredAreas::from_iter(
            rows.iter()
                .filter(|row| {
                    row.county_code == county.as_str()
                        && row.valid_from <= date
                        && date <= row.valid_to
                })
                .flat_map(|row| row.areas.iter().copied()),
        ))
    }

    async fn rows(&self) -> Result<Arc<Vec<CoverageRow>>, sqlx::Error> {
        let is_fresh = |loaded: &Option<Loaded>| {
            loaded
                .as_ref()
                .filter(|l| l.at.elapsed() < self.max_age)
                .map(|l| l.rows.clone())
        };
        if let Some(rows) = is_fresh(&*self.loaded.read().await) {
            return Ok(rows);
        }
        let mut loaded = self.loaded.write().await;
        if let Some(rows) = is_fresh(&loaded) {
            return Ok(rows); // another request reloaded it while we waited
        }
        let raw: Vec<(String, Vec<String>, Date, Date)> = sqlx::query_as(
            "SELECT county_code, competence_areas, valid_from, valid_to FROM agreement_coverage",
        )
        .fetch_all(&self.pool)
        .await?;
        let rows: Arc<Vec<CoverageRow>> = Arc::new(
            raw.into_iter()
                .map(|(county_code, codes, valid_from, valid_to)| CoverageRow {
                    county_code,
                    areas: codes
                        .iter()
                        .filter_map(|code| CompetenceArea::parse_code(code).ok())
                        .collect(),
                    valid_from,
                    valid_to,
                })
                .collect(),
        );
        *loaded = Some(Loaded {
            at: Instant::now(),
            rows: rows.clone(),
        });
        Ok(rows)
    }
}
