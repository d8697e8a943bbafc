//! `[providers.footage]`: where footage comes from, picked by `type`. The
//! library folder and clip length are keys of `config/default.toml` for every
//! type; the Pexels defaults are written here once, documented there, and a
//! settings test holds the two equal.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::settings::{Section, SettingsError, check, is_http_url, key, require_key};

/// The footage source, picked by `type`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FootageProviderSettings {
    /// A folder of clips, or generated clips when the folder is not set.
    Local(LocalFootageSettings),
    /// Pexels video search, falling back to the local library (or generated clips).
    Pexels(PexelsSettings),
}

impl Section for FootageProviderSettings {
    const SECTION: &'static str = "providers.footage";

    fn validate(&self) -> Result<(), SettingsError> {
        match self {
            Self::Local(l) => l.validate(),
            Self::Pexels(p) => p.validate(),
        }
    }
}

fn check_max_clip_secs(key: crate::settings::Key, secs: f64) -> Result<(), SettingsError> {
    crate::settings::verdict(key, (1.0..=60.0).contains(&secs), secs, "1.0-60.0")
}

/// `providers.footage` when `type = "local"`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct LocalFootageSettings {
    /// Folder of clips; empty: clips generated with ffmpeg.
    pub library_dir: String,
    /// Longest stretch one clip covers before the next one starts.
    pub max_clip_secs: f64,
}

impl Section for LocalFootageSettings {
    const SECTION: &'static str = "providers.footage";

    fn validate(&self) -> Result<(), SettingsError> {
        check_max_clip_secs(key!(max_clip_secs), self.max_clip_secs)
    }
}

/// `providers.footage` when `type = "pexels"`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct PexelsSettings {
    #[serde(default = "PexelsSettings::default_base_url")]
    pub base_url: String,
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub api_key: Option<SecretString>,
    /// Used when a search finds nothing usable, even after a broader query.
    pub library_dir: String,
    pub max_clip_secs: f64,
    /// Longest wait for the hourly request budget before failing as retryable.
    #[serde(default = "PexelsSettings::default_max_rate_wait_secs")]
    pub max_rate_wait_secs: u64,
    #[serde(default = "PexelsSettings::default_timeout_secs")]
    pub timeout_secs: u64,
}

impl PexelsSettings {
    fn default_base_url() -> String {
        "https://api.pexels.com".into()
    }

    fn default_max_rate_wait_secs() -> u64 {
        120
    }

    fn default_timeout_secs() -> u64 {
        60
    }

    /// `timeout_secs`: the timeout of one request.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// `max_rate_wait_secs`: the longest wait for the hourly budget.
    pub fn max_rate_wait(&self) -> Duration {
        Duration::from_secs(self.max_rate_wait_secs)
    }
}

impl Section for PexelsSettings {
    const SECTION: &'static str = "providers.footage";

    fn validate(&self) -> Result<(), SettingsError> {
        require_key(key!(api_key), &self.api_key, "pexels")?;
        check!(self.base_url, |v| is_http_url(v), "an http(s) URL")?;
        check!(self.timeout_secs, |v| (1..=600).contains(v), "1-600")?;
        check_max_clip_secs(key!(max_clip_secs), self.max_clip_secs)
    }
}
