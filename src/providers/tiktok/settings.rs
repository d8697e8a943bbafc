//! `[tiktok]`: the app's credentials, where TikTok lives, and its limits.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::settings::{Section, SettingsError, check, is_http_url, key, non_empty, rule};

/// TikTok publishing: the app's credentials, where TikTok lives, and its limits.
/// Empty `client_key` means no publisher: jobs naming an `account` are refused.
/// Every value but the secrets comes from `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct TikTokSettings {
    pub client_key: String,
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub client_secret: Option<SecretString>,
    /// 32 bytes, base64: seals access and refresh tokens at rest (AES-256-GCM).
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub token_key: Option<SecretString>,
    pub authorize_url: String,
    pub api_url: String,
    pub scopes: String,
    /// The web flow's callback; empty means `{server.url}/v1/accounts/tiktok/callback`.
    pub redirect_uri: String,
    /// Port the desktop flow (`clipforge accounts connect`) listens on; 0 picks a free one.
    pub desktop_port: u16,
    pub state_ttl_secs: u64,
    pub refresh_margin_secs: u64,
    pub refresh_lock_secs: u64,
    pub init_per_minute: u32,
    pub status_per_minute: u32,
    pub max_pending_drafts: u32,
    pub pending_window_hours: u64,
    /// Where TikTok downloads a photo post's stills from: the public https
    /// address of this server's `/p/` route (or a CDN in front of it),
    /// verified for the app in TikTok's developer portal as a URL prefix.
    /// Empty: photo posts cannot be published.
    pub photo_url_prefix: String,
    /// Direct Posts started per account in 24 h before further ones wait
    /// (TikTok's daily post cap, about 15, UNCONFIRMED); 0 leaves the
    /// counting to TikTok (its `spam_risk_too_many_posts`).
    pub direct_posts_per_day: u32,
    pub rate_limit_backoff_secs: u64,
    pub pending_share_backoff_secs: u64,
    /// New uploads one delivery may start after its upload URL expired or
    /// TikTok dropped its upload; past that the job fails `upload_url_expired`.
    pub upload_restarts: u32,
    /// Wait before the n-th such new upload: the initial wait, doubling, at most the max.
    pub restart_backoff_initial_ms: u64,
    pub restart_backoff_max_ms: u64,
    pub status_poll_initial_ms: u64,
    pub status_poll_max_ms: u64,
    pub status_timeout_secs: u64,
    /// How long a creator_info answer kept on the account is reused before
    /// TikTok is asked again (0: every time).
    pub creator_info_ttl_secs: u64,
    /// creator_info/query calls per account per minute (TikTok allows 20).
    pub creator_info_per_minute: u32,
    pub waiting_check_secs: u64,
    pub timeout_secs: u64,
}

impl TikTokSettings {
    /// Whether TikTok publishing is configured at all.
    pub fn enabled(&self) -> bool {
        !self.client_key.trim().is_empty()
    }

    /// The token key, when one is set (an empty value counts as unset, so a
    /// compose file can pass an empty variable through).
    pub fn token_key(&self) -> Option<&SecretString> {
        non_empty(&self.token_key)
    }

    /// `state_ttl_secs`: how long a connect link's `state` is valid.
    pub fn state_ttl(&self) -> Duration {
        Duration::from_secs(self.state_ttl_secs)
    }

    /// `refresh_margin_secs`: tokens with less left than this are refreshed.
    pub fn refresh_margin(&self) -> Duration {
        Duration::from_secs(self.refresh_margin_secs)
    }

    /// `refresh_lock_secs`: how long one worker may hold an account's refresh lock.
    pub fn refresh_lock(&self) -> Duration {
        Duration::from_secs(self.refresh_lock_secs)
    }

    /// `pending_window_hours`: the window `max_pending_drafts` counts in.
    pub fn pending_window(&self) -> Duration {
        Duration::from_secs(self.pending_window_hours.saturating_mul(3600))
    }

    /// `rate_limit_backoff_secs`.
    pub fn rate_limit_backoff(&self) -> Duration {
        Duration::from_secs(self.rate_limit_backoff_secs)
    }

    /// `pending_share_backoff_secs`.
    pub fn pending_share_backoff(&self) -> Duration {
        Duration::from_secs(self.pending_share_backoff_secs)
    }

    /// `restart_backoff_initial_ms`.
    pub fn restart_backoff_initial(&self) -> Duration {
        Duration::from_millis(self.restart_backoff_initial_ms)
    }

    /// `restart_backoff_max_ms`.
    pub fn restart_backoff_max(&self) -> Duration {
        Duration::from_millis(self.restart_backoff_max_ms)
    }

    /// `status_poll_initial_ms`.
    pub fn status_poll_initial(&self) -> Duration {
        Duration::from_millis(self.status_poll_initial_ms)
    }

    /// `status_poll_max_ms`.
    pub fn status_poll_max(&self) -> Duration {
        Duration::from_millis(self.status_poll_max_ms)
    }

    /// `status_timeout_secs`: when status polling gives up (retryably).
    pub fn status_timeout(&self) -> Duration {
        Duration::from_secs(self.status_timeout_secs)
    }

    /// `creator_info_ttl_secs`: how long a kept creator_info answer is reused.
    pub fn creator_info_ttl(&self) -> Duration {
        Duration::from_secs(self.creator_info_ttl_secs)
    }

    /// `waiting_check_secs`: how often waiting jobs are looked at.
    pub fn waiting_check(&self) -> Duration {
        Duration::from_secs(self.waiting_check_secs)
    }

    /// `timeout_secs`: the timeout of one TikTok request.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Whether `v` may prefix the photo URLs TikTok pulls: https, a domain name
/// (TikTok refuses IP addresses), a path ending in `/`, no query or fragment.
pub fn is_photo_prefix(v: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(v) else { return false };
    url.scheme() == "https"
        && url.host_str().is_some_and(|h| !h.starts_with('[') && h.parse::<std::net::IpAddr>().is_err())
        && url.path().ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none()
        && v.ends_with('/')
}

#[cfg(test)]
mod photo_prefix_tests {
    use super::is_photo_prefix;

    #[test]
    fn only_https_domain_prefixes_ending_in_a_slash_are_taken() {
        assert!(is_photo_prefix("https://clips.example.com/p/"));
        assert!(is_photo_prefix("https://cdn.example.com/"));
        for bad in [
            "http://clips.example.com/p/",
            "https://203.0.113.7/p/",
            "https://[2001:db8::1]/p/",
            "https://clips.example.com/p",
            "https://clips.example.com/p/?sig=1",
            "clips.example.com/p/",
        ] {
            assert!(!is_photo_prefix(bad), "{bad}");
        }
    }
}

impl Section for TikTokSettings {
    const SECTION: &'static str = "tiktok";

    fn validate(&self) -> Result<(), SettingsError> {
        if self.enabled() {
            rule(
                key!(client_secret),
                non_empty(&self.client_secret).is_some(),
                || format!("missing; {} is set", key!(client_key)),
                "the app's client secret from developers.tiktok.com",
            )?;
            check!(self.authorize_url, |v| is_http_url(v), "an http(s) URL")?;
            check!(self.api_url, |v| is_http_url(v), "an http(s) URL")?;
            check!(
                self.scopes,
                |v| v.split(',').any(|s| s.trim() == "video.upload"),
                "comma-separated scopes including video.upload (and user.info.basic)",
            )?;
            check!(
                self.redirect_uri,
                |v| v.is_empty() || is_http_url(v),
                "empty or an absolute http(s) URL registered with TikTok",
            )?;
        }
        rule(
            key!(token_key),
            self.token_key().is_none_or(|k| crate::crypto::TokenCipher::from_base64(k).is_ok()),
            || "not 32 bytes of base64".into(),
            "32 random bytes, base64 (openssl rand -base64 32)",
        )?;
        check!(self.state_ttl_secs, |v| (60..=3600).contains(v), "60-3600")?;
        check!(self.refresh_lock_secs, |v| (1..=300).contains(v), "1-300")?;
        check!(self.init_per_minute, |v| (1..=60).contains(v), "1-60")?;
        check!(self.status_per_minute, |v| (1..=600).contains(v), "1-600")?;
        check!(self.max_pending_drafts, |v| (1..=100).contains(v), "1-100")?;
        check!(self.pending_window_hours, |v| (1..=168).contains(v), "1-168")?;
        check!(self.direct_posts_per_day, |v| *v <= 1000, "0-1000")?;
        check!(
            self.photo_url_prefix,
            |v| v.is_empty() || is_photo_prefix(v),
            "empty, or an https URL on a domain name (not an IP address) ending in `/`, without query or fragment \
             (TikTok pulls photos only from such URLs)",
        )?;
        check!(self.upload_restarts, |v| *v <= 10, "0-10")?;
        check!(self.restart_backoff_initial_ms, |v| *v >= 1, "at least 1")?;
        check!(
            self.restart_backoff_max_ms,
            |v| *v >= self.restart_backoff_initial_ms && *v <= 3_600_000,
            format!("at least {}, at most 3600000 (an hour)", key!(restart_backoff_initial_ms)),
        )?;
        check!(self.status_poll_initial_ms, |v| *v >= 1, "at least 1")?;
        check!(
            self.status_poll_max_ms,
            |v| *v >= self.status_poll_initial_ms,
            format!("at least {}", key!(status_poll_initial_ms)),
        )?;
        check!(self.creator_info_ttl_secs, |v| *v <= 3600, "0-3600")?;
        check!(self.creator_info_per_minute, |v| (1..=600).contains(v), "1-600")?;
        check!(self.waiting_check_secs, |v| (1..=3600).contains(v), "1-3600")?;
        check!(self.timeout_secs, |v| (1..=3600).contains(v), "1-3600")
    }
}
