//! The notification outbox: Telegram messages and webhook events waiting to
//! be sent, one row per (job, event, channel).
//!
//! The pipeline adds a row when it records a job's state change; a sender in
//! a publish-role process claims due rows, sends them and records the outcome.
//! Claiming marks a row `sending` with a lease; a sender killed mid-call leaves
//! the row `sending` until the lease lapses, and then it is due again. See
//! `crate::notify` for what that means for duplicates.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{StoreError, corrupt, parse, parse_time};
use crate::domain::JobId;

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Telegram,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "telegram" => Ok(Channel::Telegram),
            "webhook" => Ok(Channel::Webhook),
            other => Err(format!("unknown notification channel `{other}`")),
        }
    }
}

/// Where a notification is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// Due at `next_attempt_at`.
    Pending,
    /// Claimed by a sender until its lease lapses.
    Sending,
    Sent,
    /// Attempts spent, or the target was refused; `last_error` says why.
    Undeliverable,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Sending => "sending",
            NotificationStatus::Sent => "sent",
            NotificationStatus::Undeliverable => "undeliverable",
        }
    }
}

impl FromStr for NotificationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Pending, Self::Sending, Self::Sent, Self::Undeliverable]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown notification status `{s}`"))
    }
}

/// A notification to add to the outbox.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Shared by the channels of one event (the webhook event id).
    pub id: String,
    pub job_id: JobId,
    /// `queued`, `staged`, `in_inbox`, `failed`, `waiting` or `needs_reconnect`.
    pub event: String,
    /// When the job event being announced happened; with `event` it tells one
    /// announcement from another of the same kind (a job may fail twice).
    pub event_at: DateTime<Utc>,
    pub channel: Channel,
    /// The chat id or URL.
    pub target: String,
    /// The event as JSON, the body a webhook receives.
    pub payload: serde_json::Value,
}

/// A notification as stored.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The row's own id (`<event id>:<channel>`).
    pub id: String,
    pub job_id: JobId,
    pub event: String,
    pub channel: Channel,
    pub target: String,
    pub payload: serde_json::Value,
    pub status: NotificationStatus,
    /// Sends tried so far, counting the one a claim starts.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationOutcome {
    Sent,
    /// Try again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Give up: attempts spent, or a failure no retry mends.
    Undeliverable {
        error: String,
    },
}

/// The columns every notification query selects, in [`NotificationRow`]'s order.
pub(super) const NOTIFICATION_COLUMNS: &str =
    "id, job_id, event, channel, target, payload, status, attempts, next_attempt_at, last_error, created_at, sent_at";

#[derive(Debug, sqlx::FromRow)]
pub(super) struct NotificationRow {
    id: String,
    job_id: String,
    event: String,
    channel: String,
    target: String,
    payload: String,
    status: String,
    attempts: i64,
    next_attempt_at: String,
    last_error: Option<String>,
    created_at: String,
    sent_at: Option<String>,
}

impl NotificationRow {
    pub(super) fn into_record(self) -> Result<Notification, StoreError> {
        Ok(Notification {
            id: self.id,
            job_id: JobId::parse(&self.job_id).ok_or_else(|| corrupt("notification job id"))?,
            event: self.event,
            channel: parse(&self.channel)?,
            target: self.target,
            payload: serde_json::from_str(&self.payload).map_err(corrupt)?,
            status: parse(&self.status)?,
            attempts: self.attempts.max(0) as u32,
            next_attempt_at: parse_time(&self.next_attempt_at)?,
            last_error: self.last_error,
            created_at: parse_time(&self.created_at)?,
            sent_at: self.sent_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

/// The status, next attempt, error and sent time `outcome` leaves a row with.
pub(super) fn outcome_columns(
    outcome: &NotificationOutcome,
    now: DateTime<Utc>,
) -> (NotificationStatus, DateTime<Utc>, Option<String>, Option<DateTime<Utc>>) {
    match outcome {
        NotificationOutcome::Sent => (NotificationStatus::Sent, now, None, Some(now)),
        NotificationOutcome::Retry { at, error } => (NotificationStatus::Pending, *at, Some(error.clone()), None),
        NotificationOutcome::Undeliverable { error } => {
            (NotificationStatus::Undeliverable, now, Some(error.clone()), None)
        }
    }
}
