//! The Telegram Bot API (spec section 7): `/bot<token>/sendMessage` (JSON) and
//! `/bot<token>/sendVideo` (multipart). It checks the token, parses MarkdownV2
//! as Telegram does (an unescaped reserved character is the real 400 "can't
//! parse entities"), enforces the 4096/1024 limits after parsing, and records
//! each message as the chat would show it. It can answer the next call 429
//! with a `retry_after`, and hold the next call before accepting it (a message
//! whose caller hangs up while held is never accepted).
//!
//! The two-way side (platforms spec section 3): updates the test pushes (a
//! chat's message, a button press) wait for `getUpdates`, which confirms
//! every update below its `offset` and long-polls up to its `timeout`; a
//! second poller terminates the first with 409, and `getUpdates` while a
//! webhook is set is 409 too; with a webhook set (`setWebhook`, whose
//! `secret_token` is checked for Telegram's alphabet), pushed updates are
//! POSTed to it with `X-Telegram-Bot-Api-Secret-Token`. Inline keyboards are
//! checked (`callback_data` 1-64 bytes, one action per button);
//! `answerCallbackQuery` needs a query id a press issued, with a text of at
//! most 200 characters; `editMessageReplyMarkup` needs a message the bot
//! sent and refuses one that would not change. Every refusal is the
//! `{"ok":false,"error_code","description"[,"parameters"]}` envelope.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
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
    pub message_id: i64,
    /// The inline keyboard under it, as it is now (edits included).
    pub keyboard: Option<Value>,
}

/// A button press's answer (`answerCallbackQuery`).
#[derive(Debug, Clone)]
pub struct CallbackAnswer {
    pub query_id: String,
    pub text: String,
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
    /// Each call's method (lowercase) and when it arrived, refused ones included.
    pub methods: Mutex<Vec<(Instant, String)>>,
    /// Updates not yet confirmed by a getUpdates offset, oldest first.
    pub updates: Mutex<VecDeque<Value>>,
    next_update_id: AtomicI64,
    next_message_id: AtomicI64,
    /// Wakes long polls: a new update, or a newer poller.
    wake: tokio::sync::Notify,
    /// The newest getUpdates call; an older one still waiting ends with 409.
    poll_generation: AtomicU64,
    /// The webhook (url, secret_token) while one is set.
    pub webhook: Mutex<Option<(String, Option<String>)>>,
    /// 409 answers given (a webhook set, or a newer poller).
    pub conflicts: AtomicU32,
    /// Query ids of the presses pushed: only those can be answered.
    issued_queries: Mutex<HashSet<String>>,
    pub answers: Mutex<Vec<CallbackAnswer>>,
    /// editMessageReplyMarkup calls that changed a message.
    pub edits: AtomicU32,
    /// When each 429 was answered.
    pub throttled_at: Mutex<Vec<Instant>>,
    /// Files chats sent: file_id → (file_path, bytes).
    files: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// Files downloaded through `/file/bot<token>/<path>`.
    pub downloads: AtomicU32,
}

pub struct Telegram {
    pub url: String,
    pub state: Arc<TelegramState>,
}

impl Telegram {
    pub async fn start() -> Self {
        let state = Arc::new(TelegramState::default());
        state.next_update_id.store(700_000_001, Ordering::SeqCst);
        state.next_message_id.store(1, Ordering::SeqCst);
        let router = axum::Router::new()
            .route("/{bot}/{method}", post(method))
            .route("/file/{bot}/{*path}", axum::routing::get(file))
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

    /// The messages the bot sent to `chat`.
    pub fn sent_to(&self, chat: i64) -> Vec<Received> {
        self.messages().into_iter().filter(|m| m.chat_id == chat.to_string()).collect()
    }

    /// When each call of `method` (e.g. `getupdates`) arrived.
    pub fn calls_of(&self, method: &str) -> Vec<Instant> {
        self.state.methods.lock().unwrap().iter().filter(|(_, m)| m == method).map(|(t, _)| *t).collect()
    }

    pub fn answers(&self) -> Vec<CallbackAnswer> {
        self.state.answers.lock().unwrap().clone()
    }

    /// Updates not confirmed yet.
    pub fn pending(&self) -> usize {
        self.state.updates.lock().unwrap().len()
    }

    /// A chat member writes `text` in `chat`: an update for the bot. With a
    /// webhook set it is POSTed there at once (with the secret token) and
    /// the delivery's status returned; else it waits for getUpdates.
    pub async fn say(&self, chat: i64, text: &str) -> Option<u16> {
        let message_id = self.state.next_message_id.fetch_add(1, Ordering::SeqCst);
        let mut message = json!({
            "message_id": message_id,
            "from": { "id": chat.abs(), "is_bot": false, "first_name": "Tester" },
            "chat": { "id": chat, "type": if chat < 0 { "supergroup" } else { "private" } },
            "date": chrono::Utc::now().timestamp(),
            "text": text,
        });
        if let Some(command) = text.split_whitespace().next().filter(|c| c.starts_with('/')) {
            let length = command.encode_utf16().count();
            message["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": length }]);
        }
        self.push(json!({ "message": message })).await
    }

    /// A chat member sends a file (`document`); returns the message, to reply to.
    pub async fn send_file(&self, chat: i64, name: &str, bytes: &[u8]) -> Value {
        let message_id = self.state.next_message_id.fetch_add(1, Ordering::SeqCst);
        let file_id = format!("BQACAgI{}", uuid::Uuid::now_v7().simple());
        let path = format!("documents/file_{message_id}.{}", name.rsplit('.').next().unwrap_or("bin"));
        self.state.files.lock().unwrap().insert(file_id.clone(), (path, bytes.to_vec()));
        let message = json!({
            "message_id": message_id,
            "from": { "id": chat.abs(), "is_bot": false, "first_name": "Tester" },
            "chat": { "id": chat, "type": if chat < 0 { "supergroup" } else { "private" } },
            "date": chrono::Utc::now().timestamp(),
            "document": { "file_id": file_id, "file_unique_id": format!("u{message_id}"), "file_name": name,
                          "mime_type": "application/octet-stream", "file_size": bytes.len() },
        });
        self.push(json!({ "message": message.clone() })).await;
        message
    }

    /// A chat member answers `to` (a message) with `text`; returns the
    /// update, to deliver it again with [`Telegram::push`].
    pub async fn reply(&self, chat: i64, to: &Value, text: &str) -> Value {
        let message_id = self.state.next_message_id.fetch_add(1, Ordering::SeqCst);
        let length = text.split_whitespace().next().map_or(0, |c| c.encode_utf16().count());
        let message = json!({
            "message_id": message_id,
            "from": { "id": chat.abs(), "is_bot": false, "first_name": "Tester" },
            "chat": { "id": chat, "type": if chat < 0 { "supergroup" } else { "private" } },
            "date": chrono::Utc::now().timestamp(),
            "text": text,
            "entities": [{ "type": "bot_command", "offset": 0, "length": length }],
            "reply_to_message": to,
        });
        let update = json!({ "message": message });
        self.push(update.clone()).await;
        update
    }

    /// A chat member presses the button with `data` under message
    /// `message_id` in `chat`; returns the press's update (to deliver it
    /// again with [`Telegram::push`]) and the delivery's status (webhook).
    pub async fn press(&self, chat: i64, message_id: i64, data: &str) -> (Value, Option<u16>) {
        let query_id = format!("cbq-{}", uuid::Uuid::now_v7().simple());
        self.state.issued_queries.lock().unwrap().insert(query_id.clone());
        let update = json!({ "callback_query": {
            "id": query_id,
            "from": { "id": chat.abs(), "is_bot": false, "first_name": "Tester" },
            "message": { "message_id": message_id, "chat": { "id": chat, "type": "private" }, "date": 0 },
            "chat_instance": "ci-1",
            "data": data,
        } });
        let status = self.push(update.clone()).await;
        (update, status)
    }

    /// Queues an update (a fresh `update_id` is set), or delivers it to the webhook.
    pub async fn push(&self, mut update: Value) -> Option<u16> {
        update["update_id"] = json!(self.state.next_update_id.fetch_add(1, Ordering::SeqCst));
        let webhook = self.state.webhook.lock().unwrap().clone();
        if let Some((url, secret)) = webhook {
            let mut post = reqwest::Client::new().post(url).json(&update);
            if let Some(secret) = secret {
                post = post.header("X-Telegram-Bot-Api-Secret-Token", secret);
            }
            return Some(post.send().await.map(|r| r.status().as_u16()).unwrap_or(0));
        }
        self.state.updates.lock().unwrap().push_back(update);
        self.state.wake.notify_waiters();
        None
    }
}

/// The Bot API's refusal envelope.
fn refusal(status: StatusCode, description: &str) -> Response {
    error(status, description)
}

/// Checks an `InlineKeyboardMarkup` as Telegram does.
fn check_keyboard(markup: &Value) -> Result<(), String> {
    let rows = markup["inline_keyboard"].as_array().ok_or("Bad Request: inline keyboard expected")?;
    for row in rows {
        for button in row.as_array().ok_or("Bad Request: inline keyboard row must be an array")? {
            if button["text"].as_str().is_none_or(str::is_empty) {
                return Err("Bad Request: text buttons are unallowed in the inline keyboard".into());
            }
            let kinds = ["url", "callback_data", "web_app", "login_url", "switch_inline_query", "copy_text", "pay"];
            if kinds.iter().filter(|k| button.get(**k).is_some()).count() != 1 {
                return Err(
                    "Bad Request: can't parse inline keyboard button: exactly one optional field must be used".into()
                );
            }
            if let Some(data) = button.get("callback_data") {
                let len = data.as_str().map_or(0, str::len);
                if !(1..=64).contains(&len) {
                    return Err("Bad Request: BUTTON_DATA_INVALID".into());
                }
            }
        }
    }
    Ok(())
}

/// The methods of the two-way side, on a JSON body.
async fn two_way(state: &Arc<TelegramState>, method: &str, body: &Value) -> Option<Response> {
    let ok = |result: Value| Json(json!({ "ok": true, "result": result })).into_response();
    Some(match method {
        "getfile" => {
            let id = body["file_id"].as_str().unwrap_or_default();
            let found = state.files.lock().unwrap().get(id).map(|(path, bytes)| (path.clone(), bytes.len()));
            match found {
                Some((path, size)) => {
                    ok(json!({ "file_id": id, "file_unique_id": "u", "file_size": size, "file_path": path }))
                }
                None => refusal(StatusCode::BAD_REQUEST, "Bad Request: invalid file_id"),
            }
        }
        "getupdates" => {
            if state.webhook.lock().unwrap().is_some() {
                state.conflicts.fetch_add(1, Ordering::SeqCst);
                return Some(refusal(
                    StatusCode::CONFLICT,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                ));
            }
            let offset = body["offset"].as_i64().unwrap_or(0);
            let limit = body["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
            let timeout = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0));
            let generation = state.poll_generation.fetch_add(1, Ordering::SeqCst) + 1;
            state.wake.notify_waiters();
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let woken = state.wake.notified();
                if state.poll_generation.load(Ordering::SeqCst) != generation {
                    state.conflicts.fetch_add(1, Ordering::SeqCst);
                    return Some(refusal(
                        StatusCode::CONFLICT,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                    ));
                }
                let found: Vec<Value> = {
                    let mut queue = state.updates.lock().unwrap();
                    // Every update below the offset is confirmed: gone for good.
                    queue.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                    queue.iter().take(limit).cloned().collect()
                };
                if !found.is_empty() || tokio::time::Instant::now() >= deadline {
                    return Some(ok(Value::Array(found)));
                }
                let _ = tokio::time::timeout_at(deadline, woken).await;
            }
        }
        "setwebhook" => {
            let url = body["url"].as_str().unwrap_or_default().to_string();
            let secret = body["secret_token"].as_str().map(str::to_string);
            if let Some(secret) = &secret
                && !((1..=256).contains(&secret.len())
                    && secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            {
                return Some(refusal(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: secret token contains unallowed characters",
                ));
            }
            *state.webhook.lock().unwrap() = (!url.is_empty()).then_some((url, secret));
            ok(json!(true))
        }
        "deletewebhook" => {
            *state.webhook.lock().unwrap() = None;
            ok(json!(true))
        }
        "getwebhookinfo" => {
            let url = state.webhook.lock().unwrap().as_ref().map(|(u, _)| u.clone()).unwrap_or_default();
            let pending = state.updates.lock().unwrap().len();
            ok(json!({ "url": url, "has_custom_certificate": false, "pending_update_count": pending }))
        }
        "answercallbackquery" => {
            let id = body["callback_query_id"].as_str().unwrap_or_default().to_string();
            if !state.issued_queries.lock().unwrap().contains(&id) {
                return Some(refusal(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                ));
            }
            let text = body["text"].as_str().unwrap_or_default().to_string();
            if text.chars().count() > 200 {
                return Some(refusal(StatusCode::BAD_REQUEST, "Bad Request: MESSAGE_TOO_LONG"));
            }
            state.answers.lock().unwrap().push(CallbackAnswer { query_id: id, text });
            ok(json!(true))
        }
        "editmessagereplymarkup" => {
            let chat = body["chat_id"].as_i64().map(|c| c.to_string()).or(body["chat_id"].as_str().map(str::to_string));
            let message_id = body["message_id"].as_i64();
            let markup = body.get("reply_markup").cloned().unwrap_or(json!({ "inline_keyboard": [] }));
            if let Err(e) = check_keyboard(&markup) {
                return Some(refusal(StatusCode::BAD_REQUEST, &e));
            }
            let mut messages = state.messages.lock().unwrap();
            let Some(m) =
                messages.iter_mut().find(|m| Some(&m.chat_id) == chat.as_ref() && Some(m.message_id) == message_id)
            else {
                return Some(refusal(StatusCode::BAD_REQUEST, "Bad Request: message to edit not found"));
            };
            let empty = |k: &Option<Value>| {
                k.as_ref().is_none_or(|k| k["inline_keyboard"].as_array().is_none_or(Vec::is_empty))
            };
            let new = Some(markup).filter(|k| !empty(&Some(k.clone())));
            if new == m.keyboard || (empty(&new) && empty(&m.keyboard)) {
                return Some(refusal(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                ));
            }
            m.keyboard = new;
            state.edits.fetch_add(1, Ordering::SeqCst);
            ok(json!({ "message_id": m.message_id, "chat": { "id": m.chat_id }, "text": m.text }))
        }
        _ => return None,
    })
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
    state.methods.lock().unwrap().push((Instant::now(), method.to_ascii_lowercase()));
    if bot != format!("bot{TOKEN}") {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let retry_after = state.throttle_next.swap(0, Ordering::SeqCst);
    if retry_after > 0 {
        state.throttled_at.lock().unwrap().push(Instant::now());
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
    if method != "sendmessage" && method != "sendvideo" {
        let body: Value = if body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => return error(StatusCode::BAD_REQUEST, "Bad Request: invalid JSON"),
            }
        };
        return match two_way(&state, &method, &body).await {
            Some(answer) => answer,
            None => error(StatusCode::NOT_FOUND, "Not Found"),
        };
    }
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
    let keyboard = match field("reply_markup").map(|m| serde_json::from_str::<Value>(&m)) {
        None => None,
        Some(Ok(markup)) => {
            if let Err(e) = check_keyboard(&markup) {
                return error(StatusCode::BAD_REQUEST, &e);
            }
            Some(markup)
        }
        Some(Err(_)) => {
            return error(StatusCode::BAD_REQUEST, "Bad Request: can't parse reply keyboard markup JSON object");
        }
    };
    let message_id = state.next_message_id.fetch_add(1, Ordering::SeqCst);
    state.messages.lock().unwrap().push(Received {
        method: method.clone(),
        chat_id: chat_id.clone(),
        text: text.clone(),
        video_bytes,
        message_id,
        keyboard,
    });
    let result = json!({ "message_id": message_id, "chat": { "id": chat_id }, "text": text });
    Json(json!({ "ok": true, "result": result })).into_response()
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

/// `GET /file/bot<token>/<file_path>`: a file's bytes, for the bot's token only.
async fn file(State(state): State<Arc<TelegramState>>, Path((bot, path)): Path<(String, String)>) -> Response {
    if bot != format!("bot{TOKEN}") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let bytes = state.files.lock().unwrap().values().find(|(p, _)| *p == path).map(|(_, b)| b.clone());
    match bytes {
        Some(bytes) => {
            state.downloads.fetch_add(1, Ordering::SeqCst);
            bytes.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
