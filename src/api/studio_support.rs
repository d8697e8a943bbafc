//! Routes the studio's pages need beyond jobs, batches and accounts: hearing
//! a voice before choosing it, what the system runs on, and reviewer links.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::domain::{FieldError, JobState, Voice};
use crate::error_code as codes;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceSampleRequest {
    /// A voice of the configured narrator; absent for its default.
    pub voice: Option<String>,
    /// What to say: the first sentence of the script, 1-300 characters.
    pub text: String,
}

/// Narrates a short text in a voice, as a WAV file. Kept for clients of the
/// first studio; `POST /v1/voices/{id}/preview` is the same with the voice
/// in the path and a sentence of its own language by default.
#[utoipa::path(post, path = "/v1/voices/preview", tag = "studio", request_body = VoiceSampleRequest,
    responses((status = 200, description = "The sample", content_type = "audio/wav"),
              (status = 422, body = ErrorBody)))]
pub async fn voice_preview(
    State(state): State<ApiState>,
    Json(req): Json<VoiceSampleRequest>,
) -> Result<Response, ApiError> {
    let narrator = &state.pipeline.providers.voice;
    let voice = match req.voice.as_deref().map(Voice::parse).transpose() {
        Ok(v) => v.unwrap_or_else(|| narrator.default_voice()),
        Err(bad) => {
            return Err(ApiError::invalid_spec(vec![FieldError::new(
                "voice",
                codes::VOICE_INVALID,
                format!("`{}` is not a voice name", crate::domain::echo(&bad)),
            )]));
        }
    };
    super::voices::speak_sample(&state, &voice, &req.text).await
}

/// One part of the system, as the studio's system page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemPart {
    pub name: &'static str,
    /// What is configured (an engine, a provider type); never a secret.
    pub configured: String,
    /// Whether it answered just now; absent when not checked.
    pub healthy: Option<bool>,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemView {
    pub checked_at: DateTime<Utc>,
    pub parts: Vec<SystemPart>,
}

/// Which stores and providers this server uses and whether the stores answer.
#[utoipa::path(get, path = "/v1/system", tag = "studio", responses((status = 200, body = SystemView)))]
pub async fn system(State(state): State<ApiState>) -> Json<SystemView> {
    let p = &state.pipeline;
    let checked = |name, configured: String, result: Result<(), String>| SystemPart {
        name,
        configured,
        healthy: Some(result.is_ok()),
        detail: result.err(),
    };
    let plain = |name, configured: String| SystemPart { name, configured, healthy: None, detail: None };
    let records = p.records.ping().await.map_err(|e| e.to_string());
    let queue = p.queues.ping().await.map_err(|e| e.to_string());
    let parts = vec![
        checked("records", p.records.engine().to_string(), records),
        checked("queue", p.queues.describe().to_string(), queue),
        plain("objects", p.objects.describe()),
        plain("script", p.providers.script.name().to_string()),
        plain("voice", p.providers.voice.name().to_string()),
        plain("footage", p.providers.footage.name().to_string()),
        plain("tiktok", if p.tiktok.is_some() { "configured" } else { "not configured" }.to_string()),
    ];
    Json(SystemView { checked_at: Utc::now(), parts })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewLink {
    /// The link to send: opens this job's review page, without a key.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// Makes a reviewer link for a job waiting for review: signed, for this job
/// only, valid for `auth.review_link_hours`.
#[utoipa::path(post, path = "/v1/jobs/{id}/review-link", tag = "review",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 201, body = ReviewLink), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn review_link(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ReviewLink>), ApiError> {
    let job = state.find(&id).await?;
    if job.state != JobState::InReview {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            codes::NOT_IN_REVIEW,
            format!("job is {}; reviewer links are for jobs waiting for review", job.state),
        ));
    }
    let secret = state
        .studio
        .link_secret(state.pipeline.records.as_ref())
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let expires_at = Utc::now() + chrono::Duration::from_std(state.studio.link_ttl).unwrap_or_default();
    let token = crate::studio::links::sign(secret, &job.id, expires_at);
    tracing::info!(job_id = %job.id, %expires_at, "reviewer link made");
    let url = format!("{}/r/{token}", state.studio.public_url);
    Ok((StatusCode::CREATED, Json(ReviewLink { url, expires_at: crate::studio::links::whole_seconds(expires_at) })))
}
