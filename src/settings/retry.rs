//! `[retry]`: how often a stage is tried again on retryable errors, and how
//! long it waits in between.

use std::time::Duration;

use serde::Deserialize;

use super::{Section, SettingsError, check, key};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl RetrySettings {
    /// `initial_backoff_ms`: the first wait, doubled per attempt.
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }

    /// `max_backoff_ms`: the longest wait.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
}

impl Section for RetrySettings {
    const SECTION: &'static str = "retry";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.max_attempts, |v| (1..=20).contains(v), "1-20")?;
        check!(self.initial_backoff_ms, |v| (1..=600_000).contains(v), "1-600000")?;
        check!(
            self.max_backoff_ms,
            |v| *v >= self.initial_backoff_ms && *v <= 3_600_000,
            format!("at least {}, at most 3600000", key!(initial_backoff_ms)),
        )
    }
}
