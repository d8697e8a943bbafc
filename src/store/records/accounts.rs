//! TikTok accounts, their sealed tokens and inbox uploads, as the record store
//! keeps them; and the rows both dialects map them from.
//!
//! The store never sees a token or an upload URL in clear: the caller seals
//! them before saving and opens them after loading.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StoreError, corrupt, parse, parse_time};
use crate::domain::JobId;

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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a completed OAuth consent gives: the profile and the first tokens.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub open_id: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub scopes: String,
    pub tokens: SealedTokens,
}

/// How far an inbox upload got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// TikTok gave a publish_id and an upload URL; bytes may be partly sent.
    Initialised,
    /// Every chunk was sent; TikTok is processing.
    Uploaded,
    /// The draft is in the creator's inbox.
    InInbox,
    /// TikTok gave up on it (or its URL expired); a retry starts a new upload.
    Failed,
}

impl UploadStatus {
    pub const ALL: [UploadStatus; 4] =
        [UploadStatus::Initialised, UploadStatus::Uploaded, UploadStatus::InInbox, UploadStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Initialised => "initialised",
            UploadStatus::Uploaded => "uploaded",
            UploadStatus::InInbox => "in_inbox",
            UploadStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for UploadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UploadStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UploadStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let allowed: Vec<_> = UploadStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown upload status `{s}`; one of {}", allowed.join(", "))
        })
    }
}

/// One TikTok inbox upload of a job. Recorded (with publish_id) before the
/// first byte is sent, so a retried publish resumes or checks it instead of
/// starting a second draft.
#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub job_id: JobId,
    pub account_id: String,
    pub publish_id: String,
    /// Sealed by the caller (it carries the upload_token).
    pub upload_url: Option<String>,
    pub video_size: u64,
    pub chunk_size: u64,
    pub status: UploadStatus,
    /// Set by the store when this publish_id is first saved (the upload URL's
    /// birth, near enough); what the caller puts here is ignored.
    pub created_at: DateTime<Utc>,
    /// Set by the store on every save.
    pub updated_at: DateTime<Utc>,
}

/// A job in `waiting`, for the waker.
#[derive(Debug, Clone)]
pub struct WaitingJob {
    pub id: JobId,
    /// The account the job publishes to (`spec.account`: our id or an open_id).
    pub account: Option<String>,
    /// When the waiting event said to try again; None: as soon as its account is connected.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The account columns, in [`AccountRow`]'s order; the same in both dialects.
pub(super) const ACCOUNT_COLUMNS: &str = "id, open_id, display_name, avatar_url, scopes, status, access_token, \
     refresh_token, access_expires_at, refresh_expires_at, token_version, created_at, updated_at";

/// The upload columns, in [`UploadRow`]'s order.
pub(super) const UPLOAD_COLUMNS: &str =
    "job_id, account_id, publish_id, upload_url, video_size, chunk_size, status, created_at, updated_at";

/// Waiting jobs with their account and the retry time of their latest event; no parameters.
pub(super) const WAITING_SELECT: &str = "SELECT j.id, j.account, e.retry_at \
     FROM jobs j JOIN job_events e ON e.id = (SELECT MAX(id) FROM job_events WHERE job_id = j.id) \
     WHERE e.state = 'waiting' ORDER BY j.id";

/// One account row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AccountRow {
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
    created_at: String,
    updated_at: String,
}

impl AccountRow {
    pub(super) fn into_record(self) -> Result<AccountRecord, StoreError> {
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
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
        })
    }
}

/// One upload row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UploadRow {
    job_id: String,
    account_id: String,
    publish_id: String,
    upload_url: Option<String>,
    video_size: i64,
    chunk_size: i64,
    status: String,
    created_at: String,
    updated_at: String,
}

impl UploadRow {
    pub(super) fn into_record(self) -> Result<UploadRecord, StoreError> {
        Ok(UploadRecord {
            job_id: JobId::parse(&self.job_id).ok_or_else(|| corrupt("job id"))?,
            account_id: self.account_id,
            publish_id: self.publish_id,
            upload_url: self.upload_url,
            video_size: u64::try_from(self.video_size).map_err(corrupt)?,
            chunk_size: u64::try_from(self.chunk_size).map_err(corrupt)?,
            status: parse(&self.status)?,
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
        })
    }
}

/// One row of [`WAITING_SELECT`].
#[derive(Debug, sqlx::FromRow)]
pub(super) struct WaitingRow {
    id: String,
    account: Option<String>,
    retry_at: Option<String>,
}

impl WaitingRow {
    pub(super) fn into_waiting(self) -> Result<WaitingJob, StoreError> {
        Ok(WaitingJob {
            id: JobId::parse(&self.id).ok_or_else(|| corrupt("job id"))?,
            account: self.account,
            retry_at: self.retry_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

/// A byte count as the databases store it (signed 64-bit; no video comes near the limit).
pub(super) fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
