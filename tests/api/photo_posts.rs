//! Photo posts: a job with `format: photos` makes one captioned 1080x1920
//! JPEG per sentence, and TikTok's emulator pulls them (PULL_FROM_URL) from
//! the URL prefix verified for the app; an unverified prefix fails the job
//! with what the operator must verify.

use std::time::Duration;

use clipforge::app::Roles;
use clipforge::domain::JobState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::emulators::tiktok::TikTok;
use crate::support::{QueueKind, TestApp, error_code, mean_abs_diff};
use crate::tiktok::{app_with_tiktok, connect_account};

/// The prefix the operator verified with TikTok, on a domain a CDN would serve.
const VERIFIED: &str = "https://photos.clipforge.test/p/";

const FIVE: &str = "Mountains rise above the clouds. Rivers carve the valleys below. Forests cover the gentle \
                    hills. Deserts stretch to the horizon. Oceans hold the rest of the world.";

fn photo_file(app: &TestApp, job: &str, n: usize) -> std::path::PathBuf {
    app.data.path().join("objects").join("renders").join(format!("{job}-{n}.jpg"))
}

/// Rows `y..y+h` of a still, as 8-bit grey pixels (no seeking: ffmpeg gives
/// nothing for `-ss 0` on a single image).
fn image_band(path: &std::path::Path, y: u32, h: u32) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-vf", &format!("crop=1080:{h}:0:{y}"), "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 1080 * h as usize, "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn dimensions(path: &std::path::Path) -> (u64, u64, String) {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams"])
        .arg(path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap(), s["codec_name"].as_str().unwrap().to_string())
}

async fn photo_app(emu: &TikTok, prefix: &str) -> TestApp {
    let app = app_with_tiktok(
        emu,
        QueueKind::Sqlite,
        Roles::all(),
        &[("CLIPFORGE__TIKTOK__PHOTO_URL_PREFIX", prefix), ("CLIPFORGE__RETRY__MAX_ATTEMPTS", "1")],
    )
    .await;
    emu.state.verified_prefixes.lock().unwrap().push(VERIFIED.to_string());
    // A CDN in front of the app: the verified host is served by the app's /p/ route.
    emu.state.resolve.lock().unwrap().insert("photos.clipforge.test".into(), app.address.clone());
    app
}

#[tokio::test]
async fn a_photo_post_of_five_captioned_stills_is_pulled_from_the_verified_prefix() {
    let emu = TikTok::start().await;
    let app = photo_app(&emu, VERIFIED).await;
    let account = connect_account(&app).await;

    let id = app.submit(json!({ "script": FIVE, "account": account["id"], "format": "photos" })).await;
    let job = app.wait_for(&id, &[JobState::InInbox, JobState::Failed], Duration::from_secs(240)).await;
    assert_eq!(job["state"], "in_inbox", "{job:#}");
    assert_eq!(job["manifest"]["photos"].as_array().unwrap().len(), 5, "one still per sentence");
    assert!(job["manifest"].get("video").is_none(), "no video is made");

    let posts = emu.state.photo_posts();
    assert_eq!(posts.len(), 1, "exactly one photo post");
    let post = &posts[0];
    assert_eq!(post.post_mode, "MEDIA_UPLOAD", "an inbox draft by default");
    let urls: Vec<String> = (1..=5).map(|n| format!("{VERIFIED}{id}/{n}.jpg")).collect();
    assert_eq!(post.urls, urls);
    assert_eq!(job["manifest"]["tiktok"]["publish_id"], post.publish_id);
    let ours: Vec<String> =
        (1..=5).map(|n| hex::encode(Sha256::digest(std::fs::read(photo_file(&app, &id, n)).unwrap()))).collect();
    assert_eq!(post.images, ours, "TikTok pulled exactly the stored stills, in order");
    let distinct: std::collections::HashSet<_> = ours.iter().collect();
    assert_eq!(distinct.len(), 5);
    for n in 1..=5 {
        assert_eq!(dimensions(&photo_file(&app, &id, n)), (1080, 1920, "mjpeg".into()), "photo {n}");
    }

    // The sentence is drawn on: the same photo without captions differs in
    // the caption band, and only a little above it.
    let plain = app.submit(json!({ "script": FIVE, "format": "photos", "captions": false })).await;
    let staged = app.wait_for(&plain, &[JobState::Staged, JobState::Failed], Duration::from_secs(240)).await;
    assert_eq!(staged["state"], "staged", "{staged:#}");
    let (with, without) = (photo_file(&app, &id, 1), photo_file(&app, &plain, 1));
    let band = |p: &std::path::Path, y| image_band(p, y, 200);
    let caption_y = 1184;
    let in_band = mean_abs_diff(&band(&with, caption_y), &band(&without, caption_y));
    let above = mean_abs_diff(&band(&with, 300), &band(&without, 300));
    eprintln!("caption band differs by {in_band:.2}, the top by {above:.2}");
    assert!(in_band > 4.0 && above < 1.0, "caption band differs by {in_band:.2}, the top by {above:.2}");

    // The route TikTok pulls from: the JPEG, or a 404 for what no job lists.
    let served = app.get(&format!("/p/{id}/1.jpg")).await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    for missing in [format!("/p/{id}/6.jpg"), format!("/p/{id}/0.jpg"), "/p/not-a-job/1.jpg".into()] {
        let resp = app.get(&missing).await;
        assert_eq!(resp.status(), 404, "{missing}");
        assert_eq!(error_code(&resp.json::<Value>().await.unwrap()), "photo_not_found");
    }
}

#[tokio::test]
async fn a_prefix_tiktok_has_not_verified_fails_the_job_saying_what_to_verify() {
    let emu = TikTok::start().await;
    let unverified = "https://elsewhere.clipforge.test/p/";
    let app = photo_app(&emu, unverified).await;
    let account = connect_account(&app).await;

    let id = app.submit(json!({ "script": FIVE, "account": account["id"], "format": "photos" })).await;
    let job = app.wait_for(&id, &[JobState::InInbox, JobState::Failed], Duration::from_secs(240)).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["error"]["code"], "url_ownership_unverified");
    assert_eq!(job["error"]["retryable"], false);
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains(unverified) && message.contains("URL properties"), "{message}");
    let hint = job["error_hint"].as_str().unwrap();
    assert!(hint.contains("tiktok.photo_url_prefix"), "the operator's action: {hint}");
    assert!(emu.state.photo_posts().is_empty(), "nothing was accepted");
    assert_eq!(emu.state.photo_init_calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}
