//! The Telegram Bot API (spec section 7): `sendMessage` and `sendVideo` with
//! MarkdownV2, the 4096-character message limit, and 429 `retry_after`
//! honoured for the whole bot; and, for the two-way bot ([`super::bot`]),
//! `getUpdates`, `answerCallbackQuery` and `editMessageReplyMarkup`.
//!
//! The bot's pause after a 429 is kept in this process (one [`TelegramBot`]
//! per process, shared by its senders): Telegram blocks every call of the bot
//! for `retry_after` seconds, so no call of this process is made before that.
//! Other processes learn of the block from their own first 429; with a few
//! publish processes that costs a few refused calls, not a ban.
//!
//! The request URL carries the bot token, so it is never logged and reqwest's
//! errors are stripped of it before they go anywhere.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Telegram's limit on a message's text after entity parsing.
pub const MAX_MESSAGE_UNITS: usize = 4096;
/// Telegram's limit on a video caption after entity parsing.
pub const MAX_CAPTION_UNITS: usize = 1024;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TelegramError {
    /// 429: the whole bot must wait this long.
    #[error("telegram: too many requests; retry after {0:?}")]
    Throttled(Duration),
    /// Telegram refused the call; the same call would be refused again.
    #[error("telegram refused the call ({code}): {description}")]
    Refused { code: i64, description: String },
    /// Telegram or the network failed; worth another try.
    #[error("telegram unavailable: {0}")]
    Unavailable(String),
}

impl TelegramError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, TelegramError::Refused { .. })
    }
}

/// A Telegram bot, shared by every sender of a process.
pub struct TelegramBot {
    http: reqwest::Client,
    api_url: String,
    token: SecretString,
    /// No call before this instant: a 429's `retry_after` applies to the whole bot.
    not_before: Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<AnswerParameters>,
}

#[derive(Deserialize)]
struct AnswerParameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

impl TelegramBot {
    pub fn new(api_url: &str, token: SecretString, timeout: Duration) -> Self {
        Self {
            http: crate::providers::http::client(timeout),
            api_url: api_url.trim_end_matches('/').to_string(),
            token,
            not_before: Mutex::new(None),
        }
    }

    /// How long the bot must still wait before its next call.
    pub async fn paused_for(&self) -> Duration {
        self.not_before.lock().await.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or_default()
    }

    /// Makes no call for `wait` from now: after a 429, the whole bot waits.
    async fn pause(&self, wait: Duration) {
        *self.not_before.lock().await = Some(Instant::now() + wait);
    }

    /// Sends `text`, already escaped for MarkdownV2 and within the limit.
    pub async fn send_message(&self, chat_id: &str, text: &str) -> Result<(), TelegramError> {
        self.send_message_with(chat_id, text, None).await
    }

    /// Sends `text` (MarkdownV2, within the limit) with an inline keyboard
    /// (`InlineKeyboardMarkup`) under it, when given.
    pub async fn send_message_with(
        &self,
        chat_id: &str,
        text: &str,
        keyboard: Option<&serde_json::Value>,
    ) -> Result<(), TelegramError> {
        let mut body = serde_json::json!({
            "chat_id": chat_id,
            "text": text,
            "parse_mode": "MarkdownV2",
            "link_preview_options": { "is_disabled": true },
        });
        if let Some(keyboard) = keyboard {
            body["reply_markup"] = keyboard.clone();
        }
        self.call("sendMessage", |req| req.json(&body)).await.map(drop)
    }

    /// Calls `method` with a JSON body and returns its `result`: the calls
    /// of the two-way bot (`getUpdates`, `answerCallbackQuery`,
    /// `editMessageReplyMarkup`, a plain-text `sendMessage`).
    pub async fn call_json(&self, method: &str, body: &serde_json::Value) -> Result<serde_json::Value, TelegramError> {
        self.call(method, |req| req.json(body)).await
    }

    /// Downloads a file a chat sent (`getFile`, then its `file_path` under
    /// `/file/bot<token>/`), refused past `max` bytes. The URL carries the
    /// token, so no error names it.
    pub async fn download(&self, file_id: &str, max: usize) -> Result<Vec<u8>, TelegramError> {
        let file = self.call_json("getFile", &serde_json::json!({ "file_id": file_id })).await?;
        let too_big = |n: u64| TelegramError::Refused {
            code: 413,
            description: format!("the file has {n} bytes, more than the {max} a batch may have (limits.max_batch_mb)"),
        };
        if let Some(n) = file["file_size"].as_u64().filter(|n| *n as usize > max) {
            return Err(too_big(n));
        }
        let Some(path) = file["file_path"].as_str() else {
            return Err(TelegramError::Refused { code: 400, description: "Telegram gave no file_path".into() });
        };
        let url = format!("{}/file/bot{}/{path}", self.api_url, self.token.expose_secret());
        let resp =
            self.http.get(url).send().await.map_err(|e| TelegramError::Unavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(TelegramError::Unavailable(format!("downloading the file: HTTP {}", resp.status())));
        }
        let bytes = resp.bytes().await.map_err(|e| TelegramError::Unavailable(e.without_url().to_string()))?;
        if bytes.len() > max {
            return Err(too_big(bytes.len() as u64));
        }
        Ok(bytes.to_vec())
    }

    /// Uploads the MP4 at `path` (under 50 MB) with a MarkdownV2 `caption`.
    pub async fn send_video(&self, chat_id: &str, path: &Path, caption: &str) -> Result<(), TelegramError> {
        let video =
            tokio::fs::read(path).await.map_err(|e| TelegramError::Unavailable(format!("reading the video: {e}")))?;
        let boundary = format!("clipforge-{}", uuid::Uuid::now_v7().simple());
        let body = multipart(
            &boundary,
            &[("chat_id", chat_id), ("caption", caption), ("parse_mode", "MarkdownV2"), ("supports_streaming", "true")],
            ("video", "video.mp4", "video/mp4", &video),
        );
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.call("sendVideo", |req| req.header("content-type", content_type.as_str()).body(body.clone()))
            .await
            .map(drop)
    }

    async fn call(
        &self,
        method: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, TelegramError> {
        let wait = self.paused_for().await;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let url = format!("{}/bot{}/{method}", self.api_url, self.token.expose_secret());
        let resp = build(self.http.post(url))
            .send()
            .await
            .map_err(|e| TelegramError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        let answer: Option<Answer> = resp.json().await.ok();
        match answer {
            Some(a) if a.ok && status.is_success() => Ok(a.result.unwrap_or_default()),
            Some(a) => {
                let err = classify(status.as_u16(), a);
                if let TelegramError::Throttled(wait) = &err {
                    self.pause(*wait).await;
                }
                Err(err)
            }
            None if status.is_server_error() || status.as_u16() == 429 => {
                Err(TelegramError::Unavailable(format!("HTTP {status} without a Bot API answer")))
            }
            None => Err(TelegramError::Refused {
                code: i64::from(status.as_u16()),
                description: "an answer that is not the Bot API's".into(),
            }),
        }
    }
}

/// Maps a `{"ok": false, …}` answer: branch on HTTP status and `parameters`,
/// as the spec says `error_code` contents may change.
fn classify(status: u16, a: Answer) -> TelegramError {
    let description = a.description.unwrap_or_default();
    let params = a.parameters.unwrap_or(AnswerParameters { retry_after: None, migrate_to_chat_id: None });
    if status == 429 || a.error_code == Some(429) {
        return TelegramError::Throttled(Duration::from_secs(params.retry_after.unwrap_or(1).max(1)));
    }
    if let Some(new_id) = params.migrate_to_chat_id {
        return TelegramError::Refused {
            code: a.error_code.unwrap_or(i64::from(status)),
            description: format!("{description}; the group is now chat {new_id}: set that chat id instead"),
        };
    }
    if status >= 500 {
        return TelegramError::Unavailable(format!("HTTP {status}: {description}"));
    }
    TelegramError::Refused { code: a.error_code.unwrap_or(i64::from(status)), description }
}

/// A `multipart/form-data` body of text fields and one file.
fn multipart(boundary: &str, fields: &[(&str, &str)], file: (&str, &str, &str, &[u8])) -> Vec<u8> {
    let mut body = Vec::with_capacity(file.3.len() + 1024);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    let (name, filename, content_type, bytes) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// Telegram's limit on a button's `callback_data`, in bytes.
pub const MAX_CALLBACK_DATA_BYTES: usize = 64;

/// The inline buttons under a review message, and what each sends back as
/// its `callback_data`: `approve:<job id>` or `back:<job id>` (at most 43
/// bytes for a job id, within Telegram's 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewButton {
    Approve,
    SendBack,
}

impl ReviewButton {
    fn prefix(self) -> &'static str {
        match self {
            ReviewButton::Approve => "approve:",
            ReviewButton::SendBack => "back:",
        }
    }

    /// The button's `callback_data` for `job_id`; None when it would be
    /// longer than Telegram allows (the message then goes without buttons).
    pub fn data(self, job_id: &str) -> Option<String> {
        let data = format!("{}{job_id}", self.prefix());
        (data.len() <= MAX_CALLBACK_DATA_BYTES).then_some(data)
    }

    /// The button and job id a press's `callback_data` names.
    pub fn parse(data: &str) -> Option<(Self, &str)> {
        [ReviewButton::Approve, ReviewButton::SendBack]
            .into_iter()
            .find_map(|b| data.strip_prefix(b.prefix()).map(|id| (b, id)))
            .filter(|(_, id)| !id.is_empty())
    }
}

/// The `InlineKeyboardMarkup` of a review message about `job_id`: Approve
/// and Send back side by side.
pub fn review_keyboard(job_id: &str) -> Option<serde_json::Value> {
    let approve = ReviewButton::Approve.data(job_id)?;
    let back = ReviewButton::SendBack.data(job_id)?;
    Some(serde_json::json!({ "inline_keyboard": [[
        { "text": "Approve", "callback_data": approve },
        { "text": "Send back", "callback_data": back },
    ]] }))
}

/// Escapes `text` for MarkdownV2 outside entities: every character the Bot
/// API reserves (`_*[]()~`>#+-=|{}.!`) and the backslash get a backslash.
pub fn escape_markdown_v2(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        if "_*[]()~`>#+-=|{}.!\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Length as Telegram counts it: UTF-16 code units (an emoji counts two).
pub fn telegram_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Splits plain (unescaped) `text` into parts of at most `max` UTF-16 units,
/// at line breaks where possible, else inside a line at a character boundary.
/// Escaping a part afterwards does not change its length after parsing.
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        if telegram_len(&current) + telegram_len(line) <= max {
            current.push_str(line);
            continue;
        }
        if !current.is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        let mut units = 0;
        for c in line.chars() {
            if units + c.len_utf16() > max {
                parts.push(std::mem::take(&mut current));
                units = 0;
            }
            current.push(c);
            units += c.len_utf16();
        }
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts.into_iter().map(|p| p.trim_end_matches('\n').to_string()).filter(|p| !p.is_empty()).collect()
}

/// Cuts plain `text` to at most `max` UTF-16 units, ending with "…" when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if telegram_len(text) <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut units = 0;
    for c in text.chars() {
        if units + c.len_utf16() > max - 1 {
            break;
        }
        out.push(c);
        units += c.len_utf16();
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_buttons_fit_telegrams_64_bytes_and_read_back() {
        let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let keyboard = review_keyboard(id).unwrap();
        let row = keyboard["inline_keyboard"][0].as_array().unwrap();
        assert_eq!(row.len(), 2);
        for button in row {
            let data = button["callback_data"].as_str().unwrap();
            assert!((1..=MAX_CALLBACK_DATA_BYTES).contains(&data.len()), "{data}");
        }
        assert_eq!(ReviewButton::parse(row[0]["callback_data"].as_str().unwrap()), Some((ReviewButton::Approve, id)));
        assert_eq!(ReviewButton::parse(row[1]["callback_data"].as_str().unwrap()), Some((ReviewButton::SendBack, id)));
        assert_eq!(ReviewButton::parse("approve:"), None);
        assert_eq!(ReviewButton::parse("delete:x"), None);
        assert!(review_keyboard(&"x".repeat(60)).is_none(), "too long for callback_data: no buttons");
    }

    #[test]
    fn every_reserved_character_and_the_backslash_are_escaped() {
        assert_eq!(escape_markdown_v2("_*[]()~`>#+-=|{}.!\\"), r"\_\*\[\]\(\)\~\`\>\#\+\-\=\|\{\}\.\!\\");
        assert_eq!(escape_markdown_v2("plain words, 100% ok? é"), "plain words, 100% ok? é");
        assert_eq!(escape_markdown_v2("v1.2 (beta)!"), r"v1\.2 \(beta\)\!");
    }

    #[test]
    fn long_text_is_split_at_lines_within_the_limit() {
        let line = "x".repeat(3000);
        let text = format!("{line}\n{line}\nshort");
        let parts = split_message(&text, MAX_MESSAGE_UNITS);
        assert_eq!(parts.len(), 2, "{:?}", parts.iter().map(|p| p.len()).collect::<Vec<_>>());
        assert_eq!(parts[0], line);
        assert_eq!(parts[1], format!("{line}\nshort"));
        assert_eq!(split_message("hello", MAX_MESSAGE_UNITS), ["hello"]);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_by_utf16_units() {
        // 🎬 is two UTF-16 units: 3000 of them are 6000 units.
        let text = "🎬".repeat(3000);
        let parts = split_message(&text, MAX_MESSAGE_UNITS);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| telegram_len(p) <= MAX_MESSAGE_UNITS));
        assert_eq!(telegram_len(&parts[0]), 4096);
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn truncation_ends_with_an_ellipsis_within_the_limit() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"a".repeat(2000), MAX_CAPTION_UNITS);
        assert_eq!(telegram_len(&cut), MAX_CAPTION_UNITS);
        assert!(cut.ends_with('…'));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_the_bot_for_its_retry_after_counted_down_by_the_clock() {
        let bot = TelegramBot::new("http://127.0.0.1:9", SecretString::from("t"), std::time::Duration::from_secs(10));
        assert_eq!(bot.paused_for().await, Duration::ZERO, "not paused before any 429");
        bot.pause(Duration::from_secs(35)).await;
        assert_eq!(bot.paused_for().await, Duration::from_secs(35));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(bot.paused_for().await, Duration::from_secs(25));
        tokio::time::advance(Duration::from_secs(25)).await;
        assert_eq!(bot.paused_for().await, Duration::ZERO, "over exactly at retry_after");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(bot.paused_for().await, Duration::ZERO);
    }

    #[test]
    fn answers_map_to_throttled_refused_or_unavailable() {
        let answer = |json: &str| serde_json::from_str::<Answer>(json).unwrap();
        let throttled = answer(
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 35","parameters":{"retry_after":35}}"#,
        );
        assert_eq!(classify(429, throttled), TelegramError::Throttled(Duration::from_secs(35)));
        let bad = answer(r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#);
        assert!(!classify(400, bad).is_retryable());
        let down = answer(r#"{"ok":false,"error_code":502,"description":"Bad Gateway"}"#);
        assert!(classify(502, down).is_retryable());
        let moved = answer(
            r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001}}"#,
        );
        assert!(classify(400, moved).to_string().contains("-1001"));
    }
}
