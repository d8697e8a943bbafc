//! The team's own media: uploaded or fetched, checked, used by a job (a
//! still pinned to a sentence, a clip for the rest, a voice-over as the
//! narration), exported and deleted; bad uploads refused with nothing stored.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{QueueKind, error_code, files_under, probe, spawn_app, spawn_app_with};

/// The still's colour, far from anything testsrc2 or a caption draws.
const STILL_RGB: (f64, f64, f64) = (224.0, 48.0, 122.0);
/// The voice-over's pitch: a tone no espeak-ng narration would make.
const TONE_HZ: f64 = 523.0;

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).arg(out).status().unwrap();
    assert!(status.success(), "ffmpeg could not make {}", out.display());
}

/// A solid PNG, a 2 s testsrc2 MP4 clip and a 6 s tone as MP3.
fn make_media(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let still = dir.join("still.png");
    ffmpeg(&["-f", "lavfi", "-i", "color=c=0xE0307A:s=800x1200", "-frames:v", "1"], &still);
    let clip = dir.join("clip.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p"], &clip);
    let voice = dir.join("voice.mp3");
    ffmpeg(&["-f", "lavfi", "-i", &format!("sine=frequency={TONE_HZ}:duration=6"), "-c:a", "libmp3lame"], &voice);
    (still, clip, voice)
}

async fn upload(app: &crate::support::TestApp, path: &Path, name: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/media?name={name}", app.address))
        .header("content-type", "application/octet-stream")
        .body(std::fs::read(path).unwrap())
        .send()
        .await
        .unwrap()
}

async fn uploaded(app: &crate::support::TestApp, path: &Path, name: &str) -> Value {
    let resp = upload(app, path, name).await;
    assert_eq!(resp.status(), 201, "upload of {name} refused");
    resp.json().await.unwrap()
}

/// Mean RGB of rows `y..y+h` of the frame at `at_s`.
fn mean_rgb(video: &str, at_s: f64, y: u32, h: u32) -> (f64, f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at_s:.3}"), "-i", video, "-frames:v", "1"])
        .args(["-vf", &format!("crop=1080:{h}:0:{y}"), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n = (out.stdout.len() / 3) as f64;
    let sum = |c: usize| out.stdout.iter().skip(c).step_by(3).map(|v| f64::from(*v)).sum::<f64>() / n;
    (sum(0), sum(1), sum(2))
}

fn distance(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2) + (a.2 - b.2).powi(2)).sqrt()
}

/// The pitch of the audio between `from_s` and `from_s + 1`, from its zero crossings.
fn pitch_hz(video: &str, from_s: f64) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{from_s:.3}"), "-t", "1", "-i", video])
        .args(["-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let samples: Vec<i16> = out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let crossings = samples.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (samples.len() as f64 / 16_000.0)
}

#[tokio::test]
async fn a_still_pinned_to_sentence_two_a_clip_and_a_voiceover_make_the_video() {
    if crate::support::media_measured_in_the_sqlite_pass() {
        return;
    }
    let app = spawn_app(QueueKind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let (still, clip, voice) = make_media(dir.path());
    let still = uploaded(&app, &still, "pink.png").await;
    let clip = uploaded(&app, &clip, "bars.mp4").await;
    let voice = uploaded(&app, &voice, "take-3.mp3").await;
    assert_eq!(
        (still["kind"].as_str(), still["width"].as_u64(), still["height"].as_u64()),
        (Some("image"), Some(800), Some(1200))
    );
    assert_eq!((clip["kind"].as_str(), clip["content_type"].as_str()), (Some("video"), Some("video/mp4")));
    assert!((clip["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.1, "{clip}");
    assert_eq!((voice["kind"].as_str(), voice["content_type"].as_str()), (Some("audio"), Some("audio/mpeg")));
    assert_eq!(still["origin"], "upload");

    let script = "The first sentence plays over moving bars. The second one shows the pink still. The third goes back to the bars.";
    let id = app
        .submit(json!({
            "script": script,
            "media": {
                "footage": [clip["id"]],
                "pins": [{ "sentence": 2, "media": still["id"] }],
                "voiceover": voice["id"],
            }
        }))
        .await;
    let job = app.wait_staged(&id).await;
    let video = job["outputs"]["video"]["path"].as_str().unwrap().to_string();
    let p = probe(&video);
    assert_eq!((p.width, p.height, p.video_codec.as_str(), p.audio_codec.as_str()), (1080, 1920, "h264", "aac"));
    let narration = &job["manifest"]["narration"];
    let voice_s = voice["duration_s"].as_f64().unwrap();
    assert!(
        (p.duration_s - voice_s).abs() < 0.2,
        "the video runs {:.2} s, the voice-over {voice_s:.2} s",
        p.duration_s
    );
    assert_eq!(narration["voice"], format!("media:{}", voice["id"].as_str().unwrap()));

    // The sound is the team's recording, not a narrator's.
    let hz = pitch_hz(&video, 2.0);
    assert!((hz - TONE_HZ).abs() < 15.0, "the audio's pitch is {hz:.0} Hz, the voice-over's {TONE_HZ} Hz");

    // Sentence 2 shows the still (moving, so only its colour is compared);
    // sentences 1 and 3 the clip. The top rows are above the safe area's captions.
    let sentences = narration["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), 3);
    let middle = |s: &Value| (s["start_s"].as_f64().unwrap() + s["end_s"].as_f64().unwrap()) / 2.0;
    let at_two = mean_rgb(&video, middle(&sentences[1]), 0, 240);
    assert!(distance(at_two, STILL_RGB) < 20.0, "sentence 2 shows {at_two:?}, the still is {STILL_RGB:?}");
    for s in [&sentences[0], &sentences[2]] {
        let seen = mean_rgb(&video, middle(s), 0, 240);
        assert!(distance(seen, STILL_RGB) > 60.0, "sentence at {:.1} s shows the still's colour {seen:?}", middle(s));
    }
    let picks = job["manifest"]["footage"].as_array().unwrap();
    let sources: Vec<&str> = picks.iter().map(|p| p["source"].as_str().unwrap()).collect();
    let (c, s) =
        (format!("media:{}", clip["id"].as_str().unwrap()), format!("media:{}", still["id"].as_str().unwrap()));
    assert_eq!(sources, [c.as_str(), s.as_str(), c.as_str()]);
    assert_eq!(picks[1]["still"], true);

    // Export lists the media; a delete takes its file and row, and the job's video stays.
    let export: Value = app.get("/v1/export").await.json().await.unwrap();
    assert_eq!(export["media"].as_array().unwrap().len(), 3);
    let still_id = still["id"].as_str().unwrap();
    let file_of = |id: &str| files_under(app.data.path()).into_iter().find(|f| f.to_string_lossy().contains(id));
    assert!(file_of(still_id).is_some());
    let gone = app.http.delete(format!("{}/v1/media/{still_id}", app.address)).send().await.unwrap();
    assert_eq!(gone.status(), 204);
    assert!(file_of(still_id).is_none(), "the still's file is still stored");
    assert_eq!(app.get(&format!("/v1/media/{still_id}")).await.status(), 404);
    assert!(Path::new(&video).exists());
    // A new job naming the deleted still is refused, naming the field.
    let resp = app
        .post_job_raw(
            &json!({ "script": "One. Two.", "media": { "pins": [{ "sentence": 1, "media": still_id }] } }).to_string(),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["field"], "media.pins[0].media");
    assert_eq!(body["error"]["details"][0]["code"], "media_unknown");
}

#[tokio::test]
async fn bad_uploads_get_a_clear_4xx_and_leave_nothing_stored() {
    let app =
        spawn_app_with(QueueKind::Sqlite, clipforge::app::Roles::all(), &[("CLIPFORGE__UPLOADS__MAX_MB", "1")]).await;
    let dir = tempfile::tempdir().unwrap();

    let page = dir.path().join("page.html");
    std::fs::write(&page, "<!DOCTYPE html><html><body>not a picture</body></html>").unwrap();
    let resp = upload(&app, &page, "page").await;
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "media_unsupported");
    assert!(body["error"]["message"].as_str().unwrap().contains("PNG"), "{body}");

    let big = dir.path().join("big.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(2 * 1024 * 1024, 0);
    std::fs::write(&big, &bytes).unwrap();
    let resp = upload(&app, &big, "big").await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "media_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("uploads.max_mb"), "{body}");

    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nthis is no image at all").unwrap();
    let resp = upload(&app, &broken, "broken").await;
    assert_eq!(resp.status(), 422);
    assert_eq!(error_code(&resp.json().await.unwrap()), "media_unreadable");

    let resp = app
        .http
        .post(format!("{}/v1/media", app.address))
        .json(&json!({ "url": "http://127.0.0.1:9/still.png" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "media_url_refused");
    assert!(body["error"]["message"].as_str().unwrap().contains("uploads.allow_private_urls"), "{body}");

    let list: Value = app.get("/v1/media").await.json().await.unwrap();
    assert_eq!(list["media"], json!([]));
    let stored: Vec<_> =
        files_under(app.data.path()).into_iter().filter(|f| f.to_string_lossy().contains("/media/")).collect();
    assert!(stored.is_empty(), "files left: {stored:?}");

    // A job may not use audio as a picture, nor a voice-over with a topic.
    let voice = dir.path().join("voice.wav");
    ffmpeg(&["-f", "lavfi", "-i", "sine=duration=1"], &voice);
    let voice = uploaded(&app, &voice, "voice").await;
    let resp =
        app.post_job_raw(&json!({ "script": "One. Two.", "media": { "footage": [voice["id"]] } }).to_string()).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["code"], "media_wrong_kind");
    assert!(body["error"]["details"][0]["message"].as_str().unwrap().contains("an image or a video clip"), "{body}");
    let resp = app.post_job_raw(&json!({ "topic": "tides", "media": { "voiceover": voice["id"] } }).to_string()).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["field"], "media.voiceover");
}

#[tokio::test]
async fn a_url_is_fetched_once_through_a_redirect_when_private_addresses_are_allowed() {
    use axum::routing::get;
    let dir = tempfile::tempdir().unwrap();
    let (still, _, _) = make_media(dir.path());
    let png = std::fs::read(&still).unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let server = axum::Router::new()
        .route("/go", get(|| async { axum::response::Redirect::temporary("/files/still.png?sig=s3cr3t") }))
        .route(
            "/files/still.png",
            get(move || {
                let png = png.clone();
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move { ([("content-type", "text/plain")], png) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });

    let app = spawn_app_with(
        QueueKind::Sqlite,
        clipforge::app::Roles::all(),
        &[("CLIPFORGE__UPLOADS__ALLOW_PRIVATE_URLS", "true")],
    )
    .await;
    let resp = app
        .http
        .post(format!("{}/v1/media", app.address))
        .json(&json!({ "url": format!("http://127.0.0.1:{port}/go"), "name": "from the web" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let item: Value = resp.json().await.unwrap();
    // The content decides, not the server's Content-Type; the origin keeps no path or query.
    assert_eq!((item["kind"].as_str(), item["content_type"].as_str()), (Some("image"), Some("image/png")));
    assert_eq!(item["origin"], format!("http://127.0.0.1:{port}"));
    assert_eq!(item["name"], "from the web");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(!item.to_string().contains("s3cr3t"));
}
