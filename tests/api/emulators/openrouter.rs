//! OpenRouter chat completions (spec section 6).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

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

/// Words the filler sentences are made of: plain English, so a narrator
/// speaks them at its usual pace.
const FILLER: &[&str] = &[
    "the",
    "tide",
    "moves",
    "along",
    "every",
    "quiet",
    "beach",
    "while",
    "people",
    "watch",
    "from",
    "the",
    "warm",
    "sand",
    "and",
    "small",
    "boats",
    "rest",
    "in",
    "the",
    "harbour",
    "until",
    "morning",
    "light",
    "returns",
    "over",
    "the",
    "hills",
    "where",
    "old",
    "lighthouses",
    "still",
    "stand",
    "near",
    "the",
    "water",
];

pub struct OpenRouterState {
    pub calls: AtomicU32,
    pub faults: Faults,
    /// A first answer (not a rewrite) has this many times the words the
    /// prompt's budget asks for: above 1 to exercise the length correction.
    pub first_answer_factor: Mutex<f64>,
    /// The word budget each request asked for ("about N words"), in order.
    pub budgets: Mutex<Vec<u32>>,
    /// Keys besides [`KEY`] that are accepted (a user's own, sent per request).
    pub other_keys: Mutex<Vec<String>>,
    /// The bearer key of every call, in order.
    pub keys_seen: Mutex<Vec<String>>,
    /// The user message of every ideas request, in order.
    pub ideas_prompts: Mutex<Vec<String>>,
}

impl Default for OpenRouterState {
    fn default() -> Self {
        Self {
            calls: AtomicU32::new(0),
            faults: Faults::default(),
            first_answer_factor: Mutex::new(1.0),
            budgets: Mutex::new(Vec::new()),
            other_keys: Mutex::new(Vec::new()),
            keys_seen: Mutex::new(Vec::new()),
            ideas_prompts: Mutex::new(Vec::new()),
        }
    }
}

/// The number N of the last "about N words" in `text`.
fn asked_words(text: &str) -> Option<u32> {
    let at = text.rfind(" words")?;
    let digits: String = text[..at].chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Sentences of seven to nine filler words, `words` in all.
fn filler(mut words: usize, from: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = from;
    while words > 0 {
        let n = if words <= 9 { words } else { 7 + out.len() % 3 };
        let mut s: Vec<String> = (0..n).map(|i| FILLER[(at + i) % FILLER.len()].to_string()).collect();
        s[0] = s[0][..1].to_uppercase() + &s[0][1..];
        out.push(s.join(" ") + ".");
        at += n;
        words -= n;
    }
    out
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

    /// Accepts `key` too, as OpenRouter accepts any live key.
    pub fn accept_key(&self, key: &str) {
        self.state.other_keys.lock().unwrap().push(key.to_string());
    }

    /// The bearer key of every call so far.
    pub fn keys_seen(&self) -> Vec<String> {
        self.state.keys_seen.lock().unwrap().clone()
    }
}

/// The number N of "exactly N" in `text`.
fn asked_count(text: &str) -> Option<usize> {
    let at = text.find("exactly ")? + "exactly ".len();
    text[at..].split_whitespace().next()?.parse().ok()
}

/// Ideas drawn from the page in the prompt: the first `# ` heading names
/// them, so a test sees the page reached the model.
fn ideas_answer(state: &OpenRouterState, user: &str) -> Option<String> {
    state.ideas_prompts.lock().unwrap().push(user.to_string());
    let count = asked_count(user)?;
    let heading = user.lines().find_map(|l| l.strip_prefix("# ")).unwrap_or("the page");
    let ideas: Vec<Value> = (1..=count)
        .map(|i| {
            json!({
                "topic": format!("{heading}, angle {i}"),
                "hook": format!("Angle {i} of {heading} starts here."),
                "footage_queries": ["ocean", "waves"],
                "target_length_s": 20 + 5 * i
            })
        })
        .collect();
    Some(json!({ "ideas": ideas }).to_string())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": status.as_u16(), "message": message } }))).into_response()
}

async fn complete(State(state): State<Arc<OpenRouterState>>, headers: HeaderMap, body: String) -> Response {
    let n = state.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if let Some(key) = bearer {
        state.keys_seen.lock().unwrap().push(key.to_string());
    }
    let known = bearer.is_some_and(|k| k == KEY || state.other_keys.lock().unwrap().iter().any(|o| o == k));
    if !known {
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
    let messages = req["messages"].as_array().unwrap();
    let user = messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str()).unwrap_or("");
    if format["json_schema"]["name"] == "video_ideas" {
        let Some(content) = ideas_answer(&state, user) else {
            return error(StatusCode::BAD_REQUEST, "the ideas prompt names no count");
        };
        return Json(json!({
            "id": "gen-ideas", "object": "chat.completion", "model": req["model"],
            "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": content } }],
            "usage": { "prompt_tokens": body.len() as u64 / 4, "completion_tokens": content.len() as u64 / 4 }
        }))
        .into_response();
    }
    // The script honours the budget the last user message asks for ("about N
    // words"): the hook and the first sentence, filler, then a sentence of its
    // own, as a model's answers each end differently.
    let messages = req["messages"].as_array().unwrap();
    let asked =
        messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str()).and_then(asked_words);
    let mut sentences: Vec<Value> = vec![json!({ "text": SENTENCES[0].0, "footage_terms": SENTENCES[0].1 })];
    let last = json!({ "text": format!("That is fact number {n}."), "footage_terms": [format!("fact{n}")] });
    match asked {
        Some(budget) => {
            state.budgets.lock().unwrap().push(budget);
            let factor = if messages.len() <= 2 { *state.first_answer_factor.lock().unwrap() } else { 1.0 };
            let want = (f64::from(budget) * factor).round() as usize;
            let fixed = [HOOK, SENTENCES[0].0, "That is fact number 1."]
                .iter()
                .map(|s| s.split_whitespace().count())
                .sum::<usize>();
            let terms = [SENTENCES[1].1, SENTENCES[0].1];
            for (i, text) in filler(want.saturating_sub(fixed), n as usize).into_iter().enumerate() {
                sentences.push(json!({ "text": text, "footage_terms": terms[i % 2] }));
            }
        }
        None => sentences.push(json!({ "text": SENTENCES[1].0, "footage_terms": SENTENCES[1].1 })),
    }
    sentences.push(last);
    let content = json!({
        "hook": HOOK,
        "sentences": sentences,
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
