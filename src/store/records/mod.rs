//! The record store: jobs, their append-only events and manifests.
//!
//! [`RecordStore`] is the narrow interface the pipeline and the API use;
//! [`SqliteRecords`] is the embedded implementation and [`PgRecords`] the
//! production one; [`connect`] picks by URL. Both store times as RFC 3339 text
//! in UTC with microseconds, which sorts in time order, and share the row
//! mapping below; only their SQL dialect and locking differ.

mod postgres;
mod sqlite;

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
}

impl Transition {
    pub fn new(from: &[JobState], to: JobState) -> Self {
        Self { from: from.to_vec(), to, stage: None, attempt: None, error: None, note: None }
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
}

/// Jobs joined with their latest event; the same SQL in both dialects.
const JOB_SELECT: &str = "SELECT j.id, j.spec, j.manifest, j.progress_stage, j.progress, j.created_at, j.updated_at, \
     e.state, e.stage, e.attempt, e.error, e.note, e.at \
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
        })
    }
}

impl JobRow {
    fn into_record(self) -> Result<JobRecord, StoreError> {
        // Stored specs were validated on the way in against the limits of their
        // day; reading them back must not fail because a limit was tightened since.
        let limits = SpecLimits { max_script_chars: usize::MAX, min_target_secs: 0, max_target_secs: u32::MAX };
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
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn spec_hash(req: &JobRequest) -> String {
    let json = serde_json::to_vec(req).expect("a JobRequest always serialises");
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
}
