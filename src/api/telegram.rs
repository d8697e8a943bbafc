//! The two-way Telegram bot: the API's front door for chats.
//!
//! Chats listed in `telegram.chats` talk to clipforge through the bot:
//!
//! - `/new <script or topic>` submits a job (a single line without a
//!   sentence end, like `/new why cats purr`, is a topic; anything else is a
//!   finished script) and answers with its id; the job's events then come to
//!   the same chat;
//! - `/status <id>` answers a job's state, stage and error;
//! - `/list` answers the ten newest jobs;
//! - the Approve / Send back buttons under a review message
//!   ([`crate::notify::telegram::review_keyboard`]) decide through the review
//!   gate, like the studio and `POST /v1/jobs/{id}/approve`.
//!
//! # Who may do what
//!
//! Each listed chat is bound to an API key by the key's id (never the key
//! itself, which the record store keeps only as a hash). A command does
//! exactly what the API route behind it would do for a request with that
//! key: the scope is the route's in [`super::auth::ROUTE_ACCESS`], the
//! request counts against the key's rate limit, and the route's own handler
//! answers. The key is read at every update, so revoking it stops the chat at
//! once; an unknown or revoked key acts on nothing. A chat not listed gets
//! nothing: no answer, and nothing of it is stored or logged beyond a debug
//! line without its id.
//!
//! # Hearing updates, one way at a time
//!
//! `telegram.mode` picks one of Telegram's two ways (Telegram refuses
//! `getUpdates` with 409 while a webhook is set):
//!
//! - `polling`: API-role processes take turns through a lease in the record
//!   store ([`crate::store::records::BotPolling`]); the holder long-polls
//!   `getUpdates` and moves the stored offset past each update only after it
//!   acted on it (or deliberately ignored it), so a restart or a takeover
//!   neither replays confirmed updates nor skips unconfirmed ones. An update
//!   acted on whose confirmation was lost is acted on again: that is safe, as
//!   `/new` carries an idempotency key made from the chat and message ids and
//!   a review decision only applies to a job still `in_review`.
//! - `webhook`: Telegram POSTs each update to `/telegram/webhook`
//!   ([`webhook`]); a delivery without the registered secret token in
//!   `X-Telegram-Bot-Api-Secret-Token` is refused (401
//!   `telegram_secret_mismatch`) before anything is read.
//!
//! # Telegram's rules
//!
//! Every button press is answered with `answerCallbackQuery` (its client
//! shows a progress bar until then), also a second press or a press
//! delivered twice, which finds the job no longer in review and only says so;
//! a decided review message loses its buttons (`editMessageReplyMarkup`). A
//! 429 pauses the whole bot for its `retry_after` ([`TelegramBot`]); the bot
//! token is in every call's URL and so never in a log line or an answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::ApiState;
use super::auth::{Access, access_for};
use super::error::ApiError;
use super::extract::{Query, read_body};
use crate::crypto::sha256_hex;
use crate::error_code as codes;
use crate::notify::telegram::{MAX_MESSAGE_UNITS, ReviewButton, TelegramBot, TelegramError, truncate};
use crate::settings::{BotChat, BotMode, Settings};
use crate::store::records::{ApiKeyRecord, StoreError};

/// The header Telegram echoes the webhook's `secret_token` in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Largest webhook delivery read: an update is a few kilobytes.
const MAX_UPDATE_BYTES: usize = 1024 * 1024;

/// Telegram's limit on the text of `answerCallbackQuery`.
const MAX_ANSWER_CHARS: usize = 200;

/// Jobs `/list` shows.
const LIST_JOBS: u32 = 10;

/// The two-way bot of one process (see the module docs).
pub struct ChatBot {
    bot: TelegramBot,
    /// The bot's numeric id (the token before its colon; no secret): the
    /// record store keeps one polling turn and offset per bot.
    bot_id: String,
    mode: BotMode,
    chats: Vec<BotChat>,
    /// SHA-256 of the webhook's secret token, compared with the header's.
    secret_hash: Option<String>,
    poll_timeout: Duration,
    /// How long a polling turn lasts without renewal: longer than any call.
    lease: Duration,
    /// This process, as the polling turn's holder.
    holder: String,
}

/// The parts of an `Update` the bot reads; any other kind is ignored.
#[derive(Debug, Deserialize)]
struct Update {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    callback_query: Option<CallbackQuery>,
}

#[derive(Debug, Deserialize)]
struct Message {
    message_id: i64,
    chat: Chat,
    #[serde(default)]
    text: Option<String>,
    /// The message this one answers: `/new` in reply to a file makes a batch.
    #[serde(default)]
    reply_to_message: Option<Box<Replied>>,
}

/// The message a command replied to; only its file matters.
#[derive(Debug, Deserialize)]
struct Replied {
    #[serde(default)]
    document: Option<Document>,
}

#[derive(Debug, Deserialize)]
struct Document {
    file_id: String,
    #[serde(default)]
    file_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    id: String,
    /// The message the button was under (absent for very old messages).
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    data: Option<String>,
}

/// What an API handler answered: the JSON body, or the refusal.
type Answered = Result<Value, ApiError>;

impl ChatBot {
    /// The bot `telegram.mode` asks for; None when it is `off` (or no token is set).
    pub fn from_settings(s: &Settings) -> Option<Arc<Self>> {
        let t = &s.telegram;
        if t.mode == BotMode::Off {
            return None;
        }
        let token = t.bot_token()?;
        let bot_id = token.expose_secret().split(':').next().unwrap_or_default().to_string();
        Some(Arc::new(Self {
            bot: TelegramBot::new(&t.api_url, SecretString::from(token.expose_secret().to_string()), t.timeout()),
            bot_id,
            mode: t.mode,
            chats: t.bot_chats(),
            secret_hash: t.webhook_secret().map(|s| sha256_hex(s.expose_secret())),
            poll_timeout: t.poll_timeout(),
            lease: t.timeout() + Duration::from_secs(10),
            holder: uuid::Uuid::now_v7().to_string(),
        }))
    }

    pub fn mode(&self) -> BotMode {
        self.mode
    }

    /// Whether a webhook delivery's secret header is the registered one.
    /// Hashes are compared, so the comparison's time says nothing of the secret.
    fn secret_matches(&self, header: Option<&str>) -> bool {
        match (&self.secret_hash, header) {
            (Some(want), Some(got)) => sha256_hex(got) == *want,
            _ => false,
        }
    }

    /// Long-polls `getUpdates` while this process holds the polling turn,
    /// and stands by while another does, until `stop` is cancelled.
    pub async fn poll(self: Arc<Self>, state: ApiState, stop: CancellationToken) {
        let records = state.pipeline.records.clone();
        let standby = (self.lease / 3).min(Duration::from_secs(5));
        let mut holding = false;
        loop {
            if stop.is_cancelled() {
                break;
            }
            let pause = match records.claim_bot_polling(&self.bot_id, &self.holder, Utc::now(), self.lease).await {
                Ok(Some(offset)) => {
                    if !holding {
                        info!(offset, "polling Telegram for updates");
                        holding = true;
                    }
                    self.poll_once(&state, offset, &stop).await
                }
                Ok(None) => {
                    if holding {
                        info!("another process polls Telegram now; standing by");
                        holding = false;
                    }
                    Some(standby)
                }
                Err(e) => {
                    warn!(error = %e, "could not claim the Telegram polling turn; trying again");
                    Some(standby)
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        if holding && let Err(e) = records.release_bot_polling(&self.bot_id, &self.holder).await {
            warn!(error = %e, "could not give up the Telegram polling turn; it lapses by itself");
        }
    }

    /// One `getUpdates` from `offset` and the updates it brought, each
    /// confirmed once acted on. Returns how long to pause before the next
    /// round (None: go on at once).
    async fn poll_once(&self, state: &ApiState, offset: i64, stop: &CancellationToken) -> Option<Duration> {
        let body = json!({
            "offset": offset,
            "timeout": self.poll_timeout.as_secs(),
            "allowed_updates": ["message", "callback_query"],
        });
        let answer = tokio::select! {
            () = stop.cancelled() => return None,
            answer = self.bot.call_json("getUpdates", &body) => answer,
        };
        let updates = match answer {
            Ok(Value::Array(updates)) => updates,
            Ok(_) => return Some(Duration::from_secs(1)),
            // The whole bot is paused for retry_after; the next call waits it out.
            Err(TelegramError::Throttled(wait)) => {
                info!(retry_after_s = wait.as_secs(), "Telegram asked the bot to slow down; waiting");
                return None;
            }
            Err(TelegramError::Refused { code: 409, description }) => {
                warn!(description = %description, "getUpdates refused: a webhook is set for this bot, or another program polls it");
                return Some(Duration::from_secs(5));
            }
            Err(e) => {
                warn!(error = %e, "getUpdates failed; trying again");
                return Some(Duration::from_secs(2));
            }
        };
        for update in updates {
            let Some(id) = update["update_id"].as_i64() else { continue };
            if let Err(e) = self.handle(state, &update).await {
                // Not confirmed: asked for again next round.
                warn!(update_id = id, error = %e, "could not act on a Telegram update; trying again");
                return Some(Duration::from_secs(2));
            }
            match state
                .pipeline
                .records
                .confirm_bot_updates(&self.bot_id, &self.holder, id + 1, Utc::now(), self.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => return None, // the turn went to another process
                Err(e) => {
                    warn!(update_id = id, error = %e, "could not confirm a Telegram update; it may be acted on again");
                    return Some(Duration::from_secs(2));
                }
            }
        }
        None
    }

    /// Acts on one update. Err only when the record store could not say
    /// whose the chat's key is: the update is then not confirmed (polling)
    /// or refused with 503 (webhook), and Telegram brings it again.
    pub async fn handle(&self, state: &ApiState, update: &Value) -> Result<(), StoreError> {
        let Ok(update) = serde_json::from_value::<Update>(update.clone()) else {
            debug!("a Telegram update of a shape the bot does not read; ignored");
            return Ok(());
        };
        if let Some(message) = update.message {
            return self.on_message(state, message).await;
        }
        if let Some(press) = update.callback_query {
            return self.on_press(state, press).await;
        }
        Ok(())
    }

    /// The key a listed chat acts with; None for a chat not listed (nothing
    /// is said to it) or one whose key is unknown or revoked.
    async fn key_of(&self, state: &ApiState, chat_id: i64) -> Result<Option<ApiKeyRecord>, StoreError> {
        let Some(chat) = self.chats.iter().find(|c| c.chat_id == chat_id) else {
            debug!("an update from a chat the bot does not act for; ignored");
            return Ok(None);
        };
        let keys = state.pipeline.records.list_api_keys().await?;
        let key = keys.into_iter().find(|k| k.id == chat.key_id && k.revoked_at.is_none());
        if key.is_none() {
            warn!(chat_id, key_id = %chat.key_id, "the chat's API key is unknown or revoked; acting on nothing");
        }
        Ok(key)
    }

    async fn on_message(&self, state: &ApiState, message: Message) -> Result<(), StoreError> {
        let Some(text) = message.text.as_deref().map(str::trim).filter(|t| t.starts_with('/')) else {
            return Ok(()); // chatter, not a command
        };
        let chat_id = message.chat.id;
        let Some(key) = self.key_of(state, chat_id).await? else { return Ok(()) };
        let (command, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        // `/new@clipforge_bot` in groups names the bot.
        let command = command.split('@').next().unwrap_or_default().to_ascii_lowercase();
        let rest = rest.trim();
        let reply = match command.as_str() {
            "/new" => match message.reply_to_message.as_ref().and_then(|r| r.document.as_ref()) {
                Some(file) => self.new_batch(state, &key, chat_id, message.message_id, file).await,
                None => self.new_job(state, &key, chat_id, message.message_id, rest).await,
            },
            "/status" => self.status(state, &key, rest).await,
            "/list" => self.list(state, &key).await,
            _ => HELP.to_string(),
        };
        self.say(chat_id, &reply).await;
        Ok(())
    }

    /// The key's answer to a route: None when it may call it (counted
    /// against its rate limit), else what to tell the chat.
    async fn admitted(&self, state: &ApiState, key: &ApiKeyRecord, method: Method, route: &str) -> Option<String> {
        if let Access::Needs(scope) = access_for(&method, route)
            && !key.allows(scope)
        {
            return Some(format!(
                "This chat's API key ({}) lacks the `{scope}` scope this needs; it holds: {}.",
                key.id,
                crate::store::records::Scope::join(&key.scopes)
            ));
        }
        match super::auth::limit(state, key.clone()).await {
            Ok(_) => None,
            Err(refusal) => {
                let wait = refusal.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("a few");
                Some(match refusal.status() {
                    StatusCode::TOO_MANY_REQUESTS => {
                        format!("Too many requests with this chat's API key; try again in {wait} s.")
                    }
                    _ => "The request could not be counted against the key's limit; try again shortly.".into(),
                })
            }
        }
    }

    async fn new_job(&self, state: &ApiState, key: &ApiKeyRecord, chat_id: i64, message_id: i64, text: &str) -> String {
        if text.is_empty() {
            return "Say what the video is about: /new <topic>, or /new followed by the finished script.".into();
        }
        if let Some(refused) = self.admitted(state, key, Method::POST, "/v1/jobs").await {
            return refused;
        }
        let kind = if is_topic(text) { "topic" } else { "script" };
        let request = json!({
            kind: text,
            // The same message brought twice (a webhook retry, an unconfirmed
            // update) makes the same job once.
            "idempotency_key": format!("telegram-{chat_id}-{message_id}"),
            // The job's events come back to the chat that asked for it.
            "notify": { "telegram_chat_id": chat_id.to_string() },
        });
        let answered = respond(
            super::jobs::create_job(
                State(state.clone()),
                Some(Extension(key.clone())),
                Body::from(request.to_string()),
            )
            .await,
        )
        .await;
        match answered {
            Ok(accepted) => {
                let id = accepted["job_id"].as_str().unwrap_or_default();
                info!(job_id = %id, key_id = %key.id, kind, "job submitted from Telegram");
                if accepted["duplicate"] == true {
                    format!(
                        "Job {id} was already made from this message; it is {}.",
                        accepted["state"].as_str().unwrap_or("?")
                    )
                } else {
                    format!("Job {id} is queued ({kind}). I will tell you here how it goes.")
                }
            }
            Err(e) => refusal_text("Not queued", &e),
        }
    }

    /// `/new` in reply to a batch file (.csv, .jsonl/.ndjson or a .json
    /// array, as `POST /v1/batches` takes): one job per line, through the
    /// batches route with the chat's key and the message as the batch key.
    async fn new_batch(
        &self,
        state: &ApiState,
        key: &ApiKeyRecord,
        chat_id: i64,
        message_id: i64,
        file: &Document,
    ) -> String {
        let name = file.file_name.clone().unwrap_or_default();
        let Some(content_type) = batch_content_type(&name) else {
            return format!(
                "{} is not a batch file: reply /new to a .csv, .jsonl or .json file (one job per line).",
                crate::domain::echo(&name)
            );
        };
        if let Some(refused) = self.admitted(state, key, Method::POST, "/v1/batches").await {
            return refused;
        }
        let bytes = match self.bot.download(&file.file_id, state.max_batch_bytes).await {
            Ok(bytes) => bytes,
            Err(e) => return format!("Could not read the file: {e}"),
        };
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static(content_type));
        let query = super::batches::BatchQuery { key: Some(format!("telegram-{chat_id}-{message_id}")) };
        let answered = respond(
            super::batches::create_batch(
                State(state.clone()),
                super::extract::Query(query),
                Some(Extension(key.clone())),
                headers,
                Body::from(bytes),
            )
            .await,
        )
        .await;
        match answered {
            Ok(batch) => {
                let id = batch["batch_id"].as_str().unwrap_or_default();
                let counts = &batch["counts"];
                info!(batch_id = %id, key_id = %key.id, lines = %counts["lines"], "batch submitted from Telegram");
                let mut text = format!(
                    "Batch {id}: {} of {} lines queued as jobs, {} refused.",
                    counts["accepted"], counts["lines"], counts["rejected"]
                );
                for r in batch["rejected"].as_array().into_iter().flatten().take(5) {
                    text.push_str(&format!(
                        "\nLine {}: {} ({})",
                        r["line"],
                        r["message"].as_str().unwrap_or(""),
                        r["code"].as_str().unwrap_or("")
                    ));
                }
                text
            }
            Err(e) => refusal_text("Not queued", &e),
        }
    }

    async fn status(&self, state: &ApiState, key: &ApiKeyRecord, id: &str) -> String {
        if id.is_empty() {
            return "Which job? /status <job id>".into();
        }
        if let Some(refused) = self.admitted(state, key, Method::GET, "/v1/jobs/{id}").await {
            return refused;
        }
        let answered = super::jobs::get_job(State(state.clone()), Path(id.to_string())).await;
        match answered.map(|json| serde_json::to_value(json.0).unwrap_or_default()) {
            Ok(job) => job_lines(&job, true),
            Err(e) => refusal_text("No answer", &e),
        }
    }

    async fn list(&self, state: &ApiState, key: &ApiKeyRecord) -> String {
        if let Some(refused) = self.admitted(state, key, Method::GET, "/v1/jobs").await {
            return refused;
        }
        let query = super::jobs::ListQuery { state: None, limit: Some(LIST_JOBS), before: None, q: None };
        let answered = super::jobs::list_jobs(State(state.clone()), Query(query)).await;
        match answered.map(|json| serde_json::to_value(json.0).unwrap_or_default()) {
            Ok(page) => {
                let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
                if jobs.is_empty() {
                    return "No jobs yet.".into();
                }
                let lines: Vec<String> = jobs.iter().map(|j| job_lines(j, false)).collect();
                format!("The {} newest jobs:\n{}", jobs.len(), lines.join("\n"))
            }
            Err(e) => refusal_text("No answer", &e),
        }
    }

    /// A press of a review button: decided through the review gate, always
    /// answered (a stranger's press excepted), the buttons removed once decided.
    async fn on_press(&self, state: &ApiState, press: CallbackQuery) -> Result<(), StoreError> {
        let Some(message) = &press.message else { return Ok(()) };
        let chat_id = message.chat.id;
        if !self.chats.iter().any(|c| c.chat_id == chat_id) {
            debug!("a button press from a chat the bot does not act for; ignored");
            return Ok(());
        }
        let Some(key) = self.key_of(state, chat_id).await? else {
            self.answer(&press.id, "This chat's API key is unknown or revoked.").await;
            return Ok(());
        };
        let Some((button, id)) = press.data.as_deref().and_then(ReviewButton::parse) else {
            self.answer(&press.id, "This button is not one of clipforge's.").await;
            return Ok(());
        };
        let route = match button {
            ReviewButton::Approve => "/v1/jobs/{id}/approve",
            ReviewButton::SendBack => "/v1/jobs/{id}/reject",
        };
        if let Some(refused) = self.admitted(state, &key, Method::POST, route).await {
            self.answer(&press.id, &refused).await;
            return Ok(());
        }
        let (path, who) = (Path(id.to_string()), Some(Extension(key.clone())));
        let decided = match button {
            ReviewButton::Approve => super::review::approve(State(state.clone()), path, who, Body::empty()).await,
            ReviewButton::SendBack => {
                let note = json!({ "note": SEND_BACK_NOTE }).to_string();
                super::review::reject(State(state.clone()), path, who, Body::from(note)).await
            }
        };
        let text = match decided {
            Ok(job) => {
                let verb = if button == ReviewButton::Approve { "Approved" } else { "Sent back" };
                info!(job_id = %id, key_id = %key.id, decision = verb, "review decided from Telegram");
                format!("{verb}: job {} is {} now.", job.0.id, job.0.state)
            }
            // A second press, or the same press brought twice: the gate
            // acted once and says where the job is now; nothing is stored.
            Err(e) if e.code == codes::NOT_IN_REVIEW => format!("Already decided: {}.", e.message),
            Err(e) => {
                self.answer(&press.id, &refusal_text("Not decided", &e)).await;
                return Ok(());
            }
        };
        self.answer(&press.id, &text).await;
        self.remove_buttons(chat_id, message.message_id).await;
        Ok(())
    }

    /// `answerCallbackQuery`: ends the button's progress bar with `text`.
    async fn answer(&self, query_id: &str, text: &str) {
        let text: String = text.chars().take(MAX_ANSWER_CHARS).collect();
        let body = json!({ "callback_query_id": query_id, "text": text });
        if let Err(e) = self.call_twice("answerCallbackQuery", &body).await {
            warn!(error = %e, "could not answer a button press");
        }
    }

    /// Takes the buttons off a decided review message.
    async fn remove_buttons(&self, chat_id: i64, message_id: i64) {
        let body = json!({ "chat_id": chat_id, "message_id": message_id, "reply_markup": { "inline_keyboard": [] } });
        if let Err(e) = self.call_twice("editMessageReplyMarkup", &body).await {
            // "message is not modified": a repeat press found them gone already.
            debug!(error = %e, "could not remove the buttons of a review message");
        }
    }

    /// Sends plain `text` to the chat.
    async fn say(&self, chat_id: i64, text: &str) {
        let body = json!({ "chat_id": chat_id, "text": truncate(text, MAX_MESSAGE_UNITS) });
        if let Err(e) = self.call_twice("sendMessage", &body).await {
            warn!(error = %e, "could not answer a Telegram command");
        }
    }

    /// A call, made once more after a 429 (the bot waits out `retry_after` first).
    async fn call_twice(&self, method: &str, body: &Value) -> Result<Value, TelegramError> {
        match self.bot.call_json(method, body).await {
            Err(TelegramError::Throttled(_)) => self.bot.call_json(method, body).await,
            other => other,
        }
    }
}

/// The note a job sent back with the button carries (the gate needs one).
const SEND_BACK_NOTE: &str = "Sent back from Telegram; the reviewer will say what should change.";

const HELP: &str = "Commands:\n/new <topic or script> — make a video (one line without a sentence end is a topic)\n\
                    /new in reply to a .csv, .jsonl or .json file — one video per line (a batch)\n\
                    /status <job id> — where a job is\n/list — the newest jobs";

/// The batch format a file's name says, as `POST /v1/batches` takes it.
fn batch_content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some("text/csv"),
        "jsonl" | "ndjson" => Some("application/x-ndjson"),
        "json" => Some("application/json"),
        _ => None,
    }
}

/// Whether `/new` text is a topic: one line without a sentence end. Anything
/// else (several sentences, a line break) is taken as the finished script.
fn is_topic(text: &str) -> bool {
    !text.contains('\n') && !text.trim_end().ends_with(['.', '!', '?', '…']) && !text.contains(". ")
}

/// An API handler's answer as JSON, or its refusal.
async fn respond<R: IntoResponse>(answered: Result<R, ApiError>) -> Answered {
    let response = answered?.into_response();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_UPDATE_BYTES)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL_ERROR, e.to_string()))?;
    Ok(serde_json::from_slice(&bytes).unwrap_or_default())
}

/// A refusal as the chat reads it: the message, then each field's problem.
fn refusal_text(what: &str, e: &ApiError) -> String {
    let mut text = format!("{what}: {} ({})", e.message, e.code);
    for d in &e.details {
        text.push_str(&format!("\n- {}: {}", d.field, d.message));
    }
    text
}

/// A job view as lines: id and state, and with `full` its stage, waiting
/// point and error.
fn job_lines(job: &Value, full: bool) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let what = job["spec"]["topic"].as_str().or(job["spec"]["script"].as_str()).unwrap_or_default();
    let mut line = format!("{} — {} — {}", s(&job["id"]), s(&job["state"]), truncate(what, 60));
    if full {
        if let Some(stage) = job["stage"].as_str() {
            line.push_str(&format!("\nStage: {stage}"));
        }
        if let Some(point) = job["review"]["waiting_at"].as_str() {
            line.push_str(&format!("\nWaits for {point} review"));
        }
        if job["error"].is_object() {
            line.push_str(&format!("\nError: {} ({})", s(&job["error"]["message"]), s(&job["error"]["code"])));
        }
    }
    line
}

/// Telegram's deliveries in webhook mode: the secret token checked first,
/// then the update acted on like a polled one. Answers 200 once acted on
/// (or deliberately ignored), 503 when the record store could not say whose
/// the chat's key is (Telegram delivers it again).
pub async fn webhook(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<StatusCode, ApiError> {
    let Some(bot) = state.telegram.clone().filter(|b| b.mode() == BotMode::Webhook) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, "telegram.mode is not webhook here"));
    };
    let secret = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
    if !bot.secret_matches(secret) {
        info!("a Telegram webhook delivery without the right secret token refused");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::TELEGRAM_SECRET_MISMATCH,
            "the X-Telegram-Bot-Api-Secret-Token header is missing or not the webhook's secret token",
        ));
    }
    let body = read_body(body, MAX_UPDATE_BYTES)
        .await
        .map_err(|e| e.into_api_error(codes::BODY_TOO_LARGE, || "an update is far smaller than 1 MiB".into()))?;
    let update: Value = super::jobs::parse_json(&body)?;
    bot.handle(&state, &update).await.map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_without_a_sentence_end_is_a_topic_and_anything_else_a_script() {
        assert!(is_topic("why cats purr"));
        assert!(is_topic("3 tips for v1.2 users"));
        assert!(!is_topic("Cats purr when content. They also purr when hurt."));
        assert!(!is_topic("Cats purr!"));
        assert!(!is_topic("line one\nline two"));
    }
}
