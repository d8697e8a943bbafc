//! One job's render into the creator's TikTok inbox, as exactly one draft,
//! or onto their profile as exactly one Direct Post ([`PostTarget`]): the
//! same init (`inbox/video/init` or `video/init` with the approved
//! `post_info`), chunked upload, memory and limits, and status polled until
//! the inbox has it (`SEND_TO_USER_INBOX`) or the post is up
//! (`PUBLISH_COMPLETE`, with the public post id once TikTok gives it).
//!
//! TikTok has no idempotency key, so the record store is the memory: the
//! `publish_id` (and the sealed upload URL) is saved before the first byte is
//! sent. A later delivery of the same job asks TikTok about that publish
//! first — done, failed, or still uploading (then it resumes at TikTok's
//! progress) — and starts a second upload only when the first can no longer
//! complete (it failed, or its upload URL expired).
//!
//! Limits are waited out, not failed: per-account slots in the record store
//! (init 6/min, status 30/min, 5 drafts per 24 h) are shared by all workers;
//! what cannot be waited out in place becomes [`UploadError::Wait`], which the
//! pipeline turns into the job state `waiting` with a retry time.
//!
//! A draft slot stands for an upload TikTok holds against the creator's
//! pending shares, so it is held by the job whose upload took it, and it
//! counts only while TikTok can hold that upload: an upload TikTok did not
//! keep (its URL expired before the last byte, TikTok answers
//! `invalid_publish_id`, or it failed) gives its slot back; an init whose
//! answer was lost holds its slot for the upload URL's hour only. A new upload
//! after an expiry waits first ([`UploadLimits::restart_delay`]), and after
//! `upload_restarts` of them the job fails `upload_url_expired`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::{info, warn};

use super::accounts::{Accounts, store_error};
use super::api::{ChunkAnswer, PROVIDER, PublishStatus};
use super::chunks::ChunkPlan;
use super::settings::TikTokSettings;
use crate::domain::JobId;
use crate::error_code as codes;
use crate::providers::ProviderError;
use crate::store::records::{AccountRecord, RateLimits, UploadRecord, UploadStatus, UploadStore};

mod chunks;
mod creator;
mod photos;
mod slots;

pub use creator::{PostLength, post_length};
pub use slots::UploadLimits;
use slots::{direct_key, drafts_key};

/// TikTok's upload URLs are valid for an hour after init.
const UPLOAD_URL_LIFETIME: chrono::Duration = chrono::Duration::hours(1);

pub use crate::providers::UploadError;

/// Where a delivery goes at TikTok.
#[derive(Debug, Clone, PartialEq)]
pub enum PostTarget {
    /// A draft in the creator's inbox.
    Inbox,
    /// A Direct Post with this approved `post_info`
    /// ([`crate::domain::DirectPost::post_info`]).
    Direct(serde_json::Value),
}

impl PostTarget {
    /// Whether TikTok's status means this delivery is done.
    fn done(&self, status: &PublishStatus) -> bool {
        match (self, status) {
            (_, PublishStatus::Published { .. }) => true,
            (PostTarget::Inbox, PublishStatus::InInbox) => true,
            _ => false,
        }
    }

    /// The upload record's status for a finished delivery.
    fn finished(&self) -> UploadStatus {
        match self {
            PostTarget::Inbox => UploadStatus::InInbox,
            PostTarget::Direct(_) => UploadStatus::Published,
        }
    }
}

/// What a finished delivery left at TikTok.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub publish_id: String,
    /// The public post's id, when TikTok gave it already.
    pub post_id: Option<String>,
}

impl Delivered {
    fn of(upload: &UploadRecord, status: &PublishStatus) -> Self {
        let post_id = match status {
            PublishStatus::Published { post_ids } => post_ids.first().cloned(),
            _ => None,
        };
        Self { publish_id: upload.publish_id.clone(), post_id }
    }
}

/// Uploads renders to TikTok inboxes and profiles.
#[derive(Clone)]
pub struct InboxUploader {
    pub accounts: Accounts,
    /// Where each job's upload got to (the exactly-one memory).
    uploads: Arc<dyn UploadStore>,
    /// TikTok's per-account limits, shared by every worker.
    slots: Arc<dyn RateLimits>,
    limits: UploadLimits,
}

impl InboxUploader {
    pub fn new(
        accounts: Accounts,
        uploads: Arc<dyn UploadStore>,
        slots: Arc<dyn RateLimits>,
        limits: UploadLimits,
    ) -> Self {
        Self { accounts, uploads, slots, limits }
    }

    /// Delivers `file` (`size` bytes) of `job` to `account` at `target`.
    /// `progress` gets 0–100.
    pub async fn deliver(
        &self,
        job: &JobId,
        account: &str,
        file: &Path,
        size: u64,
        target: &PostTarget,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<Delivered, UploadError> {
        let acct = self.accounts.load(account).await?;
        let plan = ChunkPlan::new(size)
            .map_err(|e| ProviderError::new(PROVIDER, codes::VIDEO_UNSUITABLE, e.to_string(), false))?;
        self.deliver_to(job, &acct, file, &plan, target, progress).await.map_err(|e| self.classify(e))
    }

    async fn deliver_to(
        &self,
        job: &JobId,
        acct: &AccountRecord,
        file: &Path,
        plan: &ChunkPlan,
        target: &PostTarget,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<Delivered, UploadError> {
        let mut restarts = 0;
        loop {
            let existing = self.uploads.upload(job).await.map_err(store_error)?;
            let upload = match existing {
                Some(u) if u.status == UploadStatus::InInbox && *target == PostTarget::Inbox => {
                    return Ok(Delivered { publish_id: u.publish_id, post_id: None });
                }
                // A finished Direct Post is asked about again below: the answer has its post id.
                Some(u) if u.status != UploadStatus::Failed => {
                    info!(publish_id = %u.publish_id, "an upload of this job exists; asking TikTok about it");
                    let status = match self.status(acct, &u.publish_id).await {
                        // TikTok dropped the task: it can never complete, so a new upload is safe.
                        Err(UploadError::Failed(e)) if e.code == codes::INVALID_PUBLISH_ID => {
                            info!(publish_id = %u.publish_id, "TikTok no longer knows this upload; starting a new one");
                            self.abandon(&u).await?;
                            self.before_restart(&mut restarts).await?;
                            continue;
                        }
                        other => other?,
                    };
                    match status {
                        done if target.done(&done) => {
                            self.set_status(&u, target.finished()).await?;
                            progress(100);
                            return Ok(Delivered::of(&u, &done));
                        }
                        PublishStatus::Failed { reason } => {
                            self.abandon(&u).await?;
                            return Err(fail_reason(&reason).into());
                        }
                        PublishStatus::Uploading { uploaded_bytes } if u.status == UploadStatus::Initialised => {
                            let Some(url) = self.resumable_url(&u, acct)? else {
                                info!(publish_id = %u.publish_id, "its upload URL has expired; starting a new upload");
                                self.abandon(&u).await?;
                                self.before_restart(&mut restarts).await?;
                                continue;
                            };
                            let from = uploaded_bytes.filter(|n| n % plan.chunk_size == 0 && *n < plan.video_size);
                            let start = from.map_or(0, |n| n / plan.chunk_size);
                            info!(publish_id = %u.publish_id, from_chunk = start + 1, "resuming the upload");
                            if !self.send_chunks(&u, &url, plan, file, start, progress).await? {
                                self.before_restart(&mut restarts).await?;
                                continue;
                            }
                            u
                        }
                        PublishStatus::Uploading { .. } | PublishStatus::InInbox | PublishStatus::Published { .. } => u,
                    }
                }
                _ => {
                    let (u, url) = self.start(job, acct, plan, target).await?;
                    if !self.send_chunks(&u, &url, plan, file, 0, progress).await? {
                        self.before_restart(&mut restarts).await?;
                        continue;
                    }
                    u
                }
            };
            return self.await_done(acct, upload, target, progress).await;
        }
    }

    /// Takes a draft slot (or, for a Direct Post, a daily post slot) and an
    /// init slot, initialises, and records the publish before any byte is sent.
    async fn start(
        &self,
        job: &JobId,
        acct: &AccountRecord,
        plan: &ChunkPlan,
        target: &PostTarget,
    ) -> Result<(UploadRecord, SecretString), UploadError> {
        let api = &self.accounts.api;
        self.start_with(job, acct, Some(plan), target, |token| async move {
            match target {
                PostTarget::Inbox => api.init_inbox(&token, plan).await,
                PostTarget::Direct(post_info) => api.init_direct(&token, plan, post_info).await,
            }
        })
        .await
    }

    /// [`Self::start`] with the init call given: the limits, the init and the
    /// record before anything is sent. `plan` is None for a photo post, which
    /// TikTok pulls itself (no upload URL to keep).
    async fn start_with<F, Fut>(
        &self,
        job: &JobId,
        acct: &AccountRecord,
        plan: Option<&ChunkPlan>,
        target: &PostTarget,
        init: F,
    ) -> Result<(UploadRecord, SecretString), UploadError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<super::api::Started, ProviderError>>,
    {
        let (pending_key, cap, window, what) = match target {
            PostTarget::Inbox => (
                drafts_key(&acct.id),
                self.limits.max_pending,
                self.limits.pending_window,
                "drafts started (TikTok's cap on pending shares)",
            ),
            PostTarget::Direct(_) => (
                direct_key(&acct.id),
                self.limits.direct_per_day,
                Duration::from_secs(24 * 3600),
                "Direct Posts started (tiktok.direct_posts_per_day, for TikTok's daily post cap)",
            ),
        };
        let counted = cap > 0;
        if counted
            && let Some(until) =
                self.slots.acquire_slot(&pending_key, Some(job.as_str()), cap, window).await.map_err(store_error)?
        {
            return Err(UploadError::Wait {
                code: codes::PENDING_DRAFTS_CAP,
                message: format!(
                    "account {} has {cap} {what} within {} h; this job tries again at {}",
                    acct.id,
                    window.as_secs() / 3600,
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                until: Some(until),
            });
        }
        let started = match self.slot(&format!("tiktok:init:{}", acct.id), self.limits.init_per_minute).await {
            Ok(()) => self.with_token(acct, &init).await.map_err(UploadError::from),
            Err(e) => Err(e),
        };
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                match &e {
                    _ if !counted => {}
                    // TikTok says the drafts (or posts) are too many: then they are, keep counting it.
                    UploadError::Failed(p)
                        if p.code == codes::SPAM_RISK_TOO_MANY_PENDING_SHARE
                            || p.code == codes::SPAM_RISK_TOO_MANY_POSTS => {}
                    // The answer was lost: TikTok may hold an upload we can never
                    // use, but only while its URL is valid.
                    UploadError::Failed(p) if matches!(p.code, codes::TIMEOUT | codes::UNREACHABLE) => {
                        self.hold_for_url_lifetime(&pending_key, job).await?;
                    }
                    // TikTok (or the account) refused: no upload began.
                    _ => self.slots.release_slot(&pending_key, job.as_str()).await.map_err(store_error)?,
                }
                return Err(e);
            }
        };
        let sealed = match plan {
            Some(_) => Some(self.seal_url(acct, &started.upload_url)?),
            None => None,
        };
        let record = UploadRecord {
            job_id: job.clone(),
            account_id: acct.id.clone(),
            publish_id: started.publish_id,
            upload_url: sealed,
            video_size: plan.map_or(0, |p| p.video_size),
            chunk_size: plan.map_or(0, |p| p.chunk_size),
            // A photo post has nothing to send: TikTok pulls it.
            status: if plan.is_some() { UploadStatus::Initialised } else { UploadStatus::Uploaded },
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        if let Err(e) = self.uploads.save_upload(&record).await {
            // This upload will never be used; TikTok drops it with its URL.
            let _ = self.hold_for_url_lifetime(&pending_key, job).await;
            return Err(store_error(e).into());
        }
        info!(
            publish_id = %record.publish_id,
            bytes = plan.map_or(0, |p| p.video_size),
            chunks = plan.map_or(0, |p| p.total_chunk_count),
            direct = matches!(target, PostTarget::Direct(_)),
            "TikTok upload initialised"
        );
        Ok((record, started.upload_url))
    }

    /// Polls status/fetch with backoff until the draft is in the inbox, or
    /// the Direct Post is published (TikTok's moderation comes first).
    async fn await_done(
        &self,
        acct: &AccountRecord,
        upload: UploadRecord,
        target: &PostTarget,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<Delivered, UploadError> {
        let deadline = tokio::time::Instant::now() + self.limits.status_timeout;
        let mut wait = self.limits.poll_initial;
        loop {
            match self.status(acct, &upload.publish_id).await? {
                done if target.done(&done) => {
                    self.set_status(&upload, target.finished()).await?;
                    progress(100);
                    let delivered = Delivered::of(&upload, &done);
                    info!(publish_id = %upload.publish_id, post_id = ?delivered.post_id, status = %target.finished(), "TikTok has it");
                    return Ok(delivered);
                }
                PublishStatus::Failed { reason } => {
                    self.abandon(&upload).await?;
                    return Err(fail_reason(&reason).into());
                }
                PublishStatus::Uploading { .. } | PublishStatus::InInbox | PublishStatus::Published { .. } => {}
            }
            if tokio::time::Instant::now() + wait > deadline {
                return Err(ProviderError::new(
                    PROVIDER,
                    codes::STATUS_TIMEOUT,
                    format!(
                        "TikTok was still processing after {} s; a retry checks again",
                        self.limits.status_timeout.as_secs()
                    ),
                    true,
                )
                .into());
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.limits.poll_max);
        }
    }

    async fn status(&self, acct: &AccountRecord, publish_id: &str) -> Result<PublishStatus, UploadError> {
        self.slot(&format!("tiktok:status:{}", acct.id), self.limits.status_per_minute).await?;
        let api = &self.accounts.api;
        Ok(self.with_token(acct, |token| async move { api.status(&token, publish_id).await }).await?)
    }

    /// Runs `call` with the account's access token; when TikTok says the token
    /// is invalid, refreshes it (once, whoever does it) and tries again.
    async fn with_token<T, F, Fut>(&self, acct: &AccountRecord, call: F) -> Result<T, ProviderError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let (token, version) = self.accounts.access_token(&acct.id, None).await?;
        match call(token).await {
            Err(e) if e.code == codes::ACCESS_TOKEN_INVALID => {
                info!(account = %acct.id, "TikTok refused the access token; refreshing it");
                let (token, _) = self.accounts.access_token(&acct.id, Some(version)).await?;
                call(token).await
            }
            other => other,
        }
    }

    async fn set_status(&self, upload: &UploadRecord, status: UploadStatus) -> Result<(), UploadError> {
        let mut u = upload.clone();
        u.status = status;
        u.updated_at = Utc::now();
        if status != UploadStatus::Initialised {
            u.upload_url = None; // no longer needed: do not keep the secret
        }
        self.uploads.save_upload(&u).await.map_err(store_error)?;
        Ok(())
    }

    fn seal_url(&self, acct: &AccountRecord, url: &SecretString) -> Result<String, UploadError> {
        let cipher = self.cipher()?;
        Ok(cipher.seal(url.expose_secret(), &format!("tiktok:{}:upload_url", acct.open_id)))
    }

    /// The stored upload URL, if it can still be used.
    fn resumable_url(&self, u: &UploadRecord, acct: &AccountRecord) -> Result<Option<SecretString>, UploadError> {
        if Utc::now() - u.created_at > UPLOAD_URL_LIFETIME - chrono::Duration::minutes(1) {
            return Ok(None);
        }
        let Some(sealed) = &u.upload_url else { return Ok(None) };
        let cipher = self.cipher()?;
        Ok(cipher.open(sealed, &format!("tiktok:{}:upload_url", acct.open_id)).ok())
    }

    fn cipher(&self) -> Result<&crate::crypto::TokenCipher, ProviderError> {
        self.accounts.cipher_ref()
    }

    /// Turns errors that a wait resolves into [`UploadError::Wait`].
    fn classify(&self, e: UploadError) -> UploadError {
        let UploadError::Failed(p) = e else { return e };
        let after = |d: Duration| Some(Utc::now() + chrono::Duration::from_std(d).unwrap_or_default());
        match p.code {
            codes::NEEDS_RECONNECT => {
                UploadError::Wait { code: codes::NEEDS_RECONNECT, message: p.message, until: None }
            }
            codes::RATE_LIMIT_EXCEEDED => UploadError::Wait {
                code: codes::RATE_LIMIT_EXCEEDED,
                message: p.message,
                until: after(
                    self.limits.rate_limit_backoff.max(p.retry_after.unwrap_or_default().min(Duration::from_secs(60))),
                ),
            },
            codes::SPAM_RISK_TOO_MANY_PENDING_SHARE => UploadError::Wait {
                code: codes::SPAM_RISK_TOO_MANY_PENDING_SHARE,
                message: p.message,
                until: after(self.limits.pending_share_backoff),
            },
            _ => UploadError::Failed(p),
        }
    }
}

/// The error of a delivery whose uploads kept ending before the video was
/// sent: `uploads` of them in a row expired (or TikTok dropped them).
/// Retryable: with a faster link to TikTok the next try may finish in time.
pub fn upload_url_expired(uploads: u32) -> ProviderError {
    ProviderError::new(
        PROVIDER,
        codes::UPLOAD_URL_EXPIRED,
        format!(
            "the video could not be sent to TikTok within its upload URL's hour: {uploads} uploads in a row \
             expired or were dropped by TikTok before their last byte; check the bandwidth to TikTok \
             (tiktok.timeout_secs), then retry the job"
        ),
        true,
    )
}

/// TikTok's `fail_reason` as our error: `internal` is worth another try, the
/// content and spam checks are not.
pub fn fail_reason(reason: &str) -> ProviderError {
    let (code, retryable, hint): (codes::ErrorCode, bool, &str) = match reason {
        "internal" => (codes::TIKTOK_INTERNAL, true, "TikTok failed to process the upload"),
        "file_format_check_failed" => (codes::FILE_FORMAT_CHECK_FAILED, false, "TikTok refused the file format"),
        "duration_check_failed" => (codes::DURATION_CHECK_FAILED, false, "TikTok refused the video's duration"),
        "frame_rate_check_failed" => (codes::FRAME_RATE_CHECK_FAILED, false, "TikTok refused the frame rate"),
        "picture_size_check_failed" => (codes::PICTURE_SIZE_CHECK_FAILED, false, "TikTok refused the picture size"),
        "publish_cancelled" => (codes::PUBLISH_CANCELLED, false, "the publish was cancelled"),
        "auth_removed" => {
            (codes::AUTH_REMOVED, false, "the creator removed the app's access; connect the account again")
        }
        r if r.starts_with("spam_risk") => (codes::SPAM_RISK, false, "TikTok's spam checks refused the upload"),
        _ => (codes::PUBLISH_FAILED, false, "TikTok could not process the upload"),
    };
    ProviderError::new(PROVIDER, code, format!("{hint} (fail_reason {reason})"), retryable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(initial_ms: u64, max_ms: u64) -> UploadLimits {
        let mut t = crate::settings::Settings::load_with_env(None, Some(Vec::new())).unwrap().tiktok;
        t.restart_backoff_initial_ms = initial_ms;
        t.restart_backoff_max_ms = max_ms;
        UploadLimits::from_settings(&t)
    }

    #[test]
    fn new_uploads_back_off_exponentially_up_to_the_max() {
        let l = limits(30_000, 600_000);
        let waits: Vec<u64> = (1..=7).map(|n| l.restart_delay(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(l.restart_delay(u32::MAX), Duration::from_secs(600), "no overflow, still the max");
        assert_eq!(limits(100, 100).restart_delay(3), Duration::from_millis(100));
        let defaults = limits(30_000, 600_000);
        assert_eq!(defaults.restarts, 3, "config/default.toml's upload_restarts");
    }

    #[test]
    fn upload_url_expired_is_retryable_and_says_what_to_do() {
        let e = upload_url_expired(4);
        assert_eq!((e.code.as_str(), e.retryable), ("upload_url_expired", true));
        assert!(e.message.contains("4 uploads in a row") && e.message.contains("retry the job"), "{}", e.message);
    }

    #[test]
    fn fail_reasons_map_to_retryable_or_not() {
        assert!(fail_reason("internal").retryable);
        for r in ["file_format_check_failed", "auth_removed", "spam_risk_text", "spam_risk", "publish_cancelled"] {
            assert!(!fail_reason(r).retryable, "{r}");
        }
        assert_eq!(fail_reason("spam_risk_too_many_posts").code, "spam_risk");
        assert_eq!(fail_reason("something_new").code, "publish_failed");
    }
}
