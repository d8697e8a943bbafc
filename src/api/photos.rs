//! `GET /p/{job}/{n}.jpg`: a photo post's stills, open to anyone who has the
//! URL, because TikTok's PULL_FROM_URL downloads them without credentials
//! from the verified prefix `tiktok.photo_url_prefix` names. Only a job
//! whose manifest lists photo `n` is answered; its id (a UUIDv7, 74 random
//! bits) is the only secret, and the stills are what the creator posts.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use crate::domain::{JobId, OutputFormat};
use crate::error_code as codes;
use crate::store::objects::ObjectKey;

/// One still of a photo post, as image/jpeg.
#[utoipa::path(get, path = "/p/{job}/{file}", tag = "jobs",
    params(("job" = String, Path, description = "Job id"), ("file" = String, Path, description = "`{n}.jpg`, n from 1")),
    responses((status = 200, description = "The JPEG", content_type = "image/jpeg"),
        (status = 404, description = "No such photo (`photo_not_found`)", body = super::error::ErrorBody)))]
pub async fn photo(
    State(state): State<ApiState>,
    Path((job, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, codes::PHOTO_NOT_FOUND, "no such photo");
    let n: usize = file.strip_suffix(".jpg").and_then(|n| n.parse().ok()).filter(|n| *n >= 1).ok_or_else(not_found)?;
    let id = JobId::parse(&job).ok_or_else(not_found)?;
    let record = state
        .pipeline
        .records
        .job(&id)
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?
        .filter(|j| j.spec.format == OutputFormat::Photos)
        .ok_or_else(not_found)?;
    let photo = record.manifest.photos.get(n - 1).ok_or_else(not_found)?;
    let key = ObjectKey::parse(&photo.key).map_err(|_| not_found())?;
    let bytes = state
        .pipeline
        .objects
        .get_bytes(&key)
        .await
        .map_err(|e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e))?
        .ok_or_else(not_found)?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "public, max-age=3600")], bytes).into_response())
}
