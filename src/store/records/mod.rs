//! The record store: jobs, their append-only events and manifests.
//!
//! [`RecordStore`] is the narrow interface the pipeline and the API use;
//! [`SqliteRecords`] is the embedded implementation and [`PgRecords`] the
//! production one; [`connect`] picks by URL. Both store times as RFC 3339 text
//! in UTC with microseconds, which sorts in time order, and share the row
//! mapping below; only their SQL dialect and locking differ. TikTok accounts,
//! OAuth states, shared rate limits and uploads live here too (see [`accounts`]),
//! because every process must agree on them; so do API keys, as hashes (see [`keys`]).

mod accounts;
mod batches;
mod keys;
mod notifications;
mod postgres;
mod sqlite;

pub use accounts::*;
pub use batches::*;
pub use keys::*;
pub use notifications::*;
pub use postgres::PgRecords;
pub use sqlite::SqliteRecords;

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use sqlx::AssertSqlSafe;

use crate::domain::{JobError, JobEvent, JobId, JobRequest, JobSpec, JobState, Manifest, SpecLimits, Stage};

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

/// A job as stored, with its derived state.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: JobId,
    pub spec: JobSpec,
    pub state: JobState,
    /// The latest event, which tells the state, the stage and any error.
    pub last_event: JobEvent,
    pub manifest: Manifest,
    pub progress_stage: Option<Stage>,
    pub progress: u8,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl JobRecord {
    /// The error of a failed job.
    pub fn error(&self) -> Option<&JobError> {
        (self.state == JobState::Failed).then_some(self.last_event.error.as_ref()).flatten()
    }
}

/// The result of creating a job with an idempotency key.
#[derive(Debug)]
pub enum Created {
    New(JobRecord),
    /// A job with the same key and the same spec exists already.
    Existing(JobRecord),
    /// The key was used for a different spec.
    KeyConflict(JobId),
}

/// A state change, applied only if the job's current state is one of `from`.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: Vec<JobState>,
    pub to: JobState,
    pub stage: Option<Stage>,
    pub attempt: Option<u32>,
    pub error: Option<JobError>,
    pub note: Option<String>,
    /// When a waiting job tries again.
    pub retry_at: Option<DateTime<Utc>>,
}

impl Transition {
    pub fn new(from: &[JobState], to: JobState) -> Self {
        Self { from: from.to_vec(), to, stage: None, attempt: None, error: None, note: None, retry_at: None }
    }
    pub fn stage(mut self, stage: Stage) -> Self {
        self.stage = Some(stage);
        self
    }
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }
    pub fn error(mut self, error: JobError) -> Self {
        self.error = Some(error);
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
    pub fn retry_at(mut self, at: DateTime<Utc>) -> Self {
        self.retry_at = Some(at);
        self
    }
}

/// Which jobs to list: newest first, `limit` after the cursor `before`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub limit: u32,
    /// Only jobs whose id sorts before this (ids are time-ordered UUIDv7).
    pub before: Option<JobId>,
}

/// The interface every record store implements.
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Stores a new job in state `queued`, or finds the one with the same idempotency key.
    async fn create_job(&self, spec: &JobSpec) -> Result<Created, StoreError>;
    async fn job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError>;
    /// The whole history, oldest first.
    async fn events(&self, id: &JobId) -> Result<Vec<JobEvent>, StoreError>;
    /// Appends an event if the current state allows it; false if it did not.
    async fn transition(&self, id: &JobId, t: Transition) -> Result<bool, StoreError>;
    /// How many times `stage` started since the job was last queued.
    async fn stage_starts(&self, id: &JobId, stage: Stage) -> Result<u32, StoreError>;
    async fn save_manifest(&self, id: &JobId, manifest: &Manifest) -> Result<(), StoreError>;
    /// Starts `stage`'s progress at 0; the only way progress moves to another stage.
    async fn reset_progress(&self, id: &JobId, stage: Stage) -> Result<(), StoreError>;
    /// Records progress of `stage`, which only grows, and is ignored once
    /// another stage has started (so a late writer cannot move it back); also
    /// proves the stage is alive (bumps `updated_at`).
    async fn set_progress(&self, id: &JobId, stage: Stage, percent: u8) -> Result<(), StoreError>;
    /// Removes a job and its history (used when it could not be queued).
    async fn delete_job(&self, id: &JobId) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// Counts for `/metrics`, over every job kept in the store.
    async fn metrics(&self) -> Result<RecordMetrics, StoreError>;
    /// Adds failed-call counts (provider, code, n) to the shared totals.
    async fn add_provider_errors(&self, counts: &[(&str, &str, u64)]) -> Result<(), StoreError>;

    /// Inserts the account, or (same open_id) updates its profile, scopes and
    /// tokens; either way status becomes connected, token_version is bumped and
    /// any refresh lock is cleared (a refresh still running used the old tokens,
    /// so what it gets must not overwrite the new ones).
    async fn upsert_account(&self, a: &NewAccount) -> Result<AccountRecord, StoreError>;
    /// By our id or by open_id.
    async fn account(&self, id_or_open_id: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account, oldest first.
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError>;
    /// Deletes the tokens: status disconnected, tokens NULL, version bumped. Also
    /// clears the refresh lock, so a refresh in flight cannot store tokens again.
    async fn forget_tokens(&self, id: &str) -> Result<(), StoreError>;
    /// Takes the account's refresh lock for `ttl` if it is free, expired, or
    /// already `owner`'s. One refresh at a time per account across all
    /// processes: TikTok rotates the refresh token, so racing refreshes lose one.
    async fn lock_refresh(&self, id: &str, owner: &str, ttl: std::time::Duration) -> Result<bool, StoreError>;
    /// If `owner` still holds the lock (expired or not, as long as nobody took it
    /// over): stores `tokens` (when Some: tokens replaced, version bumped, status
    /// connected) and releases the lock, in one statement, so the rotated refresh
    /// token is never lost. False if the lock was lost (nothing stored).
    async fn finish_refresh(&self, id: &str, owner: &str, tokens: Option<&SealedTokens>) -> Result<bool, StoreError>;
    /// OAuth `state` values (stored as a hash by the caller): single use, expiring.
    async fn put_oauth_state(&self, state_hash: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Deletes and returns the state's expiry (None if unknown or already used);
    /// the caller judges whether it has passed. Also deletes states expired more
    /// than a day ago, abandoned consents.
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Sliding-window limiter shared by all processes: if fewer than `limit` hits
    /// of `key` count now, records one (held by `holder`, when given) and
    /// returns None; otherwise returns Some(time when the first counting hit
    /// stops counting). A hit counts for `window` after it was taken, or until
    /// its `held_until` if that comes first (see [`RecordStore::hold_slot_until`]).
    /// Atomic: N concurrent callers never get more than `limit` slots. Old hits of
    /// the key are deleted on the way, so every caller of one key must pass the
    /// same window. A limit of 0 never grants a slot.
    async fn acquire_slot(
        &self,
        key: &str,
        holder: Option<&str>,
        limit: u32,
        window: std::time::Duration,
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
    async fn upload(&self, job: &JobId) -> Result<Option<UploadRecord>, StoreError>;
    /// Insert or replace by job_id. The store sets the times: `updated_at` to
    /// now, `created_at` to now unless the row already holds the same
    /// publish_id, whose first save it keeps (so it dates the upload URL).
    async fn save_upload(&self, u: &UploadRecord) -> Result<(), StoreError>;
    /// Every job whose current state is `waiting`, with its account and the
    /// retry_at of that waiting event.
    async fn waiting_jobs(&self) -> Result<Vec<WaitingJob>, StoreError>;

    /// Stores a new API key: its hash, never the key.
    async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKeyRecord, StoreError>;
    /// The key whose SHA-256 is `key_hash`, revoked or not (the caller refuses revoked ones).
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Every key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes the key (a second revocation keeps the first time); false if there is no such key.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError>;
    /// Sets (or, with None, clears) where the key's jobs are announced; false if there is no such key.
    async fn set_api_key_notify(
        &self,
        id: &str,
        notify: Option<&crate::domain::NotifyRequest>,
    ) -> Result<bool, StoreError>;
    /// Counts one request served with the key and sets its last_used_at.
    async fn count_api_key_use(&self, id: &str) -> Result<(), StoreError>;

    /// Stores a batch's new jobs (state `queued`), finds the ones whose
    /// idempotency key exists already, and records which job each line became,
    /// all in one transaction. A batch with the same key is found and updated
    /// (its counts become this send's), so a re-sent batch creates nothing new.
    async fn create_batch(&self, batch: &NewBatch<'_>) -> Result<BatchCreated, StoreError>;
    async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError>;
    /// The batch's jobs counted by their current state (only states with jobs).
    async fn batch_summary(&self, id: &str) -> Result<Vec<(JobState, u64)>, StoreError>;
    /// Takes back what `create_batch` stored when its jobs could not be queued:
    /// deletes the jobs it created, and the batch itself if it was new.
    async fn undo_batch(&self, created: &BatchCreated) -> Result<(), StoreError>;

    /// Adds a notification to the outbox, due now; false (and nothing added)
    /// when the same (job, event, event_at, channel) is there already.
    async fn enqueue_notification(&self, n: &NewNotification) -> Result<bool, StoreError>;
    /// Atomically takes up to `limit` due notifications for `lease`: pending
    /// ones whose time has come, and `sending` ones whose lease lapsed (their
    /// sender died). Each comes back `sending` with its attempt counted.
    async fn claim_notifications(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<Notification>, StoreError>;
    /// Records how a claimed send ended; ignored unless the row is `sending`.
    async fn finish_notification(&self, id: &str, outcome: &NotificationOutcome) -> Result<(), StoreError>;
    /// A job's notifications, oldest first.
    async fn job_notifications(&self, job: &JobId) -> Result<Vec<Notification>, StoreError>;

    /// Erases a job and everything recorded about it (events, upload,
    /// notifications, batch lines) so that no copy stays in the store's files
    /// where the store allows (SQLite overwrites deleted content and empties
    /// its write-ahead log). False when there was no such job.
    async fn purge_job(&self, id: &JobId) -> Result<bool, StoreError>;
    /// Those of `keys` that the manifest of some job other than `except` names:
    /// cache objects still in use.
    async fn keys_used_elsewhere(&self, except: &JobId, keys: &[String]) -> Result<Vec<String>, StoreError>;
    /// Every batch, oldest first, with the (line, job) each accepted line became.
    async fn list_batches(&self) -> Result<Vec<(BatchRecord, Vec<(u32, JobId)>)>, StoreError>;
}

/// Batches and their lines; the same parameterless SQL on either database.
async fn collect_batches<DB>(pool: &sqlx::Pool<DB>) -> Result<Vec<(BatchRecord, Vec<(u32, JobId)>)>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'r> batches::BatchRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> (String, i64, String): sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let rows: Vec<batches::BatchRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {} FROM batches ORDER BY created_at, id",
        batches::BATCH_COLUMNS
    )))
    .fetch_all(pool)
    .await?;
    let lines: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT batch_id, line, job_id FROM batch_jobs ORDER BY batch_id, line").fetch_all(pool).await?;
    let mut by_batch: std::collections::HashMap<String, Vec<(u32, JobId)>> = Default::default();
    for (batch, line, job) in lines {
        let job = JobId::parse(&job).ok_or_else(|| corrupt("job id"))?;
        by_batch.entry(batch).or_default().push((u32::try_from(line).map_err(corrupt)?, job));
    }
    rows.into_iter()
        .map(|row| {
            let batch = row.into_record()?;
            let lines = by_batch.remove(&batch.id).unwrap_or_default();
            Ok((batch, lines))
        })
        .collect()
}

/// How a manifest names an object key: as a JSON string. Searching manifests
/// for the quoted key finds exactly that key, never one it is a prefix of.
fn quoted(key: &str) -> String {
    serde_json::to_string(key).expect("a string serialises")
}

/// What `/metrics` reports from the record store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordMetrics {
    pub jobs_by_state: Vec<(JobState, u64)>,
    /// Failed jobs by the stage and code they failed with.
    pub failures: Vec<(Stage, String, u64)>,
    /// Bytes of the staged videos the store knows of.
    pub staged_bytes: u64,
    /// Time spent in each stage: (stage, seconds summed, stage runs counted).
    pub stage_seconds: Vec<(Stage, f64, u64)>,
    /// Failed outside calls, retried or not: (provider, code, count).
    pub provider_errors: Vec<(String, String, u64)>,
}

/// The same read-only queries on either database; nothing here takes a parameter.
async fn collect_metrics<DB>(pool: &sqlx::Pool<DB>) -> Result<RecordMetrics, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'r> (String, i64): sqlx::FromRow<'r, DB::Row>,
    for<'r> (Option<String>, Option<String>): sqlx::FromRow<'r, DB::Row>,
    for<'r> (String, String, String): sqlx::FromRow<'r, DB::Row>,
    for<'r> (String, String, i64): sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    const LATEST: &str = "FROM jobs j JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = j.id)";
    let mut m = RecordMetrics::default();
    let by_state: Vec<(String, i64)> =
        sqlx::query_as(AssertSqlSafe(format!("SELECT e.state, COUNT(*) {LATEST} GROUP BY e.state")))
            .fetch_all(pool)
            .await?;
    for (state, n) in by_state {
        m.jobs_by_state.push((parse(&state)?, n as u64));
    }
    let ends: Vec<(Option<String>, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT e.error, CASE WHEN e.state IN ('staged', 'in_inbox') THEN j.manifest END {LATEST} \
         WHERE e.state IN ('failed', 'staged', 'in_inbox')"
    )))
    .fetch_all(pool)
    .await?;
    let mut failures: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for (error, manifest) in ends {
        if let Some(e) = error.and_then(|e| serde_json::from_str::<JobError>(&e).ok()) {
            *failures.entry((e.stage.as_str().to_string(), e.code)).or_default() += 1;
        }
        if let Some(v) = manifest.and_then(|m| serde_json::from_str::<Manifest>(&m).ok()).and_then(|m| m.video) {
            m.staged_bytes += v.bytes;
        }
    }
    for ((stage, code), n) in failures {
        m.failures.push((parse(&stage)?, code, n));
    }
    // A stage run lasts from its running event to the job's next event.
    let events: Vec<(String, String, String)> =
        sqlx::query_as("SELECT job_id, state, at FROM job_events ORDER BY job_id, id").fetch_all(pool).await?;
    let mut sums: std::collections::BTreeMap<&'static str, (f64, u64)> = Default::default();
    for pair in events.windows(2) {
        let ((job, state, at), (next_job, _, next_at)) = (&pair[0], &pair[1]);
        let stage = Stage::ALL.into_iter().find(|s| s.running_state().as_str() == state);
        if let (Some(stage), true) = (stage, job == next_job) {
            let seconds = (parse_time(next_at)? - parse_time(at)?).num_milliseconds() as f64 / 1000.0;
            let entry = sums.entry(stage.as_str()).or_default();
            entry.0 += seconds.max(0.0);
            entry.1 += 1;
        }
    }
    for (stage, (sum, count)) in sums {
        m.stage_seconds.push((parse(stage)?, sum, count));
    }
    let errors: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT provider, code, count FROM provider_errors ORDER BY provider, code")
            .fetch_all(pool)
            .await?;
    m.provider_errors = errors.into_iter().map(|(p, c, n)| (p, c, n as u64)).collect();
    Ok(m)
}

/// Opens the record store at `url`: `sqlite://…` or `postgres://…`.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn RecordStore>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PgRecords::connect(url).await?))
    } else {
        Ok(std::sync::Arc::new(SqliteRecords::connect(url).await?))
    }
}

/// A job joined with its latest event, as both stores return it.
#[derive(Debug, sqlx::FromRow)]
struct JobRow {
    id: String,
    spec: String,
    manifest: String,
    progress_stage: Option<String>,
    progress: i64,
    created_at: String,
    updated_at: String,
    #[sqlx(flatten)]
    event: EventRow,
}

/// One event row.
#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    state: String,
    stage: Option<String>,
    attempt: Option<i64>,
    error: Option<String>,
    note: Option<String>,
    at: String,
    retry_at: Option<String>,
}

/// Jobs joined with their latest event; the same SQL in both dialects.
const JOB_SELECT: &str = "SELECT j.id, j.spec, j.manifest, j.progress_stage, j.progress, j.created_at, j.updated_at, \
     e.state, e.stage, e.attempt, e.error, e.note, e.at, e.retry_at \
     FROM jobs j JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = j.id)";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl EventRow {
    fn into_event(self) -> Result<JobEvent, StoreError> {
        Ok(JobEvent {
            state: parse(&self.state)?,
            stage: self.stage.as_deref().map(parse).transpose()?,
            at: parse_time(&self.at)?,
            attempt: self.attempt.map(|a| a as u32),
            error: self.error.map(|e| serde_json::from_str(&e)).transpose().map_err(corrupt)?,
            note: self.note,
            retry_at: self.retry_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

impl JobRow {
    fn into_record(self) -> Result<JobRecord, StoreError> {
        // Stored specs were validated on the way in against the limits of their
        // day; reading them back must not fail because a limit was tightened since.
        let limits = SpecLimits::unbounded();
        let req: JobRequest = serde_json::from_str(&self.spec).map_err(corrupt)?;
        let spec =
            JobSpec::parse(req, &limits).map_err(|errs| corrupt(format!("stored spec no longer parses: {errs:?}")))?;
        let last_event = self.event.into_event()?;
        Ok(JobRecord {
            id: JobId::parse(&self.id).ok_or_else(|| corrupt("job id"))?,
            spec,
            state: last_event.state,
            last_event,
            manifest: serde_json::from_str(&self.manifest).map_err(corrupt)?,
            progress_stage: self.progress_stage.as_deref().map(parse).transpose()?,
            progress: self.progress.clamp(0, 100) as u8,
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
        })
    }
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

/// When the first of these counting rate-limit hits (their `at` and
/// `held_until`) stops counting: at the end of its window, or at its
/// `held_until` if sooner. None when there are none.
fn first_leave(
    hits: &[(String, Option<String>)],
    window: std::time::Duration,
) -> Result<Option<DateTime<Utc>>, StoreError> {
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

/// What tells a re-sent job from a different one under the same idempotency
/// key. Notification targets are left out: where a job is announced is not
/// what the job is, and the targets an API key adds to its jobs may change
/// between two sends of the same request.
fn spec_hash(req: &JobRequest) -> String {
    let mut req = req.clone();
    req.notify = None;
    let json = serde_json::to_vec(&req).expect("a JobRequest always serialises");
    hex::encode(Sha256::digest(json))
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse<T: FromStr<Err = String>>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(StoreError::Corrupt)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Every test runs against both stores: SQLite in a temporary file, and
    /// PostgreSQL (on 127.0.0.1:5432, or `CLIPFORGE_TEST_POSTGRES`) in a fresh database.
    async fn stores() -> Vec<(Option<tempfile::TempDir>, Arc<dyn RecordStore>)> {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = connect(&format!("sqlite://{}", dir.path().join("r.db").display())).await.unwrap();
        let pg = connect(&postgres::tests::fresh_database().await).await.unwrap();
        vec![(Some(dir), sqlite), (None, pg)]
    }

    fn spec(script: &str, key: Option<&str>) -> JobSpec {
        let req =
            JobRequest { script: Some(script.into()), idempotency_key: key.map(Into::into), ..Default::default() };
        JobSpec::parse(req, &SpecLimits::default()).unwrap()
    }

    #[tokio::test]
    async fn a_new_job_is_queued_with_one_event() {
        for (_d, s) in stores().await {
            let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
            assert_eq!(job.state, JobState::Queued);
            assert_eq!(s.events(&job.id).await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn the_same_key_finds_the_same_job_and_a_different_spec_conflicts() {
        for (_d, s) in stores().await {
            let Created::New(first) = s.create_job(&spec("Hello.", Some("k1"))).await.unwrap() else { panic!() };
            let Created::Existing(again) = s.create_job(&spec("Hello.", Some("k1"))).await.unwrap() else { panic!() };
            assert_eq!(again.id, first.id);
            assert!(
                matches!(s.create_job(&spec("Other.", Some("k1"))).await.unwrap(), Created::KeyConflict(id) if id == first.id)
            );
        }
    }

    #[tokio::test]
    async fn racing_submissions_with_one_key_agree_on_one_job_and_distinct_keys_all_get_one() {
        for (_d, s) in stores().await {
            let racers = (0..20).map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.create_job(&spec("Raced.", Some("one-key"))).await })
            });
            let mut new = Vec::new();
            let mut existing = Vec::new();
            for r in futures::future::join_all(racers).await {
                match r.unwrap().expect("no store error under contention") {
                    Created::New(j) => new.push(j.id),
                    Created::Existing(j) => existing.push(j.id),
                    Created::KeyConflict(id) => panic!("same spec, yet a conflict with {id}"),
                }
            }
            assert_eq!((new.len(), existing.len()), (1, 19));
            assert!(existing.iter().all(|id| *id == new[0]), "every answer names the one job");

            let racers = (0..50).map(|n| {
                let s = s.clone();
                tokio::spawn(async move { s.create_job(&spec("Raced.", Some(&format!("key-{n}")))).await })
            });
            for r in futures::future::join_all(racers).await {
                assert!(matches!(r.unwrap().expect("no store error under contention"), Created::New(_)));
            }
            let all = s.list_jobs(&JobFilter { state: None, limit: 500, before: None }).await.unwrap();
            assert_eq!(all.len(), 51);
        }
    }

    #[tokio::test]
    async fn transitions_apply_only_from_allowed_states_and_state_is_derived() {
        for (_d, s) in stores().await {
            let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
            let to_preparing =
                Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare).attempt(1);
            assert!(s.transition(&job.id, to_preparing.clone()).await.unwrap());
            assert!(!s.transition(&job.id, to_preparing).await.unwrap(), "queued is no longer the state");
            assert_eq!(s.job(&job.id).await.unwrap().unwrap().state, JobState::Preparing);
            assert_eq!(s.stage_starts(&job.id, Stage::Prepare).await.unwrap(), 1);
            let cancelled =
                s.list_jobs(&JobFilter { state: Some(JobState::Cancelled), limit: 10, before: None }).await.unwrap();
            assert!(cancelled.is_empty());
            let preparing =
                s.list_jobs(&JobFilter { state: Some(JobState::Preparing), limit: 10, before: None }).await.unwrap();
            assert_eq!(preparing.len(), 1);
        }
    }

    #[tokio::test]
    async fn of_racing_transitions_out_of_one_state_exactly_one_wins() {
        for (_d, s) in stores().await {
            let Created::New(job) = s.create_job(&spec("Race.", None)).await.unwrap() else { panic!() };
            let racers = (0..8).map(|i| {
                let (s, id) = (s.clone(), job.id.clone());
                tokio::spawn(async move {
                    let t = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare).attempt(i);
                    s.transition(&id, t).await.unwrap()
                })
            });
            let wins = futures::future::join_all(racers).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
            assert_eq!(wins, 1);
            assert_eq!(s.events(&job.id).await.unwrap().len(), 2);
        }
    }

    #[tokio::test]
    async fn metrics_count_states_failures_and_stage_time() {
        for (_d, s) in stores().await {
            let Created::New(a) = s.create_job(&spec("A.", None)).await.unwrap() else { panic!() };
            let Created::New(_b) = s.create_job(&spec("B.", None)).await.unwrap() else { panic!() };
            let start = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare).attempt(1);
            s.transition(&a.id, start).await.unwrap();
            let error = JobError {
                stage: Stage::Prepare,
                code: "voice_not_found".into(),
                message: "m".into(),
                retryable: false,
            };
            let fail = Transition::new(&[JobState::Preparing], JobState::Failed).stage(Stage::Prepare).error(error);
            s.transition(&a.id, fail).await.unwrap();
            let m = s.metrics().await.unwrap();
            let mut states = m.jobs_by_state.clone();
            states.sort_by_key(|(st, _)| st.as_str());
            assert_eq!(states, [(JobState::Failed, 1), (JobState::Queued, 1)]);
            assert_eq!(m.failures, [(Stage::Prepare, "voice_not_found".to_string(), 1)]);
            assert_eq!(m.stage_seconds.len(), 1);
            assert_eq!((m.stage_seconds[0].0, m.stage_seconds[0].2), (Stage::Prepare, 1));
            s.add_provider_errors(&[("pexels", "rate_limited", 2)]).await.unwrap();
            s.add_provider_errors(&[("pexels", "rate_limited", 3), ("elevenlabs", "upstream_error", 1)]).await.unwrap();
            let m = s.metrics().await.unwrap();
            assert_eq!(
                m.provider_errors,
                [("elevenlabs".into(), "upstream_error".into(), 1), ("pexels".into(), "rate_limited".into(), 5)]
            );
        }
    }

    #[tokio::test]
    async fn progress_never_goes_back_within_a_stage() {
        for (_d, s) in stores().await {
            let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
            s.reset_progress(&job.id, Stage::Render).await.unwrap();
            s.set_progress(&job.id, Stage::Render, 100).await.unwrap();
            s.set_progress(&job.id, Stage::Render, 40).await.unwrap(); // a late, stale write
            assert_eq!(s.job(&job.id).await.unwrap().unwrap().progress, 100);
            s.reset_progress(&job.id, Stage::Publish).await.unwrap();
            assert_eq!(s.job(&job.id).await.unwrap().unwrap().progress, 0, "a new stage starts afresh");
            s.set_progress(&job.id, Stage::Render, 100).await.unwrap(); // the old stage, too late
            let job = s.job(&job.id).await.unwrap().unwrap();
            assert_eq!((job.progress_stage, job.progress), (Some(Stage::Publish), 0));
        }
    }

    fn tokens(tag: &str) -> SealedTokens {
        // A fixed time, so two calls compare equal (2030-01-01T00:00:00Z).
        let at = DateTime::from_timestamp(1_893_456_000, 0).unwrap();
        SealedTokens {
            access: format!("sealed-access-{tag}"),
            refresh: format!("sealed-refresh-{tag}"),
            access_expires_at: at,
            refresh_expires_at: at + chrono::Duration::days(364),
        }
    }

    fn new_account(open_id: &str, tag: &str) -> NewAccount {
        NewAccount {
            open_id: open_id.into(),
            display_name: format!("Creator {tag}"),
            avatar_url: Some(format!("https://example.com/{tag}.jpg")),
            scopes: "user.info.basic,video.upload".into(),
            tokens: tokens(tag),
        }
    }

    #[tokio::test]
    async fn connecting_twice_keeps_one_account_and_bumps_its_token_version() {
        for (_d, s) in stores().await {
            let first = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
            assert_eq!((first.status, first.token_version), (AccountStatus::Connected, 1));
            assert_eq!(first.tokens, Some(tokens("a")));
            s.set_account_status(&first.id, AccountStatus::NeedsReconnect).await.unwrap();
            assert!(s.lock_refresh(&first.id, "worker-1", std::time::Duration::from_secs(60)).await.unwrap());
            let again = s.upsert_account(&new_account("open-1", "b")).await.unwrap();
            assert_eq!(again.id, first.id);
            assert_eq!(again.created_at, first.created_at);
            assert_eq!((again.status, again.token_version), (AccountStatus::Connected, 2));
            assert_eq!((again.display_name.as_str(), again.tokens), ("Creator b", Some(tokens("b"))));
            assert!(
                s.lock_refresh(&first.id, "worker-2", std::time::Duration::from_secs(60)).await.unwrap(),
                "connecting again clears the refresh lock"
            );
            let other = s.upsert_account(&new_account("open-2", "c")).await.unwrap();
            let all = s.list_accounts().await.unwrap();
            assert_eq!(all.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), [first.id.clone(), other.id.clone()]);
        }
    }

    #[tokio::test]
    async fn an_account_is_found_by_our_id_or_its_open_id() {
        for (_d, s) in stores().await {
            let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
            assert_eq!(s.account(&a.id).await.unwrap().unwrap().open_id, "open-1");
            assert_eq!(s.account("open-1").await.unwrap().unwrap().id, a.id);
            assert!(s.account("nobody").await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn forgetting_tokens_disconnects_and_stops_a_refresh_in_flight() {
        for (_d, s) in stores().await {
            let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
            assert!(s.lock_refresh(&a.id, "worker-1", std::time::Duration::from_secs(60)).await.unwrap());
            s.forget_tokens(&a.id).await.unwrap();
            let gone = s.account(&a.id).await.unwrap().unwrap();
            assert_eq!((gone.status, gone.tokens, gone.token_version), (AccountStatus::Disconnected, None, 2));
            assert!(!s.finish_refresh(&a.id, "worker-1", Some(&tokens("late"))).await.unwrap());
            assert!(s.account(&a.id).await.unwrap().unwrap().tokens.is_none(), "the late refresh stored nothing");
        }
    }

    #[tokio::test]
    async fn one_refresh_at_a_time_and_only_its_owner_stores_tokens() {
        for (_d, s) in stores().await {
            let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
            let racers = (0..8).map(|i| {
                let (s, id) = (s.clone(), a.id.clone());
                tokio::spawn(async move {
                    let owner = format!("worker-{i}");
                    s.lock_refresh(&id, &owner, std::time::Duration::from_secs(60)).await.unwrap().then_some(owner)
                })
            });
            let winners: Vec<String> =
                futures::future::join_all(racers).await.into_iter().filter_map(|r| r.unwrap()).collect();
            assert_eq!(winners.len(), 1);
            let owner = &winners[0];
            assert!(s.lock_refresh(&a.id, owner, std::time::Duration::from_secs(60)).await.unwrap(), "re-entrant");
            let thief = if owner == "worker-0" { "worker-1" } else { "worker-0" };
            assert!(!s.finish_refresh(&a.id, thief, Some(&tokens("thief"))).await.unwrap());
            let unchanged = s.account(&a.id).await.unwrap().unwrap();
            assert_eq!((unchanged.tokens, unchanged.token_version), (Some(tokens("a")), 1));
            s.set_account_status(&a.id, AccountStatus::NeedsReconnect).await.unwrap();
            assert!(s.finish_refresh(&a.id, owner, Some(&tokens("new"))).await.unwrap());
            let refreshed = s.account(&a.id).await.unwrap().unwrap();
            assert_eq!(refreshed.tokens, Some(tokens("new")));
            assert_eq!((refreshed.status, refreshed.token_version), (AccountStatus::Connected, 2));
            assert!(!s.finish_refresh(&a.id, owner, None).await.unwrap(), "the lock was released");
            assert!(s.lock_refresh(&a.id, thief, std::time::Duration::from_secs(60)).await.unwrap(), "and is free");
            assert!(s.finish_refresh(&a.id, thief, None).await.unwrap());
            assert_eq!(s.account(&a.id).await.unwrap().unwrap().token_version, 2, "releasing stores nothing");
        }
    }

    #[tokio::test]
    async fn an_expired_refresh_lock_can_be_taken_over() {
        for (_d, s) in stores().await {
            let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
            assert!(s.lock_refresh(&a.id, "worker-1", std::time::Duration::ZERO).await.unwrap());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            assert!(s.lock_refresh(&a.id, "worker-2", std::time::Duration::from_secs(60)).await.unwrap());
            assert!(!s.lock_refresh(&a.id, "worker-1", std::time::Duration::from_secs(60)).await.unwrap());
        }
    }

    #[tokio::test]
    async fn an_oauth_state_is_taken_once_only() {
        for (_d, s) in stores().await {
            let expires = DateTime::from_timestamp(Utc::now().timestamp() + 600, 0).unwrap();
            s.put_oauth_state("hash-1", expires).await.unwrap();
            let stale = Utc::now() - chrono::Duration::days(2);
            s.put_oauth_state("hash-old", stale).await.unwrap();
            assert_eq!(s.take_oauth_state("hash-1").await.unwrap(), Some(expires));
            assert_eq!(s.take_oauth_state("hash-1").await.unwrap(), None);
            assert_eq!(s.take_oauth_state("unknown").await.unwrap(), None);
            assert_eq!(s.take_oauth_state("hash-old").await.unwrap(), None, "long expired states were cleared");
        }
    }

    #[tokio::test]
    async fn of_concurrent_slot_requests_only_the_limit_get_one() {
        for (_d, s) in stores().await {
            let window = std::time::Duration::from_secs(60);
            let before = Utc::now();
            let racers = (0..20).map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.acquire_slot("tiktok:init:acct", None, 5, window).await.unwrap() })
            });
            let results: Vec<_> = futures::future::join_all(racers).await.into_iter().map(|r| r.unwrap()).collect();
            let after = Utc::now();
            assert_eq!(results.iter().filter(|r| r.is_none()).count(), 5);
            let window = chrono::Duration::from_std(window).unwrap();
            for until in results.into_iter().flatten() {
                assert!(
                    until >= before + window - chrono::Duration::milliseconds(1) && until <= after + window,
                    "{until} should be the oldest hit plus the window"
                );
            }
            assert!(
                s.acquire_slot("another key", None, 5, std::time::Duration::from_secs(60)).await.unwrap().is_none()
            );
            // Hits older than the window no longer count.
            let short = std::time::Duration::from_millis(50);
            assert!(s.acquire_slot("short", None, 1, short).await.unwrap().is_none());
            assert!(s.acquire_slot("short", None, 1, short).await.unwrap().is_some());
            tokio::time::sleep(std::time::Duration::from_millis(80)).await;
            assert!(s.acquire_slot("short", None, 1, short).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_slot_is_given_back_or_cut_short_by_its_holder_alone() {
        for (_d, s) in stores().await {
            let day = std::time::Duration::from_secs(86_400);
            let key = "tiktok:drafts:acct";
            assert!(s.acquire_slot(key, Some("job-a"), 2, day).await.unwrap().is_none());
            assert!(s.acquire_slot(key, Some("job-b"), 2, day).await.unwrap().is_none());
            let full = s.acquire_slot(key, Some("job-c"), 2, day).await.unwrap().expect("two of two taken");
            assert!(full > Utc::now() + chrono::Duration::hours(23), "{full}: the first hit leaves after a day");

            // Giving back is by holder: job-a's slot, not the newest (job-b's).
            s.release_slot(key, "job-a").await.unwrap();
            s.release_slot(key, "nobody").await.unwrap();
            assert!(s.acquire_slot(key, Some("job-c"), 2, day).await.unwrap().is_none());
            assert!(s.acquire_slot(key, Some("job-d"), 2, day).await.unwrap().is_some(), "job-b and job-c hold both");

            // A slot cut short counts until then, and tells when it leaves.
            let soon = Utc::now() + chrono::Duration::milliseconds(300);
            s.hold_slot_until(key, "job-b", soon).await.unwrap();
            let until = s.acquire_slot(key, Some("job-d"), 2, day).await.unwrap().expect("still counted");
            assert_eq!(until, DateTime::parse_from_rfc3339(&time_text(soon)).unwrap().with_timezone(&Utc));
            // ... and is no longer given back by its holder (it lapses by itself).
            s.release_slot(key, "job-b").await.unwrap();
            assert!(s.acquire_slot(key, Some("job-d"), 2, day).await.unwrap().is_some());
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            assert!(s.acquire_slot(key, Some("job-d"), 2, day).await.unwrap().is_none(), "job-b's hit lapsed");
            assert!(s.acquire_slot(key, Some("job-e"), 2, day).await.unwrap().is_some(), "job-c and job-d");

            // Hits without a holder (the per-minute limits) count as before.
            assert!(s.acquire_slot("tiktok:init:acct", None, 1, day).await.unwrap().is_none());
            assert!(s.acquire_slot("tiktok:init:acct", None, 1, day).await.unwrap().is_some());
        }
    }

    fn upload_of(job: &JobId, publish_id: &str, status: UploadStatus) -> UploadRecord {
        UploadRecord {
            job_id: job.clone(),
            account_id: "acct-1".into(),
            publish_id: publish_id.into(),
            upload_url: Some("sealed-url".into()),
            video_size: 30_000_000,
            chunk_size: 10_000_000,
            status,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn uploads_round_trip_are_replaced_by_job_and_go_with_their_job() {
        for (_d, s) in stores().await {
            let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
            assert!(s.upload(&job.id).await.unwrap().is_none());
            s.save_upload(&upload_of(&job.id, "p-1", UploadStatus::Initialised)).await.unwrap();
            let first = s.upload(&job.id).await.unwrap().unwrap();
            assert_eq!((first.publish_id.as_str(), first.status), ("p-1", UploadStatus::Initialised));
            assert_eq!(
                (first.video_size, first.chunk_size, first.upload_url.as_deref()),
                (30_000_000, 10_000_000, Some("sealed-url"))
            );
            assert!(first.created_at > DateTime::UNIX_EPOCH, "the store sets the times");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let mut next = upload_of(&job.id, "p-1", UploadStatus::Uploaded);
            next.upload_url = None;
            s.save_upload(&next).await.unwrap();
            let same = s.upload(&job.id).await.unwrap().unwrap();
            assert_eq!((same.status, same.upload_url), (UploadStatus::Uploaded, None));
            assert_eq!(same.created_at, first.created_at, "kept from the first save");
            assert!(same.updated_at > first.updated_at);
            s.save_upload(&upload_of(&job.id, "p-2", UploadStatus::Initialised)).await.unwrap();
            let fresh = s.upload(&job.id).await.unwrap().unwrap();
            assert_eq!(fresh.publish_id, "p-2");
            assert!(fresh.created_at > first.created_at, "a new publish_id is a new upload");
            s.delete_job(&job.id).await.unwrap();
            assert!(s.upload(&job.id).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_waiting_job_shows_its_retry_time_and_account() {
        for (_d, s) in stores().await {
            let req = JobRequest { script: Some("Hi.".into()), account: Some("acct-1".into()), ..Default::default() };
            let Created::New(job) = s.create_job(&JobSpec::parse(req, &SpecLimits::default()).unwrap()).await.unwrap()
            else {
                panic!()
            };
            let Created::New(other) = s.create_job(&spec("Other.", None)).await.unwrap() else { panic!() };
            let retry_at = DateTime::from_timestamp(Utc::now().timestamp() + 3600, 0).unwrap();
            let wait = Transition::new(&[JobState::Queued], JobState::Waiting).stage(Stage::Publish).retry_at(retry_at);
            assert!(s.transition(&job.id, wait).await.unwrap());
            let no_time = Transition::new(&[JobState::Queued], JobState::Waiting).stage(Stage::Publish);
            assert!(s.transition(&other.id, no_time).await.unwrap());
            assert_eq!(s.events(&job.id).await.unwrap().last().unwrap().retry_at, Some(retry_at));
            assert_eq!(s.job(&job.id).await.unwrap().unwrap().last_event.retry_at, Some(retry_at));
            let waiting = s.waiting_jobs().await.unwrap();
            assert_eq!(waiting.len(), 2);
            assert_eq!(
                (&waiting[0].id, waiting[0].account.as_deref(), waiting[0].retry_at),
                (&job.id, Some("acct-1"), Some(retry_at))
            );
            assert_eq!((&waiting[1].id, waiting[1].account.as_deref(), waiting[1].retry_at), (&other.id, None, None));
            let wake = Transition::new(&[JobState::Waiting], JobState::Queued);
            assert!(s.transition(&job.id, wake).await.unwrap());
            assert_eq!(s.waiting_jobs().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn listing_pages_newest_first() {
        for (_d, s) in stores().await {
            let mut ids = Vec::new();
            for i in 0..5 {
                let Created::New(j) = s.create_job(&spec(&format!("Job {i}."), None)).await.unwrap() else { panic!() };
                ids.push(j.id);
            }
            let page1 = s.list_jobs(&JobFilter { state: None, limit: 2, before: None }).await.unwrap();
            assert_eq!(page1.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), [ids[4].clone(), ids[3].clone()]);
            let page2 = s.list_jobs(&JobFilter { state: None, limit: 2, before: Some(ids[3].clone()) }).await.unwrap();
            assert_eq!(page2[0].id, ids[2]);
        }
    }

    #[tokio::test]
    async fn api_keys_are_found_by_hash_counted_listed_and_revoked() {
        use secrecy::ExposeSecret;
        for (_d, s) in stores().await {
            let (key, new) = NewApiKey::generate("ci", vec![Scope::JobsRead, Scope::JobsWrite]);
            let created = s.create_api_key(&new).await.unwrap();
            assert_eq!((created.id.as_str(), created.name.as_str()), (new.id.as_str(), "ci"));
            assert_eq!(created.scopes, [Scope::JobsRead, Scope::JobsWrite]);
            assert_eq!((created.requests, created.last_used_at, created.revoked_at), (0, None, None));
            let hash = crate::crypto::sha256_hex(key.expose_secret());
            assert_eq!(s.api_key_by_hash(&hash).await.unwrap().unwrap().id, new.id);
            assert!(s.api_key_by_hash(&crate::crypto::sha256_hex("cfk_other")).await.unwrap().is_none());

            s.count_api_key_use(&new.id).await.unwrap();
            s.count_api_key_use(&new.id).await.unwrap();
            let used = s.api_key_by_hash(&hash).await.unwrap().unwrap();
            assert_eq!(used.requests, 2);
            assert!(used.last_used_at.is_some_and(|t| t >= created.created_at));

            let (_, other) = NewApiKey::generate("ops", vec![Scope::Admin]);
            s.create_api_key(&other).await.unwrap();
            let listed: Vec<String> = s.list_api_keys().await.unwrap().into_iter().map(|k| k.id).collect();
            assert_eq!(listed, [new.id.clone(), other.id.clone()]);

            assert!(s.revoke_api_key(&new.id).await.unwrap());
            let revoked_at = s.api_key_by_hash(&hash).await.unwrap().unwrap().revoked_at.expect("revoked");
            assert!(s.revoke_api_key(&new.id).await.unwrap(), "revoking again is no error");
            assert_eq!(s.api_key_by_hash(&hash).await.unwrap().unwrap().revoked_at, Some(revoked_at), "kept");
            assert!(!s.revoke_api_key("no-such-key").await.unwrap());
            assert!(s.list_api_keys().await.unwrap()[1].revoked_at.is_none(), "only that key");
        }
    }

    #[tokio::test]
    async fn a_batch_is_stored_whole_found_again_by_its_key_and_counted_by_state() {
        for (_d, s) in stores().await {
            let Created::New(earlier) = s.create_job(&spec("Taken.", Some("taken"))).await.unwrap() else { panic!() };
            let jobs = vec![
                (2, spec("One.", Some("b:2"))),
                (3, spec("Two.", Some("b:3"))),
                (4, spec("Other text.", Some("taken"))),
                (5, spec("Two.", Some("b:3"))),
            ];
            let batch = NewBatch { idempotency_key: "b", lines: 5, rejected: 1, jobs: &jobs };
            let first = s.create_batch(&batch).await.unwrap();
            assert!(first.is_new);
            let new = first.new_jobs();
            assert_eq!(new.len(), 2);
            assert_eq!(
                first.jobs.iter().map(|(l, o)| (*l, o.clone())).collect::<Vec<_>>(),
                [
                    (2, LineOutcome::New(new[0].clone())),
                    (3, LineOutcome::New(new[1].clone())),
                    (4, LineOutcome::KeyConflict(earlier.id.clone())),
                    (5, LineOutcome::Existing(new[1].clone())),
                ]
            );
            assert_eq!((first.batch.lines, first.batch.accepted, first.batch.rejected), (5, 3, 2));
            assert_eq!(s.batch(&first.batch.id).await.unwrap().unwrap(), first.batch);

            let again = s.create_batch(&batch).await.unwrap();
            assert!(!again.is_new && again.new_jobs().is_empty());
            assert_eq!(again.batch.id, first.batch.id);
            assert_eq!(again.jobs[0].1, LineOutcome::Existing(new[0].clone()));

            let start = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare);
            s.transition(&new[0], start).await.unwrap();
            let summary = s.batch_summary(&first.batch.id).await.unwrap();
            assert_eq!(summary, [(JobState::Preparing, 1), (JobState::Queued, 1)], "line 5 is line 3's job");

            // Undoing a re-sent batch keeps the batch; undoing a new one removes it and its jobs.
            s.undo_batch(&again).await.unwrap();
            assert!(s.batch(&first.batch.id).await.unwrap().is_some());
            s.undo_batch(&first).await.unwrap();
            assert!(s.batch(&first.batch.id).await.unwrap().is_none());
            assert!(s.job(&new[0]).await.unwrap().is_none() && s.job(&new[1]).await.unwrap().is_none());
            assert!(s.job(&earlier.id).await.unwrap().is_some(), "only the batch's new jobs go");
        }
    }

    #[tokio::test]
    async fn a_notification_is_queued_once_claimed_once_and_reclaimed_after_its_lease() {
        for (_d, s) in stores().await {
            let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
            let n = NewNotification {
                id: "event-1".into(),
                job_id: job.id.clone(),
                event: "staged".into(),
                event_at: Utc::now(),
                channel: Channel::Telegram,
                target: "42".into(),
                payload: serde_json::json!({"event": "staged"}),
            };
            assert!(s.enqueue_notification(&n).await.unwrap());
            assert!(!s.enqueue_notification(&n).await.unwrap(), "the same event is queued once");
            let later_event = NewNotification {
                id: "event-2".into(),
                event_at: n.event_at + chrono::Duration::seconds(1),
                ..n.clone()
            };
            assert!(s.enqueue_notification(&later_event).await.unwrap(), "a later event of the same kind is new");

            let lease = std::time::Duration::from_millis(300);
            let racers = (0..4).map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.claim_notifications(10, lease).await.unwrap() })
            });
            let claimed: Vec<Notification> =
                futures::future::join_all(racers).await.into_iter().flat_map(|r| r.unwrap()).collect();
            assert_eq!(claimed.len(), 2, "each row goes to one sender");
            assert!(claimed.iter().all(|c| c.status == NotificationStatus::Sending && c.attempts == 1));
            assert!(s.claim_notifications(10, lease).await.unwrap().is_empty(), "leased rows are not due");

            // One sender finishes; the other dies, and its row is due again once the lease lapses.
            s.finish_notification(&claimed[0].id, &NotificationOutcome::Sent).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            let again = s.claim_notifications(10, lease).await.unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!((again[0].id.as_str(), again[0].attempts), (claimed[1].id.as_str(), 2));

            let soon = Utc::now() + chrono::Duration::milliseconds(200);
            let retry = NotificationOutcome::Retry { at: soon, error: "HTTP 502".into() };
            s.finish_notification(&again[0].id, &retry).await.unwrap();
            assert!(s.claim_notifications(10, lease).await.unwrap().is_empty(), "not before its time");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let third = s.claim_notifications(10, lease).await.unwrap();
            assert_eq!(third.len(), 1);
            let gone = NotificationOutcome::Undeliverable { error: "gave up".into() };
            s.finish_notification(&third[0].id, &gone).await.unwrap();
            s.finish_notification(&claimed[0].id, &gone).await.unwrap();

            let listed = s.job_notifications(&job.id).await.unwrap();
            let states: Vec<_> = listed.iter().map(|n| (n.status, n.attempts, n.last_error.clone())).collect();
            assert!(states.contains(&(NotificationStatus::Sent, 1, None)), "a finished row is left alone: {states:?}");
            assert!(states.contains(&(NotificationStatus::Undeliverable, 3, Some("gave up".into()))), "{states:?}");
            assert!(listed.iter().any(|n| n.sent_at.is_some()));
            s.delete_job(&job.id).await.unwrap();
            assert!(s.job_notifications(&job.id).await.unwrap().is_empty(), "they go with their job");
        }
    }
}
