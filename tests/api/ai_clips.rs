//! AI-generated clips (Runway) against the contract-enforcing emulator: submit,
//! poll, download, cache and cost; failed generations fall back to the stock
//! footage and the job still renders.

use std::sync::atomic::Ordering;

use clipforge::app::Roles;
use serde_json::{Value, json};

use crate::emulators::runway::{self, Mode, Runway};
use crate::support::{QueueKind, TestApp, probe, spawn_app_with};

const SCRIPT: &str = "Waves roll onto the sand. The city lights come on at night. A forest breathes in the rain.";

async fn app(emu: &Runway, max_clips: &str) -> TestApp {
    let env = [
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__TYPE", "runway"),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__BASE_URL", emu.url.as_str()),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__API_KEY", runway::KEY),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__MAX_CLIPS_PER_JOB", max_clips),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__POLL_INTERVAL_MS", "100"),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__POLL_TIMEOUT_SECS", "20"),
        ("CLIPFORGE__PROVIDERS__HTTP__INITIAL_BACKOFF_MS", "50"),
        ("CLIPFORGE__PROVIDERS__HTTP__MAX_BACKOFF_MS", "200"),
    ];
    spawn_app_with(QueueKind::Sqlite, Roles::all(), &env).await
}

fn picks(job: &Value) -> Vec<Value> {
    job["manifest"]["footage"].as_array().unwrap().clone()
}

/// The mean colour of a 100x100 patch in the upper middle of the frame at `t`,
/// above the caption band.
fn patch_rgb(path: &str, t: f64) -> [u8; 3] {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i", path, "-frames:v", "1"])
        .args(["-vf", "crop=100:100:490:300,scale=1:1:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.len() == 3, "{}", String::from_utf8_lossy(&out.stderr));
    [out.stdout[0], out.stdout[1], out.stdout[2]]
}

#[tokio::test]
async fn generated_clips_are_submitted_polled_downloaded_cached_and_costed() {
    let emu = Runway::start().await;
    // One task at a time: the second is THROTTLED until the first ends.
    emu.state.concurrency.store(1, Ordering::SeqCst);
    // The first output URL arrives expired: the client asks the task for a fresh one.
    emu.state.expire_first_url.store(true, Ordering::SeqCst);
    let app = app(&emu, "2").await;
    let id = app.submit(json!({ "script": SCRIPT })).await;
    let job = app.wait_staged(&id).await;

    let first_picks = picks(&job);
    let generated: Vec<&Value> = first_picks.iter().filter(|p| p["source"] == "runway:gen4.5").collect();
    assert_eq!(generated.len(), 2, "max_clips_per_job slots are generated: {first_picks:#?}");
    assert!(first_picks.iter().any(|p| p["source"].as_str().unwrap().starts_with("generated:")), "the rest is stock");
    assert_eq!(emu.generations(), 2);
    assert_eq!(emu.state.downloads.load(Ordering::SeqCst), 2);
    assert!(emu.state.throttled.load(Ordering::SeqCst) > 0, "a task waited THROTTLED and was polled on");
    assert_eq!(
        emu.state.expired_refusals.load(Ordering::SeqCst),
        2,
        "each expired URL was refused once, then refreshed"
    );
    let bodies = emu.state.bodies.lock().unwrap().clone();
    assert!(bodies.iter().all(|b| b["ratio"] == "720:1280" && b["model"] == "gen4.5"));
    assert!(
        bodies.iter().any(|b| b["promptText"].as_str().unwrap().contains("Waves roll onto the sand.")),
        "the prompt carries the sentence: {bodies:#?}"
    );

    // The generated (red) clip is what the video shows in its slot, upscaled to 1080x1920.
    let video = job["outputs"]["video"]["path"].as_str().unwrap();
    let p = probe(video);
    assert_eq!((p.width, p.height, p.video_codec.as_str()), (1080, 1920, "h264"));
    let first = generated[0];
    let mid = first["at_s"].as_f64().unwrap() + first["duration_s"].as_f64().unwrap() / 2.0;
    let [r, g, b] = patch_rgb(video, mid);
    assert!(r > 180 && g < 90 && b < 90, "the AI clip's red at {mid:.2} s, got {:?}", [r, g, b]);

    // Every generated second is in the cost record, with its credits.
    let seconds: u64 = bodies.iter().map(|b| b["duration"].as_u64().unwrap()).sum();
    assert_eq!(job["costs"]["generated_video_seconds"].as_u64(), Some(seconds));
    let credits = job["costs"]["generation_credits"].as_f64().unwrap();
    assert!((credits - seconds as f64 * 25.0).abs() < 1e-6, "{credits} credits for {seconds} s");
    assert!(job["manifest"].get("warnings").is_none(), "nothing fell back: {}", job["manifest"]["warnings"]);

    // A second job with the same sentences reuses the clips: no new generation, nothing paid.
    let again = app.submit(json!({ "script": SCRIPT })).await;
    let again = app.wait_staged(&again).await;
    assert_eq!(emu.generations(), 2, "the cache answered");
    assert_eq!(emu.create_calls(), 2);
    let keys = |j: &Value| -> Vec<String> { picks(j).iter().map(|p| p["key"].as_str().unwrap().to_string()).collect() };
    assert_eq!(keys(&again), keys(&job));
    assert_eq!(again["costs"]["generated_video_seconds"], 0);
    assert!(!again.to_string().contains(runway::KEY) && !job.to_string().contains(runway::KEY));
}

#[tokio::test]
async fn a_failed_generation_or_the_daily_limit_falls_back_to_stock_footage_and_the_job_renders() {
    let emu = Runway::start().await;
    let app = app(&emu, "3").await;
    for (mode, code, script) in [
        (Mode::Fail, "generation_failed", SCRIPT.to_string()),
        (Mode::DailyLimit, "rate_limited", format!("{SCRIPT} One more line.")),
    ] {
        emu.set_mode(mode);
        let calls_before = emu.create_calls();
        let id = app.submit(json!({ "script": script })).await;
        let job = app.wait_staged(&id).await;
        let picks = picks(&job);
        assert!(
            picks.iter().all(|p| p["source"].as_str().unwrap().starts_with("generated:")),
            "{mode:?}: every slot shows stock footage: {picks:#?}"
        );
        let warnings: Vec<&str> =
            job["manifest"]["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
        assert_eq!(warnings.len(), 3.min(picks.len()), "{mode:?}: one warning per slot: {warnings:#?}");
        assert!(warnings.iter().all(|w| w.contains(code) && w.contains("generated:")), "{warnings:#?}");
        assert!(!job.to_string().contains(runway::KEY));
        assert_eq!(job["costs"]["generated_video_seconds"], 0, "{mode:?}: nothing billed");
        let p = probe(job["outputs"]["video"]["path"].as_str().unwrap());
        assert_eq!((p.width, p.height, p.video_codec.as_str()), (1080, 1920, "h264"));
        let narration = job["manifest"]["narration"]["duration_s"].as_f64().unwrap();
        assert!((p.duration_s - narration).abs() <= 0.5);
        if mode == Mode::DailyLimit {
            // A daily limit is not hammered: one create per slot, no retries.
            assert_eq!(emu.create_calls() - calls_before, warnings.len() as u32);
        }
    }
}

#[tokio::test]
async fn the_emulator_holds_clients_to_runways_contract() {
    let emu = Runway::start().await;
    let http = reqwest::Client::new();
    let create = |body: Value, auth: Option<&str>, version: Option<&str>| {
        let mut r = http.post(format!("{}/v1/text_to_video", emu.url)).json(&body);
        if let Some(a) = auth {
            r = r.bearer_auth(a);
        }
        if let Some(v) = version {
            r = r.header("X-Runway-Version", v);
        }
        r.send()
    };
    let good = json!({ "model": "gen4.5", "promptText": "waves", "ratio": "720:1280", "duration": 5 });
    assert_eq!(create(good.clone(), Some("wrong"), Some(runway::VERSION)).await.unwrap().status(), 401);
    assert_eq!(create(good.clone(), Some(runway::KEY), None).await.unwrap().status(), 400);
    assert_eq!(create(good.clone(), Some(runway::KEY), Some("2023-01-01")).await.unwrap().status(), 400);
    for (field, bad) in [
        ("ratio", json!({ "model": "gen4.5", "promptText": "w", "ratio": "1080:1920", "duration": 5 })),
        ("duration", json!({ "model": "veo3.1", "promptText": "w", "ratio": "1080:1920", "duration": 5 })),
        (
            "promptText",
            json!({ "model": "gen4.5", "promptText": "w".repeat(1001), "ratio": "720:1280", "duration": 5 }),
        ),
        ("model", json!({ "model": "gen9", "promptText": "w", "ratio": "720:1280", "duration": 5 })),
    ] {
        let resp = create(bad, Some(runway::KEY), Some(runway::VERSION)).await.unwrap();
        assert_eq!(resp.status(), 400, "{field}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["issues"][0]["path"][0], field, "{body}");
    }
    assert_eq!(emu.generations(), 0, "nothing refused was generated");

    let resp = create(good, Some(runway::KEY), Some(runway::VERSION)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let poll = || async {
        let r = http
            .get(format!("{}/v1/tasks/{id}", emu.url))
            .bearer_auth(runway::KEY)
            .header("X-Runway-Version", runway::VERSION)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()
    };
    let states: Vec<Value> = vec![poll().await, poll().await, poll().await];
    assert_eq!(
        states.iter().map(|s| s["status"].as_str().unwrap()).collect::<Vec<_>>(),
        ["PENDING", "RUNNING", "SUCCEEDED"]
    );
    let url = states[2]["output"][0].as_str().unwrap().to_string();
    let bytes = http.get(&url).send().await.unwrap().bytes().await.unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &bytes).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height"])
        .args(["-of", "csv=p=0"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h264,720,1280", "a real 720x1280 MP4");
    let expired = url.replace(&url[url.find("exp=").unwrap() + 4..url.find("&sig").unwrap()], "1000");
    assert_eq!(http.get(&expired).send().await.unwrap().status(), 403, "output URLs expire");

    emu.set_mode(Mode::DailyLimit);
    let again = json!({ "model": "gen4.5", "promptText": "w", "ratio": "720:1280", "duration": 2 });
    assert_eq!(create(again, Some(runway::KEY), Some(runway::VERSION)).await.unwrap().status(), 429);
}
