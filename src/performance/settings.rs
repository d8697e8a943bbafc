//! `[performance]`: how publish-role processes collect each TikTok post's
//! counts (see [`super`]).

use std::time::Duration;

use serde::Deserialize;

use super::schedule::Cadence;
use crate::settings::{Section, SettingsError, check};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct PerformanceSettings {
    /// Whether publish-role processes collect counts at all (only with TikTok configured).
    pub enabled: bool,
    /// How often a publish-role process looks for posts due.
    pub tick_secs: u64,
    /// Hourly samples for this long after a post went up, then daily.
    pub hourly_for_hours: u32,
    /// No sample after a post is this old.
    pub max_age_days: u32,
    /// video/query calls per account per minute (TikTok: 600 per minute,
    /// per app or per token UNCONFIRMED).
    pub video_query_per_minute: u32,
    /// video/query calls per minute for all accounts together: the per-app
    /// reading of TikTok's 600.
    pub app_video_query_per_minute: u32,
    /// user/info calls per account per minute for the account totals.
    pub user_info_per_minute: u32,
    /// status/fetch calls per account per minute the collector may take of
    /// the account's 30 (shared with uploads, which come first).
    pub status_per_minute: u32,
    /// Post ids per video/query call (TikTok: at most 20).
    pub ids_per_call: u32,
    /// Posts one pass claims at most.
    pub batch: u32,
    /// How long an account is left alone after TikTok answers 429.
    pub rate_limit_backoff_secs: u64,
    /// How long a pass holds the posts it claimed; a dead collector's come due again after it.
    pub lease_secs: u64,
}

impl PerformanceSettings {
    /// `tick_secs`.
    pub fn tick(&self) -> Duration {
        Duration::from_secs(self.tick_secs)
    }

    /// `rate_limit_backoff_secs`.
    pub fn rate_limit_backoff(&self) -> Duration {
        Duration::from_secs(self.rate_limit_backoff_secs)
    }

    /// `lease_secs`.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// The sampling schedule: `hourly_for_hours`, then daily to `max_age_days`.
    pub fn cadence(&self) -> Cadence {
        Cadence::new(self.hourly_for_hours, self.max_age_days)
    }
}

impl Section for PerformanceSettings {
    const SECTION: &'static str = "performance";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.tick_secs, |v| (1..=3_600).contains(v), "1-3600")?;
        check!(self.hourly_for_hours, |v| (1..=168).contains(v), "1-168")?;
        check!(self.max_age_days, |v| (1..=365).contains(v), "1-365")?;
        check!(self.video_query_per_minute, |v| (1..=600).contains(v), "1-600 (TikTok allows 600)")?;
        check!(self.app_video_query_per_minute, |v| (1..=600).contains(v), "1-600 (TikTok allows 600)")?;
        check!(self.user_info_per_minute, |v| (1..=600).contains(v), "1-600 (TikTok allows 600)")?;
        check!(self.status_per_minute, |v| (1..=30).contains(v), "1-30 (TikTok allows 30, shared with uploads)")?;
        check!(self.ids_per_call, |v| (1..=20).contains(v), "1-20 (TikTok takes at most 20 ids a call)")?;
        check!(self.batch, |v| (1..=5_000).contains(v), "1-5000")?;
        check!(self.rate_limit_backoff_secs, |v| (1..=3_600).contains(v), "1-3600")?;
        check!(self.lease_secs, |v| (10..=3_600).contains(v), "10-3600")
    }
}
