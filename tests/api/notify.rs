//! Notifications: Telegram messages (against the Bot API emulator) and signed
//! webhooks (against a receiver in the test that verifies the signature the
//! way the README tells receivers to).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clipforge::app::Roles;
use clipforge::domain::{JobState, Stage};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::emulators::serve;
use crate::emulators::telegram::{self, Telegram};
use crate::support::{QueueKind, TestApp, error_code, eventually, spawn_app_with};

const SECRET: &str = "whsec-test-0123456789";
pub(crate) const CHAT: &str = "-1001234567890";
/// A script that uses every MarkdownV2 special character, and a backslash.
const SPECIAL_SCRIPT: &str =
    r"Save 50% (today_only)! Use code *NEW-2025* [at] shop.example ~ #1 > {best} = a|b + `c` \o/.";

/// Settings that point notifications at the emulator, with fast retries.
pub(crate) fn notify_env(tg: &Telegram) -> Vec<(&'static str, String)> {
    vec![
        ("CLIPFORGE__TELEGRAM__BOT_TOKEN", telegram::TOKEN.to_string()),
        ("CLIPFORGE__TELEGRAM__API_URL", tg.url.clone()),
        ("CLIPFORGE__TELEGRAM__TIMEOUT_SECS", "30".into()),
        ("CLIPFORGE__WEBHOOKS__SECRET", SECRET.into()),
        ("CLIPFORGE__WEBHOOKS__ALLOW_PRIVATE", "true".into()),
        ("CLIPFORGE__WEBHOOKS__MAX_ATTEMPTS", "3".into()),
        ("CLIPFORGE__WEBHOOKS__INITIAL_BACKOFF_MS", "200".into()),
        ("CLIPFORGE__WEBHOOKS__TIMEOUT_SECS", "2".into()),
        ("CLIPFORGE__NOTIFY__POLL_MS", "100".into()),
        ("CLIPFORGE__NOTIFY__LEASE_SECS", "2".into()),
    ]
}

async fn app_with(queue: QueueKind, roles: Roles, env: &[(&'static str, String)]) -> TestApp {
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(queue, roles, &extra).await
}

/// What the receiver accepted: bodies whose signature verified.
#[derive(Default)]
struct Receiver {
    events: Mutex<Vec<Value>>,
    bad_signatures: Mutex<u32>,
}

/// The README's recipe: HMAC-SHA256 under the shared secret of
/// "<X-Clipforge-Timestamp>.<raw body>", hex, compared with
/// X-Clipforge-Signature after "sha256="; timestamps older than 5 minutes refused.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (timestamp, signature) = (header("x-clipforge-timestamp"), header("x-clipforge-signature"));
    let Ok(ts) = timestamp.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return false;
    }
    let Some(hex_sig) = signature.strip_prefix("sha256=") else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !verify(SECRET, &headers, &body) {
        *r.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    r.events.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    let router = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(r.clone());
    (format!("{}/hook", serve(router).await), r)
}

/// A URL on which nothing listens: connections are refused.
fn receiver_down() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hook")
}

/// Waits until `check` holds for the job's notifications; panics with them after `timeout`.
async fn wait_notifications(
    app: &TestApp,
    id: &str,
    timeout: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let job = app.job(id).await;
        let list = job["notifications"].as_array().cloned().unwrap_or_default();
        if check(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "notifications never got there: {job:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn all_done(list: &[Value], n: usize) -> bool {
    list.len() == n && list.iter().all(|x| x["status"] == "sent" || x["status"] == "undeliverable")
}

#[tokio::test]
async fn a_staged_job_sends_one_telegram_message_with_its_script_intact_and_one_signed_webhook() {
    let tg = Telegram::start().await;
    let (hook, receiver) = start_receiver().await;
    let app = app_with(QueueKind::Sqlite, Roles::all(), &notify_env(&tg)).await;
    let id = app
        .submit(json!({ "script": SPECIAL_SCRIPT, "notify": { "telegram_chat_id": CHAT, "webhook_url": hook } }))
        .await;
    app.wait_staged(&id).await;
    let list = wait_notifications(&app, &id, Duration::from_secs(20), |l| all_done(l, 2)).await;
    assert!(list.iter().all(|n| n["status"] == "sent" && n["attempts"] == 1), "{list:#?}");
    assert!(!serde_json::to_string(&list).unwrap().contains("127.0.0.1"), "targets are not shown");
    // Nothing more arrives later: one message per event.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let messages = tg.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let m = &messages[0];
    assert_eq!((m.method.as_str(), m.chat_id.as_str()), ("sendvideo", CHAT), "a small video is uploaded");
    assert!(m.video_bytes.unwrap() > 10_000);
    assert!(m.text.starts_with(&format!("Job {id} is ready")), "{}", m.text);
    assert!(m.text.contains(SPECIAL_SCRIPT), "the script arrives intact: {}", m.text);

    let events = receiver.events.lock().unwrap().clone();
    assert_eq!(*receiver.bad_signatures.lock().unwrap(), 0);
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(
        (e["event"].as_str(), e["job_id"].as_str(), e["state"].as_str()),
        (Some("staged"), Some(id.as_str()), Some("staged"))
    );
    assert!(e["id"].as_str().is_some() && e["at"].as_str().is_some());
    assert_eq!(e["data"]["script"], SPECIAL_SCRIPT);
    assert!(e["data"]["video"]["bytes"].as_u64().unwrap() > 10_000);
}

#[tokio::test]
async fn a_failed_job_is_announced_with_stage_and_code_and_a_429_pauses_the_bot() {
    let tg = Telegram::start().await;
    let music = tempfile::tempdir().unwrap();
    let mut env = notify_env(&tg);
    env.push(("CLIPFORGE__MEDIA__MUSIC_DIR", music.path().display().to_string()));
    env.push(("CLIPFORGE__NOTIFY__TELEGRAM_CHAT_ID", "@clipforge_ops".into()));
    let app = app_with(QueueKind::Sqlite, Roles::all(), &env).await;
    tg.state.throttle_next.store(2, Ordering::SeqCst);
    let id = app.submit(json!({ "script": "Short one.", "music": { "track": "missing.mp3" } })).await;
    let job = app.wait_for(&id, &[JobState::Failed, JobState::Staged], Duration::from_secs(120)).await;
    assert_eq!(error_code(&job), "music_not_found");
    let list = wait_notifications(&app, &id, Duration::from_secs(20), |l| all_done(l, 1)).await;
    assert_eq!((list[0]["channel"].as_str(), list[0]["event"].as_str()), (Some("telegram"), Some("failed")));
    assert_eq!(list[0]["status"], "sent", "{list:#?}");

    let calls = tg.calls();
    assert_eq!(calls.len(), 2, "one throttled call, then one that went through");
    let gap = calls[1] - calls[0];
    assert!(gap >= Duration::from_secs(2), "the next call came {gap:?} after a 429 with retry_after 2");
    let messages = tg.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        (m.method.as_str(), m.chat_id.as_str()),
        ("sendmessage", "@clipforge_ops"),
        "the team chat from settings"
    );
    assert!(m.text.starts_with(&format!("Job {id} failed")), "{}", m.text);
    assert!(m.text.contains("Stage: render") && m.text.contains("Code: music_not_found"), "{}", m.text);
    assert!(m.text.contains("What to do:"), "{}", m.text);
}

#[tokio::test]
async fn a_webhook_to_a_receiver_that_is_down_is_retried_then_recorded_undeliverable() {
    let tg = Telegram::start().await;
    let music = tempfile::tempdir().unwrap();
    let mut env = notify_env(&tg);
    env.push(("CLIPFORGE__MEDIA__MUSIC_DIR", music.path().display().to_string()));
    let app = app_with(QueueKind::Sqlite, Roles::all(), &env).await;
    let spec = |url: String| json!({ "script": "Short one.", "music": { "track": "missing.mp3" }, "notify": { "webhook_url": url } });
    let id = app.submit(spec(receiver_down())).await;
    app.wait_for(&id, &[JobState::Failed], Duration::from_secs(120)).await;
    let list = wait_notifications(&app, &id, Duration::from_secs(20), |l| all_done(l, 1)).await;
    let n = &list[0];
    assert_eq!(
        (n["channel"].as_str(), n["status"].as_str(), n["attempts"].as_u64()),
        (Some("webhook"), Some("undeliverable"), Some(3)),
        "{n:#}"
    );
    assert!(n["last_error"].as_str().unwrap().contains("gave up after 3 attempts"), "{n:#}");

    // Without allow_private, a loopback target is refused outright.
    let (hook, receiver) = start_receiver().await;
    env.retain(|(k, _)| *k != "CLIPFORGE__WEBHOOKS__ALLOW_PRIVATE");
    let strict = app_with(QueueKind::Sqlite, Roles::all(), &env).await;
    let id = strict.submit(spec(hook)).await;
    strict.wait_for(&id, &[JobState::Failed], Duration::from_secs(120)).await;
    let list = wait_notifications(&strict, &id, Duration::from_secs(20), |l| all_done(l, 1)).await;
    let n = &list[0];
    assert_eq!((n["status"].as_str(), n["attempts"].as_u64()), (Some("undeliverable"), Some(1)), "{n:#}");
    assert!(n["last_error"].as_str().unwrap().contains("webhooks.allow_private"), "{n:#}");
    assert!(receiver.events.lock().unwrap().is_empty());
}

fn publish_worker(app: &TestApp, log_name: &str) -> Child {
    let log = std::fs::File::create(app.data.path().join(log_name)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .args(["worker", "--role", "publish"])
        .envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("worker starts")
}

#[tokio::test]
async fn a_sender_killed_mid_call_leaves_the_message_to_another_and_it_arrives_once() {
    let tg = Telegram::start().await;
    let roles = Roles { api: true, stages: vec![Stage::Prepare, Stage::Render] };
    let app = app_with(QueueKind::Redis, roles, &notify_env(&tg)).await;
    tg.state.hold_next_ms.store(8_000, Ordering::SeqCst);
    let mut first = publish_worker(&app, "publish-1.log");
    let id = app.submit(json!({ "script": "Killed mid-send.", "notify": { "telegram_chat_id": CHAT } })).await;
    app.wait_staged(&id).await;

    // The first worker's call is held at Telegram's door: kill it there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while tg.state.held.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the send never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    assert_eq!(app.job(&id).await["notifications"][0]["status"], "sending", "left mid-send");

    // Another worker takes the row once its 2 s lease lapses.
    let mut second = publish_worker(&app, "publish-2.log");
    let list = wait_notifications(&app, &id, Duration::from_secs(30), |l| all_done(l, 1)).await;
    // The dead worker's held call is over (dropped when it hung up, or
    // answered at the end of its 8 s hold): any message it carried is in by now.
    eventually(Duration::from_secs(15), || async {
        let held = tg.state.held.load(Ordering::SeqCst);
        if held == 0 { Ok(()) } else { Err(format!("{held} call still held")) }
    })
    .await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!((list[0]["status"].as_str(), list[0]["attempts"].as_u64()), (Some("sent"), Some(2)), "{list:#?}");
    let messages = tg.messages();
    assert_eq!(messages.len(), 1, "exactly one message: {messages:#?}");
    assert!(messages[0].text.contains("Killed mid-send."));
}

/// `clipforge keys …` with the app's settings; returns stdout, panicking on failure.
async fn keys(app: &TestApp, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clipforge"));
    command.arg("keys").args(args).envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "keys {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn a_keys_targets_announce_the_jobs_and_batches_sent_with_it_and_other_keys_jobs_stay_quiet() {
    let tg = Telegram::start().await;
    let mut env = notify_env(&tg);
    env.push(("CLIPFORGE__AUTH__REQUIRE_KEYS", "true".into()));
    let app = app_with(QueueKind::Sqlite, Roles::all(), &env).await;
    let team = keys(
        &app,
        &["create", "--name", "team-a", "--scopes", "jobs:read,jobs:write", "--telegram-chat-id", "@team_a_news"],
    )
    .await;
    let other = keys(&app, &["create", "--name", "team-b", "--scopes", "jobs:read,jobs:write"]).await;
    // A bad target is refused by the CLI, naming the flag.
    let mut bad = Command::new(env!("CARGO_BIN_EXE_clipforge"));
    bad.args(["keys", "create", "--name", "x", "--scopes", "jobs:read", "--webhook-url", "ftp://nope"]);
    let out = bad.envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--webhook-url"), "{}", String::from_utf8_lossy(&out.stderr));

    // Queued events too, for this key's jobs from now on (set after creation).
    let list: Value = serde_json::from_str(&keys(&app, &["list"]).await).unwrap();
    let team_id =
        list.as_array().unwrap().iter().find(|k| k["name"] == "team-a").unwrap()["id"].as_str().unwrap().to_string();
    keys(&app, &["notify", &team_id, "--telegram-chat-id", "@team_a_news", "--notify-on-queued"]).await;

    let post = |key: &str, path: &str, content_type: &str, body: String| {
        app.http
            .post(format!("{}{path}", app.address))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let one =
        post(&team, "/v1/jobs", "application/json", json!({ "script": "Team A says hi." }).to_string()).await.unwrap();
    assert_eq!(one.status(), 202);
    let one = one.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string();
    let batch = post(&team, "/v1/batches", "text/csv", "script\nFirst of two.\nSecond of two.\n".into()).await.unwrap();
    assert_eq!(batch.status(), 201);
    let batch: Value = batch.json().await.unwrap();
    let mut team_jobs: Vec<String> =
        batch["accepted"].as_array().unwrap().iter().map(|l| l["job_id"].as_str().unwrap().to_string()).collect();
    team_jobs.push(one);
    let quiet = post(&other, "/v1/jobs", "application/json", json!({ "script": "Team B stays quiet." }).to_string())
        .await
        .unwrap();
    assert_eq!(quiet.status(), 202);
    let quiet = quiet.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string();

    let get = |id: &str| {
        let req = app.http.get(format!("{}/v1/jobs/{id}", app.address)).bearer_auth(&team).send();
        async move { req.await.unwrap().json::<Value>().await.unwrap() }
    };
    for id in team_jobs.iter().chain([&quiet]) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while get(id).await["state"] != "staged" {
            assert!(Instant::now() < deadline, "job {id} did not stage");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The job shows where it is announced: the key's chat, taken into its spec.
    assert_eq!(get(&team_jobs[0]).await["spec"]["notify"]["telegram_chat_id"], "@team_a_news");
    assert!(get(&quiet).await["spec"]["notify"].is_null());

    let deadline = Instant::now() + Duration::from_secs(30);
    while tg.messages().len() < 6 {
        assert!(Instant::now() < deadline, "{:#?}", tg.messages());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let messages = tg.messages();
    assert_eq!(messages.len(), 6, "queued and ready for each of the three team jobs: {messages:#?}");
    assert!(messages.iter().all(|m| m.chat_id == "@team_a_news"));
    for id in &team_jobs {
        let mut heads: Vec<_> =
            messages.iter().filter(|m| m.text.contains(id.as_str())).map(|m| m.text.lines().next().unwrap()).collect();
        heads.sort();
        assert_eq!(heads, [format!("Job {id} is queued"), format!("Job {id} is ready")], "{messages:#?}");
    }
    assert!(!messages.iter().any(|m| m.text.contains(&quiet)), "the other key's job was announced");

    // Resending the same request with the same idempotency key finds the same
    // job after the key's targets changed (targets are not part of what a job is).
    let body = json!({ "script": "Same job twice.", "idempotency_key": "same-1" }).to_string();
    let first = post(&team, "/v1/jobs", "application/json", body.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    keys(&app, &["notify", &team_id, "--telegram-chat-id", "@team_a_moved"]).await;
    let again = post(&team, "/v1/jobs", "application/json", body).await.unwrap();
    assert_eq!(again.status(), 200, "{}", again.text().await.unwrap());
}
