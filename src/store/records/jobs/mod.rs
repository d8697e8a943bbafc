//! Jobs and their append-only events: creation under an idempotency key,
//! guarded state transitions, progress, manifests, purge.
//!
//! # Event ids are a cursor
//!
//! Every event has a row id from the engine's own counter (SQLite
//! `AUTOINCREMENT`, a PostgreSQL sequence), and readers of the live stream
//! (`GET /v1/events`) remember the highest id they were handed
//! ([`JobStore::events_after`]). That works only if no event can become
//! visible with an id *below* one a reader has already seen. SQLite has one
//! writer at a time, so ids commit in order. A PostgreSQL sequence hands out
//! ids when rows are inserted, not when they commit: a slow transaction with
//! id 5 may commit after a quick one with id 6, and a reader that saw 6 would
//! skip 5 for good. So every transaction that appends events takes one
//! transaction-scoped lock ([`EVENT_ORDER`]) just before its insert and holds
//! it until it commits: appends on PostgreSQL run one after the other, and
//! ids become visible in order on both engines. An append is a few
//! milliseconds (a 10,000-line batch about a second), far below the rate
//! jobs change state; a settle delay or a re-read window would instead have
//! delayed every event or, under a large batch, still skipped some.

mod rows;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};

use self::rows::{EventRow, JobRow, ProgressRow, StoredEventRow};
use super::dialect::{Dialect, dialect_of, lock_key};
use super::{Records, StoreError, corrupt, db_run, json, now, parse, parse_time, time_text};
use crate::domain::{JobError, JobEvent, JobId, JobRequest, JobSpec, JobState, Manifest, Stage};

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
    /// A manifest written together with the event, in the same transaction:
    /// only if the transition applies, and never without it (a review
    /// decision and the state it moves the job to).
    pub manifest: Option<Manifest>,
    /// Applies only if the job was not touched (no event, manifest or
    /// progress written) since this time, its `updated_at` when it was read:
    /// a decision made on what a person saw cannot land on a job that moved
    /// on and came back to the same state meanwhile.
    pub unchanged_since: Option<DateTime<Utc>>,
}

impl Transition {
    pub fn new(from: &[JobState], to: JobState) -> Self {
        Self {
            from: from.to_vec(),
            to,
            stage: None,
            attempt: None,
            error: None,
            note: None,
            retry_at: None,
            manifest: None,
            unchanged_since: None,
        }
    }
    pub fn unchanged_since(mut self, at: DateTime<Utc>) -> Self {
        self.unchanged_since = Some(at);
        self
    }
    pub fn manifest(mut self, manifest: Manifest) -> Self {
        self.manifest = Some(manifest);
        self
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
    /// Only jobs whose request contains this text (script, topic, hints, any
    /// field), ignoring ASCII case.
    pub text: Option<String>,
}

/// A job in `waiting`, for the waker.
#[derive(Debug, Clone)]
pub struct WaitingJob {
    pub id: JobId,
    /// The account the job publishes to (`spec.account`: our id or an open_id).
    pub account: Option<String>,
    /// When the waiting event said to try again; None: as soon as its account is connected.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The key of the lock every transaction that appends events holds from its
/// insert to its commit, so event ids become visible in order (module docs).
pub(in crate::store::records) const EVENT_ORDER: &str = "job_events:order";

/// Which jobs a reader of the event stream follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    /// Every job.
    AllJobs,
    /// One job.
    Job(JobId),
    /// The jobs the lines of one batch became.
    Batch(String),
}

/// One job event with its row id, the cursor of the event stream.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Grows with every event appended, on both engines; never reused.
    pub id: i64,
    pub job_id: JobId,
    pub event: JobEvent,
}

/// Where a job's running stage is, as `set_progress` last left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress {
    pub job_id: JobId,
    pub stage: Stage,
    /// 0-100 within `stage`.
    pub percent: u8,
}

/// Jobs and their history: what the API and the pipeline ask of the store.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new job in state `queued`, or finds the one with the same idempotency key.
    async fn create_job(&self, spec: &JobSpec) -> Result<Created, StoreError>;
    /// [`JobStore::create_job`] for many specs in one transaction, one
    /// statement per table: the group commit of single submissions
    /// (`crate::api::intake`) pays one commit (one fsync) for all of them.
    /// One outcome per spec, in order. Two specs of one call with the same key
    /// agree as racing submissions do: the first is the job, the second finds it.
    async fn create_jobs(&self, specs: &[JobSpec]) -> Result<Vec<Created>, StoreError>;
    async fn job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError>;
    /// The whole history, oldest first.
    async fn events(&self, id: &JobId) -> Result<Vec<JobEvent>, StoreError>;
    /// Appends an event if the current state allows it; false if it did not.
    async fn transition(&self, id: &JobId, t: Transition) -> Result<bool, StoreError>;
    /// Replaces the job's spec and applies `t` (with its manifest), as one
    /// change: only if the current state is one of `t.from`; false if not.
    /// For a reviewer's revision. The idempotency key's spec hash stays the
    /// submission's, so re-sending the original request still finds the job.
    async fn revise_spec(&self, id: &JobId, spec: &JobSpec, t: Transition) -> Result<bool, StoreError>;
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
    /// Every job whose current state is `waiting`, with its account and the
    /// retry_at of that waiting event.
    async fn waiting_jobs(&self) -> Result<Vec<WaitingJob>, StoreError>;
    /// The events of `scope`'s jobs with a row id above `after`, oldest
    /// first, at most `limit` (1-1000). Ids become visible in order (see the
    /// module docs), so a reader that passes the last id it was given never
    /// misses an event and never sees one twice.
    async fn events_after(&self, scope: &EventScope, after: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError>;
    /// The id of the newest event (0 when there is none): where a reader
    /// that wants only what happens from now on starts.
    async fn last_event_id(&self) -> Result<i64, StoreError>;
    /// The progress of `scope`'s jobs that have one, only those whose row
    /// changed at or after `since` when given (progress writes bump
    /// `updated_at`), oldest change first, at most 1000.
    async fn progress_of(
        &self,
        scope: &EventScope,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<JobProgress>, StoreError>;
}

/// The condition on a job id column that keeps `scope`'s jobs, and the value
/// it binds as `$param` (none for every job).
fn scope_filter(scope: &EventScope, column: &str, param: &str) -> (String, Option<String>) {
    match scope {
        EventScope::AllJobs => ("TRUE".into(), None),
        EventScope::Job(id) => (format!("{column} = {param}"), Some(id.as_str().to_string())),
        EventScope::Batch(batch) => {
            (format!("{column} IN (SELECT job_id FROM batch_jobs WHERE batch_id = {param})"), Some(batch.clone()))
        }
    }
}

/// A `LIKE … ESCAPE '!'` pattern that finds `text` anywhere, lowercase, in a
/// stored request: as JSON keeps it, with its own wildcards escaped.
fn like_pattern(text: &str) -> String {
    let json = serde_json::to_string(&text.to_lowercase()).expect("a string serialises");
    let inner = &json[1..json.len() - 1];
    let escaped = inner.replace('!', "!!").replace('%', "!%").replace('_', "!_");
    format!("%{escaped}%")
}

/// Jobs joined with their latest event.
pub(super) const JOB_SELECT: &str = "SELECT j.id, j.spec, j.manifest, j.progress_stage, j.progress, j.created_at, \
     j.updated_at, e.state, e.stage, e.attempt, e.error, e.note, e.at, e.retry_at \
     FROM jobs j JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = j.id)";

#[async_trait]
impl JobStore for Records {
    async fn create_job(&self, spec: &JobSpec) -> Result<Created, StoreError> {
        let req = spec.to_request();
        let hash = spec_hash(&req);
        let id = JobId::new();
        let at = now();
        let inserted = db_run!(self, pool => {
            let mut tx = pool.write().await?;
            // Insert first: ON CONFLICT makes racing submissions with one key
            // agree on the job whose insert came first.
            let inserted = sqlx::query(
                "INSERT INTO jobs (id, idempotency_key, spec, spec_hash, account, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(&spec.idempotency_key)
            .bind(json(&req))
            .bind(&hash)
            .bind(&spec.account)
            .bind(&at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                lock_key(pool, &mut tx, EVENT_ORDER).await?;
                sqlx::query("INSERT INTO job_events (job_id, state, at) VALUES ($1, 'queued', $2)")
                    .bind(id.as_str())
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            inserted
        });
        if inserted {
            let job = self.job(&id).await?.ok_or_else(|| corrupt("vanished job"))?;
            return Ok(Created::New(job));
        }
        let (existing, stored_hash): (String, String) = db_run!(self, pool => {
            let row = sqlx::query("SELECT id, spec_hash FROM jobs WHERE idempotency_key = $1")
                .bind(&spec.idempotency_key)
                .fetch_one(pool)
                .await?;
            (row.try_get("id")?, row.try_get("spec_hash")?)
        });
        let existing = JobId::parse(&existing).ok_or_else(|| corrupt("job id"))?;
        if stored_hash != hash {
            return Ok(Created::KeyConflict(existing));
        }
        let job = self.job(&existing).await?.ok_or_else(|| corrupt("vanished job"))?;
        Ok(Created::Existing(job))
    }

    async fn create_jobs(&self, specs: &[JobSpec]) -> Result<Vec<Created>, StoreError> {
        let requests: Vec<JobRequest> = specs.iter().map(JobSpec::to_request).collect();
        let hashes: Vec<String> = requests.iter().map(spec_hash).collect();
        let ids: Vec<JobId> = specs.iter().map(|_| JobId::new()).collect();
        // The time as the store keeps it, read back, so the records built
        // below equal what a read would give.
        let at = now();
        let at_time = parse_time(&at)?;
        let rows: Vec<_> = (0..specs.len())
            .map(|i| (ids[i].as_str(), &specs[i].idempotency_key, json(&requests[i]), &hashes[i], &specs[i].account))
            .collect();
        let (created, found): (HashSet<String>, HashMap<String, (String, String)>) = db_run!(self, pool => {
            let sql = dialect_of(pool);
            let mut tx = pool.write().await?;
            // `WHERE true` tells SQLite the ON CONFLICT is the upsert's, not a join's.
            let insert = format!(
                "INSERT INTO jobs (id, idempotency_key, spec, spec_hash, account, created_at, updated_at) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, $2, $2 FROM {} \
                 WHERE true ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                sql.json_rows("$1")
            );
            let created: HashSet<String> = sqlx::query_scalar(AssertSqlSafe(insert))
                .bind(json(&rows))
                .bind(&at)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            let inserted: Vec<&str> = ids.iter().map(JobId::as_str).filter(|id| created.contains(*id)).collect();
            if !inserted.is_empty() {
                lock_key(pool, &mut tx, EVENT_ORDER).await?;
                let events = format!(
                    "INSERT INTO job_events (job_id, state, at) SELECT value, 'queued', $2 FROM {}",
                    sql.json_texts("$1")
                );
                sqlx::query(AssertSqlSafe(events)).bind(json(&inserted)).bind(&at).execute(&mut *tx).await?;
            }
            let taken: Vec<&String> = (0..specs.len())
                .filter(|&i| !created.contains(ids[i].as_str()))
                .filter_map(|i| specs[i].idempotency_key.as_ref())
                .collect();
            let mut found = HashMap::new();
            if !taken.is_empty() {
                let select = format!(
                    "SELECT idempotency_key, id, spec_hash FROM jobs WHERE idempotency_key IN (SELECT value FROM {})",
                    sql.json_texts("$1")
                );
                let rows: Vec<(String, String, String)> =
                    sqlx::query_as(AssertSqlSafe(select)).bind(json(&taken)).fetch_all(&mut *tx).await?;
                found.extend(rows.into_iter().map(|(key, id, hash)| (key, (id, hash))));
            }
            tx.commit().await?;
            (created, found)
        });
        let mut out = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if created.contains(ids[i].as_str()) {
                out.push(Created::New(queued_record(ids[i].clone(), spec.clone(), at_time)));
                continue;
            }
            let (existing, stored_hash) = spec
                .idempotency_key
                .as_ref()
                .and_then(|k| found.get(k))
                .ok_or_else(|| corrupt("a job neither inserted nor found by its key"))?;
            let existing = JobId::parse(existing).ok_or_else(|| corrupt("job id"))?;
            if *stored_hash != hashes[i] {
                out.push(Created::KeyConflict(existing));
                continue;
            }
            let job = self.job(&existing).await?.ok_or_else(|| corrupt("vanished job"))?;
            out.push(Created::Existing(job));
        }
        Ok(out)
    }

    async fn job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!("{JOB_SELECT} WHERE j.id = $1");
        let row: Option<JobRow> = db_run!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(pool).await?
        });
        row.map(JobRow::into_record).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        let sql = format!(
            "{JOB_SELECT} WHERE (CAST($1 AS TEXT) IS NULL OR e.state = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR j.id < $2) \
             AND (CAST($4 AS TEXT) IS NULL OR LOWER(j.spec) LIKE $4 ESCAPE '!') ORDER BY j.id DESC LIMIT $3"
        );
        let state = filter.state.map(|s| s.as_str());
        let before = filter.before.as_ref().map(|b| b.as_str().to_string());
        let text = filter.text.as_deref().map(like_pattern);
        let rows: Vec<JobRow> = db_run!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(state)
                .bind(&before)
                .bind(i64::from(filter.limit.clamp(1, 500)))
                .bind(&text)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(JobRow::into_record).collect()
    }

    async fn events(&self, id: &JobId) -> Result<Vec<JobEvent>, StoreError> {
        let rows: Vec<EventRow> = db_run!(self, pool => {
            sqlx::query_as(
                "SELECT state, stage, attempt, error, note, at, retry_at FROM job_events WHERE job_id = $1 ORDER BY id",
            )
            .bind(id.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(EventRow::into_event).collect()
    }

    async fn transition(&self, id: &JobId, t: Transition) -> Result<bool, StoreError> {
        self.apply_transition(id, t, None).await
    }

    async fn revise_spec(&self, id: &JobId, spec: &JobSpec, t: Transition) -> Result<bool, StoreError> {
        self.apply_transition(id, t, Some(spec)).await
    }

    async fn stage_starts(&self, id: &JobId, stage: Stage) -> Result<u32, StoreError> {
        let n: i64 = db_run!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM job_events WHERE job_id = $1 AND state = $2 AND stage = $3 \
                 AND id > COALESCE((SELECT MAX(id) FROM job_events WHERE job_id = $1 AND state = 'queued'), 0)",
            )
            .bind(id.as_str())
            .bind(stage.running_state().as_str())
            .bind(stage.as_str())
            .fetch_one(pool)
            .await?
        });
        Ok(n as u32)
    }

    async fn save_manifest(&self, id: &JobId, manifest: &Manifest) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("UPDATE jobs SET manifest = $1, updated_at = $2 WHERE id = $3")
                .bind(json(manifest))
                .bind(now())
                .bind(id.as_str())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn reset_progress(&self, id: &JobId, stage: Stage) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("UPDATE jobs SET progress_stage = $1, progress = 0, updated_at = $2 WHERE id = $3")
                .bind(stage.as_str())
                .bind(now())
                .bind(id.as_str())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn set_progress(&self, id: &JobId, stage: Stage, percent: u8) -> Result<(), StoreError> {
        // Also the running stage's heartbeat: `updated_at` tells other workers it is alive.
        db_run!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET progress = CASE WHEN progress > $2 THEN progress ELSE $2 END, updated_at = $3 \
                 WHERE id = $4 AND progress_stage = $1",
            )
            .bind(stage.as_str())
            .bind(i64::from(percent.min(100)))
            .bind(now())
            .bind(id.as_str())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn delete_job(&self, id: &JobId) -> Result<(), StoreError> {
        // Its events and upload go with it (ON DELETE CASCADE).
        db_run!(self, pool => {
            sqlx::query("DELETE FROM jobs WHERE id = $1").bind(id.as_str()).execute(pool).await?;
        });
        Ok(())
    }

    async fn waiting_jobs(&self) -> Result<Vec<WaitingJob>, StoreError> {
        const WAITING: &str = "SELECT j.id, j.account, e.retry_at FROM jobs j \
             JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = j.id) \
             WHERE e.state = 'waiting' ORDER BY j.id";
        let rows: Vec<(String, Option<String>, Option<String>)> =
            db_run!(self, pool => sqlx::query_as(WAITING).fetch_all(pool).await?);
        rows.into_iter()
            .map(|(id, account, retry_at)| {
                Ok(WaitingJob {
                    id: JobId::parse(&id).ok_or_else(|| corrupt("job id"))?,
                    account,
                    retry_at: retry_at.as_deref().map(parse_time).transpose()?,
                })
            })
            .collect()
    }

    async fn events_after(&self, scope: &EventScope, after: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        // One statement per scope (not `$2 IS NULL OR …`), so each can use its index.
        let (filter, value) = scope_filter(scope, "e.job_id", "$3");
        let sql = format!(
            "SELECT e.id, e.job_id, e.state, e.stage, e.attempt, e.error, e.note, e.at, e.retry_at \
             FROM job_events e WHERE e.id > $1 AND {filter} ORDER BY e.id LIMIT $2"
        );
        let limit = i64::from(limit.clamp(1, 1000));
        let rows: Vec<StoredEventRow> = db_run!(self, pool => {
            let query = sqlx::query_as(AssertSqlSafe(sql.clone())).bind(after).bind(limit);
            match &value {
                Some(v) => query.bind(v).fetch_all(pool).await?,
                None => query.fetch_all(pool).await?,
            }
        });
        rows.into_iter().map(StoredEventRow::into_stored).collect()
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> =
            db_run!(self, pool => sqlx::query_scalar("SELECT MAX(id) FROM job_events").fetch_one(pool).await?);
        Ok(id.unwrap_or(0))
    }

    async fn progress_of(
        &self,
        scope: &EventScope,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<JobProgress>, StoreError> {
        let (filter, value) = scope_filter(scope, "id", "$2");
        let sql = format!(
            "SELECT id, progress_stage, progress FROM jobs WHERE progress_stage IS NOT NULL \
             AND (CAST($1 AS TEXT) IS NULL OR updated_at >= $1) AND {filter} ORDER BY updated_at, id LIMIT 1000"
        );
        let since = since.map(time_text);
        let rows: Vec<ProgressRow> = db_run!(self, pool => {
            let query = sqlx::query_as(AssertSqlSafe(sql.clone())).bind(&since);
            match &value {
                Some(v) => query.bind(v).fetch_all(pool).await?,
                None => query.fetch_all(pool).await?,
            }
        });
        rows.into_iter().map(ProgressRow::into_progress).collect()
    }
}

impl Records {
    /// A guarded transition; with `spec`, the job's spec is replaced in the same transaction.
    async fn apply_transition(&self, id: &JobId, t: Transition, spec: Option<&JobSpec>) -> Result<bool, StoreError> {
        let at = now();
        db_run!(self, pool => {
            // The job's row is locked (on SQLite, the whole database is) before
            // the latest state is read, so two workers, or a worker and a cancel
            // request, can never both move a job out of the same state.
            let mut tx = pool.write().await?;
            let lock = format!("SELECT updated_at FROM jobs WHERE id = $1{}", dialect_of(pool).for_update);
            let Some(updated_at): Option<String> =
                sqlx::query_scalar(AssertSqlSafe(lock)).bind(id.as_str()).fetch_optional(&mut *tx).await?
            else {
                return Ok(false);
            };
            if t.unchanged_since.is_some_and(|since| time_text(since) != updated_at) {
                return Ok(false);
            }
            let current: String =
                sqlx::query_scalar("SELECT state FROM job_events WHERE job_id = $1 ORDER BY id DESC LIMIT 1")
                    .bind(id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            if !t.from.contains(&parse::<JobState>(&current)?) {
                return Ok(false);
            }
            // Event ids become visible in order (module docs).
            lock_key(pool, &mut tx, EVENT_ORDER).await?;
            sqlx::query(
                "INSERT INTO job_events (job_id, state, stage, attempt, error, note, at, retry_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.as_str())
            .bind(t.to.as_str())
            .bind(t.stage.map(|s| s.as_str()))
            .bind(t.attempt.map(i64::from))
            .bind(t.error.as_ref().map(json))
            .bind(&t.note)
            .bind(&at)
            .bind(t.retry_at.map(time_text))
            .execute(&mut *tx)
            .await?;
            // A NULL leaves the column as it is: no manifest or spec given.
            sqlx::query(
                "UPDATE jobs SET updated_at = $1, manifest = COALESCE(CAST($3 AS TEXT), manifest), \
                 spec = COALESCE(CAST($4 AS TEXT), spec) WHERE id = $2",
            )
            .bind(&at)
            .bind(id.as_str())
            .bind(t.manifest.as_ref().map(json))
            .bind(spec.map(|s| json(&s.to_request())))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}

/// A job just created by [`JobStore::create_jobs`], as a read would give it:
/// state `queued` since `at`, no manifest, no progress.
fn queued_record(id: JobId, spec: JobSpec, at: DateTime<Utc>) -> JobRecord {
    let last_event =
        JobEvent { state: JobState::Queued, stage: None, at, attempt: None, error: None, note: None, retry_at: None };
    JobRecord {
        id,
        spec,
        state: JobState::Queued,
        last_event,
        manifest: Manifest::default(),
        progress_stage: None,
        progress: 0,
        created_at: at,
        updated_at: at,
    }
}

/// What tells a re-sent job from a different one under the same idempotency
/// key. Notification targets are left out: where a job is announced is not
/// what the job is, and the targets an API key adds to its jobs may change
/// between two sends of the same request.
pub(super) fn spec_hash(req: &JobRequest) -> String {
    let mut req = req.clone();
    req.notify = None;
    let json = serde_json::to_vec(&req).expect("a JobRequest always serialises");
    hex::encode(Sha256::digest(json))
}
