//! `clipforge bench batch` and `clipforge bench cost`: how fast a batch is
//! taken in, and what the largest accepted job costs in memory and threads.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::bench::{exit_code, offline_footage};
use crate::domain::Voice;
use crate::media::Toolbox;
use crate::media::captions::ass_document;
use crate::media::ffmpeg::{Encoder, RenderPlan};
use crate::providers::CostMeter;
use crate::providers::voice::{EspeakNarrator, Narrator};
use crate::settings::Settings;

/// `clipforge bench batch`: starts the API in this process (no workers, so
/// nothing renders) on the configured record store and queue (by default fresh
/// SQLite files in a temporary folder), posts a generated `lines`-line CSV to
/// `/v1/batches` and prints jobs accepted per second (target ≥ 500). The
/// baseline, in the same run: up to 1,000 single `POST /v1/jobs` one after
/// the other, scaled to `lines`. Point records and queue at scratch stores:
/// the jobs stay there, queued.
pub async fn batch(settings: Settings, lines: usize) -> ExitCode {
    exit_code(run_batch(settings, lines).await)
}

async fn run_batch(mut settings: Settings, lines: usize) -> Result<(), Box<dyn std::error::Error>> {
    use std::fmt::Write as _;

    use crate::app::{Application, Roles};

    let dir = tempfile::tempdir()?;
    settings.data.dir = dir.path().to_path_buf();
    settings.server.listen = "127.0.0.1:0".parse()?;
    settings.queue.namespace = format!("bench-{}", uuid::Uuid::now_v7().simple());
    settings.limits.max_batch_lines = settings.limits.max_batch_lines.max(lines);
    let records = settings.records_url().split(':').next().unwrap_or_default().to_string();
    let app = Application::build(settings, Roles { api: true, stages: vec![] }).await?;
    let base = format!("http://127.0.0.1:{}", app.port().ok_or("the API did not start")?);
    let queue = app.pipeline().queues.describe();
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;

    // Text unique to this run, so a second run on the same stores creates new jobs too.
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut csv = String::from("script,voice,footage_queries,captions\n");
    for i in 0..lines {
        writeln!(csv, "\"Benchmark {run}, line {i}: the tide comes in twice a day.\",en-us,ocean|moon,true")?;
    }
    eprintln!("posting {lines} lines ({} KiB of CSV) to {records} records and the {queue} queue", csv.len() / 1024);
    let started = Instant::now();
    let resp = http.post(format!("{base}/v1/batches")).header("content-type", "text/csv").body(csv).send().await?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await?;
    let batch_s = started.elapsed().as_secs_f64();
    if status != reqwest::StatusCode::CREATED || answer["counts"]["new"].as_u64() != Some(lines as u64) {
        return Err(format!("the batch was not taken whole ({status}): {}", answer["counts"]).into());
    }

    let singles = lines.min(1000);
    let started = Instant::now();
    for i in 0..singles {
        let job = serde_json::json!({
            "script": format!("Benchmark {run}, single {i}: the tide comes in twice a day."),
            "voice": "en-us",
            "footage_queries": ["ocean", "moon"],
            "captions": true,
        });
        let resp = http.post(format!("{base}/v1/jobs")).json(&job).send().await?;
        if resp.status() != reqwest::StatusCode::ACCEPTED {
            return Err(format!("single submission {i} refused: {}", resp.text().await?).into());
        }
    }
    let singles_s = started.elapsed().as_secs_f64();
    let singles_scaled = singles_s / singles as f64 * lines as f64;
    stop.cancel();
    let _ = server.await;

    let rate = lines as f64 / batch_s;
    println!("{lines}-line CSV batch, {records} records, {queue} queue, API in this process, no workers:");
    println!("  POST /v1/batches:                {batch_s:>8.2} s  {rate:>8.0} jobs/s  (target >= 20,000)");
    println!(
        "  {singles} single POST /v1/jobs:     {singles_s:>8.2} s  {:>8.0} jobs/s  ({lines} would take ~{singles_scaled:.1} s)",
        singles as f64 / singles_s
    );
    println!("  speed-up (batch over singles):   {:>8.1}x", singles_scaled / batch_s);
    println!("jobs_per_second={rate:.0}");
    Ok(())
}

/// `clipforge bench cost`: the scripts that once made one ffmpeg take 3.5 GB
/// and 1,208 threads (200 one-word lines) or fail with "Argument list too
/// long" (1,500). Each is checked against the configured limits as the API
/// does; a refused one prints its codes, an accepted one is narrated,
/// planned, captioned and rendered the way the pipeline does it, while this
/// process polls the ffmpeg child's `/proc/<pid>/status` (VmHWM, Threads).
/// After the render, `getrusage(RUSAGE_CHILDREN)` gives the kernel's own peak
/// for the largest child so far. Fails when the peak passes `bound_mb`.
pub async fn cost(settings: Settings, lines: &[usize], bound_mb: u64) -> ExitCode {
    exit_code(run_cost(settings, lines, bound_mb).await)
}

async fn run_cost(settings: Settings, lines: &[usize], bound_mb: u64) -> Result<(), Box<dyn std::error::Error>> {
    use crate::domain::{JobRequest, JobSpec, ScriptSource, split_sentences};

    let tools = Toolbox::from_settings(&settings);
    let budget = tools.budget;
    println!(
        "limits: {} sentences, {} s narration, {} footage segments, {} ffmpeg threads; preset {}; bound {bound_mb} MiB",
        budget.spec.max_sentences,
        budget.spec.max_narration_secs,
        budget.max_footage_segments,
        budget.ffmpeg_threads,
        settings.media.preset
    );
    let mut over = Vec::new();
    for &n in lines {
        let script: String = (0..n).map(|i| format!("{}\n", char::from(b'a' + (i % 26) as u8))).collect();
        let request = JobRequest { script: Some(script), ..Default::default() };
        let spec = match JobSpec::parse(request, &budget.spec) {
            Ok(spec) => spec,
            Err(errors) => {
                let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
                println!("{n} one-word lines: refused with 422 ({})", codes.join(", "));
                continue;
            }
        };
        let ScriptSource::Script(text) = &spec.source else { unreachable!("a script was given") };
        let dir = tempfile::tempdir()?;
        let meter = CostMeter::default();
        let voice = Voice::parse("en-us").expect("valid");
        let narrator = EspeakNarrator::new(tools.espeak.clone(), voice.clone(), 165);
        let spoken = narrator.narrate(&split_sentences(text), &voice, dir.path(), &meter).await?;
        let clips = offline_footage(&tools, &spoken, budget.max_footage_segments, dir.path(), &meter).await?;
        let captions = dir.path().join("captions.ass");
        let style = crate::pipeline::render_caption_style(&settings.media.caption_font, settings.media.caption_size);
        tokio::fs::write(&captions, ass_document(&spoken.words, &style)).await?;
        let plan = RenderPlan {
            clips,
            transition: crate::media::motion::Transition::Cut,
            overlap_s: 0.0,
            narration: spoken.wav.clone(),
            duration_s: spoken.duration_s,
            captions: Some(captions),
            fonts_dir: settings.media.fonts_dir.clone(),
            music: None,
            encoder: Encoder::from_settings(&settings.media),
            threads: budget.ffmpeg_threads,
            split_min_seconds: settings.media.split_min_seconds,
            filter_script: dir.path().join("filtergraph.txt"),
            output: dir.path().join("video.mp4"),
        };
        let earlier_children_kb = children_max_rss_kb();
        let watch = ChildWatch::start("ffmpeg");
        let started = Instant::now();
        let timeout = settings.media.render_timeout();
        let rendered = crate::media::render(&tools, &plan, timeout, &mut |_| {}).await;
        let render_s = started.elapsed().as_secs_f64();
        let (polled_kb, threads) = watch.stop().await;
        rendered?;
        let children_kb = children_max_rss_kb();
        // The kernel's peak is over every child so far; it is the render's when the render raised it.
        let kernel_kb = (children_kb > earlier_children_kb).then_some(children_kb);
        let peak_kb = polled_kb.max(kernel_kb.unwrap_or(0));
        let peak_mb = peak_kb as f64 / 1024.0;
        let within = peak_mb <= bound_mb as f64;
        println!(
            "{n} one-word lines: accepted; {:.1} s narration, {} sentences, {} footage segments; \
             rendered in {render_s:.1} s",
            plan.duration_s,
            spoken.sentences.len(),
            plan.clips.len()
        );
        println!(
            "  ffmpeg peak RSS: {peak_mb:.0} MiB (polled VmHWM {:.0} MiB, getrusage {}), peak threads {threads}; \
             bound {bound_mb} MiB: {}",
            polled_kb as f64 / 1024.0,
            kernel_kb.map_or("below an earlier child".to_string(), |kb| format!("{:.0} MiB", kb as f64 / 1024.0)),
            if within { "within" } else { "OVER" }
        );
        println!("peak_rss_bytes={} lines={n}", peak_kb * 1024);
        if !within {
            over.push(n);
        }
    }
    if over.is_empty() { Ok(()) } else { Err(format!("renders over the bound: {over:?} lines").into()) }
}

/// The largest resident set of any waited-for child of this process, in KiB.
fn children_max_rss_kb() -> u64 {
    super::bench::children_usage().map_or(0, |usage| usage.ru_maxrss.max(0) as u64)
}

/// Polls this process's children named `name` for their peak memory
/// (VmHWM, summed over those running at once) and thread count (likewise)
/// until stopped.
struct ChildWatch {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl ChildWatch {
    fn start(name: &'static str) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let (mut peak_kb, mut threads) = (0u64, 0u64);
            loop {
                // A render split across the cores runs several at once: what
                // they hold together (each one's peak so far, summed) is the render's.
                let (mut together_kb, mut together_threads) = (0u64, 0u64);
                for pid in children_named(name) {
                    if let Some((hwm, t)) = status_of(pid) {
                        together_kb += hwm;
                        together_threads += t;
                    }
                }
                peak_kb = peak_kb.max(together_kb);
                threads = threads.max(together_threads);
                tokio::select! {
                    _ = &mut stopped => return (peak_kb, threads),
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        Self { stop, task }
    }

    async fn stop(self) -> (u64, u64) {
        let _ = self.stop.send(());
        self.task.await.unwrap_or((0, 0))
    }
}

/// Pids of this process's children whose command is `name`.
fn children_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // pid (comm) state ppid ...; comm may hold spaces, so split after the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else { return false };
            let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
            comm == name && ppid == Some(me)
        })
        .collect()
}

/// VmHWM (KiB) and Threads of `pid`, from `/proc/<pid>/status`.
fn status_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse::<u64>().ok();
    Some((field("VmHWM:")?, field("Threads:")?))
}
