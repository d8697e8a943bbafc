//! A render worker killed with SIGKILL mid-render: the job is delivered again,
//! finishes once, and leaves no scratch files.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clipforge::app::Roles;
use clipforge::domain::{JobState, Stage};
use serde_json::json;

use crate::support::{QueueKind, TestApp, files_under, history, spawn_app_with, stage_of};

fn render_worker(app: &TestApp, log_name: &str) -> Child {
    let log = std::fs::File::create(app.data.path().join(log_name)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .args(["worker", "--role", "render"])
        .envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("worker starts")
}

#[tokio::test]
async fn a_killed_render_worker_hands_its_job_to_another() {
    let app =
        spawn_app_with(QueueKind::Redis, Roles { api: true, stages: vec![Stage::Prepare, Stage::Publish] }, &[]).await;
    let mut first = render_worker(&app, "render-1.log");
    // Long enough that the render is still running when we kill it.
    let script = "This render will be interrupted. ".repeat(8);
    let id = app.submit(json!({ "script": script })).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = app.job(&id).await;
        if job["state"] == "rendering" && job["progress"].as_u64().unwrap_or(0) >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "render never got going: {job:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().expect("SIGKILL"); // std's kill() sends SIGKILL on Unix
    first.wait().unwrap();
    assert_eq!(app.job(&id).await["state"], "rendering", "the job is left mid-render");

    let mut second = render_worker(&app, "render-2.log");
    let job = app.wait_for(&id, &[JobState::Staged, JobState::Failed], Duration::from_secs(180)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(job["state"], "staged", "{job:#}");
    assert_eq!(history(&job), ["queued", "preparing", "rendering", "rendering", "staging", "staged"]);
    let second_start = &job["events"][3];
    assert_eq!(second_start["attempt"], 2);
    assert!(second_start["note"].as_str().unwrap().contains("taken over"), "{second_start}");
    assert_eq!(stage_of(&job), Some(Stage::Publish));
    assert!(files_under(&app.scratch_dir()).is_empty(), "scratch left: {:?}", files_under(&app.scratch_dir()));
    let leftover = Command::new("pgrep").args(["-f", &app.scratch_dir().display().to_string()]).output().unwrap();
    assert!(leftover.stdout.is_empty(), "an ffmpeg of the killed worker is still running");
}
