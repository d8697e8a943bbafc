//! What the API shows of a job: the JSON views built from its record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use crate::domain::{
    Costs, JobError, JobEvent, JobId, JobRequest, JobSpec, JobState, Manifest, ReviewDecision, ReviewPoint, Stage,
};
use crate::error_code as codes;
use crate::store::records::{JobRecord, StoreError};

/// The answer to a submission.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub job_id: JobId,
    pub state: JobState,
    /// True when the idempotency key matched an earlier job, which is returned instead.
    pub duplicate: bool,
}

/// A staged video as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VideoView {
    pub key: String,
    pub bytes: u64,
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    /// When the staged file is deleted.
    pub expires_at: DateTime<Utc>,
    /// Where the file is on the server's disk (local store only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// API path that downloads the video (redirects to a short-lived signed
    /// link on S3/R2, streams the file from a local store).
    pub download: String,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Outputs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoView>,
}

/// A job as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: JobId,
    pub state: JobState,
    /// The stage the job is in or last was in.
    pub stage: Option<Stage>,
    /// 0-100 within `stage`.
    pub progress: u8,
    pub error: Option<JobError>,
    /// What to do about `error`, from the catalogue of error codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_hint: Option<String>,
    /// Why a `waiting` job waits (which limit, or the account to reconnect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// When a `waiting` job tries again; absent while it waits for a reconnect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    pub outputs: Outputs,
    /// What the job's provider calls and render cost so far.
    pub costs: Costs,
    pub spec: JobRequest,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The full history; only on `GET /v1/jobs/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<JobEvent>>,
    /// What each stage produced; only on `GET /v1/jobs/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// The job's Telegram messages and webhook events and how their delivery
    /// went; only on `GET /v1/jobs/{id}`. Targets are not shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<NotificationView>>,
    /// The review gate: what the job asks for, where it waits, what was decided.
    #[serde(default)]
    pub review: ReviewView,
    /// How its TikTok post did: the post id once TikTok tells it (or why
    /// nothing is measured yet) and the latest counts; only on
    /// `GET /v1/jobs/{id}`, for a job that went to TikTok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<super::performance::PerformanceSummary>,
}

/// A job's review gate as the API shows it.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    /// Where the job stops for review: `none`, `script`, `video` or `both` —
    /// its own `review`, else the team default (`review.default`).
    #[schema(example = "video")]
    pub asked: String,
    /// The point the job waits at (`in_review`) or was sent back at
    /// (`changes_requested`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_at: Option<ReviewPoint>,
    /// Every decision, oldest first; approvals a revision made void are gone.
    pub decisions: Vec<ReviewDecision>,
}

/// One notification about a job, as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    /// `telegram` or `webhook`.
    pub channel: String,
    /// `queued`, `staged`, `in_inbox`, `failed`, `waiting` or `needs_reconnect`.
    pub event: String,
    /// `pending`, `sending`, `sent` or `undeliverable`.
    pub status: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next: Option<JobId>,
}

impl ApiState {
    pub(super) fn view(&self, job: JobRecord, events: Option<Vec<JobEvent>>) -> JobView {
        let video = job.manifest.video.as_ref().map(|v| VideoView {
            key: v.key.clone(),
            bytes: v.bytes,
            duration_s: v.duration_s,
            width: v.width,
            height: v.height,
            expires_at: v.expires_at,
            download: format!("/v1/jobs/{}/video", job.id),
            path: crate::store::objects::ObjectKey::parse(&v.key)
                .ok()
                .and_then(|k| self.pipeline.objects.local_path(&k))
                .map(|p| p.display().to_string()),
        });
        let stage = job.last_event.stage.or(job.progress_stage);
        let with_manifest = events.is_some();
        let review = ReviewView {
            asked: job.spec.review.unwrap_or(self.pipeline.config.review_default).as_str().to_string(),
            waiting_at: crate::pipeline::review::waiting_point(&job),
            decisions: job.manifest.reviews.clone(),
        };
        JobView {
            id: job.id.clone(),
            state: job.state,
            stage,
            progress: job.progress,
            error: job.error().cloned(),
            error_hint: job.error().and_then(|e| crate::error_code::find(&e.code)).map(|c| c.hint.to_string()),
            waiting: (job.state == JobState::Waiting).then(|| job.last_event.note.clone()).flatten(),
            retry_at: (job.state == JobState::Waiting).then_some(job.last_event.retry_at).flatten(),
            outputs: Outputs { video },
            costs: job.manifest.costs.clone(),
            spec: shown_spec(&job.spec),
            created_at: job.created_at,
            updated_at: job.updated_at,
            events,
            manifest: with_manifest.then_some(job.manifest),
            notifications: None,
            review,
            performance: None,
        }
    }

    /// The job with its history, manifest and notifications, as
    /// `GET /v1/jobs/{id}` and the export show it.
    pub(super) async fn full_view(&self, job: JobRecord) -> Result<JobView, StoreError> {
        let records = &self.pipeline.records;
        let events = records.events(&job.id).await?;
        let notifications = records.job_notifications(&job.id).await?;
        let performance = super::performance::summary_of(self, &job).await?;
        let mut view = self.view(job, Some(events));
        view.performance = performance;
        view.notifications = Some(
            notifications
                .into_iter()
                .map(|n| NotificationView {
                    channel: n.channel.to_string(),
                    event: n.event,
                    status: n.status.as_str().to_string(),
                    attempts: n.attempts,
                    last_error: n.last_error,
                    sent_at: n.sent_at,
                })
                .collect(),
        );
        Ok(view)
    }

    /// A job with its history and manifest, for a reviewer link: no
    /// notifications (they name the team's channels).
    pub(crate) async fn reviewer_view(&self, id: &JobId) -> Result<JobView, ApiError> {
        let job = self.find(id.as_str()).await?;
        let events = self
            .pipeline
            .records
            .events(&job.id)
            .await
            .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
        Ok(self.view(job, Some(events)))
    }

    pub(crate) async fn find(&self, id: &str) -> Result<JobRecord, ApiError> {
        let parsed = JobId::parse(id).ok_or_else(|| ApiError::not_found(id))?;
        self.pipeline
            .records
            .job(&parsed)
            .await
            .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?
            .ok_or_else(|| ApiError::not_found(id))
    }
}

/// The spec as answers show it: a webhook URL only as its scheme and host,
/// since such URLs often carry their credential.
fn shown_spec(spec: &JobSpec) -> JobRequest {
    let mut req = spec.to_request();
    if let Some(url) = req.notify.as_mut().and_then(|n| n.webhook_url.as_mut()) {
        *url = crate::crypto::redact_url(url);
    }
    req
}
