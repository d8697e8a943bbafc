//! The collector: one pass claims the posts due, account by account asks
//! TikTok about them within the rate limits, and stores what it learned.
//!
//! - A post whose id is unknown (an inbox draft) is asked about with
//!   status/fetch: only `PUBLISH_COMPLETE` with `publicaly_available_post_id`
//!   gives its id, which then goes into the job's manifest
//!   (`manifest.tiktok.post_id`). A post id a Direct Post already recorded in
//!   the manifest is taken from there without a call.
//! - Posts with an id are asked about with `video/query`, up to
//!   `ids_per_call` (≤ 20) of one account per call.
//! - Every call first takes a slot in the shared rate limiter: per account,
//!   and for video/query also per app (TikTok's 600 a minute may be either).
//!   A slot that is not free, or TikTok's 429, ends the account's pass; a
//!   429 also leaves the account alone for `rate_limit_backoff_secs`. Posts
//!   not asked stay due: nothing is lost, only delayed.
//! - Several processes may run passes at once: each due post is claimed by
//!   one of them ([`PerformanceStore::claim_due_posts`]), as are an
//!   account's totals.
//!
//! A pass takes `now` from its caller, so tests step through days of a
//! schedule without waiting for them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::schedule::Cadence;
use super::settings::PerformanceSettings;
use crate::domain::JobId;
use crate::error_code as codes;
use crate::providers::ProviderError;
use crate::providers::tiktok::Accounts;
use crate::providers::tiktok::display::{PublicPost, VideoCounts};
use crate::settings::Settings;
use crate::store::records::{AccountTotals, PostUpdate, RecordStore, Sample, StoreError, TrackedPost};

/// The window of every per-minute slot.
const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long an account that cannot be asked (disconnected, waiting for a
/// reconnect, refused its grant) is left alone.
const ACCOUNT_PAUSE: chrono::Duration = chrono::Duration::hours(1);

/// Collects each TikTok post's counts; see the module docs.
#[derive(Clone)]
pub struct Collector {
    records: Arc<dyn RecordStore>,
    accounts: Accounts,
    settings: PerformanceSettings,
    cadence: Cadence,
    /// `tiktok.status_per_minute`: the account's whole status/fetch budget,
    /// which uploads share.
    status_budget: u32,
}

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Posts newly tracked (their upload reached TikTok).
    pub tracked: u64,
    /// Posts due and claimed.
    pub claimed: usize,
    pub status_calls: u32,
    pub query_calls: u32,
    pub stats_calls: u32,
    /// Post ids learned (from status/fetch or a Direct Post's manifest).
    pub post_ids_learned: u32,
    pub samples: u32,
    pub account_totals: u32,
    /// Posts left due for a later pass: a slot was not free, TikTok said 429,
    /// or a call failed.
    pub deferred: u32,
}

impl Collector {
    pub fn new(
        records: Arc<dyn RecordStore>,
        accounts: Accounts,
        settings: PerformanceSettings,
        status_budget: u32,
    ) -> Self {
        let cadence = settings.cadence();
        Self { records, accounts, settings, cadence, status_budget }
    }

    /// The collector the settings ask for: None when `performance.enabled`
    /// is off or TikTok is not configured.
    pub fn from_settings(s: &Settings, records: Arc<dyn RecordStore>, accounts: Option<Accounts>) -> Option<Self> {
        if !s.performance.enabled {
            return None;
        }
        Some(Self::new(records, accounts?, s.performance.clone(), s.tiktok.status_per_minute))
    }

    /// Runs a pass every `tick_secs` until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.collect_due(Utc::now()).await {
                Ok(r) if r.claimed > 0 || r.tracked > 0 => info!(
                    tracked = r.tracked,
                    claimed = r.claimed,
                    samples = r.samples,
                    post_ids_learned = r.post_ids_learned,
                    deferred = r.deferred,
                    "performance collected"
                ),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "performance collection failed; trying again next tick"),
            }
        }
    }

    /// One pass as of `now`: tracks new posts, claims the due ones and asks
    /// TikTok about them, account by account.
    pub async fn collect_due(&self, now: DateTime<Utc>) -> Result<PassReport, StoreError> {
        let mut report =
            PassReport { tracked: self.records.track_new_posts(now, self.settings.batch).await?, ..Default::default() };
        let posts = self.records.claim_due_posts(now, self.settings.lease(), self.settings.batch).await?;
        report.claimed = posts.len();
        let mut by_account: BTreeMap<String, Vec<TrackedPost>> = BTreeMap::new();
        for post in posts {
            by_account.entry(post.account_id.clone()).or_default().push(post);
        }
        for (account, posts) in by_account {
            let jobs: Vec<JobId> = posts.iter().map(|p| p.job_id.clone()).collect();
            if let Err(e) = self.collect_account(&account, posts, now, &mut report).await {
                // Whatever was not stored stays due.
                let _ = self.records.release_posts(&jobs).await;
                return Err(e);
            }
        }
        Ok(report)
    }

    async fn collect_account(
        &self,
        account: &str,
        posts: Vec<TrackedPost>,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let jobs: Vec<JobId> = posts.iter().map(|p| p.job_id.clone()).collect();
        let usable = match self.accounts.access_token(account, None).await {
            Ok(_) => self.records.account(account).await?,
            // The store's trouble, not the account's: the next tick tries again.
            Err(e) if e.code == codes::RECORD_STORE_ERROR => {
                report.deferred += posts.len() as u32;
                return self.records.release_posts(&jobs).await;
            }
            Err(e) => {
                warn!(account, code = e.code.as_str(), "TikTok account cannot be asked now; trying again in an hour");
                None
            }
        };
        let Some(acct) = usable else {
            self.records.back_off_account(account, now + ACCOUNT_PAUSE).await?;
            report.deferred += posts.len() as u32;
            return self.records.release_posts(&jobs).await;
        };
        let granted = |scope: &str| acct.scopes.split(',').any(|s| s.trim() == scope);

        let mut updates: Vec<PostUpdate> = Vec::new();
        let mut release: Vec<JobId> = Vec::new();
        // Post ids learned in this pass: stored with the post's update.
        let mut learned: HashMap<String, String> = HashMap::new();
        let mut stopped = false;
        let (inbox, mut known): (Vec<_>, Vec<_>) = posts.into_iter().partition(|p| p.post_id.is_none());

        for mut post in inbox {
            if let Some(id) = self.manifest_post_id(&post).await? {
                report.post_ids_learned += 1;
                learned.insert(post.job_id.to_string(), id.clone());
                post.post_id = Some(id);
                known.push(post);
                continue;
            }
            if stopped || !self.take_status_slot(account, now).await? {
                stopped = true;
                report.deferred += 1;
                release.push(post.job_id);
                continue;
            }
            report.status_calls += 1;
            let api = &self.accounts.api;
            let publish_id = post.publish_id.clone();
            let answer = self.call(account, |t| {
                let publish_id = publish_id.clone();
                async move { api.public_post(&t, &publish_id).await }
            });
            match answer.await {
                Ok(PublicPost::Posted { post_id }) => {
                    info!(job_id = %post.job_id, post_id = %post_id, "TikTok names the public post of the draft");
                    report.post_ids_learned += 1;
                    self.record_in_manifest(&post, &post_id).await?;
                    learned.insert(post.job_id.to_string(), post_id.clone());
                    post.post_id = Some(post_id);
                    known.push(post);
                }
                Ok(PublicPost::NotYet) => {
                    let next = self.cadence.next_due(post.delivered_at, Some(now), now);
                    let ended = next.is_none().then(|| {
                        format!(
                            "the creator did not post the draft publicly within {} days; TikTok is no longer asked",
                            self.settings.max_age_days
                        )
                    });
                    updates.push(update(&post, now, next, ended, None));
                }
                Ok(PublicPost::Failed { reason }) => {
                    let ended = format!("TikTok reports the publish failed ({reason}); there is nothing to measure");
                    updates.push(update(&post, now, None, Some(ended), None));
                }
                Err(e)
                    if matches!(
                        e.code,
                        codes::INVALID_PUBLISH_ID | codes::TOKEN_NOT_AUTHORIZED_FOR_SPECIFIED_PUBLISH_ID
                    ) =>
                {
                    let ended = format!("TikTok no longer knows the publish ({}); there is nothing to measure", e.code);
                    updates.push(update(&post, now, None, Some(ended), None));
                }
                Err(e) => {
                    stopped |= self.after_failure(account, &e, now).await?;
                    report.deferred += 1;
                    release.push(post.job_id);
                }
            }
        }
        if !learned.is_empty() && granted("user.info.stats") {
            self.records.account_stats_due(account, now).await?;
        }

        let mut unasked: Vec<TrackedPost> = Vec::new();
        if !granted("video.list") {
            if !known.is_empty() {
                warn!(account, "the account's grant lacks video.list: its posts cannot be measured; connect it again");
                self.records.back_off_account(account, now + ACCOUNT_PAUSE).await?;
            }
            unasked = known;
        } else {
            let per_call = self.settings.ids_per_call.clamp(1, 20) as usize;
            for chunk in known.chunks(per_call) {
                if stopped || !self.take_query_slot(account, now).await? {
                    stopped = true;
                    unasked.extend_from_slice(chunk);
                    continue;
                }
                report.query_calls += 1;
                let ids: Vec<String> = chunk.iter().filter_map(|p| p.post_id.clone()).collect();
                let api = &self.accounts.api;
                let answer = self.call(account, |t| {
                    let ids = ids.clone();
                    async move { api.query_videos(&t, &ids).await }
                });
                match answer.await {
                    Ok(videos) => {
                        for post in chunk {
                            let found = videos.iter().find(|v| Some(&v.id) == post.post_id.as_ref());
                            let learned_now = learned.get(post.job_id.as_str()).cloned();
                            let mut u = self.sampled(post, found, now, learned_now.is_some());
                            u.post_id = learned_now;
                            report.samples += u32::from(u.sample.is_some());
                            updates.push(u);
                        }
                    }
                    Err(e) => {
                        stopped |= self.after_failure(account, &e, now).await?;
                        unasked.extend_from_slice(chunk);
                    }
                }
            }
        }
        for post in unasked {
            report.deferred += 1;
            match learned.get(post.job_id.as_str()) {
                // Keep the id learned; the post is due again at once.
                Some(id) => {
                    let mut u = update(&post, now, Some(now), None, None);
                    u.post_id = Some(id.clone());
                    u.posted_at = Some(now);
                    updates.push(u);
                }
                None => release.push(post.job_id),
            }
        }
        self.records.finish_posts(&updates).await?;
        self.records.release_posts(&release).await?;

        if granted("user.info.stats") && self.records.claim_account_stats(account, now, self.settings.lease()).await? {
            self.collect_totals(account, now, report).await?;
        }
        Ok(())
    }

    /// The update of a post video/query was asked about: a sample when TikTok
    /// returned the video (a deleted or private one is left out), and the
    /// next mark of its schedule either way.
    /// `learned_now`: its id was learned in this pass, so without TikTok's
    /// `create_time` it counts as posted now.
    fn sampled(
        &self,
        post: &TrackedPost,
        found: Option<&VideoCounts>,
        now: DateTime<Utc>,
        learned_now: bool,
    ) -> PostUpdate {
        let created = found.and_then(|v| v.create_time).and_then(|s| DateTime::from_timestamp(s, 0));
        let fallback = if learned_now { now } else { post.delivered_at };
        let posted = created.or(post.posted_at).unwrap_or(fallback);
        let next = self.cadence.next_due(posted, Some(now), now);
        let sample = found.map(|v| Sample {
            post_id: v.id.clone(),
            sampled_at: now,
            views: v.view_count,
            likes: v.like_count,
            comments: v.comment_count,
            shares: v.share_count,
        });
        if found.is_none() {
            warn!(job_id = %post.job_id, "TikTok did not return the post (deleted, or no longer public)");
        }
        let mut u = update(post, now, next, None, sample);
        u.posted_at = Some(posted);
        u
    }

    async fn collect_totals(
        &self,
        account: &str,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let newest = self.records.newest_post_time(account).await?;
        let key = format!("tiktok:user_info:{account}");
        if self.records.acquire_slot_at(&key, None, self.settings.user_info_per_minute, MINUTE, now).await?.is_some() {
            return self.records.finish_account_stats(account, None, Some(now + chrono::Duration::minutes(1))).await;
        }
        report.stats_calls += 1;
        let api = &self.accounts.api;
        match self.call(account, |t| async move { api.user_stats(&t).await }).await {
            Ok(s) => {
                let totals = AccountTotals {
                    account_id: account.to_string(),
                    sampled_at: now,
                    followers: s.follower_count,
                    following: s.following_count,
                    likes: s.likes_count,
                    videos: s.video_count,
                };
                report.account_totals += 1;
                let next = newest.and_then(|posted| self.cadence.next_due(posted, Some(now), now));
                self.records.finish_account_stats(account, Some(&totals), next).await
            }
            Err(e) => {
                self.after_failure(account, &e, now).await?;
                let retry = now + chrono::Duration::from_std(self.settings.rate_limit_backoff()).unwrap_or_default();
                self.records.finish_account_stats(account, None, Some(retry)).await
            }
        }
    }

    /// Logs a failed call; after a 429 leaves the account alone for the
    /// back-off. True when the account's pass should stop.
    async fn after_failure(&self, account: &str, e: &ProviderError, now: DateTime<Utc>) -> Result<bool, StoreError> {
        if e.code == codes::RATE_LIMIT_EXCEEDED {
            let wait = self.settings.rate_limit_backoff().max(e.retry_after.unwrap_or_default().min(MINUTE));
            let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
            warn!(account, until = %until, "TikTok answered 429; the account's posts wait");
            self.records.back_off_account(account, until).await?;
            return Ok(true);
        }
        warn!(account, code = e.code.as_str(), error = %e.message, "a TikTok call for performance failed; its posts stay due");
        if !e.retryable {
            // Asking again soon cannot help (a scope, a refused grant): not for an hour.
            self.records.back_off_account(account, now + ACCOUNT_PAUSE).await?;
        }
        Ok(!e.retryable)
    }

    /// A status/fetch slot: the collector's own share, then the account's
    /// whole budget (which uploads share).
    async fn take_status_slot(&self, account: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.take_slots(
            &[
                (format!("tiktok:perf_status:{account}"), self.settings.status_per_minute),
                (format!("tiktok:status:{account}"), self.status_budget),
            ],
            now,
        )
        .await
    }

    /// A video/query slot: per account, then per app.
    async fn take_query_slot(&self, account: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.take_slots(
            &[
                (format!("tiktok:video_query:{account}"), self.settings.video_query_per_minute),
                ("tiktok:video_query".to_string(), self.settings.app_video_query_per_minute),
            ],
            now,
        )
        .await
    }

    /// Takes a slot of every key, or none: a refusal gives back the ones taken.
    async fn take_slots(&self, keys: &[(String, u32)], now: DateTime<Utc>) -> Result<bool, StoreError> {
        let holder = uuid::Uuid::now_v7().to_string();
        for (i, (key, limit)) in keys.iter().enumerate() {
            if self.records.acquire_slot_at(key, Some(&holder), *limit, MINUTE, now).await?.is_some() {
                for (taken, _) in &keys[..i] {
                    self.records.release_slot(taken, &holder).await?;
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs `call` with the account's access token; when TikTok says the
    /// token is invalid, refreshes it (once, whoever does it) and tries again.
    async fn call<T, F, Fut>(&self, account: &str, call: F) -> Result<T, ProviderError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let (token, version) = self.accounts.access_token(account, None).await?;
        match call(token).await {
            Err(e) if e.code == codes::ACCESS_TOKEN_INVALID => {
                let (token, _) = self.accounts.access_token(account, Some(version)).await?;
                call(token).await
            }
            other => other,
        }
    }

    /// The post id the job's manifest already holds for this publish (a
    /// Direct Post records it when TikTok tells it).
    async fn manifest_post_id(&self, post: &TrackedPost) -> Result<Option<String>, StoreError> {
        let Some(job) = self.records.job(&post.job_id).await? else { return Ok(None) };
        Ok(job.manifest.tiktok.filter(|t| t.publish_id == post.publish_id).and_then(|t| t.post_id))
    }

    /// Writes a learned post id into the job's manifest (`manifest.tiktok.post_id`).
    async fn record_in_manifest(&self, post: &TrackedPost, post_id: &str) -> Result<(), StoreError> {
        let Some(job) = self.records.job(&post.job_id).await? else { return Ok(()) };
        let mut manifest = job.manifest;
        match manifest.tiktok.as_mut() {
            Some(t) if t.publish_id == post.publish_id && t.post_id.is_none() => {
                t.post_id = Some(post_id.to_string());
                self.records.save_manifest(&post.job_id, &manifest).await
            }
            _ => Ok(()),
        }
    }
}

/// A post's update with the schedule's next mark.
fn update(
    post: &TrackedPost,
    now: DateTime<Utc>,
    next_due_at: Option<DateTime<Utc>>,
    ended: Option<String>,
    sample: Option<Sample>,
) -> PostUpdate {
    PostUpdate {
        job_id: post.job_id.clone(),
        post_id: None,
        posted_at: None,
        checked_at: now,
        next_due_at,
        ended,
        sample,
    }
}
