//! `/v1/media`: the team's own images, clips and audio — uploaded as the
//! request body, or fetched once from a URL behind the webhook address
//! guard — and the check a submission makes of the media a job names.
//!
//! An item is refused before anything is stored: over `uploads.max_mb` while
//! it arrives, not a format we take by its first bytes, not readable by
//! ffprobe as that format, or over `uploads.max_secs`/`max_dimension`. Its
//! file goes to the object store first and its row last; a row that cannot be
//! written takes its file away again, so nothing is left half-stored.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use crate::domain::{FieldError, JobSpec, MediaId, MediaKind, media_key};
use crate::error_code as codes;
use crate::media::fetch::{CappedWrite, FetchError, FetchRules, fetch_to, origin_of, write_capped};
use crate::media::library::{self, MediaLimits, MediaRefusal};
use crate::notify::webhook::PrivateAccess;
use crate::store::objects::ObjectKey;
use crate::store::records::MediaRecord;

/// One media item as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaView {
    pub id: String,
    pub kind: MediaKind,
    pub name: String,
    /// What the content is, e.g. `image/png` (from its bytes, not its name).
    pub content_type: String,
    pub bytes: u64,
    /// Clips and audio, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// `upload`, or the scheme and host it was fetched from.
    pub origin: String,
    pub created_at: DateTime<Utc>,
}

impl From<MediaRecord> for MediaView {
    fn from(m: MediaRecord) -> Self {
        Self {
            id: m.id.to_string(),
            kind: m.kind,
            name: m.name,
            content_type: m.content_type,
            bytes: m.bytes,
            duration_s: m.duration_s,
            width: m.width,
            height: m.height,
            origin: m.origin,
            created_at: m.created_at,
        }
    }
}

/// A page of media, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaList {
    pub media: Vec<MediaView>,
    /// Pass as `before` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Media fetched from a URL instead of sent as the body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaFromUrl {
    /// An http(s) URL on a public address; fetched once.
    pub url: String,
    /// A label for lists; default: the kind.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// A label for lists (at most 120 characters); default: the kind.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListMediaQuery {
    /// Page size, 1-200 (default 50).
    pub limit: Option<u32>,
    /// Only media uploaded before this media id (the `next` of the previous page).
    pub before: Option<String>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::MEDIA_NOT_FOUND,
        format!("no media with id `{}`", crate::domain::echo(id)),
    )
}

fn records_down(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e)
}

/// Upload an image, a clip or an audio file.
///
/// Send the file itself as the body (any `Content-Type`: the content decides
/// what it is), or `Content-Type: application/json` with `{"url": …}` to have
/// it fetched once.
#[utoipa::path(post, path = "/v1/media", tag = "media", params(UploadQuery),
    request_body(content = MediaFromUrl, description = "The file's bytes, or JSON naming a URL"),
    responses(
        (status = 201, description = "Stored", body = MediaView),
        (status = 413, description = "Larger than `uploads.max_mb` (`media_too_large`)", body = ErrorBody),
        (status = 415, description = "Not an image, clip or audio format we take (`media_unsupported`)", body = ErrorBody),
        (status = 422, description = "Unreadable (`media_unreadable`), over the limits (`media_over_limits`), \
         or a URL that may not be fetched (`media_url_refused`)", body = ErrorBody),
        (status = 502, description = "The URL gave no file (`media_fetch_failed`)", body = ErrorBody),
        (status = 503, description = "A store is unavailable", body = ErrorBody)))]
pub async fn upload(
    State(state): State<ApiState>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<MediaView>), ApiError> {
    let p = &state.pipeline;
    let rules = &p.config.uploads;
    let root = &p.config.scratch_root;
    // The scratch root is made on the first upload (or when someone removed it), not on every one.
    let scratch = match tempfile::tempdir_in(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tokio::fs::create_dir_all(root).await.and_then(|()| tempfile::tempdir_in(root))
        }
        other => other,
    }
    .map_err(|e| ApiError::unavailable(codes::SCRATCH_UNAVAILABLE, e))?;
    let file = scratch.path().join("upload");
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::MEDIA_TOO_LARGE,
            format!("the file is larger than {} MiB (uploads.max_mb)", rules.max_mb),
        )
    };
    let (name, origin) = if is_json {
        let raw = super::extract::read_body(body, 16 * 1024)
            .await
            .map_err(|e| e.into_api_error(codes::BODY_TOO_LARGE, || "a URL request is at most 16 KiB".into()))?;
        let req: MediaFromUrl = super::jobs::parse_json(&raw)?;
        let url = reqwest::Url::parse(&req.url).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, codes::MEDIA_URL_REFUSED, format!("url is not a URL: {e}"))
        })?;
        let fetch = FetchRules {
            private: PrivateAccess::all_or_none(rules.allow_private_urls, "uploads.allow_private_urls"),
            max_bytes: rules.max_bytes(),
            timeout: rules.fetch_timeout(),
            max_redirects: rules.max_redirects,
        };
        fetch_to(url.as_str(), &fetch, &file).await.map_err(|e| match e {
            FetchError::Refused { message, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::MEDIA_URL_REFUSED,
                format!("url refused: {message}"),
            ),
            FetchError::TooManyRedirects { max } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::MEDIA_URL_REFUSED,
                format!("url refused: more than {max} redirects (uploads.max_redirects)"),
            ),
            FetchError::TooLarge { .. } => too_large(),
            FetchError::TimedOut { after } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                codes::MEDIA_FETCH_FAILED,
                format!(
                    "url gave no file: the fetch took longer than {} s (uploads.fetch_timeout_secs)",
                    after.as_secs()
                ),
            ),
            FetchError::Failed(m) => {
                ApiError::new(StatusCode::BAD_GATEWAY, codes::MEDIA_FETCH_FAILED, format!("url gave no file: {m}"))
            }
        })?;
        (req.name, origin_of(&url))
    } else {
        if headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > rules.max_bytes())
        {
            return Err(too_large());
        }
        write_capped(body.into_data_stream(), &file, rules.max_bytes()).await.map_err(|e| match e {
            CappedWrite::TooLarge => too_large(),
            CappedWrite::Read(m) => ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::BODY_UNREADABLE,
                format!("the body could not be read: {}", crate::domain::clip(&m)),
            ),
            CappedWrite::Write(e) => ApiError::unavailable(codes::SCRATCH_UNAVAILABLE, e),
        })?;
        (q.name, "upload".to_string())
    };

    let mut head = [0u8; 16];
    let n = read_head(&file, &mut head).await.map_err(|e| ApiError::unavailable(codes::SCRATCH_UNAVAILABLE, e))?;
    let Some(sniffed) = library::sniff(&head[..n]) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::MEDIA_UNSUPPORTED,
            "the file is not an image, clip or audio format clipforge takes (PNG, JPEG, WebP; MP4, MOV, WebM; \
             WAV, MP3, M4A, OGG, FLAC)",
        ));
    };
    let unreadable = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, codes::MEDIA_UNREADABLE, m);
    let report = crate::media::ffprobe::probe(&p.tools.ffprobe, &file)
        .await
        .map_err(|_| unreadable(format!("ffprobe could not read the file as {}", sniffed.content_type)))?;
    let limits = MediaLimits { max_secs: rules.max_secs, max_dimension: rules.max_dimension };
    let facts = library::check(sniffed, &report, limits).map_err(|refusal| match refusal {
        MediaRefusal::Unreadable(m) => unreadable(m),
        MediaRefusal::OverLimits(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, codes::MEDIA_OVER_LIMITS, m),
    })?;

    let id = MediaId::new();
    let key = ObjectKey::parse(&media_key(&id, facts.ext))
        .map_err(|e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e))?;
    let bytes =
        p.objects.put_file(&key, &file).await.map_err(|e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e))?;
    let record = MediaRecord {
        id,
        kind: facts.kind,
        name: library::label(name.as_deref(), facts.kind),
        content_type: facts.content_type.to_string(),
        object_key: key.to_string(),
        bytes,
        duration_s: facts.duration_s,
        width: facts.width,
        height: facts.height,
        origin,
        created_at: Utc::now(),
    };
    if let Err(e) = p.records.insert_media(&record).await {
        // Nothing half-stored: a file no row names is taken away again.
        if let Err(gone) = p.objects.delete(&key).await {
            tracing::warn!(key = %key, error = %gone, "could not remove an upload whose row was not written");
        }
        return Err(records_down(e));
    }
    tracing::info!(media_id = %record.id, kind = record.kind.as_str(), bytes, "media stored");
    Ok((StatusCode::CREATED, Json(record.into())))
}

async fn read_head(path: &std::path::Path, buf: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path).await?;
    let mut n = 0;
    while n < buf.len() {
        let got = f.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// The team's media, newest first.
#[utoipa::path(get, path = "/v1/media", tag = "media", params(ListMediaQuery),
    responses((status = 200, body = MediaList), (status = 400, body = ErrorBody)))]
pub async fn list(State(state): State<ApiState>, Query(q): Query<ListMediaQuery>) -> Result<Json<MediaList>, ApiError> {
    let bad = |msg: String| ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_QUERY, msg);
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad(format!("limit is {limit}; allowed 1-200")));
    }
    let before = match q.before.as_deref() {
        None => None,
        Some(raw) => Some(MediaId::parse(raw).ok_or_else(|| bad("before must be a media id".into()))?),
    };
    let items = state.pipeline.records.list_media(limit, before.as_ref()).await.map_err(records_down)?;
    let next = (items.len() == limit as usize).then(|| items.last().map(|m| m.id.to_string())).flatten();
    Ok(Json(MediaList { media: items.into_iter().map(MediaView::from).collect(), next }))
}

async fn find(state: &ApiState, raw: &str) -> Result<MediaRecord, ApiError> {
    let id = MediaId::parse(raw).ok_or_else(|| not_found(raw))?;
    state.pipeline.records.media(&id).await.map_err(records_down)?.ok_or_else(|| not_found(raw))
}

/// One media item.
#[utoipa::path(get, path = "/v1/media/{id}", tag = "media",
    params(("id" = String, Path, description = "Media id")),
    responses((status = 200, body = MediaView), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<MediaView>, ApiError> {
    Ok(Json(find(&state, &id).await?.into()))
}

/// Delete a media item: its file, then its row. Jobs already rendered keep
/// their videos; a job still to render that names it fails with `media_unknown`.
#[utoipa::path(delete, path = "/v1/media/{id}", tag = "media",
    params(("id" = String, Path, description = "Media id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete(State(state): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let item = find(&state, &id).await?;
    let p = &state.pipeline;
    // The file first: a delete that stops halfway leaves the row, and deleting again finishes it.
    let key =
        ObjectKey::parse(&item.object_key).map_err(|e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e))?;
    p.objects.delete(&key).await.map_err(|e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e))?;
    p.records.delete_media(&item.id).await.map_err(records_down)?;
    tracing::info!(media_id = %item.id, "media deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks that every media item `spec` names exists and can play the part
/// it is named for: 422 `invalid_spec` with a `media_unknown` or
/// `media_wrong_kind` detail naming each field.
pub async fn check_job_media(state: &ApiState, spec: &JobSpec) -> Result<(), ApiError> {
    let Some(media) = &spec.media else { return Ok(()) };
    let refs = media.references();
    let mut ids: Vec<MediaId> = refs.iter().map(|(_, id, _)| (*id).clone()).collect();
    ids.sort();
    ids.dedup();
    let known = state.pipeline.records.media_among(&ids).await.map_err(records_down)?;
    let mut problems = Vec::new();
    for (field, id, role) in refs {
        match known.iter().find(|m| &m.id == id) {
            None => problems.push(FieldError::new(
                &field,
                codes::MEDIA_UNKNOWN,
                format!("no media with id `{id}`; upload it first (POST /v1/media)"),
            )),
            Some(item) if !role.accepts(item.kind) => problems.push(FieldError::new(
                &field,
                codes::MEDIA_WRONG_KIND,
                format!("media `{id}` is {} ({}); this place takes {}", item.kind.as_str(), item.name, role.wants()),
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ApiError::invalid_spec(problems)) }
}
