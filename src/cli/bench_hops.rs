//! `clipforge bench hops`: how long a task waits between being queued (a
//! stage finishing and handing its job on) and a worker starting it, on the
//! embedded queue and on Redis, with the settings as loaded (defaults: a
//! 10 s heartbeat). Printed beside the baseline measured in the same run:
//! the same hop with push delivery switched off, which waits for the
//! worker's heartbeat. Then one 4 s offline job end to end on the embedded
//! set-up: submit → staged against the time its stages spent working.
//! Targets: p50 ≤ 20 ms and p99 ≤ 200 ms; the job's waiting time ≤ 1 s.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_core::backend::ext::poll_strategy::{PollSnapshot, PollStrategy};
use tokio::sync::mpsc;

use crate::domain::{JobId, Stage};
use crate::settings::Settings;
use crate::store::doorbell::Doorbell;
use crate::store::queue::{StageHandler, StageQueues, StageTask};

pub async fn hops(settings: Settings, count: usize, baseline: usize) -> ExitCode {
    match run(settings, count, baseline).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(super::exit::JOB_FAILED)
        }
    }
}

/// A poll strategy that never wakes the worker: the baseline, where only
/// the heartbeat makes an idle worker look again.
#[derive(Debug)]
struct HeartbeatOnly;

impl PollStrategy for HeartbeatOnly {
    fn poll_drive(&mut self, _: &mut std::task::Context<'_>, _: &PollSnapshot) -> std::task::Poll<Option<()>> {
        std::task::Poll::Pending
    }
}

/// The bench's stage handler: says when each task started.
struct Started(mpsc::UnboundedSender<Instant>);

impl StageHandler for Started {
    async fn run_task(&self, _stage: Stage, _task: StageTask, _worker: &str) -> Result<(), BoxDynError> {
        let _ = self.0.send(Instant::now());
        Ok(())
    }
}

/// p-th percentile (0–100) of sorted `xs`, nearest rank.
fn percentile(xs: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

/// Queues `count` tasks one at a time on the render queue of `queues`, each
/// after the worker has gone idle, and returns each hop in milliseconds.
async fn measure(
    queues: &StageQueues,
    pusher: &StageQueues,
    push: bool,
    count: usize,
    heartbeat: Duration,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let bell: Doorbell = queues.doorbell(Stage::Render).clone();
    let name = format!("bench-hops-{}", uuid::Uuid::now_v7().simple());
    let stop = tokio_util::sync::CancellationToken::new();
    let handler = Arc::new(Started(tx));
    let monitor = if push {
        queues.add_workers_with(Monitor::new(), Stage::Render, 1, handler, name, move || bell.listen())
    } else {
        queues.add_workers_with(Monitor::new(), Stage::Render, 1, handler, name, || HeartbeatOnly)
    };
    let monitor = {
        let stop = stop.clone();
        tokio::spawn(monitor.run_with_signal(async move {
            stop.cancelled().await;
            Ok(())
        }))
    };
    // Let the worker register and park.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut hops = Vec::with_capacity(count);
    for i in 0..count {
        // Idle gaps of varying length, so the push lands at any point of the worker's wait.
        tokio::time::sleep(Duration::from_millis(20 + (i as u64 * 37) % 80)).await;
        let t0 = Instant::now();
        pusher.enqueue(Stage::Render, &JobId::new()).await?;
        let seen = tokio::time::timeout(heartbeat * 3, rx.recv())
            .await
            .map_err(|_| "a queued task was not started within three heartbeats")?
            .ok_or("the worker stopped")?;
        hops.push(seen.duration_since(t0).as_secs_f64() * 1000.0);
    }
    stop.cancel();
    let _ = monitor.await;
    Ok(hops)
}

async fn run(mut settings: Settings, count: usize, baseline: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    settings.queue.namespace = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let heartbeat = settings.queue.heartbeat();
    let redis = if settings.queue_url().starts_with("redis://") {
        settings.queue_url()
    } else {
        "redis://127.0.0.1:6379".to_string()
    };
    let backends = [
        ("embedded (SQLite)", format!("sqlite://{}", dir.path().join("queue.db").display()), None),
        ("Redis, pushed in this process", redis.clone(), None),
        // Doorbells are shared by queue URL: a handle on another spelling of
        // the same Redis rings none of this process's, as another process's
        // would not, so only the Redis push channel wakes the worker.
        ("Redis, pushed from elsewhere", redis.clone(), Some(format!("{}/0", redis.trim_end_matches('/')))),
    ];
    println!(
        "queue hop: task queued → worker started, heartbeat {} s, {count} hops (baseline: {baseline} hops without push delivery)",
        heartbeat.as_secs()
    );
    for (label, url, pusher_url) in backends {
        let queues = match StageQueues::connect(&url, &settings.queue).await {
            Ok(q) => q,
            Err(e) => {
                println!("  {label}: skipped ({e})");
                continue;
            }
        };
        let pusher = match pusher_url {
            Some(u) => StageQueues::connect(&u, &settings.queue).await?,
            None => queues.clone(),
        };
        let mut ours = measure(&queues, &pusher, true, count, heartbeat).await?;
        let mut base = measure(&queues, &pusher, false, baseline, heartbeat).await?;
        ours.sort_by(f64::total_cmp);
        base.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&ours, 50.0), percentile(&ours, 99.0));
        let (b50, b99) = (percentile(&base, 50.0), percentile(&base, 99.0));
        println!("  {label}:");
        println!("    push delivery:   p50 {p50:>8.1} ms   p99 {p99:>8.1} ms   (target p50 <= 20, p99 <= 200)");
        println!("    heartbeat only:  p50 {b50:>8.1} ms   p99 {b99:>8.1} ms");
        println!("    ratio (push / heartbeat, p50): {:.4}", p50 / b50);
    }
    offline_job(settings).await
}

/// One 4 s offline job on the embedded set-up, submit → staged, against the
/// time its stages spent working (each stage's start to the next one's, less
/// the hop, is not separable from outside; the render's own time is in the
/// manifest).
async fn offline_job(mut settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    use crate::app::{Application, Roles};
    let dir = tempfile::tempdir()?;
    settings.data.dir = dir.path().to_path_buf();
    settings.server.listen = "127.0.0.1:0".parse()?;
    settings.queue.url = String::new();
    settings.records.url = String::new();
    let app = Application::build(settings, Roles::all()).await?;
    let base = format!("http://127.0.0.1:{}", app.port().ok_or("the API did not start")?);
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let script = "A four second video, made to time the hand-offs between its stages.";
    let started = Instant::now();
    let resp = http
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "script": script }).to_string())
        .send()
        .await?;
    let id = resp.json::<serde_json::Value>().await?["job_id"].as_str().ok_or("not accepted")?.to_string();
    let job = loop {
        let job: serde_json::Value = http.get(format!("{base}/v1/jobs/{id}")).send().await?.json().await?;
        match job["state"].as_str() {
            Some("staged") => break job,
            Some("failed" | "cancelled") => return Err(format!("the job ended {}", job["state"]).into()),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let total = started.elapsed().as_secs_f64();
    let render = job["manifest"]["render"]["render_seconds"].as_f64().unwrap_or(0.0);
    let duration = job["manifest"]["render"]["duration_s"].as_f64().unwrap_or(0.0);
    let ts = |state: &str| {
        job["events"].as_array().and_then(|evs| {
            evs.iter()
                .find(|e| e["state"] == state)
                .and_then(|e| e["at"].as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        })
    };
    println!("a {duration:.1} s offline job on the embedded set-up, default settings:");
    println!("  submit → staged:  {total:>6.2} s");
    println!("  render (ffmpeg):  {render:>6.2} s");
    if let (Some(q), Some(p), Some(r), Some(s)) = (ts("queued"), ts("preparing"), ts("rendering"), ts("staging")) {
        let ms = |a: chrono::DateTime<chrono::FixedOffset>, b: chrono::DateTime<chrono::FixedOffset>| {
            (b - a).num_milliseconds()
        };
        println!(
            "  queued → preparing {} ms; preparing → rendering {} ms (prepare work + hop); rendering → staging {} ms (render + hop)",
            ms(q, p),
            ms(p, r),
            ms(r, s)
        );
    }
    println!("  everything but the render: {:.2} s", total - render);
    stop.cancel();
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let xs: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), 100.0);
        assert_eq!(percentile(&xs, 99.0), 198.0);
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
    }
}
