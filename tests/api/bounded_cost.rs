//! What one accepted job may cost: scripts over a limit are refused at the
//! door, jobs that go over later fail with the limit's code, and a failing
//! ffmpeg leaves a short, path-free error on the job.

use std::time::Duration;

use clipforge::app::Roles;
use clipforge::domain::{JobState, Stage};
use serde_json::{Value, json};

use crate::support::{QueueKind, error_code, spawn_app_with};

/// `n` lines of one letter each (1,500 of them fit in the 3,000 characters a
/// script may have), as in the hostile test that found the hole.
fn one_word_lines(n: usize) -> String {
    (0..n).map(|i| format!("{}\n", char::from(b'a' + (i % 26) as u8))).collect()
}

fn detail_codes(err: &Value) -> Vec<String> {
    err["error"]["details"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn fifteen_hundred_one_word_lines_are_refused_naming_the_limits() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let resp = app.post_job_raw(&json!({ "script": one_word_lines(1500) }).to_string()).await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&err), "invalid_spec");
    assert_eq!(detail_codes(&err), ["too_many_sentences", "narration_too_long"]);
    let message = err["error"]["message"].as_str().unwrap();
    for names in ["1500 sentences", "at most 200", "limits.max_sentences", "at most 180 s", "limits.max_narration_secs"]
    {
        assert!(message.contains(names), "`{message}` lacks `{names}`");
    }
    let page: Value = app.get("/v1/jobs").await.json().await.unwrap();
    assert!(page["jobs"].as_array().unwrap().is_empty(), "nothing was created");

    // The same limits hold for a batch line.
    let csv = format!("script\n\"{}\"\n", one_word_lines(1500));
    let resp = app
        .http
        .post(format!("{}/v1/batches", app.address))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap();
    assert!(body.contains("too_many_sentences"), "{body}");
}

#[tokio::test]
async fn two_hundred_one_word_lines_are_accepted_and_planned_within_the_segment_limit() {
    // Prepare only: the render of this job is measured by `clipforge bench cost`.
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![Stage::Prepare] }, &[]).await;
    let id = app.submit(json!({ "script": one_word_lines(200) })).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let job = loop {
        let job = app.job(&id).await;
        if !job["manifest"]["footage"].is_null() || job["state"] == "failed" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "prepare did not finish: {job:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_ne!(job["state"], "failed", "{job:#}");
    let narration = &job["manifest"]["narration"];
    let spoken = narration["duration_s"].as_f64().unwrap();
    assert_eq!(narration["sentences"].as_array().unwrap().len(), 200);
    assert!(spoken > 60.0 && spoken <= 180.0, "narration {spoken} s");
    let footage = job["manifest"]["footage"].as_array().unwrap();
    // Before the limit each of the 200 sentences was its own ffmpeg input.
    assert!(footage.len() <= 32, "{} footage segments, limit 32", footage.len());
    let covered: f64 = footage.iter().map(|p| p["duration_s"].as_f64().unwrap()).sum();
    assert!((covered - spoken).abs() < 0.01, "the segments cover the narration: {covered} of {spoken}");
}

#[tokio::test]
async fn a_narration_that_comes_out_over_the_limit_fails_with_the_limits_code() {
    let app = spawn_app_with(
        QueueKind::Sqlite,
        Roles::all(),
        &[
            ("CLIPFORGE__LIMITS__MAX_NARRATION_SECS", "10"),
            ("CLIPFORGE__LIMITS__MAX_TARGET_SECS", "10"),
            ("CLIPFORGE__LIMITS__MIN_TARGET_SECS", "5"),
        ],
    )
    .await;
    // 20 words: at least 4 s at the fastest rate, so accepted; spoken one
    // sentence at a time they take about 16 s.
    let id = app.submit(json!({ "script": one_word_lines(20) })).await;
    let job = app.wait_for(&id, &[JobState::Failed, JobState::Staged], Duration::from_secs(120)).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let error = &job["error"];
    assert_eq!(error["code"], "narration_too_long", "{job:#}");
    assert_eq!(error["stage"], "prepare");
    assert_eq!(error["retryable"], false);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("at most 10 s") && message.contains("limits.max_narration_secs"), "{message}");
    assert!(job["manifest"]["render"].is_null(), "nothing was rendered");
    assert!(job["manifest"]["footage"].is_null(), "no footage was fetched");
}

#[tokio::test]
async fn a_failing_ffmpeg_leaves_a_short_error_without_paths_on_the_job() {
    // A footage library whose only clip is not a video: the render's ffmpeg fails
    // on it. 30 sentences make a long command line (30 inputs in scratch), which
    // the stored error used to carry whole.
    let library = tempfile::tempdir().unwrap();
    std::fs::write(library.path().join("broken.mp4"), "this is not a video\n".repeat(2000)).unwrap();
    let library_dir = library.path().display().to_string();
    let app = spawn_app_with(
        QueueKind::Sqlite,
        Roles::all(),
        &[("CLIPFORGE__PROVIDERS__FOOTAGE__LIBRARY_DIR", &library_dir)],
    )
    .await;
    let script: String = (1..=30).map(|i| format!("Sentence number {i} is here.\n")).collect();
    let id = app.submit(json!({ "script": script })).await;
    let job = app.wait_for(&id, &[JobState::Failed, JobState::Staged], Duration::from_secs(180)).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(error_code(&job), "ffmpeg_failed", "{job:#}");
    let segments = job["manifest"]["footage"].as_array().unwrap().len();
    assert!((20..=32).contains(&segments), "{segments} footage segments, each an ffmpeg input");

    let resp = app.get(&format!("/v1/jobs/{id}")).await;
    let body = resp.text().await.unwrap();
    let job: Value = serde_json::from_str(&body).unwrap();
    let message = job["error"]["message"].as_str().unwrap();
    eprintln!("stored error: {} bytes; job answer {} bytes: {message:?}", message.len(), body.len());
    assert!(message.len() <= 4096, "{} bytes", message.len());
    assert!(message.starts_with("ffmpeg failed (exit status: 1)"), "{message}");
    assert!(message.contains("Invalid data found when processing input"), "the reason is kept: {message}");
    let data_dir = app.data.path().display().to_string();
    for secret in [data_dir.as_str(), library_dir.as_str(), "scratch/", "-filter_complex", "-i "] {
        assert!(!body.contains(secret), "the job answer holds `{secret}`: {message}");
    }
    for event in job["events"].as_array().unwrap() {
        if let Some(m) = event["error"]["message"].as_str() {
            assert!(m.len() <= 4096, "an event's error is {} bytes", m.len());
        }
    }
}
