//! TikTok inbox uploads: recorded, with their publish_id, before the first
//! byte is sent, so a retried publish resumes or checks the upload instead of
//! starting a second draft.
//!
//! The store never sees an upload URL in clear: the caller seals it (it
//! carries the upload_token) before saving.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::{Records, StoreError, corrupt, db_run, now, parse, parse_time};
use crate::domain::JobId;

/// How far an inbox upload got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// TikTok gave a publish_id and an upload URL; bytes may be partly sent.
    Initialised,
    /// Every chunk was sent; TikTok is processing.
    Uploaded,
    /// The draft is in the creator's inbox.
    InInbox,
    /// The Direct Post is published (TikTok said `PUBLISH_COMPLETE`).
    Published,
    /// TikTok gave up on it (or its URL expired); a retry starts a new upload.
    Failed,
}

impl UploadStatus {
    pub const ALL: [UploadStatus; 5] = [
        UploadStatus::Initialised,
        UploadStatus::Uploaded,
        UploadStatus::InInbox,
        UploadStatus::Published,
        UploadStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Initialised => "initialised",
            UploadStatus::Uploaded => "uploaded",
            UploadStatus::InInbox => "in_inbox",
            UploadStatus::Published => "published",
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

/// Where each job's inbox upload got to.
#[async_trait]
pub trait UploadStore: Send + Sync + 'static {
    async fn upload(&self, job: &JobId) -> Result<Option<UploadRecord>, StoreError>;
    /// Insert or replace by job_id. The store sets the times: `updated_at` to
    /// now, `created_at` to now unless the row already holds the same
    /// publish_id, whose first save it keeps (so it dates the upload URL).
    async fn save_upload(&self, u: &UploadRecord) -> Result<(), StoreError>;
}

#[async_trait]
impl UploadStore for Records {
    async fn upload(&self, job: &JobId) -> Result<Option<UploadRecord>, StoreError> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM tiktok_uploads WHERE job_id = $1");
        let row: Option<UploadRow> = db_run!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(job.as_str()).fetch_optional(pool).await?
        });
        row.map(UploadRow::into_record).transpose()
    }

    async fn save_upload(&self, u: &UploadRecord) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query(
                "INSERT INTO tiktok_uploads (job_id, account_id, publish_id, upload_url, video_size, chunk_size, \
                 status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (job_id) DO UPDATE SET account_id = excluded.account_id, \
                 publish_id = excluded.publish_id, upload_url = excluded.upload_url, \
                 video_size = excluded.video_size, chunk_size = excluded.chunk_size, \
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
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

/// The upload columns, in [`UploadRow`]'s order.
const UPLOAD_COLUMNS: &str =
    "job_id, account_id, publish_id, upload_url, video_size, chunk_size, status, created_at, updated_at";

/// One upload row.
#[derive(Debug, sqlx::FromRow)]
struct UploadRow {
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
    fn into_record(self) -> Result<UploadRecord, StoreError> {
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

/// A byte count as the databases store it (signed 64-bit; no video comes near the limit).
fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
