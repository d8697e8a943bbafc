//! The Instagram Platform with Instagram Login (platforms spec §2),
//! stateful: a code gives a short-lived token, exchanged for a long-lived
//! one (`ig_exchange_token`), refreshed with `ig_refresh_token`; expired or
//! revoked tokens get the OAuthException code 190. A REELS container fetches
//! its `video_url` (no redirects) when made, answers IN_PROGRESS for a few
//! polls, then FINISHED; `media_publish` refuses an unfinished container
//! (9007/2207027), an already published one, and a post over the account's
//! rolling 24 h limit (9/2207042), which `content_publishing_limit` reports.

#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::serve;

pub const APP_ID: &str = "990000000000001";
pub const APP_SECRET: &str = "ig-emulated-app-secret-0123456789";
pub const USER_ID: &str = "17841400000000001";
pub const USERNAME: &str = "clipforge.reels";
const VERSION: &str = "v25.0";

/// A published reel.
#[derive(Debug, Clone)]
pub struct Reel {
    pub id: String,
    pub sha256: String,
    pub caption: String,
}

struct Container {
    status: &'static str,
    polls: u32,
    sha256: String,
    caption: String,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, String>,
    short: Vec<String>,
    /// long-lived token → when it expires
    long: HashMap<String, Instant>,
    containers: HashMap<String, Container>,
    reels: Vec<Reel>,
    issued: Vec<String>,
}

pub struct InstagramState {
    inner: Mutex<Inner>,
    seq: AtomicU64,
    /// Posts allowed per 24 h (`quota_total`).
    pub limit: AtomicU32,
    /// Posts counted in the last 24 h besides the reels published here.
    pub used_elsewhere: AtomicU32,
    pub processing_polls: AtomicU32,
    /// Lifetime of a long-lived token, in seconds.
    pub token_ttl_secs: AtomicU64,
    pub container_calls: AtomicU32,
    pub publish_calls: AtomicU32,
    pub status_calls: AtomicU32,
    pub refresh_calls: AtomicU32,
    /// Hold each status poll this long (to kill a worker while it waits).
    pub poll_delay_ms: AtomicU64,
    pub revoked: AtomicBool,
}

pub struct Instagram {
    pub url: String,
    pub state: Arc<InstagramState>,
}

impl Instagram {
    pub async fn start() -> Instagram {
        let state = Arc::new(InstagramState {
            inner: Mutex::new(Inner::default()),
            seq: AtomicU64::new(0),
            limit: AtomicU32::new(50),
            used_elsewhere: AtomicU32::new(0),
            processing_polls: AtomicU32::new(2),
            token_ttl_secs: AtomicU64::new(60 * 86_400),
            container_calls: AtomicU32::new(0),
            publish_calls: AtomicU32::new(0),
            status_calls: AtomicU32::new(0),
            refresh_calls: AtomicU32::new(0),
            poll_delay_ms: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
        });
        let router = axum::Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/access_token", post(short_token))
            .route("/access_token", get(long_token))
            .route("/refresh_access_token", get(refresh))
            .route(&format!("/{VERSION}/me"), get(me))
            .route(&format!("/{VERSION}/{{id}}"), get(container_status))
            .route(&format!("/{VERSION}/{{id}}/media"), post(create))
            .route(&format!("/{VERSION}/{{id}}/media_publish"), post(publish))
            .route(&format!("/{VERSION}/{{id}}/content_publishing_limit"), get(limit))
            .with_state(state.clone());
        let url = serve(router).await;
        Instagram { url, state }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("CLIPFORGE__INSTAGRAM__APP_ID", APP_ID.to_string()),
            ("CLIPFORGE__INSTAGRAM__APP_SECRET", APP_SECRET.to_string()),
            ("CLIPFORGE__INSTAGRAM__AUTH_URL", format!("{}/oauth/authorize", self.url)),
            ("CLIPFORGE__INSTAGRAM__TOKEN_URL", format!("{}/oauth/access_token", self.url)),
            ("CLIPFORGE__INSTAGRAM__GRAPH_URL", self.url.clone()),
            ("CLIPFORGE__INSTAGRAM__API_VERSION", VERSION.to_string()),
            ("CLIPFORGE__INSTAGRAM__CONTAINER_POLL_MS", "50".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl InstagramState {
    fn next(&self, prefix: &str) -> String {
        format!("{prefix}{}{}", self.seq.fetch_add(1, Ordering::SeqCst), uuid::Uuid::now_v7().simple())
    }

    pub fn reels(&self) -> Vec<Reel> {
        self.inner.lock().unwrap().reels.clone()
    }

    pub fn containers(&self) -> usize {
        self.inner.lock().unwrap().containers.len()
    }

    pub fn secrets(&self) -> Vec<String> {
        self.inner.lock().unwrap().issued.clone()
    }
}

fn graph_error(code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut error = json!({"message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "AbCdEfGhIjK", "is_transient": false});
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
        error["error_user_msg"] = json!(message);
    }
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

fn invalid_token() -> Response {
    graph_error(190, None, "Error validating access token: Session has expired or the token is invalid.")
}

/// The caller's long-lived token (Bearer header or `access_token`), if valid.
fn token_of(state: &InstagramState, headers: &HeaderMap, q: &HashMap<String, String>) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| q.get("access_token").cloned())
        .unwrap_or_default();
    if state.revoked.load(Ordering::SeqCst) {
        return Err(invalid_token());
    }
    match state.inner.lock().unwrap().long.get(&token) {
        Some(expires) if *expires > Instant::now() => Ok(token),
        _ => Err(invalid_token()),
    }
}

async fn authorize(State(state): State<Arc<InstagramState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("client_id").map(String::as_str) != Some(APP_ID)
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return graph_error(100, None, "Invalid platform app");
    }
    let (Some(redirect), Some(st)) = (q.get("redirect_uri"), q.get("state")) else {
        return graph_error(100, None, "Missing redirect_uri or state");
    };
    let code = state.next("AQB");
    state.inner.lock().unwrap().codes.insert(code.clone(), redirect.clone());
    let to = format!("{redirect}?code={code}&state={st}");
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn short_token(State(state): State<Arc<InstagramState>>, Form(f): Form<HashMap<String, String>>) -> Response {
    if f.get("client_id").map(String::as_str) != Some(APP_ID)
        || f.get("client_secret").map(String::as_str) != Some(APP_SECRET)
    {
        return graph_error(101, None, "Error validating client secret.");
    }
    let mut inner = state.inner.lock().unwrap();
    let Some(redirect) = f.get("code").and_then(|c| inner.codes.remove(c)) else {
        return graph_error(100, None, "This authorization code has been used.");
    };
    if f.get("redirect_uri") != Some(&redirect) || f.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return graph_error(
            100,
            None,
            "Error validating verification code. Please make sure your redirect_uri is identical",
        );
    }
    let short = state.next("IGQWshort");
    inner.short.push(short.clone());
    inner.issued.push(short.clone());
    Json(json!({"access_token": short, "user_id": USER_ID.parse::<u64>().unwrap(),
        "permissions": "instagram_business_basic,instagram_business_content_publish"}))
    .into_response()
}

fn issue_long(state: &InstagramState, inner: &mut Inner) -> Response {
    let long = state.next("IGQWlong");
    let ttl = state.token_ttl_secs.load(Ordering::SeqCst);
    inner.long.insert(long.clone(), Instant::now() + Duration::from_secs(ttl));
    inner.issued.push(long.clone());
    Json(json!({"access_token": long, "token_type": "bearer", "expires_in": ttl})).into_response()
}

async fn long_token(State(state): State<Arc<InstagramState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = state.inner.lock().unwrap();
    if q.get("grant_type").map(String::as_str) != Some("ig_exchange_token")
        || q.get("client_secret").map(String::as_str) != Some(APP_SECRET)
    {
        return graph_error(100, None, "Invalid parameter");
    }
    let short = q.get("access_token").cloned().unwrap_or_default();
    if !inner.short.contains(&short) {
        return invalid_token();
    }
    issue_long(&state, &mut inner)
}

async fn refresh(
    State(state): State<Arc<InstagramState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    state.refresh_calls.fetch_add(1, Ordering::SeqCst);
    if q.get("grant_type").map(String::as_str) != Some("ig_refresh_token") {
        return graph_error(100, None, "Invalid parameter");
    }
    let old = match token_of(&state, &headers, &q) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let mut inner = state.inner.lock().unwrap();
    inner.long.remove(&old);
    issue_long(&state, &mut inner)
}

async fn me(
    State(state): State<Arc<InstagramState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = token_of(&state, &headers, &q) {
        return e;
    }
    Json(json!({"user_id": USER_ID, "username": USERNAME, "id": USER_ID})).into_response()
}

fn used(state: &InstagramState, inner: &Inner) -> u32 {
    state.used_elsewhere.load(Ordering::SeqCst) + inner.reels.len() as u32
}

async fn limit(
    State(state): State<Arc<InstagramState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = token_of(&state, &headers, &q) {
        return e;
    }
    if id != USER_ID {
        return graph_error(100, Some(33), "Unsupported get request.");
    }
    let inner = state.inner.lock().unwrap();
    Json(json!({"data": [{"quota_usage": used(&state, &inner),
        "config": {"quota_total": state.limit.load(Ordering::SeqCst), "quota_duration": 86400}}]}))
    .into_response()
}

async fn create(
    State(state): State<Arc<InstagramState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Err(e) = token_of(&state, &headers, &q) {
        return e;
    }
    state.container_calls.fetch_add(1, Ordering::SeqCst);
    if id != USER_ID {
        return graph_error(100, Some(33), "Unsupported post request.");
    }
    if f.get("media_type").map(String::as_str) != Some("REELS") {
        return graph_error(100, Some(2207023), "The media type is not supported; send REELS.");
    }
    let caption = f.get("caption").cloned().unwrap_or_default();
    if caption.chars().count() > 2200 {
        return graph_error(100, Some(2207010), "The caption is too long.");
    }
    let Some(video_url) = f.get("video_url").cloned() else {
        return graph_error(100, None, "The parameter video_url is required");
    };
    // Meta cURLs the video at once; it must answer 200 with the bytes.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let bytes = match client.get(&video_url).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.ok(),
        _ => None,
    };
    let Some(bytes) = bytes else {
        return graph_error(9004, Some(2207052), "The media could not be fetched from this URI.");
    };
    let container = state.next("1790");
    let sha256 = hex::encode(Sha256::digest(&bytes));
    state
        .inner
        .lock()
        .unwrap()
        .containers
        .insert(container.clone(), Container { status: "IN_PROGRESS", polls: 0, sha256, caption });
    Json(json!({"id": container})).into_response()
}

async fn container_status(
    State(state): State<Arc<InstagramState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = token_of(&state, &headers, &q) {
        return e;
    }
    state.status_calls.fetch_add(1, Ordering::SeqCst);
    let delay = state.poll_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut inner = state.inner.lock().unwrap();
    let Some(c) = inner.containers.get_mut(&id) else {
        return graph_error(100, Some(33), "Unsupported get request.");
    };
    c.polls += 1;
    if c.status == "IN_PROGRESS" && c.polls > state.processing_polls.load(Ordering::SeqCst) {
        c.status = "FINISHED";
    }
    Json(json!({"status_code": c.status, "status": format!("{}: polled {} times", c.status, c.polls), "id": id}))
        .into_response()
}

async fn publish(
    State(state): State<Arc<InstagramState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if let Err(e) = token_of(&state, &headers, &q) {
        return e;
    }
    state.publish_calls.fetch_add(1, Ordering::SeqCst);
    if id != USER_ID {
        return graph_error(100, Some(33), "Unsupported post request.");
    }
    let creation = f.get("creation_id").or(q.get("creation_id")).cloned().unwrap_or_default();
    let mut inner = state.inner.lock().unwrap();
    if used(&state, &inner) >= state.limit.load(Ordering::SeqCst) {
        return graph_error(9, Some(2207042), "You reached the maximum number of posts allowed in 24 hours.");
    }
    let reel_id = state.next("1800");
    let Some(c) = inner.containers.get_mut(&creation) else {
        return graph_error(100, Some(2207008), "The media container does not exist.");
    };
    match c.status {
        "FINISHED" => {}
        "PUBLISHED" => return graph_error(100, Some(2207006), "The media has already been published."),
        _ => {
            return graph_error(9007, Some(2207027), "The media is not ready for publishing, please wait for a moment");
        }
    }
    c.status = "PUBLISHED";
    let reel = Reel { id: reel_id.clone(), sha256: c.sha256.clone(), caption: c.caption.clone() };
    inner.reels.push(reel);
    Json(json!({"id": reel_id})).into_response()
}
