//! Publish: stage the render under `renders/` for the retention period, then,
//! when the job names a TikTok account, upload it to that creator's inbox as
//! a draft, or, for a Direct Post a person approved, onto their profile. A
//! job without an account ends `staged`; one with an account ends `in_inbox`
//! or `posted` (or `waiting`, when a TikTok limit must pass first).

use chrono::Utc;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span};

use super::targets::{PublishTarget, StagedFile, TikTokDelivery};
use super::{Pipeline, StageError};
use crate::domain::{
    DirectPost, JobId, JobState, Manifest, OutputFormat, Platform, PostMode, ReviewPoint, Stage, StagedVideo,
    TargetResult, TikTokDraft,
};
use crate::error_code as codes;
use crate::media::scratch::ScratchDir;
use crate::providers::UploadError;
use crate::providers::tiktok::InboxUploader;
use crate::providers::tiktok::upload::PostTarget;
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
        // TikTok first (the job's `account`, unless an earlier try that then
        // waited on another target delivered it), then each other target.
        let tiktok = match (&job.spec.account, &manifest.tiktok) {
            (_, Some(_)) | (None, _) => None,
            (Some(_), None) => {
                let Some((account, uploader)) = self.tiktok_for(&job, progress).await? else { return Ok(()) };
                let target = post_target(&job, &manifest, |post| post.post_info())?;
                Some((account, TikTokDelivery { uploader, target }))
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
        let staged = StagedFile { path: file.clone(), bytes: video.bytes, key: staged.clone() };
        let meta = video_meta(&manifest);
        let mut wanted: Vec<(Platform, String)> =
            tiktok.iter().map(|(account, _)| (Platform::Tiktok, account.clone())).collect();
        wanted.extend(job.spec.targets.iter().map(|t| (t.platform, t.account.clone())));
        for (platform, account) in wanted {
            if manifest.targets.iter().any(|r| r.platform == platform && r.state == "published") {
                continue;
            }
            let target: &dyn PublishTarget = match (&tiktok, platform) {
                (Some((_, delivery)), Platform::Tiktok) => delivery,
                _ => self.targets.get(platform).ok_or_else(|| {
                    StageError::job(
                        codes::TARGET_NOT_CONFIGURED,
                        format!("the job names a {platform} target but this worker has no {platform} settings"),
                    )
                })?,
            };
            let result = target
                .deliver(&id, &account, &staged, &meta, &report)
                .instrument(info_span!("target", platform = %platform))
                .await
                .map_err(|e| match e {
                    // A grant the platform no longer takes: wait for the reconnect, do not fail.
                    UploadError::Failed(p) if p.code == codes::NEEDS_RECONNECT => {
                        UploadError::Wait { code: p.code, message: p.message, until: None }
                    }
                    other => other,
                })?;
            info!(platform = %platform, account = %account, remote_id = ?result.remote_id, "published");
            manifest = self.delivered(&id, manifest, result).await?;
        }
        let done = match (&manifest.tiktok, job.spec.post_mode) {
            (Some(_), PostMode::Inbox) => JobState::InInbox,
            _ => JobState::Posted,
        };
        self.end_publish(&id, done).await?;
        info!(state = %done, "every target has the video");
        Ok(())
    }

    /// Ends a delivered job: `in_inbox` (a TikTok draft waits for the
    /// creator) or `posted`, announced once.
    pub(super) async fn end_publish(&self, id: &JobId, done: JobState) -> Result<(), StageError> {
        self.records.set_progress(id, Stage::Publish, 100).await?;
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

    /// Keeps what a target gave for the job (its ids must not be lost to a
    /// store outage): TikTok's draft or post in `manifest.tiktok`, the other
    /// platforms' in `manifest.targets`.
    pub(super) async fn delivered(
        &self,
        id: &JobId,
        mut manifest: Manifest,
        result: TargetResult,
    ) -> Result<Manifest, StageError> {
        if result.platform == Platform::Tiktok {
            manifest.tiktok = Some(TikTokDraft {
                account: result.account,
                publish_id: result.remote_id.unwrap_or_default(),
                delivered_at: Utc::now(),
                post_id: result.post_id,
            });
        } else {
            manifest.targets.retain(|r| r.platform != result.platform);
            manifest.targets.push(result);
        }
        self.settle("save what the platform gave", || self.records.save_manifest(id, &manifest)).await?;
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
