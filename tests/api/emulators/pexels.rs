//! Pexels video search and its CDN (spec section 5). Search results list
//! several files per video; only the 1080x1920 one can be downloaded, so a
//! client that picks another file (or an HLS entry) fails.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{Fault, Faults, SLOW, serve};

pub const KEY: &str = "pexels-emulated-secret-9876543210";
/// A query containing this finds nothing.
pub const NOTHING: &str = "zzznothing";

pub struct PexelsState {
    pub searches: AtomicU32,
    pub downloads: AtomicU32,
    /// 429s given because the budget was spent (a polite client gets none).
    pub throttled: AtomicU32,
    pub hourly_limit: AtomicU32,
    pub faults: Faults,
    pub queries: Mutex<Vec<String>>,
    pub downloaded: Mutex<Vec<String>>,
    base: Mutex<String>,
    clip: Vec<u8>,
    /// The budget window: when it resets, and how much of it is used.
    window: Mutex<(u64, u32)>,
}

/// Length of the emulated budget window (an hour at Pexels), in seconds.
pub const WINDOW_SECS: u64 = 2;

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub struct Pexels {
    pub url: String,
    pub state: Arc<PexelsState>,
}

/// A real 1080x1920 H.264 clip, one second long.
fn make_clip() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=1080x1920:r=30:d=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::read(out).unwrap()
}

impl Pexels {
    pub async fn start() -> Self {
        let state = Arc::new(PexelsState {
            searches: AtomicU32::new(0),
            downloads: AtomicU32::new(0),
            throttled: AtomicU32::new(0),
            hourly_limit: AtomicU32::new(200),
            faults: Faults::default(),
            queries: Mutex::new(Vec::new()),
            downloaded: Mutex::new(Vec::new()),
            base: Mutex::new(String::new()),
            clip: tokio::task::spawn_blocking(make_clip).await.unwrap(),
            window: Mutex::new((now_unix() + WINDOW_SECS, 0)),
        });
        let router = axum::Router::new()
            .route("/videos/search", get(search))
            .route("/files/{name}", get(file))
            .with_state(state.clone());
        let url = serve(router).await;
        *state.base.lock().unwrap() = url.clone();
        Self { url, state }
    }

    pub fn searches(&self) -> u32 {
        self.state.searches.load(Ordering::SeqCst)
    }

    pub fn downloads(&self) -> u32 {
        self.state.downloads.load(Ordering::SeqCst)
    }
}

async fn search(
    State(state): State<Arc<PexelsState>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    state.searches.fetch_add(1, Ordering::SeqCst);
    // Pexels takes the raw key; "Bearer <key>" is refused like a wrong key.
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "Unauthorized" }))).into_response();
    }
    let Some(query) = q.get("query").filter(|q| !q.is_empty()).cloned() else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "query is required" }))).into_response();
    };
    let limit = state.hourly_limit.load(Ordering::SeqCst);
    let (reset_unix, used) = {
        let mut w = state.window.lock().unwrap();
        if now_unix() >= w.0 {
            *w = (now_unix() + WINDOW_SECS, 0);
        }
        w.1 += 1;
        *w
    };
    if used > limit {
        // No rate headers on a 429: the client must remember the last reset.
        state.throttled.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
    }
    match state.faults.next() {
        Some(Fault::TooManyRequests) => return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response(),
        Some(Fault::ServerError) => return (StatusCode::BAD_GATEWAY, "Bad Gateway").into_response(),
        Some(Fault::Slow) => tokio::time::sleep(SLOW).await,
        None => {}
    }
    state.queries.lock().unwrap().push(query.clone());
    let base = state.base.lock().unwrap().clone();
    let videos: Vec<_> = if query.contains(NOTHING) {
        vec![]
    } else {
        let slug: String = query.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        (1..=3u64)
            .map(|i| {
                let id = (slug.len() as u64) * 1000 + i;
                json!({
                    "id": id, "width": 1080, "height": 1920, "duration": 8,
                    "url": format!("https://www.pexels.com/video/{slug}-{id}/"),
                    "image": format!("{base}/files/poster-{id}.jpg"),
                    "user": { "id": 40 + i, "name": format!("Creator {i}"), "url": format!("https://www.pexels.com/@creator{i}") },
                    "video_files": [
                        { "id": id * 10 + 1, "quality": "hls", "file_type": "application/x-mpegURL", "width": null, "height": null, "fps": null, "link": format!("{base}/files/{id}.m3u8") },
                        { "id": id * 10 + 2, "quality": "sd", "file_type": "video/mp4", "width": 540, "height": 960, "fps": 29.97, "link": format!("{base}/files/sd-{id}.mp4") },
                        { "id": id * 10 + 3, "quality": "uhd", "file_type": "video/mp4", "width": 2160, "height": 3840, "fps": 29.97, "link": format!("{base}/files/uhd-{id}.mp4") },
                        { "id": id * 10 + 4, "quality": "hd", "file_type": "video/mp4", "width": 1080, "height": 1920, "fps": 29.97, "link": format!("{base}/files/hd-{id}.mp4") }
                    ],
                    "video_pictures": []
                })
            })
            .collect()
    };
    let remaining = limit.saturating_sub(used);
    let body = json!({ "page": 1, "per_page": 15, "total_results": videos.len(), "url": "https://www.pexels.com/search/videos/", "videos": videos });
    let mut resp = Json(body).into_response();
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", "20000".parse().unwrap());
    h.insert("x-ratelimit-remaining", remaining.to_string().parse().unwrap());
    h.insert("x-ratelimit-reset", reset_unix.to_string().parse().unwrap());
    resp
}

async fn file(State(state): State<Arc<PexelsState>>, Path(name): Path<String>) -> Response {
    state.downloads.fetch_add(1, Ordering::SeqCst);
    if !name.starts_with("hd-") {
        return (StatusCode::NOT_FOUND, "only the 1080x1920 files are served").into_response();
    }
    state.downloaded.lock().unwrap().push(name);
    Body::from(state.clip.clone()).into_response()
}
