//! Segmented render across workers (issue 17, part 3): a long video's render
//! split at clip boundaries into segments that any render worker may take.
//!
//! The render stage's own task is the coordinator: for a video of at least
//! `media.segment_min_seconds` joined by cuts, it plans the segments
//! ([`crate::media::segments`]), records the plan ([`RenderParts`]) and
//! queues one render task per segment not yet done; the job stays
//! `rendering`. Each segment is rendered by whichever worker takes its task,
//! to the object store (`work/<job>/seg-<k>.mp4`), so a worker on any
//! machine can join them. Whoever records the last segment done queues the
//! join, once (a conditional update). Meanwhile the coordinator's worker
//! mixes and encodes the narration (and music) once, to the object store, so
//! the join concatenates the segments and that audio without re-encoding
//! either (it mixes the audio itself if there is none), checks the MP4 like a
//! single pass and ends the render like one ([`Pipeline::rendered`]).
//!
//! A part is claimed in the records, not by the queue: a redelivered task of
//! a part done is dropped, one held by a live worker waits, one held by a
//! worker silent for the orphan window is taken over. A segment's failure is
//! retried (and counted) for that segment alone. The reconciler needs nothing
//! of its own: a job left `rendering` with no part task anywhere and nobody
//! touching it goes back to the coordinator, which keeps the finished segments
//! and queues what is missing (the join too, if that was lost).

use std::time::Instant;

use chrono::Utc;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Pipeline, StageError, content_address, work_key};
use crate::domain::{FootagePick, JobError, JobId, JobState, Narration, Stage};
use crate::error_code as codes;
use crate::media::captions::{CaptionStyle, ass_document};
use crate::media::ffmpeg::FPS;
use crate::media::scratch::ScratchDir;
use crate::media::segments::{
    AudioMix, JoinAudio, JoinPlan, SegmentPlan, audio_key, clip_frame_bounds, concat_list, plan_segments as split,
    segment_file, segment_key,
};
use crate::store::objects::ObjectKey;
use crate::store::queue::RenderPart;
use crate::store::records::{JOIN_PART, JobRecord, PartClaim, PartState, PlannedSegment, StoreError};

/// The record-store number of `part`.
pub(super) fn part_index(part: RenderPart) -> i32 {
    match part {
        RenderPart::Segment(k) => k as i32,
        RenderPart::Join => JOIN_PART,
    }
}

/// Where clip `i` of `footage` starts, in frames, and the video's frame count.
fn frame_bounds(narration: &Narration, footage: &[FootagePick]) -> Vec<u64> {
    let shown: Vec<f64> = footage.iter().map(|p| p.duration_s).collect();
    clip_frame_bounds(&shown, narration.duration_s)
}

/// The object key of the job's audio encoded beside its segments, for a
/// video of `frames`: named by what it is made of (narration, music,
/// length), so a join never copies the audio of other inputs. A purge
/// finds it the same way.
pub(super) fn audio_object(job: &JobRecord, narration: &Narration, frames: u64) -> String {
    let music = job.spec.music.as_ref().map_or(String::new(), |m| format!("{}|{:.3}", m.track, m.volume));
    let digest = content_address(&[
        "audio-v1",
        &narration.key,
        &format!("{:.6}", narration.duration_s),
        &frames.to_string(),
        &music,
    ]);
    audio_key(job.id.as_str(), &digest)
}

/// The job's narration and footage, which every part needs.
fn inputs(job: &JobRecord) -> Result<(Narration, Vec<FootagePick>), StageError> {
    match (&job.manifest.narration, &job.manifest.footage) {
        (Some(n), Some(f)) => Ok((n.clone(), f.clone())),
        _ => Err(StageError::job(
            codes::MANIFEST_INCOMPLETE,
            "the job has no narration or footage yet; retry it from prepare",
        )),
    }
}

impl Pipeline {
    /// The coordinator: plans the job's segments (keeping a plan made from
    /// the same inputs, with its finished segments), and queues every
    /// segment not done, or the join when all are.
    pub(super) async fn plan_segments(
        &self,
        job: &JobRecord,
        narration: &Narration,
        footage: &[FootagePick],
        style: &CaptionStyle,
    ) -> Result<(), StageError> {
        let id = &job.id;
        let bounds = frame_bounds(narration, footage);
        let spans = split(&bounds, u64::from(self.config.segment_seconds) * u64::from(FPS));
        let captions = if job.spec.captions { ass_document(&narration.words, style) } else { String::new() };
        // What the segments are made from: other inputs, another plan.
        let mut parts: Vec<String> = vec![
            "segments-v1".into(),
            narration.key.clone(),
            format!("{:.6}", narration.duration_s),
            captions,
            self.config.encoder.preset.clone(),
            self.config.encoder.crf.to_string(),
            self.config.segment_seconds.to_string(),
        ];
        for p in footage {
            parts.push(format!("{}|{:.6}|{}", p.key, p.duration_s, p.still));
        }
        let plan = content_address(&parts.iter().map(String::as_str).collect::<Vec<_>>());
        let planned: Vec<PlannedSegment> = spans
            .iter()
            .map(|s| PlannedSegment {
                first_clip: s.first_clip as u32,
                clips: s.clips as u32,
                start_frame: s.start_frame,
                frames: s.frames,
            })
            .collect();
        let recorded = self.records.plan_render_parts(id, &plan, &planned).await?;
        let mut queued = 0;
        for part in recorded.iter().filter(|p| p.part >= 0) {
            if part.state == PartState::Done {
                // Kept from an earlier render of the same inputs, if its video still is.
                let key = ObjectKey::parse(&segment_key(id.as_str(), part.part as u32))?;
                if self.objects.size(&key).await?.is_some() {
                    continue;
                }
                self.records.redo_render_part(id, part.part).await?;
            }
            self.queues.enqueue_part(id, RenderPart::Segment(part.part as u32)).await?;
            queued += 1;
        }
        if self.records.queue_join_if_complete(id).await? {
            self.queues.enqueue_part(id, RenderPart::Join).await?;
        }
        let frames = bounds.last().copied().unwrap_or(0);
        info!(segments = planned.len(), queued, frames, "rendering in segments");
        if queued > 0 {
            self.encode_audio_ahead(job, narration, frames).await;
        }
        Ok(())
    }

    /// Mixes and encodes the job's audio while other workers render the
    /// segments just queued, so that the join only copies. Encoding is
    /// nearly all of a join's time, and the join runs alone after the last
    /// segment. Best effort: if this fails, or its worker dies, the join
    /// mixes the audio itself.
    async fn encode_audio_ahead(&self, job: &JobRecord, narration: &Narration, frames: u64) {
        let video_s = frames as f64 / f64::from(FPS);
        let started = Instant::now();
        let result: Result<Option<u64>, StageError> = async {
            let key = ObjectKey::parse(&audio_object(job, narration, frames))?;
            if self.objects.size(&key).await?.is_some() {
                return Ok(None);
            }
            let music = self.music_bed(job).await?;
            let scratch = ScratchDir::fresh_named(&self.config.scratch_root, &job.id, "render-audio")
                .await
                .map_err(StageError::Scratch)?;
            let mix = AudioMix {
                narration: self.fetch_narration(&scratch, narration).await?,
                duration_s: narration.duration_s,
                music,
            };
            let output = scratch.join("audio.m4a");
            let script = scratch.join("audiograph.txt");
            crate::media::encode_audio(&self.tools, &mix, video_s, &script, &output, self.config.render_timeout)
                .await?;
            Ok(Some(self.objects.put_file(&key, &output).await?))
        }
        .await;
        match result {
            Ok(Some(bytes)) => {
                info!(bytes, encode_seconds = started.elapsed().as_secs_f64(), "audio encoded for the join")
            }
            Ok(None) => info!("audio already encoded for the join"),
            Err(e) => warn!(error = %e, "the audio could not be encoded ahead; the join will mix it"),
        }
    }

    /// Handles one delivery of a part of a segmented render: claims it in
    /// the records (waiting while a live worker holds it), then renders it
    /// with the stage's retries. Errors only when the record store cannot be
    /// reached before the part was claimed.
    pub(super) async fn handle_part(&self, id: JobId, part: RenderPart, worker: &str) -> Result<(), StoreError> {
        let index = part_index(part);
        let mut announced = false;
        let taken = loop {
            let Some(job) = self.records.job(&id).await? else {
                warn!("job no longer exists; dropping the part");
                return Ok(());
            };
            if job.state != JobState::Rendering {
                info!(state = %job.state, ?part, "job is not rendering; dropping the part");
                return Ok(());
            }
            match self.records.claim_render_part(&id, index, worker, Utc::now(), self.config.orphan_after).await? {
                PartClaim::Taken(row) => break row,
                PartClaim::Busy => {
                    if !announced {
                        info!(?part, "another worker is on this part; waiting to see whether it finishes");
                        announced = true;
                    }
                    tokio::time::sleep(self.config.watch_every).await;
                }
                PartClaim::Done | PartClaim::Gone => {
                    info!(?part, "part done or no longer planned; dropping the delivery");
                    return Ok(());
                }
            }
        };
        if taken.attempts > self.config.max_deliveries {
            let what = match part {
                RenderPart::Segment(k) => format!("segment {k} of the render"),
                RenderPart::Join => "the join of the render's segments".to_string(),
            };
            let err = JobError {
                stage: Stage::Render,
                code: codes::TOO_MANY_DELIVERIES.as_str().into(),
                message: format!(
                    "{what} was started {} times without finishing (workers crashed or were killed); \
                     retry once the cause is fixed",
                    taken.attempts - 1
                ),
                retryable: true,
            };
            return self.fail(&id, err).await;
        }
        match part {
            RenderPart::Segment(k) => info!(segment = k, attempt = taken.attempts, "segment started"),
            RenderPart::Join => info!(attempt = taken.attempts, "join started"),
        }
        self.run_with_retries(Stage::Render, &id, worker, Some(part)).await
    }

    /// Runs `part` of `job`'s segmented render.
    pub(super) async fn render_part(
        &self,
        job: JobRecord,
        part: RenderPart,
        worker: &str,
        progress: &watch::Sender<u8>,
    ) -> Result<(), StageError> {
        match part {
            RenderPart::Segment(k) => self.render_segment(job, k, worker, progress).await,
            RenderPart::Join => self.join_segments(job, worker, progress).await,
        }
    }

    async fn render_segment(
        &self,
        job: JobRecord,
        index: u32,
        worker: &str,
        progress: &watch::Sender<u8>,
    ) -> Result<(), StageError> {
        let id = &job.id;
        let (narration, footage) = inputs(&job)?;
        let parts = self.records.render_parts(id).await?;
        let Some(row) = parts.iter().find(|p| p.part == index as i32) else {
            info!(segment = index, "the segment is no longer planned; nothing to render");
            return Ok(());
        };
        let segments = parts.iter().filter(|p| p.part >= 0).count() as u32;
        let done_before = parts.iter().filter(|p| p.part >= 0 && p.state == PartState::Done).count() as u32;
        let seg = row.segment;
        let (first, end) = (seg.first_clip as usize, (seg.first_clip + seg.clips) as usize);
        let bounds = frame_bounds(&narration, &footage);
        if end > footage.len() || bounds[first] != seg.start_frame || bounds[end] - bounds[first] != seg.frames {
            return Err(StageError::job(
                codes::MANIFEST_INCOMPLETE,
                "the segment plan no longer matches the job's footage; retry the job to plan it again",
            ));
        }

        let scratch = ScratchDir::fresh_named(&self.config.scratch_root, id, &format!("render-seg-{index}"))
            .await
            .map_err(StageError::Scratch)?;
        let clips = self.fetch_clips(&scratch, &footage[first..end]).await?;
        let captions = if job.spec.captions {
            let style = super::job_caption_style(job.spec.caption_style.as_ref(), &self.config.captions);
            let path = scratch.join("captions.ass");
            tokio::fs::write(&path, ass_document(&narration.words, &style)).await.map_err(StageError::Scratch)?;
            Some(path)
        } else {
            None
        };
        let plan = SegmentPlan {
            clips,
            clip_frames: bounds[first..=end].windows(2).map(|w| w[1] - w[0]).collect(),
            stills_before: footage[..first].iter().filter(|p| p.still).count(),
            start_frame: seg.start_frame,
            frames: seg.frames,
            captions,
            fonts_dir: self.config.fonts_dir.clone(),
            encoder: self.config.encoder.clone(),
            threads: self.tools.budget.ffmpeg_threads,
            filter_script: scratch.join("filtergraph.txt"),
            output: segment_file(scratch.path(), index),
        };
        let started = Instant::now();
        crate::media::render_segment(&self.tools, &plan, self.config.render_timeout, &mut |pct| {
            // The job's progress: segments done, this one's share, the join last.
            let overall = (done_before * 100 + u32::from(pct)) / (segments + 1);
            let _ = progress.send(overall.min(99) as u8);
        })
        .await?;
        let render_seconds = started.elapsed().as_secs_f64();
        let key = ObjectKey::parse(&segment_key(id.as_str(), index))?;
        let bytes = self.objects.put_file(&key, &plan.output).await?;
        drop(scratch);
        let mine = self
            .settle("record the segment", || self.records.finish_render_part(id, index as i32, worker, render_seconds))
            .await?;
        if !mine {
            warn!(segment = index, "another worker took this segment over meanwhile; its render counts");
            return Ok(());
        }
        info!(segment = index, frames = seg.frames, render_seconds, bytes, "segment rendered");
        if self.settle("queue the join", || self.records.queue_join_if_complete(id)).await? {
            self.settle("queue the join", || self.queues.enqueue_part(id, RenderPart::Join)).await?;
            info!("last segment rendered; join queued");
        }
        Ok(())
    }

    async fn join_segments(
        &self,
        job: JobRecord,
        worker: &str,
        progress: &watch::Sender<u8>,
    ) -> Result<(), StageError> {
        let id = &job.id;
        let mut manifest = job.manifest.clone();
        let (narration, _) = inputs(&job)?;
        let parts = self.records.render_parts(id).await?;
        let segments: Vec<_> = parts.iter().filter(|p| p.part >= 0).collect();
        if segments.is_empty() || segments.iter().any(|p| p.state != PartState::Done) {
            return Err(StageError::job(
                codes::MANIFEST_INCOMPLETE,
                "the join found segments not rendered yet; retry the job to render them",
            ));
        }
        let scratch =
            ScratchDir::fresh_named(&self.config.scratch_root, id, "render-join").await.map_err(StageError::Scratch)?;
        let mut files = Vec::with_capacity(segments.len());
        for p in &segments {
            let file = segment_file(scratch.path(), p.part as u32);
            self.objects.fetch_to(&ObjectKey::parse(&segment_key(id.as_str(), p.part as u32))?, &file).await?;
            files.push((file, p.segment.frames));
        }
        let list = scratch.join("segments.txt");
        tokio::fs::write(&list, concat_list(&files)).await.map_err(StageError::Scratch)?;
        let frames: u64 = files.iter().map(|(_, f)| f).sum();
        let audio_key = ObjectKey::parse(&audio_object(&job, &narration, frames))?;
        let audio = if self.objects.size(&audio_key).await?.is_some() {
            let file = scratch.join("audio.m4a");
            self.objects.fetch_to(&audio_key, &file).await?;
            JoinAudio::Encoded(file)
        } else {
            info!("no audio encoded ahead; the join mixes it");
            JoinAudio::Mix(AudioMix {
                narration: self.fetch_narration(&scratch, &narration).await?,
                duration_s: narration.duration_s,
                music: self.music_bed(&job).await?,
            })
        };
        let plan = JoinPlan {
            list,
            frames,
            duration_s: narration.duration_s,
            audio,
            filter_script: scratch.join("audiograph.txt"),
            output: scratch.join("video.mp4"),
        };
        let n = segments.len() as u32;
        let started = Instant::now();
        let report = crate::media::join_segments(&self.tools, &plan, self.config.render_timeout, &mut |pct| {
            let _ = progress.send(((n * 100 + u32::from(pct)) / (n + 1)).min(99) as u8);
        })
        .await?;
        let join_seconds = started.elapsed().as_secs_f64();
        // The render's cost is every segment's ffmpeg time and the join's.
        let render_seconds = join_seconds + segments.iter().map(|p| p.render_seconds).sum::<f64>();
        let key = ObjectKey::parse(&work_key(id))?;
        let bytes = self.objects.put_file(&key, &plan.output).await?;
        drop(scratch);
        info!(segments = n, frames = plan.frames, join_seconds, render_seconds, bytes, "segments joined");
        manifest.costs.render_seconds += render_seconds;
        manifest.render = Some(super::render::render_output(&key, bytes, &report, render_seconds));
        if !self
            .settle("record the join", || self.records.finish_render_part(id, JOIN_PART, worker, join_seconds))
            .await?
        {
            warn!("another worker took the join over meanwhile; leaving the render to it");
            return Ok(());
        }
        self.rendered(&job, &manifest).await?;
        let joined = segments.iter().filter_map(|p| ObjectKey::parse(&segment_key(id.as_str(), p.part as u32)).ok());
        for key in joined.chain([audio_key]) {
            if let Err(e) = self.objects.delete(&key).await {
                // Swept with the rest of work/ a day later.
                warn!(key = %key, error = %e, "a joined part could not be deleted");
            }
        }
        Ok(())
    }
}
