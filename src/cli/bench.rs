//! `clipforge bench render`: our render of a job against one hand-written
//! ffmpeg command doing the same composition on the same inputs, timed in the
//! same run, with their ratio. Target: ratio ≤ 1.10. `--transition` and
//! `--stills` add motion: clips joined by `xfade`, some slots shown as stills
//! with a Ken Burns zoom or pan.

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

pub async fn render(settings: Settings, seconds: u32, transition: Transition, stills: usize) -> ExitCode {
    exit_code(run(settings, seconds, transition, stills).await)
}

/// Which of `n` footage slots show a still when `stills` of them do: spread
/// evenly, never the same slot twice.
fn still_slots(n: usize, stills: usize) -> Vec<usize> {
    let stills = stills.min(n);
    (0..stills).map(|k| (2 * k + 1) * n / (2 * stills)).collect()
}

/// A benchmark that could not finish exits like a failed job.
/// The generated clips the embedded mode would use for `spoken`, fetched into `dir`.
pub(super) async fn offline_footage(
    tools: &Toolbox,
    spoken: &SpokenNarration,
    max_segments: usize,
    dir: &std::path::Path,
    meter: &CostMeter,
) -> Result<Vec<ClipSegment>, Box<dyn std::error::Error>> {
    let source = LocalFootage::new("", 4.0, tools.ffmpeg.clone());
    let request = FootageRequest {
        job_queries: &[],
        sentence_terms: &[],
        sentences: &spoken.sentences,
        duration_s: spoken.duration_s,
        max_segments,
    };
    let planned = source.plan(&request, meter).await?;
    let mut clips = Vec::new();
    for (i, clip) in planned.iter().enumerate() {
        let path = dir.join(format!("clip-{i}.mp4"));
        source.fetch(clip, &path, meter).await?;
        clips.push(ClipSegment { path, duration_s: clip.duration_s, still: false });
    }
    Ok(clips)
}

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

    // Footage: the generated clips the embedded mode uses.
    let mut clips = offline_footage(&tools, &spoken, tools.budget.max_footage_segments, dir.path(), &meter).await?;

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
        clips[slot] = ClipSegment { path, duration_s: clips[slot].duration_s, still: true };
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
        encoder: Encoder { preset: settings.media.preset.clone(), crf: settings.media.crf },
        threads: tools.budget.ffmpeg_threads,
        filter_script: dir.path().join("filtergraph.txt"),
        output: dir.path().join("ours.mp4"),
    };
    let still_count = plan.clips.iter().filter(|c| c.still).count();
    eprintln!("{} clips ({still_count} stills), narration {:.1} s", plan.clips.len(), plan.duration_s);

    let timeout = settings.media.render_timeout();
    let started = Instant::now();
    crate::media::render(&tools, &plan, timeout, &mut |_| {}).await?;
    let ours = started.elapsed().as_secs_f64();

    let baseline_out = dir.path().join("hand-written.mp4");
    let started = Instant::now();
    process::run(&Invocation::new(tools.ffmpeg.clone(), hand_written(&plan, &baseline_out), timeout)).await?;
    let baseline = started.elapsed().as_secs_f64();
    let probe = ffprobe::probe(&tools.ffprobe, &baseline_out).await?;
    crate::media::check_render(&probe, plan.duration_s).map_err(|e| format!("baseline output: {e}"))?;

    println!(
        "render of a {:.1} s video ({} clips of which {still_count} stills, {} transitions, captions, ducked music), \
         preset {}:",
        plan.duration_s,
        plan.clips.len(),
        plan.transition.name(),
        plan.encoder.preset
    );
    println!("  clipforge render:          {ours:>7.2} s");
    println!("  hand-written ffmpeg:       {baseline:>7.2} s");
    println!("  ratio (ours / baseline):   {:>7.3}  (target <= 1.10)", ours / baseline);
    Ok(())
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

/// The baseline: the command a person would type for this composition,
/// written out here by hand rather than produced by our argument builders.
/// Stills are written the usual way, an image looped for its stretch
/// (`-loop 1 -framerate 30 -t`) into a one-frame-per-input `zoompan` with the
/// same zoom and pan as ours; transitions are a hand-counted `xfade` chain
/// whose clips are each read `overlap` longer.
fn hand_written(plan: &RenderPlan, out: &std::path::Path) -> Vec<OsString> {
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
            graph += &format!(
                "[{i}:v]scale=1080:1920:force_original_aspect_ratio=increase,crop=1080:1920,setsar=1,fps=30,format=yuv420p[c{i}];"
            );
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
