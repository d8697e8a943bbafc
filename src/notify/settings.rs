//! `[notify]`, `[telegram]` and `[webhooks]`: the team-wide targets, the bot
//! that sends Telegram messages (and, when `telegram.mode` says so, hears
//! commands and button presses from the chats in `telegram.chats`), and how
//! signed webhooks are sent. That a target comes with its bot token or
//! signing key is checked in `settings/mod.rs`, across the sections.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::settings::{Section, SettingsError, check, is_http_url, key, non_empty, rule};

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
    /// How the bot hears from chats: not at all (`off`), by long polling
    /// `getUpdates` (`polling`), or by Telegram's deliveries to
    /// `POST /telegram/webhook` (`webhook`). One at a time, as Telegram allows.
    pub mode: BotMode,
    /// The `secret_token` the webhook was registered with: a delivery whose
    /// `X-Telegram-Bot-Api-Secret-Token` header differs is refused. Required
    /// in `webhook` mode; 1-256 characters of `A-Z a-z 0-9 _ -`.
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub webhook_secret: Option<SecretString>,
    /// The chats the bot acts for, each bound to an API key by the key's id:
    /// `chat_id=key_id` pairs, comma-separated. A chat acts with its key's
    /// scopes; any other chat is ignored (nothing answered, nothing stored).
    pub chats: String,
    /// How long one `getUpdates` call waits for an update (long polling), in
    /// seconds; 0 asks and returns at once.
    pub poll_timeout_secs: u64,
}

/// How the two-way bot hears from chats (`telegram.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum BotMode {
    /// The bot only sends notifications.
    Off,
    /// One API-role process at a time long-polls `getUpdates`.
    Polling,
    /// Telegram POSTs each update to `/telegram/webhook` on the API.
    Webhook,
}

/// One chat the bot acts for, and the API key whose scopes it acts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotChat {
    pub chat_id: i64,
    /// The id of an API key (`clipforge keys list`), never the key itself.
    pub key_id: String,
}

/// Parses `telegram.chats`: `chat_id=key_id` pairs, comma-separated; each
/// chat id a number (negative for groups), each key id 12 hex characters as
/// `clipforge keys create` makes them, no chat twice.
pub fn parse_chats(list: &str) -> Result<Vec<BotChat>, String> {
    let mut chats: Vec<BotChat> = Vec::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (chat, key) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not chat_id=key_id"))?;
        let chat_id: i64 = chat.trim().parse().map_err(|_| format!("`{}` is not a numeric chat id", chat.trim()))?;
        let key_id = key.trim().to_ascii_lowercase();
        if key_id.len() != 12 || !key_id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`{}` is not an API key id (12 hex characters)", key.trim()));
        }
        if chats.iter().any(|c| c.chat_id == chat_id) {
            return Err(format!("chat {chat_id} is listed twice"));
        }
        chats.push(BotChat { chat_id, key_id });
    }
    Ok(chats)
}

/// Whether `s` may be a webhook `secret_token`: 1-256 of `A-Z a-z 0-9 _ -`.
pub fn is_webhook_secret(s: &str) -> bool {
    (1..=256).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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

    /// `poll_timeout_secs`: how long one `getUpdates` waits for updates.
    pub fn poll_timeout(&self) -> Duration {
        Duration::from_secs(self.poll_timeout_secs)
    }

    /// The chats the bot acts for (checked at start).
    pub fn bot_chats(&self) -> Vec<BotChat> {
        parse_chats(&self.chats).unwrap_or_default()
    }

    /// The webhook's secret token, when one is set (an empty value counts as unset).
    pub fn webhook_secret(&self) -> Option<&SecretString> {
        non_empty(&self.webhook_secret)
    }
}

impl Section for TelegramSettings {
    const SECTION: &'static str = "telegram";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.api_url, |v| is_http_url(v), "an http(s) URL")?;
        check!(self.send_video_max_mb, |v| *v <= 2000, "0-2000 (0 always sends a link)")?;
        check!(self.timeout_secs, |v| (1..=600).contains(v), "1-600")?;
        check!(
            self.chats,
            |v| parse_chats(v).is_ok(),
            "comma-separated chat_id=key_id pairs, e.g. \
            `-1001234567890=0a1b2c3d4e5f` (key ids from `clipforge keys list`)"
        )?;
        rule(
            key!(webhook_secret),
            self.webhook_secret().is_none_or(|s| is_webhook_secret(s.expose_secret())),
            || "it holds characters Telegram does not allow in a secret_token, or is too long".into(),
            "1-256 characters of A-Z, a-z, 0-9, _ and -",
        )?;
        rule(
            key!(webhook_secret),
            self.mode != BotMode::Webhook || self.webhook_secret().is_some(),
            || format!("missing; {} is webhook", key!(mode)),
            "the secret_token the webhook was registered with (setWebhook), e.g. `openssl rand -hex 32`",
        )?;
        rule(
            key!(bot_token),
            self.mode == BotMode::Off || self.bot_token().is_some(),
            || format!("missing; {} is {:?}", key!(mode), self.mode),
            "the bot token from @BotFather",
        )?;
        rule(
            key!(poll_timeout_secs),
            self.poll_timeout_secs <= 50 && self.poll_timeout_secs < self.timeout_secs,
            || format!("got `{}`", self.poll_timeout_secs),
            format!("0-50, and less than {} (a long poll must end before its call times out)", key!(timeout_secs)),
        )
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
