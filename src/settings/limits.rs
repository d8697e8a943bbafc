//! `[limits]`: what one submitted job or batch may cost.

use serde::Deserialize;

use super::{Section, SettingsError, check, key};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_script_chars: usize,
    pub min_target_secs: u32,
    pub max_target_secs: u32,
    /// Most lines (jobs) one `POST /v1/batches` may carry.
    pub max_batch_lines: usize,
    /// Largest batch body, in MiB.
    pub max_batch_mb: usize,
    /// Most sentences (caption lines, narration segments) one script may have.
    pub max_sentences: usize,
    /// Longest narration one job may have, in seconds.
    pub max_narration_secs: u32,
    /// The speaking rate the narration of a submitted script is estimated
    /// with: faster than any narrator speaks, so only a sure overrun is refused.
    /// Checked against the narrator's own rate in `settings/mod.rs`.
    pub fastest_words_per_minute: u32,
    /// Most footage segments (ffmpeg inputs) one render may have.
    pub max_footage_segments: usize,
}

impl LimitSettings {
    /// The limits every submitted spec is checked against.
    pub fn spec(&self) -> crate::domain::SpecLimits {
        crate::domain::SpecLimits {
            max_script_chars: self.max_script_chars,
            min_target_secs: self.min_target_secs,
            max_target_secs: self.max_target_secs,
            max_sentences: self.max_sentences,
            max_narration_secs: self.max_narration_secs,
            fastest_words_per_minute: self.fastest_words_per_minute,
        }
    }
}

impl Section for LimitSettings {
    const SECTION: &'static str = "limits";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.max_script_chars, |v| (100..=20_000).contains(v), "100-20000")?;
        check!(
            self.min_target_secs,
            |v| *v >= 1 && *v <= self.max_target_secs,
            format!("1 up to {}", key!(max_target_secs)),
        )?;
        check!(self.max_target_secs, |v| *v <= 600, "at most 600")?;
        check!(self.max_batch_lines, |v| (1..=100_000).contains(v), "1-100000")?;
        check!(self.max_batch_mb, |v| (1..=1024).contains(v), "1-1024")?;
        check!(self.max_sentences, |v| (1..=5000).contains(v), "1-5000")?;
        check!(
            self.max_narration_secs,
            |v| *v >= self.max_target_secs && *v <= 3600,
            format!("at least {} (a topic job may ask for that much), at most 3600", key!(max_target_secs)),
        )?;
        check!(self.max_footage_segments, |v| (1..=500).contains(v), "1-500")
    }
}
