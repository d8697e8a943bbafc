//! `clipforge bench segments`: one long job rendered in segments by 1, 2
//! (and, on a machine with 8 cores or more, 4) render worker processes, each
//! pinned to a core of its own with `taskset` and given one ffmpeg thread,
//! so that N workers are N single-core machines. Printed beside the 1-worker
//! baseline measured in the same run: each count's render wall time and its
//! ratio to the baseline. Target: 2 workers ≤ 0.6 × 1 worker.
//!
//! The API, prepare and publish roles run in this process on fresh stores in
//! a temporary folder (the configured queue and records when they are not
//! the embedded default), so the same job (its narration and footage cached
//! after the first run) is rendered each time; what is timed is the job's
//! time in `rendering`, from the coordinator's start to the joined MP4 saved.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::bench::exit_code;
use crate::app::{Application, Roles};
use crate::domain::Stage;
use crate::settings::Settings;

const SENTENCE: &str = "Every segment of this benchmark is rendered by whichever worker is free, then joined without \
                        encoding it again.";

pub async fn segments(settings: Settings, config: Option<PathBuf>, seconds: u32, workers: Vec<usize>) -> ExitCode {
    exit_code(run(settings, config, seconds, workers).await)
}

/// Worker counts to measure: the asked ones a machine of `cores` can pin
/// one to a core, always with 1 (the baseline) first; 4 is added on 8 cores
/// or more when not asked.
pub fn worker_counts(asked: &[usize], cores: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = asked.iter().copied().filter(|n| *n >= 1 && *n <= cores.max(1)).collect();
    if cores >= 8 && !counts.contains(&4) {
        counts.push(4);
    }
    counts.push(1);
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// Render workers of this run, killed when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn run(
    mut settings: Settings,
    config: Option<PathBuf>,
    seconds: u32,
    asked: Vec<usize>,
) -> Result<(), Box<dyn std::error::Error>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = Command::new("taskset").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    let counts = worker_counts(&asked, cores);
    let dir = tempfile::tempdir()?;
    settings.data.dir = dir.path().to_path_buf();
    let (records, queue) = (settings.records_url(), settings.queue_url());
    settings.server.listen = "127.0.0.1:0".parse()?;
    settings.queue.namespace = format!("bench-{}", uuid::Uuid::now_v7().simple());
    settings.limits.max_narration_secs = settings.limits.max_narration_secs.max(seconds + 60);
    settings.limits.max_target_secs = settings.limits.max_target_secs.max(seconds + 60);
    settings.limits.max_script_chars = settings.limits.max_script_chars.max(seconds as usize * 40);
    // Every job of the bench is segmented, whatever its length.
    let segment_seconds = settings.media.segment_seconds;
    let env: Vec<(&str, String)> = vec![
        ("CLIPFORGE__DATA__DIR", dir.path().display().to_string()),
        ("CLIPFORGE__RECORDS__URL", records),
        ("CLIPFORGE__QUEUE__URL", queue),
        ("CLIPFORGE__QUEUE__NAMESPACE", settings.queue.namespace.clone()),
        ("CLIPFORGE__QUEUE__RENDER_CONCURRENCY", "1".into()),
        ("CLIPFORGE__MEDIA__FFMPEG_THREADS", "1".into()),
        ("CLIPFORGE__MEDIA__SEGMENT_MIN_SECONDS", "1".into()),
        ("CLIPFORGE__MEDIA__SEGMENT_SECONDS", segment_seconds.to_string()),
    ];
    let app =
        Application::build(settings.clone(), Roles { api: true, stages: vec![Stage::Prepare, Stage::Publish] }).await?;
    let base = format!("http://127.0.0.1:{}", app.port().ok_or("the API did not start")?);
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let exe = std::env::current_exe()?;
    // About 5.5 s of narration a sentence.
    let script = vec![SENTENCE; (seconds as usize * 2 / 11).max(1)].join(" ");
    eprintln!(
        "{cores} cores{}; rendering a {seconds} s job with {counts:?} render workers, one ffmpeg thread each",
        if pin { ", workers pinned with taskset" } else { " (no taskset: workers not pinned)" }
    );

    // Each worker's log, kept after the run (the data folder is not), to see
    // where a surprising figure's time went.
    let logs = std::env::temp_dir().join("clipforge-bench-segments");
    std::fs::create_dir_all(&logs)?;
    eprintln!("worker logs: {}", logs.display());
    let mut results: Vec<(usize, f64, f64, u64, String)> = Vec::new();
    for &n in &counts {
        // Before the workers start: what else the machine was doing.
        let load = super::bench::load_average().unwrap_or_else(|| "unknown".into());
        let mut workers = Workers(Vec::new());
        for core in 0..n {
            let mut cmd = if pin {
                let mut c = Command::new("taskset");
                c.arg("-c").arg((core % cores).to_string()).arg(&exe);
                c
            } else {
                Command::new(&exe)
            };
            if let Some(config) = &config {
                cmd.arg("--config").arg(config);
            }
            cmd.args(["worker", "--role", "render"])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("CLIPFORGE_LOG_FORMAT", "json")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(logs.join(format!("{n}-workers-{core}.log")))?);
            workers.0.push(cmd.spawn()?);
        }
        let answer: serde_json::Value = http
            .post(format!("{base}/v1/jobs"))
            .json(&serde_json::json!({ "script": script }))
            .send()
            .await?
            .json()
            .await?;
        let id = answer["job_id"].as_str().ok_or_else(|| format!("the job was refused: {answer}"))?.to_string();
        let (mut render_started, deadline) = (None::<Instant>, Instant::now() + Duration::from_secs(3600));
        let (render_s, job) = loop {
            let job: serde_json::Value = http.get(format!("{base}/v1/jobs/{id}")).send().await?.json().await?;
            let state = job["state"].as_str().unwrap_or_default().to_string();
            if state == "rendering" && render_started.is_none() {
                render_started = Some(Instant::now());
            }
            // Done once the joined video is saved, not when publish starts:
            // on the embedded queue a worker in another process hears of a
            // task only at its heartbeat (10 s), a wait that is not the render's.
            if !job["manifest"]["render"].is_null()
                || matches!(state.as_str(), "staging" | "staged" | "failed" | "cancelled")
            {
                let started = render_started.ok_or("the job never showed as rendering")?;
                break (started.elapsed().as_secs_f64(), job);
            }
            if Instant::now() > deadline {
                return Err(format!("job {id} did not finish within an hour: {state}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if job["state"] == "failed" || job["state"] == "cancelled" {
            return Err(format!("job {id} {}: {}", job["state"], job["error"]).into());
        }
        drop(workers);
        let duration = job["manifest"]["narration"]["duration_s"].as_f64().unwrap_or(0.0);
        let frames = (duration * 30.0).round() as u64;
        eprintln!("  {n} worker(s): {render_s:.2} s");
        results.push((n, render_s, duration, frames, load));
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;

    let (_, baseline, duration, frames, _) = results[0];
    println!(
        "segmented render of a {duration:.1} s video ({frames} frames, segments of about {segment_seconds} s), \
         preset {}, each worker {} with one ffmpeg thread:",
        settings.media.preset,
        if pin { "pinned to its own core" } else { "unpinned" }
    );
    for (n, wall, _, _, load) in &results {
        let ratio = wall / baseline;
        let note = match n {
            1 => "  (baseline)".to_string(),
            2 => "  (target <= 0.60)".to_string(),
            _ => String::new(),
        };
        println!("  {n} worker(s): {wall:>8.2} s   ratio to 1 worker: {ratio:>5.3}   load before: {load}{note}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_is_always_measured_and_four_workers_only_on_eight_cores() {
        assert_eq!(worker_counts(&[1, 2], 2), [1, 2]);
        assert_eq!(worker_counts(&[2], 2), [1, 2], "1 worker is the baseline");
        assert_eq!(worker_counts(&[1, 2, 4], 2), [1, 2], "no more workers than cores to pin them to");
        assert_eq!(worker_counts(&[1, 2], 8), [1, 2, 4]);
    }
}
