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

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use utoipa::ToSchema;

use super::dialect::dialect_of;
use super::{Records, StoreError, corrupt, db_run, later, now, parse, parse_time, time_text};
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

/// The notification outbox: what the pipeline adds and the senders claim.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Adds a notification to the outbox, due now; false (and nothing added)
    /// when the same (job, event, event_at, channel) is there already.
    async fn enqueue_notification(&self, n: &NewNotification) -> Result<bool, StoreError>;
    /// Atomically takes up to `limit` due notifications for `lease`: pending
    /// ones whose time has come, and `sending` ones whose lease lapsed (their
    /// sender died). Each comes back `sending` with its attempt counted.
    async fn claim_notifications(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<Notification>, StoreError> {
        self.claim_notifications_at(limit, lease, Utc::now()).await
    }
    /// [`Outbox::claim_notifications`] as if it were `now`: tests step past a
    /// lease or a retry time without sleeping through it, so a slow machine
    /// cannot make them race the wall clock.
    async fn claim_notifications_at(
        &self,
        limit: u32,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Notification>, StoreError>;
    /// Records how a claimed send ended; ignored unless the row is `sending`.
    async fn finish_notification(&self, id: &str, outcome: &NotificationOutcome) -> Result<(), StoreError>;
    /// A job's notifications, oldest first.
    async fn job_notifications(&self, job: &JobId) -> Result<Vec<Notification>, StoreError>;
}

#[async_trait]
impl Outbox for Records {
    async fn enqueue_notification(&self, n: &NewNotification) -> Result<bool, StoreError> {
        let added = db_run!(self, pool => {
            sqlx::query(
                "INSERT INTO notifications (id, job_id, event, event_at, channel, target, payload, status, attempts, \
                 next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8) \
                 ON CONFLICT (job_id, event, event_at, channel) DO NOTHING",
            )
            .bind(format!("{}:{}", n.id, n.channel))
            .bind(n.job_id.as_str())
            .bind(&n.event)
            .bind(time_text(n.event_at))
            .bind(n.channel.as_str())
            .bind(&n.target)
            .bind(n.payload.to_string())
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(added == 1)
    }

    async fn claim_notifications_at(
        &self,
        limit: u32,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Notification>, StoreError> {
        // One statement. SQLite serialises writers; on PostgreSQL SKIP LOCKED
        // makes concurrent senders take different rows instead of the same one.
        let rows: Vec<NotificationRow> = db_run!(self, pool => {
            let sql = format!(
                "UPDATE notifications SET status = 'sending', lease_until = $1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM notifications \
                 WHERE (status = 'pending' AND next_attempt_at <= $2) OR (status = 'sending' AND lease_until <= $2) \
                 ORDER BY next_attempt_at LIMIT $3{}) \
                 RETURNING {NOTIFICATION_COLUMNS}",
                dialect_of(pool).skip_locked
            );
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(time_text(later(now, lease)))
                .bind(time_text(now))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(NotificationRow::into_record).collect()
    }

    async fn finish_notification(&self, id: &str, outcome: &NotificationOutcome) -> Result<(), StoreError> {
        let (status, next, error, sent_at) = outcome_columns(outcome, Utc::now());
        db_run!(self, pool => {
            sqlx::query(
                "UPDATE notifications SET status = $1, next_attempt_at = $2, last_error = $3, sent_at = $4, \
                 lease_until = NULL WHERE id = $5 AND status = 'sending'",
            )
            .bind(status.as_str())
            .bind(time_text(next))
            .bind(error)
            .bind(sent_at.map(time_text))
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn job_notifications(&self, job: &JobId) -> Result<Vec<Notification>, StoreError> {
        let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE job_id = $1 ORDER BY created_at, id");
        let rows: Vec<NotificationRow> =
            db_run!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(job.as_str()).fetch_all(pool).await?);
        rows.into_iter().map(NotificationRow::into_record).collect()
    }
}

/// The columns every notification query selects, in [`NotificationRow`]'s order.
const NOTIFICATION_COLUMNS: &str =
    "id, job_id, event, channel, target, payload, status, attempts, next_attempt_at, last_error, created_at, sent_at";

#[derive(Debug, sqlx::FromRow)]
struct NotificationRow {
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
    fn into_record(self) -> Result<Notification, StoreError> {
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
fn outcome_columns(
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
