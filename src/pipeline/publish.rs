//! Publish: stage the render under `renders/` for the retention period, then,
//! when the job names a TikTok account, upload it to that creator's inbox as
//! a draft, or, for a Direct Post a person approved, onto their profile. A
//! job without an account ends `staged`; one with an account ends `in_inbox`
//! or `posted` (or `waiting`, when a TikTok limit must pass first).

use chrono::Utc;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span};

use super::targets::StagedFile;
use super::{Pipeline, StageError};
use crate::domain::{
    DirectPost, JobId, JobState, Manifest, OutputFormat, PostMode, ReviewPoint, Stage, StagedVideo, TikTokDraft,
};
use crate::error_code as codes;
use crate::media::scratch::ScratchDir;
use crate::providers::UploadError;
use crate::providers::tiktok::InboxUploader;
use crate::providers::tiktok::upload::{Delivered, PostTarget};
use crate::providers::youtube::VideoMeta;
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
        if job.spec.account.is_none() && job.spec.targets.is_empty() {
            // No target at all: the job ends staged.
            self.tiktok_for(&job, progress).await?;
            return Ok(());
        }
        let tiktok = match (&job.spec.account, &manifest.tiktok) {
            // Delivered to TikTok by an earlier try that then waited on another target.
            (_, Some(_)) | (None, _) => None,
            (Some(_), None) => {
                let Some((account, uploader)) = self.tiktok_for(&job, progress).await? else { return Ok(()) };
                Some((account, uploader, post_target(&job, &manifest, |post| post.post_info())?))
            }
        };
        self.records
            .transition(&id, Transition::new(&[JobState::Staging], JobState::Uploading).stage(Stage::Publish))
            .await?;
        // The platforms read the file in chunks; a local store has it on disk already.
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
        let others = !job.spec.targets.is_empty();
        if let Some((account, uploader, target)) = tiktok {
            let delivered = uploader.deliver(&id, &account, &file, video.bytes, &target, &report).await?;
            manifest = self.delivered(&id, manifest, &account, delivered, &target, !others).await?;
            info!(account = %account, "TikTok has the video");
        }
        if others {
            let staged = StagedFile { path: file.clone(), bytes: video.bytes, key: staged.clone() };
            self.publish_targets(&job, manifest, &staged, &report).await?;
        }
        Ok(())
    }

    /// Publishes to each of the job's YouTube and Instagram targets not
    /// published yet, then ends the job: `in_inbox` when TikTok got an inbox
    /// draft, else `posted`. A target that must wait (a quota, a limit, a
    /// reconnect) makes the whole job wait; the targets already published
    /// are not sent again when it goes on.
    async fn publish_targets(
        &self,
        job: &JobRecord,
        mut manifest: Manifest,
        video: &StagedFile,
        report: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<(), StageError> {
        let id = &job.id;
        let meta = video_meta(&manifest);
        for wanted in &job.spec.targets {
            let done = manifest.targets.iter().any(|r| r.platform == wanted.platform && r.state == "published");
            if done {
                continue;
            }
            let Some(target) = self.targets.get(wanted.platform) else {
                return Err(StageError::job(
                    codes::TARGET_NOT_CONFIGURED,
                    format!(
                        "the job names a {} target but this worker has no {} settings",
                        wanted.platform, wanted.platform
                    ),
                ));
            };
            let result = target
                .deliver(id, &wanted.account, video, &meta, report)
                .instrument(info_span!("target", platform = %wanted.platform))
                .await
                .map_err(|e| match e {
                    // A grant the platform no longer takes: wait for the reconnect, do not fail.
                    UploadError::Failed(p) if p.code == codes::NEEDS_RECONNECT => {
                        UploadError::Wait { code: p.code, message: p.message, until: None }
                    }
                    other => other,
                })?;
            info!(platform = %wanted.platform, remote_id = ?result.remote_id, "published");
            manifest.targets.retain(|r| r.platform != wanted.platform);
            manifest.targets.push(result);
            self.settle("save the target's result", || self.records.save_manifest(id, &manifest)).await?;
        }
        self.records.set_progress(id, Stage::Publish, 100).await?;
        let done = match (&manifest.tiktok, job.spec.post_mode) {
            (Some(_), PostMode::Inbox) => JobState::InInbox,
            _ => JobState::Posted,
        };
        if self.records.transition(id, Transition::new(&[JobState::Uploading], done).stage(Stage::Publish)).await? {
            self.notify(id, done).await;
        }
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
        finish: bool,
    ) -> Result<Manifest, StageError> {
        manifest.tiktok = Some(TikTokDraft {
            account: account.to_string(),
            publish_id: delivered.publish_id,
            delivered_at: Utc::now(),
            post_id: delivered.post_id,
        });
        self.settle("save the TikTok draft", || self.records.save_manifest(id, &manifest)).await?;
        if !finish {
            // Other targets come next; the last of them ends the job.
            return Ok(manifest);
        }
        self.records.set_progress(id, Stage::Publish, 100).await?;
        let done = match target {
            PostTarget::Inbox => JobState::InInbox,
            PostTarget::Direct(_) => JobState::Posted,
        };
        if self.records.transition(id, Transition::new(&[JobState::Uploading], done).stage(Stage::Publish)).await? {
            self.notify(id, done).await;
        }
        info!(account = %account, state = %done, "TikTok has the video");
        Ok(manifest)
    }
}

/// What the video is published with on YouTube and Instagram: the script's
/// title, its suggested caption and hashtags.
fn video_meta(manifest: &Manifest) -> VideoMeta {
    let script = manifest.script.as_ref();
    let title = script.map(|s| s.title.clone()).unwrap_or_default();
    let hashtags: Vec<String> = script.map(|s| s.hashtags.clone()).unwrap_or_default();
    let mut description = script.and_then(|s| s.caption.clone()).unwrap_or_default();
    let tags_line: Vec<String> = hashtags.iter().map(|h| format!("#{}", h.trim_start_matches('#'))).collect();
    if !tags_line.is_empty() {
        description = format!("{description}\n\n{}", tags_line.join(" ")).trim().to_string();
    }
    VideoMeta { title, description, tags: hashtags.iter().map(|h| h.trim_start_matches('#').to_string()).collect() }
}
