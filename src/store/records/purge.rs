//! Purging a job for good (`DELETE /v1/jobs/{id}/purge`): every row about
//! it, and the cache objects no other job names.

use async_trait::async_trait;
use sqlx::AssertSqlSafe;

use super::dialect::{Dialect, dialect_of};
use super::{Records, StoreError, db_run, json};
use crate::domain::JobId;

/// What the purge asks of the store.
#[async_trait]
pub trait Purge: Send + Sync + 'static {
    /// Erases a job and everything recorded about it (events, upload,
    /// notifications, batch lines) so that no copy stays in the store's files
    /// where the store allows (SQLite overwrites deleted content and empties
    /// its write-ahead log). False when there was no such job.
    async fn purge_job(&self, id: &JobId) -> Result<bool, StoreError>;
    /// Those of `keys` that the manifest of some job other than `except` names:
    /// cache objects still in use.
    async fn keys_used_elsewhere(&self, except: &JobId, keys: &[String]) -> Result<Vec<String>, StoreError>;
}

#[async_trait]
impl Purge for Records {
    async fn purge_job(&self, id: &JobId) -> Result<bool, StoreError> {
        // Its events, upload, notifications and batch lines go with it (ON DELETE CASCADE).
        let deleted = db_run!(self, pool => {
            let deleted = sqlx::query("DELETE FROM jobs WHERE id = $1").bind(id.as_str()).execute(pool).await?;
            if !pool.forget_deleted().await? {
                tracing::warn!(job_id = %id, "the write-ahead log was busy; older copies leave it at the next checkpoint");
            }
            deleted.rows_affected()
        });
        Ok(deleted > 0)
    }

    async fn keys_used_elsewhere(&self, except: &JobId, keys: &[String]) -> Result<Vec<String>, StoreError> {
        let mut used = Vec::new();
        for key in keys {
            let found: Option<i64> = db_run!(self, pool => {
                let sql = format!(
                    "SELECT CAST(1 AS BIGINT) FROM jobs WHERE id <> $1 AND {}(manifest, $2) > 0 LIMIT 1",
                    dialect_of(pool).position
                );
                sqlx::query_scalar(AssertSqlSafe(sql)).bind(except.as_str()).bind(quoted(key)).fetch_optional(pool).await?
            });
            if found.is_some() {
                used.push(key.clone());
            }
        }
        Ok(used)
    }
}

/// How a manifest names an object key: as a JSON string. Searching manifests
/// for the quoted key finds exactly that key, never one it is a prefix of.
fn quoted(key: &str) -> String {
    json(&key)
}
