//! The `clipforge` command line as a script would use it: output and exit codes.

use std::process::Command;

use clipforge::app::Roles;

use crate::support::{QueueKind, probe, spawn_app, spawn_app_with};

fn clipforge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clipforge")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

#[tokio::test]
async fn submit_wait_prints_the_mp4_path_last_and_exits_0() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"script": "Scripts can trust this."}"#).unwrap();
    let server = app.address.clone();
    let job_path = job.display().to_string();
    let out = tokio::task::spawn_blocking(move || clipforge(&["submit", &job_path, "--wait", "--server", &server]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let path = stdout.lines().last().expect("a last line");
    assert!(path.ends_with(".mp4"), "{stdout}");
    assert_eq!(probe(path).height, 1920);
}

#[tokio::test]
async fn submit_wait_stops_when_the_job_waits_for_a_reviewer_and_exits_5() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"script": "Someone looks first.", "review": "script"}"#).unwrap();
    let server = app.address.clone();
    let job_path = job.display().to_string();
    let out = tokio::task::spawn_blocking(move || clipforge(&["submit", &job_path, "--wait", "--server", &server]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "stderr: {stderr}");
    assert!(stderr.contains("is in_review at the script review"), "{stderr}");
}

#[tokio::test]
async fn exit_codes_tell_bad_input_missing_jobs_and_unreachable_servers_apart() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"script": ""}"#).unwrap();
    let (server, bad) = (app.address.clone(), bad.display().to_string());
    let (invalid, missing, unreachable, bad_settings) = tokio::task::spawn_blocking(move || {
        (
            clipforge(&["submit", &bad, "--server", &server]),
            clipforge(&["jobs", "show", "01a20000-0000-7000-8000-000000000000", "--server", &server]),
            clipforge(&["jobs", "list", "--server", "http://127.0.0.1:9"]),
            Command::new(env!("CARGO_BIN_EXE_clipforge"))
                .args(["jobs", "list"])
                .env("CLIPFORGE__MEDIA__CRF", "99")
                .output()
                .unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(invalid.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("script_empty")
            || String::from_utf8_lossy(&invalid.stderr).contains("no words")
    );
    assert_eq!(missing.status.code(), Some(4));
    assert_eq!(unreachable.status.code(), Some(3));
    assert_eq!(bad_settings.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&bad_settings.stderr);
    assert!(msg.contains("CLIPFORGE__MEDIA__CRF") && msg.contains("0-51"), "{msg}");
}

/// What the fake API below saw: the `Last-Event-ID` of each event stream
/// opened, and how many times the job itself was asked for.
#[derive(Default)]
struct Seen {
    streams: Vec<Option<String>>,
    job_reads: usize,
}

type Shared = std::sync::Arc<std::sync::Mutex<Seen>>;

/// A fake API for `submit --wait`: the job's first event stream sends
/// `queued` and `rendering` and then drops; the next one sends `staged`.
async fn fake_api(seen: Shared) -> String {
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    use clipforge::api::jobs::{Accepted, JobView, Outputs, VideoView};
    use clipforge::domain::{JobId, JobState};
    use futures::StreamExt as _;

    let job = JobId::new();
    let job_text = job.to_string();
    let state = move |state: &str, stage: &str, id: u32| {
        format!(
            "event: state\nid: {id}\ndata: {{\"job_id\":\"{job_text}\",\"state\":\"{state}\",\"stage\":{stage},\"attempt\":null,\
             \"note\":null,\"error\":null,\"at\":\"2026-12-02T13:00:00Z\",\"retry_at\":null}}\n\n"
        )
    };
    let view = JobView {
        id: job.clone(),
        state: JobState::Staged,
        stage: Some(clipforge::domain::Stage::Publish),
        progress: 100,
        error: None,
        error_hint: None,
        waiting: None,
        retry_at: None,
        outputs: Outputs {
            video: Some(VideoView {
                key: format!("renders/{job}/video.mp4"),
                bytes: 1,
                duration_s: 1.0,
                width: 1080,
                height: 1920,
                expires_at: chrono::Utc::now(),
                path: Some("/somewhere/video.mp4".into()),
                download: format!("/v1/jobs/{job}/video"),
            }),
        },
        costs: Default::default(),
        spec: Default::default(),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
        events: None,
        manifest: None,
        notifications: None,
        review: Default::default(),
        performance: None,
    };
    let view = serde_json::to_value(view).unwrap();
    let accepted =
        serde_json::to_value(Accepted { job_id: job.clone(), state: JobState::Queued, duplicate: false }).unwrap();
    let (for_events, for_job) = (seen.clone(), seen);
    let app = axum::Router::new()
        .route("/v1/jobs", post(move || async move { (axum::http::StatusCode::ACCEPTED, axum::Json(accepted)) }))
        .route(
            "/v1/jobs/{id}",
            get(move || async move {
                for_job.lock().unwrap().job_reads += 1;
                axum::Json(view)
            }),
        )
        .route(
            "/v1/events",
            get(move |headers: HeaderMap| async move {
                let last = headers.get("last-event-id").map(|v| v.to_str().unwrap().to_string());
                let first = {
                    let mut seen = for_events.lock().unwrap();
                    seen.streams.push(last);
                    seen.streams.len() == 1
                };
                let body = if first {
                    // Two events, then the connection ends mid-stream.
                    let text =
                        format!("retry: 100\n\n{}{}", state("queued", "null", 1), state("rendering", "\"render\"", 2));
                    axum::body::Body::from(text)
                } else {
                    let text = state("staged", "\"publish\"", 3);
                    let chunks =
                        futures::stream::iter([Ok::<_, std::io::Error>(text)]).chain(futures::stream::pending());
                    axum::body::Body::from_stream(chunks)
                };
                ([("content-type", "text/event-stream")], body)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn submit_wait_follows_the_event_stream_and_resumes_it_after_a_dropped_connection() {
    let seen = Shared::default();
    let server = fake_api(seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"script": "Followed live."}"#).unwrap();
    let job_path = job.display().to_string();
    let out = tokio::task::spawn_blocking(move || clipforge(&["submit", &job_path, "--wait", "--server", &server]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "/somewhere/video.mp4");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.streams, [None, Some("2".to_string())], "reconnected once, after the last event seen");
    assert_eq!(seen.job_reads, 1, "the job is read once, for the outcome; no polling");
}
