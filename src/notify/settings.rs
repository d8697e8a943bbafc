//! `[notify]`, `[telegram]` and `[webhooks]`: the team-wide targets, the bot
//! that sends Telegram messages, and how signed webhooks are sent. That a
//! target comes with its bot token or signing key is checked in
//! `settings/mod.rs`, across the sections.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::settings::{Section, SettingsError, check, is_http_url, non_empty};

/// Team-wide notification targets, used for every job that names none of its own.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Telegram chat (numeric id or `@channelname`); empty sends no Telegram messages.
    pub telegram_chat_id: String,
    /// Where job events are POSTed; empty sends no webhooks.
    pub webhook_url: String,
    /// Also announce jobs when they are queued (the other events always go).
    pub on_queued: bool,
    /// How often a publish-role process looks for notifications to send.
    pub poll_ms: u64,
    /// How long a claimed notification is held by its sender before another
    /// process takes it to be dead and sends it again.
    pub lease_secs: u64,
}

impl NotifySettings {
    /// `poll_ms`: how often due notifications are looked for.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    /// `lease_secs`: how long a sender holds a notification it took.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

impl Section for NotifySettings {
    const SECTION: &'static str = "notify";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(
            self.telegram_chat_id,
            |v| v.trim().is_empty() || crate::domain::is_telegram_chat_id(v.trim()),
            "empty, a numeric chat id or @channelname",
        )?;
        check!(self.webhook_url, |v| v.is_empty() || is_http_url(v), "empty or an http(s) URL")?;
        check!(self.poll_ms, |v| (50..=60_000).contains(v), "50-60000")?;
        check!(self.lease_secs, |v| (1..=3600).contains(v), "1-3600")
    }
}

/// The Telegram bot that sends notifications.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// The bot token from @BotFather; without it no Telegram message is sent.
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub bot_token: Option<SecretString>,
    pub api_url: String,
    /// Finished videos up to this size are uploaded with sendVideo; larger ones
    /// are sent as a link (Telegram refuses bot uploads over 50 MB).
    pub send_video_max_mb: u64,
    pub timeout_secs: u64,
}

impl TelegramSettings {
    /// The bot token, when one is set (an empty value counts as unset).
    pub fn bot_token(&self) -> Option<&SecretString> {
        non_empty(&self.bot_token)
    }

    /// `timeout_secs`: the timeout of one Bot API call.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl Section for TelegramSettings {
    const SECTION: &'static str = "telegram";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.api_url, |v| is_http_url(v), "an http(s) URL")?;
        check!(self.send_video_max_mb, |v| *v <= 2000, "0-2000 (0 always sends a link)")?;
        check!(self.timeout_secs, |v| (1..=600).contains(v), "1-600")
    }
}

/// Signed webhooks: the HMAC key, which targets are allowed, and retries.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The HMAC-SHA256 key receivers verify signatures with; required when any
    /// webhook target is configured.
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub secret: Option<SecretString>,
    /// Allow targets on loopback, private, link-local and unique-local addresses.
    pub allow_private: bool,
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub timeout_secs: u64,
}

impl WebhookSettings {
    /// The signing key, when one is set (an empty value counts as unset).
    pub fn secret(&self) -> Option<&SecretString> {
        non_empty(&self.secret)
    }

    /// `initial_backoff_ms`: the first wait between attempts, doubled per attempt.
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }

    /// `timeout_secs`: the timeout of one webhook POST.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl Section for WebhookSettings {
    const SECTION: &'static str = "webhooks";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.max_attempts, |v| (1..=50).contains(v), "1-50")?;
        check!(self.initial_backoff_ms, |v| (1..=3_600_000).contains(v), "1-3600000")?;
        check!(self.timeout_secs, |v| (1..=300).contains(v), "1-300")
    }
}
