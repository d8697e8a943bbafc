//! Segmented renders, built by pure functions: where a long video is split,
//! what ffmpeg draws for one segment, and how the segments are joined
//! (issue 17, part 3).
//!
//! A segmented render is frame-exact by construction: every clip starts on a
//! whole frame ([`clip_frame_bounds`]), a segment is a run of whole clips
//! ([`plan_segments`]) rendered to exactly its frame count, and the join
//! copies the segments' streams back to back. So the joined video has
//! `round(duration × 30)` frames, none repeated and none missing. Segments
//! are encoded with the settings of a single pass ([`ffmpeg::video_encoder_args`])
//! and start on an IDR frame with closed GOPs, which is what lets the concat
//! demuxer join them with `-c copy`. Captions are drawn on each segment at the
//! segment's place in the whole video, so a cue spanning a join is on screen
//! on both sides of it; the narration (and ducked music) is mixed once with
//! the single pass's audio graph, beside the segments ([`audio_args`]) or
//! failing that at the join.

use std::ffi::OsString;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::ffmpeg::{
    self, ClipSegment, Encoder, FPS, MusicBed, RenderCommand, RenderPlan, audio_graph, clip_chain, clip_input_args,
    escape_filter_path,
};
use super::motion::{self, Transition};

/// One segment of a plan: whole clips `first_clip..first_clip + clips`,
/// frames `start_frame..start_frame + frames` of the video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    pub first_clip: usize,
    pub clips: usize,
    pub start_frame: u64,
    pub frames: u64,
}

/// The frame each clip starts on, and (last) the video's frame count: clip
/// `i` is shown from `bounds[i]` to `bounds[i + 1]`. Each start is its time
/// snapped to the nearest whole frame, and every clip keeps at least one frame.
pub fn clip_frame_bounds(shown: &[f64], duration_s: f64) -> Vec<u64> {
    let total = motion::frames_for(duration_s).max(shown.len() as u64);
    let mut bounds = Vec::with_capacity(shown.len() + 1);
    let mut at = 0.0;
    for (i, d) in shown.iter().enumerate() {
        let snapped = (at * f64::from(FPS)).round() as u64;
        let floor = bounds.last().map_or(0, |b| b + 1);
        // Room for one frame of each clip still to come.
        let ceiling = total - (shown.len() - i) as u64;
        bounds.push(snapped.max(floor).min(ceiling));
        at += d;
    }
    bounds.push(total);
    bounds
}

/// Splits a video whose clips start at `bounds` (from [`clip_frame_bounds`])
/// into segments of whole clips, each about `target_frames` long: a segment
/// ends at the clip boundary nearest its target (the later one on a tie),
/// and has at least one clip; a last segment shorter than half the target
/// joins the one before it. Nearest, not the first at or past the target:
/// with 12 s clips and a 15 s target, that is 12 s segments rather than
/// 24 s ones, twice as many pieces to spread across the workers.
pub fn plan_segments(bounds: &[u64], target_frames: u64) -> Vec<SegmentSpan> {
    let clips = bounds.len().saturating_sub(1);
    let target = target_frames.max(1);
    let span = |first: usize, end: usize| SegmentSpan {
        first_clip: first,
        clips: end - first,
        start_frame: bounds[first],
        frames: bounds[end] - bounds[first],
    };
    let mut spans: Vec<SegmentSpan> = Vec::new();
    let (mut first, mut i) = (0, 0);
    while i < clips {
        let start = bounds[first];
        let (short, long) = (bounds[i] - start, bounds[i + 1] - start);
        if long >= target && i > first && target - short < long - target {
            // Ending before clip `i` is nearer the target; clip `i` starts the next.
            spans.push(span(first, i));
            first = i;
            continue;
        }
        if long >= target || i + 1 == clips {
            spans.push(span(first, i + 1));
            first = i + 1;
        }
        i += 1;
    }
    if spans.len() >= 2 && spans.last().is_some_and(|s| s.frames < target / 2) {
        let last = spans.pop().expect("two spans");
        let prev = spans.last_mut().expect("one span left");
        prev.clips += last.clips;
        prev.frames += last.frames;
    }
    spans
}

/// Whether a video should be rendered in segments: long enough
/// (`min_seconds` > 0 and at least that long), with more than one clip, and
/// joined by cuts. Transitions other than a cut overlap two clips across
/// their boundary, so a segment could not end there: those stay one pass.
pub fn worth_segmenting(duration_s: f64, clips: usize, transition: Transition, min_seconds: u32) -> bool {
    min_seconds > 0 && duration_s >= f64::from(min_seconds) && clips >= 2 && transition == Transition::Cut
}

/// Everything one segment's render needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentPlan {
    /// The segment's clips, in order.
    pub clips: Vec<ClipSegment>,
    /// Frames each clip is shown for (sums to `frames`).
    pub clip_frames: Vec<u64>,
    /// Stills in the video before this segment's first clip, so each still
    /// moves as it does in a single pass.
    pub stills_before: usize,
    /// Where the segment starts in the whole video, and how long it is.
    pub start_frame: u64,
    pub frames: u64,
    /// The whole video's `.ass` captions, when captions are on.
    pub captions: Option<PathBuf>,
    pub fonts_dir: PathBuf,
    pub encoder: Encoder,
    pub threads: u32,
    pub filter_script: PathBuf,
    pub output: PathBuf,
}

impl SegmentPlan {
    /// The segment's length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.frames as f64 / f64::from(FPS)
    }
}

/// Read a little past a clip's last frame, so that its chain never runs
/// short of the frames `trim` keeps.
const READ_MARGIN_S: f64 = 0.2;

/// The filtergraph of one segment: each clip through the single pass's chain
/// ([`clip_chain`]) and cut to exactly its frames, the clips concatenated, and
/// the captions drawn at the segment's place in the whole video: on the
/// single pass's clock ([`ffmpeg::caption_clock`]) from the segment's first
/// frame, and timestamps back to 0 after.
pub fn segment_filter_graph(plan: &SegmentPlan) -> String {
    let mut g = String::new();
    let mut stills = plan.stills_before;
    for (i, (clip, frames)) in plan.clips.iter().zip(&plan.clip_frames).enumerate() {
        let shown_s = *frames as f64 / f64::from(FPS);
        let _ = write!(
            g,
            "[{i}:v]{},trim=end_frame={frames},setpts=PTS-STARTPTS[v{i}];",
            clip_chain(clip, shown_s, stills, plan.threads)
        );
        stills += usize::from(clip.still);
    }
    let inputs: Vec<f64> = plan.clip_frames.iter().map(|f| *f as f64 / f64::from(FPS)).collect();
    g.push_str(&motion::join_graph(&inputs, Transition::Cut, 0.0, "vcat"));
    match &plan.captions {
        Some(ass) => {
            let _ = write!(
                g,
                "[vcat]{},ass=filename={}:fontsdir={},setpts=PTS-STARTPTS[vout]",
                ffmpeg::caption_clock(plan.start_frame),
                escape_filter_path(ass),
                escape_filter_path(&plan.fonts_dir)
            );
        }
        None => g.push_str("[vcat]null[vout]"),
    }
    g
}

/// The ffmpeg run of one segment: video only, encoded like a single pass,
/// starting on an IDR frame with closed GOPs, exactly `plan.frames` long.
pub fn segment_args(plan: &SegmentPlan) -> RenderCommand {
    let mut args = ffmpeg::run_header(Some(plan.threads));
    for (clip, frames) in plan.clips.iter().zip(&plan.clip_frames) {
        args.extend(clip_input_args(clip, *frames as f64 / f64::from(FPS) + READ_MARGIN_S, plan.threads));
    }
    args.push("-filter_complex_script".into());
    args.push(plan.filter_script.clone().into());
    args.extend(["-map", "[vout]", "-an"].map(OsString::from));
    args.extend(ffmpeg::video_encoder_args(&plan.encoder, plan.threads));
    args.extend(["-flags", "+cgop", "-force_key_frames", "expr:eq(n,0)", "-frames:v"].map(OsString::from));
    args.push(plan.frames.to_string().into());
    args.extend(["-movflags", "+faststart"].map(OsString::from));
    args.push(plan.output.clone().into());
    RenderCommand { args, filter_graph: segment_filter_graph(plan) }
}

/// The concat demuxer's list of `segments` (path and frame count, in order).
/// Each file's duration is stated, so every segment starts exactly where the
/// frames before it end (an MP4's edit list would otherwise shift it by a
/// fraction of a millisecond at every join).
pub fn concat_list(segments: &[(PathBuf, u64)]) -> String {
    let mut list = String::from("ffconcat version 1.0\n");
    for (path, frames) in segments {
        let quoted = path.to_string_lossy().replace('\'', r"'\''");
        let _ = writeln!(list, "file '{quoted}'");
        let _ = writeln!(list, "duration {:.6}", *frames as f64 / f64::from(FPS));
    }
    list
}

/// The narration (and music) of a segmented render, mixed with the single
/// pass's audio graph and encoded with its encoder: what the join muxes.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioMix {
    pub narration: PathBuf,
    /// The narration's length (what the audio is padded to).
    pub duration_s: f64,
    pub music: Option<MusicBed>,
}

/// Where the join's audio comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinAudio {
    /// Encoded already, while the segments rendered ([`audio_args`]): the
    /// join copies it, so it is only a copy of both streams.
    Encoded(PathBuf),
    /// Not there (its encoder's worker died, or it failed): the join mixes
    /// and encodes it itself, as a single pass would.
    Mix(AudioMix),
}

/// Everything the join of a segmented render needs.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinPlan {
    /// The concat list ([`concat_list`]) of the rendered segments.
    pub list: PathBuf,
    pub frames: u64,
    /// The narration's length: what the joined video is checked against.
    pub duration_s: f64,
    pub audio: JoinAudio,
    pub filter_script: PathBuf,
    pub output: PathBuf,
}

impl JoinPlan {
    /// The joined video's length: its frames at 30 per second.
    pub fn video_s(&self) -> f64 {
        self.frames as f64 / f64::from(FPS)
    }
}

/// The ffmpeg run that mixes and encodes a segmented render's audio on its
/// own, `video_s` long, into an MP4 audio file (`output`): the work the join
/// would otherwise do alone after the last segment. AAC encoding is nearly
/// all of a join's time (17 s of CPU for 215 s of audio on a 2.4 GHz core,
/// against 1.3 s to copy and mux 221 MB of video), so it runs beside the
/// segments instead of after them.
pub fn audio_args(mix: &AudioMix, video_s: f64, filter_script: &Path, output: &Path) -> RenderCommand {
    let mut args = ffmpeg::run_header(None);
    args.extend(ffmpeg::audio_input_args(&mix.narration, mix.duration_s, mix.music.as_ref()));
    args.push("-filter_complex_script".into());
    args.push(filter_script.into());
    args.extend(["-map", "[aout]", "-vn"].map(OsString::from));
    args.extend(ffmpeg::AUDIO_ENCODER.map(OsString::from));
    args.extend(["-f", "mp4", "-t"].map(OsString::from));
    args.push(format!("{video_s:.6}").into());
    args.push(output.into());
    RenderCommand { args, filter_graph: audio_graph(0, mix.duration_s, mix.music.as_ref()) }
}

/// The ffmpeg run of the join: the segments' video copied as it is, with
/// the audio encoded beside the segments copied too, or else mixed here once
/// with the single pass's audio graph; muxed into the MP4 a single pass
/// would make.
pub fn join_args(plan: &JoinPlan) -> RenderCommand {
    let mut args = ffmpeg::run_header(None);
    args.extend(["-f", "concat", "-safe", "0", "-i"].map(OsString::from));
    args.push(plan.list.clone().into());
    let filter_graph = match &plan.audio {
        JoinAudio::Encoded(audio) => {
            args.extend(["-threads", "1", "-i"].map(OsString::from));
            args.push(audio.clone().into());
            args.extend(["-map", "0:v", "-map", "1:a", "-c", "copy"].map(OsString::from));
            String::new()
        }
        JoinAudio::Mix(mix) => {
            args.extend(ffmpeg::audio_input_args(&mix.narration, mix.duration_s, mix.music.as_ref()));
            args.push("-filter_complex_script".into());
            args.push(plan.filter_script.clone().into());
            args.extend(["-map", "0:v", "-map", "[aout]", "-c:v", "copy"].map(OsString::from));
            args.extend(ffmpeg::AUDIO_ENCODER.map(OsString::from));
            audio_graph(1, mix.duration_s, mix.music.as_ref())
        }
    };
    args.extend(["-movflags", "+faststart", "-t"].map(OsString::from));
    args.push(format!("{:.6}", plan.video_s()).into());
    args.push(plan.output.clone().into());
    RenderCommand { args, filter_graph }
}

/// Frames clip input `clip`, read for `read_s` (as a single pass gives it
/// to ffmpeg: to the millisecond), comes out of a single pass's chain with:
/// its source frames before `read_s`, counted from 0 at `clip.source_fps`
/// (30 when unknown), held to the 30 fps ticks until the last one's end,
/// rounded to the nearest tick, as ffmpeg 5.1's `fps` filter does (a 25 fps
/// clip read for 2.928 s makes 89 frames, a 30 fps one 88; the unit test's
/// table was read off ffmpeg). A still makes its Ken Burns frames.
pub fn single_pass_clip_frames(clip: &ClipSegment, read_s: f64) -> u64 {
    if clip.still {
        return motion::frames_for(read_s);
    }
    let read_s = (read_s * 1000.0).round() / 1000.0;
    let rate = clip.source_fps.filter(|r| *r > 0.0).unwrap_or(f64::from(FPS));
    let source_frames = (read_s * rate - 1e-6).ceil().max(1.0);
    (source_frames / rate * f64::from(FPS) + 0.5 + 1e-9).floor().max(1.0) as u64
}

/// Where each clip of `plan` starts in a single pass of it, in frames, and
/// (last) the video's frame count, the frames before the narration's end
/// (ffmpeg's `-t`), or `None` when the clips do not fill the video with a
/// frame each. A single pass gives each clip the frames
/// [`single_pass_clip_frames`] says, not its time snapped to the nearest frame
/// ([`clip_frame_bounds`]): a clip 2.928 s long gets 88 frames, not 87.84, so
/// its successors start up to a few frames later than their times. Parts split
/// on these bounds show every frame where a single pass (and the usual
/// hand-written command) shows it.
pub fn single_pass_frame_bounds(plan: &RenderPlan) -> Option<Vec<u64>> {
    let duration_s = (plan.duration_s * 1000.0).round() / 1000.0;
    let total = (duration_s * f64::from(FPS) - 1e-6).ceil().max(1.0) as u64;
    let mut bounds = vec![0u64];
    for (clip, read_s) in plan.clips.iter().zip(ffmpeg::clip_input_durations(plan)) {
        let start = *bounds.last().expect("starts with 0");
        if start >= total {
            return None;
        }
        bounds.push((start + single_pass_clip_frames(clip, read_s)).min(total));
    }
    (bounds.last() == Some(&total)).then_some(bounds)
}

/// A render split across the cores of one machine ([`split_across_cores`]):
/// single-threaded runs of whole clips side by side, the audio mixed and
/// encoded beside them, then a join that copies both.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreSplit {
    /// One single-threaded run each, in order.
    pub parts: Vec<SegmentPlan>,
    pub mix: AudioMix,
    /// The audio run's filtergraph file, and the audio it encodes
    /// ([`audio_args`], as long as the joined video).
    pub audio_script: PathBuf,
    pub audio: PathBuf,
    /// The join; its concat list ([`CoreSplit::concat_list`]) is written to
    /// `join.list` before it runs.
    pub join: JoinPlan,
}

impl CoreSplit {
    /// The join's concat list of the parts.
    pub fn concat_list(&self) -> String {
        let parts: Vec<(PathBuf, u64)> = self.parts.iter().map(|p| (p.output.clone(), p.frames)).collect();
        concat_list(&parts)
    }

    /// Every file the split writes besides the video itself, to remove once
    /// it is joined (or has failed).
    pub fn scratch_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> =
            self.parts.iter().flat_map(|p| [p.output.clone(), p.filter_script.clone()]).collect();
        files.extend([self.audio.clone(), self.audio_script.clone(), self.join.list.clone()]);
        files.push(self.join.filter_script.clone());
        files
    }
}

/// How a render of `plan` is split across the cores of the machine it runs
/// on, or `None` for one ffmpeg run: a video at least
/// `plan.split_min_seconds` long (not 0), joined by cuts, with two or more
/// clips, and two or more threads to spend. It becomes about `plan.threads`
/// runs of whole clips ([`plan_segments`] with that share of the frames as
/// the target), each on one thread and drawn exactly like its stretch of a
/// single pass (the segmented render's [`segment_args`], each clip given the
/// frames a single pass gives it: [`single_pass_frame_bounds`]), plus one run that
/// mixes and encodes the audio ([`audio_args`]); the join only copies.
///
/// Why: ffmpeg 5.1 demuxes, filters, encodes the audio and feeds x264 on one
/// main thread, so a single run given two threads leaves part of the second
/// core idle; two single-threaded runs keep both busy. A 58.6 s video took
/// 25.7-27.1 s this way against 30.1-31.0 s as one run, on the same 2 cores.
/// The parts' files sit beside `plan.output` (and the scripts beside
/// `plan.filter_script`), named after them.
pub fn split_across_cores(plan: &RenderPlan) -> Option<CoreSplit> {
    if plan.threads < 2 || !worth_segmenting(plan.duration_s, plan.clips.len(), plan.transition, plan.split_min_seconds)
    {
        return None;
    }
    let bounds = single_pass_frame_bounds(plan)?;
    let total = *bounds.last()?;
    let spans = plan_segments(&bounds, total.div_ceil(u64::from(plan.threads)));
    if spans.len() < 2 {
        return None;
    }
    let beside = |path: &Path, suffix: &str| {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        path.with_file_name(format!("{stem}.{suffix}"))
    };
    let parts = spans
        .iter()
        .enumerate()
        .map(|(k, span)| {
            let end = span.first_clip + span.clips;
            SegmentPlan {
                clips: plan.clips[span.first_clip..end].to_vec(),
                clip_frames: bounds[span.first_clip..=end].windows(2).map(|w| w[1] - w[0]).collect(),
                stills_before: plan.clips[..span.first_clip].iter().filter(|c| c.still).count(),
                start_frame: span.start_frame,
                frames: span.frames,
                captions: plan.captions.clone(),
                fonts_dir: plan.fonts_dir.clone(),
                encoder: plan.encoder.clone(),
                threads: 1,
                filter_script: beside(&plan.filter_script, &format!("part-{k}.txt")),
                output: beside(&plan.output, &format!("part-{k}.mp4")),
            }
        })
        .collect();
    let audio = beside(&plan.output, "audio.m4a");
    Some(CoreSplit {
        parts,
        mix: AudioMix { narration: plan.narration.clone(), duration_s: plan.duration_s, music: plan.music.clone() },
        audio_script: beside(&plan.filter_script, "audio.txt"),
        audio: audio.clone(),
        join: JoinPlan {
            list: beside(&plan.output, "parts.txt"),
            frames: total,
            duration_s: plan.duration_s,
            audio: JoinAudio::Encoded(audio),
            filter_script: beside(&plan.filter_script, "join.txt"),
            output: plan.output.clone(),
        },
    })
}

/// The object key of a segmented render's encoded audio, `digest` being the
/// content address of what it is made of: the join never copies the audio
/// of other inputs (a revised narration, another track).
pub fn audio_key(job: &str, digest: &str) -> String {
    format!("work/{job}/audio-{digest}.m4a")
}

/// The object key of segment `index`'s video: in the object store, so a
/// worker on any machine can join it.
pub fn segment_key(job: &str, index: u32) -> String {
    format!("work/{job}/seg-{index}.mp4")
}

/// A segment file's name in a scratch folder.
pub fn segment_file(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("seg-{index}.mp4"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn clips_start_on_whole_frames_and_the_frames_add_up_to_the_duration() {
        let shown = [2.345, 3.01, 1.0, 4.9];
        let total_s: f64 = shown.iter().sum();
        let bounds = clip_frame_bounds(&shown, total_s);
        // 0, 2.345 s → 70.35, 5.355 s → 160.65, 6.355 s → 190.65, 11.255 s → 337.65.
        assert_eq!(bounds, [0, 70, 161, 191, 338]);
        assert_eq!(*bounds.last().unwrap(), (total_s * 30.0).round() as u64);
        // A clip too short for a frame of its own still gets one.
        assert_eq!(clip_frame_bounds(&[0.01, 0.01, 1.0], 1.02), [0, 1, 2, 31]);
    }

    #[test]
    fn segments_are_whole_clips_about_the_target_long_and_cover_every_frame() {
        let shown = vec![4.0; 45]; // 180 s
        let bounds = clip_frame_bounds(&shown, 180.0);
        let spans = plan_segments(&bounds, 30 * 30);
        assert_eq!(spans.len(), 6);
        assert!(spans.iter().all(|s| s.frames == 960 && s.clips == 8 || s.clips == 5), "{spans:?}");
        let mut next = (0, 0);
        for s in &spans {
            assert_eq!((s.first_clip, s.start_frame), next, "{spans:?}");
            next = (s.first_clip + s.clips, s.start_frame + s.frames);
        }
        assert_eq!(next, (45, 5400));
        // A short tail joins the segment before it.
        let spans = plan_segments(&clip_frame_bounds(&[10.0, 10.0, 2.0], 22.0), 300);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1], SegmentSpan { first_clip: 1, clips: 2, start_frame: 300, frames: 360 });
        // The boundary nearest the target: 12 s clips make 12 s segments for a 15 s target, not 24 s ones.
        let spans = plan_segments(&clip_frame_bounds(&[12.0; 18], 216.0), 15 * 30);
        assert_eq!(spans.len(), 18, "{spans:?}");
        assert!(spans.iter().all(|s| s.clips == 1 && s.frames == 360), "{spans:?}");
        // ... and 8 s clips 16 s ones; a clip longer than the target is a segment of its own.
        let spans = plan_segments(&clip_frame_bounds(&[8.0, 8.0, 8.0, 8.0, 40.0, 8.0, 8.0], 88.0), 15 * 30);
        let clips: Vec<usize> = spans.iter().map(|s| s.clips).collect();
        assert_eq!(clips, [2, 2, 1, 2], "{spans:?}");
    }

    #[test]
    fn only_long_cut_videos_are_segmented() {
        assert!(worth_segmenting(180.0, 40, Transition::Cut, 90));
        assert!(!worth_segmenting(80.0, 40, Transition::Cut, 90));
        assert!(!worth_segmenting(180.0, 40, Transition::Crossfade, 90), "xfades overlap the boundaries");
        assert!(!worth_segmenting(180.0, 1, Transition::Cut, 90), "one clip has no boundary");
        assert!(!worth_segmenting(1800.0, 40, Transition::Cut, 0), "0 turns it off");
    }

    fn plan(captions: bool) -> SegmentPlan {
        SegmentPlan {
            clips: vec![
                ClipSegment { path: "/s/clip-3.mp4".into(), duration_s: 4.0, still: false, source_fps: None },
                ClipSegment { path: "/s/photo.png".into(), duration_s: 2.0, still: true, source_fps: None },
            ],
            clip_frames: vec![120, 61],
            stills_before: 1,
            start_frame: 900,
            frames: 181,
            captions: captions.then(|| "/s/captions.ass".into()),
            fonts_dir: "/fonts".into(),
            encoder: Encoder { preset: "veryfast".into(), crf: 23, params: "subme=1".into() },
            threads: 2,
            filter_script: "/s/graph.txt".into(),
            output: "/s/seg-2.mp4".into(),
        }
    }

    #[test]
    fn a_segment_draws_its_clips_like_a_single_pass_cut_to_whole_frames() {
        let p = plan(true);
        let g = segment_filter_graph(&p);
        assert!(
            g.starts_with(&format!(
                "[0:v]{},trim=end_frame=120,setpts=PTS-STARTPTS[v0];",
                clip_chain(&p.clips[0], 4.0, 1, p.threads)
            )),
            "{g}"
        );
        // The still is the video's second: it moves the other way, for exactly its 61 frames.
        assert!(g.contains(&format!("[1:v]{},trim=end_frame=61", motion::ken_burns_chain(61.0 / 30.0, 1))), "{g}");
        assert!(g.contains(":d=61:"), "{g}");
        assert!(g.contains("[v0][v1]concat=n=2:v=1:a=0[vcat];"), "{g}");
        assert!(
            g.ends_with(
                "[vcat]setpts=round((N+900)/30/TB),ass=filename=/s/captions.ass:fontsdir=/fonts,setpts=PTS-STARTPTS[vout]"
            ),
            "captions at the segment's place in the video: {g}"
        );
        assert!(segment_filter_graph(&plan(false)).ends_with("[vcat]null[vout]"));
    }

    #[test]
    fn a_segment_is_video_only_encoded_like_a_single_pass_from_an_idr_and_exactly_its_frames() {
        let p = plan(true);
        let args = strings(segment_args(&p).args);
        let joined = args.join(" ");
        let encoder = strings(ffmpeg::video_encoder_args(&p.encoder, p.threads)).join(" ");
        assert!(joined.contains(&encoder), "{joined}");
        for expected in [
            "-threads 2 -stream_loop -1 -t 4.200 -i /s/clip-3.mp4",
            "-threads 1 -i /s/photo.png",
            "-map [vout] -an",
            "-flags +cgop -force_key_frames expr:eq(n,0) -frames:v 181",
            "-filter_complex_script /s/graph.txt",
        ] {
            assert!(joined.contains(expected), "missing `{expected}` in {joined}");
        }
        assert_eq!(args.last().unwrap(), "/s/seg-2.mp4");
        assert!(!args.iter().any(|a| a == "-c:a"), "{joined}");
    }

    /// 32.02 s of narration and a music bed at a quarter volume.
    fn mix() -> AudioMix {
        AudioMix {
            narration: "/s/narration.wav".into(),
            duration_s: 32.02,
            music: Some(MusicBed { path: "/m/bed.mp3".into(), volume: 0.25 }),
        }
    }

    #[test]
    fn the_join_copies_the_video_and_mixes_the_audio_once() {
        let list = concat_list(&[("/w/seg-0.mp4".into(), 900), ("/w/it's/seg-1.mp4".into(), 61)]);
        assert_eq!(
            list,
            "ffconcat version 1.0\nfile '/w/seg-0.mp4'\nduration 30.000000\nfile '/w/it'\\''s/seg-1.mp4'\nduration 2.033333\n"
        );
        let mix = mix();
        let p = JoinPlan {
            list: "/s/list.txt".into(),
            frames: 961,
            duration_s: 32.02,
            audio: JoinAudio::Mix(mix.clone()),
            filter_script: "/s/audio.txt".into(),
            output: "/s/video.mp4".into(),
        };
        let cmd = join_args(&p);
        let joined = strings(cmd.args).join(" ");
        for expected in [
            "-f concat -safe 0 -i /s/list.txt -threads 1 -i /s/narration.wav",
            "-stream_loop -1 -t 32.020 -i /m/bed.mp3",
            "-map 0:v -map [aout] -c:v copy -c:a aac",
            "-movflags +faststart -t 32.033333 /s/video.mp4",
        ] {
            assert!(joined.contains(expected), "missing `{expected}` in {joined}");
        }
        assert_eq!(cmd.filter_graph, audio_graph(1, 32.02, mix.music.as_ref()));
        assert!(cmd.filter_graph.contains("[1:a]aresample=44100") && cmd.filter_graph.contains("[2:a]aresample"));
    }

    #[test]
    fn audio_encoded_ahead_is_the_joins_mix_and_the_join_then_only_copies() {
        let mix = mix();
        let cmd = audio_args(&mix, 32.033333, Path::new("/s/a.txt"), Path::new("/s/audio.m4a"));
        let joined = strings(cmd.args).join(" ");
        for expected in [
            "-threads 1 -i /s/narration.wav -threads 1 -stream_loop -1 -t 32.020 -i /m/bed.mp3",
            "-filter_complex_script /s/a.txt -map [aout] -vn -c:a aac -aac_coder fast -b:a 128k -ar 44100",
            "-f mp4 -t 32.033333 /s/audio.m4a",
        ] {
            assert!(joined.contains(expected), "missing `{expected}` in {joined}");
        }
        // The same graph the join would run, its inputs counted from 0 here (no video input).
        assert_eq!(cmd.filter_graph, audio_graph(0, 32.02, mix.music.as_ref()));
        assert!(cmd.filter_graph.starts_with("[0:a]aresample") && cmd.filter_graph.contains("[1:a]aresample"));

        let p = JoinPlan {
            list: "/s/list.txt".into(),
            frames: 961,
            duration_s: 32.02,
            audio: JoinAudio::Encoded("/s/audio.m4a".into()),
            filter_script: "/s/unused.txt".into(),
            output: "/s/video.mp4".into(),
        };
        let cmd = join_args(&p);
        let joined = strings(cmd.args).join(" ");
        assert!(
            joined.contains("-i /s/list.txt -threads 1 -i /s/audio.m4a -map 0:v -map 1:a -c copy -movflags +faststart -t 32.033333 /s/video.mp4"),
            "{joined}"
        );
        assert!(!joined.contains("aac") && !joined.contains("filter_complex"), "nothing encoded: {joined}");
        assert!(cmd.filter_graph.is_empty());
        assert_eq!(audio_key("job-1", "abc"), "work/job-1/audio-abc.m4a");
    }

    /// A whole render of `clips` shown for these lengths, cut, captioned, with music.
    fn whole(shown: &[f64], threads: u32, split_min_seconds: u32) -> RenderPlan {
        RenderPlan {
            clips: shown
                .iter()
                .enumerate()
                .map(|(i, d)| ClipSegment {
                    path: format!("/s/clip{i}.mp4").into(),
                    duration_s: *d,
                    still: i == 1,
                    source_fps: None,
                })
                .collect(),
            transition: Transition::Cut,
            overlap_s: motion::TRANSITION_OVERLAP_S,
            narration: "/s/narration.wav".into(),
            duration_s: shown.iter().sum(),
            captions: Some("/s/captions.ass".into()),
            fonts_dir: "/fonts".into(),
            music: Some(MusicBed { path: "/m/bed.mp3".into(), volume: 0.25 }),
            encoder: Encoder { preset: "veryfast".into(), crf: 23, params: "subme=1".into() },
            threads,
            split_min_seconds,
            filter_script: "/s/graph.txt".into(),
            output: "/s/video.mp4".into(),
        }
    }

    #[test]
    fn a_long_cut_video_on_two_threads_is_two_single_threaded_runs_the_audio_beside_and_a_copying_join() {
        let plan = whole(&[2.928; 20], 2, 20);
        let split = split_across_cores(&plan).expect("58.6 s on 2 threads is split");
        let total = (58.56_f64 * 30.0).round() as u64;
        assert_eq!(split.parts.len(), 2);
        let [a, b] = [&split.parts[0], &split.parts[1]];
        assert_eq!((a.clips.len(), b.clips.len()), (10, 10), "halves at the middle clip boundary");
        assert_eq!((a.start_frame, b.start_frame, a.frames + b.frames), (0, a.frames, total), "every frame once");
        assert_eq!(a.clip_frames, [88; 10], "each clip the frames a single pass gives it");
        assert_eq!(b.clip_frames.last(), Some(&(88 - 3)), "the last cut at the narration's end");
        assert_eq!(a.clip_frames.iter().sum::<u64>(), a.frames);
        assert_eq!((a.stills_before, b.stills_before), (0, 1), "the still moves as in one pass");
        assert!(split.parts.iter().all(|p| p.threads == 1 && p.captions == plan.captions && p.encoder == plan.encoder));
        assert_eq!(b.clips[0].path, PathBuf::from("/s/clip10.mp4"));
        assert_eq!(
            (a.output.as_path(), a.filter_script.as_path(), b.output.as_path()),
            (Path::new("/s/video.part-0.mp4"), Path::new("/s/graph.part-0.txt"), Path::new("/s/video.part-1.mp4"))
        );
        // One decoder thread per input, one x264 thread, exactly the part's frames.
        let part = strings(segment_args(b).args).join(" ");
        assert!(part.contains("-threads 1 -stream_loop -1") && !part.contains("-threads 2"), "{part}");
        assert!(part.contains(&format!("-frames:v {}", b.frames)), "{part}");
        // The captions of the second part run on the whole video's clock.
        assert!(segment_filter_graph(b).contains(&format!("setpts=round((N+{})/30/TB)", b.start_frame)));
        // The audio: the single pass's mix, as long as the joined video, beside the parts.
        let audio = audio_args(&split.mix, split.join.video_s(), &split.audio_script, &split.audio);
        let audio_args = strings(audio.args).join(" ");
        assert!(audio_args.ends_with(&format!("-t {:.6} /s/video.audio.m4a", total as f64 / 30.0)), "{audio_args}");
        assert_eq!(audio.filter_graph, audio_graph(0, plan.duration_s, plan.music.as_ref()));
        // The join copies both into the render's output.
        let join = strings(join_args(&split.join).args).join(" ");
        assert!(join.contains("-i /s/video.parts.txt -threads 1 -i /s/video.audio.m4a -map 0:v -map 1:a -c copy"));
        assert!(join.ends_with("/s/video.mp4"), "{join}");
        let list = split.concat_list();
        assert!(list.find("video.part-0.mp4").unwrap() < list.find("video.part-1.mp4").unwrap(), "{list}");
        // Nothing is left beside the video once it is removed.
        let files = split.scratch_files();
        assert_eq!(files.len(), 2 * 2 + 4);
        assert!(!files.contains(&plan.output), "{files:?}");
    }

    #[test]
    fn a_clip_gets_the_frames_ffmpegs_fps_filter_gives_it_in_a_single_pass() {
        // Read off ffmpeg 5.1: `-stream_loop -1 -t T -i clip` through `fps=30`, frames counted.
        let table: [(f64, [u64; 5]); 5] = [
            (24.0, [89, 60, 95, 29, 134]),
            (25.0, [89, 60, 95, 29, 134]),
            (30.0, [88, 60, 95, 29, 134]),
            (60.0, [88, 60, 95, 29, 134]),
            (30000.0 / 1001.0, [88, 60, 95, 29, 134]),
        ];
        for (rate, frames) in table {
            for (read_s, want) in [2.928, 2.0, 3.137, 0.95, 4.4449].into_iter().zip(frames) {
                let clip =
                    ClipSegment { path: "/c.mp4".into(), duration_s: read_s, still: false, source_fps: Some(rate) };
                assert_eq!(single_pass_clip_frames(&clip, read_s), want, "{rate} fps read for {read_s} s");
            }
        }
        let still = ClipSegment { path: "/s.png".into(), duration_s: 2.928, still: true, source_fps: None };
        assert_eq!(single_pass_clip_frames(&still, 2.928), 88, "zoompan's frames");
        // 20 clips of 2.928 s: 88 frames each, the video cut at 58.56 s (1757 frames) in the last one.
        let bounds = single_pass_frame_bounds(&whole(&[2.928; 20], 2, 20)).unwrap();
        assert_eq!((bounds[1], bounds[10], bounds[19], bounds[20]), (88, 880, 1672, 1757));
        // Clips that stop short of the narration leave the video to one run.
        let mut short = whole(&[2.0; 12], 2, 20);
        short.duration_s = 30.0;
        assert_eq!(single_pass_frame_bounds(&short), None);
    }

    #[test]
    fn short_overlapping_single_clip_or_single_thread_renders_stay_one_run() {
        assert!(split_across_cores(&whole(&[2.928; 20], 1, 20)).is_none(), "one thread");
        assert!(split_across_cores(&whole(&[2.928; 20], 2, 0)).is_none(), "0: never");
        assert!(split_across_cores(&whole(&[2.0; 9], 2, 20)).is_none(), "18 s is under 20 s");
        assert!(split_across_cores(&whole(&[40.0], 2, 20)).is_none(), "one clip cannot be split");
        let mut crossfaded = whole(&[2.928; 20], 2, 20);
        crossfaded.transition = Transition::Crossfade;
        assert!(split_across_cores(&crossfaded).is_none(), "a crossfade overlaps the boundaries");
        // Four threads: about four runs.
        let four = split_across_cores(&whole(&[2.928; 20], 4, 20)).unwrap();
        let clips: Vec<usize> = four.parts.iter().map(|p| p.clips.len()).collect();
        assert_eq!(clips, [5, 5, 5, 5]);
    }
}
