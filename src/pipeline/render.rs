//! Render: one ffmpeg pass (or, for a long video, segments rendered by any
//! workers and joined: [`super::segments`]) from the manifest's narration
//! and footage to a checked MP4, handed to the publish stage through the object store — or,
//! when the job asks for a video review, left for a reviewer (`in_review`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::watch;
use tracing::{info, warn};

use super::{Pipeline, StageError};
use crate::domain::Preset;
use crate::domain::{FootagePick, JobId, JobState, Manifest, OutputFormat, RenderOutput, ReviewPoint, Stage};
use crate::error_code as codes;
use crate::media::captions::{CaptionDefaults, CaptionStyle, SafeArea, ass_document};
use crate::media::ffmpeg::{ClipSegment, HEIGHT, MusicBed, RenderPlan, WIDTH};
use crate::media::motion::TRANSITION_OVERLAP_S;
use crate::media::scratch::ScratchDir;
use crate::media::segments::worth_segmenting;
use crate::store::objects::ObjectKey;
use crate::store::records::{JobRecord, Transition};

/// The `classic` caption look with `font` and `size`, inside the default
/// safe area of the 1080x1920 frame (benchmarks and tests).
pub fn caption_style(font: &str, size: u32) -> CaptionStyle {
    CaptionStyle::from_look(&Preset::Classic.look(), font, size, SafeArea::TIKTOK, WIDTH, HEIGHT)
}

/// The caption style a job renders with: its own choice, resolved against the team's settings.
pub fn job_caption_style(choice: Option<&crate::domain::CaptionChoice>, defaults: &CaptionDefaults) -> CaptionStyle {
    CaptionStyle::resolve(choice, defaults, WIDTH, HEIGHT)
}

/// Where the render stage leaves its output for the publish stage.
pub fn work_key(job: &crate::domain::JobId) -> String {
    format!("work/{job}/video.mp4")
}

/// What a checked render (a single pass, or the join of a segmented one)
/// stored at `key` is, for the manifest. The render's checks made sure it
/// has a video stream.
pub(super) fn render_output(
    key: &ObjectKey,
    bytes: u64,
    report: &crate::media::ffprobe::MediaReport,
    render_seconds: f64,
) -> RenderOutput {
    let video = report.video.as_ref().expect("a checked render has a video stream");
    RenderOutput {
        key: key.to_string(),
        bytes,
        duration_s: report.duration_s,
        width: video.width,
        height: video.height,
        render_seconds,
    }
}

impl Pipeline {
    /// Fetches the narration into `scratch`, named by its key's extension: a
    /// team's voice-over may be MP3 or M4A. The single pass and the join of a
    /// segmented render mix it from here.
    pub(super) async fn fetch_narration(
        &self,
        scratch: &ScratchDir,
        narration: &crate::domain::Narration,
    ) -> Result<PathBuf, StageError> {
        let ext = narration.key.rsplit_once('.').map_or("wav", |(_, ext)| ext);
        let file = scratch.join(&format!("narration.{ext}"));
        self.objects.fetch_to(&ObjectKey::parse(&narration.key)?, &file).await?;
        Ok(file)
    }

    /// Fetches `picks` into `scratch` (each distinct object once) as the
    /// render's clips, each video probed for its frame rate: a hint for the
    /// filter order ([`crate::media::ffmpeg::fill_chain`]). A clip that cannot
    /// be probed is still rendered, and fails there if it is broken. The single
    /// pass and each segment of a segmented render read their clips this way,
    /// so both draw the same picture.
    pub(super) async fn fetch_clips(
        &self,
        scratch: &ScratchDir,
        picks: &[FootagePick],
    ) -> Result<Vec<ClipSegment>, StageError> {
        let mut local: HashMap<String, (PathBuf, Option<f64>)> = HashMap::new();
        let mut clips = Vec::with_capacity(picks.len());
        for pick in picks {
            let (path, source_fps) = match local.get(&pick.key) {
                Some(known) => known.clone(),
                None => {
                    let ext = pick.key.rsplit('.').next().unwrap_or("mp4");
                    let p = scratch.join(&format!("clip-{}.{ext}", local.len()));
                    self.objects.fetch_to(&ObjectKey::parse(&pick.key)?, &p).await?;
                    let fps = match pick.still {
                        true => None,
                        false => crate::media::ffprobe::probe(&self.tools.ffprobe, &p)
                            .await
                            .ok()
                            .and_then(|r| r.video)
                            .map(|v| v.fps)
                            .filter(|f| f.is_finite() && *f > 0.0),
                    };
                    local.insert(pick.key.clone(), (p.clone(), fps));
                    (p, fps)
                }
            };
            clips.push(ClipSegment { path, duration_s: pick.duration_s, still: pick.still, source_fps });
        }
        Ok(clips)
    }

    /// The first cache object the render needs that is not there. Manifests
    /// name cache objects other jobs share; one can be gone (purged with a job
    /// whose purge did not see this job's manifest yet, or cleared by hand).
    async fn missing_input(&self, narration: &str, footage: &[FootagePick]) -> Result<Option<String>, StageError> {
        for key in std::iter::once(narration).chain(footage.iter().map(|p| p.key.as_str())) {
            if self.objects.size(&ObjectKey::parse(key)?).await?.is_none() {
                return Ok(Some(key.to_string()));
            }
        }
        Ok(None)
    }

    /// Sends the job back to prepare, which makes its narration and footage
    /// again (the script is kept), instead of failing it for a lost cache object.
    async fn prepare_again(&self, id: &JobId, mut manifest: Manifest, gone: &str) -> Result<(), StageError> {
        warn!(key = gone, "a cached input is gone; preparing the job again");
        manifest.narration = None;
        manifest.footage = None;
        self.records.save_manifest(id, &manifest).await?;
        let back = Transition::new(&[JobState::Rendering], JobState::Queued)
            .stage(Stage::Prepare)
            .note(format!("cached input `{gone}` was gone; preparing again"));
        if self.records.transition(id, back).await? {
            self.queues.enqueue(Stage::Prepare, id).await?;
        }
        Ok(())
    }

    pub(super) async fn render(&self, job: JobRecord, progress: &watch::Sender<u8>) -> Result<(), StageError> {
        let id = job.id.clone();
        let mut manifest = job.manifest.clone();
        let (Some(narration), Some(footage)) = (manifest.narration.clone(), manifest.footage.clone()) else {
            return Err(StageError::job(
                codes::MANIFEST_INCOMPLETE,
                "the job has no narration or footage yet; retry it from prepare",
            ));
        };
        let music = self.music_bed(&job).await?;

        // Planned within the limit by prepare; a manifest from before the limit
        // (or from a looser setting) must not get an unbounded ffmpeg.
        self.within_segment_limit(footage.len(), "the job's footage")?;
        if let Some(gone) = self.missing_input(&narration.key, &footage).await? {
            return self.prepare_again(&id, manifest, &gone).await;
        }
        if job.spec.format == OutputFormat::Photos {
            return self.render_photos(job, manifest, narration, footage, progress).await;
        }
        // Resolved with or without captions: the style also picks the transition.
        let style = job_caption_style(job.spec.caption_style.as_ref(), &self.config.captions);
        if worth_segmenting(narration.duration_s, footage.len(), style.transition, self.config.segment_min_seconds) {
            return self.plan_segments(&job, &narration, &footage, &style).await;
        }

        let scratch =
            ScratchDir::fresh(&self.config.scratch_root, &id, Stage::Render).await.map_err(StageError::Scratch)?;
        let narration_file = self.fetch_narration(&scratch, &narration).await?;
        let clips = self.fetch_clips(&scratch, &footage).await?;
        let captions = if job.spec.captions {
            let path = scratch.join("captions.ass");
            let doc = ass_document(&narration.words, &style);
            tokio::fs::write(&path, doc).await.map_err(StageError::Scratch)?;
            Some(path)
        } else {
            None
        };
        let plan = RenderPlan {
            clips,
            transition: style.transition,
            overlap_s: TRANSITION_OVERLAP_S,
            narration: narration_file,
            duration_s: narration.duration_s,
            captions,
            fonts_dir: self.config.fonts_dir.clone(),
            music,
            encoder: self.config.encoder.clone(),
            threads: self.tools.budget.ffmpeg_threads,
            split_min_seconds: self.config.split_min_seconds,
            filter_script: scratch.join("filtergraph.txt"),
            output: scratch.join("video.mp4"),
        };

        let started = Instant::now();
        let report = crate::media::render(&self.tools, &plan, self.config.render_timeout, &mut |pct| {
            let _ = progress.send(pct);
        })
        .await?;
        let render_seconds = started.elapsed().as_secs_f64();
        let key = ObjectKey::parse(&work_key(&id))?;
        let bytes = self.objects.put_file(&key, &plan.output).await?;
        info!(render_seconds, bytes, duration_s = report.duration_s, "rendered");
        manifest.costs.render_seconds += render_seconds;
        manifest.render = Some(render_output(&key, bytes, &report, render_seconds));
        drop(scratch);
        self.rendered(&job, &manifest).await
    }

    /// The music bed the job asks for, from the music folder.
    pub(super) async fn music_bed(&self, job: &JobRecord) -> Result<Option<MusicBed>, StageError> {
        let Some(m) = &job.spec.music else { return Ok(None) };
        let dir = self.config.music_dir.as_ref().ok_or_else(|| {
            StageError::job(
                codes::MUSIC_UNAVAILABLE,
                "the job asks for music but no music folder is configured (media.music_dir)",
            )
        })?;
        let path = dir.join(&m.track);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(StageError::job(
                codes::MUSIC_NOT_FOUND,
                format!("music track `{}` is not in the music folder", m.track),
            ));
        }
        Ok(Some(MusicBed { path, volume: m.volume }))
    }

    /// The end of a render (a video or a photo post's stills): keeps what it
    /// made, then stops for the video review if asked, or queues publish.
    pub(super) async fn rendered(&self, job: &JobRecord, manifest: &Manifest) -> Result<(), StageError> {
        let id = &job.id;
        // The render is done: from here on a store outage is waited out.
        self.settle("save the render", || self.records.save_manifest(id, manifest)).await?;
        self.settle("record progress", || self.records.set_progress(id, Stage::Render, 100)).await?;
        if self.stops_for_review(job, manifest, ReviewPoint::Video).await? {
            return Ok(());
        }
        self.settle("queue the publish stage", || self.queues.enqueue(Stage::Publish, id)).await?;
        Ok(())
    }
}
