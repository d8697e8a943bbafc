//! Runway's API (specs/platforms.md §4): `POST /v1/text_to_video`,
//! `GET`/`DELETE /v1/tasks/{id}` and the expiring output URLs.
//!
//! Enforced: `Authorization: Bearer <key>` (401 otherwise) and
//! `X-Runway-Version: 2024-11-06` (400 without it or with another value —
//! an assumption: the SDK always sends it, and the real API's answer to a
//! missing one is not documented); per model, `promptText` length, `ratio` and
//! `duration` (400 with an `issues` list — the JSON error shape is
//! UNCONFIRMED). A task answers `PENDING`, then `RUNNING`, then `SUCCEEDED`
//! with a real 720x1280 H.264 MP4 (solid red, so frames show where it is
//! used); told so, it ends `FAILED` instead, or creating answers 429 as when
//! the daily generation limit is reached. Tasks over the concurrency limit
//! answer `THROTTLED` until earlier ones end, in submit order. Output URLs
//! carry an expiry and answer 403 after it (the first one can be made to
//! arrive expired).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::serve;

pub const KEY: &str = "key_runway-emulated-secret-0123456789abcdef";
pub const VERSION: &str = "2024-11-06";

/// How the emulator treats new work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Normal,
    /// Every task ends `FAILED`.
    Fail,
    /// Every create answers 429 (the daily generation limit).
    DailyLimit,
}

pub struct RunwayState {
    /// Creates accepted (each is one paid generation when it succeeds).
    pub generations: AtomicU32,
    /// Create calls of any outcome.
    pub create_calls: AtomicU32,
    pub downloads: AtomicU32,
    pub mode: Mutex<Mode>,
    /// Accepted request bodies, in order.
    pub bodies: Mutex<Vec<Value>>,
    /// Seconds an output URL stays valid.
    pub url_ttl_secs: AtomicU32,
    /// When set, a task's first output URL has expired already (a slow client).
    pub expire_first_url: AtomicBool,
    /// Output downloads refused as expired.
    pub expired_refusals: AtomicU32,
    /// Tasks running at once (the tier's concurrency); later ones answer `THROTTLED`.
    pub concurrency: AtomicU32,
    /// `THROTTLED` answers given.
    pub throttled: AtomicU32,
    tasks: Mutex<HashMap<String, TaskRecord>>,
    base: Mutex<String>,
    clip: Vec<u8>,
}

struct TaskRecord {
    /// Submit order.
    order: u32,
    polls: u32,
    fail: bool,
    cancelled: bool,
    /// Ended (succeeded, failed, cancelled).
    done: bool,
    urls_given: u32,
}

pub struct Runway {
    pub url: String,
    pub state: Arc<RunwayState>,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A real 720x1280 H.264 clip (what gen4.5 makes in portrait), two seconds of red.
fn make_clip() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "color=c=red:s=720x1280:r=24:d=2"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::read(out).unwrap()
}

/// Ratios and durations per model, as the spec lists them.
fn model_rule(model: &str) -> Option<(&'static [&'static str], &'static [u64])> {
    const WIDE: &[&str] = &["1280:720", "720:1280", "1080:1920", "1920:1080"];
    Some(match model {
        "gen4.5" => (&["1280:720", "720:1280"], &[2, 3, 4, 5, 6, 7, 8, 9, 10]),
        "veo3.1" | "veo3.1_fast" => (WIDE, &[4, 6, 8]),
        "veo3" => (WIDE, &[8]),
        "gemini_omni_flash" => (&["1280:720", "720:1280"], &[3, 4, 5, 6, 7, 8, 9, 10]),
        _ => return None,
    })
}

impl Runway {
    pub async fn start() -> Self {
        let state = Arc::new(RunwayState {
            generations: AtomicU32::new(0),
            create_calls: AtomicU32::new(0),
            downloads: AtomicU32::new(0),
            mode: Mutex::new(Mode::Normal),
            bodies: Mutex::new(Vec::new()),
            url_ttl_secs: AtomicU32::new(3600),
            expire_first_url: AtomicBool::new(false),
            expired_refusals: AtomicU32::new(0),
            concurrency: AtomicU32::new(100),
            throttled: AtomicU32::new(0),
            tasks: Mutex::new(HashMap::new()),
            base: Mutex::new(String::new()),
            clip: tokio::task::spawn_blocking(make_clip).await.unwrap(),
        });
        let router = axum::Router::new()
            .route("/v1/text_to_video", post(create))
            .route("/v1/tasks/{id}", get(task).delete(cancel))
            .route("/outputs/{name}", get(output))
            .with_state(state.clone());
        let url = serve(router).await;
        *state.base.lock().unwrap() = url.clone();
        Self { url, state }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn generations(&self) -> u32 {
        self.state.generations.load(Ordering::SeqCst)
    }

    pub fn create_calls(&self) -> u32 {
        self.state.create_calls.load(Ordering::SeqCst)
    }
}

fn error(status: StatusCode, message: &str, issues: Vec<Value>) -> Response {
    let mut body = json!({ "error": message });
    if !issues.is_empty() {
        body["issues"] = Value::Array(issues);
    }
    (status, Json(body)).into_response()
}

/// The auth and version checks every API route makes.
fn refuse(headers: &HeaderMap) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {KEY}")) {
        return Some(error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.", vec![]));
    }
    match headers.get("x-runway-version").and_then(|v| v.to_str().ok()) {
        Some(VERSION) => None,
        Some(other) => {
            Some(error(StatusCode::BAD_REQUEST, &format!("Invalid API version {other:?}; use {VERSION}"), vec![]))
        }
        None => Some(error(StatusCode::BAD_REQUEST, "The X-Runway-Version header is required.", vec![])),
    }
}

/// The body's problems, one issue per field.
fn issues(body: &Value) -> Vec<Value> {
    let issue = |path: &str, message: String| json!({ "path": [path], "message": message });
    let model = body["model"].as_str().unwrap_or_default();
    let Some((ratios, durations)) = model_rule(model) else {
        return vec![issue("model", format!("unknown model {model:?}"))];
    };
    let mut out = Vec::new();
    match body["promptText"].as_str() {
        Some(p) if !p.trim().is_empty() && p.encode_utf16().count() <= 1000 => {}
        Some(p) => {
            out.push(issue("promptText", format!("must be 1-1000 characters, got {}", p.encode_utf16().count())))
        }
        None => out.push(issue("promptText", "required".into())),
    }
    let ratio = body["ratio"].as_str().unwrap_or_default();
    if !ratios.contains(&ratio) {
        out.push(issue("ratio", format!("{model} takes {}, got {ratio:?}", ratios.join(", "))));
    }
    match body["duration"].as_u64() {
        Some(d) if durations.contains(&d) => {}
        _ => out.push(issue("duration", format!("{model} takes {durations:?}, got {}", body["duration"]))),
    }
    if let Some(seed) = body.get("seed")
        && seed.as_u64().is_none_or(|s| s > u64::from(u32::MAX))
    {
        out.push(issue("seed", "an integer 0-4294967295".into()));
    }
    out
}

async fn create(State(state): State<Arc<RunwayState>>, headers: HeaderMap, body: String) -> Response {
    state.create_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = refuse(&headers) {
        return r;
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "The body is not JSON.", vec![]);
    };
    let problems = issues(&body);
    if !problems.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Validation of body failed", problems);
    }
    let mode = *state.mode.lock().unwrap();
    if mode == Mode::DailyLimit {
        return error(StatusCode::TOO_MANY_REQUESTS, "You have exceeded your daily generation limit.", vec![]);
    }
    let order = state.generations.fetch_add(1, Ordering::SeqCst);
    state.bodies.lock().unwrap().push(body);
    let id = uuid::Uuid::now_v7().to_string();
    let record = TaskRecord { order, polls: 0, fail: mode == Mode::Fail, cancelled: false, done: false, urls_given: 0 };
    state.tasks.lock().unwrap().insert(id.clone(), record);
    Json(json!({ "id": id })).into_response()
}

async fn task(State(state): State<Arc<RunwayState>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&headers) {
        return r;
    }
    let mut tasks = state.tasks.lock().unwrap();
    let Some(order) = tasks.get(&id).map(|t| t.order) else {
        return error(StatusCode::NOT_FOUND, "Task not found.", vec![]);
    };
    let ahead = tasks.values().filter(|o| o.order < order && !o.done).count() as u32;
    let created = "2026-12-02T12:00:00.000Z";
    let t = tasks.get_mut(&id).unwrap();
    if !t.done && !t.cancelled && ahead >= state.concurrency.load(Ordering::SeqCst) {
        // Queued behind earlier tasks of the organisation, in submit order.
        state.throttled.fetch_add(1, Ordering::SeqCst);
        return Json(json!({ "id": id, "createdAt": created, "status": "THROTTLED" })).into_response();
    }
    t.polls += 1;
    let body = if t.cancelled {
        t.done = true;
        json!({ "id": id, "createdAt": created, "status": "CANCELLED" })
    } else {
        match t.polls {
            1 => json!({ "id": id, "createdAt": created, "status": "PENDING" }),
            2 => json!({ "id": id, "createdAt": created, "status": "RUNNING", "progress": 0.5 }),
            _ if t.fail => {
                t.done = true;
                json!({
                "id": id, "createdAt": created, "status": "FAILED",
                "failure": "An unexpected error occurred.", "failureCode": "INTERNAL.BAD_OUTPUT.CODE01"
                })
            }
            _ => {
                t.done = true;
                t.urls_given += 1;
                let expired = t.urls_given == 1 && state.expire_first_url.load(Ordering::SeqCst);
                let exp = if expired {
                    now_unix() - 60
                } else {
                    now_unix() + u64::from(state.url_ttl_secs.load(Ordering::SeqCst))
                };
                let base = state.base.lock().unwrap().clone();
                json!({
                    "id": id, "createdAt": created, "status": "SUCCEEDED",
                    "output": [format!("{base}/outputs/{id}.mp4?exp={exp}&sig=emulated")]
                })
            }
        }
    };
    Json(body).into_response()
}

async fn cancel(State(state): State<Arc<RunwayState>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&headers) {
        return r;
    }
    match state.tasks.lock().unwrap().get_mut(&id) {
        Some(t) => {
            t.cancelled = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Task not found.", vec![]),
    }
}

async fn output(
    State(state): State<Arc<RunwayState>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = name.trim_end_matches(".mp4");
    let known = state.tasks.lock().unwrap().contains_key(id);
    let exp = q.get("exp").and_then(|e| e.parse::<u64>().ok());
    if !known || q.get("sig").map(String::as_str) != Some("emulated") {
        return (StatusCode::FORBIDDEN, "AccessDenied").into_response();
    }
    if exp.is_none_or(|e| e < now_unix()) {
        state.expired_refusals.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::FORBIDDEN, "Request has expired").into_response();
    }
    state.downloads.fetch_add(1, Ordering::SeqCst);
    ([("content-type", "video/mp4")], Body::from(state.clip.clone())).into_response()
}
