//! Notifications: Telegram messages and signed webhooks about job events.
//!
//! Sending is a step of its own. When the pipeline records a state change a
//! user cares about (queued when asked for, staged, in_inbox, failed, waiting,
//! needs_reconnect, in_review, changes_requested),
//! [`crate::pipeline::Pipeline::notify`] adds one outbox row per channel to
//! the record store and goes on; the job never waits for
//! Telegram or a webhook receiver. A [`Notifier`] in every publish-role process
//! claims due rows, sends them, and records the outcome; failures back off
//! exponentially and end `undeliverable` after `webhooks.max_attempts`.
//!
//! # Duplicates
//!
//! - The outbox is keyed by (job, event, event time, channel): a retried or
//!   redelivered pipeline step that records the same event adds nothing.
//! - A row is marked `sending` with a lease before the call and `sent` right
//!   after it. A sender killed in between leaves the row `sending`; when the
//!   lease lapses another sender sends it again. Delivery is therefore
//!   at-least-once, with the duplicate window narrowed to the call itself and
//!   the write after it: Telegram has no idempotency key, so a message Telegram
//!   accepted just before its sender died is sent twice. Webhook receivers can
//!   drop such repeats by the event `id`, which stays the same.
//! - After a 429, the whole bot pauses for `retry_after` in this process (see
//!   [`telegram`]).

pub mod settings;
pub mod telegram;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::domain::{JobSpec, JobState, ScriptSource};
use crate::settings::Settings;
use crate::store::objects::{ObjectKey, ObjectStore};
use crate::store::records::{
    Channel, JobRecord, NewNotification, Notification, NotificationOutcome, Outbox, StoreError,
};
use telegram::{MAX_CAPTION_UNITS, MAX_MESSAGE_UNITS, TelegramBot, TelegramError, escape_markdown_v2};
use webhook::{WebhookError, WebhookSender};

/// The team-wide targets from `[notify]`, for jobs that name none of their own.
#[derive(Debug, Clone, Default)]
pub struct NotifyDefaults {
    pub telegram_chat_id: Option<String>,
    pub webhook_url: Option<String>,
    pub on_queued: bool,
    /// `server.url`, for links to a job's page in the studio.
    pub studio_url: String,
}

impl NotifyDefaults {
    pub fn from_settings(s: &Settings) -> Self {
        let non_empty = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        Self {
            telegram_chat_id: non_empty(&s.notify.telegram_chat_id),
            webhook_url: non_empty(&s.notify.webhook_url),
            on_queued: s.notify.on_queued,
            studio_url: s.server.url.trim_end_matches('/').to_string(),
        }
    }

    /// Where `job`'s events go: its own targets, else these.
    pub fn targets(&self, job: &JobRecord) -> Vec<(Channel, String)> {
        self.targets_for(&job.spec)
    }

    /// Where the events of a job with `spec` go.
    pub fn targets_for(&self, spec: &JobSpec) -> Vec<(Channel, String)> {
        let own = spec.notify.clone().unwrap_or_default();
        let mut out = Vec::new();
        if let Some(chat) = own.telegram_chat_id.or_else(|| self.telegram_chat_id.clone()) {
            out.push((Channel::Telegram, chat));
        }
        if let Some(url) = own.webhook_url.or_else(|| self.webhook_url.clone()) {
            out.push((Channel::Webhook, url));
        }
        out
    }

    /// Whether `job` is announced when queued.
    pub fn on_queued(&self, job: &JobRecord) -> bool {
        self.on_queued_for(&job.spec)
    }

    /// Whether a job with `spec` is announced when queued: its own say, else these.
    fn on_queued_for(&self, spec: &JobSpec) -> bool {
        spec.notify.as_ref().and_then(|n| n.on_queued).unwrap_or(self.on_queued)
    }

    /// Whether a job with `spec` has somewhere to go and is announced when queued.
    pub fn announces_queued(&self, spec: &JobSpec) -> bool {
        self.on_queued_for(spec) && !self.targets_for(spec).is_empty()
    }
}

/// An event as webhooks receive it (and as the outbox keeps it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    /// The same for every channel and every attempt: receivers drop repeats by it.
    pub id: String,
    /// `queued`, `staged`, `in_inbox`, `failed`, `waiting`, `needs_reconnect`,
    /// `in_review` or `changes_requested`.
    pub event: String,
    pub job_id: String,
    pub state: JobState,
    /// When the job event happened.
    pub at: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// The event name for `job`'s latest event: its state, except that a job
/// waiting for its account to be connected again is `needs_reconnect`.
pub fn event_name(job: &JobRecord) -> &'static str {
    let note = job.last_event.note.as_deref().unwrap_or_default();
    if job.state == JobState::Waiting && note.starts_with("needs_reconnect") {
        "needs_reconnect"
    } else {
        job.state.as_str()
    }
}

/// The event announcing `job`'s latest event.
pub fn event_body(id: String, job: &JobRecord) -> EventBody {
    let e = &job.last_event;
    let mut data = match job.state {
        JobState::Failed => match &e.error {
            Some(err) => json!({
                "stage": err.stage,
                "code": err.code,
                "message": err.message,
                "retryable": err.retryable,
            }),
            None => json!({}),
        },
        JobState::Waiting => json!({ "stage": e.stage, "reason": e.note, "retry_at": e.retry_at }),
        JobState::InReview => json!({
            "stage": e.stage,
            "point": e.stage.and_then(crate::domain::ReviewPoint::after_stage),
        }),
        JobState::ChangesRequested => json!({
            "stage": e.stage,
            "point": e.stage.and_then(crate::domain::ReviewPoint::after_stage),
            "note": job.manifest.reviews.last().and_then(|d| d.note.clone()),
        }),
        JobState::Staged | JobState::InInbox | JobState::Posted => json!({
            "video": job.manifest.video,
            "publish_id": job.manifest.tiktok.as_ref().map(|t| t.publish_id.clone()),
            "post_id": job.manifest.tiktok.as_ref().and_then(|t| t.post_id.clone()),
            "targets": job.manifest.targets,
        }),
        _ => json!({}),
    };
    let (kind, text) = match &job.spec.source {
        ScriptSource::Script(s) => ("script", s),
        ScriptSource::Topic(t) => ("topic", t),
    };
    data[kind] = json!(text);
    if let Some(account) = &job.spec.account {
        data["account"] = json!(account);
    }
    EventBody { id, event: event_name(job).to_string(), job_id: job.id.to_string(), state: job.state, at: e.at, data }
}

/// One line per YouTube or Instagram target the job was published to.
fn target_lines(d: &Value) -> Vec<String> {
    d["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let name = crate::providers::oauth::display(t["platform"].as_str().unwrap_or_default());
            match (t["url"].as_str(), t["remote_id"].as_str()) {
                (Some(url), _) => format!("{name}: {url}"),
                (None, Some(id)) => format!("{name} id: {id}"),
                (None, None) => format!("{name}: published"),
            }
        })
        .collect()
}

/// The message about `event` as plain text: a headline and the details.
pub fn message_text(event: &EventBody) -> (String, String) {
    let d = &event.data;
    let s = |k: &str| d[k].as_str().map(str::to_string);
    let job = &event.job_id;
    let mut lines = Vec::new();
    let headline = match event.event.as_str() {
        "queued" => format!("Job {job} is queued"),
        "staged" => format!("Job {job} is ready"),
        "in_inbox" => {
            lines.extend(target_lines(d));
            format!("Job {job} is in the TikTok inbox")
        }
        "posted" => {
            if let Some(post) = s("post_id") {
                lines.push(format!("TikTok post id: {post}"));
            }
            lines.extend(target_lines(d));
            let on: Vec<&str> = d["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["platform"].as_str())
                .map(crate::providers::oauth::display)
                .collect();
            match (d["publish_id"].is_string(), on.is_empty()) {
                (_, true) => format!("Job {job} is posted on TikTok"),
                (true, false) => format!("Job {job} is posted on TikTok, {}", on.join(", ")),
                (false, false) => format!("Job {job} is posted on {}", on.join(", ")),
            }
        }
        "in_review" => {
            if let Some(page) = s("page") {
                lines.push(format!("Open: {page}"));
            }
            lines.push(format!(
                "What to do: look at it, then approve it (POST /v1/jobs/{job}/approve) or send it back with a \
                 note (POST /v1/jobs/{job}/reject)"
            ));
            format!("Job {job} waits for {} review", s("point").unwrap_or_default())
        }
        "changes_requested" => {
            lines.push(format!("Note: {}", s("note").unwrap_or_default()));
            if let Some(page) = s("page") {
                lines.push(format!("Open: {page}"));
            }
            lines.push(format!("What to do: revise it (POST /v1/jobs/{job}/revise) or cancel it"));
            format!("Job {job} was sent back for changes")
        }
        "failed" => {
            lines.push(format!("Stage: {}", s("stage").unwrap_or_default()));
            lines.push(format!("Code: {}", s("code").unwrap_or_default()));
            lines.push(format!("Reason: {}", s("message").unwrap_or_default()));
            if d["retryable"].as_bool().unwrap_or(false) {
                lines.push(format!("What to do: fix the cause if any, then `clipforge jobs retry {job}`"));
            } else {
                lines.push("What to do: retrying will not help; change the job and submit it again".into());
            }
            format!("Job {job} failed")
        }
        "waiting" | "needs_reconnect" => {
            lines.push(format!("Why: {}", s("reason").unwrap_or_default()));
            match s("retry_at") {
                Some(at) => lines.push(format!("Tries again at: {at}")),
                None if event.event == "needs_reconnect" => lines.push(
                    "What to do: connect the account again with `clipforge accounts connect` (or GET \
                     /v1/accounts/tiktok/connect); the job then continues by itself"
                        .into(),
                ),
                None => lines.push("Tries again when the limit allows".into()),
            }
            if event.event == "needs_reconnect" {
                format!("Job {job} waits: its TikTok account must be connected again")
            } else {
                format!("Job {job} is waiting")
            }
        }
        other => format!("Job {job}: {other}"),
    };
    if let Some(account) = s("account") {
        lines.push(format!("Account: {account}"));
    }
    if let Some(bytes) = d["video"]["bytes"].as_u64() {
        let secs = d["video"]["duration_s"].as_f64().unwrap_or_default();
        lines.push(format!("Video: {secs:.1} s, {:.1} MB", bytes as f64 / 1_048_576.0));
    }
    if let Some(script) = s("script") {
        lines.push(format!("Script: {script}"));
    } else if let Some(topic) = s("topic") {
        lines.push(format!("Topic: {topic}"));
    }
    (headline, lines.join("\n"))
}

/// The MarkdownV2 message parts for a headline (bold) and details: split into
/// parts of at most `max` units, or (`cut`) one part ending in "…".
pub fn render_markdown(headline: &str, details: &str, max: usize, cut: bool) -> Vec<String> {
    let plain = if details.is_empty() { headline.to_string() } else { format!("{headline}\n{details}") };
    let parts = if cut { vec![telegram::truncate(&plain, max)] } else { telegram::split_message(&plain, max) };
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| match part.strip_prefix(headline) {
            Some(rest) if i == 0 => format!("*{}*{}", escape_markdown_v2(headline), escape_markdown_v2(rest)),
            _ => escape_markdown_v2(&part),
        })
        .collect()
}

/// Sends due notifications; one per publish-role process.
pub struct Notifier {
    /// The outbox is all the notifier asks of the record store.
    records: Arc<dyn Outbox>,
    objects: Arc<dyn ObjectStore>,
    bot: Option<TelegramBot>,
    webhooks: WebhookSender,
    max_attempts: u32,
    initial_backoff: Duration,
    lease: Duration,
    poll: Duration,
    video_max_bytes: u64,
    presign_ttl: Duration,
    server_url: String,
    /// Review messages carry Approve / Send back buttons: the two-way bot
    /// (`telegram.mode` polling or webhook) hears their presses.
    review_buttons: bool,
}

impl Notifier {
    pub fn from_settings(s: &Settings, records: Arc<dyn Outbox>, objects: Arc<dyn ObjectStore>) -> Self {
        let bot = s
            .telegram
            .bot_token()
            .map(|token| TelegramBot::new(&s.telegram.api_url, token.clone(), s.telegram.timeout()));
        Self {
            records,
            objects,
            bot,
            webhooks: WebhookSender::new(s.webhooks.secret().cloned(), s.webhooks.allow_private, s.webhooks.timeout()),
            max_attempts: s.webhooks.max_attempts,
            initial_backoff: s.webhooks.initial_backoff(),
            lease: s.notify.lease(),
            poll: s.notify.poll(),
            video_max_bytes: s.telegram.send_video_max_mb * 1024 * 1024,
            presign_ttl: s.storage.presign_ttl(),
            server_url: s.server.url.trim_end_matches('/').to_string(),
            review_buttons: s.telegram.mode != crate::settings::BotMode::Off,
        }
    }

    /// Sends due notifications every `notify.poll_ms` until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.send_due().await {
                warn!(error = %e, "could not look for notifications to send; trying again next round");
            }
        }
    }

    /// Claims the due notifications and sends them, one after the other.
    pub async fn send_due(&self) -> Result<usize, StoreError> {
        let due = self.records.claim_notifications(10, self.lease).await?;
        let n = due.len();
        for row in due {
            let outcome = self.deliver(&row).await;
            match &outcome {
                NotificationOutcome::Sent => {
                    info!(job_id = %row.job_id, channel = %row.channel, event = row.event, "notification sent")
                }
                NotificationOutcome::Retry { at, error } => {
                    warn!(job_id = %row.job_id, channel = %row.channel, event = row.event, attempt = row.attempts,
                        retry_at = %at, error, "notification not sent; trying again later")
                }
                NotificationOutcome::Undeliverable { error } => {
                    warn!(job_id = %row.job_id, channel = %row.channel, event = row.event, attempt = row.attempts,
                        error, "notification undeliverable")
                }
            }
            self.records.finish_notification(&row.id, &outcome).await?;
        }
        Ok(n)
    }

    fn after_failure(
        &self,
        row: &Notification,
        error: String,
        retryable: bool,
        at_least: Duration,
    ) -> NotificationOutcome {
        if !retryable || row.attempts >= self.max_attempts {
            let error = if retryable { format!("gave up after {} attempts: {error}", row.attempts) } else { error };
            return NotificationOutcome::Undeliverable { error };
        }
        let wait = backoff(self.initial_backoff, row.attempts).max(at_least);
        NotificationOutcome::Retry { at: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(), error }
    }

    async fn deliver(&self, row: &Notification) -> NotificationOutcome {
        match row.channel {
            Channel::Webhook => match self.webhooks.send(&row.target, row.payload.to_string().as_bytes()).await {
                Ok(()) => NotificationOutcome::Sent,
                Err(e @ WebhookError::Refused(_)) => self.after_failure(row, e.to_string(), false, Duration::ZERO),
                Err(e) => self.after_failure(row, e.to_string(), true, Duration::ZERO),
            },
            Channel::Telegram => {
                let Some(bot) = &self.bot else {
                    let error = "telegram.bot_token (CLIPFORGE__TELEGRAM__BOT_TOKEN) is not set".to_string();
                    return self.after_failure(row, error, false, Duration::ZERO);
                };
                // A long pause is not sat out holding the lease; the row waits instead.
                let paused = bot.paused_for().await;
                if paused > self.lease / 2 {
                    let at = Utc::now() + chrono::Duration::from_std(paused).unwrap_or_default();
                    return NotificationOutcome::Retry { at, error: "the bot is paused after a 429".into() };
                }
                match self.send_telegram(bot, row).await {
                    Ok(()) => NotificationOutcome::Sent,
                    // A throttled call is not the message's fault: it only waits.
                    Err(TelegramError::Throttled(wait)) => NotificationOutcome::Retry {
                        at: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                        error: TelegramError::Throttled(wait).to_string(),
                    },
                    Err(e) => {
                        let retryable = e.is_retryable();
                        self.after_failure(row, e.to_string(), retryable, Duration::ZERO)
                    }
                }
            }
        }
    }

    async fn send_telegram(&self, bot: &TelegramBot, row: &Notification) -> Result<(), TelegramError> {
        let event: EventBody = serde_json::from_value(row.payload.clone())
            .map_err(|e| TelegramError::Refused { code: 0, description: format!("unreadable event: {e}") })?;
        let (headline, mut details) = message_text(&event);
        let video = event.data["video"]["key"].as_str().and_then(|k| ObjectKey::parse(k).ok());
        if let Some(key) = video {
            let bytes = event.data["video"]["bytes"].as_u64().unwrap_or(u64::MAX);
            let local = self.objects.local_path(&key).filter(|p| p.exists());
            if let Some(path) = local.filter(|_| bytes <= self.video_max_bytes) {
                let caption = render_markdown(&headline, &details, MAX_CAPTION_UNITS, true);
                return bot.send_video(&row.target, &path, &caption[0]).await;
            }
            // Too big to upload, or not on this machine: a link (never logged).
            let link = match self.objects.presigned_get(&key, self.presign_ttl).await {
                Ok(Some(url)) => url,
                _ => format!("{}/v1/jobs/{}/video", self.server_url, event.job_id),
            };
            details = format!("Download: {link}\n{details}");
        }
        let parts = render_markdown(&headline, &details, MAX_MESSAGE_UNITS, false);
        let keyboard = (self.review_buttons && event.event == "in_review")
            .then(|| telegram::review_keyboard(&event.job_id))
            .flatten();
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.iter().enumerate() {
            // The buttons go under the last part, after everything they decide on.
            bot.send_message_with(&row.target, part, keyboard.as_ref().filter(|_| i == last)).await?;
        }
        Ok(())
    }
}

/// The wait before attempt `attempts + 1`: `initial`, doubling, at most an hour.
fn backoff(initial: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    initial.saturating_mul(factor).min(Duration::from_secs(3600))
}

/// Adds the outbox rows announcing `job`'s latest event, one per target.
/// Returns how many were new (0 when the event was announced already).
pub async fn enqueue(records: &dyn Outbox, defaults: &NotifyDefaults, job: &JobRecord) -> Result<usize, StoreError> {
    let targets = defaults.targets(job);
    if targets.is_empty() || (job.state == JobState::Queued && !defaults.on_queued(job)) {
        return Ok(0);
    }
    let mut body = event_body(uuid::Uuid::now_v7().to_string(), job);
    if job.state.awaits_person() {
        // Where the person it waits for acts: the job's page in the studio.
        body.data["page"] = json!(format!("{}/jobs/{}", defaults.studio_url, job.id));
    }
    let payload = serde_json::to_value(&body).expect("an event serialises");
    let mut added = 0;
    for (channel, target) in targets {
        let n = NewNotification {
            id: body.id.clone(),
            job_id: job.id.clone(),
            event: body.event.clone(),
            event_at: body.at,
            channel,
            target,
            payload: payload.clone(),
        };
        if records.enqueue_notification(&n).await? {
            added += 1;
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: serde_json::Value) -> EventBody {
        EventBody {
            id: "e1".into(),
            event: name.into(),
            job_id: "0190-job".into(),
            state: JobState::Failed,
            at: Utc::now(),
            data,
        }
    }

    #[test]
    fn a_job_in_review_says_where_it_waits_and_a_sent_back_one_carries_the_note() {
        let page = "https://clips.example.com/jobs/0190-job";
        let (headline, details) =
            message_text(&event("in_review", json!({ "point": "video", "script": "Hi.", "page": page })));
        assert_eq!(headline, "Job 0190-job waits for video review");
        assert!(details.contains("/v1/jobs/0190-job/approve") && details.contains("Script: Hi."), "{details}");
        assert!(details.starts_with(&format!("Open: {page}\n")), "the studio's page first: {details}");
        let (headline, details) =
            message_text(&event("changes_requested", json!({ "point": "script", "note": "Shorter." })));
        assert_eq!(headline, "Job 0190-job was sent back for changes");
        assert!(details.starts_with("Note: Shorter.\n") && details.contains("/revise"), "{details}");
    }

    #[test]
    fn a_posted_job_names_each_platform_and_where_to_see_it() {
        let targets = json!([
            { "platform": "youtube", "account": "a", "state": "published", "remote_id": "vid1",
              "url": "https://youtube.com/shorts/vid1" },
            { "platform": "instagram", "account": "b", "state": "published", "remote_id": "1800" },
        ]);
        let (headline, details) = message_text(&event("posted", json!({ "targets": targets, "script": "Hi." })));
        assert_eq!(headline, "Job 0190-job is posted on YouTube, Instagram");
        assert!(details.starts_with("YouTube: https://youtube.com/shorts/vid1\nInstagram id: 1800\n"), "{details}");
        let (headline, details) = message_text(&event(
            "in_inbox",
            json!({ "publish_id": "p1", "targets": [targets[0].clone()], "script": "Hi." }),
        ));
        assert_eq!(headline, "Job 0190-job is in the TikTok inbox");
        assert!(details.contains("YouTube: https://youtube.com/shorts/vid1"), "{details}");
    }

    #[test]
    fn a_notification_backs_off_doubling_up_to_an_hour() {
        let waits: Vec<u64> = (1..=14).map(|n| backoff(Duration::from_secs(1), n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]);
        assert_eq!(backoff(Duration::from_secs(1), 0), Duration::from_secs(1), "before any attempt: the initial wait");
        assert_eq!(backoff(Duration::from_secs(5), u32::MAX), Duration::from_secs(3600), "no overflow");
    }

    #[test]
    fn a_failed_message_names_stage_code_and_the_retry_command() {
        let e = event(
            "failed",
            json!({"stage": "prepare", "code": "voice_failed", "message": "espeak exited 1", "retryable": true}),
        );
        let (headline, details) = message_text(&e);
        assert_eq!(headline, "Job 0190-job failed");
        assert!(details.contains("Stage: prepare") && details.contains("Code: voice_failed"), "{details}");
        assert!(details.contains("clipforge jobs retry 0190-job"), "{details}");
    }

    #[test]
    fn a_waiting_message_says_which_limit_and_until_when() {
        let e =
            event("waiting", json!({"reason": "pending_drafts: 5 drafts pending", "retry_at": "2030-01-01T00:00:00Z"}));
        let (_, details) = message_text(&e);
        assert!(details.contains("pending_drafts") && details.contains("2030-01-01T00:00:00Z"), "{details}");
        let e = event("needs_reconnect", json!({"reason": "needs_reconnect: grant revoked"}));
        assert!(message_text(&e).1.contains("clipforge accounts connect"));
    }

    #[test]
    fn the_headline_is_bold_and_everything_is_escaped() {
        let parts = render_markdown("Job 1 is ready", "Script: a_b (c).", MAX_MESSAGE_UNITS, false);
        assert_eq!(
            parts,
            [r"*Job 1 is ready*
Script: a\_b \(c\)\."]
        );
        let long = "y".repeat(5000);
        let parts = render_markdown("Job 1 is ready", &long, MAX_MESSAGE_UNITS, false);
        // The headline alone, then the long line cut at the limit.
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| telegram::telegram_len(p) <= MAX_MESSAGE_UNITS));
        let cut = render_markdown("Job 1 is ready", &long, MAX_CAPTION_UNITS, true);
        assert_eq!(cut.len(), 1);
        assert!(cut[0].ends_with('…'));
    }
}
