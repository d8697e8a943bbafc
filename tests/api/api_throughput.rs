//! Group commits keep their promise: an API process killed with SIGKILL
//! while 32 clients submit jobs loses none it answered 202 for. Every such
//! job is a record and a task on the queue once the process is back. Runs
//! on SQLite records and queue, and in the PostgreSQL pass on PostgreSQL
//! records and Redis.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clipforge::domain::{JobId, Stage};
use clipforge::settings::Settings;
use clipforge::store::queue::StageQueues;
use serde_json::json;

use crate::support::{QueueKind, test_env, test_records_url};

/// `clipforge api` (no workers, so every queued task stays queued) with
/// `env`, its log in `log`; returns once `/healthz` answers.
async fn api_process(env: &[(String, String)], base: &str, log: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .arg("api")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::options().create(true).append(true).open(log).unwrap())
        .spawn()
        .expect("clipforge api starts");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "clipforge api did not start: {}", std::fs::read_to_string(log).unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

#[tokio::test]
async fn an_api_killed_under_load_loses_no_job_it_accepted() {
    let records_url = test_records_url().await;
    // PostgreSQL records go with Redis, as in production; SQLite with SQLite.
    let queue = if records_url.is_some() { QueueKind::Redis } else { QueueKind::Sqlite };
    let data = tempfile::tempdir().unwrap();
    let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut env = test_env(data.path(), queue, &namespace);
    env.push(("CLIPFORGE__SERVER__LISTEN".into(), format!("127.0.0.1:{port}")));
    env.extend(records_url.map(|url| ("CLIPFORGE__RECORDS__URL".to_string(), url)));
    let base = format!("http://127.0.0.1:{port}");
    let log = data.path().join("api.log");
    let mut api = api_process(&env, &base, &log).await;

    // 32 clients, each one submission after the other, for at most 3 s.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (http, url) = (http.clone(), format!("{base}/v1/jobs"));
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                for i in 0.. {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let job = json!({ "script": format!("Client {c}, job {i}: the tide comes in twice a day.") });
                    match http.post(&url).json(&job).send().await {
                        Ok(resp) if resp.status() == 202 => {
                            let body: serde_json::Value = resp.json().await.unwrap();
                            accepted.push(body["job_id"].as_str().unwrap().to_string());
                        }
                        // Anything else is not a promise; the kill ends the client.
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                accepted
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    api.kill().expect("SIGKILL"); // std's kill() sends SIGKILL on Unix
    api.wait().unwrap();
    let mut accepted = HashSet::new();
    for client in clients {
        accepted.extend(client.await.unwrap());
    }
    assert!(accepted.len() >= 32, "the load barely started before the kill: {} jobs accepted", accepted.len());

    // Back on the same stores, the process starts and serves again...
    let mut api = api_process(&env, &base, &log).await;
    let settings = Settings::load_with_env(None, Some(env.clone())).unwrap();
    let records = clipforge::store::records::connect(&settings.records_url()).await.unwrap();
    let queues = StageQueues::connect(&settings.queue_url(), &settings.queue).await.unwrap();
    // ...and every job it accepted is a record and a task.
    let tasks = queues.held_jobs(Stage::Prepare).await.unwrap();
    let mut missing_records = Vec::new();
    for id in &accepted {
        let job = records.job(&JobId::parse(id).unwrap()).await.unwrap();
        if job.is_none() {
            missing_records.push(id.clone());
        }
    }
    let missing_tasks: Vec<_> = accepted.iter().filter(|id| !tasks.contains(*id)).collect();
    let stored: u64 = records.metrics().await.unwrap().jobs_by_state.iter().map(|(_, n)| n).sum();
    eprintln!("{} jobs answered 202 before the SIGKILL; {stored} records, {} queue tasks", accepted.len(), tasks.len());
    // Jobs stored but not yet queued when the process died were never answered
    // 202; the reconciler queues them (records >= tasks).
    assert!(stored >= tasks.len() as u64 && tasks.len() >= accepted.len(), "{stored} records, {} tasks", tasks.len());
    assert!(missing_records.is_empty(), "accepted but not stored: {missing_records:?}");
    assert!(missing_tasks.is_empty(), "accepted but not queued: {missing_tasks:?}");
    let one = accepted.iter().next().unwrap();
    let resp = reqwest::get(format!("{base}/v1/jobs/{one}")).await.unwrap();
    assert_eq!(resp.status(), 200, "the restarted API serves an accepted job");
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["state"], "queued");
    api.kill().unwrap();
    api.wait().unwrap();
}
