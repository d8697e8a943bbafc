//! `[auth]`: who may call the API, and how often.

use serde::Deserialize;

use super::{Section, SettingsError, check};

/// Who may call the API: API keys with scopes, and how often each key may call.
/// Off by default, so the embedded mode on 127.0.0.1 needs no set-up. Whether
/// keys may be off depends on `server.listen`; that check is in `settings/mod.rs`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Every route but health, readiness, the OpenAPI document and TikTok's
    /// callback needs `Authorization: Bearer <key>` with the route's scope.
    pub require_keys: bool,
    /// Requests one key may make per 60-second window, counted across every
    /// API process that shares the Redis queue (or in this process without Redis).
    pub requests_per_minute: u32,
    /// Lets the API listen beyond loopback without keys, for operators whose
    /// gateway in front authenticates every request.
    pub allow_open_non_loopback: bool,
    /// How long a studio sign-in lasts before the key must be pasted again.
    pub session_hours: u32,
    /// How long a reviewer link (one job's review page, no key) stays valid.
    pub review_link_hours: u32,
}

impl AuthSettings {
    /// `session_hours`.
    pub fn session_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.session_hours) * 3600)
    }

    /// `review_link_hours`.
    pub fn review_link_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.review_link_hours) * 3600)
    }
}

impl Section for AuthSettings {
    const SECTION: &'static str = "auth";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.requests_per_minute, |v| (1..=100_000).contains(v), "1-100000")?;
        check!(self.session_hours, |v| (1..=720).contains(v), "1-720")?;
        check!(self.review_link_hours, |v| (1..=720).contains(v), "1-720")
    }
}
