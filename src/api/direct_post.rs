//! `GET /v1/jobs/{id}/creator`: what the studio's Direct Post composer shows
//! before a person approves a Direct Post job's video — who will post it (the
//! creator's nickname) and what TikTok lets them choose (privacy levels with
//! none preselected, which interactions the creator turned off, the longest
//! video they may post). The approval itself is `POST /v1/jobs/{id}/approve`
//! with `direct_post`; the rules are in [`crate::domain::DirectPostRequest`].

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use crate::domain::{JobId, PostMode};
use crate::error_code as codes;

/// The creator a Direct Post goes to, and the choices TikTok allows.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatorView {
    /// Our account id.
    pub account: String,
    pub creator_nickname: String,
    pub creator_username: String,
    /// The `privacy_level` values to choose from; the composer preselects none.
    pub privacy_level_options: Vec<String>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_video_post_duration_sec: Option<u32>,
    /// Whether the job used generated footage, so the AI-generated label
    /// is suggested (the person still decides).
    pub aigc_suggested: bool,
}

/// Who a Direct Post job's video goes to and what may be chosen for it.
#[utoipa::path(get, path = "/v1/jobs/{id}/creator", tag = "review",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, body = CreatorView),
        (status = 404, description = "No such job, or no TikTok settings", body = super::error::ErrorBody),
        (status = 409, description = "The job is not a Direct Post (`direct_post_not_asked`)",
         body = super::error::ErrorBody),
        (status = 503, description = "TikTok could not be asked (`creator_info_unavailable`)",
         body = super::error::ErrorBody)))]
pub async fn creator(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<CreatorView>, ApiError> {
    let job = state.find(&id).await?;
    Ok(Json(creator_of(&state, &job.id).await?))
}

/// [`creator`] for the job `id` (also what a reviewer link shows).
pub async fn creator_of(state: &ApiState, id: &JobId) -> Result<CreatorView, ApiError> {
    let job = state.find(id.as_str()).await?;
    let Some(account) = job.spec.account.clone().filter(|_| job.spec.post_mode == PostMode::Direct) else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            codes::DIRECT_POST_NOT_ASKED,
            "this job sends an inbox draft, not a Direct Post (post_mode is not `direct`)",
        ));
    };
    // Asked as the approval asks it, with the same refusals.
    let info = state.pipeline.creator_info(&job).await?;
    let aigc_suggested = job.manifest.footage.iter().flatten().any(|p| p.source.starts_with("runway"));
    Ok(CreatorView {
        account,
        creator_nickname: info.creator_nickname,
        creator_username: info.creator_username,
        privacy_level_options: info.privacy_level_options,
        comment_disabled: info.comment_disabled,
        duet_disabled: info.duet_disabled,
        stitch_disabled: info.stitch_disabled,
        max_video_post_duration_sec: info.max_video_post_duration_sec,
        aigc_suggested,
    })
}
