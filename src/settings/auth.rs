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
}

impl Section for AuthSettings {
    const SECTION: &'static str = "auth";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.requests_per_minute, |v| (1..=100_000).contains(v), "1-100000")
    }
}
