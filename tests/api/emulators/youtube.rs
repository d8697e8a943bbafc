//! Google OAuth and the YouTube Data API's uploads (platforms spec §1),
//! stateful: codes are single use and tied to their redirect URI, access
//! tokens expire, a revoked grant refuses its refresh token with
//! `invalid_grant`, `videos.insert` costs quota (refused with the
//! `quotaExceeded` envelope when spent), and the resumable protocol is kept
//! byte for byte: a session URI in `Location`, chunks that are multiples of
//! 256 KiB (but the last), `Content-Range` that starts where the last one
//! ended, `308` with `Range: bytes=0-N` (no `Range` before the first byte)
//! for an unfinished upload and for the status query `bytes */TOTAL`, and
//! the video resource once the last byte is in. `videos.list` answers
//! `uploaded` for a few polls, then `processed`.

#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::serve;

pub const CLIENT_ID: &str = "yt-emulated-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "yt-emulated-secret-0123456789";
pub const CHANNEL_ID: &str = "UCemulatedChannel0000001";
pub const CHANNEL_TITLE: &str = "Clipforge Shorts";
const UNIT: usize = 256 * 1024;

/// A finished upload.
#[derive(Debug, Clone)]
pub struct Video {
    pub id: String,
    pub sha256: String,
    pub bytes: usize,
    pub resource: Value,
}

#[derive(Default)]
struct Session {
    total: usize,
    received: Vec<u8>,
    resource: Value,
    video: Option<String>,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, String>,
    /// access token → refresh token it came from
    access: HashMap<String, String>,
    refresh: Vec<String>,
    sessions: HashMap<String, Session>,
    videos: Vec<Video>,
    polls: HashMap<String, u32>,
    issued: Vec<String>,
}

pub struct YouTubeState {
    pub base: Mutex<String>,
    inner: Mutex<Inner>,
    seq: AtomicU64,
    /// `videos.insert` calls left today.
    pub quota: AtomicU32,
    pub insert_calls: AtomicU32,
    pub put_calls: AtomicU32,
    pub refresh_calls: AtomicU32,
    /// Polls a new video answers `uploaded` before `processed`.
    pub processing_polls: AtomicU32,
    /// Each chunk PUT is held this long before it is answered.
    pub put_delay_ms: AtomicU64,
}

pub struct YouTube {
    pub url: String,
    pub state: Arc<YouTubeState>,
}

impl YouTube {
    pub async fn start() -> YouTube {
        let state = Arc::new(YouTubeState {
            base: Mutex::new(String::new()),
            inner: Mutex::new(Inner::default()),
            seq: AtomicU64::new(0),
            quota: AtomicU32::new(100),
            insert_calls: AtomicU32::new(0),
            put_calls: AtomicU32::new(0),
            refresh_calls: AtomicU32::new(0),
            processing_polls: AtomicU32::new(1),
            put_delay_ms: AtomicU64::new(0),
        });
        let router = axum::Router::new()
            .route("/o/oauth2/v2/auth", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/youtube/v3/channels", get(channels))
            .route("/youtube/v3/videos", get(videos_list))
            .route("/upload/youtube/v3/videos", post(insert).put(put))
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(state.clone());
        let url = serve(router).await;
        *state.base.lock().unwrap() = url.clone();
        YouTube { url, state }
    }

    /// The settings that point clipforge here.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("CLIPFORGE__YOUTUBE__CLIENT_ID", CLIENT_ID.to_string()),
            ("CLIPFORGE__YOUTUBE__CLIENT_SECRET", CLIENT_SECRET.to_string()),
            ("CLIPFORGE__YOUTUBE__AUTH_URL", format!("{}/o/oauth2/v2/auth", self.url)),
            ("CLIPFORGE__YOUTUBE__TOKEN_URL", format!("{}/token", self.url)),
            ("CLIPFORGE__YOUTUBE__REVOKE_URL", format!("{}/revoke", self.url)),
            ("CLIPFORGE__YOUTUBE__API_URL", self.url.clone()),
            ("CLIPFORGE__YOUTUBE__UPLOAD_URL", self.url.clone()),
            ("CLIPFORGE__YOUTUBE__CHUNK_BYTES", (UNIT * 2).to_string()),
            ("CLIPFORGE__YOUTUBE__PROCESSING_POLL_MS", "50".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl YouTubeState {
    fn next(&self, prefix: &str) -> String {
        format!("{prefix}{}-{}", self.seq.fetch_add(1, Ordering::SeqCst), uuid::Uuid::now_v7().simple())
    }

    pub fn videos(&self) -> Vec<Video> {
        self.inner.lock().unwrap().videos.clone()
    }

    /// Sessions started (each a `videos.insert` that was not refused).
    pub fn sessions(&self) -> usize {
        self.inner.lock().unwrap().sessions.len()
    }

    /// Every token handed out, to look for in logs and records.
    pub fn secrets(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        let mut all = inner.issued.clone();
        all.extend(inner.sessions.keys().cloned());
        all
    }

    /// Grants not revoked.
    pub fn grants(&self) -> usize {
        self.inner.lock().unwrap().refresh.len()
    }
}

/// Google's error envelope.
fn api_error(status: StatusCode, reason: &str, domain: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}]}});
    (status, Json(body)).into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error, "error_description": description}))).into_response()
}

fn authorised(state: &YouTubeState, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if state.inner.lock().unwrap().access.contains_key(token) {
        Ok(())
    } else {
        Err(api_error(StatusCode::UNAUTHORIZED, "authError", "global", "Invalid Credentials"))
    }
}

async fn authorize(State(state): State<Arc<YouTubeState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return (StatusCode::BAD_REQUEST, "Error 401: invalid_client").into_response();
    }
    let (Some(redirect), Some(st)) = (q.get("redirect_uri"), q.get("state")) else {
        return (StatusCode::BAD_REQUEST, "Error 400: invalid_request").into_response();
    };
    let code = state.next("4/code-");
    let offline = q.get("access_type").map(String::as_str) == Some("offline");
    // PKCE: S256 (unpadded base64url SHA-256) or plain, `plain` when the method is left out.
    let challenge = match (q.get("code_challenge"), q.get("code_challenge_method").map(String::as_str)) {
        (None, _) => String::new(),
        (Some(c), Some("S256")) => format!("S256:{c}"),
        (Some(c), None | Some("plain")) => format!("plain:{c}"),
        _ => return (StatusCode::BAD_REQUEST, "Error 400: invalid_request (code_challenge_method)").into_response(),
    };
    state.inner.lock().unwrap().codes.insert(code.clone(), format!("{redirect}\n{offline}\n{challenge}"));
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let to = format!("{redirect}{sep}code={code}&state={st}&scope=youtube.upload");
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn token(State(state): State<Arc<YouTubeState>>, Form(f): Form<HashMap<String, String>>) -> Response {
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "Unauthorized"})),
        )
            .into_response();
    }
    let mut inner = state.inner.lock().unwrap();
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(kept) = f.get("code").and_then(|c| inner.codes.remove(c)) else {
                return oauth_error("invalid_grant", "Malformed auth code.");
            };
            let mut parts = kept.splitn(3, '\n');
            let (redirect, offline, challenge) =
                (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or_default());
            if f.get("redirect_uri").map(String::as_str) != Some(redirect) {
                return oauth_error("redirect_uri_mismatch", "Bad Request");
            }
            if !challenge.is_empty() {
                use base64::Engine as _;
                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                let expected = match challenge.split_once(':').unwrap() {
                    ("S256", c) => {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
                            == c
                    }
                    (_, c) => verifier == c,
                };
                if !expected {
                    return oauth_error("invalid_grant", "Invalid code verifier.");
                }
            }
            let access = state.next("ya29.");
            let mut body = json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/youtube.upload"});
            let refresh = state.next("1//refresh-");
            if offline == "true" {
                body["refresh_token"] = json!(refresh);
                inner.refresh.push(refresh.clone());
                inner.issued.push(refresh.clone());
            }
            inner.access.insert(access.clone(), refresh);
            inner.issued.push(access);
            Json(body).into_response()
        }
        Some("refresh_token") => {
            state.refresh_calls.fetch_add(1, Ordering::SeqCst);
            let refresh = f.get("refresh_token").cloned().unwrap_or_default();
            if !inner.refresh.contains(&refresh) {
                return oauth_error("invalid_grant", "Token has been expired or revoked.");
            }
            let access = state.next("ya29.");
            inner.access.insert(access.clone(), refresh);
            inner.issued.push(access.clone());
            Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/youtube.upload"}))
            .into_response()
        }
        _ => oauth_error("unsupported_grant_type", "Invalid grant_type"),
    }
}

async fn revoke(State(state): State<Arc<YouTubeState>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let token = f.get("token").cloned().unwrap_or_default();
    let mut inner = state.inner.lock().unwrap();
    let Some(refresh) =
        inner.access.get(&token).cloned().or_else(|| inner.refresh.contains(&token).then(|| token.clone()))
    else {
        return oauth_error("invalid_token", "Token expired or revoked");
    };
    inner.refresh.retain(|r| *r != refresh);
    inner.access.retain(|_, r| *r != refresh);
    StatusCode::OK.into_response()
}

async fn channels(
    State(state): State<Arc<YouTubeState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = authorised(&state, &headers) {
        return e;
    }
    if q.get("mine").map(String::as_str) != Some("true") || q.get("part").is_none() {
        return api_error(StatusCode::BAD_REQUEST, "missingRequiredParameter", "global", "No filter selected.");
    }
    Json(json!({"kind": "youtube#channelListResponse",
        "items": [{"id": CHANNEL_ID, "snippet": {"title": CHANNEL_TITLE}}]}))
    .into_response()
}

/// Checks the video resource as `videos.insert` does.
fn check_resource(v: &Value) -> Result<(), Response> {
    let bad = |reason: &str, msg: &str| Err(api_error(StatusCode::BAD_REQUEST, reason, "youtube.video", msg));
    let title = v["snippet"]["title"].as_str().unwrap_or_default();
    if title.is_empty() || title.chars().count() > 100 || title.contains(['<', '>']) {
        return bad("invalidTitle", "Invalid video title.");
    }
    let description = v["snippet"]["description"].as_str().unwrap_or_default();
    if description.len() > 5000 || description.contains(['<', '>']) {
        return bad("invalidDescription", "Invalid video description.");
    }
    let tags: Vec<&str> =
        v["snippet"]["tags"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let cost: usize = tags.iter().map(|t| t.chars().count() + if t.contains(' ') { 2 } else { 0 }).sum::<usize>()
        + tags.len().saturating_sub(1);
    if cost > 500 {
        return bad("invalidTags", "Invalid video keywords.");
    }
    if !["private", "unlisted", "public"].contains(&v["status"]["privacyStatus"].as_str().unwrap_or("private")) {
        return bad("invalidVideoMetadata", "The request metadata is invalid.");
    }
    Ok(())
}

async fn insert(
    State(state): State<Arc<YouTubeState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(e) = authorised(&state, &headers) {
        return e;
    }
    state.insert_calls.fetch_add(1, Ordering::SeqCst);
    // Every call costs quota, even a refused one.
    let left = state.quota.load(Ordering::SeqCst);
    if left == 0 {
        return api_error(
            StatusCode::FORBIDDEN,
            "quotaExceeded",
            "youtube.quota",
            "The request cannot be completed because you have exceeded your quota.",
        );
    }
    state.quota.store(left - 1, Ordering::SeqCst);
    if q.get("uploadType").map(String::as_str) != Some("resumable") || q.get("part").is_none() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "global",
            "uploadType=resumable and part are required",
        );
    }
    let total: Option<usize> = headers.get("X-Upload-Content-Length").and_then(|v| v.to_str().ok()?.parse().ok());
    let kind = headers.get("X-Upload-Content-Type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (Some(total), true) = (total, kind.starts_with("video/") || kind == "application/octet-stream") else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "global",
            "X-Upload-Content-Length and -Type required",
        );
    };
    let Ok(resource) = serde_json::from_slice::<Value>(&body) else {
        return api_error(StatusCode::BAD_REQUEST, "parseError", "global", "Parse Error");
    };
    if let Err(e) = check_resource(&resource) {
        return e;
    }
    let id = state.next("upload-");
    state.inner.lock().unwrap().sessions.insert(id.clone(), Session { total, resource, ..Session::default() });
    let base = state.base.lock().unwrap().clone();
    let location = format!("{base}/upload/youtube/v3/videos?uploadType=resumable&part=snippet%2Cstatus&upload_id={id}");
    (StatusCode::OK, [(header::LOCATION, location)]).into_response()
}

/// `308 Resume Incomplete` with what is held (or the header override).
fn incomplete(received: usize, headers: &HeaderMap) -> Response {
    let mut res = if headers.get("X-GUploader-No-308").is_some_and(|v| v == "yes") {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().insert("X-HTTP-Status-Code-Override", "308".parse().unwrap());
        r
    } else {
        StatusCode::PERMANENT_REDIRECT.into_response()
    };
    if received > 0 {
        res.headers_mut().insert(header::RANGE, format!("bytes=0-{}", received - 1).parse().unwrap());
    }
    res
}

async fn put(
    State(state): State<Arc<YouTubeState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    state.put_calls.fetch_add(1, Ordering::SeqCst);
    let delay = state.put_delay_ms.load(Ordering::SeqCst);
    if delay > 0 && !body.is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let id = q.get("upload_id").cloned().unwrap_or_default();
    let range = headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut inner = state.inner.lock().unwrap();
    let Some(session) = inner.sessions.get_mut(&id) else {
        return api_error(StatusCode::NOT_FOUND, "notFound", "global", "Upload session not found");
    };
    if let Some(video) = &session.video {
        let video = video.clone();
        let resource = inner.videos.iter().find(|v| v.id == video).map(|v| v.resource.clone()).unwrap();
        return (StatusCode::OK, Json(resource)).into_response();
    }
    let Some(spec) = range.strip_prefix("bytes ") else {
        return api_error(StatusCode::BAD_REQUEST, "badContent", "global", "Content-Range required");
    };
    let (span, total) = spec.split_once('/').unwrap_or(("", ""));
    if total.parse::<usize>().ok() != Some(session.total) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "badContent",
            "global",
            "Content-Range total differs from the session's",
        );
    }
    if span == "*" {
        if !body.is_empty() {
            return api_error(StatusCode::BAD_REQUEST, "badContent", "global", "a status query has no body");
        }
        return incomplete(session.received.len(), &headers);
    }
    let Some((start, end)) =
        span.split_once('-').and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
    else {
        return api_error(StatusCode::BAD_REQUEST, "badContent", "global", "unreadable Content-Range");
    };
    let len = body.len();
    if start != session.received.len() || end + 1 != start + len || end >= session.total {
        return api_error(
            StatusCode::BAD_REQUEST,
            "badContent",
            "global",
            "Content-Range does not continue the upload",
        );
    }
    let last = end + 1 == session.total;
    if !last && len % UNIT != 0 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "badContent",
            "global",
            "chunk size must be a multiple of 262144 bytes",
        );
    }
    session.received.extend_from_slice(&body);
    if !last {
        return incomplete(session.received.len(), &headers);
    }
    let video_id = format!("vid{}", state.seq.fetch_add(1, Ordering::SeqCst));
    let mut resource = session.resource.clone();
    resource["id"] = json!(video_id);
    resource["kind"] = json!("youtube#video");
    resource["status"]["uploadStatus"] = json!("uploaded");
    let sha256 = hex::encode(Sha256::digest(&session.received));
    let bytes = session.received.len();
    session.video = Some(video_id.clone());
    inner.videos.push(Video { id: video_id, sha256, bytes, resource: resource.clone() });
    (StatusCode::CREATED, Json(resource)).into_response()
}

async fn videos_list(
    State(state): State<Arc<YouTubeState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = authorised(&state, &headers) {
        return e;
    }
    let id = q.get("id").cloned().unwrap_or_default();
    let mut inner = state.inner.lock().unwrap();
    let Some(mut resource) = inner.videos.iter().find(|v| v.id == id).map(|v| v.resource.clone()) else {
        return Json(json!({"items": []})).into_response();
    };
    let polls = inner.polls.entry(id).or_default();
    *polls += 1;
    let done = *polls > state.processing_polls.load(Ordering::SeqCst);
    resource["status"]["uploadStatus"] = json!(if done { "processed" } else { "uploaded" });
    resource["processingDetails"] = json!({"processingStatus": if done { "succeeded" } else { "processing" }});
    Json(json!({"items": [resource]})).into_response()
}
