//! `/v1/jobs/{id}/approve`, `/reject` and `/revise`: the review gate over
//! HTTP. The rules are the pipeline's ([`crate::pipeline::review`]); these
//! handlers read the body, name the reviewer and map the outcome to answers.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::read_body;
use super::jobs::{Accepted, JobView, parse_json};
use crate::domain::Revision;
use crate::error_code as codes;
use crate::pipeline::ReviewError;
use crate::store::records::ApiKeyRecord;

/// Largest body of a review request: a note, or a revision with a script.
const MAX_REVIEW_BYTES: usize = 256 * 1024;

/// Who decides, when the server runs without API keys.
pub const ANONYMOUS: &str = "anonymous";

/// The body of an approval.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Kept with the approval (at most 2000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The Direct Post choices of the person approving: required to approve
    /// the video of a job whose `post_mode` is `direct`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_post: Option<crate::domain::DirectPostRequest>,
}

/// The body of a rejection.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Required: what should change (at most 2000 characters).
    #[serde(default)]
    pub note: Option<String>,
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        let message = e.to_string();
        match e {
            ReviewError::NotFound(id) => ApiError::not_found(id.as_str()),
            ReviewError::NotInReview(_) | ReviewError::NotRevisable(_) | ReviewError::Moved { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.code(), message)
            }
            ReviewError::Note(detail) => ApiError::invalid_spec(vec![detail]),
            ReviewError::InvalidSpec(details) => ApiError::invalid_spec(details),
            ReviewError::NothingToRevise => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), message),
            ReviewError::Creator { code, .. } if code == codes::PUBLISH_NOT_CONFIGURED => {
                ApiError::new(StatusCode::NOT_FOUND, code, message)
            }
            ReviewError::Creator { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, codes::CREATOR_INFO_UNAVAILABLE, message)
            }
            ReviewError::Records(err) => ApiError::unavailable(codes::RECORDS_UNAVAILABLE, err),
            ReviewError::Queue(err) => ApiError::unavailable(codes::QUEUE_UNAVAILABLE, err),
        }
    }
}

/// The reviewer: the id of the request's API key, or [`ANONYMOUS`] when
/// keys are off.
fn reviewer(key: Option<&axum::Extension<ApiKeyRecord>>) -> String {
    key.map_or_else(|| ANONYMOUS.to_string(), |k| k.id.clone())
}

/// Reads a small JSON body that must be there (an account change).
pub(crate) async fn review_body_required<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let body = read_body(body, MAX_REVIEW_BYTES).await.map_err(|e| {
        e.into_api_error(codes::BODY_TOO_LARGE, || {
            "the body is larger than 256 KiB; this request is far smaller".into()
        })
    })?;
    parse_json(&body)
}

/// Reads a review body; an empty one is `{}`.
pub(crate) async fn review_body<T: serde::de::DeserializeOwned + Default>(body: Body) -> Result<T, ApiError> {
    let body = read_body(body, MAX_REVIEW_BYTES).await.map_err(|e| {
        e.into_api_error(codes::BODY_TOO_LARGE, || "the body is larger than 256 KiB; a review is far smaller".into())
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&body)
}

/// Approve a job waiting in review: it goes on with the next stage (render
/// after a script review, publish after a video review). The approval is kept
/// with who gave it and when. Sent twice, it acts once: the second gets 409.
#[utoipa::path(post, path = "/v1/jobs/{id}/approve", tag = "review", request_body = ApproveRequest,
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Approved and queued for the next stage", body = JobView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not `in_review` (`not_in_review`)", body = ErrorBody),
        (status = 422, description = "A note over 2000 characters, or a body of the wrong shape", body = ErrorBody),
        (status = 503, description = "Record store or queue unavailable", body = ErrorBody)))]
pub async fn approve(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    key: Option<axum::Extension<ApiKeyRecord>>,
    body: Body,
) -> Result<Json<JobView>, ApiError> {
    let request: ApproveRequest = review_body(body).await?;
    let job = state.find(&id).await?;
    let job = state.pipeline.approve(&job.id, &reviewer(key.as_ref()), request.note, request.direct_post).await?;
    Ok(Json(state.view(job, None)))
}

/// Send a job waiting in review back with a note saying what should change:
/// it waits in `changes_requested` for a revision (or a cancel).
#[utoipa::path(post, path = "/v1/jobs/{id}/reject", tag = "review", request_body = RejectRequest,
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Sent back: `changes_requested`", body = JobView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not `in_review` (`not_in_review`)", body = ErrorBody),
        (status = 422, description = "No note (`note_required`), or one over 2000 characters, in `details`",
         body = ErrorBody),
        (status = 503, description = "Record store unavailable", body = ErrorBody)))]
pub async fn reject(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    key: Option<axum::Extension<ApiKeyRecord>>,
    body: Body,
) -> Result<Json<JobView>, ApiError> {
    let request: RejectRequest = review_body(body).await?;
    let job = state.find(&id).await?;
    let note = request.note.unwrap_or_default();
    let job = state.pipeline.reject(&job.id, &reviewer(key.as_ref()), note).await?;
    Ok(Json(state.view(job, None)))
}

/// Change a job that was sent back (or is waiting in review) and run it
/// again from the earliest stage the change touches: a new script writes
/// everything again, a voice re-narrates, footage hints pick footage again,
/// captions and music only render again. The revised spec is checked like a
/// submission. It stops at its review points again.
#[utoipa::path(post, path = "/v1/jobs/{id}/revise", tag = "review", request_body = Revision,
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Queued again", body = Accepted),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not `changes_requested` or `in_review` (`not_revisable`)",
         body = ErrorBody),
        (status = 422, description = "The revised spec is invalid (per field in `details`), or it changes \
         nothing (`nothing_to_revise`)", body = ErrorBody),
        (status = 503, description = "Record store or queue unavailable", body = ErrorBody)))]
pub async fn revise(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    key: Option<axum::Extension<ApiKeyRecord>>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let changes: Revision = review_body(body).await?;
    let job = state.find(&id).await?;
    let job = state.pipeline.revise(&job.id, &reviewer(key.as_ref()), changes).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { job_id: job.id, state: job.state, duplicate: false })))
}
