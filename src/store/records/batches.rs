//! Batches (`POST /v1/batches`): a batch is found again by its idempotency
//! key, and remembers which job each accepted line became, so a re-sent batch
//! creates nothing new and `GET /v1/batches/{id}` can count its jobs by state.
//!
//! Both stores create a batch's jobs, their `queued` events and the batch's
//! line → job rows in one transaction: a batch is stored whole or not at all.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{StoreError, corrupt, parse_time};
use crate::domain::{JobId, JobSpec};

/// A batch to store: its key, how many lines it had, how many of them were
/// refused before reaching the store, and the specs of the others by line.
#[derive(Debug, Clone, Copy)]
pub struct NewBatch<'a> {
    pub idempotency_key: &'a str,
    pub lines: u32,
    pub rejected: u32,
    /// (line, spec); every spec should carry an idempotency key, or a re-sent
    /// batch would create its jobs again.
    pub jobs: &'a [(u32, JobSpec)],
}

/// What became of one line's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// A new job, queued in the record store (not yet on a queue).
    New(JobId),
    /// A job with the same idempotency key and spec existed already.
    Existing(JobId),
    /// The line's idempotency key belongs to a job with a different spec.
    KeyConflict(JobId),
}

/// A batch as stored. The counts are those of the latest time it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub id: String,
    pub idempotency_key: String,
    pub lines: u32,
    /// Lines that are (new or existing) jobs.
    pub accepted: u32,
    pub rejected: u32,
    pub created_at: DateTime<Utc>,
}

/// The result of [`super::RecordStore::create_batch`].
#[derive(Debug, Clone)]
pub struct BatchCreated {
    pub batch: BatchRecord,
    /// False when a batch with the same key existed (the batch was sent again).
    pub is_new: bool,
    /// One outcome per spec given, in the same order.
    pub jobs: Vec<(u32, LineOutcome)>,
}

impl BatchCreated {
    /// The jobs this call created, which still have to be queued.
    pub fn new_jobs(&self) -> Vec<JobId> {
        self.jobs
            .iter()
            .filter_map(|(_, o)| match o {
                LineOutcome::New(id) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }
}

pub(super) const BATCH_COLUMNS: &str = "id, idempotency_key, lines, accepted, rejected, created_at";

#[derive(Debug, sqlx::FromRow)]
pub(super) struct BatchRow {
    id: String,
    idempotency_key: String,
    lines: i64,
    accepted: i64,
    rejected: i64,
    created_at: String,
}

impl BatchRow {
    pub(super) fn into_record(self) -> Result<BatchRecord, StoreError> {
        let count = |n: i64| u32::try_from(n).map_err(corrupt);
        Ok(BatchRecord {
            id: self.id,
            idempotency_key: self.idempotency_key,
            lines: count(self.lines)?,
            accepted: count(self.accepted)?,
            rejected: count(self.rejected)?,
            created_at: parse_time(&self.created_at)?,
        })
    }
}

/// What a line whose job was not inserted became: the same spec under its key
/// is that job again, a different one a conflict.
pub(super) fn existing(id: &str, stored_hash: &str, hash: &str) -> Result<LineOutcome, StoreError> {
    let id = JobId::parse(id).ok_or_else(|| corrupt("job id"))?;
    Ok(if stored_hash == hash { LineOutcome::Existing(id) } else { LineOutcome::KeyConflict(id) })
}

/// (accepted, rejected) of a stored batch: refused lines plus key conflicts.
pub(super) fn tally(b: &NewBatch<'_>, jobs: &[(u32, LineOutcome)]) -> (u32, u32) {
    let conflicts = jobs.iter().filter(|(_, o)| matches!(o, LineOutcome::KeyConflict(_))).count() as u32;
    (jobs.len() as u32 - conflicts, b.rejected + conflicts)
}

/// A batch's jobs as columns, for one multi-row INSERT per table: a round
/// trip per job would make a 10,000-line batch take seconds.
pub(super) struct JobColumns {
    pub ids: Vec<String>,
    pub keys: Vec<Option<String>>,
    /// The `JobRequest` wire form, JSON.
    pub specs: Vec<String>,
    pub hashes: Vec<String>,
    pub accounts: Vec<Option<String>>,
}

impl JobColumns {
    pub fn new(jobs: &[(u32, JobSpec)]) -> Self {
        let requests: Vec<_> = jobs.iter().map(|(_, spec)| spec.to_request()).collect();
        Self {
            ids: jobs.iter().map(|_| JobId::new().to_string()).collect(),
            keys: jobs.iter().map(|(_, spec)| spec.idempotency_key.clone()).collect(),
            specs: requests.iter().map(|r| serde_json::to_string(r).expect("serialises")).collect(),
            hashes: requests.iter().map(super::spec_hash).collect(),
            accounts: jobs.iter().map(|(_, spec)| spec.account.clone()).collect(),
        }
    }

    /// The keys of the rows the INSERT skipped (their key was taken).
    pub fn taken_keys(&self, created: &HashSet<String>) -> Vec<String> {
        self.ids
            .iter()
            .zip(&self.keys)
            .filter(|(id, _)| !created.contains(*id))
            .filter_map(|(_, k)| k.clone())
            .collect()
    }

    /// Each line's outcome, from the ids inserted and the (id, spec_hash) of
    /// each taken key.
    pub fn outcomes(
        &self,
        jobs: &[(u32, JobSpec)],
        created: &HashSet<String>,
        found: &HashMap<String, (String, String)>,
    ) -> Result<Vec<(u32, LineOutcome)>, StoreError> {
        let mut out = Vec::with_capacity(jobs.len());
        for (i, (line, _)) in jobs.iter().enumerate() {
            let outcome = if created.contains(&self.ids[i]) {
                LineOutcome::New(JobId::parse(&self.ids[i]).ok_or_else(|| corrupt("job id"))?)
            } else {
                let (id, stored_hash) = self.keys[i]
                    .as_ref()
                    .and_then(|k| found.get(k))
                    .ok_or_else(|| corrupt("a job neither inserted nor found by its key"))?;
                existing(id, stored_hash, &self.hashes[i])?
            };
            out.push((*line, outcome));
        }
        Ok(out)
    }

    /// The ids of the jobs inserted, in line order.
    pub fn inserted(&self, created: &HashSet<String>) -> Vec<String> {
        self.ids.iter().filter(|id| created.contains(*id)).cloned().collect()
    }
}

/// (line, job id) of every line that is a job, for `batch_jobs`.
pub(super) fn members(jobs: &[(u32, LineOutcome)]) -> (Vec<i64>, Vec<String>) {
    jobs.iter()
        .filter_map(|(line, o)| match o {
            LineOutcome::New(job) | LineOutcome::Existing(job) => Some((i64::from(*line), job.to_string())),
            LineOutcome::KeyConflict(_) => None,
        })
        .unzip()
}
