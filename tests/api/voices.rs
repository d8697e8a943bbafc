//! Voice and language, and length on target: a voice that cannot speak the
//! script's language, the voice list, spoken samples from the cache, and
//! topic videos that land within 10 % of their target length.

use std::sync::atomic::Ordering;
use std::time::Duration;

use clipforge::app::Roles;
use serde_json::{Value, json};

use crate::emulators::elevenlabs;
use crate::emulators::openrouter::{self, OpenRouter};
use crate::providers::{Emulators, app_with};
use crate::support::{QueueKind, TestApp, probe, spawn_app, spawn_app_with};

const HINDI: &str = "समुद्र हर दिन दो बार किनारे तक आता है। फिर वह चाँद के नीचे लौट जाता है।";

async fn post_json(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.http.post(format!("{}{path}", app.address)).json(&body).send().await.unwrap()
}

/// The audio's codec and duration, by ffprobe.
fn probe_audio(bytes: &[u8]) -> (String, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.wav");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codec = v["streams"][0]["codec_name"].as_str().unwrap_or_default().to_string();
    (codec, v["format"]["duration"].as_str().unwrap_or("0").parse().unwrap())
}

#[tokio::test]
async fn a_hindi_script_with_an_english_voice_is_refused_naming_both_and_without_one_the_hindi_voice_speaks() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let res = app.post_job_raw(&json!({ "script": HINDI, "voice": "en-us" }).to_string()).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_spec");
    let detail = &body["error"]["details"][0];
    assert_eq!((detail["field"].as_str(), detail["code"].as_str()), (Some("voice"), Some("voice_language_mismatch")));
    let message = detail["message"].as_str().unwrap();
    assert!(message.contains("`en-us`") && message.contains("`hi`"), "{message}");

    // A given language counts too, and a bad tag is named.
    let res =
        app.post_job_raw(&json!({ "script": "Plain words.", "voice": "en-us", "language": "ja" }).to_string()).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["code"], "voice_language_mismatch");
    let res = app.post_job_raw(&json!({ "script": "Plain words.", "language": "english!" }).to_string()).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["error"]["details"][0]["field"].as_str(), body["error"]["details"][0]["code"].as_str()),
        (Some("language"), Some("language_invalid"))
    );

    // Without a voice, espeak-ng's Hindi voice speaks it.
    let id = app.submit(json!({ "script": HINDI, "captions": false })).await;
    let job = app.wait_staged(&id).await;
    assert_eq!(job["manifest"]["narration"]["voice"], "hi");
    assert!(job["manifest"]["narration"]["duration_s"].as_f64().unwrap() > 2.0);
}

#[tokio::test]
async fn the_voice_list_names_each_espeak_voice_with_its_languages() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let res = app.get("/v1/voices").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["narrator"].as_str(), body["default_voice"].as_str()), (Some("espeak"), Some("en-us")));
    let voices = body["voices"].as_array().unwrap();
    assert!(voices.len() > 50, "espeak-ng has over a hundred voices: {}", voices.len());
    let find = |id: &str| voices.iter().find(|v| v["id"] == id).unwrap_or_else(|| panic!("no {id} in {body}"));
    assert_eq!(find("hi")["languages"], json!(["hi"]));
    assert_eq!(find("en-us")["languages"], json!(["en-us", "en"]));
    assert_eq!(find("en-us")["name"], "English (America)");
    assert!(find("cmn")["languages"].as_array().unwrap().contains(&json!("zh")));
}

#[tokio::test]
async fn a_preview_is_real_audio_in_the_voices_language_and_the_second_comes_from_the_cache() {
    // espeak-ng: the Hindi voice says its Hindi sentence.
    let app = spawn_app(QueueKind::Sqlite).await;
    let res = app.post("/v1/voices/hi/preview").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/wav");
    let (codec, seconds) = probe_audio(&res.bytes().await.unwrap());
    assert_eq!(codec, "pcm_s16le");
    assert!(seconds > 1.0, "a sentence, not a blip: {seconds} s");
    let res = app.post("/v1/voices/no-such-voice/preview").await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "voice_not_found");

    // ElevenLabs: its voice list, and a sample that costs one request however often it is asked.
    let emu = Emulators::start().await;
    let app = app_with(&emu, &[]).await;
    let list: Value = app.get("/v1/voices").await.json().await.unwrap();
    assert_eq!(list["narrator"], "elevenlabs");
    assert_eq!(list["default_voice"], elevenlabs::VOICE);
    let ids: Vec<(&str, &Value)> =
        list["voices"].as_array().unwrap().iter().map(|v| (v["id"].as_str().unwrap(), &v["languages"])).collect();
    assert_eq!(ids, [(elevenlabs::VOICE, &json!(["en"])), (elevenlabs::HINDI_VOICE, &json!(["hi"]))]);

    let path = format!("/v1/voices/{}/preview", elevenlabs::HINDI_VOICE);
    let started = std::time::Instant::now();
    let first = post_json(&app, &path, json!({ "text": "नमस्ते, यह मेरी आवाज़ है।" })).await;
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.unwrap();
    let first_took = started.elapsed();
    let calls = emu.elevenlabs.calls();
    assert_eq!(calls, 1);
    let started = std::time::Instant::now();
    let second = post_json(&app, &path, json!({ "text": "नमस्ते, यह मेरी आवाज़ है।" })).await.bytes().await.unwrap();
    let second_took = started.elapsed();
    assert_eq!(emu.elevenlabs.calls(), calls, "the second sample is the cached one");
    assert_eq!(first, second);
    assert!(second_took < first_took, "from the cache: {second_took:?} against {first_took:?}");
    let (codec, seconds) = probe_audio(&first);
    assert_eq!(codec, "pcm_s16le");
    assert!(seconds > 0.5, "{seconds} s");

    // The ElevenLabs voices' languages decide submissions too.
    let res = app.post_job_raw(&json!({ "script": HINDI, "voice": elevenlabs::VOICE }).to_string()).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    let message = body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(message.contains(elevenlabs::VOICE) && message.contains("`hi`"), "{message}");
    let res = app.post_job_raw(&json!({ "script": HINDI, "voice": elevenlabs::HINDI_VOICE }).to_string()).await;
    assert_eq!(res.status(), 202);
    assert!(emu.elevenlabs.state.list_calls.load(Ordering::SeqCst) <= 2, "the lists are read once");
}

#[tokio::test]
async fn topic_videos_of_30_60_and_90_seconds_land_within_a_tenth_after_one_rewrite() {
    if crate::support::media_measured_in_the_sqlite_pass() {
        return;
    }
    let llm = OpenRouter::start().await;
    // First answers are 40 % too long, so each job is corrected once.
    *llm.state.first_answer_factor.lock().unwrap() = 1.4;
    let app = spawn_app_with(
        QueueKind::Sqlite,
        Roles::all(),
        &[
            ("CLIPFORGE__PROVIDERS__SCRIPT__TYPE", "openrouter"),
            ("CLIPFORGE__PROVIDERS__SCRIPT__BASE_URL", &llm.url),
            ("CLIPFORGE__PROVIDERS__SCRIPT__API_KEY", openrouter::KEY),
        ],
    )
    .await;
    let mut ids = Vec::new();
    for (i, target) in [30u32, 60, 90].into_iter().enumerate() {
        let topic = format!("why tides happen, part {i}");
        ids.push((target, app.submit(json!({ "topic": topic, "target_length_s": target, "captions": false })).await));
    }
    let mut seen = Vec::new();
    for (target, id) in ids {
        let job = app.wait_staged(&id).await;
        let video = probe(job["outputs"]["video"]["path"].as_str().unwrap());
        let off = (video.duration_s - f64::from(target)).abs() / f64::from(target);
        seen.push((target, video.duration_s));
        assert!(off <= 0.10, "target {target} s: the video runs {:.1} s ({:.0} % off)", video.duration_s, off * 100.0);
    }
    println!("target and video seconds: {seen:?}");
    let budgets = llm.state.budgets.lock().unwrap().clone();
    assert_eq!(budgets.len(), 6, "a first answer and one rewrite per job: {budgets:?}");
    assert_eq!(llm.calls(), 6);
}

#[tokio::test]
async fn the_word_budget_follows_the_voices_pace() {
    let llm = OpenRouter::start().await;
    let app = spawn_app_with(
        QueueKind::Sqlite,
        Roles { api: true, stages: vec![clipforge::domain::Stage::Prepare] },
        &[
            ("CLIPFORGE__PROVIDERS__SCRIPT__TYPE", "openrouter"),
            ("CLIPFORGE__PROVIDERS__SCRIPT__BASE_URL", &llm.url),
            ("CLIPFORGE__PROVIDERS__SCRIPT__API_KEY", openrouter::KEY),
            ("CLIPFORGE__PROVIDERS__VOICE__WORDS_PER_MINUTE", "120"),
        ],
    )
    .await;
    let _id = app.submit(json!({ "topic": "tides", "target_length_s": 40 })).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while llm.state.budgets.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the writer was never asked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 40 s at espeak-ng -s 120 (2 words/s nominal, 2.38 measured) is 95 words.
    assert_eq!(llm.state.budgets.lock().unwrap()[0], 95);
}

#[tokio::test]
async fn a_rewritten_script_is_asked_for_once_and_never_paid_twice() {
    let llm = OpenRouter::start().await;
    *llm.state.first_answer_factor.lock().unwrap() = 2.0;
    let env = [
        ("CLIPFORGE__PROVIDERS__SCRIPT__TYPE", "openrouter"),
        ("CLIPFORGE__PROVIDERS__SCRIPT__BASE_URL", llm.url.as_str()),
        ("CLIPFORGE__PROVIDERS__SCRIPT__API_KEY", openrouter::KEY),
    ];
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &env).await;
    let spec = json!({ "topic": "tides", "target_length_s": 12, "captions": false });
    let job = app.wait_staged(&app.submit(spec.clone()).await).await;
    assert_eq!(llm.calls(), 2, "a first answer twice too long, then one rewrite");
    let sentences = job["manifest"]["script"]["sentences"].as_array().unwrap().len();
    let narration = job["manifest"]["narration"]["duration_s"].as_f64().unwrap();
    assert!((narration - 12.0).abs() <= 1.2, "the rewritten script is spoken: {narration} s, {sentences} sentences");
    assert!(job["costs"]["llm_prompt_tokens"].as_u64().unwrap() > 0);

    let again = app.wait_staged(&app.submit(spec).await).await;
    assert_eq!(llm.calls(), 2, "the same job again asks nothing");
    assert_eq!(again["manifest"]["script"], job["manifest"]["script"]);
    assert_eq!(again["costs"]["llm_prompt_tokens"], 0);
    assert_eq!(again["manifest"]["narration"]["key"], job["manifest"]["narration"]["key"]);
}

#[tokio::test]
async fn a_batch_line_whose_voice_cannot_speak_it_is_rejected_and_the_others_taken() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let csv = format!("script,voice,language\n{HINDI},en-us,\nPlain English words.,en-us,\nPlain words.,en-us,ja\n");
    let res = app
        .http
        .post(format!("{}/v1/batches", app.address))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let rejected: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["details"][0]["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        [(2, "voice_language_mismatch"), (4, "voice_language_mismatch")],
        "file lines, header first: {body}"
    );
    assert_eq!(body["accepted"].as_array().unwrap().len(), 1, "{body}");
}
