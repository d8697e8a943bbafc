//! `[storage]`: the object store that holds staged renders and the provider
//! cache, a local folder or an S3-compatible bucket.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{Section, SettingsError, check, is_http_url, key, verdict};

/// Every value but the secret comes from `config/default.toml`, which is
/// always the first layer; the secret has no default.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct StorageSettings {
    #[serde(rename = "type")]
    pub kind: StorageKind,
    pub dir: String,
    pub retention_days: u32,
    pub sweep_interval_secs: u64,
    pub bucket: String,
    /// Empty: AWS's own endpoint for the region.
    pub endpoint: String,
    pub region: String,
    pub path_style: bool,
    /// Empty: the default AWS credential chain.
    pub access_key_id: String,
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "super::hidden"))]
    pub secret_access_key: Option<SecretString>,
    pub part_size_mb: u64,
    pub presign_secs: u64,
    pub manage_lifecycle: bool,
}

/// Which object store holds staged renders and the provider cache.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// A folder on this machine.
    Local,
    /// An S3-compatible bucket (AWS S3, Cloudflare R2, Garage, MinIO).
    S3,
}

impl StorageSettings {
    /// `retention_days`: how long a staged render is kept.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 86_400)
    }

    /// `sweep_interval_secs`: how often the local store is swept.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs)
    }

    /// `presign_secs`: the lifetime of a presigned download link.
    pub fn presign_ttl(&self) -> Duration {
        Duration::from_secs(self.presign_secs)
    }
}

impl Section for StorageSettings {
    const SECTION: &'static str = "storage";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.retention_days, |v| (1..=365).contains(v), "1-365")?;
        if self.kind == StorageKind::S3 {
            check!(
                self.bucket,
                |v| !v.is_empty(),
                format!("a bucket name (required when {}.type = s3)", Self::SECTION),
            )?;
            check!(
                self.endpoint,
                |v| v.is_empty() || is_http_url(v),
                "empty (AWS) or an http(s) URL, e.g. https://<account>.r2.cloudflarestorage.com",
            )?;
            check!(self.region, |v| !v.is_empty(), "a region; \"auto\" for R2")?;
            verdict(
                key!(secret_access_key),
                self.access_key_id.is_empty() == self.secret_access_key.is_none(),
                "(hidden)",
                format!(
                    "set both {} and {}, or neither (default credential chain)",
                    key!(access_key_id),
                    key!(secret_access_key)
                ),
            )?;
        }
        check!(
            self.part_size_mb,
            |v| (5..=512).contains(v),
            "5-512 (S3 parts are at least 5 MiB; all but the last are this size)",
        )?;
        check!(self.presign_secs, |v| (1..=604_800).contains(v), "1-604800 (a SigV4 link lasts at most 7 days)")?;
        check!(self.sweep_interval_secs, |v| (1..=86_400).contains(v), "1-86400")
    }
}
