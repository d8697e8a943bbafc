//! A photo post (`content/init`, `PULL_FROM_URL`): TikTok downloads the
//! stills itself from URLs under a prefix the operator verified, so there is
//! no upload to send or resume. Exactly one still holds: the `publish_id` is
//! recorded as soon as TikTok gives it, and a redelivery asks TikTok about
//! that publish before starting another. Limits are the video's: the init
//! slot (6 a minute), the draft cap for an inbox photo post and the daily
//! post cap for a Direct one.

use super::*;

impl InboxUploader {
    /// Posts the stills at `urls` (in order; the first is the cover) for
    /// `job` to `account` at `target`. For a Direct Post, `target`'s
    /// `post_info` holds the approved choices.
    pub async fn deliver_photos(
        &self,
        job: &JobId,
        account: &str,
        urls: &[String],
        post_info: &serde_json::Value,
        target: &PostTarget,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<Delivered, UploadError> {
        let acct = self.accounts.load(account).await?;
        self.photos_to(job, &acct, urls, post_info, target, progress).await.map_err(|e| self.classify(e))
    }

    async fn photos_to(
        &self,
        job: &JobId,
        acct: &AccountRecord,
        urls: &[String],
        post_info: &serde_json::Value,
        target: &PostTarget,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<Delivered, UploadError> {
        let existing = self.uploads.upload(job).await.map_err(store_error)?;
        if let Some(u) = existing.filter(|u| u.status != UploadStatus::Failed) {
            info!(publish_id = %u.publish_id, "a photo post of this job exists; asking TikTok about it");
            match self.status(acct, &u.publish_id).await {
                Ok(done) if target.done(&done) => {
                    self.set_status(&u, target.finished()).await?;
                    progress(100);
                    return Ok(Delivered::of(&u, &done));
                }
                Ok(PublishStatus::Failed { reason }) => {
                    self.abandon(&u).await?;
                    return Err(fail_reason(&reason).into());
                }
                Ok(_) => return self.await_done(acct, u, target, progress).await,
                // TikTok dropped it: it will never be posted, so a new one is safe.
                Err(UploadError::Failed(e)) if e.code == codes::INVALID_PUBLISH_ID => self.abandon(&u).await?,
                Err(e) => return Err(e),
            }
        }
        let api = &self.accounts.api;
        let direct = matches!(target, PostTarget::Direct(_));
        let (upload, _) = self
            .start_with(job, acct, None, target, |token| async move {
                api.init_photos(&token, urls, post_info, direct).await
            })
            .await?;
        progress(50);
        self.await_done(acct, upload, target, progress).await
    }
}
