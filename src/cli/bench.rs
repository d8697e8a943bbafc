//! `clipforge bench render`: our render of a job against one hand-written
//! ffmpeg command doing the same composition on the same inputs, timed in the
//! same run, with their ratio. Target: ratio ≤ 1.10.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::exit;
use crate::domain::Voice;
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

pub async fn render(settings: Settings, seconds: u32) -> ExitCode {
    exit_code(run(settings, seconds).await)
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
        clips.push(ClipSegment { path, duration_s: clip.duration_s });
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

async fn run(settings: Settings, seconds: u32) -> Result<(), Box<dyn std::error::Error>> {
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
    let clips = offline_footage(&tools, &spoken, tools.budget.max_footage_segments, dir.path(), &meter).await?;

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
    eprintln!("{} clips, narration {:.1} s", plan.clips.len(), plan.duration_s);

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
        "render of a {:.1} s video ({} clips, captions, ducked music), preset {}:",
        plan.duration_s,
        plan.clips.len(),
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
fn hand_written(plan: &RenderPlan, out: &std::path::Path) -> Vec<OsString> {
    let mut cmd: Vec<String> = vec!["-hide_banner".into(), "-y".into(), "-loglevel".into(), "error".into()];
    let mut graph = String::new();
    let mut concat_inputs = String::new();
    for (i, clip) in plan.clips.iter().enumerate() {
        cmd.extend(["-stream_loop".into(), "-1".into(), "-t".into(), format!("{:.3}", clip.duration_s)]);
        cmd.extend(["-i".into(), clip.path.display().to_string()]);
        graph += &format!(
            "[{i}:v]scale=1080:1920:force_original_aspect_ratio=increase,crop=1080:1920,setsar=1,fps=30,format=yuv420p[c{i}];"
        );
        concat_inputs += &format!("[c{i}]");
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
    graph += &format!(
        "{concat_inputs}concat=n={n}:v=1:a=0,ass={}:fontsdir={}[v];\
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
