//! Where a job asks to be announced: Telegram chats and a webhook.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::FieldError;
use crate::error_code as codes;

/// A job's own notification targets, as submitted. A target given here
/// replaces the team-wide one from settings for this job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    /// Telegram chat: a numeric chat id or `@channelname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram_chat_id: Option<String>,
    /// An http(s) URL that receives the job's events as signed JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Also announce the job when it is queued. Default: settings (`notify.on_queued`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_queued: Option<bool>,
}

impl NotifyRequest {
    /// What is wrong with these targets (nothing, for valid ones).
    pub fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(chat) = &self.telegram_chat_id
            && !is_telegram_chat_id(chat)
        {
            errors.push(FieldError::new(
                "notify.telegram_chat_id",
                codes::TELEGRAM_CHAT_ID_INVALID,
                "notify.telegram_chat_id must be a numeric chat id or @channelname",
            ));
        }
        if let Some(url) = &self.webhook_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= 2048
                && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
            if !ok {
                errors.push(FieldError::new(
                    "notify.webhook_url",
                    codes::WEBHOOK_URL_INVALID,
                    "notify.webhook_url must be an http(s) URL with a host (at most 2048 characters)",
                ));
            }
        }
        errors
    }

    /// These targets, with each one not given here taken from `fallback`.
    pub fn or(self, fallback: &NotifyRequest) -> NotifyRequest {
        NotifyRequest {
            telegram_chat_id: self.telegram_chat_id.or_else(|| fallback.telegram_chat_id.clone()),
            webhook_url: self.webhook_url.or_else(|| fallback.webhook_url.clone()),
            on_queued: self.on_queued.or(fallback.on_queued),
        }
    }
}

/// Whether `s` names a Telegram chat: an integer chat id (groups are negative)
/// or a public `@channelname` (5-32 letters, digits or `_`).
pub fn is_telegram_chat_id(s: &str) -> bool {
    if let Some(name) = s.strip_prefix('@') {
        return (5..=32).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    }
    s.parse::<i64>().is_ok()
}
