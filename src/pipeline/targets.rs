//! Publish targets beyond TikTok: one trait, one implementation per
//! platform. The publish stage hands each target of a job the staged video;
//! each target keeps its own exactly-one record (see the provider modules)
//! and waits out its own limits, and its result lands in `manifest.targets`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{JobId, Platform, TargetResult};
use crate::providers::UploadError;
use crate::providers::tiktok::InboxUploader;
use crate::providers::tiktok::upload::PostTarget;
use crate::providers::youtube::{VideoMeta, YouTube};
use crate::store::objects::ObjectKey;

/// The staged video as a target sees it.
pub struct StagedFile {
    /// A local copy of the bytes (the local store's own file, or a scratch copy).
    pub path: PathBuf,
    pub bytes: u64,
    /// Its key in the object store (for a platform that pulls it by URL).
    pub key: ObjectKey,
}

/// A platform a job's video can be published to.
#[async_trait]
pub trait PublishTarget: Send + Sync {
    fn platform(&self) -> Platform;

    /// Publishes `video` for `job` to `account`, exactly once however often
    /// it is called; `report` takes 0-100.
    async fn deliver(
        &self,
        job: &JobId,
        account: &str,
        video: &StagedFile,
        meta: &VideoMeta,
        report: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<TargetResult, UploadError>;
}

/// The targets this process can publish to.
#[derive(Clone, Default)]
pub struct Targets {
    pub youtube: Option<Arc<YouTube>>,
    pub instagram: Option<Arc<crate::providers::instagram::Instagram>>,
}

impl Targets {
    /// YouTube or Instagram, when configured. TikTok's delivery depends on
    /// the job (inbox or Direct Post): see [`TikTokDelivery`].
    pub fn get(&self, platform: Platform) -> Option<&dyn PublishTarget> {
        match platform {
            Platform::Youtube => self.youtube.as_deref().map(|y| y as &dyn PublishTarget),
            Platform::Instagram => self.instagram.as_deref().map(|i| i as &dyn PublishTarget),
            Platform::Tiktok => None,
        }
    }
}

/// TikTok for one job: this worker's uploader and where the video goes
/// there, an inbox draft or a Direct Post with the choices a person approved
/// (decided by the review gate before this is made).
pub struct TikTokDelivery<'a> {
    pub uploader: &'a InboxUploader,
    pub target: PostTarget,
}

#[async_trait]
impl PublishTarget for TikTokDelivery<'_> {
    fn platform(&self) -> Platform {
        Platform::Tiktok
    }

    async fn deliver(
        &self,
        job: &JobId,
        account: &str,
        video: &StagedFile,
        _meta: &VideoMeta,
        report: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<TargetResult, UploadError> {
        let done = self.uploader.deliver(job, account, &video.path, video.bytes, &self.target, report).await?;
        Ok(TargetResult {
            platform: Platform::Tiktok,
            account: account.to_string(),
            state: match self.target {
                PostTarget::Inbox => "in_inbox".into(),
                PostTarget::Direct(_) => "published".into(),
            },
            remote_id: Some(done.publish_id),
            url: None,
            post_id: done.post_id,
        })
    }
}

#[async_trait]
impl PublishTarget for YouTube {
    fn platform(&self) -> Platform {
        Platform::Youtube
    }

    async fn deliver(
        &self,
        job: &JobId,
        account: &str,
        video: &StagedFile,
        meta: &VideoMeta,
        report: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<TargetResult, UploadError> {
        let done = YouTube::deliver(self, job, account, &video.path, video.bytes, meta, report).await?;
        Ok(TargetResult {
            platform: Platform::Youtube,
            account: account.to_string(),
            state: "published".into(),
            remote_id: Some(done.video_id),
            url: Some(done.url),
            post_id: None,
        })
    }
}
