//! Publish: stage the render under `renders/` for the retention period. A job
//! without a TikTok account ends here, `staged`.

use chrono::Utc;
use tokio::sync::watch;
use tracing::info;

use super::{Pipeline, StageError};
use crate::domain::{JobState, Stage, StagedVideo};
use crate::store::objects::ObjectKey;
use crate::store::records::JobRecord;
use crate::store::records::Transition;

/// Where a job's staged video lives.
pub fn staged_key(job: &crate::domain::JobId) -> String {
    format!("renders/{job}.mp4")
}

impl Pipeline {
    pub(super) async fn publish(&self, job: JobRecord, progress: &watch::Sender<u8>) -> Result<(), StageError> {
        let id = job.id.clone();
        let mut manifest = job.manifest.clone();
        let Some(render) = manifest.render.clone() else {
            return Err(StageError::job("manifest_incomplete", "the job has no render yet; retry it from render"));
        };
        let staged = ObjectKey::parse(&staged_key(&id))?;
        // An earlier delivery may have moved it already; then there is nothing to move.
        let bytes = match self.objects.size(&staged).await? {
            Some(bytes) => bytes,
            None => self.objects.rename(&ObjectKey::parse(&render.key)?, &staged).await?,
        };
        let expires_at = Utc::now() + chrono::Duration::days(i64::from(self.config.retention_days));
        manifest.video = Some(StagedVideo {
            key: staged.to_string(),
            bytes,
            duration_s: render.duration_s,
            width: render.width,
            height: render.height,
            expires_at,
        });
        self.records.save_manifest(&id, &manifest).await?;
        let _ = progress.send(100);
        self.records.set_progress(&id, Stage::Publish, 100).await?;
        self.records
            .transition(&id, Transition::new(&[JobState::Staging], JobState::Staged).stage(Stage::Publish))
            .await?;
        info!(key = %staged, bytes, %expires_at, "video staged");
        Ok(())
    }
}
