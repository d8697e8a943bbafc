//! What `/metrics` and `/healthz` read from the record store, and the shared
//! totals of failed outside calls.

use async_trait::async_trait;
use sqlx::AssertSqlSafe;

use super::dialect::Dialect;
use super::{Records, StoreError, db_run, parse, parse_time};
use crate::domain::{JobError, JobState, Manifest, Stage};

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

/// The store's health and counts.
#[async_trait]
pub trait StoreHealth: Send + Sync + 'static {
    async fn ping(&self) -> Result<(), StoreError>;
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;
    /// Counts for `/metrics`, over every job kept in the store.
    async fn metrics(&self) -> Result<RecordMetrics, StoreError>;
    /// Adds failed-call counts (provider, code, n) to the shared totals.
    async fn add_provider_errors(&self, counts: &[(&str, &str, u64)]) -> Result<(), StoreError>;
}

/// The rows [`RecordMetrics`] is computed from, read in one go.
type MetricRows = (
    Vec<(String, i64)>,
    Vec<(Option<String>, Option<String>)>,
    Vec<(String, String, String)>,
    Vec<(String, String, i64)>,
);

#[async_trait]
impl StoreHealth for Records {
    fn engine(&self) -> &'static str {
        Records::engine(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    async fn metrics(&self) -> Result<RecordMetrics, StoreError> {
        const LATEST: &str =
            "FROM jobs j JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = j.id)";
        let by_state = format!("SELECT e.state, COUNT(*) {LATEST} GROUP BY e.state");
        let ends = format!(
            "SELECT e.error, CASE WHEN e.state IN ('staged', 'in_inbox') THEN j.manifest END {LATEST} \
             WHERE e.state IN ('failed', 'staged', 'in_inbox')"
        );
        let rows: MetricRows = db_run!(self, pool => (
            sqlx::query_as(AssertSqlSafe(by_state)).fetch_all(pool).await?,
            sqlx::query_as(AssertSqlSafe(ends)).fetch_all(pool).await?,
            sqlx::query_as("SELECT job_id, state, at FROM job_events ORDER BY job_id, id").fetch_all(pool).await?,
            sqlx::query_as("SELECT provider, code, count FROM provider_errors ORDER BY provider, code")
                .fetch_all(pool)
                .await?,
        ));
        summarise(rows)
    }

    async fn add_provider_errors(&self, counts: &[(&str, &str, u64)]) -> Result<(), StoreError> {
        db_run!(self, pool => {
            let mut tx = pool.write().await?;
            for (provider, code, n) in counts {
                sqlx::query(
                    "INSERT INTO provider_errors (provider, code, count) VALUES ($1, $2, $3) \
                     ON CONFLICT (provider, code) DO UPDATE SET count = provider_errors.count + excluded.count",
                )
                .bind(*provider)
                .bind(*code)
                .bind(*n as i64)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// The counts from the rows: jobs by state; failures by stage and code and
/// staged bytes from the jobs that ended; stage time from the events; the
/// provider error totals.
fn summarise((by_state, ends, events, errors): MetricRows) -> Result<RecordMetrics, StoreError> {
    let mut m = RecordMetrics::default();
    for (state, n) in by_state {
        m.jobs_by_state.push((parse(&state)?, n as u64));
    }
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
    m.provider_errors = errors.into_iter().map(|(p, c, n)| (p, c, n as u64)).collect();
    Ok(m)
}
