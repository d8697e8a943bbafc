//! `/v1/jobs`: submit, follow, list, retry and cancel jobs.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Query, read_body};
use super::intake::IntakeError;
pub use super::views::{Accepted, JobPage, JobView, NotificationView, Outputs, ReviewView, VideoView};
use crate::domain::{FieldError, JobId, JobRequest, JobSpec, JobState};
use crate::error_code as codes;
use crate::store::records::{ApiKeyRecord, Created, JobFilter, Transition};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<u32>,
    /// Only jobs created before this job id (the `next` of the previous page).
    pub before: Option<String>,
    /// Only jobs whose request contains this text (any field, ASCII case ignored; at most 200 characters).
    pub q: Option<String>,
}

/// Largest `POST /v1/jobs` body, in bytes: far above any valid spec (a
/// script is at most `limits.max_script_chars`).
pub const MAX_JOB_BYTES: usize = 2 * 1024 * 1024;

/// Parses a submission body: bad JSON is 400, a JSON body of the wrong shape
/// (an unknown field, a field given twice, a wrong type) 422.
pub fn parse_request(body: &[u8]) -> Result<JobRequest, ApiError> {
    parse_json(body)
}

/// Parses a JSON body of type `T`, with the answers of [`parse_request`]:
/// bad JSON is 400, the wrong shape 422 with a `body` detail.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<T>(body).map_err(|e| {
        use serde_json::error::Category;
        let shown = crate::domain::clip(&e.to_string());
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::MALFORMED_JSON,
                format!("the body is not valid JSON: {shown}"),
            ),
            Category::Data => ApiError::invalid_spec(vec![FieldError {
                field: "body".into(),
                code: codes::WRONG_SHAPE.as_str().into(),
                message: shown,
            }]),
        }
    })
}

/// Submit a job.
#[utoipa::path(post, path = "/v1/jobs", request_body = JobRequest, tag = "jobs",
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 200, description = "Same idempotency key and spec as an earlier job: that job", body = Accepted),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 408, description = "The body stalled (server.body_timeout_secs)", body = ErrorBody),
        (status = 409, description = "Idempotency key used for a different spec", body = ErrorBody),
        (status = 413, description = "Body over 2 MiB", body = ErrorBody),
        (status = 422, description = "Invalid spec: one entry per problem in `details` (control characters in \
         text, an `idempotency_key` starting with `batch:`, a key given twice, …)", body = ErrorBody),
        (status = 503, description = "Record store or queue unavailable", body = ErrorBody)))]
pub async fn create_job(
    State(state): State<ApiState>,
    key: Option<axum::Extension<ApiKeyRecord>>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(body, MAX_JOB_BYTES).await.map_err(|e| {
        e.into_api_error(codes::BODY_TOO_LARGE, || "the body is larger than 2 MiB; a job spec is far smaller".into())
    })?;
    let request = parse_request(&body)?;
    let mut spec = JobSpec::parse_submission(request, &state.limits).map_err(ApiError::invalid_spec)?;
    super::voices::check_job_voice(&state, &spec).await?;
    super::media::check_job_media(&state, &spec).await?;
    if let Some(targets) = super::auth::key_targets(key.as_ref()) {
        spec.adopt_targets(targets);
    }
    if let Some(account) = &spec.account {
        super::accounts::check_job_account(&state, account, spec.post_mode).await?;
    }
    super::accounts::check_job_targets(&state, &spec).await?;
    let created = state.intake.submit(spec).await.map_err(|e| match e {
        IntakeError::Queue(e) => ApiError::unavailable(codes::QUEUE_UNAVAILABLE, e),
        e => ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e),
    })?;
    match created {
        // Stored and queued, both.
        Created::New(job) => {
            tracing::info!(job_id = %job.id, "job queued");
            let records = &state.pipeline.records;
            if let Err(e) = crate::notify::enqueue(records.as_ref(), &state.pipeline.config.notify, &job).await {
                tracing::warn!(job_id = %job.id, error = %e, "could not queue the job's notifications");
            }
            Ok((StatusCode::ACCEPTED, Json(Accepted { job_id: job.id, state: job.state, duplicate: false })))
        }
        Created::Existing(job) => {
            Ok((StatusCode::OK, Json(Accepted { job_id: job.id, state: job.state, duplicate: true })))
        }
        Created::KeyConflict(existing) => Err(ApiError::new(
            StatusCode::CONFLICT,
            codes::IDEMPOTENCY_KEY_REUSED,
            format!("idempotency key already used by job {existing} with a different spec"),
        )),
    }
}

/// A job with its state, progress, error, outputs and history.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get_job(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job = state.find(&id).await?;
    Ok(Json(state.full_view(job).await.map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?))
}

/// Jobs, newest first, optionally in one state.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobPage),
              (status = 400, description = "A bad `state`, `limit` or `before`, or an unknown parameter", body = ErrorBody)))]
pub async fn list_jobs(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> Result<Json<JobPage>, ApiError> {
    let bad = |msg: String| ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_QUERY, msg);
    let job_state = q.state.as_deref().map(str::parse::<JobState>).transpose().map_err(bad)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad(format!("limit is {limit}; allowed 1-200")));
    }
    let before = q
        .before
        .as_deref()
        .map(|b| JobId::parse(b).ok_or_else(|| bad(format!("before `{}` is not a job id", crate::domain::echo(b)))))
        .transpose()?;
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if let Some(t) = text.filter(|t| t.chars().count() > 200) {
        return Err(bad(format!("q is {} characters long; allowed at most 200", t.chars().count())));
    }
    let filter = JobFilter { state: job_state, limit: limit + 1, before, text: text.map(str::to_string) };
    let mut jobs = state
        .pipeline
        .records
        .list_jobs(&filter)
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let next = (jobs.len() > limit as usize).then(|| {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| j.id.clone())
    });
    Ok(Json(JobPage { jobs: jobs.into_iter().map(|j| state.view(j, None)).collect(), next: next.flatten() }))
}

/// Download the staged video: a redirect to a signed link valid for
/// `storage.presign_secs` (S3/R2), or the file itself (local store).
#[utoipa::path(get, path = "/v1/jobs/{id}/video", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 307, description = "Redirect to a signed download link"),
              (status = 200, description = "The MP4 (local store)", content_type = "video/mp4"),
              (status = 404, body = ErrorBody), (status = 410, description = "Expired", body = ErrorBody)))]
pub async fn video(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let job = state.find(&id).await?;
    send_video(&state, job, &headers).await
}

/// Answers with a job's staged video: a redirect to a signed link, or the
/// local file with range requests (`Range`, `If-Range`, 206), so a player can
/// seek without downloading it all.
pub(crate) async fn send_video(
    state: &ApiState,
    job: crate::store::records::JobRecord,
    headers: &axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header;
    use tower::ServiceExt;
    // A job waiting for its video's review has a render but no staged video yet:
    // the reviewer watches the render.
    let in_review = job.state == JobState::InReview;
    let (key, expires_at) = match (&job.manifest.video, &job.manifest.render) {
        (Some(video), _) => (video.key.clone(), Some(video.expires_at)),
        (None, Some(render)) if in_review => (render.key.clone(), None),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::NO_VIDEO,
                format!("job is {}; it has no staged video", job.state),
            ));
        }
    };
    let objects = &state.pipeline.objects;
    let key = crate::store::objects::ObjectKey::parse(&key)
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let unavailable = |e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e);
    if objects.size(&key).await.map_err(unavailable)?.is_none() {
        let message = match expires_at {
            Some(at) => format!("the staged video expired at {at}"),
            None => "the rendered video is gone from the work area; retry the job to render it again".to_string(),
        };
        return Err(ApiError::new(StatusCode::GONE, codes::VIDEO_EXPIRED, message));
    }
    if let Some(url) = objects.presigned_get(&key, state.presign_ttl).await.map_err(unavailable)? {
        // The signed link is a credential: it goes into this header and nowhere else.
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, url), (header::CACHE_CONTROL, "no-store".into())],
        )
            .into_response());
    }
    let path = objects
        .local_path(&key)
        .ok_or_else(|| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, "no way to read the video"))?;
    // tower-http's ServeFile answers ranges, conditional requests and HEAD.
    let mut request = axum::http::Request::new(axum::body::Body::empty());
    for name in [header::RANGE, header::IF_RANGE, header::IF_MODIFIED_SINCE, header::IF_UNMODIFIED_SINCE] {
        if let Some(value) = headers.get(&name) {
            request.headers_mut().insert(name, value.clone());
        }
    }
    let served = tower_http::services::ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(|e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e))?;
    if served.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, "the staged file could not be read"));
    }
    Ok(served.map(axum::body::Body::new))
}

/// Retry a failed job from the stage that failed, reusing what earlier stages
/// produced; or queue again a stuck job (in flight by its records, with no
/// worker on it and no queued task for longer than the orphan window), as
/// the reconciler would.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202, body = Accepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry_job(State(state): State<ApiState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let job = state.find(&id).await?;
    let Some(stage) = job.error().map(|e| e.stage) else {
        let stuck = state
            .pipeline
            .requeue_if_stuck(&job.id)
            .await
            .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
        if let Some(stage) = stuck {
            tracing::info!(job_id = %job.id, stage = %stage, "stuck job queued again on request");
            return Ok((
                StatusCode::ACCEPTED,
                Json(Accepted { job_id: job.id, state: JobState::Queued, duplicate: false }),
            ));
        }
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            codes::NOT_FAILED,
            format!(
                "job is {}; only failed jobs, and jobs stuck in flight with no worker on them, can be retried",
                job.state
            ),
        ));
    };
    let records = &state.pipeline.records;
    let unavailable = |e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e);
    let requeued =
        Transition::new(&[JobState::Failed], JobState::Queued).stage(stage).note(format!("retry from {stage}"));
    if !records.transition(&job.id, requeued).await.map_err(unavailable)? {
        return Err(ApiError::new(StatusCode::CONFLICT, codes::NOT_FAILED, "the job changed state meanwhile"));
    }
    if let Err(e) = state.pipeline.queues.enqueue(stage, &job.id).await {
        // Put the job back as it was, so the retry can be asked for again.
        let restore = Transition::new(&[JobState::Queued], JobState::Failed)
            .stage(stage)
            .error(job.error().cloned().expect("checked above"))
            .note("retry could not be queued");
        let _ = records.transition(&job.id, restore).await;
        return Err(ApiError::unavailable(codes::QUEUE_UNAVAILABLE, e));
    }
    tracing::info!(job_id = %job.id, stage = %stage, "job retried");
    // Announced like a new job (when queued events are wanted): a retry is
    // queued again. Nothing if a worker has taken it on already.
    state.pipeline.notify(&job.id, JobState::Queued).await;
    Ok((StatusCode::ACCEPTED, Json(Accepted { job_id: job.id, state: JobState::Queued, duplicate: false })))
}

/// Cancel a job that has not finished; a running stage stops within a second or so.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_job(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job = state.find(&id).await?;
    let from: Vec<JobState> = JobState::ALL.into_iter().filter(|s| !s.is_terminal()).collect();
    let records = &state.pipeline.records;
    let cancelled = records
        .transition(&job.id, Transition::new(&from, JobState::Cancelled).note("cancelled on request"))
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    if !cancelled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            codes::ALREADY_FINISHED,
            format!("job is {}; nothing to cancel", job.state),
        ));
    }
    tracing::info!(job_id = %job.id, "job cancelled");
    let job = state.find(&id).await?;
    Ok(Json(state.view(job, None)))
}
