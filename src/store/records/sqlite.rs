//! Records in one SQLite file: the embedded default.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row};

use super::{
    Created, EventRow, JOB_SELECT, JobFilter, JobRecord, JobRow, RecordMetrics, RecordStore, StoreError, Transition,
    collect_metrics, corrupt, now, spec_hash,
};
use crate::domain::{JobEvent, JobId, JobSpec, Manifest, Stage};

/// Records in one SQLite file.
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
        sqlx::migrate!("./src/store/records/migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

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
                let existing = JobId::parse(&row.try_get::<String, _>("id")?).ok_or_else(|| corrupt("job id"))?;
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
        let row = sqlx::query_as::<_, JobRow>(AssertSqlSafe(format!("{JOB_SELECT} WHERE j.id = ?")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(JobRow::into_record).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        let sql = format!(
            "{JOB_SELECT} WHERE (?1 IS NULL OR e.state = ?1) AND (?2 IS NULL OR j.id < ?2) ORDER BY j.id DESC LIMIT ?3"
        );
        let rows = sqlx::query_as::<_, JobRow>(AssertSqlSafe(sql))
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.before.as_ref().map(|b| b.as_str().to_string()))
            .bind(i64::from(filter.limit.clamp(1, 500)))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(JobRow::into_record).collect()
    }

    async fn events(&self, id: &JobId) -> Result<Vec<JobEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT state, stage, attempt, error, note, at FROM job_events WHERE job_id = ? ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::into_event).collect()
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
            "UPDATE jobs SET progress = MAX(progress, ?2), updated_at = ?3 WHERE id = ?4 AND progress_stage = ?1",
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

    async fn metrics(&self) -> Result<RecordMetrics, StoreError> {
        collect_metrics(&self.pool).await
    }

    async fn add_provider_errors(&self, counts: &[(&str, &str, u64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (provider, code, n) in counts {
            sqlx::query(
                "INSERT INTO provider_errors (provider, code, count) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (provider, code) DO UPDATE SET count = provider_errors.count + excluded.count",
            )
            .bind(*provider)
            .bind(*code)
            .bind(*n as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
