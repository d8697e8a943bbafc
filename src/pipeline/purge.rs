//! Purging a job: the right to erasure. Everything held about one ended job
//! goes — its staged video and hand-off files, the cache objects no other job
//! uses, its scratch folders, its queue tasks and its rows — and nothing that
//! another job still needs.
//!
//! Files go first and rows last: if a purge stops halfway, the job is still
//! there, still names what is left, and purging it again finishes the work.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use super::Pipeline;
use super::publish::staged_key;
use super::render::work_key;
use crate::domain::{JobId, JobState, Manifest};
use crate::media::segments::segment_key;
use crate::store::objects::{ObjectError, ObjectKey};
use crate::store::queue::QueueError;
use crate::store::records::{StoreError, Transition};

/// How long a purge waits for a worker to let go of the job's last task
/// before it answers `job_stopping`.
const HELD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The objects a job's files live under, as its manifest names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobObjects {
    /// The job's alone: its staged video and the render hand-off.
    pub own: BTreeSet<String>,
    /// Provider-cache objects, which other jobs with the same script, voice
    /// or footage share.
    pub cache: BTreeSet<String>,
}

/// What `job`'s files are, from its manifest. Cache objects are listed by
/// the key manifests name; see [`companion`] for the files that go with them.
pub fn job_objects(job: &JobId, manifest: &Manifest) -> JobObjects {
    let mut own: BTreeSet<String> = [staged_key(job), work_key(job)].into();
    own.extend(manifest.render.iter().map(|r| r.key.clone()));
    own.extend(manifest.video.iter().map(|v| v.key.clone()));
    own.extend(manifest.photos.iter().map(|p| p.key.clone()));
    let mut cache: BTreeSet<String> = manifest.cache.iter().cloned().collect();
    cache.extend(manifest.narration.iter().map(|n| n.key.clone()));
    cache.extend(manifest.footage.iter().flatten().map(|p| p.key.clone()));
    // A key in both (it should not happen) is the job's own.
    cache.retain(|k| !own.contains(k));
    JobObjects { own, cache }
}

/// The file stored beside a cache object under the same name, which no
/// manifest names: a narration's timings (`.json` beside its `.wav`). It is in
/// use exactly when its object is, and goes with it.
pub fn companion(key: &str) -> Option<String> {
    key.strip_prefix("cache/narration/")
        .and_then(|k| k.strip_suffix(".wav"))
        .map(|stem| format!("cache/narration/{stem}.json"))
}

/// What a purge removed, as `DELETE /v1/jobs/{id}` answers it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PurgeReport {
    pub job_id: JobId,
    /// Objects deleted: the job's own files and the cache objects only it used.
    pub objects_deleted: u32,
    /// Cache objects kept because another job's manifest names them.
    pub cache_kept: u32,
    /// Stage-queue tasks of the job that were deleted.
    pub queue_tasks_deleted: u64,
    /// Scratch folders of the job found on this machine and removed.
    pub scratch_removed: u32,
}

/// Why a purge did not happen (or stopped; purging again resumes it).
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("no job with id `{0}`")]
    NotFound(JobId),
    #[error("job is {0}; only an ended job (staged, in_inbox, failed, cancelled) can be purged — cancel it first")]
    Active(JobState),
    /// A worker still runs a task of the job (a cancelled stage that has not
    /// noticed yet, or one finishing its last write); its task would outlive
    /// the purge in the queue.
    #[error("a worker still runs a task of this job (it stops within seconds of a cancel): purge again after {after}")]
    Held { after: chrono::DateTime<chrono::Utc> },
    /// Cancelled while a stage ran, too recently to be sure the stage has
    /// stopped writing (it would leave files behind the purge).
    #[error(
        "job was cancelled while its {stage} stage ran; the stage may still be stopping: purge again after {after}"
    )]
    Stopping { stage: JobState, after: chrono::DateTime<chrono::Utc> },
    #[error(transparent)]
    Records(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("scratch folder {path}: {source}")]
    Scratch {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Pipeline {
    /// Erases an ended job; see the module doc for what goes and in what order.
    pub async fn purge(&self, id: &JobId) -> Result<PurgeReport, PurgeError> {
        let job = self.records.job(id).await?.ok_or_else(|| PurgeError::NotFound(id.clone()))?;
        if !job.state.is_terminal() {
            return Err(PurgeError::Active(job.state));
        }
        if job.state == JobState::Cancelled {
            // A stage notices a cancellation within a second or so, but one
            // that went silent is only known dead after the orphan window.
            let events = self.records.events(id).await?;
            let before = events.iter().rev().nth(1).map(|e| e.state);
            let after = job.last_event.at + chrono::Duration::from_std(self.config.orphan_after).unwrap_or_default();
            if let Some(stage) = before
                .filter(|s| !s.is_terminal() && !s.awaits_person() && *s != JobState::Queued && *s != JobState::Waiting)
                && chrono::Utc::now() < after
            {
                return Err(PurgeError::Stopping { stage, after });
            }
        }
        if job.state == JobState::Failed {
            // Retry starts only from `failed`: moving the job out of it first
            // means nobody can restart it while its files are being deleted.
            let closed = Transition::new(&[JobState::Failed], JobState::Cancelled).note("purge started");
            if !self.records.transition(id, closed).await? {
                let now = self.records.job(id).await?.map_or(JobState::Cancelled, |j| j.state);
                return Err(PurgeError::Active(now));
            }
        }
        // A stage that just ended still holds its task for a moment (its
        // acknowledgement follows the job's last state); wait that out, but
        // not a stage that has not noticed its cancellation yet. A failed job
        // is already out of `failed` here, so no retry starts meanwhile.
        let waited = tokio::time::Instant::now();
        while self.queues.running(id).await? > 0 {
            if waited.elapsed() >= HELD_PATIENCE {
                return Err(PurgeError::Held { after: chrono::Utc::now() + chrono::Duration::seconds(2) });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut objects = job_objects(id, &job.manifest);
        // A segmented render's segments and its audio encoded beside them,
        // which no manifest names: the join deletes them, but a job stopped
        // before its join leaves them.
        let parts = self.records.render_parts(id).await?;
        let segments: Vec<_> = parts.iter().filter(|p| p.part >= 0).collect();
        objects.own.extend(segments.iter().map(|p| segment_key(id.as_str(), p.part as u32)));
        if let (Some(narration), false) = (&job.manifest.narration, segments.is_empty()) {
            let frames = segments.iter().map(|p| p.segment.frames).sum();
            objects.own.insert(super::segments::audio_object(&job, narration, frames));
        }
        let cache: Vec<String> = objects.cache.iter().cloned().collect();
        let kept = self.records.keys_used_elsewhere(id, &cache).await?;
        let mut report = PurgeReport {
            job_id: id.clone(),
            objects_deleted: 0,
            cache_kept: kept.len() as u32,
            queue_tasks_deleted: 0,
            scratch_removed: 0,
        };
        let unused = cache.iter().filter(|k| !kept.contains(k));
        let doomed: Vec<String> = objects
            .own
            .iter()
            .cloned()
            .chain(unused.flat_map(|k| std::iter::once(k.clone()).chain(companion(k))))
            .collect();
        for key in &doomed {
            let key = ObjectKey::parse(key)?;
            if self.objects.size(&key).await?.is_some() {
                self.objects.delete(&key).await?;
                report.objects_deleted += 1;
            }
        }
        report.scratch_removed = remove_scratch(&self.config.scratch_root, id).await?;
        report.queue_tasks_deleted = self.queues.forget(id).await?;
        if !self.records.purge_job(id).await? {
            return Err(PurgeError::NotFound(id.clone()));
        }
        info!(
            job_id = %id,
            objects_deleted = report.objects_deleted,
            cache_kept = report.cache_kept,
            queue_tasks_deleted = report.queue_tasks_deleted,
            "job purged"
        );
        Ok(report)
    }
}

/// Removes every scratch folder of `job` under `root` (a ScratchDir is
/// `<job>-<stage>`, or `<job>-render-seg-<k>` for a segment of a segmented
/// render) and says how many there were.
async fn remove_scratch(root: &Path, job: &JobId) -> Result<u32, PurgeError> {
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| PurgeError::Scratch { path, source }
    };
    let mut dir = match tokio::fs::read_dir(root).await {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(failed(root)(e)),
    };
    let prefix = format!("{job}-");
    let mut removed = 0;
    while let Some(entry) = dir.next_entry().await.map_err(failed(root))? {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        match tokio::fs::remove_dir_all(entry.path()).await {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(&entry.path())(e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FootagePick, Narration, RenderOutput};

    fn pick(key: &str) -> FootagePick {
        FootagePick {
            key: key.into(),
            source: "generated:x".into(),
            at_s: 0.0,
            duration_s: 1.0,
            credit: None,
            still: false,
        }
    }

    #[test]
    fn a_job_owns_its_render_and_shares_its_cache_objects() {
        let id = JobId::parse("0193a3c2-0000-7000-8000-000000000001").unwrap();
        let manifest = Manifest {
            narration: Some(Narration {
                key: "cache/narration/abc.wav".into(),
                duration_s: 1.0,
                voice: "en".into(),
                sentences: vec![],
                words: vec![],
            }),
            footage: Some(vec![pick("cache/footage/a.mp4"), pick("cache/footage/a.mp4"), pick("cache/footage/b.mp4")]),
            render: Some(RenderOutput {
                key: work_key(&id),
                bytes: 1,
                duration_s: 1.0,
                width: 1080,
                height: 1920,
                render_seconds: 1.0,
            }),
            cache: vec!["cache/script/s.json".into(), "cache/pexels/search-q.json".into()],
            ..Manifest::default()
        };
        let objects = job_objects(&id, &manifest);
        assert_eq!(
            objects.own.into_iter().collect::<Vec<_>>(),
            vec![format!("renders/{id}.mp4"), format!("work/{id}/video.mp4")]
        );
        assert_eq!(
            objects.cache.into_iter().collect::<Vec<_>>(),
            vec![
                "cache/footage/a.mp4",
                "cache/footage/b.mp4",
                "cache/narration/abc.wav",
                "cache/pexels/search-q.json",
                "cache/script/s.json",
            ]
        );
    }

    #[test]
    fn a_narrations_timings_go_with_its_audio() {
        assert_eq!(companion("cache/narration/abc.wav").as_deref(), Some("cache/narration/abc.json"));
        assert_eq!(companion("cache/footage/abc.wav"), None);
        assert_eq!(companion("cache/narration/abc.json"), None);
    }

    #[tokio::test]
    async fn every_scratch_folder_of_the_job_goes_segments_included_and_no_other_jobs() {
        let root = tempfile::tempdir().unwrap();
        let (id, other) = (JobId::new(), JobId::new());
        for name in [format!("{id}-prepare"), format!("{id}-render-seg-3"), format!("{other}-render")] {
            std::fs::create_dir_all(root.path().join(&name).join("sub")).unwrap();
            std::fs::write(root.path().join(&name).join("sub/clip.mp4"), b"x").unwrap();
        }
        assert_eq!(remove_scratch(root.path(), &id).await.unwrap(), 2);
        let left: Vec<String> =
            std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(left, [format!("{other}-render")]);
        assert_eq!(remove_scratch(&root.path().join("missing"), &id).await.unwrap(), 0, "no scratch root yet");
    }

    #[test]
    fn a_job_that_never_ran_still_names_where_its_files_would_be() {
        let id = JobId::new();
        let objects = job_objects(&id, &Manifest::default());
        assert_eq!(objects.own.len(), 2);
        assert!(objects.cache.is_empty());
    }
}
