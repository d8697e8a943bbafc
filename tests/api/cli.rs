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
