//! Media work: the subprocess runner, ffmpeg argument builders (pure), ffprobe,
//! captions, WAV joining and scratch folders.

pub mod caption_layout;
pub mod captions;
pub mod fetch;
pub mod ffmpeg;
pub mod ffprobe;
pub mod library;
pub mod motion;
pub mod process;
pub mod progress;
pub mod scratch;
pub mod segments;
pub mod wav;

use std::path::PathBuf;
use std::time::Duration;

use ffprobe::MediaReport;

use crate::domain::SpecLimits;
use crate::settings::Settings;
use process::{Invocation, ProcessError};
use progress::{ProgressTracker, ProgressUpdate};

/// Where the media programs are, and how much one job may make them do; from settings.
#[derive(Debug, Clone)]
pub struct Toolbox {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub espeak: PathBuf,
    pub budget: Budget,
}

impl Toolbox {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            ffmpeg: s.media.ffmpeg.clone(),
            ffprobe: s.media.ffprobe.clone(),
            espeak: s.media.espeak.clone(),
            budget: Budget::from_settings(s),
        }
    }
}

/// What one accepted job may cost: the limits a submission was checked
/// against (checked again once its script is written and spoken, since a
/// topic job's length is only known then), how many footage segments one
/// render may have, and how many threads its ffmpeg may use. Together they
/// bound a render's memory and CPU (README, "Limits").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub spec: SpecLimits,
    /// Most footage segments, each one ffmpeg input, in one render.
    pub max_footage_segments: usize,
    /// Threads for a render's x264 encoder and its filtergraph.
    pub ffmpeg_threads: u32,
}

impl Budget {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            spec: s.limits.spec(),
            max_footage_segments: s.limits.max_footage_segments,
            ffmpeg_threads: match s.media.ffmpeg_threads {
                0 => threads_for_the_machine(
                    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
                    s.queue.render_concurrency,
                ),
                n => n,
            },
        }
    }
}

/// `media.ffmpeg_threads = 0`: the machine's cores shared by the renders one
/// process runs at once, at least one each. More threads than cores only
/// makes the renders take turns; fewer leaves cores idle while one renders.
pub fn threads_for_the_machine(cores: usize, renders_at_once: usize) -> u32 {
    u32::try_from((cores / renders_at_once.max(1)).max(1)).unwrap_or(u32::MAX).min(64)
}

/// Why a render did not produce a usable video.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Ffmpeg(#[from] ProcessError),
    /// The filtergraph file could not be written to the scratch folder.
    #[error("the filtergraph file could not be written: {0}")]
    Script(std::io::Error),
    #[error("the rendered file could not be checked: {0}")]
    Probe(#[from] ffprobe::ProbeError),
    #[error("the rendered file is not what was asked for: {0}")]
    Check(String),
}

/// Renders `plan`, reporting 0-100 through `on_progress`, then checks the
/// output with ffprobe: in one ffmpeg run (its filtergraph written to
/// `plan.filter_script` first), or, for a video long enough, split across
/// this machine's cores ([`segments::split_across_cores`], [`render_split`]).
pub async fn render(
    tools: &Toolbox,
    plan: &ffmpeg::RenderPlan,
    timeout: Duration,
    on_progress: &mut (dyn FnMut(u8) + Send),
) -> Result<MediaReport, RenderError> {
    if let Some(split) = segments::split_across_cores(plan) {
        let rendered = render_split(tools, &split, timeout, on_progress).await;
        for file in split.scratch_files() {
            let _ = tokio::fs::remove_file(file).await;
        }
        return rendered;
    }
    let cmd = ffmpeg::render_args(plan);
    run_render(tools, cmd, &plan.filter_script, plan.duration_s, timeout, on_progress).await?;
    let report = ffprobe::probe(&tools.ffprobe, &plan.output).await?;
    check_render(&report, plan.duration_s).map_err(RenderError::Check)?;
    Ok(report)
}

/// Renders one segment of a segmented render and checks it: the frame size
/// and codec of every render, and exactly the segment's length.
pub async fn render_segment(
    tools: &Toolbox,
    plan: &segments::SegmentPlan,
    timeout: Duration,
    on_progress: &mut (dyn FnMut(u8) + Send),
) -> Result<MediaReport, RenderError> {
    let cmd = segments::segment_args(plan);
    run_render(tools, cmd, &plan.filter_script, plan.duration_s(), timeout, on_progress).await?;
    let report = ffprobe::probe(&tools.ffprobe, &plan.output).await?;
    check_segment(&report, plan.duration_s()).map_err(RenderError::Check)?;
    Ok(report)
}

/// Joins rendered segments and mixes the audio, then checks the result
/// exactly like a single pass ([`check_render`]).
pub async fn join_segments(
    tools: &Toolbox,
    plan: &segments::JoinPlan,
    timeout: Duration,
    on_progress: &mut (dyn FnMut(u8) + Send),
) -> Result<MediaReport, RenderError> {
    let cmd = segments::join_args(plan);
    run_render(tools, cmd, &plan.filter_script, plan.video_s(), timeout, on_progress).await?;
    let report = ffprobe::probe(&tools.ffprobe, &plan.output).await?;
    check_render(&report, plan.duration_s).map_err(RenderError::Check)?;
    Ok(report)
}

/// Runs a render split across the machine's cores: every part (each checked
/// like a segment) and the audio ([`encode_audio`]) side by side, then the
/// join ([`join_segments`]), which copies both and checks the video like a
/// single pass. Progress is the parts' frames done, 99 until the join has
/// run. The first failure ends the render, and the other runs are killed with
/// it (their futures dropped); the caller removes the parts' files.
async fn render_split(
    tools: &Toolbox,
    split: &segments::CoreSplit,
    timeout: Duration,
    on_progress: &mut (dyn FnMut(u8) + Send),
) -> Result<MediaReport, RenderError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u8)>();
    let parts = futures::future::try_join_all(split.parts.iter().enumerate().map(|(k, part)| {
        let tx = tx.clone();
        async move {
            render_segment(tools, part, timeout, &mut move |pct| {
                let _ = tx.send((k, pct));
            })
            .await
        }
    }));
    drop(tx);
    let audio = encode_audio(tools, &split.mix, split.join.video_s(), &split.audio_script, &split.audio, timeout);
    let work = futures::future::try_join(parts, audio);
    tokio::pin!(work);
    let frames: Vec<u64> = split.parts.iter().map(|p| p.frames).collect();
    let total: u64 = frames.iter().sum::<u64>().max(1);
    let mut done = vec![0u8; frames.len()];
    let mut last = 0u8;
    loop {
        tokio::select! {
            finished = &mut work => {
                finished?;
                break;
            }
            Some((k, pct)) = rx.recv() => {
                done[k] = pct;
                let drawn: u64 = done.iter().zip(&frames).map(|(p, f)| u64::from(*p) * f).sum();
                let overall = u8::try_from(drawn / total).unwrap_or(100).min(99);
                if overall > last {
                    last = overall;
                    on_progress(overall);
                }
            }
        }
    }
    tokio::fs::write(&split.join.list, split.concat_list()).await.map_err(RenderError::Script)?;
    let report = join_segments(tools, &split.join, timeout, &mut |_| {}).await?;
    on_progress(100);
    Ok(report)
}

/// Mixes and encodes a segmented render's audio to `output` on its own
/// ([`segments::audio_args`]), for the join to copy. The join's check of the
/// whole video is what checks it.
pub async fn encode_audio(
    tools: &Toolbox,
    mix: &segments::AudioMix,
    video_s: f64,
    filter_script: &std::path::Path,
    output: &std::path::Path,
    timeout: Duration,
) -> Result<(), RenderError> {
    let cmd = segments::audio_args(mix, video_s, filter_script, output);
    run_render(tools, cmd, filter_script, video_s, timeout, &mut |_| {}).await
}

/// Writes `cmd`'s filtergraph to `script` and runs its ffmpeg, reporting
/// 0-100 of `duration_s` through `on_progress`.
async fn run_render(
    tools: &Toolbox,
    cmd: ffmpeg::RenderCommand,
    script: &std::path::Path,
    duration_s: f64,
    timeout: Duration,
    on_progress: &mut (dyn FnMut(u8) + Send),
) -> Result<(), RenderError> {
    tokio::fs::write(script, cmd.filter_graph.as_bytes()).await.map_err(RenderError::Script)?;
    let inv = Invocation::new(tools.ffmpeg.clone(), cmd.args, timeout);
    let mut tracker = ProgressTracker::new(duration_s);
    let mut last = 0u8;
    process::run_streaming(&inv, &mut |line| {
        if let Some(update) = tracker.feed(line) {
            let pct = match update {
                ProgressUpdate::Percent(p) => p,
                ProgressUpdate::End => 100,
            };
            if pct > last {
                last = pct;
                on_progress(pct);
            }
        }
    })
    .await?;
    Ok(())
}

/// What a segment must be: the picture of every render ([`check_render`]
/// without the audio), exactly as long as its frames (within one frame).
pub fn check_segment(report: &MediaReport, expected_s: f64) -> Result<(), String> {
    let v = report.video.as_ref().ok_or("no video stream")?;
    let mut problems = Vec::new();
    if (v.width, v.height) != (ffmpeg::WIDTH, ffmpeg::HEIGHT) {
        problems.push(format!("size {}x{}", v.width, v.height));
    }
    if v.codec != "h264" || v.pix_fmt != "yuv420p" {
        problems.push(format!("video {} {}", v.codec, v.pix_fmt));
    }
    if (report.duration_s - expected_s).abs() > 1.0 / f64::from(ffmpeg::FPS) {
        problems.push(format!("duration {:.3}s, segment {:.3}s", report.duration_s, expected_s));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join(", ")) }
}

/// What every render must be: 1080x1920 H.264 yuv420p at 30 fps with AAC audio,
/// as long as the narration (within half a second).
pub fn check_render(report: &MediaReport, expected_s: f64) -> Result<(), String> {
    let v = report.video.as_ref().ok_or("no video stream")?;
    let a = report.audio.as_ref().ok_or("no audio stream")?;
    let mut problems = Vec::new();
    if (v.width, v.height) != (ffmpeg::WIDTH, ffmpeg::HEIGHT) {
        problems.push(format!("size {}x{}", v.width, v.height));
    }
    if v.codec != "h264" || v.pix_fmt != "yuv420p" {
        problems.push(format!("video {} {}", v.codec, v.pix_fmt));
    }
    if (v.fps - f64::from(ffmpeg::FPS)).abs() > 0.01 {
        problems.push(format!("{} fps", v.fps));
    }
    if a.codec != "aac" {
        problems.push(format!("audio {}", a.codec));
    }
    if (report.duration_s - expected_s).abs() > 0.5 {
        problems.push(format!("duration {:.2}s, narration {:.2}s", report.duration_s, expected_s));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_probe_passes_and_a_wrong_size_is_named() {
        let mut report =
            ffprobe::parse_report(include_bytes!("../../tests/fixtures/ffprobe-1080x1920-h264-aac.json")).unwrap();
        assert_eq!(check_render(&report, 2.2), Ok(()));
        assert!(check_render(&report, 3.0).unwrap_err().contains("duration 2.00s"));
        report.video.as_mut().unwrap().width = 720;
        assert!(check_render(&report, 2.0).unwrap_err().contains("size 720x1920"));
    }

    #[test]
    fn threads_set_for_the_machine_share_its_cores_among_the_renders_it_runs() {
        assert_eq!(threads_for_the_machine(2, 1), 2);
        assert_eq!(threads_for_the_machine(16, 4), 4);
        assert_eq!(threads_for_the_machine(2, 3), 1, "never none");
        assert_eq!(threads_for_the_machine(256, 1), 64, "the setting's own bound");
    }
}
