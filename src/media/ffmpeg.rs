//! ffmpeg arguments, built by pure functions from typed plans.
//!
//! Nothing here runs a program or touches a file; the render stage writes the
//! filtergraph to the file the arguments name and hands the argument vector to
//! [`super::process`]. No shell is ever involved, so the only escaping that
//! matters is ffmpeg's own filtergraph escaping for paths that appear inside
//! the graph ([`escape_filter_path`]).
//!
//! The graph always goes through a file (`-filter_complex_script`): it grows
//! with every footage segment, and one argument longer than the kernel's
//! 128 KiB limit makes the whole render fail with "Argument list too long".

use std::ffi::OsString;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::motion::{self, Transition};

/// Output frame size and rate: TikTok's portrait format.
pub const WIDTH: u32 = 1080;
pub const HEIGHT: u32 = 1920;
pub const FPS: u32 = 30;
/// Audio sample rate of the output.
pub const SAMPLE_RATE: u32 = 44_100;

/// One footage clip and how long it is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSegment {
    pub path: PathBuf,
    pub duration_s: f64,
    /// A still image: read as its one frame and moved slowly (Ken Burns) for
    /// its stretch, rather than looped like a clip.
    pub still: bool,
    /// The clip's own frame rate, when known (probed by the render stage):
    /// above [`FPS`], frames are dropped before scaling, not after.
    pub source_fps: Option<f64>,
}

/// Music under the voice.
#[derive(Debug, Clone, PartialEq)]
pub struct MusicBed {
    pub path: PathBuf,
    pub volume: f32,
}

/// x264 knobs taken from settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    pub preset: String,
    pub crf: u8,
    /// x264 options over the preset (`media.x264_params`, `key=value:…`;
    /// empty: the preset's own). The default, `subme=1`, refines motion to
    /// sub-pixels once instead of `veryfast`'s twice: about 30 % less x264
    /// CPU for the same quality at the bitrate it lands on.
    pub params: String,
}

impl Encoder {
    pub fn from_settings(media: &crate::settings::MediaSettings) -> Self {
        Self { preset: media.preset.clone(), crf: media.crf, params: media.x264_params.clone() }
    }
}

/// Everything one render needs, in the order it is composed.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderPlan {
    pub clips: Vec<ClipSegment>,
    /// How consecutive clips are joined (from the job's resolved style).
    pub transition: Transition,
    /// How long a transition other than a cut overlaps two clips; each clip
    /// but the last is read that much longer, so the video keeps its length.
    pub overlap_s: f64,
    pub narration: PathBuf,
    pub duration_s: f64,
    /// The `.ass` captions file, when captions are on.
    pub captions: Option<PathBuf>,
    pub fonts_dir: PathBuf,
    pub music: Option<MusicBed>,
    pub encoder: Encoder,
    /// Threads for x264 and for the filtergraph (`media.ffmpeg_threads`).
    pub threads: u32,
    /// From this length (`media.split_min_seconds`; 0: never) a render with
    /// two or more threads runs as that many single-threaded ffmpeg runs
    /// side by side ([`super::segments::split_across_cores`]).
    pub split_min_seconds: u32,
    /// Where the caller writes [`RenderCommand::filter_graph`] before running.
    pub filter_script: PathBuf,
    pub output: PathBuf,
}

/// One render's ffmpeg run: its arguments, and the filtergraph text they
/// expect at [`RenderPlan::filter_script`].
#[derive(Debug, Clone, PartialEq)]
pub struct RenderCommand {
    pub args: Vec<OsString>,
    pub filter_graph: String,
}

/// Escapes a path for use as a filter option value inside a filtergraph:
/// first the option level (`\ ' :`), then the graph level (`\ ' [ ] , ;`).
pub fn escape_filter_path(path: &Path) -> String {
    let raw = path.to_string_lossy();
    let mut level1 = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '\\' | '\'' | ':') {
            level1.push('\\');
        }
        level1.push(c);
    }
    let mut level2 = String::with_capacity(level1.len());
    for c in level1.chars() {
        if matches!(c, '\\' | '\'' | '[' | ']' | ',' | ';') {
            level2.push('\\');
        }
        level2.push(c);
    }
    level2
}

/// Seconds with millisecond precision, the way ffmpeg reads them.
fn secs(s: f64) -> String {
    format!("{:.3}", s.max(0.0))
}

/// How long each input of `plan` is read, in clip order: its slot, plus the
/// overlap it loses to the next clip when the transition is not a cut.
pub fn clip_input_durations(plan: &RenderPlan) -> Vec<f64> {
    let shown: Vec<f64> = plan.clips.iter().map(|c| c.duration_s).collect();
    motion::input_durations(&shown, plan.transition, plan.overlap_s)
}

/// The filter chain (no labels) that fills the 1080x1920 frame with one clip
/// at the output rate: the same picture as the usual
/// `scale=1080:1920:force_original_aspect_ratio=increase,crop=1080:1920`, for
/// less work.
///
/// - **Crop, then scale.** The centred 9:16 window (or, for a source taller
///   than 9:16, the centred full-width one) is cut out first, so the scaler
///   makes 1080x1920 pixels per frame instead of, for a 1920x1080 source,
///   3413x1920 of which two thirds are thrown away. The window's size is the
///   even number nearest the exact one, so its scale factor matches the usual
///   command's within 0.1 % (SSIM ≥ 0.99 against it, `tests/api/render_speed.rs`).
///   A 1080x1920 source goes through both untouched.
/// - **Drop frames before scaling.** A source faster than 30 fps (`source_fps`)
///   has its surplus frames dropped before they are scaled; a slower one is
///   scaled first, so the frames `fps` repeats are scaled once.
/// - **Slice threads.** The scaler cuts each frame into `threads` slices.
pub fn fill_chain(source_fps: Option<f64>, threads: u32) -> String {
    let rate_first = source_fps.is_some_and(|r| r > f64::from(FPS) + 0.01);
    let fps = format!("fps={FPS},");
    format!(
        "{before}crop=w='2*round(min(iw,ih*{WIDTH}/{HEIGHT})/2)':h='2*round(min(ih,iw*{HEIGHT}/{WIDTH})/2)',\
         scale={WIDTH}:{HEIGHT}:threads={threads},setsar=1,{after}format=yuv420p,setpts=PTS-STARTPTS",
        before = if rate_first { fps.as_str() } else { "" },
        after = if rate_first { "" } else { fps.as_str() },
        threads = threads.max(1),
    )
}

/// The filter chain (no labels) that makes clip input `clip`, read for
/// `input_s`, a stream at the output size, rate and pixel format starting at
/// 0: a clip scaled and cropped to fill the frame, a still moved by
/// [`motion::ken_burns_chain`] (`still_index` counts the stills before it,
/// so neighbours move differently). One chain for the single pass and for
/// each segment of a segmented render, so both draw the same picture.
pub fn clip_chain(clip: &ClipSegment, input_s: f64, still_index: usize, threads: u32) -> String {
    if clip.still { motion::ken_burns_chain(input_s, still_index) } else { fill_chain(clip.source_fps, threads) }
}

/// How many threads decode one footage input of a render given `threads`:
/// two when it has two or more. ffmpeg 5.1 decodes on its main thread, which
/// also runs the filtergraph and the audio; a second decoder thread takes
/// decoding off that path while x264 works on the other cores (about 8 %
/// off a 1080p landscape render on 2 cores, and about 10 MB per input). Never
/// more: a render has up to `limits.max_footage_segments` inputs, each with
/// its own pool.
pub fn decoder_threads(threads: u32) -> u32 {
    threads.clamp(1, 2)
}

/// The input options and path of clip input `clip`, read for `read_s`,
/// in a render given `threads` ([`decoder_threads`]).
pub fn clip_input_args(clip: &ClipSegment, read_s: f64, threads: u32) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    if clip.still {
        // One frame, decoded and scaled once: zoompan makes every frame of
        // the stretch from it. Looping the image would decode it 30 times a second.
        args.extend(["-threads", "1", "-i"].map(OsString::from));
    } else {
        // Looping makes a clip shorter than its slot fill it; -t cuts it to the slot
        // (and the overlap it shares with the next clip).
        args.push("-threads".into());
        args.push(decoder_threads(threads).to_string().into());
        args.extend(["-stream_loop", "-1", "-t"].map(OsString::from));
        args.push(secs(read_s).into());
        args.push("-i".into());
    }
    args.push(clip.path.clone().into());
    args
}

/// The audio of a render, from input `voice_in` (the narration; the music,
/// if any, is the input after it) to `[aout]`: the voice padded to
/// `duration_s`, the music looped under it and ducked while it speaks. The
/// single pass and the join of a segmented render mix it the same way.
pub fn audio_graph(voice_in: usize, duration_s: f64, music: Option<&MusicBed>) -> String {
    let mut g = String::new();
    let voice_fmt = format!(
        "aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,apad=whole_dur={}",
        secs(duration_s)
    );
    match music {
        None => {
            let _ = write!(g, "[{voice_in}:a]{voice_fmt}[aout]");
        }
        Some(music) => {
            let music_in = voice_in + 1;
            let _ = write!(
                g,
                "[{voice_in}:a]{voice_fmt},asplit=2[voice][key];\
                 [{music_in}:a]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,volume={:.3}[bed];\
                 [bed][key]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=400[ducked];\
                 [voice][ducked]amix=inputs=2:duration=first:normalize=0[aout]",
                music.volume
            );
        }
    }
    g
}

/// How every render's ffmpeg run starts: quiet, progress on stdout for
/// [`crate::media::run_render`], and, when the run filters video, its
/// filtergraph threads.
pub fn run_header(filter_threads: Option<u32>) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        ["-hide_banner", "-nostdin", "-y", "-loglevel", "warning", "-progress", "pipe:1", "-nostats"]
            .map(OsString::from)
            .to_vec();
    if let Some(threads) = filter_threads {
        let threads = threads.max(1).to_string();
        args.extend(["-filter_threads".into(), threads.clone().into()]);
        args.extend(["-filter_complex_threads".into(), threads.into()]);
    }
    args
}

/// The narration input and, if any, the music looped to `duration_s`, in
/// the order [`audio_graph`] reads them.
pub fn audio_input_args(narration: &Path, duration_s: f64, music: Option<&MusicBed>) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-threads", "1", "-i"].map(OsString::from).to_vec();
    args.push(narration.into());
    if let Some(music) = music {
        args.extend(["-threads", "1", "-stream_loop", "-1", "-t"].map(OsString::from));
        args.push(secs(duration_s).into());
        args.push("-i".into());
        args.push(music.path.clone().into());
    }
    args
}

/// The audio encoding every render shares, the join of a segmented one too.
///
/// ffmpeg's own AAC encoder with its `fast` coder, not the default
/// `twoloop`: the two coders make the same stream format, and at 128 kbit/s
/// the encoder's maintainer found `fast` the better-sounding of the two as
/// well as "quite a lot" cheaper (FFmpeg commit fcb681ac, which made it the
/// default for a while; 5.1's default is `twoloop` again). The encoder runs
/// on ffmpeg's main thread, which in a single pass is also the decoders',
/// the filtergraph's and the muxer's, so its time is the render's: 60 s of
/// narration and music took 4.5 s of CPU with `twoloop` and 1.6 s with
/// `fast` (README, "Benchmark").
pub const AUDIO_ENCODER: [&str; 8] = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "128k", "-ar", "44100"];

/// x264 with the settings every render shares: a segmented render's
/// segments must be encoded exactly like a single pass for their streams
/// to be joined without re-encoding.
pub fn video_encoder_args(encoder: &Encoder, threads: u32) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-c:v", "libx264", "-threads"].map(OsString::from).to_vec();
    args.push(threads.max(1).to_string().into());
    args.push("-preset".into());
    args.push(encoder.preset.clone().into());
    args.push("-crf".into());
    args.push(encoder.crf.to_string().into());
    if !encoder.params.is_empty() {
        args.push("-x264-params".into());
        args.push(encoder.params.clone().into());
    }
    args.extend(["-pix_fmt", "yuv420p", "-r", "30"].map(OsString::from));
    args
}

/// The clock captions are drawn on: frame `n` of the video at exactly
/// `n / 30` s, rounded to the filtergraph's tick. `ass` looks a cue up by a
/// truncated millisecond, so a frame one tick early still shows a cue that
/// ends on it; the single pass and each segment of a segmented render
/// (whose first frame is `first_frame`) set the same clock, so a cue ending
/// on a join's first frame is drawn the same way by both.
pub fn caption_clock(first_frame: u64) -> String {
    format!("setpts=round((N+{first_frame})/{FPS}/TB)")
}

/// The filtergraph for `plan`: each clip scaled and cropped to fill the
/// frame (a still moved by [`motion::ken_burns_chain`] instead), clips joined
/// by the plan's transition, captions burnt in, narration (with ducked music).
pub fn render_filter_graph(plan: &RenderPlan) -> String {
    let n = plan.clips.len();
    let shown: Vec<f64> = plan.clips.iter().map(|c| c.duration_s).collect();
    let inputs = clip_input_durations(plan);
    let overlap = motion::effective_overlap(&shown, plan.transition, plan.overlap_s);
    let mut g = String::new();
    let mut stills = 0;
    for (i, clip) in plan.clips.iter().enumerate() {
        let _ = write!(g, "[{i}:v]{}[v{i}];", clip_chain(clip, inputs[i], stills, plan.threads));
        stills += usize::from(clip.still);
    }
    g.push_str(&motion::join_graph(&inputs, plan.transition, overlap, "vcat"));
    match &plan.captions {
        Some(ass) => {
            let _ = write!(
                g,
                "[vcat]{},ass=filename={}:fontsdir={}[vout];",
                caption_clock(0),
                escape_filter_path(ass),
                escape_filter_path(&plan.fonts_dir)
            );
        }
        None => g.push_str("[vcat]null[vout];"),
    }
    g.push_str(&audio_graph(n, plan.duration_s, plan.music.as_ref()));
    g
}

/// The full ffmpeg run for `plan`, progress going to stdout. The graph is
/// read from [`RenderPlan::filter_script`], which the caller writes first.
///
/// Threads are bounded: every footage input is decoded on at most two
/// ([`decoder_threads`]; a render has up to `limits.max_footage_segments`
/// inputs, and ffmpeg would otherwise start a pool of the machine's size per
/// input), stills and audio on one, the filtergraph and x264 use `plan.threads`.
pub fn render_args(plan: &RenderPlan) -> RenderCommand {
    let mut args = run_header(Some(plan.threads));
    for (clip, read_s) in plan.clips.iter().zip(clip_input_durations(plan)) {
        args.extend(clip_input_args(clip, read_s, plan.threads));
    }
    args.extend(audio_input_args(&plan.narration, plan.duration_s, plan.music.as_ref()));
    args.push("-filter_complex_script".into());
    args.push(plan.filter_script.clone().into());
    args.extend(["-map", "[vout]", "-map", "[aout]"].map(OsString::from));
    args.extend(video_encoder_args(&plan.encoder, plan.threads));
    args.extend(AUDIO_ENCODER.map(OsString::from));
    args.extend(["-movflags", "+faststart", "-t"].map(OsString::from));
    args.push(secs(plan.duration_s).into());
    args.push(plan.output.clone().into());
    RenderCommand { args, filter_graph: render_filter_graph(plan) }
}

/// Patterns for generated footage: ffmpeg's own test sources, so a machine with
/// no clip library still renders moving pictures.
pub const GENERATED_PATTERNS: &[&str] = &["testsrc2", "mandelbrot", "life", "gradients"];

/// Arguments that write a generated `duration_s` clip of `pattern` to `output`.
pub fn generated_clip_args(pattern: &str, duration_s: f64, output: &Path) -> Vec<OsString> {
    let size = "720x1280";
    let source = match pattern {
        "mandelbrot" => format!("mandelbrot=s={size}:r={FPS}"),
        "life" => format!("life=s={size}:r={FPS}:mold=10:ratio=0.1:death_color=#202060:life_color=#40c0ff"),
        "gradients" => format!("gradients=s={size}:r={FPS}:speed=0.03:c0=#ff6040:c1=#4060ff"),
        _ => format!("testsrc2=s={size}:r={FPS}"),
    };
    let mut args: Vec<OsString> =
        ["-hide_banner", "-nostdin", "-y", "-loglevel", "warning", "-f", "lavfi", "-i"].map(OsString::from).to_vec();
    args.push(source.into());
    args.push("-t".into());
    args.push(secs(duration_s).into());
    args.extend(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-an"].map(OsString::from));
    args.push(output.into());
    args
}

/// Arguments that draw the captions of `ass` over a plain 1080x1920 frame at
/// `at_s` seconds and write one PNG, `width` pixels wide, to `output`: a
/// caption style's still preview, with the same `ass` filter the render uses.
pub fn caption_preview_args(ass: &Path, fonts_dir: &Path, at_s: f64, width: u32, output: &Path) -> Vec<OsString> {
    let height = width * HEIGHT / WIDTH;
    let mut args: Vec<OsString> =
        ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i"].map(OsString::from).to_vec();
    args.push(format!("color=c=0x304060:s={WIDTH}x{HEIGHT}:r={FPS}:d=1").into());
    args.push("-vf".into());
    args.push(
        format!(
            "ass=filename={}:fontsdir={},scale={width}:{height}",
            escape_filter_path(ass),
            escape_filter_path(fonts_dir)
        )
        .into(),
    );
    // Output seeking: frames before `at_s` are drawn and dropped, so the cue shown then is on the picture.
    args.push("-ss".into());
    args.push(secs(at_s).into());
    args.extend(["-frames:v", "1", "-update", "1"].map(OsString::from));
    args.push(output.into());
    args
}

/// Arguments that make one photo of a photo post: the frame of `clip` at
/// `offset_s` (a still is read as it is), filled and cropped to 1080x1920,
/// with the captions of `ass` (the sentence, shown from 0 s) drawn on, as a
/// JPEG at `output`.
pub fn photo_args(
    clip: &Path,
    offset_s: f64,
    still: bool,
    ass: Option<(&Path, &Path)>,
    output: &Path,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"].map(OsString::from).to_vec();
    if !still {
        // Input seeking: only the one frame is decoded.
        args.push("-ss".into());
        args.push(secs(offset_s).into());
    }
    args.push("-i".into());
    args.push(clip.into());
    let mut vf = format!("scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase,crop={WIDTH}:{HEIGHT},setsar=1");
    if let Some((ass, fonts_dir)) = ass {
        vf.push_str(&format!(",ass=filename={}:fontsdir={}", escape_filter_path(ass), escape_filter_path(fonts_dir)));
    }
    args.push("-vf".into());
    args.push(vf.into());
    args.extend(["-frames:v", "1", "-update", "1", "-q:v", "3"].map(OsString::from));
    args.push(output.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_is_one_filled_frame_with_its_sentence_drawn_on() {
        let args = photo_args(
            Path::new("/s/clip-0.mp4"),
            2.5,
            false,
            Some((Path::new("/s/p1.ass"), Path::new("/fonts"))),
            Path::new("/s/1.jpg"),
        );
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let ss = args.iter().position(|a| a == "-ss").unwrap();
        assert_eq!((args[ss + 1].as_str(), args[ss + 2].as_str()), ("2.500", "-i"), "seek before the input");
        let vf = &args[args.iter().position(|a| a == "-vf").unwrap() + 1];
        assert_eq!(
            vf,
            "scale=1080:1920:force_original_aspect_ratio=increase,crop=1080:1920,setsar=1,\
             ass=filename=/s/p1.ass:fontsdir=/fonts"
        );
        assert!(args.windows(2).any(|w| w == ["-frames:v", "1"]));
        assert_eq!(args.last().unwrap(), "/s/1.jpg");
        let still = photo_args(Path::new("/s/img.png"), 3.0, true, None, Path::new("/s/2.jpg"));
        assert!(!still.iter().any(|a| a == "-ss"), "a still is not seeked");
        assert!(!still.iter().any(|a| a.to_string_lossy().contains("ass=")), "no captions asked, none drawn");
    }

    #[test]
    fn a_caption_preview_draws_the_renders_captions_on_one_small_frame() {
        let args = caption_preview_args(Path::new("/s/c.ass"), Path::new("/fonts"), 0.5, 270, Path::new("/s/p.png"));
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let vf = &args[args.iter().position(|a| a == "-vf").unwrap() + 1];
        assert!(vf.starts_with("ass=filename=/s/c.ass:fontsdir=/fonts,"), "{vf}");
        assert!(vf.ends_with("scale=270:480"), "{vf}");
        assert_eq!(args.last().unwrap(), "/s/p.png");
        assert!(args.windows(2).any(|w| w == ["-frames:v", "1"]));
    }

    fn plan(clips: usize, captions: bool, music: bool) -> RenderPlan {
        RenderPlan {
            clips: (0..clips)
                .map(|i| ClipSegment {
                    path: format!("/s/clip{i}.mp4").into(),
                    duration_s: 2.5,
                    still: false,
                    source_fps: None,
                })
                .collect(),
            transition: Transition::Cut,
            overlap_s: motion::TRANSITION_OVERLAP_S,
            narration: "/s/narration.wav".into(),
            duration_s: 2.5 * clips as f64,
            captions: captions.then(|| "/s/captions.ass".into()),
            fonts_dir: "/fonts".into(),
            music: music.then(|| MusicBed { path: "/m/bed.mp3".into(), volume: 0.25 }),
            encoder: Encoder { preset: "veryfast".into(), crf: 23, params: "subme=1".into() },
            threads: 2,
            split_min_seconds: 20,
            filter_script: "/s/graph.txt".into(),
            output: "/s/out.mp4".into(),
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn every_clip_is_an_input_cut_to_its_slot_then_the_narration() {
        let args = strings(render_args(&plan(2, true, false)).args);
        let inputs: Vec<_> = args.windows(2).filter(|w| w[0] == "-i").map(|w| w[1].clone()).collect();
        assert_eq!(inputs, ["/s/clip0.mp4", "/s/clip1.mp4", "/s/narration.wav"]);
        let first = args.iter().position(|a| a == "-stream_loop").unwrap();
        assert_eq!(
            &args[first - 2..first + 6],
            ["-threads", "2", "-stream_loop", "-1", "-t", "2.500", "-i", "/s/clip0.mp4"]
        );
    }

    #[test]
    fn the_graph_goes_through_a_file_and_the_arguments_stay_short_however_many_clips() {
        let p = plan(1500, true, true);
        let cmd = render_args(&p);
        let args = strings(cmd.args.clone());
        assert!(!args.iter().any(|a| a == "-filter_complex"), "no graph on the command line");
        let at = args.iter().position(|a| a == "-filter_complex_script").unwrap();
        assert_eq!(args[at + 1], "/s/graph.txt");
        assert_eq!(cmd.filter_graph, render_filter_graph(&p), "the caller writes this text to the file");
        assert!(cmd.filter_graph.len() > 128 * 1024, "1,500 clips make a graph over the argument limit");
        let longest = args.iter().map(String::len).max().unwrap();
        assert!(longest < 100, "longest argument {longest} bytes");
        assert!(at > args.iter().rposition(|a| a == "-i").unwrap(), "-filter_complex_script comes after the inputs");
    }

    #[test]
    fn a_footage_input_is_decoded_on_two_threads_at_most() {
        assert_eq!([0, 1, 2, 3, 64].map(decoder_threads), [1, 1, 2, 2, 2]);
    }

    #[test]
    fn threads_are_bounded_for_every_decoder_the_filters_and_the_encoder() {
        let mut p = plan(3, false, true);
        p.threads = 3;
        let args = strings(render_args(&p).args);
        let joined = args.join(" ");
        assert!(joined.contains("-filter_threads 3 -filter_complex_threads 3"), "{joined}");
        assert!(joined.contains("-c:v libx264 -threads 3 -preset veryfast"), "{joined}");
        // 3 clips, the narration and the music: each clip's decoder gets two
        // threads, the audio's one.
        let inputs = args.iter().filter(|a| *a == "-i").count();
        assert_eq!(inputs, 5);
        for (i, w) in args.windows(2).enumerate().filter(|(_, w)| w[0] == "-i") {
            let before = &args[..i];
            let opts_start = before.iter().rposition(|a| a == "-i").map_or(0, |j| j + 2);
            let want = if w[1].contains("clip") { "2" } else { "1" };
            assert!(
                before[opts_start..].windows(2).any(|o| o == ["-threads", want]),
                "input {} has no -threads {want}: {joined}",
                w[1]
            );
        }
        assert_eq!(args.iter().filter(|a| *a == "-threads").count(), inputs + 1, "{joined}");
    }

    #[test]
    fn output_is_h264_yuv420p_30fps_aac_faststart_cut_to_the_narration() {
        let args = strings(render_args(&plan(1, false, false)).args);
        let joined = args.join(" ");
        for expected in [
            "-map [vout] -map [aout]",
            "-c:v libx264 -threads 2 -preset veryfast -crf 23 -x264-params subme=1 -pix_fmt yuv420p -r 30",
            "-c:a aac -aac_coder fast -b:a 128k -ar 44100",
            "-movflags +faststart",
            "-t 2.500 /s/out.mp4",
            "-progress pipe:1 -nostats",
        ] {
            assert!(joined.contains(expected), "missing `{expected}` in {joined}");
        }
        assert_eq!(args.last().unwrap(), "/s/out.mp4");
    }

    #[test]
    fn the_graph_fills_the_frame_concatenates_and_burns_captions() {
        let g = render_filter_graph(&plan(3, true, false));
        assert_eq!(g.matches(&format!("{}[v", fill_chain(None, 2))).count(), 3, "{g}");
        assert!(g.contains("[v0][v1][v2]concat=n=3:v=1:a=0[vcat]"), "{g}");
        assert!(
            g.contains("[vcat]setpts=round((N+0)/30/TB),ass=filename=/s/captions.ass:fontsdir=/fonts[vout]"),
            "{g}"
        );
        assert!(g.contains("[3:a]aresample=44100"), "narration is the input after the clips: {g}");
        assert!(g.ends_with("[aout]"), "{g}");
    }

    #[test]
    fn a_clip_is_cropped_to_9_16_before_it_is_scaled_and_a_fast_one_loses_frames_first() {
        let slow = fill_chain(Some(25.0), 3);
        let crop = slow.find("crop=").unwrap();
        let scale = slow.find("scale=1080:1920:threads=3").unwrap();
        assert!(crop < scale, "the crop comes first: {slow}");
        assert!(slow.find("fps=30").unwrap() > scale, "25 fps: scaled once, then repeated: {slow}");
        assert!(!slow.contains("force_original_aspect_ratio"), "{slow}");
        let fast = fill_chain(Some(59.94), 1);
        assert!(fast.starts_with("fps=30,crop="), "60 fps: half the frames are never scaled: {fast}");
        assert_eq!(fast.matches("fps=30").count(), 1, "{fast}");
        assert_eq!(fill_chain(Some(30.0), 2), fill_chain(None, 2), "30 fps and unknown rates scale first");
    }

    #[test]
    fn without_captions_the_video_passes_through() {
        let g = render_filter_graph(&plan(1, false, false));
        assert!(g.contains("[vcat]null[vout]") && !g.contains("ass="), "{g}");
    }

    #[test]
    fn music_is_looped_and_ducked_under_the_voice() {
        let p = plan(2, false, true);
        let args = strings(render_args(&p).args);
        let music_at = args.iter().position(|a| a == "/m/bed.mp3").unwrap();
        assert_eq!(&args[music_at - 5..music_at], ["-stream_loop", "-1", "-t", "5.000", "-i"]);
        let g = render_filter_graph(&p);
        assert!(g.contains("[3:a]aresample=44100"), "{g}");
        assert!(g.contains("volume=0.250[bed]"), "{g}");
        assert!(g.contains("[bed][key]sidechaincompress="), "the voice keys the compressor on the music: {g}");
        assert!(g.contains("[voice][ducked]amix=inputs=2:duration=first"), "{g}");
    }

    #[test]
    fn a_cut_keeps_the_graph_of_before_transitions() {
        let g = render_filter_graph(&plan(2, false, false));
        let clip = |i: usize| {
            format!(
                "[{i}:v]crop=w='2*round(min(iw,ih*1080/1920)/2)':h='2*round(min(ih,iw*1920/1080)/2)',\
                 scale=1080:1920:threads=2,setsar=1,fps=30,format=yuv420p,setpts=PTS-STARTPTS[v{i}];"
            )
        };
        let want = format!(
            "{}{}[v0][v1]concat=n=2:v=1:a=0[vcat];[vcat]null[vout];\
             [2:a]aresample=44100,aformat=sample_fmts=fltp:channel_layouts=stereo,apad=whole_dur=5.000[aout]",
            clip(0),
            clip(1)
        );
        assert_eq!(g, want);
        let args = strings(render_args(&plan(2, false, false)).args).join(" ");
        assert!(
            args.contains("-t 2.500 -i /s/clip0.mp4 -threads 2 -stream_loop -1 -t 2.500 -i /s/clip1.mp4"),
            "{args}"
        );
    }

    #[test]
    fn a_still_is_read_as_one_frame_and_moved_for_its_whole_stretch() {
        let mut p = plan(3, false, false);
        p.clips[1] = ClipSegment { path: "/s/photo.png".into(), duration_s: 2.5, still: true, source_fps: None };
        let args = strings(render_args(&p).args);
        let at = args.iter().position(|a| a == "/s/photo.png").unwrap();
        assert_eq!(&args[at - 4..=at], ["/s/clip0.mp4", "-threads", "1", "-i", "/s/photo.png"], "no loop, no -t");
        let g = render_filter_graph(&p);
        assert!(
            g.contains(&format!("[1:v]{}[v1];", motion::ken_burns_chain(2.5, 0))),
            "the first still zooms for 2.5 s: {g}"
        );
        assert!(g.contains(":d=75:s=1080x1920:fps=30"), "75 frames from the one frame: {g}");
        assert_eq!(g.matches("zoompan=").count(), 1, "clips keep their own chain: {g}");
        assert!(g.contains("[v0][v1][v2]concat=n=3:v=1:a=0[vcat];"), "{g}");
    }

    #[test]
    fn consecutive_stills_move_differently() {
        let mut p = plan(2, false, false);
        for c in &mut p.clips {
            c.still = true;
        }
        let g = render_filter_graph(&p);
        assert!(g.contains(&format!("[0:v]{}[v0];", motion::ken_burns_chain(2.5, 0))), "{g}");
        assert!(g.contains(&format!("[1:v]{}[v1];", motion::ken_burns_chain(2.5, 1))), "{g}");
    }

    #[test]
    fn a_crossfade_reads_each_clip_but_the_last_longer_and_keeps_the_narrations_length() {
        let mut p = plan(3, true, false);
        p.transition = Transition::Crossfade;
        p.clips[2].still = true;
        let args = strings(render_args(&p).args);
        let reads: Vec<_> = args.windows(2).filter(|w| w[0] == "-t").map(|w| w[1].clone()).collect();
        // Clips 0 and 1 lose 0.4 s each to the next; the still (last) is one frame; then the output.
        assert_eq!(reads, ["2.900", "2.900", "7.500"]);
        let g = render_filter_graph(&p);
        assert!(g.contains(&format!("[2:v]{}[v2];", motion::ken_burns_chain(2.5, 0))), "{g}");
        assert!(
            g.contains(
                "[v0][v1]xfade=transition=fade:duration=0.400:offset=2.500[x1];\
                 [x1][v2]xfade=transition=fade:duration=0.400:offset=5.000[vcat];\
                 [vcat]setpts=round((N+0)/30/TB),ass=filename=/s/captions.ass"
            ),
            "each incoming clip starts where its slot does; the captions read the joined video: {g}"
        );
        assert!(!g.contains("concat="), "{g}");
    }

    #[test]
    fn slide_and_zoom_are_xfades_too_and_a_single_clip_has_nothing_to_join() {
        let mut p = plan(2, false, false);
        p.transition = Transition::Slide;
        assert!(render_filter_graph(&p).contains("xfade=transition=slideleft:duration=0.400:offset=2.500[vcat]"));
        p.transition = Transition::Zoom;
        assert!(render_filter_graph(&p).contains("xfade=transition=zoomin:duration=0.400:offset=2.500[vcat]"));
        let mut one = plan(1, false, false);
        one.transition = Transition::Crossfade;
        assert!(render_filter_graph(&one).contains("[v0]concat=n=1:v=1:a=0[vcat];"));
        assert!(strings(render_args(&one).args).join(" ").contains("-t 2.500 -i /s/clip0.mp4"));
    }

    #[test]
    fn paths_with_filter_syntax_are_escaped_twice() {
        assert_eq!(escape_filter_path(Path::new("/tmp/plain/c.ass")), "/tmp/plain/c.ass");
        assert_eq!(escape_filter_path(Path::new("/a:b")), r"/a\\:b");
        assert_eq!(escape_filter_path(Path::new("/it's")), r"/it\\\'s");
        assert_eq!(escape_filter_path(Path::new("/x[1],y;z")), r"/x\[1\]\,y\;z");
    }

    #[test]
    fn generated_clips_use_a_lavfi_source_of_the_asked_length() {
        let args = strings(generated_clip_args("mandelbrot", 4.0, Path::new("/c/m.mp4")));
        let joined = args.join(" ");
        assert!(joined.contains("-f lavfi -i mandelbrot=s=720x1280:r=30 -t 4.000"), "{joined}");
        assert_eq!(args.last().unwrap(), "/c/m.mp4");
    }
}
