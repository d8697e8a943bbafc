//! OpenRouter chat completions (spec section 6).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Fault, Faults, SLOW, serve};

pub const KEY: &str = "sk-or-v1-emulated-secret-0123456789";

/// The script every completion returns.
pub const HOOK: &str = "The ocean keeps a secret schedule.";
pub const SENTENCES: [(&str, [&str; 2]); 2] = [
    ("Twice a day the water climbs the shore.", ["ocean", "waves"]),
    ("Then it slips away under the moon.", ["moon", "night"]),
];

#[derive(Default)]
pub struct OpenRouterState {
    pub calls: AtomicU32,
    pub faults: Faults,
}

pub struct OpenRouter {
    pub url: String,
    pub state: Arc<OpenRouterState>,
}

impl OpenRouter {
    pub async fn start() -> Self {
        let state = Arc::new(OpenRouterState::default());
        let router = axum::Router::new().route("/api/v1/chat/completions", post(complete)).with_state(state.clone());
        Self { url: format!("{}/api/v1", serve(router).await), state }
    }

    pub fn calls(&self) -> u32 {
        self.state.calls.load(Ordering::SeqCst)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": status.as_u16(), "message": message } }))).into_response()
}

async fn complete(State(state): State<Arc<OpenRouterState>>, headers: HeaderMap, body: String) -> Response {
    let n = state.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {KEY}")) {
        return error(StatusCode::UNAUTHORIZED, "No auth credentials found");
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    if !req["model"].is_string() || req["messages"].as_array().is_none_or(|m| m.is_empty()) {
        return error(StatusCode::BAD_REQUEST, "model and messages are required");
    }
    let format = &req["response_format"];
    if format["type"] != "json_schema"
        || format["json_schema"]["strict"] != true
        || !format["json_schema"]["schema"].is_object()
    {
        return error(StatusCode::BAD_REQUEST, "this emulator only answers strict json_schema requests");
    }
    if req["provider"]["require_parameters"] != true {
        // Without it, OpenRouter may route to a host that ignores response_format.
        return error(StatusCode::BAD_REQUEST, "provider.require_parameters must be true");
    }
    match state.faults.next() {
        Some(Fault::TooManyRequests) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            return r;
        }
        Some(Fault::ServerError) => {
            // The model had started: the error arrives in a 200 body.
            return Json(json!({
                "id": "gen-err", "object": "chat.completion", "model": req["model"],
                "choices": [{ "index": 0, "finish_reason": "error", "message": { "role": "assistant", "content": null },
                              "error": { "code": 502, "message": "upstream provider failed mid-stream" } }]
            }))
            .into_response();
        }
        Some(Fault::Slow) => tokio::time::sleep(SLOW).await,
        None => {}
    }
    let content = json!({
        "hook": HOOK,
        // Every answer ends differently, as a model's would: distinct narration and searches.
        "sentences": SENTENCES
            .iter()
            .map(|(t, terms)| json!({ "text": t, "footage_terms": terms }))
            .chain([json!({ "text": format!("That is fact number {n}."), "footage_terms": [format!("fact{n}")] })])
            .collect::<Vec<_>>(),
        "title": "The tide",
        "caption": "Why the sea keeps time",
        "hashtags": ["#ocean", "#science"]
    })
    .to_string();
    let prompt_tokens = body.len() as u64 / 4;
    let completion_tokens = content.len() as u64 / 4;
    Json(json!({
        "id": "gen-1", "object": "chat.completion", "created": 1_760_000_000, "model": req["model"],
        "choices": [{ "index": 0, "finish_reason": "stop", "native_finish_reason": "stop",
                      "message": { "role": "assistant", "content": content } }],
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens }
    }))
    .into_response()
}
