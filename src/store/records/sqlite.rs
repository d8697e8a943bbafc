//! Records in one SQLite file: the embedded default.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row};

use super::accounts::{ACCOUNT_COLUMNS, AccountRow, UPLOAD_COLUMNS, UploadRow, WAITING_SELECT, WaitingRow, size};
use super::keys::{API_KEY_COLUMNS, ApiKeyRow};
use super::{
    AccountRecord, AccountStatus, Created, EventRow, JOB_SELECT, JobFilter, JobRecord, JobRow, NewAccount,
    RecordMetrics, RecordStore, SealedTokens, StoreError, Transition, UploadRecord, WaitingJob, collect_metrics,
    corrupt, earlier, first_leave, later, now, parse_time, spec_hash, time_text,
};
use super::{ApiKeyRecord, NewApiKey, Scope};
use crate::domain::{JobEvent, JobId, JobSpec, Manifest, Stage};

/// Which rate-limit hits count: taken after the cutoff `?3` and not cut short
/// before now `?2`.
const COUNTING: &str = "at > ?3 AND (held_until IS NULL OR held_until > ?2)";

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
            // Deleted rows are overwritten, not left in free pages: a purged
            // job or a forgotten token leaves nothing in the file.
            .pragma("secure_delete", "on")
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("./src/store/records/migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    /// A transaction that holds the write lock from its first statement on.
    ///
    /// Every transaction here that writes starts this way. A deferred
    /// transaction (`BEGIN`) that reads before it writes takes a read
    /// snapshot first; when another connection commits a write before it
    /// upgrades, SQLite answers `database is locked` at once, without waiting
    /// out the busy timeout, because waiting could not make the stale snapshot
    /// current. `BEGIN IMMEDIATE` waits (up to the busy timeout) for the lock
    /// instead, so concurrent writers run one after the other.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl RecordStore for SqliteRecords {
    async fn create_job(&self, spec: &JobSpec) -> Result<Created, StoreError> {
        let req = spec.to_request();
        let hash = spec_hash(&req);
        let id = JobId::new();
        let at = now();
        let mut tx = self.write().await?;
        // Insert first, as on PostgreSQL: racing submissions with one key
        // agree on the job whose insert came first.
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, idempotency_key, spec, spec_hash, account, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(&spec.idempotency_key)
        .bind(serde_json::to_string(&req).expect("serialises"))
        .bind(&hash)
        .bind(&spec.account)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            tx.rollback().await?;
            let row = sqlx::query("SELECT id, spec_hash FROM jobs WHERE idempotency_key = ?")
                .bind(&spec.idempotency_key)
                .fetch_one(&self.pool)
                .await?;
            let existing = JobId::parse(&row.try_get::<String, _>("id")?).ok_or_else(|| corrupt("job id"))?;
            if row.try_get::<String, _>("spec_hash")? != hash {
                return Ok(Created::KeyConflict(existing));
            }
            let job = self.job(&existing).await?.ok_or_else(|| corrupt("vanished job"))?;
            return Ok(Created::Existing(job));
        }
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
            "SELECT state, stage, attempt, error, note, at, retry_at FROM job_events WHERE job_id = ? ORDER BY id",
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
            "INSERT INTO job_events (job_id, state, stage, attempt, error, note, at, retry_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 \
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
            .bind(t.retry_at.map(time_text))
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
        // Its events and upload go with it (ON DELETE CASCADE).
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
        let mut tx = self.write().await?;
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

    async fn upsert_account(&self, a: &NewAccount) -> Result<AccountRecord, StoreError> {
        let at = now();
        let sql = format!(
            "INSERT INTO accounts (id, open_id, display_name, avatar_url, scopes, status, access_token, refresh_token, \
             access_expires_at, refresh_expires_at, token_version, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'connected', ?6, ?7, ?8, ?9, 1, ?10, ?10) \
             ON CONFLICT (open_id) DO UPDATE SET display_name = excluded.display_name, \
             avatar_url = excluded.avatar_url, scopes = excluded.scopes, status = 'connected', \
             access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
             access_expires_at = excluded.access_expires_at, refresh_expires_at = excluded.refresh_expires_at, \
             token_version = accounts.token_version + 1, refresh_lock_owner = NULL, refresh_lock_until = NULL, \
             updated_at = excluded.updated_at \
             RETURNING {ACCOUNT_COLUMNS}"
        );
        let row = sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql))
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&a.open_id)
            .bind(&a.display_name)
            .bind(&a.avatar_url)
            .bind(&a.scopes)
            .bind(&a.tokens.access)
            .bind(&a.tokens.refresh)
            .bind(time_text(a.tokens.access_expires_at))
            .bind(time_text(a.tokens.refresh_expires_at))
            .bind(&at)
            .fetch_one(&self.pool)
            .await?;
        row.into_record()
    }

    async fn account(&self, id_or_open_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1 OR open_id = ?1 ORDER BY id = ?1 DESC LIMIT 1"
        );
        let row =
            sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql)).bind(id_or_open_id).fetch_optional(&self.pool).await?;
        row.map(AccountRow::into_record).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, id");
        let rows = sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.into_iter().map(AccountRow::into_record).collect()
    }

    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn forget_tokens(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE accounts SET status = 'disconnected', access_token = NULL, refresh_token = NULL, \
             access_expires_at = NULL, refresh_expires_at = NULL, token_version = token_version + 1, \
             refresh_lock_owner = NULL, refresh_lock_until = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn lock_refresh(&self, id: &str, owner: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let now = Utc::now();
        let taken = sqlx::query(
            "UPDATE accounts SET refresh_lock_owner = ?1, refresh_lock_until = ?2 WHERE id = ?3 \
             AND (refresh_lock_owner IS NULL OR refresh_lock_until < ?4 OR refresh_lock_owner = ?1)",
        )
        .bind(owner)
        .bind(time_text(later(now, ttl)))
        .bind(id)
        .bind(time_text(now))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        Ok(taken)
    }

    async fn finish_refresh(&self, id: &str, owner: &str, tokens: Option<&SealedTokens>) -> Result<bool, StoreError> {
        let done = match tokens {
            Some(t) => sqlx::query(
                "UPDATE accounts SET access_token = ?1, refresh_token = ?2, access_expires_at = ?3, \
                 refresh_expires_at = ?4, token_version = token_version + 1, status = 'connected', \
                 refresh_lock_owner = NULL, refresh_lock_until = NULL, updated_at = ?5 \
                 WHERE id = ?6 AND refresh_lock_owner = ?7",
            )
            .bind(&t.access)
            .bind(&t.refresh)
            .bind(time_text(t.access_expires_at))
            .bind(time_text(t.refresh_expires_at))
            .bind(now())
            .bind(id)
            .bind(owner),
            None => sqlx::query(
                "UPDATE accounts SET refresh_lock_owner = NULL, refresh_lock_until = NULL \
                 WHERE id = ? AND refresh_lock_owner = ?",
            )
            .bind(id)
            .bind(owner),
        }
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        Ok(done)
    }

    async fn put_oauth_state(&self, state_hash: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (state_hash) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(state_hash)
        .bind(time_text(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let expires: Option<String> =
            sqlx::query_scalar("DELETE FROM oauth_states WHERE state_hash = ? RETURNING expires_at")
                .bind(state_hash)
                .fetch_optional(&self.pool)
                .await?;
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < ?")
            .bind(time_text(earlier(Utc::now(), std::time::Duration::from_secs(24 * 3600))))
            .execute(&self.pool)
            .await?;
        expires.as_deref().map(parse_time).transpose()
    }

    async fn release_slot(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rate_hits WHERE key = ? AND holder = ? AND held_until IS NULL")
            .bind(key)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn hold_slot_until(&self, key: &str, holder: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE rate_hits SET held_until = ? WHERE key = ? AND holder = ? AND held_until IS NULL")
            .bind(time_text(until))
            .bind(key)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn acquire_slot(
        &self,
        key: &str,
        holder: Option<&str>,
        limit: u32,
        window: std::time::Duration,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = Utc::now();
        let cutoff = time_text(earlier(now, window));
        sqlx::query("DELETE FROM rate_hits WHERE key = ?1 AND (at <= ?2 OR held_until <= ?3)")
            .bind(key)
            .bind(&cutoff)
            .bind(time_text(now))
            .execute(&self.pool)
            .await?;
        // One statement: SQLite serialises writers, and a write statement takes
        // the write lock before it counts, so no two callers see the same room.
        let granted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO rate_hits (key, at, holder) SELECT ?1, ?2, ?5 \
             WHERE (SELECT COUNT(*) FROM rate_hits WHERE key = ?1 AND {COUNTING}) < ?4"
        )))
        .bind(key)
        .bind(time_text(now))
        .bind(&cutoff)
        .bind(i64::from(limit))
        .bind(holder)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if granted {
            return Ok(None);
        }
        let hits: Vec<(String, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT at, held_until FROM rate_hits WHERE key = ?1 AND {COUNTING}"
        )))
        .bind(key)
        .bind(time_text(now))
        .bind(&cutoff)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(match first_leave(&hits, window)? {
            Some(at) => at,
            // Nothing to wait for: with limit 0 a whole window, else the hits just left.
            None if limit == 0 => later(now, window),
            None => now,
        }))
    }

    async fn upload(&self, job: &JobId) -> Result<Option<UploadRecord>, StoreError> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM tiktok_uploads WHERE job_id = ?");
        let row =
            sqlx::query_as::<_, UploadRow>(AssertSqlSafe(sql)).bind(job.as_str()).fetch_optional(&self.pool).await?;
        row.map(UploadRow::into_record).transpose()
    }

    async fn save_upload(&self, u: &UploadRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tiktok_uploads (job_id, account_id, publish_id, upload_url, video_size, chunk_size, status, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
             ON CONFLICT (job_id) DO UPDATE SET account_id = excluded.account_id, publish_id = excluded.publish_id, \
             upload_url = excluded.upload_url, video_size = excluded.video_size, chunk_size = excluded.chunk_size, \
             status = excluded.status, updated_at = excluded.updated_at, \
             created_at = CASE WHEN tiktok_uploads.publish_id = excluded.publish_id \
             THEN tiktok_uploads.created_at ELSE excluded.created_at END",
        )
        .bind(u.job_id.as_str())
        .bind(&u.account_id)
        .bind(&u.publish_id)
        .bind(&u.upload_url)
        .bind(size(u.video_size))
        .bind(size(u.chunk_size))
        .bind(u.status.as_str())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn waiting_jobs(&self) -> Result<Vec<WaitingJob>, StoreError> {
        let rows = sqlx::query_as::<_, WaitingRow>(WAITING_SELECT).fetch_all(&self.pool).await?;
        rows.into_iter().map(WaitingRow::into_waiting).collect()
    }

    async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKeyRecord, StoreError> {
        let sql = format!(
            "INSERT INTO api_keys (id, key_hash, name, scopes, created_at, notify) VALUES (?, ?, ?, ?, ?, ?) \
             RETURNING {API_KEY_COLUMNS}"
        );
        let row = sqlx::query_as::<_, ApiKeyRow>(AssertSqlSafe(sql))
            .bind(&key.id)
            .bind(&key.key_hash)
            .bind(&key.name)
            .bind(Scope::join(&key.scopes))
            .bind(now())
            .bind(key.notify.as_ref().map(|n| serde_json::to_string(n).expect("serialises")))
            .fetch_one(&self.pool)
            .await?;
        row.into_record()
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?");
        let row = sqlx::query_as::<_, ApiKeyRow>(AssertSqlSafe(sql)).bind(key_hash).fetch_optional(&self.pool).await?;
        row.map(ApiKeyRow::into_record).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
        let rows = sqlx::query_as::<_, ApiKeyRow>(AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.into_iter().map(ApiKeyRow::into_record).collect()
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let found = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1;
        Ok(found)
    }

    async fn set_api_key_notify(
        &self,
        id: &str,
        notify: Option<&crate::domain::NotifyRequest>,
    ) -> Result<bool, StoreError> {
        let found = sqlx::query("UPDATE api_keys SET notify = ? WHERE id = ?")
            .bind(notify.map(|n| serde_json::to_string(n).expect("serialises")))
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1;
        Ok(found)
    }

    async fn count_api_key_use(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET requests = requests + 1, last_used_at = ? WHERE id = ?")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_batch(&self, b: &super::NewBatch<'_>) -> Result<super::BatchCreated, StoreError> {
        use std::collections::{HashMap, HashSet};

        use super::batches::{BATCH_COLUMNS, BatchRow, JobColumns, members, tally};
        let at = now();
        // Two copies of one batch sent together run one after the other
        // instead of one failing to upgrade its read lock (see `write`).
        let mut tx = self.write().await?;
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE idempotency_key = ?");
        let found =
            sqlx::query_as::<_, BatchRow>(AssertSqlSafe(sql)).bind(b.idempotency_key).fetch_optional(&mut *tx).await?;
        let (batch, is_new) = match found {
            Some(row) => (row.into_record()?, false),
            None => {
                let sql = format!(
                    "INSERT INTO batches (id, idempotency_key, created_at, lines, accepted, rejected) \
                     VALUES (?, ?, ?, 0, 0, 0) RETURNING {BATCH_COLUMNS}"
                );
                let row = sqlx::query_as::<_, BatchRow>(AssertSqlSafe(sql))
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(b.idempotency_key)
                    .bind(&at)
                    .fetch_one(&mut *tx)
                    .await?;
                (row.into_record()?, true)
            }
        };
        // One statement per table, the rows as one JSON array read by json_each
        // (`WHERE true` tells SQLite the ON CONFLICT is the upsert's, not a join's).
        let cols = JobColumns::new(b.jobs);
        let rows: Vec<_> = (0..cols.ids.len())
            .map(|i| (&cols.ids[i], &cols.keys[i], &cols.specs[i], &cols.hashes[i], &cols.accounts[i]))
            .collect();
        let created: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO jobs (id, idempotency_key, spec, spec_hash, account, created_at, updated_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?2, ?2 FROM json_each(?1) \
             WHERE true ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(serde_json::to_string(&rows).expect("serialises"))
        .bind(&at)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let taken = cols.taken_keys(&created);
        let mut found = HashMap::new();
        if !taken.is_empty() {
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT idempotency_key, id, spec_hash FROM jobs \
                 WHERE idempotency_key IN (SELECT value FROM json_each(?))",
            )
            .bind(serde_json::to_string(&taken).expect("serialises"))
            .fetch_all(&mut *tx)
            .await?;
            found.extend(rows.into_iter().map(|(key, id, hash)| (key, (id, hash))));
        }
        let jobs = cols.outcomes(b.jobs, &created, &found)?;
        sqlx::query("INSERT INTO job_events (job_id, state, at) SELECT value, 'queued', ?2 FROM json_each(?1)")
            .bind(serde_json::to_string(&cols.inserted(&created)).expect("serialises"))
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        let (lines, members) = members(&jobs);
        let pairs: Vec<_> = lines.iter().zip(&members).collect();
        sqlx::query(
            "INSERT INTO batch_jobs (batch_id, line, job_id) SELECT ?1, value ->> 0, value ->> 1 FROM json_each(?2) \
             WHERE true ON CONFLICT (batch_id, line) DO UPDATE SET job_id = excluded.job_id",
        )
        .bind(&batch.id)
        .bind(serde_json::to_string(&pairs).expect("serialises"))
        .execute(&mut *tx)
        .await?;
        let (accepted, rejected) = tally(b, &jobs);
        sqlx::query("UPDATE batches SET lines = ?, accepted = ?, rejected = ? WHERE id = ?")
            .bind(i64::from(b.lines))
            .bind(i64::from(accepted))
            .bind(i64::from(rejected))
            .bind(&batch.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let batch = super::BatchRecord { lines: b.lines, accepted, rejected, ..batch };
        Ok(super::BatchCreated { batch, is_new, jobs })
    }

    async fn batch(&self, id: &str) -> Result<Option<super::BatchRecord>, StoreError> {
        use super::batches::{BATCH_COLUMNS, BatchRow};
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?");
        let row = sqlx::query_as::<_, BatchRow>(AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.map(BatchRow::into_record).transpose()
    }

    async fn batch_summary(&self, id: &str) -> Result<Vec<(crate::domain::JobState, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT e.state, COUNT(DISTINCT b.job_id) FROM batch_jobs b \
             JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = b.job_id) \
             WHERE b.batch_id = ? GROUP BY e.state ORDER BY e.state",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|(state, n)| Ok((super::parse(&state)?, n as u64))).collect()
    }

    async fn undo_batch(&self, created: &super::BatchCreated) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for id in created.new_jobs() {
            // Its events and batch rows go with it (ON DELETE CASCADE).
            sqlx::query("DELETE FROM jobs WHERE id = ?").bind(id.as_str()).execute(&mut *tx).await?;
        }
        if created.is_new {
            sqlx::query("DELETE FROM batches WHERE id = ?").bind(&created.batch.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn enqueue_notification(&self, n: &super::NewNotification) -> Result<bool, StoreError> {
        let at = now();
        let added = sqlx::query(
            "INSERT INTO notifications (id, job_id, event, event_at, channel, target, payload, status, attempts, \
             next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) \
             ON CONFLICT (job_id, event, event_at, channel) DO NOTHING",
        )
        .bind(format!("{}:{}", n.id, n.channel))
        .bind(n.job_id.as_str())
        .bind(&n.event)
        .bind(time_text(n.event_at))
        .bind(n.channel.as_str())
        .bind(&n.target)
        .bind(n.payload.to_string())
        .bind(&at)
        .bind(&at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    async fn claim_notifications(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<super::Notification>, StoreError> {
        // One statement: SQLite serialises writers, so two senders never claim one row.
        let now = Utc::now();
        let sql = format!(
            "UPDATE notifications SET status = 'sending', lease_until = ?1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM notifications \
             WHERE (status = 'pending' AND next_attempt_at <= ?2) OR (status = 'sending' AND lease_until <= ?2) \
             ORDER BY next_attempt_at LIMIT ?3) \
             RETURNING {}",
            super::notifications::NOTIFICATION_COLUMNS
        );
        let rows = sqlx::query_as::<_, super::notifications::NotificationRow>(AssertSqlSafe(sql))
            .bind(time_text(later(now, lease)))
            .bind(time_text(now))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(super::notifications::NotificationRow::into_record).collect()
    }

    async fn finish_notification(&self, id: &str, outcome: &super::NotificationOutcome) -> Result<(), StoreError> {
        let (status, next, error, sent_at) = super::notifications::outcome_columns(outcome, Utc::now());
        sqlx::query(
            "UPDATE notifications SET status = ?, next_attempt_at = ?, last_error = ?, sent_at = ?, lease_until = NULL \
             WHERE id = ? AND status = 'sending'",
        )
        .bind(status.as_str())
        .bind(time_text(next))
        .bind(error)
        .bind(sent_at.map(time_text))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn job_notifications(&self, job: &JobId) -> Result<Vec<super::Notification>, StoreError> {
        let sql = format!(
            "SELECT {} FROM notifications WHERE job_id = ? ORDER BY created_at, id",
            super::notifications::NOTIFICATION_COLUMNS
        );
        let rows = sqlx::query_as::<_, super::notifications::NotificationRow>(AssertSqlSafe(sql))
            .bind(job.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(super::notifications::NotificationRow::into_record).collect()
    }

    async fn purge_job(&self, id: &JobId) -> Result<bool, StoreError> {
        // Its events, upload, notifications and batch lines go with it (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM jobs WHERE id = ?").bind(id.as_str()).execute(&self.pool).await?;
        // secure_delete zeroed the freed cells; the write-ahead log still holds
        // older copies of those pages until it is checkpointed and emptied.
        let (busy, _, _): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await?;
        if busy != 0 {
            tracing::warn!(job_id = %id, "the write-ahead log was busy; older copies leave it at the next checkpoint");
        }
        Ok(deleted.rows_affected() > 0)
    }

    async fn keys_used_elsewhere(&self, except: &JobId, keys: &[String]) -> Result<Vec<String>, StoreError> {
        let mut used = Vec::new();
        for key in keys {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM jobs WHERE id <> ? AND instr(manifest, ?) > 0 LIMIT 1")
                    .bind(except.as_str())
                    .bind(super::quoted(key))
                    .fetch_optional(&self.pool)
                    .await?;
            if found.is_some() {
                used.push(key.clone());
            }
        }
        Ok(used)
    }

    async fn list_batches(&self) -> Result<Vec<(super::BatchRecord, Vec<(u32, JobId)>)>, StoreError> {
        super::collect_batches(&self.pool).await
    }
}
