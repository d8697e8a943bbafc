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
    self, ClipSegment, Encoder, FPS, MusicBed, RenderCommand, audio_graph, clip_chain, clip_input_args,
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
            "-filter_complex_script /s/a.txt -map [aout] -vn -c:a aac -b:a 128k -ar 44100",
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
}
