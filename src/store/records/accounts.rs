//! TikTok accounts, their sealed tokens and OAuth states.
//!
//! The store never sees a token in clear: the caller seals it before saving
//! and opens it after loading.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use super::{Records, StoreError, corrupt, db_run, earlier, later, now, parse, parse_time, time_text};

/// Whether an account can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Connected,
    /// TikTok refused its tokens; the creator must connect it again.
    NeedsReconnect,
    /// Its tokens were deleted on request.
    Disconnected,
}

impl AccountStatus {
    pub const ALL: [AccountStatus; 3] =
        [AccountStatus::Connected, AccountStatus::NeedsReconnect, AccountStatus::Disconnected];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Connected => "connected",
            AccountStatus::NeedsReconnect => "needs_reconnect",
            AccountStatus::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let allowed: Vec<_> = AccountStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown account status `{s}`; one of {}", allowed.join(", "))
        })
    }
}

/// Tokens as stored: `access` and `refresh` are already sealed (encrypted) by
/// the caller; the store never sees them in clear. The expiry times are kept to
/// the microsecond, like every time in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedTokens {
    pub access: String,
    pub refresh: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
}

/// A connected (or once connected) TikTok account.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    /// Our id: a UUIDv7 string made at first connect.
    pub id: String,
    /// TikTok's user id, unique.
    pub open_id: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    /// Granted scopes, comma-separated.
    pub scopes: String,
    pub status: AccountStatus,
    /// None once disconnected.
    pub tokens: Option<SealedTokens>,
    /// Bumped whenever the tokens change, so a worker can see that another refreshed them.
    pub token_version: i64,
    /// Whether jobs for this account may ask for a Direct Post (opt-in; off
    /// until an operator turns it on).
    pub direct_post: bool,
    /// `tiktok`, `youtube` or `instagram`.
    pub platform: String,
    /// YouTube: the privacy status its uploads get; None means the setting's.
    pub video_privacy: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a completed OAuth consent gives: the profile and the first tokens.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// `tiktok`, `youtube` or `instagram`; fixed at first connect.
    pub platform: String,
    pub open_id: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub scopes: String,
    pub tokens: SealedTokens,
}

/// Connected TikTok accounts and the OAuth consents under way.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Inserts the account, or (same open_id) updates its profile, scopes and
    /// tokens; either way status becomes connected, token_version is bumped and
    /// any refresh lock is cleared (a refresh still running used the old tokens,
    /// so what it gets must not overwrite the new ones).
    async fn upsert_account(&self, a: &NewAccount) -> Result<AccountRecord, StoreError>;
    /// By our id or by open_id.
    async fn account(&self, id_or_open_id: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account, oldest first.
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError>;
    /// Deletes the tokens: status disconnected, tokens NULL, version bumped. Also
    /// clears the refresh lock, so a refresh in flight cannot store tokens again.
    async fn forget_tokens(&self, id: &str) -> Result<(), StoreError>;
    /// Takes the account's refresh lock for `ttl` if it is free, expired, or
    /// already `owner`'s. One refresh at a time per account across all
    /// processes: TikTok rotates the refresh token, so racing refreshes lose one.
    async fn lock_refresh(&self, id: &str, owner: &str, ttl: std::time::Duration) -> Result<bool, StoreError>;
    /// If `owner` still holds the lock (expired or not, as long as nobody took it
    /// over): stores `tokens` (when Some: tokens replaced, version bumped, status
    /// connected) and releases the lock, in one statement, so the rotated refresh
    /// token is never lost. False if the lock was lost (nothing stored).
    async fn finish_refresh(&self, id: &str, owner: &str, tokens: Option<&SealedTokens>) -> Result<bool, StoreError>;
    /// OAuth `state` values (stored as a hash by the caller): single use, expiring.
    async fn put_oauth_state(&self, state_hash: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Deletes and returns the state's expiry (None if unknown or already used);
    /// the caller judges whether it has passed. Also deletes states expired more
    /// than a day ago, abandoned consents.
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// What TikTok's creator_info/query last said about the account's creator
    /// (as the caller serialised it) and when it was asked; None when never,
    /// or not since the account was last connected or disconnected.
    async fn creator_info(&self, id: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError>;
    /// Keeps a creator_info answer on the account row, so the jobs of the next
    /// few minutes need not spend TikTok's per-minute limit asking again.
    async fn save_creator_info(&self, id: &str, info: &str, fetched_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Turns Direct Post on or off for the account; false when there is no such account.
    async fn set_direct_post(&self, id: &str, allowed: bool) -> Result<bool, StoreError>;
    /// Sets the privacy status a YouTube account's uploads get (None: the
    /// setting's); false when there is no such account.
    async fn set_video_privacy(&self, id: &str, privacy: Option<&str>) -> Result<bool, StoreError>;
}

#[async_trait]
impl AccountStore for Records {
    async fn upsert_account(&self, a: &NewAccount) -> Result<AccountRecord, StoreError> {
        // ON CONFLICT makes two racing first connects of one TikTok user agree on one account.
        let sql = format!(
            "INSERT INTO accounts (id, open_id, display_name, avatar_url, scopes, status, access_token, refresh_token, \
             access_expires_at, refresh_expires_at, token_version, created_at, updated_at, platform) \
             VALUES ($1, $2, $3, $4, $5, 'connected', $6, $7, $8, $9, 1, $10, $10, $11) \
             ON CONFLICT (open_id) DO UPDATE SET display_name = excluded.display_name, \
             avatar_url = excluded.avatar_url, scopes = excluded.scopes, status = 'connected', \
             access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
             access_expires_at = excluded.access_expires_at, refresh_expires_at = excluded.refresh_expires_at, \
             token_version = accounts.token_version + 1, refresh_lock_owner = NULL, refresh_lock_until = NULL, \
             creator_info = NULL, creator_info_at = NULL, updated_at = excluded.updated_at \
             RETURNING {ACCOUNT_COLUMNS}"
        );
        let row: AccountRow = db_run!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&a.open_id)
                .bind(&a.display_name)
                .bind(&a.avatar_url)
                .bind(&a.scopes)
                .bind(&a.tokens.access)
                .bind(&a.tokens.refresh)
                .bind(time_text(a.tokens.access_expires_at))
                .bind(time_text(a.tokens.refresh_expires_at))
                .bind(now())
                .bind(&a.platform)
                .fetch_one(pool)
                .await?
        });
        row.into_record()
    }

    async fn account(&self, id_or_open_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 OR open_id = $1 ORDER BY (id = $1) DESC LIMIT 1"
        );
        let row: Option<AccountRow> = db_run!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id_or_open_id).fetch_optional(pool).await?
        });
        row.map(AccountRow::into_record).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, id");
        let rows: Vec<AccountRow> = db_run!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await?);
        rows.into_iter().map(AccountRow::into_record).collect()
    }

    async fn set_account_status(&self, id: &str, status: AccountStatus) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(now())
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn forget_tokens(&self, id: &str) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query(
                "UPDATE accounts SET status = 'disconnected', access_token = NULL, refresh_token = NULL, \
                 access_expires_at = NULL, refresh_expires_at = NULL, token_version = token_version + 1, \
                 refresh_lock_owner = NULL, refresh_lock_until = NULL, creator_info = NULL, creator_info_at = NULL, \
                 updated_at = $1 WHERE id = $2",
            )
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn lock_refresh(&self, id: &str, owner: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        // Racing UPDATEs of the row queue on its lock (SQLite: on the database's
        // write lock); each re-checks the WHERE against the winner's row, so
        // only one of them takes a free lock.
        let now = Utc::now();
        let taken = db_run!(self, pool => {
            sqlx::query(
                "UPDATE accounts SET refresh_lock_owner = $1, refresh_lock_until = $2 WHERE id = $3 \
                 AND (refresh_lock_owner IS NULL OR refresh_lock_until < $4 OR refresh_lock_owner = $1)",
            )
            .bind(owner)
            .bind(time_text(later(now, ttl)))
            .bind(id)
            .bind(time_text(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(taken == 1)
    }

    async fn finish_refresh(&self, id: &str, owner: &str, tokens: Option<&SealedTokens>) -> Result<bool, StoreError> {
        let done = db_run!(self, pool => {
            match tokens {
                Some(t) => sqlx::query(
                    "UPDATE accounts SET access_token = $1, refresh_token = $2, access_expires_at = $3, \
                     refresh_expires_at = $4, token_version = token_version + 1, status = 'connected', \
                     refresh_lock_owner = NULL, refresh_lock_until = NULL, updated_at = $5 \
                     WHERE id = $6 AND refresh_lock_owner = $7",
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
                     WHERE id = $1 AND refresh_lock_owner = $2",
                )
                .bind(id)
                .bind(owner),
            }
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    async fn put_oauth_state(&self, state_hash: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query(
                "INSERT INTO oauth_states (state_hash, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (state_hash) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(state_hash)
            .bind(time_text(expires_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let abandoned = time_text(earlier(Utc::now(), std::time::Duration::from_secs(24 * 3600)));
        let expires: Option<String> = db_run!(self, pool => {
            let expires = sqlx::query_scalar("DELETE FROM oauth_states WHERE state_hash = $1 RETURNING expires_at")
                .bind(state_hash)
                .fetch_optional(pool)
                .await?;
            sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1").bind(&abandoned).execute(pool).await?;
            expires
        });
        expires.as_deref().map(parse_time).transpose()
    }

    async fn creator_info(&self, id: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        let row: Option<(Option<String>, Option<String>)> = db_run!(self, pool => {
            sqlx::query_as("SELECT creator_info, creator_info_at FROM accounts WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some((Some(info), Some(at))) => Ok(Some((info, parse_time(&at)?))),
            _ => Ok(None),
        }
    }

    async fn save_creator_info(&self, id: &str, info: &str, fetched_at: DateTime<Utc>) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("UPDATE accounts SET creator_info = $1, creator_info_at = $2 WHERE id = $3")
                .bind(info)
                .bind(time_text(fetched_at))
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn set_direct_post(&self, id: &str, allowed: bool) -> Result<bool, StoreError> {
        let done = db_run!(self, pool => {
            sqlx::query("UPDATE accounts SET direct_post = $1, updated_at = $2 WHERE id = $3")
                .bind(i64::from(allowed))
                .bind(now())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    async fn set_video_privacy(&self, id: &str, privacy: Option<&str>) -> Result<bool, StoreError> {
        let done = db_run!(self, pool => {
            sqlx::query("UPDATE accounts SET video_privacy = $1, updated_at = $2 WHERE id = $3")
                .bind(privacy)
                .bind(now())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }
}

/// The account columns, in [`AccountRow`]'s order.
const ACCOUNT_COLUMNS: &str = "id, open_id, display_name, avatar_url, scopes, status, access_token, \
     refresh_token, access_expires_at, refresh_expires_at, token_version, direct_post, platform, video_privacy, \
     created_at, updated_at";

/// One account row.
#[derive(Debug, sqlx::FromRow)]
struct AccountRow {
    id: String,
    open_id: String,
    display_name: String,
    avatar_url: Option<String>,
    scopes: String,
    status: String,
    access_token: Option<String>,
    refresh_token: Option<String>,
    access_expires_at: Option<String>,
    refresh_expires_at: Option<String>,
    token_version: i64,
    direct_post: i64,
    platform: String,
    video_privacy: Option<String>,
    created_at: String,
    updated_at: String,
}

impl AccountRow {
    fn into_record(self) -> Result<AccountRecord, StoreError> {
        // The four token columns are written and cleared together.
        let tokens = match (self.access_token, self.refresh_token, self.access_expires_at, self.refresh_expires_at) {
            (Some(access), Some(refresh), Some(access_at), Some(refresh_at)) => Some(SealedTokens {
                access,
                refresh,
                access_expires_at: parse_time(&access_at)?,
                refresh_expires_at: parse_time(&refresh_at)?,
            }),
            (None, None, None, None) => None,
            _ => return Err(corrupt(format!("account {} has only some of its token columns", self.id))),
        };
        Ok(AccountRecord {
            id: self.id,
            open_id: self.open_id,
            display_name: self.display_name,
            avatar_url: self.avatar_url,
            scopes: self.scopes,
            status: parse(&self.status)?,
            tokens,
            token_version: self.token_version,
            direct_post: self.direct_post != 0,
            platform: self.platform,
            video_privacy: self.video_privacy,
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
        })
    }
}
