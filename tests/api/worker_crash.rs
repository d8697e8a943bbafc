//! A render worker killed with SIGKILL mid-render while another runs: the
//! other takes the job over within the orphan window, finishes it once, and no
//! scratch files or orphaned ffmpeg remain.

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

/// Which of the render workers logged that it started rendering `job`.
fn renderer_of(app: &TestApp, job: &str, logs: &[&str]) -> Option<usize> {
    logs.iter().position(|log| {
        let text = std::fs::read_to_string(app.data.path().join(log)).unwrap_or_default();
        text.lines().any(|l| l.contains(job) && l.contains("stage started"))
    })
}

#[tokio::test]
async fn a_killed_render_worker_hands_its_job_to_one_that_is_running() {
    let app =
        spawn_app_with(QueueKind::Redis, Roles { api: true, stages: vec![Stage::Prepare, Stage::Publish] }, &[]).await;
    let logs = ["render-1.log", "render-2.log"];
    let mut workers = vec![render_worker(&app, logs[0]), render_worker(&app, logs[1])];
    // Long enough that the render is still running when we kill it.
    let script = "This render will be interrupted. ".repeat(8);
    let id = app.submit(json!({ "script": script })).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let busy = loop {
        let job = app.job(&id).await;
        if job["state"] == "rendering"
            && job["progress"].as_u64().unwrap_or(0) >= 5
            && let Some(busy) = renderer_of(&app, &id, &logs)
        {
            break busy;
        }
        assert!(Instant::now() < deadline, "render never got going: {job:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    workers[busy].kill().expect("SIGKILL"); // std's kill() sends SIGKILL on Unix
    workers[busy].wait().unwrap();
    let killed_at = Instant::now();
    assert_eq!(app.job(&id).await["state"], "rendering", "the job is left mid-render");

    // The other worker, already running, takes the job over within the orphan
    // window (1 s heartbeat x 3 missed in tests) plus a poll or two.
    let job = loop {
        let job = app.job(&id).await;
        if history(&job).iter().filter(|s| *s == "rendering").count() == 2 {
            break job;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(10), "no takeover within the orphan window: {job:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let takeover = killed_at.elapsed();
    assert_eq!(job["events"][3]["attempt"], 2);
    assert!(job["events"][3]["note"].as_str().unwrap().contains("taken over"), "{}", job["events"][3]);

    let job = app.wait_for(&id, &[JobState::Staged, JobState::Failed], Duration::from_secs(180)).await;
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert_eq!(job["state"], "staged", "{job:#}");
    assert_eq!(history(&job), ["queued", "preparing", "rendering", "rendering", "staging", "staged"]);
    assert_eq!(stage_of(&job), Some(Stage::Publish));
    assert!(files_under(&app.scratch_dir()).is_empty(), "scratch left: {:?}", files_under(&app.scratch_dir()));
    let leftover = Command::new("pgrep").args(["-f", &app.scratch_dir().display().to_string()]).output().unwrap();
    assert!(leftover.stdout.is_empty(), "an ffmpeg of the killed worker is still running");
    eprintln!("takeover {takeover:?} after the kill");
}
