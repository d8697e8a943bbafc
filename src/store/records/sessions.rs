//! The studio's sign-in sessions, and the secrets every API process shares.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::keys::ApiKeyRecord;
use super::{KeyStore, Records, StoreError, db_run, now, parse_time, time_text};

/// One sign-in, as the store keeps it (the cookie's token only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub key_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What the studio asks of the store.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Records a session for key `key_id` whose cookie token hashes to `token_hash`.
    async fn create_session(
        &self,
        token_hash: &str,
        key_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<SessionRecord, StoreError>;
    /// The live session behind `token_hash` at `now`, with its key: None when
    /// there is none, or it expired, was signed out, or its key was revoked.
    async fn live_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(SessionRecord, ApiKeyRecord)>, StoreError>;
    /// Ends a session (sign-out). False when there was no live one.
    async fn end_session(&self, token_hash: &str) -> Result<bool, StoreError>;
    /// Deletes the sessions that expired or were ended before `before`; how many.
    async fn forget_ended_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// The shared secret called `name`: the one stored, or `candidate`, stored
    /// now, when none is. Every process that asks gets the same value.
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError>;
}

#[async_trait]
impl SessionStore for Records {
    async fn create_session(
        &self,
        token_hash: &str,
        key_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<SessionRecord, StoreError> {
        let created = Utc::now();
        db_run!(self, pool => {
            sqlx::query(
                "INSERT INTO studio_sessions (token_hash, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(key_id)
            .bind(time_text(created))
            .bind(time_text(expires_at))
            .execute(pool)
            .await?;
        });
        Ok(SessionRecord { key_id: key_id.into(), created_at: created, expires_at, revoked_at: None })
    }

    async fn live_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(SessionRecord, ApiKeyRecord)>, StoreError> {
        let row: Option<SessionRow> = db_run!(self, pool => {
            sqlx::query_as(
                "SELECT s.key_id, s.created_at, s.expires_at, s.revoked_at, k.key_hash FROM studio_sessions s \
                 JOIN api_keys k ON k.id = s.key_id WHERE s.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else { return Ok(None) };
        let session = SessionRecord {
            created_at: parse_time(&row.created_at)?,
            expires_at: parse_time(&row.expires_at)?,
            revoked_at: row.revoked_at.as_deref().map(parse_time).transpose()?,
            key_id: row.key_id,
        };
        if session.revoked_at.is_some() || session.expires_at <= now {
            return Ok(None);
        }
        // The key is read again on every request, so revoking it ends its sessions at once.
        match self.api_key_by_hash(&row.key_hash).await? {
            Some(key) if key.revoked_at.is_none() => Ok(Some((session, key))),
            _ => Ok(None),
        }
    }

    async fn end_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        let ended = db_run!(self, pool => {
            sqlx::query("UPDATE studio_sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
                .bind(now())
                .bind(token_hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(ended == 1)
    }

    async fn forget_ended_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let gone = db_run!(self, pool => {
            sqlx::query("DELETE FROM studio_sessions WHERE expires_at < $1 OR revoked_at < $1")
                .bind(time_text(before))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(gone)
    }

    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let value: String = db_run!(self, pool => {
            sqlx::query(
                "INSERT INTO shared_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .bind(now())
            .execute(pool)
            .await?;
            sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = $1").bind(name).fetch_one(pool).await?
        });
        Ok(value)
    }
}

#[derive(Debug, sqlx::FromRow)]
struct SessionRow {
    key_id: String,
    created_at: String,
    expires_at: String,
    revoked_at: Option<String>,
    key_hash: String,
}
