//! `[uploads]`: the team's own media — images, clips and audio uploaded to
//! `POST /v1/media` or fetched there from a URL — and what one item may be.

use std::time::Duration;

use serde::Deserialize;

use super::{Section, SettingsError, check};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    /// Largest item, in MiB, uploaded or fetched; a bigger one is refused
    /// before it is stored.
    pub max_mb: u64,
    /// Longest clip or audio file, in seconds.
    pub max_secs: u32,
    /// Largest width or height of an image or clip, in pixels.
    pub max_dimension: u32,
    /// A fetch from a URL that takes longer than this, in all, is given up.
    pub fetch_timeout_secs: u64,
    /// Redirects a fetch follows, each to an address checked again.
    pub max_redirects: u32,
    /// Allow fetching from loopback, private, link-local and unique-local
    /// addresses (the same guard as webhooks'): off, a URL that resolves there
    /// is refused, so media URLs cannot reach into the internal network.
    pub allow_private_urls: bool,
}

impl UploadSettings {
    pub fn max_bytes(&self) -> u64 {
        self.max_mb * 1024 * 1024
    }

    pub fn fetch_timeout(&self) -> Duration {
        Duration::from_secs(self.fetch_timeout_secs)
    }
}

impl Section for UploadSettings {
    const SECTION: &'static str = "uploads";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.max_mb, |v| (1..=4096).contains(v), "1-4096 MiB")?;
        check!(self.max_secs, |v| (1..=3600).contains(v), "1-3600 seconds")?;
        check!(self.max_dimension, |v| (64..=16_384).contains(v), "64-16384 pixels")?;
        check!(self.fetch_timeout_secs, |v| (1..=600).contains(v), "1-600 seconds")?;
        check!(self.max_redirects, |v| *v <= 10, "0-10")
    }
}
