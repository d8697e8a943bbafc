//! What a reviewer link opens (see [`super::links`]): one job's page, its
//! view and its video, and approve or send back. Each route checks the link
//! first; nothing here takes a job id from anywhere but the signed token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::links::{self, ReviewGrant};
use super::pages;
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::error_code as codes;

/// The grant of `token`, or the refusal to answer.
async fn grant(state: &ApiState, token: &str) -> Result<ReviewGrant, ApiError> {
    let secret = state
        .studio
        .link_secret(state.pipeline.records.as_ref())
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    links::verify(secret, token, Utc::now())
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, codes::REVIEW_LINK_INVALID, e.to_string()))
}

/// `GET /r/{token}`: the review page.
pub async fn page(State(state): State<ApiState>, Path(token): Path<String>) -> Response {
    match grant(&state, &token).await {
        Ok(grant) => pages::reviewer(&token, &grant.job),
        Err(refusal) if refusal.code == codes::REVIEW_LINK_INVALID => pages::link_refused(&refusal.message),
        Err(other) => other.into_response(),
    }
}

/// `GET /r/{token}/job`: the job as `GET /v1/jobs/{id}` shows it, without its
/// notifications and without where its file lies.
pub async fn job(State(state): State<ApiState>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let grant = grant(&state, &token).await?;
    shown(&state, &token, &grant.job).await
}

/// The link's job as its holder sees it (see [`job`]).
async fn shown(state: &ApiState, token: &str, id: &crate::domain::JobId) -> Result<Response, ApiError> {
    let mut view = state.reviewer_view(id).await?;
    if let Some(video) = view.outputs.video.as_mut() {
        video.path = None;
        video.download = format!("/r/{token}/video");
    }
    Ok(Json(view).into_response())
}

/// `GET /r/{token}/video`: the job's staged video, with range requests.
pub async fn video(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let grant = grant(&state, &token).await?;
    let job = state.find(grant.job.as_str()).await?;
    crate::api::jobs::send_video(&state, job, &headers).await
}

/// `GET /r/{token}/creator`: the Direct Post composer's facts for the link's job.
pub async fn creator(State(state): State<ApiState>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let grant = grant(&state, &token).await?;
    Ok(Json(crate::api::direct_post::creator_of(&state, &grant.job).await?).into_response())
}

/// Who decided, as a reviewer link's decisions are recorded.
const BY_LINK: &str = "reviewer link";

/// `POST /r/{token}/approve`: approves the link's job, as `POST /v1/jobs/{id}/approve` does.
pub async fn approve(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let grant = grant(&state, &token).await?;
    let request: crate::api::review::ApproveRequest = crate::api::review::review_body(body).await?;
    state.pipeline.approve(&grant.job, BY_LINK, request.note, request.direct_post).await?;
    tracing::info!(job_id = %grant.job, "approved through a reviewer link");
    shown(&state, &token, &grant.job).await
}

/// `POST /r/{token}/reject`: sends the link's job back with a note.
pub async fn reject(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let grant = grant(&state, &token).await?;
    let request: crate::api::review::RejectRequest = crate::api::review::review_body(body).await?;
    state.pipeline.reject(&grant.job, BY_LINK, request.note.unwrap_or_default()).await?;
    tracing::info!(job_id = %grant.job, "sent back through a reviewer link");
    shown(&state, &token, &grant.job).await
}
