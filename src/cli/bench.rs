//! `clipforge bench render`: our render of a job against hand-written ffmpeg
//! commands doing the same composition on the same inputs, timed in the same
//! run, with their ratios: the usual command (`scale=…:force_original_aspect_ratio
//! =increase,crop=…`, the "naive" one) and the same with the crop written
//! before the scale. Targets on 1920x1080 footage: ≤ 0.85× the naive command,
//! ≤ 1.0× the crop-first one, SSIM ≥ 0.99 against the naive output and bitrate
//! within ±10 % of it; on 1080x1920 footage ≤ 1.0×. `--transition` and
//! `--stills` add motion: clips joined by `xfade`, some slots shown as stills
//! with a Ken Burns zoom or pan.
//!
//! On a shared 2-core VM one command's time moves by up to a fifth between
//! runs, and the drift can last an hour. So the three commands run in rounds
//! (`--runs`, default 3), each round starting with a different one, and every
//! ratio is taken within a round; the summary gives the medians, and the CPU
//! time each command used beside its wall time.
//!
//! It also measures prepared footage (issue 17, part 2): every clip
//! normalised once to 1080x1920, 30 fps, yuv420p, then the same render from
//! those — the normalising time printed beside what it saves a render.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::exit;
use crate::domain::{Transition, Voice};
use crate::media::captions::ass_document;
use crate::media::ffmpeg::{ClipSegment, Encoder, MusicBed, RenderPlan};
use crate::media::process::{self, Invocation};
use crate::media::{Toolbox, ffprobe};
use crate::providers::CostMeter;
use crate::providers::footage::{FootageRequest, FootageSource, LocalFootage};
use crate::providers::voice::{EspeakNarrator, Narrator, SpokenNarration};
use crate::settings::Settings;

pub use super::bench_load::{batch, cost};

const SENTENCE: &str = "Every clip in this benchmark is cut, scaled and captioned in a single pass of ffmpeg.";

pub async fn render(
    settings: Settings,
    seconds: u32,
    transition: Transition,
    stills: usize,
    source: SourceShape,
    with_prepared: bool,
    runs: u32,
) -> ExitCode {
    exit_code(run(settings, seconds, transition, stills, source, with_prepared, runs).await)
}

/// The footage a render benchmark composes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceShape {
    /// 1920x1080 H.264 at 30 fps, the shape of most stock footage.
    Landscape,
    /// 1080x1920 H.264 at 30 fps: already the output's shape.
    Portrait,
    /// The embedded mode's generated 720x1280 test clips.
    Generated,
}

impl SourceShape {
    fn size(self) -> Option<(u32, u32)> {
        match self {
            Self::Landscape => Some((1920, 1080)),
            Self::Portrait => Some((1080, 1920)),
            Self::Generated => None,
        }
    }
}

/// Patterns for camera-like footage: moving pictures with the detail of a
/// real shot (a softened fractal zoom, a test card, drifting colour fields).
/// A noise source would make any two scalings differ (SSIM 0.88), which says
/// nothing about a real clip.
const CAMERA_PATTERNS: [&str; 3] = ["mandelbrot", "testsrc2", "gradients"];

/// Arguments that write `seconds` of `pattern` at `width`x`height`, 30 fps,
/// encoded the way a camera or a stock site would hand it over (H.264, about
/// 10–20 Mbit/s at 1080p).
fn camera_clip_args(pattern: &str, width: u32, height: u32, seconds: u32, out: &std::path::Path) -> Vec<OsString> {
    let size = format!("s={width}x{height}:r=30");
    let source = match pattern {
        "mandelbrot" => format!("mandelbrot={size},gblur=sigma=1.2"),
        "gradients" => format!("gradients={size}:speed=0.02:n=5"),
        _ => format!("testsrc2={size}"),
    };
    ["-hide_banner", "-y", "-loglevel", "error", "-f", "lavfi", "-i"]
        .map(OsString::from)
        .into_iter()
        .chain([source.into(), "-t".into(), seconds.to_string().into()])
        .chain(["-c:v", "libx264", "-preset", "fast", "-crf", "20", "-pix_fmt", "yuv420p", "-an"].map(OsString::from))
        .chain([out.as_os_str().to_owned()])
        .collect()
}

/// Which of `n` footage slots show a still when `stills` of them do: spread
/// evenly, never the same slot twice.
fn still_slots(n: usize, stills: usize) -> Vec<usize> {
    let stills = stills.min(n);
    (0..stills).map(|k| (2 * k + 1) * n / (2 * stills)).collect()
}

/// The footage slots the embedded mode plans for `spoken` (generated clips, not yet made).
async fn offline_plan(
    tools: &Toolbox,
    spoken: &SpokenNarration,
    max_segments: usize,
    meter: &CostMeter,
) -> Result<(LocalFootage, Vec<crate::providers::footage::PlannedClip>), Box<dyn std::error::Error>> {
    let source = LocalFootage::new("", 4.0, tools.ffmpeg.clone());
    let request = FootageRequest {
        job_queries: &[],
        sentence_terms: &[],
        sentences: &spoken.sentences,
        duration_s: spoken.duration_s,
        max_segments,
    };
    let planned = source.plan(&request, meter).await?;
    Ok((source, planned))
}

/// The generated clips the embedded mode would use for `spoken`, fetched into `dir`.
pub(super) async fn offline_footage(
    tools: &Toolbox,
    spoken: &SpokenNarration,
    max_segments: usize,
    dir: &std::path::Path,
    meter: &CostMeter,
) -> Result<Vec<ClipSegment>, Box<dyn std::error::Error>> {
    let (source, planned) = offline_plan(tools, spoken, max_segments, meter).await?;
    let mut clips = Vec::new();
    for (i, clip) in planned.iter().enumerate() {
        let path = dir.join(format!("clip-{i}.mp4"));
        source.fetch(clip, &path, meter).await?;
        clips.push(ClipSegment { path, duration_s: clip.duration_s, still: false, source_fps: None });
    }
    Ok(clips)
}

/// A benchmark that could not finish exits like a failed job.
pub(super) fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::JOB_FAILED)
        }
    }
}

async fn run(
    settings: Settings,
    seconds: u32,
    transition: Transition,
    stills: usize,
    source: SourceShape,
    with_prepared: bool,
    runs: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let tools = Toolbox::from_settings(&settings);
    let dir = tempfile::tempdir()?;
    eprintln!("preparing a {seconds} s job in {}", dir.path().display());

    // The offline providers, whatever the settings say: this measures the render.
    let meter = CostMeter::default();
    let voice = Voice::parse("en-us").expect("valid");
    let narrator = EspeakNarrator::new(tools.espeak.clone(), voice.clone(), 165);
    // Narration: enough sentences for the wanted length (about 5.5 s each).
    let sentences: Vec<String> = (0..(seconds as usize * 2 / 11).max(1)).map(|_| SENTENCE.to_string()).collect();
    let spoken = narrator.narrate(&sentences, &voice, dir.path(), &meter).await?;

    // Footage: the slots the embedded mode plans, filled with clips of the asked shape.
    let mut clips = match source.size() {
        None => offline_footage(&tools, &spoken, tools.budget.max_footage_segments, dir.path(), &meter).await?,
        Some((width, height)) => {
            let mut made = Vec::new();
            for (k, pattern) in CAMERA_PATTERNS.iter().enumerate() {
                let path = dir.path().join(format!("camera-{k}.mp4"));
                let args = camera_clip_args(pattern, width, height, 8, &path);
                process::run(&Invocation::new(tools.ffmpeg.clone(), args, Duration::from_secs(300))).await?;
                made.push(path);
            }
            let (_, slots) = offline_plan(&tools, &spoken, tools.budget.max_footage_segments, &meter).await?;
            slots
                .iter()
                .enumerate()
                .map(|(i, slot)| ClipSegment {
                    path: made[i % made.len()].clone(),
                    duration_s: slot.duration_s,
                    still: false,
                    source_fps: Some(30.0),
                })
                .collect()
        }
    };

    // Stills: a photo-sized test picture each, in place of some clips.
    for (k, slot) in still_slots(clips.len(), stills).into_iter().enumerate() {
        let path = dir.path().join(format!("still-{k}.png"));
        let still_args: Vec<OsString> =
            ["-hide_banner", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=1536x2048", "-frames:v", "1"]
                .map(OsString::from)
                .into_iter()
                .chain([path.clone().into_os_string()])
                .collect();
        process::run(&Invocation::new(tools.ffmpeg.clone(), still_args, Duration::from_secs(60))).await?;
        clips[slot] = ClipSegment { path, duration_s: clips[slot].duration_s, still: true, source_fps: None };
    }

    // Music: ten seconds of tone, looped under the voice.
    let music = dir.path().join("music.m4a");
    let music_args: Vec<OsString> = [
        "-hide_banner",
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=220:duration=10",
        "-c:a",
        "aac",
    ]
    .map(OsString::from)
    .into_iter()
    .chain([music.clone().into_os_string()])
    .collect();
    process::run(&Invocation::new(tools.ffmpeg.clone(), music_args, Duration::from_secs(60))).await?;

    let captions = dir.path().join("captions.ass");
    let style = crate::pipeline::render_caption_style(&settings.media.caption_font, settings.media.caption_size);
    tokio::fs::write(&captions, ass_document(&spoken.words, &style)).await?;

    let plan = RenderPlan {
        clips,
        transition,
        overlap_s: crate::media::motion::TRANSITION_OVERLAP_S,
        narration: spoken.wav.clone(),
        duration_s: spoken.duration_s,
        captions: Some(captions.clone()),
        fonts_dir: settings.media.fonts_dir.clone(),
        music: Some(MusicBed { path: music.clone(), volume: 0.3 }),
        encoder: Encoder::from_settings(&settings.media),
        threads: tools.budget.ffmpeg_threads,
        split_min_seconds: settings.media.split_min_seconds,
        filter_script: dir.path().join("filtergraph.txt"),
        output: dir.path().join("ours.mp4"),
    };
    let still_count = plan.clips.iter().filter(|c| c.still).count();
    eprintln!("{} clips ({still_count} stills), narration {:.1} s", plan.clips.len(), plan.duration_s);

    let timeout = settings.media.render_timeout();
    let naive_out = dir.path().join("hand-written-naive.mp4");
    let crop_first_out = dir.path().join("hand-written-crop-first.mp4");
    let naive_command = Invocation::new(tools.ffmpeg.clone(), hand_written(&plan, Fill::Naive, &naive_out), timeout);
    let crop_first_command =
        Invocation::new(tools.ffmpeg.clone(), hand_written(&plan, Fill::CropFirst, &crop_first_out), timeout);
    // When ours is split across the cores, each round also runs it as one
    // ffmpeg run, the baseline of the split.
    let one_run = crate::media::segments::split_across_cores(&plan).map(|_| RenderPlan {
        split_min_seconds: 0,
        output: dir.path().join("ours-one-run.mp4"),
        ..plan.clone()
    });
    let commands = if one_run.is_some() { 4 } else { 3 };
    let mut rounds = Vec::new();
    for round in 0..runs.max(1) as usize {
        let load = load_average().unwrap_or_else(|| "unknown".into());
        let mut timed = Round { load, ..Round::default() };
        // Each round starts with a different command, so none of them is
        // always the one that runs first (or right after the others warmed up).
        for k in 0..commands {
            match (round + k) % commands {
                0 => {
                    timed.ours = time_children(crate::media::render(&tools, &plan, timeout, &mut |_| {})).await?;
                    timed.order.push("ours");
                }
                3 => {
                    let one_run = one_run.as_ref().expect("four commands when split");
                    timed.one_run =
                        Some(time_children(crate::media::render(&tools, one_run, timeout, &mut |_| {})).await?);
                    timed.order.push("ours in one run");
                }
                1 => {
                    timed.naive = time_children(process::run(&naive_command)).await?;
                    timed.order.push("naive");
                }
                _ => {
                    timed.crop_first = time_children(process::run(&crop_first_command)).await?;
                    timed.order.push("crop first");
                }
            }
        }
        print_round(round + 1, &plan, &timed, source);
        rounds.push(timed);
    }
    for out in [&naive_out, &crop_first_out] {
        let probe = ffprobe::probe(&tools.ffprobe, out).await?;
        crate::media::check_render(&probe, plan.duration_s).map_err(|e| format!("baseline output: {e}"))?;
    }
    let ssim = ssim(&tools, &plan.output, &naive_out).await?;
    let bitrate = |bytes: u64| bytes as f64 * 8.0 / plan.duration_s / 1000.0;
    let ours_kbps = bitrate(std::fs::metadata(&plan.output)?.len());
    let naive_kbps = bitrate(std::fs::metadata(&naive_out)?.len());

    if !with_prepared {
        print_render(&plan, source, &rounds, ssim, ours_kbps, naive_kbps);
        return Ok(());
    }
    let ours = median(rounds.iter().map(|r| r.ours.wall_s));
    // Prepared footage: each distinct clip normalised once, then the same render from those.
    let mut prepared = plan.clone();
    prepared.output = dir.path().join("ours-prepared.mp4");
    let started = Instant::now();
    let mut normalised: Vec<(std::path::PathBuf, std::path::PathBuf)> = Vec::new();
    for clip in prepared.clips.iter_mut().filter(|c| !c.still) {
        if let Some((_, to)) = normalised.iter().find(|(from, _)| *from == clip.path) {
            clip.path = to.clone();
        } else {
            let to = dir.path().join(format!("prepared-{}.mp4", normalised.len()));
            process::run(&Invocation::new(tools.ffmpeg.clone(), normalise_args(&clip.path, &to), timeout)).await?;
            normalised.push((clip.path.clone(), to.clone()));
            clip.path = to;
        }
        clip.source_fps = Some(30.0);
    }
    let prepare_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    crate::media::render(&tools, &prepared, timeout, &mut |_| {}).await?;
    let from_prepared = started.elapsed().as_secs_f64();

    print_render(&plan, source, &rounds, ssim, ours_kbps, naive_kbps);
    println!(
        "  prepared footage: normalising {} clips took {prepare_s:.2} s once; a render from them {from_prepared:.2} s \
         (ratio {:.3} to ours from the originals)",
        normalised.len(),
        from_prepared / ours
    );
    Ok(())
}

/// Wall and CPU time of one timed command.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    wall_s: f64,
    /// User and system CPU of the processes it ran (`getrusage(RUSAGE_CHILDREN)`
    /// before and after): less at the mercy of a noisy neighbour than the wall
    /// clock, and the figure a machine-hour is paid in.
    cpu_s: f64,
}

/// One round of the render benchmark: the three commands on the same inputs,
/// one after the other, in `order`.
#[derive(Debug, Clone, Default)]
struct Round {
    load: String,
    order: Vec<&'static str>,
    ours: Timing,
    naive: Timing,
    crop_first: Timing,
    /// Ours as one ffmpeg run, when ours is split across the cores.
    one_run: Option<Timing>,
}

/// Runs `work` and returns how long it took and how much CPU the child
/// processes it waited for used meanwhile.
async fn time_children<T, E>(work: impl std::future::Future<Output = Result<T, E>>) -> Result<Timing, E> {
    let cpu_before = children_cpu_s();
    let started = Instant::now();
    work.await?;
    Ok(Timing { wall_s: started.elapsed().as_secs_f64(), cpu_s: children_cpu_s() - cpu_before })
}

/// The kernel's accounting of every waited-for child of this process
/// (`getrusage(RUSAGE_CHILDREN)`), for the benches' CPU and memory figures.
pub(super) fn children_usage() -> Option<libc::rusage> {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    (unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } == 0).then_some(usage)
}

/// User plus system CPU seconds of every waited-for child of this process.
fn children_cpu_s() -> f64 {
    let Some(usage) = children_usage() else { return 0.0 };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

/// The naive command's target ratio for footage of `source`'s shape.
fn naive_target(source: SourceShape) -> f64 {
    if source == SourceShape::Landscape { 0.85 } else { 1.0 }
}

/// One round's line: each time, and the ratios within the round.
fn print_round(number: usize, plan: &RenderPlan, r: &Round, source: SourceShape) {
    println!(
        "  round {number} (load before: {}; order: {}): ours {:.2} s ({:.2}x real time, CPU {:.1} s)  \
         naive {:.2} s (CPU {:.1} s)  crop first {:.2} s (CPU {:.1} s)  \
         ours/naive {:.3} (target <= {:.2})  ours/crop-first {:.3} (target <= 1.00)",
        r.load,
        r.order.join(", "),
        r.ours.wall_s,
        r.ours.wall_s / plan.duration_s,
        r.ours.cpu_s,
        r.naive.wall_s,
        r.naive.cpu_s,
        r.crop_first.wall_s,
        r.crop_first.cpu_s,
        r.ours.wall_s / r.naive.wall_s,
        naive_target(source),
        r.ours.wall_s / r.crop_first.wall_s,
    );
    if let Some(one) = r.one_run {
        println!(
            "    ours in one run {:.2} s ({:.2}x real time, CPU {:.1} s)  split / one run {:.3}",
            one.wall_s,
            one.wall_s / plan.duration_s,
            one.cpu_s,
            r.ours.wall_s / one.wall_s
        );
    }
}

/// The render benchmark's summary: medians over the rounds, each beside its
/// baseline. A ratio is the median of the rounds' own ratios, each taken
/// between commands that ran minutes apart, not an hour.
fn print_render(plan: &RenderPlan, source: SourceShape, rounds: &[Round], ssim: f64, ours_kbps: f64, naive_kbps: f64) {
    let still_count = plan.clips.iter().filter(|c| c.still).count();
    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f));
    println!(
        "render of a {:.1} s video from {} footage ({} clips of which {still_count} stills, {} transitions, captions, \
         ducked music), preset {} with `{}` (the hand-written commands: the bare preset), {} threads; \
         medians of {} rounds:",
        plan.duration_s,
        source_name(source),
        plan.clips.len(),
        plan.transition.name(),
        plan.encoder.preset,
        plan.encoder.params,
        plan.threads,
        rounds.len(),
    );
    let ours = m(|r| r.ours.wall_s);
    let split = crate::media::segments::split_across_cores(plan);
    println!(
        "  clipforge render:             {ours:>7.2} s  ({:.2}x real time; CPU {:.1} s){}",
        ours / plan.duration_s,
        m(|r| r.ours.cpu_s),
        split.map_or(String::new(), |s| format!("; split across the cores in {} parts", s.parts.len()))
    );
    if rounds.iter().all(|r| r.one_run.is_some()) {
        let one = |r: &Round| r.one_run.unwrap_or_default();
        let one_wall = median(rounds.iter().map(|r| one(r).wall_s));
        println!(
            "  clipforge render in one run:  {one_wall:>7.2} s  ({:.2}x real time; CPU {:.1} s)",
            one_wall / plan.duration_s,
            median(rounds.iter().map(|r| one(r).cpu_s))
        );
        println!(
            "  ratio split / one run:        {:>7.3}  (CPU {:.3})",
            median(rounds.iter().map(|r| r.ours.wall_s / one(r).wall_s)),
            median(rounds.iter().map(|r| r.ours.cpu_s / one(r).cpu_s))
        );
    }
    println!("  hand-written, naive:          {:>7.2} s  (CPU {:.1} s)", m(|r| r.naive.wall_s), m(|r| r.naive.cpu_s));
    println!(
        "  hand-written, crop first:     {:>7.2} s  (CPU {:.1} s)",
        m(|r| r.crop_first.wall_s),
        m(|r| r.crop_first.cpu_s)
    );
    println!(
        "  ratio ours / naive:           {:>7.3}  (target <= {:.2}; CPU {:.3})",
        m(|r| r.ours.wall_s / r.naive.wall_s),
        naive_target(source),
        m(|r| r.ours.cpu_s / r.naive.cpu_s)
    );
    println!(
        "  ratio ours / crop first:      {:>7.3}  (target <= 1.00; CPU {:.3})",
        m(|r| r.ours.wall_s / r.crop_first.wall_s),
        m(|r| r.ours.cpu_s / r.crop_first.cpu_s)
    );
    println!("  SSIM ours vs naive:           {ssim:>7.4}  (target >= 0.99)");
    println!(
        "  bitrate ours / naive:         {:>7.3}  ({ours_kbps:.0} vs {naive_kbps:.0} kbit/s; target 0.90-1.10)",
        ours_kbps / naive_kbps
    );
}

fn source_name(source: SourceShape) -> &'static str {
    match source {
        SourceShape::Landscape => "1920x1080",
        SourceShape::Portrait => "1080x1920",
        SourceShape::Generated => "generated 720x1280",
    }
}

/// The 1-, 5- and 15-minute load averages, as `uptime` prints them.
pub fn load_average() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(raw.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Arguments that normalise one clip to what the render consumes: 1080x1920
/// filled, 30 fps, yuv420p, near-lossless so the render's encode sees the
/// same picture.
fn normalise_args(from: &std::path::Path, to: &std::path::Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-hide_banner", "-y", "-loglevel", "error", "-i"].map(OsString::from).to_vec();
    args.push(from.as_os_str().to_owned());
    args.push("-vf".into());
    args.push(crate::media::ffmpeg::fill_chain(None, 2).into());
    args.extend(["-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-an"].map(OsString::from));
    args.push(to.as_os_str().to_owned());
    args
}

/// SSIM (all planes) of `a` against `b`, by ffmpeg's `ssim` filter.
async fn ssim(tools: &Toolbox, a: &std::path::Path, b: &std::path::Path) -> Result<f64, Box<dyn std::error::Error>> {
    let args: Vec<OsString> = ["-hide_banner", "-nostdin", "-i"]
        .map(OsString::from)
        .into_iter()
        .chain([a.as_os_str().to_owned(), "-i".into(), b.as_os_str().to_owned()])
        .chain(["-lavfi", "[0:v][1:v]ssim", "-f", "null", "-"].map(OsString::from))
        .collect();
    let out = tokio::process::Command::new(&tools.ffmpeg).args(&args).output().await?;
    let text = String::from_utf8_lossy(&out.stderr);
    parse_ssim(&text).ok_or_else(|| format!("no SSIM in ffmpeg's output: {}", text.lines().last().unwrap_or("")).into())
}

/// The `All:` figure of the ssim filter's summary line.
fn parse_ssim(stderr: &str) -> Option<f64> {
    let line = stderr.lines().rev().find(|l| l.contains("SSIM") && l.contains("All:"))?;
    line.split("All:").nth(1)?.split_whitespace().next()?.parse().ok()
}

/// `clipforge bench stage`: uploads a `size_mb` MiB file through the configured
/// object store the way the publish stage does, checks the stored size, and
/// prints throughput and this process's peak resident memory (VmHWM), which
/// must stay flat however large the file (target < 100 MB for 1 GiB). The
/// baseline is reading the same file from disk in the same run.
pub async fn stage(settings: Settings, size_mb: u64) -> ExitCode {
    exit_code(run_stage(settings, size_mb).await)
}

/// Peak resident set size of this process, in bytes (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

async fn run_stage(settings: Settings, size_mb: u64) -> Result<(), Box<dyn std::error::Error>> {
    let objects = crate::app::open_object_store(&settings).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("large.bin");
    let size = size_mb * 1024 * 1024;
    // Written in 1 MiB blocks, so making the file does not raise the peak itself.
    {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::File::create(&file).await?;
        let block = vec![0x5au8; 1024 * 1024];
        for _ in 0..size_mb {
            f.write_all(&block).await?;
        }
        f.flush().await?;
    }
    let started = Instant::now();
    {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(&file).await?;
        let mut buf = vec![0u8; 1024 * 1024];
        while f.read(&mut buf).await? > 0 {}
    }
    let read_s = started.elapsed().as_secs_f64();
    let key = crate::store::objects::ObjectKey::parse(&format!("work/bench-{}.bin", uuid::Uuid::now_v7()))?;
    let started = Instant::now();
    let stored = objects.put_file(&key, &file).await?;
    let upload_s = started.elapsed().as_secs_f64();
    let size_seen = objects.size(&key).await?;
    objects.delete(&key).await?;
    if size_seen != Some(size) || stored != size {
        return Err(format!("stored {size_seen:?} bytes, expected {size}").into());
    }
    let mib = size as f64 / (1024.0 * 1024.0);
    println!("staged {size} bytes to {}:", objects.describe());
    println!("  upload:             {upload_s:>7.2} s  ({:.1} MiB/s)", mib / upload_s);
    println!("  baseline disk read: {read_s:>7.2} s  ({:.1} MiB/s)", mib / read_s);
    println!("  ratio (upload / read): {:.2}", upload_s / read_s);
    println!("peak_rss_bytes={}", peak_rss_bytes().unwrap_or(0));
    Ok(())
}

/// How a hand-written command fills the frame with a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// The usual recipe: scale to cover, then cut the middle out.
    Naive,
    /// The middle cut out first (9:16 of a landscape clip), then scaled.
    CropFirst,
}

impl Fill {
    fn chain(self) -> &'static str {
        match self {
            Fill::Naive => "scale=1080:1920:force_original_aspect_ratio=increase,crop=1080:1920",
            Fill::CropFirst => "crop='min(iw,ih*9/16)':'min(ih,iw*16/9)',scale=1080:1920",
        }
    }
}

/// The baseline: the command a person would type for this composition,
/// written out here by hand rather than produced by our argument builders.
/// Stills are written the usual way, an image looped for its stretch
/// (`-loop 1 -framerate 30 -t`) into a one-frame-per-input `zoompan` with the
/// same zoom and pan as ours; transitions are a hand-counted `xfade` chain
/// whose clips are each read `overlap` longer.
fn hand_written(plan: &RenderPlan, fill: Fill, out: &std::path::Path) -> Vec<OsString> {
    let mut cmd: Vec<String> = vec!["-hide_banner".into(), "-y".into(), "-loglevel".into(), "error".into()];
    let mut graph = String::new();
    let mut concat_inputs = String::new();
    let xfade = match plan.transition {
        Transition::Cut => None,
        Transition::Crossfade => Some("fade"),
        Transition::Slide => Some("slideleft"),
        Transition::Zoom => Some("zoomin"),
    };
    let overlap = if xfade.is_some() { plan.overlap_s } else { 0.0 };
    let last = plan.clips.len() - 1;
    let mut stills = 0;
    let mut offset = 0.0;
    let mut joined = String::from("[c0]");
    for (i, clip) in plan.clips.iter().enumerate() {
        let read = if i < last { clip.duration_s + overlap } else { clip.duration_s };
        if clip.still {
            cmd.extend(["-loop".into(), "1".into(), "-framerate".into(), "30".into()]);
            cmd.extend(["-t".into(), format!("{read:.3}"), "-i".into(), clip.path.display().to_string()]);
            let frames = ((read * 30.0).round() as u64).max(2) - 1;
            let (z, x) = if stills % 2 == 0 {
                (format!("1+0.12*on/{frames}"), "iw/2-(iw/zoom/2)".to_string())
            } else {
                ("1.12".to_string(), format!("(iw-iw/zoom)*on/{frames}"))
            };
            stills += 1;
            graph += &format!(
                "[{i}:v]scale=2160:3840:force_original_aspect_ratio=increase,crop=2160:3840,setsar=1,\
                 zoompan=z='{z}':x='{x}':y='ih/2-(ih/zoom/2)':d=1:s=1080x1920:fps=30,setsar=1,format=yuv420p[c{i}];"
            );
        } else {
            cmd.extend(["-stream_loop".into(), "-1".into(), "-t".into(), format!("{read:.3}")]);
            cmd.extend(["-i".into(), clip.path.display().to_string()]);
            graph += &format!("[{i}:v]{},setsar=1,fps=30,format=yuv420p[c{i}];", fill.chain());
        }
        concat_inputs += &format!("[c{i}]");
        if let Some(name) = xfade
            && i > 0
        {
            offset += plan.clips[i - 1].duration_s;
            let into = if i == last { "[joined]".to_string() } else { format!("[j{i}]") };
            joined += &format!("[c{i}]xfade=transition={name}:duration={overlap:.3}:offset={offset:.3}{into};");
            if i < last {
                joined += &format!("[j{i}]");
            }
        }
    }
    let n = plan.clips.len();
    let d = format!("{:.3}", plan.duration_s);
    cmd.extend(["-i".into(), plan.narration.display().to_string()]);
    let music = plan.music.as_ref().expect("the benchmark has music");
    cmd.extend([
        "-stream_loop".into(),
        "-1".into(),
        "-t".into(),
        d.clone(),
        "-i".into(),
        music.path.display().to_string(),
    ]);
    // Joined by the xfade chain, or (a cut, or one clip) by concat.
    let video = if xfade.is_some() && n > 1 {
        format!("{joined}[joined]")
    } else {
        format!("{concat_inputs}concat=n={n}:v=1:a=0,")
    };
    graph += &format!(
        "{video}ass={}:fontsdir={}[v];\
         [{n}:a]aresample=44100,aformat=channel_layouts=stereo,apad=whole_dur={d},asplit[a1][a2];\
         [{m}:a]aresample=44100,aformat=channel_layouts=stereo,volume=0.3[bg];\
         [bg][a2]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=400[bgd];\
         [a1][bgd]amix=inputs=2:duration=first:normalize=0[a]",
        plan.captions.as_ref().expect("the benchmark has captions").display(),
        plan.fonts_dir.display(),
        m = n + 1,
    );
    cmd.extend(["-filter_complex".into(), graph, "-map".into(), "[v]".into(), "-map".into(), "[a]".into()]);
    cmd.extend(["-c:v", "libx264", "-preset"].map(String::from));
    cmd.push(plan.encoder.preset.clone());
    cmd.extend(["-crf".into(), plan.encoder.crf.to_string()]);
    cmd.extend(
        ["-pix_fmt", "yuv420p", "-r", "30", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-t"]
            .map(String::from),
    );
    cmd.push(d);
    cmd.push(out.display().to_string());
    cmd.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ssim_summary_is_read_from_ffmpegs_last_line() {
        let stderr = "frame=  10 fps=0.0\n[Parsed_ssim_0 @ 0x55] SSIM Y:0.995 (23.1) U:0.998 (27.0) V:0.997 (26.1) \
                      All:0.996123 (24.1)\n";
        assert_eq!(parse_ssim(stderr), Some(0.996123));
        assert_eq!(parse_ssim("Conversion failed!"), None);
    }

    #[test]
    fn a_median_is_the_middle_value_or_the_mean_of_the_two_middle_ones() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), 2.5);
        assert!(median(std::iter::empty()).is_nan());
    }

    #[test]
    fn the_baselines_fill_the_frame_the_two_usual_ways() {
        assert!(Fill::Naive.chain().starts_with("scale=1080:1920:force_original_aspect_ratio=increase"));
        assert!(Fill::CropFirst.chain().starts_with("crop="));
        assert!(Fill::CropFirst.chain().ends_with("scale=1080:1920"));
    }
}
