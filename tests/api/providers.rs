//! The real providers (OpenRouter, ElevenLabs, Pexels) against emulators of
//! their contracts: the whole flow, faults, wrong keys, caching, rate budget,
//! fallbacks, and keys that never leak.

use std::sync::atomic::Ordering;
use std::time::Duration;

use clipforge::app::Roles;
use clipforge::domain::JobState;
use serde_json::{Value, json};

use crate::emulators::elevenlabs::{self, ElevenLabs};
use crate::emulators::openrouter::{self, OpenRouter};
use crate::emulators::pexels::{self, Pexels};
use crate::support::{QueueKind, TestApp, error_code, history, probe, spawn_app_with};

/// The three emulators and the settings that point clipforge at them.
pub struct Emulators {
    pub openrouter: OpenRouter,
    pub elevenlabs: ElevenLabs,
    pub pexels: Pexels,
}

impl Emulators {
    pub async fn start() -> Self {
        Self {
            openrouter: OpenRouter::start().await,
            elevenlabs: ElevenLabs::start().await,
            pexels: Pexels::start().await,
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("CLIPFORGE__PROVIDERS__HTTP__ATTEMPTS", "6".to_string()),
            ("CLIPFORGE__PROVIDERS__HTTP__INITIAL_BACKOFF_MS", "100".into()),
            ("CLIPFORGE__PROVIDERS__HTTP__MAX_BACKOFF_MS", "1000".into()),
            ("CLIPFORGE__PROVIDERS__SCRIPT__TYPE", "openrouter".into()),
            ("CLIPFORGE__PROVIDERS__SCRIPT__BASE_URL", self.openrouter.url.clone()),
            ("CLIPFORGE__PROVIDERS__SCRIPT__API_KEY", openrouter::KEY.into()),
            ("CLIPFORGE__PROVIDERS__SCRIPT__TIMEOUT_SECS", "2".into()),
            ("CLIPFORGE__PROVIDERS__VOICE__TYPE", "elevenlabs".into()),
            ("CLIPFORGE__PROVIDERS__VOICE__BASE_URL", self.elevenlabs.url.clone()),
            ("CLIPFORGE__PROVIDERS__VOICE__API_KEY", elevenlabs::KEY.into()),
            ("CLIPFORGE__PROVIDERS__VOICE__DEFAULT_VOICE", elevenlabs::VOICE.into()),
            ("CLIPFORGE__PROVIDERS__VOICE__TIMEOUT_SECS", "3".into()),
            ("CLIPFORGE__PROVIDERS__FOOTAGE__TYPE", "pexels".into()),
            ("CLIPFORGE__PROVIDERS__FOOTAGE__BASE_URL", self.pexels.url.clone()),
            ("CLIPFORGE__PROVIDERS__FOOTAGE__API_KEY", pexels::KEY.into()),
            ("CLIPFORGE__PROVIDERS__FOOTAGE__TIMEOUT_SECS", "2".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// (OpenRouter calls, ElevenLabs calls, Pexels searches, Pexels downloads).
    pub fn counts(&self) -> (u32, u32, u32, u32) {
        (self.openrouter.calls(), self.elevenlabs.calls(), self.pexels.searches(), self.pexels.downloads())
    }
}

pub async fn app_with(emu: &Emulators, extra: &[(&str, &str)]) -> TestApp {
    let mut env = emu.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with(QueueKind::Sqlite, Roles::all(), &pairs).await
}

fn words(job: &Value) -> Vec<(String, f64, f64)> {
    job["manifest"]["narration"]["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (w["text"].as_str().unwrap().to_string(), w["start_s"].as_f64().unwrap(), w["end_s"].as_f64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_topic_becomes_a_staged_mp4_through_all_three_providers_and_is_never_paid_twice() {
    let emu = Emulators::start().await;
    let app = app_with(&emu, &[]).await;
    // No target length: the length correction (tests/api/voices.rs) stays out of this flow.
    let spec = json!({ "topic": "why tides happen" });
    let id = app.submit(spec.clone()).await;
    let job = app.wait_staged(&id).await;

    // The script is the LLM's: hook first, then its sentences.
    let script = &job["manifest"]["script"];
    assert!(script["writer"].as_str().unwrap().starts_with("openrouter:"));
    assert_eq!(script["sentences"][0], openrouter::HOOK);
    assert_eq!(script["sentences"][1], openrouter::SENTENCES[0].0);

    // Caption words carry exactly the times of the characters ElevenLabs returned.
    let answered = emu.elevenlabs.state.answered.lock().unwrap().clone();
    assert_eq!(answered.len(), 1, "one request for a short script");
    let (text, alignment) = &answered[0];
    let starts = alignment["character_start_times_seconds"].as_array().unwrap();
    let ends = alignment["character_end_times_seconds"].as_array().unwrap();
    let got = words(&job);
    assert_eq!(got.len(), text.split_whitespace().count());
    let mut char_at = 0;
    for (word, start, end) in &got {
        let first = text[..].char_indices().filter(|(_, c)| !c.is_whitespace()).map(|(i, _)| i).find(|&i| {
            let n = text[..i].chars().count();
            n >= char_at && text[i..].starts_with(word.as_str())
        });
        let first_char = text[..first.expect("word found in the sent text")].chars().count();
        let last_char = first_char + word.chars().count() - 1;
        assert!((start - starts[first_char].as_f64().unwrap()).abs() < 1e-6, "{word} starts at {start}");
        assert!((end - ends[last_char].as_f64().unwrap()).abs() < 1e-6, "{word} ends at {end}");
        char_at = last_char + 1;
    }

    // Footage is Pexels' 1080x1920 file of each video, credited to its creator.
    let picks = job["manifest"]["footage"].as_array().unwrap();
    assert!(picks.iter().all(|p| p["source"].as_str().unwrap().starts_with("pexels:")));
    assert!(picks.iter().all(|p| p["credit"]["creator"].as_str().unwrap().starts_with("Creator")));
    assert!(picks[0]["credit"]["page_url"].as_str().unwrap().starts_with("https://www.pexels.com/video/"));
    let queries = emu.pexels.state.queries.lock().unwrap().clone();
    assert!(queries.contains(&"ocean waves".to_string()), "the LLM's footage terms drive the search: {queries:?}");

    // The file a user gets.
    let p = probe(job["outputs"]["video"]["path"].as_str().unwrap());
    assert_eq!((p.width, p.height, p.video_codec.as_str(), p.audio_codec.as_str()), (1080, 1920, "h264", "aac"));
    let narration = job["manifest"]["narration"]["duration_s"].as_f64().unwrap();
    assert!((p.duration_s - narration).abs() <= 0.5);

    // Costs are accounted per job.
    let costs = &job["costs"];
    assert!(costs["llm_prompt_tokens"].as_u64().unwrap() > 0 && costs["llm_completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(costs["tts_characters"].as_u64().unwrap(), emu.elevenlabs.state.characters.load(Ordering::SeqCst));
    assert_eq!(costs["pexels_requests"].as_u64().unwrap(), u64::from(emu.pexels.searches()));
    assert!(costs["render_seconds"].as_f64().unwrap() > 0.0);

    // The same job again: nothing is asked of any provider, the same footage is used.
    let before = emu.counts();
    let again = app.submit(spec).await;
    let again = app.wait_staged(&again).await;
    assert_eq!(emu.counts(), before, "(openrouter, elevenlabs, pexels searches, downloads) changed");
    let keys = |j: &Value| -> Vec<String> {
        j["manifest"]["footage"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(keys(&again), keys(&job));
    assert_eq!(again["costs"]["tts_characters"], 0);
    assert_eq!(again["costs"]["llm_prompt_tokens"], 0);
}

#[tokio::test]
async fn with_a_fifth_of_all_calls_failing_every_job_still_finishes() {
    let emu = Emulators::start().await;
    emu.openrouter.state.faults.fail_every(5);
    emu.elevenlabs.state.faults.fail_every(5);
    emu.pexels.state.faults.fail_every(5);
    let app = app_with(&emu, &[]).await;
    let mut ids = Vec::new();
    for topic in ["tides", "volcanoes", "bees", "glaciers", "comets"] {
        ids.push(app.submit(json!({ "topic": topic, "target_length_s": 8 })).await);
    }
    for id in &ids {
        let job = app.wait_staged(id).await;
        assert!(!history(&job).contains(&"failed".to_string()));
    }
    let (or, el, px, _) = emu.counts();
    // Five jobs need at least five calls of each kind; every fifth call failed.
    assert!(or > 5 && el > 5 && px > 5, "faults were exercised: {:?}", emu.counts());
    // Every absorbed failure is counted in the metrics, within a flush interval.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let counted = ["openrouter", "elevenlabs", "pexels"]
            .iter()
            .all(|p| metrics.contains(&format!("clipforge_provider_errors_total{{provider=\"{p}\"")));
        if counted {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "provider errors not in the metrics:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_wrong_key_fails_the_job_at_its_stage_with_one_call_and_no_retry_loop() {
    let emu = Emulators::start().await;
    let app = app_with(&emu, &[("CLIPFORGE__PROVIDERS__VOICE__API_KEY", "xi-wrong-key")]).await;
    let id = app.submit(json!({ "script": "A short line to speak." })).await;
    let job = app.wait_for(&id, &[JobState::Failed, JobState::Staged], Duration::from_secs(60)).await;
    assert_eq!(job["state"], "failed");
    let err = &job["error"];
    assert_eq!(
        (err["stage"].as_str(), err["code"].as_str(), err["retryable"].as_bool()),
        (Some("prepare"), Some("invalid_api_key"), Some(false))
    );
    assert!(err["message"].as_str().unwrap().contains("elevenlabs"), "{err}");
    assert!(!err.to_string().contains("xi-wrong-key"), "the key is in the error: {err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(emu.elevenlabs.calls(), 1, "a refused key is not retried");
    assert_eq!(history(&job), ["queued", "preparing", "failed"]);

    let app = app_with(&emu, &[("CLIPFORGE__PROVIDERS__SCRIPT__API_KEY", "sk-or-v1-wrong")]).await;
    let id = app.submit(json!({ "topic": "tides" })).await;
    let job = app.wait_for(&id, &[JobState::Failed, JobState::Staged], Duration::from_secs(60)).await;
    assert_eq!(error_code(&job), "invalid_api_key");
    assert_eq!(emu.openrouter.calls(), 1);
}

#[tokio::test]
async fn a_spent_pexels_budget_is_waited_out_not_hammered_and_empty_searches_fall_back() {
    let emu = Emulators::start().await;
    emu.pexels.state.hourly_limit.store(2, Ordering::SeqCst);
    let app = app_with(&emu, &[]).await;
    // Four distinct queries (one per sentence), and one that finds nothing.
    let script = "Waves roll in. Cities glow. Forests breathe. Deserts wait. Nothing else.";
    let id = app
        .submit(json!({
            "script": script,
            "footage_queries": ["ocean", "city", "forest", "desert", format!("{} thing", pexels::NOTHING)]
        }))
        .await;
    let job = app.wait_staged(&id).await;
    assert_eq!(emu.pexels.state.throttled.load(Ordering::SeqCst), 0, "the client called past a spent budget");
    let sources: Vec<&str> =
        job["manifest"]["footage"].as_array().unwrap().iter().map(|p| p["source"].as_str().unwrap()).collect();
    assert!(sources.iter().any(|s| s.starts_with("pexels:")));
    assert!(sources.iter().any(|s| s.starts_with("generated:")), "the empty search fell back: {sources:?}");
    let queries = emu.pexels.state.queries.lock().unwrap().clone();
    let nothing = format!("{} thing", pexels::NOTHING);
    assert!(
        queries.contains(&nothing) && queries.contains(&pexels::NOTHING.to_string()),
        "broader query tried: {queries:?}"
    );
}

#[tokio::test]
async fn no_key_reaches_logs_errors_api_answers_or_the_record_store() {
    let emu = Emulators::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = data.path().join("serve.log");
    let mut env = crate::support::test_env(data.path(), QueueKind::Sqlite, "secrets");
    env.extend(emu.env());
    // AI clips too: their key rides in every create, poll and cancel call.
    let runway = crate::emulators::runway::Runway::start().await;
    for (k, v) in [
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__TYPE", "runway"),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__BASE_URL", runway.url.as_str()),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__API_KEY", crate::emulators::runway::KEY),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__MAX_CLIPS_PER_JOB", "1"),
        ("CLIPFORGE__PROVIDERS__AI_VIDEO__POLL_INTERVAL_MS", "100"),
    ] {
        env.push((k.into(), v.into()));
    }
    let records_url = crate::support::test_records_url().await;
    if let Some(url) = &records_url {
        env.push(("CLIPFORGE__RECORDS__URL".into(), url.clone()));
    }
    env.push(("CLIPFORGE__SERVER__LISTEN".into(), format!("127.0.0.1:{port}")));
    let (mut serve, base) = crate::support::serve_process(&env, &log).await;
    let http = reqwest::Client::new();
    let submit = |spec: Value| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r: Value = http.post(format!("{base}/v1/jobs")).json(&spec).send().await.unwrap().json().await.unwrap();
            r["job_id"].as_str().unwrap().to_string()
        }
    };
    // One job that succeeds, one that fails at a provider (unknown voice).
    let ok = submit(json!({ "topic": "tides", "target_length_s": 6 })).await;
    let bad = submit(json!({ "script": "Nobody speaks this.", "voice": "voiceMissing" })).await;
    let mut answers = String::new();
    for id in [&ok, &bad] {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let body = http.get(format!("{base}/v1/jobs/{id}")).send().await.unwrap().text().await.unwrap();
            let job: Value = serde_json::from_str(&body).unwrap();
            if job["state"] == "staged" || job["state"] == "failed" {
                answers.push_str(&body);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "job {id} did not finish: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    answers.push_str(&http.get(format!("{base}/v1/jobs")).send().await.unwrap().text().await.unwrap());
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert!(answers.contains("voice_not_found"), "the failing job failed as planned");

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("stage finished"), "logs were captured");
    let stored = crate::support::stored_bytes(data.path(), &log, records_url.as_deref());
    let stored = String::from_utf8_lossy(&stored);
    assert!(runway.generations() >= 1, "the succeeding job had a clip generated");
    for key in [openrouter::KEY, elevenlabs::KEY, pexels::KEY, crate::emulators::runway::KEY] {
        assert!(!logs.contains(key), "a key is in the logs");
        assert!(!answers.contains(key), "a key is in an API answer");
        assert!(!stored.contains(key), "a key is in the record store or object store");
    }
}

#[tokio::test]
async fn a_long_script_is_split_under_the_character_limit_and_stitched_in_time() {
    let emu = Emulators::start().await;
    let app = app_with(&emu, &[("CLIPFORGE__PROVIDERS__VOICE__MAX_CHARS_PER_REQUEST", "100")]).await;
    let script = "The first part is spoken in one request to the voice service here. \
                  The second part follows in a request of its own, shortly after. \
                  A third part closes the piece with one more sentence of text.";
    let id = app.submit(json!({ "script": script })).await;
    let job = app.wait_staged(&id).await;
    let answered = emu.elevenlabs.state.answered.lock().unwrap().clone();
    assert_eq!(answered.len(), 3, "one request per chunk of at most 100 characters");
    assert!(answered.iter().all(|(text, _)| text.chars().count() <= 100));
    let got = words(&job);
    assert_eq!(
        got.iter().map(|w| w.0.as_str()).collect::<Vec<_>>().join(" "),
        script.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    assert!(got.windows(2).all(|p| p[1].1 >= p[0].2 - 1e-9), "word times run forward across chunks");
    // The second chunk's first word starts after the whole first chunk's audio.
    // Requests run concurrently, so answers are found by their text, not their order.
    let (first_text, first_alignment) = answered.iter().find(|(t, _)| t.starts_with("The first part")).unwrap();
    let first_chunk_words = first_text.split_whitespace().count();
    let first_chunk_end =
        first_alignment["character_end_times_seconds"].as_array().unwrap().last().unwrap().as_f64().unwrap();
    assert!(got[first_chunk_words].1 > first_chunk_end, "{} <= {first_chunk_end}", got[first_chunk_words].1);
    let sentences = job["manifest"]["narration"]["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), 3);
    assert!(sentences[1]["start_s"].as_f64().unwrap() >= sentences[0]["end_s"].as_f64().unwrap());
}
