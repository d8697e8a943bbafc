//! TikTok's limits, waited out rather than failed: per-account slots in the
//! shared rate limiter ([`crate::store::limits`]) and the draft cap.

use super::*;

/// Waits up to this long in place for a per-minute slot; longer ones park the job.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(65);

/// TikTok's limits and our polling, from settings.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    pub init_per_minute: u32,
    pub status_per_minute: u32,
    pub max_pending: u32,
    pub pending_window: Duration,
    /// Direct Posts per account per 24 h (0: not counted here).
    pub direct_per_day: u32,
    pub rate_limit_backoff: Duration,
    pub pending_share_backoff: Duration,
    /// New uploads one delivery may start after the last could not complete.
    pub restarts: u32,
    pub restart_initial: Duration,
    pub restart_max: Duration,
    pub poll_initial: Duration,
    pub poll_max: Duration,
    pub status_timeout: Duration,
    pub creator_info_per_minute: u32,
    /// How long a creator_info answer kept on the account is reused.
    pub creator_info_ttl: Duration,
}

impl UploadLimits {
    pub fn from_settings(t: &TikTokSettings) -> Self {
        Self {
            init_per_minute: t.init_per_minute,
            status_per_minute: t.status_per_minute,
            max_pending: t.max_pending_drafts,
            pending_window: t.pending_window(),
            direct_per_day: t.direct_posts_per_day,
            rate_limit_backoff: t.rate_limit_backoff(),
            pending_share_backoff: t.pending_share_backoff(),
            restarts: t.upload_restarts,
            restart_initial: t.restart_backoff_initial(),
            restart_max: t.restart_backoff_max(),
            poll_initial: t.status_poll_initial(),
            poll_max: t.status_poll_max(),
            status_timeout: t.status_timeout(),
            creator_info_per_minute: t.creator_info_per_minute,
            creator_info_ttl: t.creator_info_ttl(),
        }
    }

    /// The wait before a delivery's `n`-th new upload (1-based): the initial
    /// wait, doubled for each one before it, never more than the max.
    pub fn restart_delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.restart_initial.saturating_mul(factor).min(self.restart_max)
    }
}

/// The record-store key of an account's draft slots.
pub(super) fn drafts_key(account_id: &str) -> String {
    format!("tiktok:drafts:{account_id}")
}

/// The record-store key of an account's Direct Post slots.
pub(super) fn direct_key(account_id: &str) -> String {
    format!("tiktok:direct:{account_id}")
}

impl InboxUploader {
    /// The account's drafts that count against TikTok's pending-draft cap now,
    /// and the cap (`tiktok.max_pending_drafts` per `pending_window_hours`).
    pub async fn pending_drafts(&self, account_id: &str) -> Result<(u32, u32), crate::store::records::StoreError> {
        let key = drafts_key(account_id);
        let n = self.slots.hits_counting(&key, self.limits.pending_window, Utc::now()).await?;
        Ok((n, self.limits.max_pending))
    }

    /// Takes a per-minute slot, waiting in place for it.
    pub(super) async fn slot(&self, key: &str, per_minute: u32) -> Result<(), UploadError> {
        loop {
            let Some(until) =
                self.slots.acquire_slot(key, None, per_minute, Duration::from_secs(60)).await.map_err(store_error)?
            else {
                return Ok(());
            };
            let wait = (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(20);
            if wait > MAX_INLINE_WAIT {
                return Err(UploadError::Wait {
                    code: codes::RATE_LIMIT,
                    message: format!("TikTok's per-minute limit ({key}) is used up"),
                    until: Some(until),
                });
            }
            info!(wait_ms = wait.as_millis() as u64, "waiting for TikTok's per-minute limit");
            tokio::time::sleep(wait).await;
        }
    }

    /// Marks an upload TikTok did not keep (expired, dropped or failed) as
    /// failed and gives its draft slot back: it is no pending share.
    pub(super) async fn abandon(&self, upload: &UploadRecord) -> Result<(), UploadError> {
        self.set_status(upload, UploadStatus::Failed).await?;
        for key in [drafts_key(&upload.account_id), direct_key(&upload.account_id)] {
            self.slots.release_slot(&key, upload.job_id.as_str()).await.map_err(store_error)?;
        }
        Ok(())
    }

    /// Lets the job's draft slot count only for an upload URL's hour from now.
    pub(super) async fn hold_for_url_lifetime(&self, pending_key: &str, job: &JobId) -> Result<(), UploadError> {
        let until = Utc::now() + UPLOAD_URL_LIFETIME;
        self.slots.hold_slot_until(pending_key, job.as_str(), until).await.map_err(store_error)?;
        Ok(())
    }

    /// Counts a new upload of this delivery and waits before it; fails once
    /// more than `upload_restarts` were needed.
    pub(super) async fn before_restart(&self, restarts: &mut u32) -> Result<(), UploadError> {
        *restarts += 1;
        if *restarts > self.limits.restarts {
            return Err(upload_url_expired(*restarts).into());
        }
        let wait = self.limits.restart_delay(*restarts);
        info!(restart = *restarts, wait_ms = wait.as_millis() as u64, "waiting before a new upload");
        tokio::time::sleep(wait).await;
        Ok(())
    }
}
