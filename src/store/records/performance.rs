//! Content performance: the TikTok posts whose counts are collected, each
//! one's samples over time, and each account's totals (see
//! [`crate::performance`] for the schedule and the collector).
//!
//! A post is tracked from the moment its job's upload reached TikTok
//! ([`PerformanceStore::track_new_posts`] finds those uploads). Collectors
//! in any number of processes claim due posts with one conditional update
//! each ([`PerformanceStore::claim_due_posts`]), so no post is asked about
//! twice at once, and a claim that lapses makes the post due again.
//! Samples are written once and never changed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::dialect::{Dialect, dialect_of};
use super::{Records, StoreError, corrupt, db_run, later, parse_time, time_text};
use crate::domain::JobId;

/// A job's TikTok post as the collector tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedPost {
    pub job_id: JobId,
    /// Our account id.
    pub account_id: String,
    pub publish_id: String,
    /// The public post's id, once TikTok told it; never guessed.
    pub post_id: Option<String>,
    /// When the upload reached TikTok.
    pub delivered_at: DateTime<Utc>,
    /// When the video went up (TikTok's `create_time`), once known.
    pub posted_at: Option<DateTime<Utc>>,
    /// When the collector last asked TikTok about it.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When it is next asked; None once the schedule has ended.
    pub next_due_at: Option<DateTime<Utc>>,
    /// Why the schedule ended early, when it did.
    pub ended: Option<String>,
}

/// What video/query said of one post at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub post_id: String,
    pub sampled_at: DateTime<Utc>,
    pub views: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
}

/// What user/info (`user.info.stats`) said of an account at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTotals {
    pub account_id: String,
    pub sampled_at: DateTime<Utc>,
    pub followers: u64,
    pub following: u64,
    pub likes: u64,
    pub videos: u64,
}

/// What one pass learned about one claimed post. Applying it releases the claim.
#[derive(Debug, Clone, PartialEq)]
pub struct PostUpdate {
    pub job_id: JobId,
    /// Set when TikTok told the post id in this pass.
    pub post_id: Option<String>,
    /// Set when TikTok told when the video went up.
    pub posted_at: Option<DateTime<Utc>>,
    pub checked_at: DateTime<Utc>,
    /// When to ask next; None ends the schedule.
    pub next_due_at: Option<DateTime<Utc>>,
    /// Why the schedule ended early.
    pub ended: Option<String>,
    pub sample: Option<Sample>,
}

/// The latest sample of one post, with what its job asked for: the rows
/// `GET /v1/performance` groups.
#[derive(Debug, Clone)]
pub struct LatestSample {
    pub job_id: JobId,
    pub account_id: String,
    /// The job's request as stored (the `JobRequest` wire form, JSON).
    pub spec: String,
    pub sample: Sample,
}

/// Where performance is kept: what the collector and the API ask of the store.
#[async_trait]
pub trait PerformanceStore: Send + Sync + 'static {
    /// Starts tracking up to `limit` jobs whose upload reached TikTok and that
    /// are not tracked yet, due at `now`; returns how many.
    async fn track_new_posts(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
    /// Atomically takes up to `limit` posts due at `now` for `lease`, oldest
    /// due first, leaving out accounts in a back-off. Concurrent callers get
    /// different posts.
    async fn claim_due_posts(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<TrackedPost>, StoreError>;
    /// Applies what a pass learned (samples and schedule) in one transaction
    /// and releases those claims.
    async fn finish_posts(&self, updates: &[PostUpdate]) -> Result<(), StoreError>;
    /// Releases claims without changing anything: the posts stay due.
    async fn release_posts(&self, jobs: &[JobId]) -> Result<(), StoreError>;
    /// Leaves `account` alone until `until` (after TikTok's 429).
    async fn back_off_account(&self, account: &str, until: DateTime<Utc>) -> Result<(), StoreError>;
    /// Makes `account`'s totals due at `at`.
    async fn account_stats_due(&self, account: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Takes `account`'s totals for `lease` if they are due at `now`; false
    /// when they are not due, in a back-off, or another collector has them.
    async fn claim_account_stats(
        &self,
        account: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// Stores `totals` (when Some) and when the next are due (None: not until
    /// a new post is known).
    async fn finish_account_stats(
        &self,
        account: &str,
        totals: Option<&AccountTotals>,
        next_due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    /// When the account's newest post with a known id went up (or, when that
    /// is not known, reached TikTok): what its totals' schedule follows.
    async fn newest_post_time(&self, account: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    async fn tracked_post(&self, job: &JobId) -> Result<Option<TrackedPost>, StoreError>;
    /// A job's samples, newest first.
    async fn samples(&self, job: &JobId) -> Result<Vec<Sample>, StoreError>;
    /// The latest sample of every post that went up (or reached TikTok) at or after `since`.
    async fn latest_samples(&self, since: DateTime<Utc>) -> Result<Vec<LatestSample>, StoreError>;
    /// Every account's totals, newest first.
    async fn account_totals(&self) -> Result<Vec<AccountTotals>, StoreError>;
}

/// The post columns, in [`PostRow`]'s order.
const POST_COLUMNS: &str =
    "job_id, account_id, publish_id, post_id, delivered_at, posted_at, last_checked_at, next_due_at, ended";

#[async_trait]
impl PerformanceStore for Records {
    async fn track_new_posts(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        // Any upload TikTok kept counts (an inbox draft, or a later kind of
        // publish): not one still being sent, nor one that failed.
        let added = db_run!(self, pool => {
            sqlx::query(
                "INSERT INTO performance_posts (job_id, account_id, publish_id, delivered_at, next_due_at) \
                 SELECT u.job_id, u.account_id, u.publish_id, u.updated_at, $1 FROM tiktok_uploads u \
                 WHERE u.status NOT IN ('initialised', 'uploaded', 'failed') \
                 AND NOT EXISTS (SELECT 1 FROM performance_posts p WHERE p.job_id = u.job_id) \
                 ORDER BY u.updated_at LIMIT $2 \
                 ON CONFLICT (job_id) DO NOTHING",
            )
            .bind(time_text(now))
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(added)
    }

    async fn claim_due_posts(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<TrackedPost>, StoreError> {
        // One statement: SQLite serialises writers; on PostgreSQL SKIP LOCKED
        // makes concurrent collectors take different rows.
        let rows: Vec<PostRow> = db_run!(self, pool => {
            let sql = format!(
                "UPDATE performance_posts SET claimed_until = $1 WHERE job_id IN (SELECT p.job_id \
                 FROM performance_posts p WHERE p.next_due_at <= $2 \
                 AND (p.claimed_until IS NULL OR p.claimed_until <= $2) \
                 AND NOT EXISTS (SELECT 1 FROM performance_accounts a WHERE a.account_id = p.account_id \
                 AND a.backoff_until > $2) \
                 ORDER BY p.next_due_at LIMIT $3{}) RETURNING {POST_COLUMNS}",
                dialect_of(pool).skip_locked
            );
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(time_text(later(now, lease)))
                .bind(time_text(now))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        let mut posts = rows.into_iter().map(PostRow::into_record).collect::<Result<Vec<_>, _>>()?;
        posts.sort_by(|a, b| a.next_due_at.cmp(&b.next_due_at).then_with(|| a.job_id.as_str().cmp(b.job_id.as_str())));
        Ok(posts)
    }

    async fn finish_posts(&self, updates: &[PostUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        db_run!(self, pool => {
            let mut tx = pool.write().await?;
            for u in updates {
                if let Some(s) = &u.sample {
                    sqlx::query(
                        "INSERT INTO performance_samples (job_id, account_id, post_id, sampled_at, views, likes, \
                         comments, shares) SELECT job_id, account_id, $2, $3, $4, $5, $6, $7 \
                         FROM performance_posts WHERE job_id = $1",
                    )
                    .bind(u.job_id.as_str())
                    .bind(&s.post_id)
                    .bind(time_text(s.sampled_at))
                    .bind(count(s.views))
                    .bind(count(s.likes))
                    .bind(count(s.comments))
                    .bind(count(s.shares))
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "UPDATE performance_posts SET post_id = COALESCE($2, post_id), \
                     posted_at = COALESCE($3, posted_at), last_checked_at = $4, next_due_at = $5, ended = $6, \
                     claimed_until = NULL WHERE job_id = $1",
                )
                .bind(u.job_id.as_str())
                .bind(&u.post_id)
                .bind(u.posted_at.map(time_text))
                .bind(time_text(u.checked_at))
                .bind(u.next_due_at.map(time_text))
                .bind(&u.ended)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn release_posts(&self, jobs: &[JobId]) -> Result<(), StoreError> {
        for job in jobs {
            db_run!(self, pool => {
                sqlx::query("UPDATE performance_posts SET claimed_until = NULL WHERE job_id = $1")
                    .bind(job.as_str())
                    .execute(pool)
                    .await?;
            });
        }
        Ok(())
    }

    async fn back_off_account(&self, account: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_account_time(account, AccountTime::BackoffUntil, until).await
    }

    async fn account_stats_due(&self, account: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_account_time(account, AccountTime::StatsDueAt, at).await
    }

    async fn claim_account_stats(
        &self,
        account: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let taken = db_run!(self, pool => {
            sqlx::query(
                "UPDATE performance_accounts SET stats_due_at = $3 WHERE account_id = $1 AND stats_due_at <= $2 \
                 AND (backoff_until IS NULL OR backoff_until <= $2)",
            )
            .bind(account)
            .bind(time_text(now))
            .bind(time_text(later(now, lease)))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(taken == 1)
    }

    async fn finish_account_stats(
        &self,
        account: &str,
        totals: Option<&AccountTotals>,
        next_due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        db_run!(self, pool => {
            let mut tx = pool.write().await?;
            if let Some(t) = totals {
                sqlx::query(
                    "INSERT INTO account_stats (account_id, sampled_at, followers, following, likes, videos) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(account)
                .bind(time_text(t.sampled_at))
                .bind(count(t.followers))
                .bind(count(t.following))
                .bind(count(t.likes))
                .bind(count(t.videos))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE performance_accounts SET stats_due_at = $2 WHERE account_id = $1")
                .bind(account)
                .bind(next_due_at.map(time_text))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn newest_post_time(&self, account: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let newest: Option<String> = db_run!(self, pool => {
            sqlx::query_scalar(
                "SELECT MAX(COALESCE(posted_at, delivered_at)) FROM performance_posts \
                 WHERE account_id = $1 AND post_id IS NOT NULL",
            )
            .bind(account)
            .fetch_one(pool)
            .await?
        });
        newest.as_deref().map(parse_time).transpose()
    }

    async fn tracked_post(&self, job: &JobId) -> Result<Option<TrackedPost>, StoreError> {
        let sql = format!("SELECT {POST_COLUMNS} FROM performance_posts WHERE job_id = $1");
        let row: Option<PostRow> = db_run!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(job.as_str()).fetch_optional(pool).await?
        });
        row.map(PostRow::into_record).transpose()
    }

    async fn samples(&self, job: &JobId) -> Result<Vec<Sample>, StoreError> {
        let rows: Vec<SampleRow> = db_run!(self, pool => {
            sqlx::query_as(
                "SELECT post_id, sampled_at, views, likes, comments, shares FROM performance_samples \
                 WHERE job_id = $1 ORDER BY sampled_at DESC, id DESC",
            )
            .bind(job.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(SampleRow::into_sample).collect()
    }

    async fn latest_samples(&self, since: DateTime<Utc>) -> Result<Vec<LatestSample>, StoreError> {
        let rows: Vec<LatestRow> = db_run!(self, pool => {
            sqlx::query_as(
                "SELECT s.job_id, s.account_id, j.spec, s.post_id, s.sampled_at, s.views, s.likes, s.comments, \
                 s.shares FROM performance_samples s \
                 JOIN jobs j ON j.id = s.job_id \
                 JOIN performance_posts p ON p.job_id = s.job_id \
                 WHERE s.id = (SELECT MAX(l.id) FROM performance_samples l WHERE l.job_id = s.job_id) \
                 AND COALESCE(p.posted_at, p.delivered_at) >= $1 \
                 ORDER BY s.job_id",
            )
            .bind(time_text(since))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(LatestSample {
                    job_id: JobId::parse(&r.job_id).ok_or_else(|| corrupt("sample job id"))?,
                    account_id: r.account_id,
                    spec: r.spec,
                    sample: SampleRow {
                        post_id: r.post_id,
                        sampled_at: r.sampled_at,
                        views: r.views,
                        likes: r.likes,
                        comments: r.comments,
                        shares: r.shares,
                    }
                    .into_sample()?,
                })
            })
            .collect()
    }

    async fn account_totals(&self) -> Result<Vec<AccountTotals>, StoreError> {
        let rows: Vec<TotalsRow> = db_run!(self, pool => {
            sqlx::query_as(
                "SELECT account_id, sampled_at, followers, following, likes, videos FROM account_stats \
                 ORDER BY sampled_at DESC, id DESC",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(AccountTotals {
                    account_id: r.account_id,
                    sampled_at: parse_time(&r.sampled_at)?,
                    followers: uncount(r.followers)?,
                    following: uncount(r.following)?,
                    likes: uncount(r.likes)?,
                    videos: uncount(r.videos)?,
                })
            })
            .collect()
    }
}

/// A count as the databases store it (signed 64-bit).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uncount(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(corrupt)
}

#[derive(Debug, sqlx::FromRow)]
struct PostRow {
    job_id: String,
    account_id: String,
    publish_id: String,
    post_id: Option<String>,
    delivered_at: String,
    posted_at: Option<String>,
    last_checked_at: Option<String>,
    next_due_at: Option<String>,
    ended: Option<String>,
}

impl PostRow {
    fn into_record(self) -> Result<TrackedPost, StoreError> {
        let time = |t: Option<String>| t.as_deref().map(parse_time).transpose();
        Ok(TrackedPost {
            job_id: JobId::parse(&self.job_id).ok_or_else(|| corrupt("performance job id"))?,
            account_id: self.account_id,
            publish_id: self.publish_id,
            post_id: self.post_id,
            delivered_at: parse_time(&self.delivered_at)?,
            posted_at: time(self.posted_at)?,
            last_checked_at: time(self.last_checked_at)?,
            next_due_at: time(self.next_due_at)?,
            ended: self.ended,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct SampleRow {
    post_id: String,
    sampled_at: String,
    views: i64,
    likes: i64,
    comments: i64,
    shares: i64,
}

impl SampleRow {
    fn into_sample(self) -> Result<Sample, StoreError> {
        Ok(Sample {
            post_id: self.post_id,
            sampled_at: parse_time(&self.sampled_at)?,
            views: uncount(self.views)?,
            likes: uncount(self.likes)?,
            comments: uncount(self.comments)?,
            shares: uncount(self.shares)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct LatestRow {
    job_id: String,
    account_id: String,
    spec: String,
    post_id: String,
    sampled_at: String,
    views: i64,
    likes: i64,
    comments: i64,
    shares: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct TotalsRow {
    account_id: String,
    sampled_at: String,
    followers: i64,
    following: i64,
    likes: i64,
    videos: i64,
}

/// The times kept per account in `performance_accounts`.
#[derive(Debug, Clone, Copy)]
enum AccountTime {
    BackoffUntil,
    StatsDueAt,
}

impl AccountTime {
    fn column(self) -> &'static str {
        match self {
            AccountTime::BackoffUntil => "backoff_until",
            AccountTime::StatsDueAt => "stats_due_at",
        }
    }
}

impl Records {
    /// Sets one of an account's times, making its row if it has none.
    async fn set_account_time(&self, account: &str, which: AccountTime, at: DateTime<Utc>) -> Result<(), StoreError> {
        let column = which.column();
        let sql = format!(
            "INSERT INTO performance_accounts (account_id, {column}) VALUES ($1, $2) \
             ON CONFLICT (account_id) DO UPDATE SET {column} = excluded.{column}"
        );
        db_run!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account).bind(time_text(at)).execute(pool).await?;
        });
        Ok(())
    }
}
