//! YouTube and Instagram beside TikTok: one job, one draft, one video, one
//! reel, the same bytes at each; exactly one each when the publish worker is
//! killed mid-upload; limits waited out, tokens refreshed before use, a
//! revoked grant waiting for a reconnect; no token of any platform in the
//! answers, records or logs.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clipforge::app::Roles;
use clipforge::domain::{JobState, Stage};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::emulators::instagram::{self, Instagram};
use crate::emulators::tiktok::TikTok;
use crate::emulators::youtube::{self, YouTube};
use crate::garage::garage;
use crate::support::{QueueKind, TestApp, error_code};
use crate::tiktok::{app_with_tiktok, connect_account, location, no_redirects};

struct Rig {
    app: TestApp,
    tiktok: TikTok,
    youtube: YouTube,
    instagram: Instagram,
}

/// The app with TikTok, YouTube and Instagram emulators and its videos in
/// Garage (Instagram fetches a presigned link).
async fn rig(queue: QueueKind, roles: Roles, extra: &[(&str, &str)]) -> Rig {
    let (tiktok, youtube, instagram) = (TikTok::start().await, YouTube::start().await, Instagram::start().await);
    let g = garage().await;
    let mut env = youtube.env();
    env.extend(instagram.env());
    env.extend(g.env(&g.bucket()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = app_with_tiktok(&tiktok, queue, roles, &pairs).await;
    Rig { app, tiktok, youtube, instagram }
}

/// Walks a platform's web connect flow as a browser does; the account's view.
async fn connect(app: &TestApp, platform: &str) -> Value {
    let http = no_redirects();
    let out = http.get(format!("{}/v1/accounts/{platform}/connect", app.address)).send().await.unwrap();
    assert_eq!(out.status(), 302, "{}", out.text().await.unwrap());
    let back = http.get(location(&out)).send().await.unwrap();
    assert_eq!(back.status(), 302, "the emulator refused the consent link: {}", back.text().await.unwrap());
    let callback = location(&back).replacen("http://127.0.0.1:8080", &app.address, 1);
    let done = http.get(callback).send().await.unwrap();
    assert_eq!(done.status(), 201, "{}", done.text().await.unwrap());
    done.json().await.unwrap()
}

async fn wait_state(app: &TestApp, id: &str, states: &[JobState]) -> Value {
    let mut all = states.to_vec();
    all.extend([JobState::Failed, JobState::Cancelled]);
    app.wait_for(id, &all, Duration::from_secs(240)).await
}

/// The staged MP4's SHA-256, downloaded as a user would.
async fn staged_sha(app: &TestApp, id: &str) -> String {
    let resp = app.get(&format!("/v1/jobs/{id}/video")).await;
    assert_eq!(resp.status(), 200);
    hex::encode(Sha256::digest(resp.bytes().await.unwrap()))
}

fn targets(yt: &Value, ig: &Value) -> Value {
    json!([{ "platform": "youtube", "account": yt["id"] }, { "platform": "instagram", "account": ig["id"] }])
}

#[tokio::test]
async fn one_job_makes_one_draft_one_video_and_one_reel_of_the_same_bytes() {
    let rig = rig(QueueKind::Sqlite, Roles::all(), &[]).await;
    let app = &rig.app;
    let tt = connect_account(app).await;
    let yt = connect(app, "youtube").await;
    let ig = connect(app, "instagram").await;
    assert_eq!((yt["platform"].as_str(), ig["platform"].as_str()), (Some("youtube"), Some("instagram")));
    assert_eq!(yt["display_name"], youtube::CHANNEL_TITLE);
    assert_eq!(ig["display_name"], instagram::USERNAME);

    let id = app
        .submit(json!({ "script": "Otters hold hands while they sleep.", "account": tt["id"], "targets": targets(&yt, &ig) }))
        .await;
    let job = wait_state(app, &id, &[JobState::InInbox]).await;
    assert_eq!(job["state"], "in_inbox", "a TikTok draft waits in the inbox: {job:#}");

    let sha = staged_sha(app, &id).await;
    let drafts = rig.tiktok.state.drafts();
    let videos = rig.youtube.state.videos();
    let reels = rig.instagram.state.reels();
    assert_eq!((drafts.len(), videos.len(), reels.len()), (1, 1, 1));
    assert_eq!(drafts[0].sha256, sha, "TikTok's bytes");
    assert_eq!(videos[0].sha256, sha, "YouTube's bytes");
    assert_eq!(reels[0].sha256, sha, "Instagram's bytes");
    assert_eq!(videos[0].resource["status"]["privacyStatus"], "private", "the default privacy");
    assert_eq!(videos[0].resource["status"]["containsSyntheticMedia"], true);
    assert_eq!(videos[0].resource["status"]["selfDeclaredMadeForKids"], false);
    assert_eq!(videos[0].bytes as u64, job["manifest"]["video"]["bytes"].as_u64().unwrap());
    assert!(reels[0].caption.chars().count() <= 2200 && !reels[0].caption.is_empty());
    assert_eq!(rig.youtube.state.sessions(), 1);
    assert_eq!(rig.instagram.state.containers(), 1);

    let results = job["manifest"]["targets"].as_array().unwrap();
    let by = |p: &str| results.iter().find(|r| r["platform"] == p).unwrap().clone();
    assert_eq!(by("youtube")["remote_id"], videos[0].id.as_str());
    assert_eq!(by("youtube")["url"], format!("https://youtube.com/shorts/{}", videos[0].id));
    assert_eq!(by("instagram")["remote_id"], reels[0].id.as_str());
    assert!(results.iter().all(|r| r["state"] == "published"), "{results:?}");

    // No platform's token in any answer or record.
    let mut secrets = rig.youtube.state.secrets();
    secrets.extend(rig.instagram.state.secrets());
    let answers = [app.get("/v1/accounts").await.text().await.unwrap(), app.job(&id).await.to_string()];
    let records = app.raw_records();
    let records = String::from_utf8_lossy(&records);
    for s in &secrets {
        assert!(answers.iter().all(|a| !a.contains(s.as_str())), "an answer holds a token");
        assert!(!records.contains(s.as_str()), "the records hold a token in clear ({}…)", &s[..8]);
    }

    // Disconnecting the channel revokes its grant at Google and deletes the tokens.
    let before = rig.youtube.state.grants();
    let gone =
        app.http.delete(format!("{}/v1/accounts/{}", app.address, yt["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(gone.status(), 200);
    let view: Value = gone.json().await.unwrap();
    assert_eq!((view["status"].as_str(), view["access_token"].is_null()), (Some("disconnected"), true), "{view:#}");
    assert_eq!(rig.youtube.state.grants(), before - 1, "the grant was revoked at Google");
}

#[tokio::test]
async fn a_target_account_of_another_platform_or_unknown_is_refused_before_anything_is_stored() {
    let rig = rig(QueueKind::Sqlite, Roles::all(), &[]).await;
    let app = &rig.app;
    let yt = connect(app, "youtube").await;
    let spec = json!({ "script": "Nope.", "targets": [
        { "platform": "instagram", "account": yt["id"] },
        { "platform": "tiktok", "account": "x" },
        { "platform": "youtube", "account": "no-such-channel" },
    ]});
    let resp = app.post_job_raw(&spec.to_string()).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_spec", "{body:#}");
    let fields: Vec<(&str, &str)> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap(), d["code"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, [("targets[1].platform", "target_invalid")], "the shape is checked first: {body:#}");
    let spec = json!({ "script": "Nope.", "targets": [
        { "platform": "instagram", "account": yt["id"] },
        { "platform": "youtube", "account": "no-such-channel" },
    ]});
    let body: Value = app.post_job_raw(&spec.to_string()).await.json().await.unwrap();
    let codes: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["account_unknown", "account_unknown"], "{body:#}");
    let page: Value = app.get("/v1/jobs").await.json().await.unwrap();
    assert!(page["jobs"].as_array().unwrap().is_empty(), "nothing stored");
}

/// A publish worker as a separate process, logging to a file.
fn publish_worker(app: &TestApp, log: &str) -> Child {
    let file = std::fs::File::create(app.data.path().join(log)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .args(["worker", "--role", "publish"])
        .envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn publish_workers_killed_mid_upload_leave_exactly_one_video_and_one_reel() {
    let roles = Roles { api: true, stages: vec![Stage::Prepare, Stage::Render] };
    let rig = rig(QueueKind::Redis, roles, &[]).await;
    let app = &rig.app;
    let yt = connect(app, "youtube").await;
    let ig = connect(app, "instagram").await;
    let id = app.submit(json!({ "script": "Killed twice, posted once.", "targets": targets(&yt, &ig) })).await;

    // YouTube: each chunk is held 3 s; kill the uploader while one is on its way.
    rig.youtube.state.put_delay_ms.store(3000, Ordering::SeqCst);
    let mut first = publish_worker(app, "publish-1.log");
    until("a YouTube chunk", || rig.youtube.state.put_calls.load(Ordering::SeqCst) > 1).await;
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(rig.youtube.state.videos().is_empty(), "killed before the last byte");
    rig.youtube.state.put_delay_ms.store(0, Ordering::SeqCst);

    // Instagram: the container's status polls are held 3 s; kill while one waits.
    rig.instagram.state.poll_delay_ms.store(3000, Ordering::SeqCst);
    let mut second = publish_worker(app, "publish-2.log");
    // Once the container is recorded, the worker polls it.
    until("a poll of the Instagram container", || rig.instagram.state.status_calls.load(Ordering::SeqCst) > 0).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(rig.instagram.state.reels().is_empty(), "killed before media_publish");
    rig.instagram.state.poll_delay_ms.store(0, Ordering::SeqCst);

    let mut third = publish_worker(app, "publish-3.log");
    let job = wait_state(app, &id, &[JobState::Posted]).await;
    let _ = third.kill();
    let _ = third.wait();
    assert_eq!(job["state"], "posted", "{job:#}");
    let sha = staged_sha(app, &id).await;
    let (videos, reels) = (rig.youtube.state.videos(), rig.instagram.state.reels());
    assert_eq!((videos.len(), reels.len()), (1, 1), "exactly one video and one reel");
    assert_eq!(rig.youtube.state.sessions(), 1, "the redelivery resumed the recorded session");
    assert_eq!(rig.instagram.state.containers(), 1, "the redelivery went on with the recorded container");
    assert_eq!((videos[0].sha256.as_str(), reels[0].sha256.as_str()), (sha.as_str(), sha.as_str()));

    // The workers' debug logs hold no token of either platform.
    let mut secrets = rig.youtube.state.secrets();
    secrets.extend(rig.instagram.state.secrets());
    for log in ["publish-1.log", "publish-2.log", "publish-3.log"] {
        let text = std::fs::read_to_string(app.data.path().join(log)).unwrap();
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{log} holds a token ({}…)", &s[..8]);
        }
    }
}

#[tokio::test]
async fn an_exhausted_youtube_quota_waits_for_its_reset_and_an_instagram_limit_waits_then_goes_on() {
    let rig = rig(QueueKind::Sqlite, Roles::all(), &[("CLIPFORGE__INSTAGRAM__LIMIT_WAIT_SECS", "2")]).await;
    let app = &rig.app;
    let yt = connect(app, "youtube").await;
    let ig = connect(app, "instagram").await;

    rig.youtube.state.quota.store(0, Ordering::SeqCst);
    let id = app
        .submit(json!({ "script": "Over quota.", "targets": [{ "platform": "youtube", "account": yt["id"] }] }))
        .await;
    let job = wait_state(app, &id, &[JobState::Waiting]).await;
    assert_eq!(job["state"], "waiting", "{job:#}");
    assert!(job["waiting"].as_str().unwrap().starts_with("youtube_quota_exceeded:"), "{job:#}");
    let retry_at: chrono::DateTime<chrono::Utc> = job["retry_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(retry_at, clipforge::providers::youtube::next_reset(chrono::Utc::now(), 8), "at the quota's reset");
    assert!(rig.youtube.state.videos().is_empty());

    rig.instagram.state.used_elsewhere.store(50, Ordering::SeqCst);
    let id = app
        .submit(json!({ "script": "Over the limit.", "targets": [{ "platform": "instagram", "account": ig["id"] }] }))
        .await;
    let job = wait_state(app, &id, &[JobState::Waiting]).await;
    assert!(job["waiting"].as_str().unwrap().starts_with("instagram_publish_limit:"), "{job:#}");
    assert_eq!(rig.instagram.state.containers(), 0, "no container while the limit is reached");
    rig.instagram.state.used_elsewhere.store(0, Ordering::SeqCst);
    let job = wait_state(app, &id, &[JobState::Posted]).await;
    assert_eq!(job["state"], "posted", "{job:#}");
    assert_eq!(rig.instagram.state.reels().len(), 1);
}

#[tokio::test]
async fn an_expiring_instagram_token_is_refreshed_before_use_and_a_revoked_one_waits_for_a_reconnect() {
    let rig = rig(QueueKind::Sqlite, Roles::all(), &[]).await;
    let app = &rig.app;
    // Tokens that live 1 h, well inside the 7-day refresh margin.
    rig.instagram.state.token_ttl_secs.store(3600, Ordering::SeqCst);
    let ig = connect(app, "instagram").await;
    // What the refresh gives lives 60 days again.
    rig.instagram.state.token_ttl_secs.store(60 * 86_400, Ordering::SeqCst);
    let target = json!([{ "platform": "instagram", "account": ig["id"] }]);
    let id = app.submit(json!({ "script": "Fresh token first.", "targets": target })).await;
    let job = wait_state(app, &id, &[JobState::Posted]).await;
    assert_eq!(job["state"], "posted", "{job:#}");
    assert_eq!(rig.instagram.state.refresh_calls.load(Ordering::SeqCst), 1, "refreshed once, before use");

    rig.instagram.state.revoked.store(true, Ordering::SeqCst);
    let id = app.submit(json!({ "script": "Revoked meanwhile.", "targets": target })).await;
    let job = wait_state(app, &id, &[JobState::Waiting]).await;
    let why = job["waiting"].as_str().unwrap_or_else(|| panic!("{job:#}"));
    assert!(
        why.starts_with("needs_reconnect:") && why.contains("{server.url}/v1/accounts/instagram/connect"),
        "{job:#}"
    );
    let accounts: Value = app.get("/v1/accounts").await.json().await.unwrap();
    let view = accounts["accounts"].as_array().unwrap().iter().find(|a| a["id"] == ig["id"]).unwrap().clone();
    assert_eq!(view["status"], "needs_reconnect", "{view:#}");
    assert_eq!(rig.instagram.state.reels().len(), 1, "nothing more was posted");

    // Connecting it again lets the waiting job go on by itself.
    rig.instagram.state.revoked.store(false, Ordering::SeqCst);
    connect(app, "instagram").await;
    let job = wait_state(app, &id, &[JobState::Posted]).await;
    assert_eq!(job["state"], "posted", "{job:#}");
    assert_eq!(rig.instagram.state.reels().len(), 2);
}

#[tokio::test]
async fn a_youtube_channel_connects_from_the_desktop_with_an_s256_challenge() {
    let rig = rig(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let app = &rig.app;
    let mut cli = Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .args(["accounts", "connect", "--platform", "youtube", "--no-browser", "--timeout-secs", "60"])
        .envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
    assert_eq!((q["code_challenge_method"].as_str(), q["access_type"].as_str()), ("S256", "offline"));
    assert_eq!(q["code_challenge"].len(), 43, "unpadded base64url of 32 bytes");
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
    assert_eq!(
        (accounts[0].platform.as_str(), accounts[0].open_id.as_str()),
        ("youtube", "youtube:UCemulatedChannel0000001")
    );
}
