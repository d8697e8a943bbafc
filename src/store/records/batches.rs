//! Batches (`POST /v1/batches`): a batch is found again by its idempotency
//! key, and remembers which job each accepted line became, so a re-sent batch
//! creates nothing new and `GET /v1/batches/{id}` can count its jobs by state.
//!
//! A batch's jobs, their `queued` events and the batch's line → job rows are
//! stored in one transaction: a batch is stored whole or not at all. They go
//! in one statement per table, the rows passed as one JSON array parameter
//! (a round trip per job would make a 10,000-line batch take seconds), read
//! by each engine's JSON table function (see `Dialect::JSON_ROWS`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::dialect::{Dialect, dialect_of, lock_key};
use super::{Records, StoreError, corrupt, db_run, json, now, parse, parse_time};
use crate::domain::{JobId, JobSpec, JobState};

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

const BATCH_COLUMNS: &str = "id, idempotency_key, lines, accepted, rejected, created_at";

#[derive(Debug, sqlx::FromRow)]
struct BatchRow {
    id: String,
    idempotency_key: String,
    lines: i64,
    accepted: i64,
    rejected: i64,
    created_at: String,
}

impl BatchRow {
    fn into_record(self) -> Result<BatchRecord, StoreError> {
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
fn existing(id: &str, stored_hash: &str, hash: &str) -> Result<LineOutcome, StoreError> {
    let id = JobId::parse(id).ok_or_else(|| corrupt("job id"))?;
    Ok(if stored_hash == hash { LineOutcome::Existing(id) } else { LineOutcome::KeyConflict(id) })
}

/// (accepted, rejected) of a stored batch: refused lines plus key conflicts.
fn tally(b: &NewBatch<'_>, jobs: &[(u32, LineOutcome)]) -> (u32, u32) {
    let conflicts = jobs.iter().filter(|(_, o)| matches!(o, LineOutcome::KeyConflict(_))).count() as u32;
    (jobs.len() as u32 - conflicts, b.rejected + conflicts)
}

/// A batch's jobs as columns, for one multi-row INSERT per table: a round
/// trip per job would make a 10,000-line batch take seconds.
struct JobColumns {
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
            hashes: requests.iter().map(super::jobs::spec_hash).collect(),
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
fn members(jobs: &[(u32, LineOutcome)]) -> (Vec<i64>, Vec<String>) {
    jobs.iter()
        .filter_map(|(line, o)| match o {
            LineOutcome::New(job) | LineOutcome::Existing(job) => Some((i64::from(*line), job.to_string())),
            LineOutcome::KeyConflict(_) => None,
        })
        .unzip()
}

/// Batches: stored whole under their key, found again, counted by state.
#[async_trait]
pub trait BatchStore: Send + Sync + 'static {
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
    /// Every batch, oldest first, with the (line, job) each accepted line became.
    async fn list_batches(&self) -> Result<Vec<(BatchRecord, Vec<(u32, JobId)>)>, StoreError>;
}

#[async_trait]
impl BatchStore for Records {
    async fn create_batch(&self, b: &NewBatch<'_>) -> Result<BatchCreated, StoreError> {
        let at = now();
        let cols = JobColumns::new(b.jobs);
        db_run!(self, pool => {
            // Two copies of one batch sent together run one after the other:
            // ON CONFLICT makes the second wait for the first, then find its row.
            let mut tx = pool.write().await?;
            let sql = format!(
                "INSERT INTO batches (id, idempotency_key, created_at, lines, accepted, rejected) \
                 VALUES ($1, $2, $3, 0, 0, 0) ON CONFLICT (idempotency_key) DO NOTHING RETURNING {BATCH_COLUMNS}"
            );
            let inserted: Option<BatchRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(b.idempotency_key)
                .bind(&at)
                .fetch_optional(&mut *tx)
                .await?;
            let (batch, is_new) = match inserted {
                Some(row) => (row.into_record()?, true),
                None => {
                    let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE idempotency_key = $1");
                    let row: BatchRow =
                        sqlx::query_as(AssertSqlSafe(sql)).bind(b.idempotency_key).fetch_one(&mut *tx).await?;
                    (row.into_record()?, false)
                }
            };
            let sql = dialect_of(pool);
            let rows: Vec<_> = (0..cols.ids.len())
                .map(|i| (&cols.ids[i], &cols.keys[i], &cols.specs[i], &cols.hashes[i], &cols.accounts[i]))
                .collect();
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
            let taken = cols.taken_keys(&created);
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
            let jobs = cols.outcomes(b.jobs, &created, &found)?;
            // Event ids become visible in order (see `jobs`' module docs).
            lock_key(pool, &mut tx, super::jobs::EVENT_ORDER).await?;
            let events =
                format!("INSERT INTO job_events (job_id, state, at) SELECT value, 'queued', $2 FROM {}", sql.json_texts("$1"));
            sqlx::query(AssertSqlSafe(events))
                .bind(json(&cols.inserted(&created)))
                .bind(&at)
                .execute(&mut *tx)
                .await?;
            let (lines, members) = members(&jobs);
            let pairs: Vec<_> = lines.iter().zip(&members).collect();
            let lines = format!(
                "INSERT INTO batch_jobs (batch_id, line, job_id) \
                 SELECT $1, CAST(value ->> 0 AS BIGINT), value ->> 1 FROM {} \
                 WHERE true ON CONFLICT (batch_id, line) DO UPDATE SET job_id = excluded.job_id",
                sql.json_rows("$2")
            );
            sqlx::query(AssertSqlSafe(lines)).bind(&batch.id).bind(json(&pairs)).execute(&mut *tx).await?;
            let (accepted, rejected) = tally(b, &jobs);
            sqlx::query("UPDATE batches SET lines = $1, accepted = $2, rejected = $3 WHERE id = $4")
                .bind(i64::from(b.lines))
                .bind(i64::from(accepted))
                .bind(i64::from(rejected))
                .bind(&batch.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            let batch = BatchRecord { lines: b.lines, accepted, rejected, ..batch };
            Ok(BatchCreated { batch, is_new, jobs })
        })
    }

    async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1");
        let row: Option<BatchRow> =
            db_run!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?);
        row.map(BatchRow::into_record).transpose()
    }

    async fn batch_summary(&self, id: &str) -> Result<Vec<(JobState, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = db_run!(self, pool => {
            sqlx::query_as(
                "SELECT e.state, COUNT(DISTINCT b.job_id) FROM batch_jobs b \
                 JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = b.job_id) \
                 WHERE b.batch_id = $1 GROUP BY e.state ORDER BY e.state",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|(state, n)| Ok((parse(&state)?, n as u64))).collect()
    }

    async fn undo_batch(&self, created: &BatchCreated) -> Result<(), StoreError> {
        let ids: Vec<String> = created.new_jobs().into_iter().map(|id| id.to_string()).collect();
        db_run!(self, pool => {
            let mut tx = pool.write().await?;
            // Their events and batch rows go with them (ON DELETE CASCADE).
            let delete =
                format!("DELETE FROM jobs WHERE id IN (SELECT value FROM {})", dialect_of(pool).json_texts("$1"));
            sqlx::query(AssertSqlSafe(delete)).bind(json(&ids)).execute(&mut *tx).await?;
            if created.is_new {
                sqlx::query("DELETE FROM batches WHERE id = $1").bind(&created.batch.id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn list_batches(&self) -> Result<Vec<(BatchRecord, Vec<(u32, JobId)>)>, StoreError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches ORDER BY created_at, id");
        let (rows, lines): (Vec<BatchRow>, Vec<(String, i64, String)>) = db_run!(self, pool => {
            let rows = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await?;
            let lines = sqlx::query_as("SELECT batch_id, line, job_id FROM batch_jobs ORDER BY batch_id, line")
                .fetch_all(pool)
                .await?;
            (rows, lines)
        });
        let mut by_batch: HashMap<String, Vec<(u32, JobId)>> = HashMap::new();
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
}
