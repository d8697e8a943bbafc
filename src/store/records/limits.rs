//! The one rate limiter: shared sliding windows kept in the record store, so
//! every process on every machine counts against the same totals.
//!
//! # Semantics
//!
//! A limit is a key, a count and a window. [`RateLimits::acquire_slot`] grants
//! a slot when fewer than `limit` hits of the key count now, and records one
//! hit. A hit counts from when it was taken until one window later, or until
//! its `held_until` when that comes first ([`RateLimits::hold_slot_until`]);
//! a hit given back ([`RateLimits::release_slot`]) stops counting at once.
//! A refusal says when the first counting hit stops counting: the earliest
//! time a retry can succeed. Granting is atomic: N concurrent callers never
//! get more than `limit` slots.
//!
//! Used by API keys (`api_key:<id>`, `auth.requests_per_minute` per 60 s) and
//! by TikTok's limits (drafts per account per 24 h, pending uploads per
//! account, calls per minute).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::dialect::{Dialect, lock_key};
use super::{Records, StoreError, db_run, earlier, later, parse_time, time_text};

/// Shared sliding-window rate limits (see the module docs).
#[async_trait]
pub trait RateLimits: Send + Sync + 'static {
    /// If fewer than `limit` hits of `key` count now, records one (held by
    /// `holder`, when given) and returns None; otherwise returns Some(time when
    /// the first counting hit stops counting). Old hits of the key are deleted
    /// on the way, so every caller of one key must pass the same window. A
    /// limit of 0 never grants a slot.
    async fn acquire_slot(
        &self,
        key: &str,
        holder: Option<&str>,
        limit: u32,
        window: Duration,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.acquire_slot_at(key, holder, limit, window, Utc::now()).await
    }
    /// [`RateLimits::acquire_slot`] as if it were `now` (which must not run
    /// behind the times already recorded for the key): tests step through a
    /// window without waiting for it.
    async fn acquire_slot_at(
        &self,
        key: &str,
        holder: Option<&str>,
        limit: u32,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Gives back `holder`'s hits of `key` that count for their whole window:
    /// for a slot taken for a call that never reached the outside, or for an
    /// outside effect that did not last (a TikTok upload that can no longer
    /// complete). Hits already cut short by `hold_slot_until` are left to lapse.
    async fn release_slot(&self, key: &str, holder: &str) -> Result<(), StoreError>;
    /// Makes `holder`'s whole-window hits of `key` stop counting at `until`
    /// (if that is sooner than their window's end): for an effect the outside
    /// keeps only for a while.
    async fn hold_slot_until(&self, key: &str, holder: &str, until: DateTime<Utc>) -> Result<(), StoreError>;
    /// How many hits of `key` count at `now` for a `window`: what the next
    /// [`RateLimits::acquire_slot_at`] would weigh against its limit.
    async fn hits_counting(&self, key: &str, window: Duration, now: DateTime<Utc>) -> Result<u32, StoreError>;
}

#[async_trait]
impl RateLimits for Records {
    async fn acquire_slot_at(
        &self,
        key: &str,
        holder: Option<&str>,
        limit: u32,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        acquire(self, key, holder, limit, window, now).await
    }

    async fn release_slot(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("DELETE FROM rate_hits WHERE key = $1 AND holder = $2 AND held_until IS NULL")
                .bind(key)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn hits_counting(&self, key: &str, window: Duration, now: DateTime<Utc>) -> Result<u32, StoreError> {
        let n: i64 = db_run!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM rate_hits WHERE key = $1 AND at > $2 AND (held_until IS NULL OR held_until > $3)",
            )
            .bind(key)
            .bind(time_text(earlier(now, window)))
            .bind(time_text(now))
            .fetch_one(pool)
            .await?
        });
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn hold_slot_until(&self, key: &str, holder: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("UPDATE rate_hits SET held_until = $1 WHERE key = $2 AND holder = $3 AND held_until IS NULL")
                .bind(time_text(until))
                .bind(key)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// [`RateLimits::acquire_slot_at`].
async fn acquire(
    store: &Records,
    key: &str,
    holder: Option<&str>,
    limit: u32,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let cutoff = time_text(earlier(now, window));
    let hits: Option<Vec<(String, Option<String>)>> = db_run!(store, pool => {
        // Callers of one key count one after the other: SQLite's write
        // transaction excludes every other writer, PostgreSQL takes an
        // advisory lock on the key.
        let mut tx = pool.write().await?;
        lock_key(pool, &mut tx, key).await?;
        sqlx::query("DELETE FROM rate_hits WHERE key = $1 AND (at <= $2 OR held_until <= $3)")
            .bind(key)
            .bind(&cutoff)
            .bind(time_text(now))
            .execute(&mut *tx)
            .await?;
        let hits: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT at, held_until FROM rate_hits WHERE key = $1 AND at > $2 \
             AND (held_until IS NULL OR held_until > $3)",
        )
        .bind(key)
        .bind(&cutoff)
        .bind(time_text(now))
        .fetch_all(&mut *tx)
        .await?;
        let granted = hits.len() < limit as usize;
        if granted {
            sqlx::query("INSERT INTO rate_hits (key, at, holder) VALUES ($1, $2, $3)")
                .bind(key)
                .bind(time_text(now))
                .bind(holder)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        (!granted).then_some(hits)
    });
    let Some(hits) = hits else { return Ok(None) };
    Ok(Some(match first_leave(&hits, window)? {
        Some(at) => at,
        // Only with limit 0: nothing will ever leave, so wait a whole window.
        None => later(now, window),
    }))
}

/// When the first of these counting hits (their `at` and `held_until`) stops
/// counting: at the end of its window, or at its `held_until` if sooner. None
/// when there are none.
fn first_leave(hits: &[(String, Option<String>)], window: Duration) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut first: Option<DateTime<Utc>> = None;
    for (at, held_until) in hits {
        let mut leaves = later(parse_time(at)?, window);
        if let Some(until) = held_until {
            leaves = leaves.min(parse_time(until)?);
        }
        first = Some(first.map_or(leaves, |f| f.min(leaves)));
    }
    Ok(first)
}
