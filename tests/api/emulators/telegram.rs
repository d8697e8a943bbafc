//! The Telegram Bot API (spec section 7): `/bot<token>/sendMessage` (JSON) and
//! `/bot<token>/sendVideo` (multipart). It checks the token, parses MarkdownV2
//! as Telegram does (an unescaped reserved character is the real 400 "can't
//! parse entities"), enforces the 4096/1024 limits after parsing, and records
//! each message as the chat would show it. It can answer the next call 429
//! with a `retry_after`, and hold the next call before accepting it (a message
//! whose caller hangs up while held is never accepted).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::serve;

pub const TOKEN: &str = "123456:emulated-bot-token";

/// A message as the chat shows it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub chat_id: String,
    /// The text (or caption) after MarkdownV2 parsing: what a reader sees.
    pub text: String,
    /// Size of the uploaded video (sendVideo).
    pub video_bytes: Option<usize>,
}

#[derive(Default)]
pub struct TelegramState {
    pub messages: Mutex<Vec<Received>>,
    /// When each call arrived, refused ones included.
    pub calls: Mutex<Vec<Instant>>,
    /// Answer the next call 429 with this retry_after (seconds); 0 = off.
    pub throttle_next: AtomicU64,
    /// Hold the next call this long (ms) before accepting it; 0 = off.
    pub hold_next_ms: AtomicU64,
    /// Held calls not yet answered or dropped.
    pub held: AtomicU32,
}

pub struct Telegram {
    pub url: String,
    pub state: Arc<TelegramState>,
}

impl Telegram {
    pub async fn start() -> Self {
        let state = Arc::new(TelegramState::default());
        let router = axum::Router::new()
            .route("/{bot}/{method}", post(method))
            // Telegram takes uploads up to 50 MB.
            .layer(axum::extract::DefaultBodyLimit::max(50 * 1024 * 1024))
            .with_state(state.clone());
        Self { url: serve(router).await, state }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.messages.lock().unwrap().clone()
    }

    pub fn calls(&self) -> Vec<Instant> {
        self.state.calls.lock().unwrap().clone()
    }
}

fn error(status: StatusCode, description: &str) -> Response {
    (status, Json(json!({ "ok": false, "error_code": status.as_u16(), "description": description }))).into_response()
}

async fn method(
    State(state): State<Arc<TelegramState>>,
    Path((bot, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.calls.lock().unwrap().push(Instant::now());
    if bot != format!("bot{TOKEN}") {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let retry_after = state.throttle_next.swap(0, Ordering::SeqCst);
    if retry_after > 0 {
        let description = format!("Too Many Requests: retry after {retry_after}");
        let body = json!({ "ok": false, "error_code": 429, "description": description,
                           "parameters": { "retry_after": retry_after } });
        return (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    }
    let hold = state.hold_next_ms.swap(0, Ordering::SeqCst);
    // A held call counts in `held` until this handler returns (its message
    // recorded, if it is accepted) or is dropped: if the caller hangs up
    // during the hold, it is dropped there and the message never accepted.
    let _release = (hold > 0).then(|| {
        state.held.fetch_add(1, Ordering::SeqCst);
        Release(state.clone())
    });
    if hold > 0 {
        tokio::time::sleep(Duration::from_millis(hold)).await;
    }
    let method = method.to_ascii_lowercase();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (fields, video_bytes) = if content_type.starts_with("application/json") {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
            return error(StatusCode::BAD_REQUEST, "Bad Request: invalid JSON");
        };
        let fields: Vec<(String, String)> = map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect();
        (fields, None)
    } else if let Some(boundary) = content_type.split("boundary=").nth(1) {
        match parse_multipart(&body, boundary) {
            Some(parts) => {
                let video = parts.iter().find(|(n, _)| n == "video").map(|(_, v)| v.len());
                let fields = parts
                    .into_iter()
                    .filter(|(n, _)| n != "video")
                    .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
                    .collect();
                (fields, video)
            }
            None => return error(StatusCode::BAD_REQUEST, "Bad Request: invalid multipart body"),
        }
    } else {
        return error(StatusCode::BAD_REQUEST, "Bad Request: unsupported content type");
    };
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let Some(chat_id) = field("chat_id") else {
        return error(StatusCode::BAD_REQUEST, "Bad Request: chat_id is empty");
    };
    let (raw, limit, too_long) = match method.as_str() {
        "sendmessage" => (field("text").unwrap_or_default(), 4096, "Bad Request: message is too long"),
        "sendvideo" => {
            if video_bytes.is_none() {
                return error(StatusCode::BAD_REQUEST, "Bad Request: there is no video in the request");
            }
            (field("caption").unwrap_or_default(), 1024, "Bad Request: message caption is too long")
        }
        _ => return error(StatusCode::NOT_FOUND, "Not Found"),
    };
    let text = if field("parse_mode").as_deref() == Some("MarkdownV2") {
        match parse_markdown_v2(&raw) {
            Ok(t) => t,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("Bad Request: can't parse entities: {e}")),
        }
    } else {
        raw
    };
    if method == "sendmessage" && text.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "Bad Request: message text is empty");
    }
    if text.encode_utf16().count() > limit {
        return error(StatusCode::BAD_REQUEST, too_long);
    }
    state.messages.lock().unwrap().push(Received {
        method: method.clone(),
        chat_id: chat_id.clone(),
        text: text.clone(),
        video_bytes,
    });
    Json(json!({ "ok": true, "result": { "message_id": 1, "chat": { "id": chat_id }, "text": text } })).into_response()
}

struct Release(Arc<TelegramState>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

/// MarkdownV2 as Telegram parses it, for the entities clipforge uses: `\x`
/// is a literal x; `*`, `_`, `__`, `~` and `||` open and close entities;
/// every other reserved character must be escaped.
pub fn parse_markdown_v2(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut open: Vec<&'static str> = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let marker = match c {
            '\\' => {
                match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => return Err(format!("Can't parse entities: unexpected end of text at byte offset {at}")),
                }
                continue;
            }
            '*' => "Bold",
            '~' => "Strikethrough",
            '_' if chars.peek().is_some_and(|(_, n)| *n == '_') => {
                chars.next();
                "Underline"
            }
            '_' => "Italic",
            '|' if chars.peek().is_some_and(|(_, n)| *n == '|') => {
                chars.next();
                "Spoiler"
            }
            '[' | ']' | '(' | ')' | '`' | '>' | '#' | '+' | '-' | '=' | '|' | '{' | '}' | '.' | '!' => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\' at byte offset {at}"
                ));
            }
            other => {
                out.push(other);
                continue;
            }
        };
        if open.last() == Some(&marker) {
            open.pop();
        } else {
            open.push(marker);
        }
    }
    match open.last() {
        Some(entity) => Err(format!("Can't find end of {entity} entity")),
        None => Ok(out),
    }
}

/// The (name, bytes) of each part of a multipart/form-data body.
fn parse_multipart(body: &[u8], boundary: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut pos = find(body, d, 0)? + d.len();
    loop {
        if body[pos..].starts_with(b"--") {
            return Some(parts);
        }
        pos += 2; // \r\n after the delimiter
        let head_end = find(body, b"\r\n\r\n", pos)?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let name = head.split("name=\"").nth(1)?.split('"').next()?.to_string();
        let next = find(body, d, head_end + 4)?;
        parts.push((name, body[head_end + 4..next - 2].to_vec()));
        pos = next + d.len();
    }
}

#[test]
fn the_markdown_parser_refuses_what_telegram_refuses() {
    assert_eq!(parse_markdown_v2(r"*Job ready*\. a\_b").unwrap(), "Job ready. a_b");
    assert!(parse_markdown_v2("v1.2").unwrap_err().contains("Character '.' is reserved"));
    assert!(parse_markdown_v2("*open").unwrap_err().contains("Bold"));
}
