//! Uploads to YouTube and Instagram: one row per job and platform, saved
//! with the platform's session (YouTube's resumable session URI, sealed by
//! the caller; Instagram's container id) before the first byte is sent, so a
//! redelivered publish resumes or checks that upload and never starts a
//! second video or reel.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::{Records, StoreError, corrupt, db_run, now, parse_time};
use crate::domain::JobId;

/// How far a job's upload to one platform got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// The session (or container) exists; bytes may be partly sent.
    Started,
    /// Every byte is there; the platform is processing.
    Uploaded,
    /// The video or reel is on the platform (`remote_id` names it).
    Published,
    /// The platform gave up on this session; the next try starts a new one.
    Failed,
}

impl TargetStatus {
    pub const ALL: [TargetStatus; 4] =
        [TargetStatus::Started, TargetStatus::Uploaded, TargetStatus::Published, TargetStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Started => "started",
            TargetStatus::Uploaded => "uploaded",
            TargetStatus::Published => "published",
            TargetStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for TargetStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TargetStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown upload status `{s}`"))
    }
}

/// One job's upload to one platform.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetUpload {
    pub job_id: JobId,
    /// `youtube` or `instagram`.
    pub platform: String,
    pub account_id: String,
    /// YouTube: the resumable session URI, sealed by the caller. Instagram:
    /// the container id.
    pub session: String,
    pub status: TargetStatus,
    /// The platform's id of the finished video or reel.
    pub remote_id: Option<String>,
    /// Set by the store at the first save of this session.
    pub created_at: DateTime<Utc>,
    /// Set by the store on every save.
    pub updated_at: DateTime<Utc>,
}

/// Where each job's uploads to YouTube and Instagram got to.
#[async_trait]
pub trait TargetUploadStore: Send + Sync + 'static {
    async fn target_upload(&self, job: &JobId, platform: &str) -> Result<Option<TargetUpload>, StoreError>;
    /// Insert or replace by (job, platform); `created_at` is kept while the
    /// session stays the same.
    async fn save_target_upload(&self, u: &TargetUpload) -> Result<(), StoreError>;
}

#[async_trait]
impl TargetUploadStore for Records {
    async fn target_upload(&self, job: &JobId, platform: &str) -> Result<Option<TargetUpload>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM target_uploads WHERE job_id = $1 AND platform = $2");
        let row: Option<Row> = db_run!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(job.as_str()).bind(platform).fetch_optional(pool).await?
        });
        row.map(Row::into_record).transpose()
    }

    async fn save_target_upload(&self, u: &TargetUpload) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query(
                "INSERT INTO target_uploads (job_id, platform, account_id, session, status, remote_id, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                 ON CONFLICT (job_id, platform) DO UPDATE SET account_id = excluded.account_id, \
                 session = excluded.session, status = excluded.status, remote_id = excluded.remote_id, \
                 updated_at = excluded.updated_at, \
                 created_at = CASE WHEN target_uploads.session = excluded.session \
                 THEN target_uploads.created_at ELSE excluded.created_at END",
            )
            .bind(u.job_id.as_str())
            .bind(&u.platform)
            .bind(&u.account_id)
            .bind(&u.session)
            .bind(u.status.as_str())
            .bind(&u.remote_id)
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

const COLUMNS: &str = "job_id, platform, account_id, session, status, remote_id, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
struct Row {
    job_id: String,
    platform: String,
    account_id: String,
    session: String,
    status: String,
    remote_id: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Row {
    fn into_record(self) -> Result<TargetUpload, StoreError> {
        Ok(TargetUpload {
            job_id: JobId::parse(&self.job_id).ok_or_else(|| corrupt("job id"))?,
            platform: self.platform,
            account_id: self.account_id,
            session: self.session,
            status: self.status.parse().map_err(corrupt)?,
            remote_id: self.remote_id,
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
        })
    }
}
