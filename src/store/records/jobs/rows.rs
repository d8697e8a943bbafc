//! The rows jobs and events are read from, the same on both engines.

use super::{JobProgress, JobRecord, StoredEvent};
use crate::domain::{JobEvent, JobId, JobRequest, JobSpec, SpecLimits};
use crate::store::records::{StoreError, corrupt, parse, parse_time};

/// A job joined with its latest event ([`JOB_SELECT`]).
#[derive(Debug, sqlx::FromRow)]
pub(in crate::store::records) struct JobRow {
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
pub(super) struct EventRow {
    state: String,
    stage: Option<String>,
    attempt: Option<i64>,
    error: Option<String>,
    note: Option<String>,
    at: String,
    retry_at: Option<String>,
}

impl EventRow {
    pub(super) fn into_event(self) -> Result<JobEvent, StoreError> {
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
    pub(in crate::store::records) fn into_record(self) -> Result<JobRecord, StoreError> {
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

/// An event with its row id and job ([`super::JobStore::events_after`]).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct StoredEventRow {
    id: i64,
    job_id: String,
    #[sqlx(flatten)]
    event: EventRow,
}

impl StoredEventRow {
    pub(super) fn into_stored(self) -> Result<StoredEvent, StoreError> {
        Ok(StoredEvent {
            id: self.id,
            job_id: JobId::parse(&self.job_id).ok_or_else(|| corrupt("job id"))?,
            event: self.event.into_event()?,
        })
    }
}

/// A job's progress columns ([`super::JobStore::progress_of`]).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ProgressRow {
    id: String,
    progress_stage: String,
    progress: i64,
}

impl ProgressRow {
    pub(super) fn into_progress(self) -> Result<JobProgress, StoreError> {
        Ok(JobProgress {
            job_id: JobId::parse(&self.id).ok_or_else(|| corrupt("job id"))?,
            stage: parse(&self.progress_stage)?,
            percent: self.progress.clamp(0, 100) as u8,
        })
    }
}
