//! `[youtube]`: the Google app's credentials, where YouTube lives, and how
//! uploads are sent and labelled.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::settings::{Section, SettingsError, check, is_http_url, key, non_empty, rule};

/// The resumable protocol's unit: every chunk but the last is a multiple of it.
pub const CHUNK_UNIT: u64 = 256 * 1024;

/// YouTube Shorts publishing. Empty `client_id` means no YouTube: jobs naming
/// a `youtube` target fail `target_not_configured`. Tokens are sealed with
/// `tiktok.token_key`, the one token key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct YouTubeSettings {
    pub client_id: String,
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub client_secret: Option<SecretString>,
    pub auth_url: String,
    pub token_url: String,
    pub revoke_url: String,
    pub api_url: String,
    pub upload_url: String,
    pub scopes: String,
    /// The web flow's callback; empty means `{server.url}/v1/accounts/youtube/callback`.
    pub redirect_uri: String,
    /// Privacy status of uploads of accounts that chose none: private,
    /// unlisted or public (unverified Google projects can upload private only).
    pub privacy: String,
    pub made_for_kids: bool,
    /// Declares the video as altered or synthetic (`containsSyntheticMedia`):
    /// narration and footage are machine-made.
    pub synthetic_media: bool,
    pub category_id: String,
    /// Bytes per PUT; a multiple of 262144 (256 KiB).
    pub chunk_bytes: u64,
    /// The UTC hour the project's quota resets at (midnight Pacific: 8, or 7
    /// in summer time); a job refused for quota waits until then.
    pub quota_reset_utc_hour: u32,
    pub refresh_margin_secs: u64,
    pub processing_poll_ms: u64,
    pub processing_timeout_secs: u64,
    pub timeout_secs: u64,
}

impl YouTubeSettings {
    pub fn enabled(&self) -> bool {
        !self.client_id.trim().is_empty()
    }

    pub fn refresh_margin(&self) -> Duration {
        Duration::from_secs(self.refresh_margin_secs)
    }

    pub fn processing_poll(&self) -> Duration {
        Duration::from_millis(self.processing_poll_ms)
    }

    pub fn processing_timeout(&self) -> Duration {
        Duration::from_secs(self.processing_timeout_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// The privacy statuses YouTube takes.
pub const PRIVACY: [&str; 3] = ["private", "unlisted", "public"];

impl Section for YouTubeSettings {
    const SECTION: &'static str = "youtube";

    fn validate(&self) -> Result<(), SettingsError> {
        if self.enabled() {
            rule(
                key!(client_secret),
                non_empty(&self.client_secret).is_some(),
                || format!("missing; {} is set", key!(client_id)),
                "the OAuth client's secret from the Google Cloud console",
            )?;
        }
        for (k, v) in [
            (key!(auth_url), &self.auth_url),
            (key!(token_url), &self.token_url),
            (key!(revoke_url), &self.revoke_url),
            (key!(api_url), &self.api_url),
            (key!(upload_url), &self.upload_url),
        ] {
            rule(k, is_http_url(v), || format!("`{v}` is not an http(s) URL"), "an http(s) URL")?;
        }
        check!(self.redirect_uri, |v| v.is_empty() || is_http_url(v), "empty or an absolute http(s) URL")?;
        check!(self.privacy, |v| PRIVACY.contains(&v.as_str()), "private, unlisted or public")?;
        check!(
            self.chunk_bytes,
            |v| *v >= CHUNK_UNIT && v % CHUNK_UNIT == 0 && *v <= 1024 * CHUNK_UNIT,
            "a multiple of 262144 (256 KiB), at most 256 MiB",
        )?;
        check!(self.quota_reset_utc_hour, |v| *v < 24, "0-23")?;
        check!(self.refresh_margin_secs, |v| *v <= 3000, "0-3000 (a Google access token lives an hour)")?;
        check!(self.processing_poll_ms, |v| (10..=600_000).contains(v), "10-600000")?;
        check!(self.processing_timeout_secs, |v| (1..=86_400).contains(v), "1-86400")?;
        check!(self.timeout_secs, |v| (1..=3600).contains(v), "1-3600")
    }
}
