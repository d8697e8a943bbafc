//! Jobs go from HTTP through a real queue and one ffmpeg pass to a staged MP4.

use std::time::Duration;

use clipforge::domain::JobState;
use serde_json::{Value, json};

use crate::support::{
    QueueKind, caption_band, error_code, files_under, grey_band, history, mean_abs_diff, probe, spawn_app,
    spawn_app_with,
};

/// Writes a few seconds of tone as an MP3 music track.
fn make_track(path: &std::path::Path) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "sine=frequency=330:duration=3", "-c:a", "libmp3lame"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "could not make a music track");
}

const SCRIPT: &str = "The tide comes in twice a day. Nobody asks it to. It simply follows the moon.";

/// What every staged render must be, checked on the file a user downloads.
fn assert_staged_video(job: &Value) -> String {
    let video = &job["outputs"]["video"];
    let path = video["path"].as_str().expect("local store gives a path").to_string();
    let p = probe(&path);
    assert_eq!((p.width, p.height), (1080, 1920));
    assert_eq!((p.video_codec.as_str(), p.pix_fmt.as_str(), p.fps.as_str()), ("h264", "yuv420p", "30/1"));
    assert_eq!(p.audio_codec, "aac");
    let narration = job["manifest"]["narration"]["duration_s"].as_f64().unwrap();
    assert!((p.duration_s - narration).abs() <= 0.5, "video {:.2}s vs narration {narration:.2}s", p.duration_s);
    assert_eq!(video["bytes"].as_u64().unwrap(), std::fs::metadata(&path).unwrap().len());
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(1080), Some(1920)));
    assert!(video["key"].as_str().unwrap().starts_with("renders/"));
    path
}

async fn full_flow(kind: QueueKind) {
    let app = spawn_app(kind).await;
    let id = app.submit(json!({ "script": SCRIPT, "footage_queries": ["ocean"] })).await;
    let job = app.wait_staged(&id).await;
    assert_staged_video(&job);
    assert_eq!(history(&job), ["queued", "preparing", "rendering", "staging", "staged"]);
    assert_eq!(job["progress"], 100);
    let words = job["manifest"]["narration"]["words"].as_array().unwrap();
    assert_eq!(words.len(), SCRIPT.split_whitespace().count(), "one timing per word");
    assert!(files_under(&app.scratch_dir()).is_empty(), "scratch files left behind");
    // A listing by state finds it.
    let page: Value = app.get("/v1/jobs?state=staged").await.json().await.unwrap();
    assert_eq!(page["jobs"][0]["id"], id.as_str());
    // The download route streams the same file from the local store.
    let download = app.get(job["outputs"]["video"]["download"].as_str().unwrap()).await;
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "video/mp4");
    let path = job["outputs"]["video"]["path"].as_str().unwrap();
    assert_eq!(download.bytes().await.unwrap().as_ref(), std::fs::read(path).unwrap().as_slice());
    // And the metrics count it.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("clipforge_jobs{state=\"staged\"} 1\n"), "{metrics}");
    assert!(metrics.contains("clipforge_queue_depth{queue=\"render\"} 0\n"), "{metrics}");
    let bytes = job["outputs"]["video"]["bytes"].as_u64().unwrap();
    assert!(metrics.contains(&format!("clipforge_staged_bytes {bytes}\n")), "{metrics}");
    assert!(metrics.contains("clipforge_stage_seconds_count{stage=\"render\"} 1\n"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_job_reaches_staged_over_redis_as_a_checked_mp4() {
    full_flow(QueueKind::Redis).await;
}

#[tokio::test]
async fn a_job_reaches_staged_in_embedded_mode() {
    full_flow(QueueKind::Sqlite).await;
}

#[tokio::test]
async fn captions_are_burnt_into_the_caption_band_and_music_mixes_in() {
    let music = tempfile::tempdir().unwrap();
    make_track(&music.path().join("bed.mp3"));
    let music_dir = music.path().display().to_string();
    let app =
        spawn_app_with(QueueKind::Sqlite, clipforge::app::Roles::all(), &[("CLIPFORGE__MEDIA__MUSIC_DIR", &music_dir)])
            .await;
    let with = app.submit(json!({ "script": SCRIPT })).await;
    let without = app
        .submit(json!({ "script": SCRIPT, "captions": false, "music": { "track": "bed.mp3", "volume": 0.4 } }))
        .await;
    let with = app.wait_staged(&with).await;
    let without = app.wait_staged(&without).await;
    let (with_path, without_path) = (assert_staged_video(&with), assert_staged_video(&without));

    // Half-way through the second word a caption is on screen.
    let word = &with["manifest"]["narration"]["words"][1];
    let at = (word["start_s"].as_f64().unwrap() + word["end_s"].as_f64().unwrap()) / 2.0;
    let (y, h) = caption_band();
    let band = mean_abs_diff(&grey_band(&with_path, at, y, h), &grey_band(&without_path, at, y, h));
    let above = mean_abs_diff(&grey_band(&with_path, at, 100, h), &grey_band(&without_path, at, 100, h));
    assert!(band > 3.0 && band > 4.0 * above, "caption band differs by {band:.2}, the frame above by {above:.2}");
}

#[tokio::test]
async fn text_that_means_something_to_ass_or_ffmpeg_renders_literally() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let script = r"Bold {\b1}tags{\b0} stay text. A \N is not a break: it's 100% [literal]; right? 🎬 שלום עולם.";
    let id = app.submit(json!({ "script": script })).await;
    let job = app.wait_staged(&id).await;
    assert_staged_video(&job);
    let words: Vec<&str> =
        job["manifest"]["narration"]["words"].as_array().unwrap().iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert_eq!(words.join(" "), script, "caption words are the script's words, untouched");
}

#[tokio::test]
async fn a_missing_music_track_fails_at_render_and_retry_resumes_there() {
    let music = tempfile::tempdir().unwrap();
    let music_dir = music.path().display().to_string();
    let app =
        spawn_app_with(QueueKind::Sqlite, clipforge::app::Roles::all(), &[("CLIPFORGE__MEDIA__MUSIC_DIR", &music_dir)])
            .await;
    let id = app.submit(json!({ "script": "Short one.", "music": { "track": "missing.mp3" } })).await;
    let job = app.wait_for(&id, &[JobState::Failed, JobState::Staged], Duration::from_secs(120)).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["stage"], "render");
    assert_eq!(job["error"]["stage"], "render");
    assert_eq!(error_code(&job), "music_not_found");
    assert_eq!(job["error"]["retryable"], false);
    assert!(job["error"]["message"].as_str().unwrap().contains("missing.mp3"));
    assert_eq!(history(&job), ["queued", "preparing", "rendering", "failed"], "no retries of a permanent error");

    // Put the track in place and retry: the job resumes at render, not prepare.
    make_track(&music.path().join("missing.mp3"));
    let retry = app.post(&format!("/v1/jobs/{id}/retry")).await;
    assert_eq!(retry.status(), 202);
    let job = app.wait_staged(&id).await;
    assert_eq!(
        history(&job),
        ["queued", "preparing", "rendering", "failed", "queued", "rendering", "staging", "staged"]
    );
}

#[tokio::test]
async fn cancelling_a_rendering_job_stops_ffmpeg_and_cleans_up() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let id = app.submit(json!({ "script": "This render is cancelled half way. ".repeat(8) })).await;
    let job = app.wait_for(&id, &[JobState::Rendering], Duration::from_secs(120)).await;
    assert_eq!(job["state"], "rendering");
    let scratch = app.scratch_dir().display().to_string();
    let ffmpeg_running = || {
        let out = std::process::Command::new("pgrep").args(["-f", &scratch]).output().unwrap();
        !out.stdout.is_empty()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ffmpeg_running() {
        assert!(std::time::Instant::now() < deadline, "ffmpeg never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = app.post(&format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!(resp.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ffmpeg_running() || !files_under(&app.scratch_dir()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "ffmpeg or scratch files outlived the cancel");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = app.job(&id).await;
    assert_eq!(history(&job).last().unwrap(), "cancelled");
    assert!(job["outputs"]["video"].is_null(), "a cancelled job stages nothing");
}

#[tokio::test]
async fn a_cached_input_gone_before_the_render_is_made_again_not_failed() {
    let music = tempfile::tempdir().unwrap();
    let music_dir = music.path().display().to_string();
    let app =
        spawn_app_with(QueueKind::Sqlite, clipforge::app::Roles::all(), &[("CLIPFORGE__MEDIA__MUSIC_DIR", &music_dir)])
            .await;
    // Fails at render (no track yet), after prepare cached its narration.
    let id = app.submit(json!({ "script": SCRIPT, "music": { "track": "bed.mp3" } })).await;
    let failed = app.wait_for(&id, &[JobState::Failed], Duration::from_secs(120)).await;
    assert_eq!(error_code(&failed), "music_not_found");
    // The cached narration goes (as when another job that used it is purged).
    let narration = failed["manifest"]["narration"]["key"].as_str().unwrap().to_string();
    let file = app.data.path().join("objects").join(&narration);
    std::fs::remove_file(&file).unwrap();
    make_track(&music.path().join("bed.mp3"));

    assert_eq!(app.post(&format!("/v1/jobs/{id}/retry")).await.status(), 202);
    let job = app.wait_staged(&id).await;
    let notes: Vec<&str> = job["events"].as_array().unwrap().iter().filter_map(|e| e["note"].as_str()).collect();
    assert!(notes.iter().any(|n| n.contains(&format!("`{narration}` was gone; preparing again"))), "{notes:?}");
    assert_eq!(history(&job).iter().filter(|s| *s == "preparing").count(), 2, "{:?}", history(&job));
    assert!(file.exists(), "the narration was made again");
    let p = probe(job["outputs"]["video"]["path"].as_str().unwrap());
    assert_eq!((p.width, p.height, p.audio_codec.as_str()), (1080, 1920, "aac"));
}

#[tokio::test]
async fn a_japanese_script_splits_at_its_full_stops_and_captions_word_by_word() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let id = app.submit(json!({ "script": "今日は晴れです。明日は雨が降ります。" })).await;
    let job = app.wait_staged(&id).await;
    assert_staged_video(&job);
    let manifest = &job["manifest"];
    assert_eq!(manifest["script"]["sentences"], json!(["今日は晴れです。", "明日は雨が降ります。"]));
    let words: Vec<&str> =
        manifest["narration"]["words"].as_array().unwrap().iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert!(words.len() >= 6, "word by word, not a sentence at a time: {words:?}");
    assert_eq!(words.concat(), "今日は晴れです。明日は雨が降ります。", "every character, once, in order");
    let (first, last) = (&manifest["narration"]["words"][0], &manifest["narration"]["words"][words.len() - 1]);
    assert!(first["end_s"].as_f64() < last["start_s"].as_f64(), "each word has its own time");
}
