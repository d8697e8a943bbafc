//! The record store: jobs and their append-only events, TikTok accounts and
//! uploads, API keys (as hashes), batches, the notification outbox and shared
//! rate limits — everything every process must agree on.
//!
//! # Layout
//!
//! One implementation, [`Records`], over either engine: SQLite in one file (the
//! embedded default) or PostgreSQL (production, shared by every process on
//! every machine). [`connect`] picks by URL. Each file holds one entity's rows,
//! SQL and capability trait:
//!
//! - [`jobs`]: [`JobStore`], jobs, events, progress;
//! - [`purge`]: [`Purge`], erasing a job for good;
//! - [`accounts`]: [`AccountStore`], TikTok, YouTube and Instagram accounts, sealed tokens, OAuth states;
//! - [`uploads`]: [`UploadStore`], inbox uploads and waiting jobs;
//! - [`targets`]: [`TargetUploadStore`], uploads to YouTube and Instagram;
//! - [`keys`]: [`KeyStore`], API keys;
//! - [`batches`]: [`BatchStore`];
//! - [`outbox`]: [`Outbox`], notifications waiting to be sent;
//! - [`limits`]: [`RateLimits`], the one sliding-window limiter (also `store::limits`);
//! - [`metrics`]: [`StoreHealth`], `/metrics` counts and the health ping;
//! - [`sessions`]: [`SessionStore`], the studio's sign-ins and shared secrets;
//! - [`media`]: [`MediaStore`], the team's own images, clips and audio;
//! - [`performance`]: [`PerformanceStore`], TikTok posts' counts over time and account totals;
//! - [`telegram`]: [`BotPolling`], whose turn it is to poll the Telegram bot's updates, and from where;
//! - [`segments`]: [`RenderParts`], a segmented render's segments and join, and who holds which.
//!
//! [`RecordStore`] is all of them together, for the code that needs several.
//!
//! # SQL written once
//!
//! A method body is written once, with `$N` placeholders (sqlx binds them by
//! number on SQLite too) and `CAST(… AS …)` where a type must be named, and
//! [`db_run!`] expands it once per engine, so each copy is concretely typed.
//! What really differs between the engines lives in [`dialect`], side by
//! side, and the bodies ask their pool for it: how a read-then-write
//! transaction starts (`BEGIN IMMEDIATE` on SQLite), the row lock of a
//! transition (`FOR UPDATE`), the key lock of a rate limit (an advisory lock),
//! `SKIP LOCKED` in the outbox claim, `instr`/`strpos`, the JSON table
//! function a batch's rows are read with, and the WAL checkpoint after a purge.
//! Both engines store times as RFC 3339 text in UTC with microseconds, which
//! sorts in time order. The migrations stay one folder per engine: their
//! types and defaults really differ.

pub mod accounts;
pub mod batches;
mod dialect;
pub mod jobs;
pub mod keys;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod outbox;
pub mod performance;
pub mod purge;
pub mod segments;
pub mod sessions;
pub mod targets;
pub mod telegram;
pub mod uploads;

#[cfg(test)]
mod tests;

pub use accounts::{AccountRecord, AccountStatus, AccountStore, NewAccount, SealedTokens};
pub use batches::{BatchCreated, BatchRecord, BatchStore, LineOutcome, NewBatch};
pub use jobs::{Created, EventScope, JobFilter, JobProgress, JobRecord, JobStore, StoredEvent, Transition, WaitingJob};
pub use keys::{ApiKeyRecord, KeyStore, NewApiKey, Scope};
pub use media::{MediaRecord, MediaStore};
pub use metrics::{RecordMetrics, StoreHealth};
pub use outbox::{Channel, NewNotification, Notification, NotificationOutcome, NotificationStatus, Outbox};
pub use performance::{AccountTotals, LatestSample, PerformanceStore, PostUpdate, Sample, TrackedPost};
pub use purge::Purge;
pub use segments::{JOIN_PART, PartClaim, PartState, PlannedSegment, RenderPartRecord, RenderParts};
pub use sessions::{SessionRecord, SessionStore};
pub use targets::{TargetStatus, TargetUpload, TargetUploadStore};
pub use telegram::BotPolling;
pub use uploads::{UploadRecord, UploadStatus, UploadStore};

pub use limits::RateLimits;

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// A record store failure. Always worth a retry: the data is fine, the store is not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("record store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("record store holds a value it cannot read ({0}); was it written by a newer clipforge?")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the store could not be reached or was too busy to answer
    /// (worth waiting for), rather than that it refused what was asked.
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Database(e) => is_outage(e),
            StoreError::Migrate(_) | StoreError::Corrupt(_) => false,
        }
    }
}

/// Whether a sqlx error means the database was unreachable or busy: an I/O
/// error, no connection from the pool in time, a PostgreSQL connection
/// exception (SQLSTATE class 08) or shutdown (57P01–57P03), SQLite busy or
/// locked.
pub fn is_outage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "5" | "6" | "261" | "517")
        }
        _ => false,
    }
}

/// Every capability of the record store, for code that needs several.
pub trait RecordStore:
    JobStore
    + AccountStore
    + UploadStore
    + TargetUploadStore
    + KeyStore
    + BatchStore
    + Outbox
    + RateLimits
    + StoreHealth
    + Purge
    + SessionStore
    + MediaStore
    + PerformanceStore
    + BotPolling
    + RenderParts
{
}

impl<T> RecordStore for T where
    T: JobStore
        + AccountStore
        + UploadStore
        + TargetUploadStore
        + KeyStore
        + BatchStore
        + Outbox
        + RateLimits
        + StoreHealth
        + Purge
        + SessionStore
        + MediaStore
        + PerformanceStore
        + BotPolling
        + RenderParts
{
}

/// The pool of whichever engine holds the records.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The record store, on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Records {
    db: Db,
}

/// Runs a body written once against whichever pool the store has: `$pool`
/// is bound to a `&SqlitePool` in one copy and a `&PgPool` in the other, so
/// each copy is concretely typed (no generic bounds over sqlx's traits).
/// Where the engines differ, the body asks its pool ([`dialect::Dialect`]).
macro_rules! db_run {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::records::Db::Sqlite($pool) => $body,
            $crate::store::records::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use db_run;

impl Records {
    /// Opens the store at `url` (`sqlite://…` or `postgres://…`), creating a
    /// SQLite file when missing, and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Db::Postgres(dialect::connect_postgres(url).await?)
        } else {
            Db::Sqlite(dialect::connect_sqlite(url).await?)
        };
        Ok(Self { db })
    }

    /// Which engine: `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }
}

/// Opens the record store at `url`: `sqlite://…` or `postgres://…`.
pub async fn connect(url: &str) -> Result<Arc<dyn RecordStore>, StoreError> {
    Ok(Arc::new(Records::connect(url).await?))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn now() -> String {
    time_text(Utc::now())
}

/// A time as both stores keep it: RFC 3339 in UTC with microseconds, which sorts in time order.
fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `t + d`, held below year 10000 so that its text still sorts (a "forever" lock or window stays forever).
fn later(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    let max = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z").expect("a valid time").with_timezone(&Utc);
    chrono::Duration::from_std(d).ok().and_then(|d| t.checked_add_signed(d)).map_or(max, |t| t.min(max))
}

/// `t - d`, no earlier than 1970 (nothing in the store is older).
fn earlier(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .map_or(DateTime::UNIX_EPOCH, |t| t.max(DateTime::UNIX_EPOCH))
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse<T: FromStr<Err = String>>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(StoreError::Corrupt)
}

/// A JSON value as the store keeps it, as text.
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("a stored value always serialises")
}
