//! Publish: stage the render under `renders/` for the retention period, then,
//! when the job names a TikTok account, upload it to that creator's inbox as
//! a draft, or, for a Direct Post a person approved, onto their profile. A
//! job without an account ends `staged`; one with an account ends `in_inbox`
//! or `posted` (or `waiting`, when a TikTok limit must pass first).

use chrono::Utc;
use tokio::sync::watch;
use tracing::info;

use super::{Pipeline, StageError};
use crate::domain::{
    DirectPost, JobId, JobState, Manifest, OutputFormat, PostMode, ReviewPoint, Stage, StagedVideo, TikTokDraft,
};
use crate::error_code as codes;
use crate::media::scratch::ScratchDir;
use crate::providers::tiktok::InboxUploader;
use crate::providers::tiktok::upload::{Delivered, PostTarget};
use crate::store::objects::ObjectKey;
use crate::store::records::JobRecord;
use crate::store::records::Transition;

/// Where a job's staged video lives.
pub fn staged_key(job: &crate::domain::JobId) -> String {
    format!("renders/{job}.mp4")
}

/// Where the job goes at TikTok. Never posted without a person's approval
/// of what they saw with their choices: a Direct Post's `post_info` (made by
/// `post_info` from those choices) only from an approved video review.
pub(super) fn post_target(
    job: &JobRecord,
    manifest: &Manifest,
    post_info: impl Fn(&DirectPost) -> serde_json::Value,
) -> Result<PostTarget, StageError> {
    match (job.spec.post_mode, &manifest.direct_post) {
        (PostMode::Inbox, _) => Ok(PostTarget::Inbox),
        (PostMode::Direct, Some(post)) if manifest.approved(ReviewPoint::Video) => {
            Ok(PostTarget::Direct(post_info(post)))
        }
        (PostMode::Direct, _) => Err(StageError::job(
            codes::DIRECT_POST_NOT_APPROVED,
            "this Direct Post has no approval with the poster's choices; it is never posted without one \
             (approve it in the studio's composer)",
        )),
    }
}

impl Pipeline {
    pub(super) async fn publish(&self, job: JobRecord, progress: &watch::Sender<u8>) -> Result<(), StageError> {
        if job.spec.format == OutputFormat::Photos {
            return self.publish_photos(job, progress).await;
        }
        let id = job.id.clone();
        let mut manifest = job.manifest.clone();
        let staged = ObjectKey::parse(&staged_key(&id))?;
        let video = match (&manifest.video, self.objects.size(&staged).await?) {
            // Staged by an earlier delivery that went on to the upload.
            (Some(video), Some(_)) => video.clone(),
            _ => {
                let Some(render) = manifest.render.clone() else {
                    return Err(StageError::job(
                        codes::MANIFEST_INCOMPLETE,
                        "the job has no render yet; retry it from render",
                    ));
                };
                // An earlier delivery may have moved it already; then there is nothing to move.
                let bytes = match self.objects.size(&staged).await? {
                    Some(bytes) => bytes,
                    None => self.objects.rename(&ObjectKey::parse(&render.key)?, &staged).await?,
                };
                let expires_at = Utc::now() + chrono::Duration::days(i64::from(self.config.retention_days));
                let video = StagedVideo {
                    key: staged.to_string(),
                    bytes,
                    duration_s: render.duration_s,
                    width: render.width,
                    height: render.height,
                    expires_at,
                };
                manifest.video = Some(video.clone());
                self.settle("save the staged video", || self.records.save_manifest(&id, &manifest)).await?;
                info!(key = %staged, bytes, %expires_at, "video staged");
                video
            }
        };
        let Some((account, uploader)) = self.tiktok_for(&job, progress).await? else { return Ok(()) };
        let target = post_target(&job, &manifest, |post| post.post_info())?;
        self.records
            .transition(&id, Transition::new(&[JobState::Staging], JobState::Uploading).stage(Stage::Publish))
            .await?;
        // TikTok reads the file in chunks; a local store has it on disk already.
        let scratch;
        let file = match self.objects.local_path(&staged) {
            Some(path) => path,
            None => {
                scratch = ScratchDir::fresh(&self.config.scratch_root, &id, Stage::Publish)
                    .await
                    .map_err(StageError::Scratch)?;
                let path = scratch.join("video.mp4");
                self.objects.fetch_to(&staged, &path).await?;
                path
            }
        };
        let report = |pct: u8| {
            let _ = progress.send(pct);
        };
        let delivered = uploader.deliver(&id, &account, &file, video.bytes, &target, &report).await?;
        let done = self.delivered(&id, manifest, &account, delivered, &target).await?;
        info!(account = %account, state = %done, "TikTok has the video");
        Ok(())
    }

    /// The job's account and this worker's TikTok uploader. A job without an
    /// account is done here: it ends `staged` and the answer is None.
    pub(super) async fn tiktok_for(
        &self,
        job: &JobRecord,
        progress: &watch::Sender<u8>,
    ) -> Result<Option<(String, &InboxUploader)>, StageError> {
        let id = &job.id;
        let Some(account) = job.spec.account.clone() else {
            let _ = progress.send(100);
            self.records.set_progress(id, Stage::Publish, 100).await?;
            let staged = Transition::new(&[JobState::Staging], JobState::Staged).stage(Stage::Publish);
            if self.records.transition(id, staged).await? {
                self.notify(id, JobState::Staged).await;
            }
            return Ok(None);
        };
        let Some(uploader) = &self.tiktok else {
            return Err(StageError::job(
                codes::PUBLISH_NOT_CONFIGURED,
                "the job names a TikTok account but this worker has no TikTok settings (tiktok.client_key)",
            ));
        };
        Ok(Some((account, uploader)))
    }

    /// Keeps what TikTok gave for the job's draft or post (its ids must not
    /// be lost to a store outage) and ends the job: `in_inbox`, or `posted`
    /// for a Direct Post.
    pub(super) async fn delivered(
        &self,
        id: &JobId,
        mut manifest: Manifest,
        account: &str,
        delivered: Delivered,
        target: &PostTarget,
    ) -> Result<JobState, StageError> {
        manifest.tiktok = Some(TikTokDraft {
            account: account.to_string(),
            publish_id: delivered.publish_id,
            delivered_at: Utc::now(),
            post_id: delivered.post_id,
        });
        self.settle("save the TikTok draft", || self.records.save_manifest(id, &manifest)).await?;
        self.records.set_progress(id, Stage::Publish, 100).await?;
        let done = match target {
            PostTarget::Inbox => JobState::InInbox,
            PostTarget::Direct(_) => JobState::Posted,
        };
        if self.records.transition(id, Transition::new(&[JobState::Uploading], done).stage(Stage::Publish)).await? {
            self.notify(id, done).await;
        }
        Ok(done)
    }
}
