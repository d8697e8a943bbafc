//! `[instagram]`: the Meta app's credentials (Instagram Login), where the
//! Graph API lives, and how reels are published.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::settings::{Section, SettingsError, check, is_http_url, key, non_empty, rule};

/// Instagram Reels publishing. Empty `app_id` means no Instagram: jobs naming
/// an `instagram` target fail `target_not_configured`. Tokens are sealed with
/// `tiktok.token_key`, the one token key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct InstagramSettings {
    pub app_id: String,
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub app_secret: Option<SecretString>,
    pub auth_url: String,
    pub token_url: String,
    pub graph_url: String,
    pub api_version: String,
    pub scopes: String,
    /// The web flow's callback; empty means `{server.url}/v1/accounts/instagram/callback`.
    pub redirect_uri: String,
    /// Posts per account per rolling 24 h before a job waits (Instagram
    /// documents both 50 and 100, UNCONFIRMED; its own `quota_total` wins
    /// when lower).
    pub posts_per_day: u32,
    /// Also show the reel in the profile's feed grid.
    pub share_to_feed: bool,
    /// Long-lived tokens (60 days) are refreshed when less than this is left.
    pub refresh_margin_secs: u64,
    pub container_poll_ms: u64,
    /// How long a container may stay IN_PROGRESS before the job retries
    /// (Instagram asks for at most 5 minutes of polling).
    pub container_timeout_secs: u64,
    /// How long a job waits when the account reached its posts per 24 h.
    pub limit_wait_secs: u64,
    pub timeout_secs: u64,
}

impl InstagramSettings {
    pub fn enabled(&self) -> bool {
        !self.app_id.trim().is_empty()
    }

    pub fn refresh_margin(&self) -> Duration {
        Duration::from_secs(self.refresh_margin_secs)
    }

    pub fn container_poll(&self) -> Duration {
        Duration::from_millis(self.container_poll_ms)
    }

    pub fn container_timeout(&self) -> Duration {
        Duration::from_secs(self.container_timeout_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl Section for InstagramSettings {
    const SECTION: &'static str = "instagram";

    fn validate(&self) -> Result<(), SettingsError> {
        if self.enabled() {
            rule(
                key!(app_secret),
                non_empty(&self.app_secret).is_some(),
                || format!("missing; {} is set", key!(app_id)),
                "the Instagram app secret from developers.facebook.com",
            )?;
        }
        for (k, v) in
            [(key!(auth_url), &self.auth_url), (key!(token_url), &self.token_url), (key!(graph_url), &self.graph_url)]
        {
            rule(k, is_http_url(v), || format!("`{v}` is not an http(s) URL"), "an http(s) URL")?;
        }
        check!(
            self.api_version,
            |v| v.starts_with('v') && v[1..].split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())),
            "a Graph API version such as v25.0",
        )?;
        check!(self.redirect_uri, |v| v.is_empty() || is_http_url(v), "empty or an absolute http(s) URL")?;
        check!(self.posts_per_day, |v| (1..=100).contains(v), "1-100")?;
        check!(self.refresh_margin_secs, |v| *v <= 50 * 86_400, "0-4320000 (50 days)")?;
        check!(self.container_poll_ms, |v| (10..=600_000).contains(v), "10-600000")?;
        check!(self.container_timeout_secs, |v| (1..=86_400).contains(v), "1-86400")?;
        check!(self.limit_wait_secs, |v| (1..=86_400).contains(v), "1-86400")?;
        check!(self.timeout_secs, |v| (1..=3600).contains(v), "1-3600")
    }
}
