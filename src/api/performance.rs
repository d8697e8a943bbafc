//! `/v1/jobs/{id}/performance` and `/v1/performance`: how each TikTok post
//! did (see [`crate::performance`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use crate::domain::JobId;
use crate::error_code as codes;
use crate::performance::report::{self, GroupBy, GroupTotals};
use crate::store::records::{AccountTotals, JobRecord, Sample, StoreError};

/// One sample of a post's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SampleView {
    pub sampled_at: DateTime<Utc>,
    pub views: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
}

impl From<&Sample> for SampleView {
    fn from(s: &Sample) -> Self {
        Self { sampled_at: s.sampled_at, views: s.views, likes: s.likes, comments: s.comments, shares: s.shares }
    }
}

/// A job's TikTok post and its counts over time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobPerformance {
    pub job_id: JobId,
    /// The account the video went to; absent when it went to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The public post's id once TikTok told it; null until then (never guessed).
    pub post_id: Option<String>,
    /// Why nothing (or nothing more) is measured, in plain words; absent while samples are taken as planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When TikTok is next asked; absent when it will not be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_sample_at: Option<DateTime<Utc>>,
    /// Every sample, newest first.
    pub samples: Vec<SampleView>,
}

/// What `GET /v1/jobs/{id}` shows of a TikTok post's performance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PerformanceSummary {
    pub post_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The newest sample, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<SampleView>,
    /// How many samples there are (`GET /v1/jobs/{id}/performance` lists them).
    pub samples: u32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GroupQuery {
    /// `topic`, `style` (caption preset), `voice` or `account` (default).
    pub group_by: Option<String>,
    /// Only posts that went up at or after this RFC 3339 time.
    pub since: Option<String>,
}

/// The latest totals of one account (`user.info.stats`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountTotalsView {
    pub account: String,
    pub sampled_at: DateTime<Utc>,
    pub followers: u64,
    pub following: u64,
    pub likes: u64,
    pub videos: u64,
}

impl From<AccountTotals> for AccountTotalsView {
    fn from(t: AccountTotals) -> Self {
        Self {
            account: t.account_id,
            sampled_at: t.sampled_at,
            followers: t.followers,
            following: t.following,
            likes: t.likes,
            videos: t.videos,
        }
    }
}

/// Posts grouped, each counted by its latest sample.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PerformanceReport {
    pub group_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Most viewed first.
    pub groups: Vec<GroupTotals>,
    /// Each account's latest totals, when its grant allows `user.info.stats`.
    pub accounts: Vec<AccountTotalsView>,
}

/// A job's TikTok post: its id once TikTok tells it, and its counts over time.
#[utoipa::path(get, path = "/v1/jobs/{id}/performance", tag = "performance",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobPerformance), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn job_performance(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<JobPerformance>, ApiError> {
    let job = state.find(&id).await?;
    let unavailable = |e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e);
    let samples = state.pipeline.records.samples(&job.id).await.map_err(unavailable)?;
    Ok(Json(performance_of(&state, &job, samples).await.map_err(unavailable)?))
}

/// The performance of `job` with its `samples` (newest first).
pub(crate) async fn performance_of(
    state: &ApiState,
    job: &JobRecord,
    samples: Vec<Sample>,
) -> Result<JobPerformance, StoreError> {
    let records = &state.pipeline.records;
    let Some(draft) = &job.manifest.tiktok else {
        let note = match &job.spec.account {
            Some(_) => "the video has not reached TikTok yet; there is nothing to measure",
            None => "the job names no TikTok account; there is nothing to measure",
        };
        return Ok(JobPerformance {
            job_id: job.id.clone(),
            account: job.spec.account.clone(),
            post_id: None,
            note: Some(note.into()),
            next_sample_at: None,
            samples: Vec::new(),
        });
    };
    let tracked = records.tracked_post(&job.id).await?;
    let post_id = tracked.as_ref().and_then(|p| p.post_id.clone()).or_else(|| draft.post_id.clone());
    let account = match &tracked {
        Some(p) => p.account_id.clone(),
        None => draft.account.clone(),
    };
    let can_list =
        records.account(&account).await?.is_none_or(|a| a.scopes.split(',').any(|s| s.trim() == "video.list"));
    Ok(JobPerformance {
        job_id: job.id.clone(),
        account: Some(account),
        note: report::note(tracked.as_ref(), post_id.as_deref(), can_list),
        post_id,
        next_sample_at: tracked.and_then(|p| p.next_due_at),
        samples: samples.iter().map(SampleView::from).collect(),
    })
}

/// What `GET /v1/jobs/{id}` shows: None for a job that went to no TikTok account.
pub(crate) async fn summary_of(state: &ApiState, job: &JobRecord) -> Result<Option<PerformanceSummary>, StoreError> {
    if job.manifest.tiktok.is_none() {
        return Ok(None);
    }
    let samples = state.pipeline.records.samples(&job.id).await?;
    let p = performance_of(state, job, samples).await?;
    Ok(Some(PerformanceSummary {
        post_id: p.post_id,
        note: p.note,
        latest: p.samples.first().cloned(),
        samples: p.samples.len() as u32,
    }))
}

/// Posts grouped by topic, style, voice or account, each counted by its
/// latest sample; and each account's latest totals.
#[utoipa::path(get, path = "/v1/performance", tag = "performance", params(GroupQuery),
    responses((status = 200, body = PerformanceReport),
              (status = 422, description = "`group_by_invalid` or `since_invalid`, naming what is allowed", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn grouped(
    State(state): State<ApiState>,
    Query(q): Query<GroupQuery>,
) -> Result<Json<PerformanceReport>, ApiError> {
    let (by, since) = parse_query(&q)?;
    Ok(Json(report_of(&state, by, since).await.map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?))
}

/// Reads `group_by` (default `account`) and `since`; a bad one is 422 naming what is allowed.
pub(crate) fn parse_query(q: &GroupQuery) -> Result<(GroupBy, Option<DateTime<Utc>>), ApiError> {
    let by = match q.group_by.as_deref() {
        None => GroupBy::Account,
        Some(s) => GroupBy::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::GROUP_BY_INVALID,
                format!("group_by is `{}`; allowed: {}", crate::domain::echo(s), GroupBy::allowed()),
            )
        })?,
    };
    let since = match q.since.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::SINCE_INVALID,
                format!(
                    "since is `{}`; allowed: an RFC 3339 time with its offset, e.g. 2026-03-01T00:00:00Z",
                    crate::domain::echo(s)
                ),
            )
        })?),
    };
    Ok((by, since))
}

/// The grouped report as `GET /v1/performance` and the studio show it.
pub(crate) async fn report_of(
    state: &ApiState,
    by: GroupBy,
    since: Option<DateTime<Utc>>,
) -> Result<PerformanceReport, StoreError> {
    let records = &state.pipeline.records;
    let rows = records.latest_samples(since.unwrap_or(DateTime::UNIX_EPOCH)).await?;
    let mut accounts: Vec<AccountTotalsView> = Vec::new();
    for t in records.account_totals().await? {
        if !accounts.iter().any(|a| a.account == t.account_id) {
            accounts.push(t.into());
        }
    }
    accounts.sort_by(|a, b| a.account.cmp(&b.account));
    Ok(PerformanceReport { group_by: by.as_str().to_string(), since, groups: report::group(&rows, by), accounts })
}
