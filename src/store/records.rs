//! The record store: jobs, their append-only events and manifests.
//!
//! [`RecordStore`] is the narrow interface the pipeline and the API use;
//! [`SqliteRecords`] is the embedded implementation. A PostgreSQL one only has to
//! implement the same trait.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Row};

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
    /// Starts `stage`'s progress at 0.
    async fn reset_progress(&self, id: &JobId, stage: Stage) -> Result<(), StoreError>;
    /// Records progress, which only grows within a stage (so a late writer
    /// cannot move it back); also proves the stage is alive (bumps `updated_at`).
    async fn set_progress(&self, id: &JobId, stage: Stage, percent: u8) -> Result<(), StoreError>;
    /// Removes a job and its history (used when it could not be queued).
    async fn delete_job(&self, id: &JobId) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
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

/// Records in one SQLite file: the embedded default.
#[derive(Debug, Clone)]
pub struct SqliteRecords {
    pool: SqlitePool,
}

impl SqliteRecords {
    /// Opens (creating when missing) the database at `url` and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    fn limits() -> SpecLimits {
        // Stored specs were validated on the way in against the limits of their day;
        // reading them back must not fail because a limit was tightened since.
        SpecLimits { max_script_chars: usize::MAX, min_target_secs: 0, max_target_secs: u32::MAX }
    }

    fn event_from_row(row: &SqliteRow) -> Result<JobEvent, StoreError> {
        let error: Option<String> = row.try_get("error")?;
        let stage: Option<String> = row.try_get("stage")?;
        let attempt: Option<i64> = row.try_get("attempt")?;
        Ok(JobEvent {
            state: parse(&row.try_get::<String, _>("state")?)?,
            stage: stage.as_deref().map(parse).transpose()?,
            at: parse_time(&row.try_get::<String, _>("at")?)?,
            attempt: attempt.map(|a| a as u32),
            error: error
                .map(|e| serde_json::from_str(&e))
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            note: row.try_get("note")?,
        })
    }

    fn job_from_row(row: &SqliteRow) -> Result<JobRecord, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        let req: JobRequest = serde_json::from_str(&row.try_get::<String, _>("spec")?).map_err(corrupt)?;
        let spec = JobSpec::parse(req, &Self::limits())
            .map_err(|errs| StoreError::Corrupt(format!("stored spec no longer parses: {errs:?}")))?;
        let last_event = Self::event_from_row(row)?;
        let progress_stage: Option<String> = row.try_get("progress_stage")?;
        Ok(JobRecord {
            id: JobId::parse(&row.try_get::<String, _>("id")?).ok_or_else(|| StoreError::Corrupt("job id".into()))?,
            spec,
            state: last_event.state,
            last_event,
            manifest: serde_json::from_str(&row.try_get::<String, _>("manifest")?).map_err(corrupt)?,
            progress_stage: progress_stage.as_deref().map(parse).transpose()?,
            progress: row.try_get::<i64, _>("progress")?.clamp(0, 100) as u8,
            created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
            updated_at: parse_time(&row.try_get::<String, _>("updated_at")?)?,
        })
    }
}

/// Jobs joined with their latest event.
const JOB_SELECT: &str = "SELECT j.id, j.spec, j.manifest, j.progress_stage, j.progress, j.created_at, j.updated_at, \
     e.state, e.stage, e.attempt, e.error, e.note, e.at \
     FROM jobs j JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = j.id)";

#[async_trait]
impl RecordStore for SqliteRecords {
    async fn create_job(&self, spec: &JobSpec) -> Result<Created, StoreError> {
        let req = spec.to_request();
        let hash = spec_hash(&req);
        let id = JobId::new();
        let at = now();
        let mut tx = self.pool.begin().await?;
        if let Some(key) = &spec.idempotency_key {
            let found = sqlx::query("SELECT id, spec_hash FROM jobs WHERE idempotency_key = ?")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = found {
                let existing = JobId::parse(&row.try_get::<String, _>("id")?)
                    .ok_or_else(|| StoreError::Corrupt("job id".into()))?;
                drop(tx);
                if row.try_get::<String, _>("spec_hash")? != hash {
                    return Ok(Created::KeyConflict(existing));
                }
                let job = self.job(&existing).await?.ok_or_else(|| StoreError::Corrupt("vanished job".into()))?;
                return Ok(Created::Existing(job));
            }
        }
        sqlx::query(
            "INSERT INTO jobs (id, idempotency_key, spec, spec_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(&spec.idempotency_key)
        .bind(serde_json::to_string(&req).expect("serialises"))
        .bind(&hash)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO job_events (job_id, state, at) VALUES (?, 'queued', ?)")
            .bind(id.as_str())
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let job = self.job(&id).await?.ok_or_else(|| StoreError::Corrupt("vanished job".into()))?;
        Ok(Created::New(job))
    }

    async fn job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{JOB_SELECT} WHERE j.id = ?")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::job_from_row).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        let sql = format!(
            "{JOB_SELECT} WHERE (?1 IS NULL OR e.state = ?1) AND (?2 IS NULL OR j.id < ?2) ORDER BY j.id DESC LIMIT ?3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.before.as_ref().map(|b| b.as_str().to_string()))
            .bind(i64::from(filter.limit.clamp(1, 500)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::job_from_row).collect()
    }

    async fn events(&self, id: &JobId) -> Result<Vec<JobEvent>, StoreError> {
        let rows =
            sqlx::query("SELECT state, stage, attempt, error, note, at FROM job_events WHERE job_id = ? ORDER BY id")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(Self::event_from_row).collect()
    }

    async fn transition(&self, id: &JobId, t: Transition) -> Result<bool, StoreError> {
        // One statement: SQLite serialises writers, so the check and the insert
        // cannot be split by another worker or a cancel request.
        let allowed = t.from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",");
        let sql = format!(
            "INSERT INTO job_events (job_id, state, stage, attempt, error, note, at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 \
             WHERE (SELECT state FROM job_events WHERE job_id = ?1 ORDER BY id DESC LIMIT 1) IN ({allowed})"
        );
        let at = now();
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(t.to.as_str())
            .bind(t.stage.map(|s| s.as_str()))
            .bind(t.attempt.map(i64::from))
            .bind(t.error.as_ref().map(|e| serde_json::to_string(e).expect("serialises")))
            .bind(&t.note)
            .bind(&at)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1;
        if done {
            sqlx::query("UPDATE jobs SET updated_at = ? WHERE id = ?")
                .bind(&at)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
        }
        Ok(done)
    }

    async fn stage_starts(&self, id: &JobId, stage: Stage) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job_events WHERE job_id = ?1 AND state = ?2 AND stage = ?3 \
             AND id > COALESCE((SELECT MAX(id) FROM job_events WHERE job_id = ?1 AND state = 'queued'), 0)",
        )
        .bind(id.as_str())
        .bind(stage.running_state().as_str())
        .bind(stage.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u32)
    }

    async fn save_manifest(&self, id: &JobId, manifest: &Manifest) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET manifest = ?, updated_at = ? WHERE id = ?")
            .bind(serde_json::to_string(manifest).expect("serialises"))
            .bind(now())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_progress(&self, id: &JobId, stage: Stage, percent: u8) -> Result<(), StoreError> {
        // Also the running stage's heartbeat: `updated_at` tells other workers it is alive.
        sqlx::query(
            "UPDATE jobs SET progress = CASE WHEN progress_stage = ?1 THEN MAX(progress, ?2) ELSE ?2 END, \
             progress_stage = ?1, updated_at = ?3 WHERE id = ?4",
        )
        .bind(stage.as_str())
        .bind(i64::from(percent.min(100)))
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reset_progress(&self, id: &JobId, stage: Stage) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET progress_stage = ?, progress = 0, updated_at = ? WHERE id = ?")
            .bind(stage.as_str())
            .bind(now())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_job(&self, id: &JobId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM jobs WHERE id = ?").bind(id.as_str()).execute(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteRecords) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        (dir, SqliteRecords::connect(&url).await.unwrap())
    }

    fn spec(script: &str, key: Option<&str>) -> JobSpec {
        let req =
            JobRequest { script: Some(script.into()), idempotency_key: key.map(Into::into), ..Default::default() };
        JobSpec::parse(req, &SpecLimits::default()).unwrap()
    }

    #[tokio::test]
    async fn a_new_job_is_queued_with_one_event() {
        let (_d, s) = store().await;
        let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(s.events(&job.id).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_same_key_finds_the_same_job_and_a_different_spec_conflicts() {
        let (_d, s) = store().await;
        let Created::New(first) = s.create_job(&spec("Hello.", Some("k1"))).await.unwrap() else { panic!() };
        let Created::Existing(again) = s.create_job(&spec("Hello.", Some("k1"))).await.unwrap() else { panic!() };
        assert_eq!(again.id, first.id);
        assert!(
            matches!(s.create_job(&spec("Other.", Some("k1"))).await.unwrap(), Created::KeyConflict(id) if id == first.id)
        );
    }

    #[tokio::test]
    async fn transitions_apply_only_from_allowed_states_and_state_is_derived() {
        let (_d, s) = store().await;
        let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
        let to_preparing = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare).attempt(1);
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

    #[tokio::test]
    async fn progress_never_goes_back_within_a_stage() {
        let (_d, s) = store().await;
        let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
        s.reset_progress(&job.id, Stage::Render).await.unwrap();
        s.set_progress(&job.id, Stage::Render, 100).await.unwrap();
        s.set_progress(&job.id, Stage::Render, 40).await.unwrap(); // a late, stale write
        assert_eq!(s.job(&job.id).await.unwrap().unwrap().progress, 100);
        s.set_progress(&job.id, Stage::Publish, 10).await.unwrap();
        assert_eq!(s.job(&job.id).await.unwrap().unwrap().progress, 10, "a new stage starts afresh");
        s.reset_progress(&job.id, Stage::Publish).await.unwrap();
        assert_eq!(s.job(&job.id).await.unwrap().unwrap().progress, 0);
    }

    #[tokio::test]
    async fn listing_pages_newest_first() {
        let (_d, s) = store().await;
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
