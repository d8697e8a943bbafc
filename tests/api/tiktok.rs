//! TikTok end to end against the stateful emulator: connecting accounts (web
//! and desktop flows), exactly one draft per job, limits waited out, one
//! refresh for many workers, and no token in the records or the logs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use clipforge::app::Roles;
use clipforge::crypto::{TokenCipher, sha256_hex};
use clipforge::domain::{JobState, Stage};
use clipforge::store::records::AccountStatus;
use reqwest::redirect::Policy;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::emulators::tiktok::{self, TikTok};
use crate::support::{QueueKind, TestApp, error_code, spawn_app_with};

/// The token key of every test app here (32 bytes, base64).
fn token_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

/// Settings that point clipforge's TikTok client at the emulator.
pub fn tiktok_env(emu: &TikTok) -> Vec<(String, String)> {
    [
        ("CLIPFORGE__TIKTOK__CLIENT_KEY", tiktok::CLIENT_KEY.to_string()),
        ("CLIPFORGE__TIKTOK__CLIENT_SECRET", tiktok::CLIENT_SECRET.to_string()),
        ("CLIPFORGE__TIKTOK__TOKEN_KEY", token_key()),
        ("CLIPFORGE__TIKTOK__AUTHORIZE_URL", format!("{}/v2/auth/authorize/", emu.url)),
        ("CLIPFORGE__TIKTOK__API_URL", emu.url.clone()),
        ("CLIPFORGE__TIKTOK__STATUS_POLL_INITIAL_MS", "100".into()),
        ("CLIPFORGE__TIKTOK__STATUS_POLL_MAX_MS", "500".into()),
        ("CLIPFORGE__TIKTOK__WAITING_CHECK_SECS", "1".into()),
        ("CLIPFORGE__TIKTOK__RESTART_BACKOFF_INITIAL_MS", "100".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub(crate) async fn app_with_tiktok(emu: &TikTok, queue: QueueKind, roles: Roles, extra: &[(&str, &str)]) -> TestApp {
    let mut env = tiktok_env(emu);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with(queue, roles, &pairs).await
}

/// TikTok sends the browser to the registered redirect URI, the public
/// `server.url` (as behind a proxy); the test app listens on a port of its own.
fn to_app(app: &TestApp, url: &str) -> String {
    url.replacen("http://127.0.0.1:8080", &app.address, 1)
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_string()
}

/// The web flow as a browser walks it: our connect link → TikTok's consent
/// page (the emulator approves at once) → our callback. Returns the callback's answer.
pub(crate) async fn connect_account(app: &TestApp) -> Value {
    let http = no_redirects();
    let to_tiktok = http.get(format!("{}/v1/accounts/tiktok/connect", app.address)).send().await.unwrap();
    assert_eq!(to_tiktok.status(), 302, "{}", to_tiktok.text().await.unwrap());
    let back = http.get(location(&to_tiktok)).send().await.unwrap();
    assert_eq!(back.status(), 302, "the emulator refused the authorize URL: {}", back.text().await.unwrap());
    let callback = http.get(to_app(app, &location(&back))).send().await.unwrap();
    assert_eq!(callback.status(), 201, "{}", callback.text().await.unwrap());
    callback.json().await.unwrap()
}

fn assert_no_secret_in(what: &str, haystack: &[u8], secrets: &[String]) {
    let text = String::from_utf8_lossy(haystack);
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} holds a secret in clear text ({}…)", &s[..s.len().min(6)]);
    }
}

fn sha256_file(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

pub(crate) fn staged_file(app: &TestApp, job: &str) -> std::path::PathBuf {
    app.data.path().join("objects").join("renders").join(format!("{job}.mp4"))
}

pub(crate) async fn wait_in_inbox(app: &TestApp, id: &str) -> Value {
    let job =
        app.wait_for(id, &[JobState::InInbox, JobState::Failed, JobState::Cancelled], Duration::from_secs(240)).await;
    assert_eq!(job["state"], "in_inbox", "{job:#}");
    job
}

#[tokio::test]
async fn a_job_with_an_account_ends_in_the_inbox_as_exactly_one_draft() {
    let emu = TikTok::start().await;
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &[]).await;
    let account = connect_account(&app).await;
    assert_eq!(account["open_id"], tiktok::OPEN_ID);
    assert_eq!(account["display_name"], tiktok::DISPLAY_NAME);
    assert_eq!(account["status"], "connected");
    let id = app.submit(json!({ "script": "One draft, exactly once.", "account": account["id"] })).await;

    let job = wait_in_inbox(&app, &id).await;
    let drafts = emu.state.drafts();
    assert_eq!(drafts.len(), 1, "exactly one draft");
    assert_eq!(drafts[0].sha256, sha256_file(&staged_file(&app, &id)), "the draft is the staged MP4, byte for byte");
    assert_eq!(job["manifest"]["tiktok"]["publish_id"], drafts[0].publish_id.as_str());
    let states: Vec<&str> = job["events"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["queued", "preparing", "rendering", "staging", "uploading", "in_inbox"]);

    // Listed masked; the raw record store holds no token, code or secret in clear.
    let list: Value = app.get("/v1/accounts").await.json().await.unwrap();
    let listed = list.to_string();
    assert_no_secret_in("GET /v1/accounts", listed.as_bytes(), &emu.state.secrets());
    assert_no_secret_in("GET /v1/jobs/{id}", job.to_string().as_bytes(), &emu.state.secrets());
    assert_no_secret_in("the record store", &app.raw_records(), &emu.state.secrets());
}

#[tokio::test]
async fn a_job_naming_an_unknown_account_is_refused_with_nothing_stored() {
    let emu = TikTok::start().await;
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let resp = app.post_job_raw(&json!({ "script": "Hello.", "account": "nobody" }).to_string()).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["code"], "account_unknown", "{body:#}");
    let jobs: Value = app.get("/v1/jobs").await.json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn callbacks_with_a_missing_wrong_expired_or_reused_state_are_refused_and_store_nothing() {
    let emu = TikTok::start().await;
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let http = no_redirects();
    let callback = |query: String| {
        let http = http.clone();
        let url = format!("{}/v1/accounts/tiktok/callback?{query}", app.address);
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), error_code(&r.json::<Value>().await.unwrap()).to_string())
        }
    };

    // A real consent, so the code is genuine: only the state decides. The link
    // asked for as JSON, as a teammate would to send it to a creator.
    let link = http
        .get(format!("{}/v1/accounts/tiktok/connect", app.address))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), 200);
    let link: Value = link.json().await.unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(link["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires > chrono::Utc::now(), "{link}");
    let back = http.get(link["authorize_url"].as_str().unwrap()).send().await.unwrap();
    let back = reqwest::Url::parse(&to_app(&app, &location(&back))).unwrap();
    let q: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    let code = &q["code"];

    assert_eq!(callback(format!("code={code}")).await, (400, "oauth_state_missing".into()));
    assert_eq!(callback(format!("code={code}&state=forged")).await, (400, "oauth_state_invalid".into()));
    let records = app.records().await;
    records.put_oauth_state(&sha256_hex("old-state"), chrono::Utc::now() - chrono::Duration::seconds(1)).await.unwrap();
    assert_eq!(callback(format!("code={code}&state=old-state")).await, (400, "oauth_state_expired".into()));
    assert_eq!(emu.state.code_grants.load(std::sync::atomic::Ordering::SeqCst), 0, "no code was exchanged");
    assert!(records.list_accounts().await.unwrap().is_empty(), "nothing stored");

    // The genuine state works once, and only once.
    let state = &q["state"];
    let ok = http.get(back.as_str()).send().await.unwrap();
    assert_eq!(ok.status(), 201);
    assert_eq!(callback(format!("code={code}&state={state}")).await, (400, "oauth_state_invalid".into()));
    assert_eq!(records.list_accounts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_token_key_connecting_is_refused_with_how_to_set_one() {
    let emu = TikTok::start().await;
    let mut env = tiktok_env(&emu);
    env.retain(|(k, _)| k != "CLIPFORGE__TIKTOK__TOKEN_KEY");
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &pairs).await;
    let resp = no_redirects().get(format!("{}/v1/accounts/tiktok/connect", app.address)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "token_key_missing");
    assert!(body["error"]["message"].as_str().unwrap().contains("CLIPFORGE__TIKTOK__TOKEN_KEY"), "{body}");
}

#[tokio::test]
async fn the_desktop_flow_connects_with_a_hex_pkce_challenge() {
    let emu = TikTok::start().await;
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let mut cli = Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .args(["accounts", "connect", "--no-browser", "--timeout-secs", "60"])
        .envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the printed URL, and keep draining stdout so the CLI can print its result.
    let stdout = cli.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = tokio::task::spawn_blocking(move || rx.iter().find(|l| l.starts_with("http")).unwrap()).await.unwrap();
    let q: std::collections::HashMap<String, String> =
        reqwest::Url::parse(&url).unwrap().query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["code_challenge"].len() == 64 && q["code_challenge"].chars().all(|c| c.is_ascii_hexdigit()));
    assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"));

    let http = no_redirects();
    let back = http.get(&url).send().await.unwrap();
    assert_eq!(back.status(), 302, "{}", back.text().await.unwrap());
    let page = http.get(location(&back)).send().await.unwrap().text().await.unwrap();
    assert!(page.starts_with("Connected"), "{page}");
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let accounts = app.records().await.list_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].open_id, tiktok::OPEN_ID);
}

#[tokio::test]
async fn seven_jobs_for_one_account_in_a_day_give_five_drafts_and_two_waiting() {
    let emu = TikTok::start().await;
    // TikTok's real init limit (6/min) would hold the seventh init for a minute
    // in place; what is tested here is the daily draft cap.
    emu.state.init_per_minute.store(100, std::sync::atomic::Ordering::SeqCst);
    let app = app_with_tiktok(
        &emu,
        QueueKind::Redis,
        Roles::all(),
        &[("CLIPFORGE__TIKTOK__INIT_PER_MINUTE", "60"), ("CLIPFORGE__QUEUE__PUBLISH_CONCURRENCY", "2")],
    )
    .await;
    let account = connect_account(&app).await;
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(app.submit(json!({ "script": format!("Draft number {n}."), "account": account["id"] })).await);
    }
    let ends = [JobState::InInbox, JobState::Waiting, JobState::Failed, JobState::Cancelled];
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(app.wait_for(id, &ends, Duration::from_secs(300)).await);
    }
    let count = |s: &str| jobs.iter().filter(|j| j["state"] == s).count();
    assert_eq!((count("in_inbox"), count("waiting"), count("failed")), (5, 2, 0), "{jobs:#?}");
    assert_eq!(emu.state.drafts().len(), 5);
    for job in jobs.iter().filter(|j| j["state"] == "waiting") {
        let last = job["events"].as_array().unwrap().last().unwrap().clone();
        let retry_at: chrono::DateTime<chrono::Utc> = serde_json::from_value(last["retry_at"].clone()).unwrap();
        assert!(retry_at > chrono::Utc::now() + chrono::Duration::hours(23), "tries again after the window: {last}");
        assert!(last["note"].as_str().unwrap().contains("pending_drafts_cap"), "{last}");
    }
}

#[tokio::test]
async fn an_upload_whose_url_expired_once_then_four_more_jobs_give_five_drafts_and_none_waiting() {
    let emu = TikTok::start().await;
    // Six inits within a minute (one of them the restart); what is tested is the draft cap.
    emu.state.init_per_minute.store(100, std::sync::atomic::Ordering::SeqCst);
    let app =
        app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &[("CLIPFORGE__TIKTOK__INIT_PER_MINUTE", "60")]).await;
    let account = connect_account(&app).await;
    // The first upload's only chunk is answered late; meanwhile its hour runs out.
    emu.state.put_delay_ms.store(1500, std::sync::atomic::Ordering::SeqCst);
    let first = app.submit(json!({ "script": "Sent too late, then again.", "account": account["id"] })).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    while emu.state.put_calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the upload never started: {:#}", app.job(&first).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emu.state.expire_upload_urls();
    emu.state.put_delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    wait_in_inbox(&app, &first).await;
    assert_eq!(emu.state.inits_for(tiktok::OPEN_ID), 2, "the expired upload was started again");

    let mut ids = vec![first];
    for n in 0..4 {
        ids.push(app.submit(json!({ "script": format!("One of four more, {n}."), "account": account["id"] })).await);
    }
    let ends = [JobState::InInbox, JobState::Waiting, JobState::Failed, JobState::Cancelled];
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(app.wait_for(id, &ends, Duration::from_secs(300)).await);
    }
    let count = |s: &str| jobs.iter().filter(|j| j["state"] == s).count();
    eprintln!(
        "in_inbox {}, waiting {}, failed {}; drafts at TikTok {}, inits {}",
        count("in_inbox"),
        count("waiting"),
        count("failed"),
        emu.state.drafts().len(),
        emu.state.inits_for(tiktok::OPEN_ID)
    );
    assert_eq!((count("in_inbox"), count("waiting"), count("failed")), (5, 0, 0), "{jobs:#?}");
    for job in &jobs {
        let states: Vec<&str> =
            job["events"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
        assert!(!states.contains(&"waiting"), "no job ever waited: {job:#}");
    }
    assert_eq!(emu.state.drafts_for(tiktok::OPEN_ID).len(), 5, "five drafts at TikTok");
    assert_eq!(emu.state.inits_for(tiktok::OPEN_ID), 6);
}

/// Publish workers as separate processes, logging at debug level to files.
fn publish_worker(app: &TestApp, log: &str, extra: &[(&str, &str)]) -> Child {
    let file = std::fs::File::create(app.data.path().join(log)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .args(["worker", "--role", "publish"])
        .envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(extra.iter().copied())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_publish_worker_killed_mid_upload_leaves_exactly_one_draft() {
    let emu = TikTok::start().await;
    let app =
        app_with_tiktok(&emu, QueueKind::Redis, Roles { api: true, stages: vec![Stage::Prepare, Stage::Render] }, &[])
            .await;
    let account = connect_account(&app).await;
    // Each chunk takes 3 s to be answered: time to kill the uploader mid-PUT.
    emu.state.put_delay_ms.store(3000, std::sync::atomic::Ordering::SeqCst);
    let mut first = publish_worker(&app, "publish-1.log", &[]);
    let id = app.submit(json!({ "script": "Killed while uploading.", "account": account["id"] })).await;

    let deadline = Instant::now() + Duration::from_secs(180);
    while emu.state.put_calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the upload never started: {:#}", app.job(&id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(app.job(&id).await["state"], "uploading");

    let mut second = publish_worker(&app, "publish-2.log", &[]);
    let job = wait_in_inbox(&app, &id).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(emu.state.drafts_for(tiktok::OPEN_ID).len(), 1, "exactly one draft after the redelivery");
    assert_eq!(emu.state.inits_for(tiktok::OPEN_ID), 1, "the redelivery resumed the first upload, no second init");
    assert_eq!(emu.state.drafts()[0].sha256, sha256_file(&staged_file(&app, &id)));
    let notes: Vec<String> =
        job["events"].as_array().unwrap().iter().filter_map(|e| e["note"].as_str().map(str::to_string)).collect();
    assert!(notes.iter().any(|n| n.contains("taken over")), "{job:#}");

    // Debug logs of both workers: no token, code, upload token or client secret.
    for log in ["publish-1.log", "publish-2.log"] {
        let text = std::fs::read(app.data.path().join(log)).unwrap();
        assert!(!text.is_empty());
        assert_no_secret_in(log, &text, &emu.state.secrets());
    }
    assert_no_secret_in("the record store", &app.raw_records(), &emu.state.secrets());
}

#[tokio::test]
async fn an_expired_token_under_four_publish_workers_is_refreshed_once_then_invalid_grant_parks_jobs() {
    let emu = TikTok::start().await;
    let app =
        app_with_tiktok(&emu, QueueKind::Redis, Roles { api: true, stages: vec![Stage::Prepare, Stage::Render] }, &[])
            .await;
    let account = connect_account(&app).await;
    let account_id = account["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(app.submit(json!({ "script": format!("Refresh race {n}."), "account": account_id })).await);
    }
    // Wait until all four are rendered and queued for publish.
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(240);
        while app.job(id).await["manifest"]["render"].is_null() {
            assert!(Instant::now() < deadline, "render did not finish");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // TikTok now refuses the stored access token; four workers find out at once.
    emu.state.expire_access_tokens();
    let publishers = app
        .sibling(Roles { api: false, stages: vec![Stage::Publish] }, &[("CLIPFORGE__QUEUE__PUBLISH_CONCURRENCY", "4")])
        .await;
    for id in &ids {
        wait_in_inbox(&app, id).await;
    }
    assert_eq!(emu.state.refresh_calls.load(std::sync::atomic::Ordering::SeqCst), 1, "exactly one refresh");
    assert_eq!(emu.state.drafts().len(), 4);

    // The rotated refresh token is the one stored (sealed).
    let records = app.records().await;
    let stored = records.account(&account_id).await.unwrap().unwrap();
    let cipher = TokenCipher::from_base64(&SecretString::from(token_key())).unwrap();
    let refresh = cipher.open(&stored.tokens.unwrap().refresh, &format!("tiktok:{}:refresh", tiktok::OPEN_ID)).unwrap();
    assert_eq!(Some(refresh.expose_secret().to_string()), emu.state.current_refresh_token(tiktok::OPEN_ID));

    // TikTok withdraws the grant: the next job waits for a reconnect, it does not fail.
    emu.state.revoke_refresh_tokens();
    emu.state.expire_access_tokens();
    let id = app.submit(json!({ "script": "Waiting for the creator.", "account": account_id })).await;
    let job =
        app.wait_for(&id, &[JobState::Waiting, JobState::Failed, JobState::InInbox], Duration::from_secs(240)).await;
    assert_eq!(job["state"], "waiting", "{job:#}");
    let note = job["events"].as_array().unwrap().last().unwrap()["note"].as_str().unwrap().to_string();
    assert!(note.contains("needs_reconnect") && note.contains("clipforge accounts connect"), "{note}");
    assert_eq!(records.account(&account_id).await.unwrap().unwrap().status, AccountStatus::NeedsReconnect);
    let listed: Value = app.get("/v1/accounts").await.json().await.unwrap();
    assert!(listed["accounts"][0]["action"].as_str().unwrap().contains("connect"), "{listed}");

    // Connecting again lets the waiting job go on by itself.
    connect_account(&app).await;
    wait_in_inbox(&app, &id).await;
    assert_eq!(emu.state.drafts().len(), 5);
    publishers.stop().await;
}

#[tokio::test]
async fn disconnecting_revokes_at_tiktok_deletes_the_tokens_and_refuses_new_jobs() {
    let emu = TikTok::start().await;
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let account = connect_account(&app).await;
    let id = account["id"].as_str().unwrap();
    assert!(account["access_token"].as_str().unwrap().contains("****"), "masked: {account}");

    let resp = app.http.delete(format!("{}/v1/accounts/{id}", app.address)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let gone: Value = resp.json().await.unwrap();
    assert_eq!(gone["status"], "disconnected");
    assert!(gone["access_token"].is_null(), "{gone}");
    assert_eq!(emu.state.revoke_calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(emu.state.current_refresh_token(tiktok::OPEN_ID), None, "the grant is revoked at TikTok");
    assert!(app.records().await.account(id).await.unwrap().unwrap().tokens.is_none(), "tokens deleted");

    let resp = app.post_job_raw(&json!({ "script": "Hello.", "account": id }).to_string()).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["code"], "account_disconnected", "{body}");
    let missing = app.http.delete(format!("{}/v1/accounts/nobody", app.address)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
