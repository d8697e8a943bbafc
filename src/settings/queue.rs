//! `[queue]`: where stage tasks wait, how workers prove they are alive, and
//! how long a stage is patient with an unreachable store.

use std::time::Duration;

use serde::Deserialize;

use super::{Section, SettingsError, check};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub url: String,
    pub namespace: String,
    pub heartbeat_secs: u64,
    pub missed_heartbeats: usize,
    pub redis_response_timeout_secs: u64,
    pub max_deliveries: usize,
    pub prepare_concurrency: usize,
    pub render_concurrency: usize,
    pub publish_concurrency: usize,
    /// How long a finished task stays in the queue before it is deleted.
    pub keep_finished_secs: u64,
    /// How long a stage waits for an unreachable store (queue or records)
    /// before it gives up; an outage shorter than this delays work, never fails it.
    pub outage_patience_secs: u64,
    /// How often the reconciler compares the records with the queues.
    pub reconcile_secs: u64,
}

impl QueueSettings {
    /// `heartbeat_secs`: how often a worker tells the queue it is alive.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// How long a worker may stay silent before its task is handed to another:
    /// `heartbeat_secs` × `missed_heartbeats`.
    pub fn orphan_after(&self) -> Duration {
        self.heartbeat().saturating_mul(u32::try_from(self.missed_heartbeats).unwrap_or(u32::MAX))
    }

    /// `redis_response_timeout_secs`.
    pub fn redis_response_timeout(&self) -> Duration {
        Duration::from_secs(self.redis_response_timeout_secs)
    }

    /// `keep_finished_secs`.
    pub fn keep_finished(&self) -> Duration {
        Duration::from_secs(self.keep_finished_secs)
    }

    /// `outage_patience_secs`.
    pub fn outage_patience(&self) -> Duration {
        Duration::from_secs(self.outage_patience_secs)
    }

    /// `reconcile_secs`: how often the reconciler runs.
    pub fn reconcile_every(&self) -> Duration {
        Duration::from_secs(self.reconcile_secs)
    }
}

impl Section for QueueSettings {
    const SECTION: &'static str = "queue";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(
            self.url,
            |v| v.is_empty() || v.starts_with("redis://") || v.starts_with("sqlite:"),
            "empty (embedded SQLite queue), redis://HOST:PORT[/DB] or sqlite://PATH",
        )?;
        check!(
            self.namespace,
            |v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "1-64 characters of a-z, A-Z, 0-9, '-', '_', '.'",
        )?;
        check!(self.heartbeat_secs, |v| (1..=300).contains(v), "1-300")?;
        check!(self.missed_heartbeats, |v| (1..=100).contains(v), "1-100")?;
        check!(self.outage_patience_secs, |v| (1..=86_400).contains(v), "1-86400")?;
        check!(self.reconcile_secs, |v| (1..=3_600).contains(v), "1-3600")?;
        check!(self.redis_response_timeout_secs, |v| (1..=600).contains(v), "1-600")?;
        check!(self.max_deliveries, |v| (1..=20).contains(v), "1-20")?;
        check!(self.keep_finished_secs, |v| *v <= 31_536_000, "0-31536000 (a year)")?;
        check!(self.prepare_concurrency, |v| (1..=64).contains(v), "1-64")?;
        check!(self.render_concurrency, |v| (1..=64).contains(v), "1-64")?;
        check!(self.publish_concurrency, |v| (1..=64).contains(v), "1-64")
    }
}
