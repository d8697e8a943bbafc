//! `clipforge bench api`: how many single submissions (`POST /v1/jobs`) the
//! API takes per second from many connections at once, with group commits
//! and, as the baseline in the same run, without (one transaction and one
//! queue push per job); then how fast one large batch is taken in.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::bench::exit_code;
use crate::app::{Application, Roles};
use crate::settings::Settings;

/// `clipforge bench api`: starts the API in this process (no workers, so
/// nothing renders) on the configured record store and queue (by default fresh
/// SQLite files in a temporary folder), once with `server.group_commit_jobs`
/// as configured and once with 1, and sends single submissions from
/// `connections` connections for `seconds` each; then posts a `lines`-line
/// CSV batch. Targets: 3,000 single jobs/s at 32 connections, 20,000 batch
/// jobs/s. Point records and queue at scratch stores: the jobs stay there.
pub async fn api(settings: Settings, seconds: u64, connections: usize, lines: usize) -> ExitCode {
    exit_code(run(settings, seconds, connections, lines).await)
}

/// What one load run saw.
struct Load {
    accepted: u64,
    refused: u64,
    seconds: f64,
    /// Each accepted submission's time to its answer, sorted.
    latencies: Vec<Duration>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.seconds
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let Some(last) = self.latencies.len().checked_sub(1) else { return 0.0 };
        self.latencies[((last as f64) * p).round() as usize].as_secs_f64() * 1000.0
    }
}

async fn run(
    mut settings: Settings,
    seconds: u64,
    connections: usize,
    lines: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::fmt::Write as _;

    let dir = tempfile::tempdir()?;
    settings.data.dir = dir.path().to_path_buf();
    settings.server.listen = "127.0.0.1:0".parse()?;
    settings.queue.namespace = format!("bench-{}", uuid::Uuid::now_v7().simple());
    settings.limits.max_batch_lines = settings.limits.max_batch_lines.max(lines);
    let records = settings.records_url().split(':').next().unwrap_or_default().to_string();
    let grouped = settings.server.group_commit_jobs;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let length = Duration::from_secs(seconds);

    let mut loads = Vec::new();
    for group in [1, grouped] {
        let mut settings = settings.clone();
        settings.server.group_commit_jobs = group;
        let app = Application::build(settings, Roles { api: true, stages: vec![] }).await?;
        let base = format!("http://127.0.0.1:{}", app.port().ok_or("the API did not start")?);
        let queue = app.pipeline().queues.describe();
        let stop = app.shutdown_handle();
        let server = tokio::spawn(app.run_until_stopped());
        eprintln!(
            "{connections} connections for {seconds} s, server.group_commit_jobs = {group}, \
             {records} records, {queue} queue"
        );
        let load = submit_singles(&base, connections, length, &format!("{run}-{group}")).await;
        stop.cancel();
        let _ = server.await;
        loads.push((group, queue, load?));
    }

    let app = Application::build(settings, Roles { api: true, stages: vec![] }).await?;
    let base = format!("http://127.0.0.1:{}", app.port().ok_or("the API did not start")?);
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let mut csv = String::from("script,voice,footage_queries,captions\n");
    for i in 0..lines {
        writeln!(csv, "\"Benchmark {run}, line {i}: the tide comes in twice a day.\",en-us,ocean|moon,true")?;
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;
    let started = Instant::now();
    let resp = http.post(format!("{base}/v1/batches")).header("content-type", "text/csv").body(csv).send().await?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await?;
    let batch_s = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = server.await;
    if status != reqwest::StatusCode::CREATED || answer["counts"]["new"].as_u64() != Some(lines as u64) {
        return Err(format!("the batch was not taken whole ({status}): {}", answer["counts"]).into());
    }

    println!("API in this process, no workers, {records} records; {connections} connections, {seconds} s each:");
    for (group, queue, load) in &loads {
        let how =
            if *group == 1 { "one by one (baseline)".to_string() } else { format!("group commits of <= {group}") };
        println!(
            "  POST /v1/jobs, {how:<28} {queue:>6} queue: {:>7.0} jobs/s  ({} accepted, {} refused; \
             p50 {:.1} ms, p99 {:.1} ms)",
            load.rate(),
            load.accepted,
            load.refused,
            load.percentile_ms(0.5),
            load.percentile_ms(0.99)
        );
    }
    let (_, _, baseline) = &loads[0];
    let (_, _, grouped_load) = &loads[1];
    println!(
        "  speed-up (grouped over one by one): {:.1}x   (target >= 3,000 jobs/s)",
        grouped_load.rate() / baseline.rate()
    );
    println!(
        "  POST /v1/batches, {lines} CSV lines: {batch_s:.2} s, {:>7.0} jobs/s   (target >= 20,000 jobs/s)",
        lines as f64 / batch_s
    );
    println!("single_jobs_per_second={:.0} baseline_jobs_per_second={:.0}", grouped_load.rate(), baseline.rate());
    println!("batch_jobs_per_second={:.0}", lines as f64 / batch_s);
    Ok(())
}

/// Sends single submissions from `connections` connections, each one after
/// the other on its connection, until `length` has passed; every job's
/// script is unique to this run, so none is a duplicate.
async fn submit_singles(base: &str, connections: usize, length: Duration, run: &str) -> Result<Load, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(connections)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{base}/v1/jobs");
    let started = Instant::now();
    let deadline = started + length;
    let senders = (0..connections).map(|c| {
        let (http, url, run) = (http.clone(), url.clone(), run.to_string());
        tokio::spawn(async move {
            let (mut refused, mut latencies) = (0u64, Vec::new());
            let mut i = 0u64;
            while Instant::now() < deadline {
                let job = serde_json::json!({
                    "script": format!("Benchmark {run}, connection {c}, job {i}: the tide comes in twice a day."),
                    "voice": "en-us",
                    "footage_queries": ["ocean", "moon"],
                    "captions": true,
                });
                i += 1;
                let sent = Instant::now();
                match http.post(&url).json(&job).send().await {
                    Ok(resp) if resp.status() == reqwest::StatusCode::ACCEPTED => {
                        let _ = resp.bytes().await;
                        latencies.push(sent.elapsed());
                    }
                    Ok(resp) => {
                        refused += 1;
                        if refused == 1 {
                            let status = resp.status();
                            eprintln!("refused: {status} {}", resp.text().await.unwrap_or_default());
                        }
                    }
                    Err(e) => {
                        refused += 1;
                        if refused == 1 {
                            eprintln!("request failed: {e}");
                        }
                    }
                }
            }
            (refused, latencies)
        })
    });
    let mut load = Load { accepted: 0, refused: 0, seconds: 0.0, latencies: Vec::new() };
    for sender in futures::future::join_all(senders).await {
        let (refused, latencies) = sender.map_err(|e| e.to_string())?;
        load.refused += refused;
        load.accepted += latencies.len() as u64;
        load.latencies.extend(latencies);
    }
    load.seconds = started.elapsed().as_secs_f64();
    load.latencies.sort();
    Ok(load)
}
