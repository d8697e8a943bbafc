//! Direct Post end to end: opt-in per account and per job, never posted
//! without a person's approval carrying their own choices (checked against
//! the creator's `creator_info`), composed in the studio in a real browser,
//! published once through the emulator's `video/init` and moderation, and
//! exactly once when the publish worker is killed mid-upload.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clipforge::app::Roles;
use clipforge::domain::{JobState, Stage};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::emulators::tiktok::{self, Creator, TikTok};
use crate::studio::{Browser, free_port};
use crate::support::{QueueKind, TestApp, error_code};
use crate::tiktok::{app_with_tiktok, connect_account, staged_file};

/// The account grants video.publish: Direct Post and creator_info need it.
const PUBLISH_SCOPES: (&str, &str) =
    ("CLIPFORGE__TIKTOK__SCOPES", "user.info.basic,video.upload,video.publish,video.list");

/// A private creator who turned Duet off: options differ from the default.
fn private_creator() -> Creator {
    Creator {
        privacy_level_options: ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"].map(String::from).to_vec(),
        duet_disabled: true,
        ..Creator::default()
    }
}

async fn allow_direct_post(app: &TestApp, account: &str) {
    let resp = app
        .http
        .patch(format!("{}/v1/accounts/{account}", app.address))
        .json(&json!({ "direct_post": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let view: Value = resp.json().await.unwrap();
    assert_eq!(view["direct_post"], true, "{view:#}");
}

async fn approve(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    let resp = app.http.post(format!("{}/v1/jobs/{id}/approve", app.address)).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn detail_codes(body: &Value) -> Vec<(String, String)> {
    body["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|e| (e["field"].as_str().unwrap().to_string(), e["code"].as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_state(app: &TestApp, id: &str, state: JobState) -> Value {
    let job = app.wait_for(id, &[state, JobState::Failed, JobState::Cancelled], Duration::from_secs(240)).await;
    assert_eq!(job["state"], state.as_str(), "{job:#}");
    job
}

fn sha256_file(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn direct_post_is_opt_in_and_no_approval_without_the_persons_own_choices_reaches_tiktok() {
    let emu = TikTok::start().await;
    emu.state.set_creator(tiktok::OPEN_ID, private_creator());
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &[PUBLISH_SCOPES]).await;
    let account = connect_account(&app).await;
    let acct = account["id"].as_str().unwrap();

    // The account has not opted in: the job is refused, nothing stored.
    let spec = json!({ "script": "Straight to the profile.", "account": acct, "post_mode": "direct" });
    let refused = app.post_job_raw(&spec.to_string()).await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(detail_codes(&body), [("post_mode".into(), "direct_post_not_enabled".into())], "{body:#}");
    assert!(body["error"]["details"][0]["message"].as_str().unwrap().contains("PATCH /v1/accounts/"));
    let bad = app.post_job_raw(&json!({ "script": "x y", "post_mode": "direct" }).to_string()).await;
    assert_eq!(bad.status(), 422, "a Direct Post names its account");
    let page: Value = app.get("/v1/jobs").await.json().await.unwrap();
    assert!(page["jobs"].as_array().unwrap().is_empty());

    allow_direct_post(&app, acct).await;
    // Asked for no review: a Direct Post stops at the video anyway.
    let id = app.submit(spec).await;
    let job = wait_state(&app, &id, JobState::InReview).await;
    assert_eq!(job["review"]["waiting_at"], "video", "{job:#}");

    let creator: Value = app.get(&format!("/v1/jobs/{id}/creator")).await.json().await.unwrap();
    assert_eq!(creator["creator_nickname"], tiktok::DISPLAY_NAME, "{creator:#}");
    assert_eq!(creator["privacy_level_options"], json!(["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]));
    assert_eq!(creator["duet_disabled"], true);

    let refusals = [
        (json!({}), vec![("direct_post", "direct_post_required")]),
        (
            json!({ "direct_post": {} }),
            vec![
                ("direct_post.privacy_level", "privacy_level_required"),
                ("direct_post.music_confirmed", "music_confirmation_required"),
            ],
        ),
        (
            json!({ "direct_post": { "privacy_level": "PUBLIC_TO_EVERYONE", "music_confirmed": true } }),
            vec![("direct_post.privacy_level", "privacy_level_option_mismatch")],
        ),
        (
            json!({ "direct_post": { "privacy_level": "SELF_ONLY", "allow_duet": true, "music_confirmed": true } }),
            vec![("direct_post.allow_duet", "interaction_disabled_by_creator")],
        ),
        (
            json!({ "direct_post": { "privacy_level": "SELF_ONLY", "disclose_commercial": true,
                "branded_content": true, "music_confirmed": true } }),
            vec![("direct_post.privacy_level", "branded_content_private")],
        ),
        (
            json!({ "direct_post": { "privacy_level": "SELF_ONLY", "disclose_commercial": true, "music_confirmed": true } }),
            vec![("direct_post.disclose_commercial", "commercial_content_unspecified")],
        ),
    ];
    for (body, want) in refusals {
        let (status, answer) = approve(&app, &id, body.clone()).await;
        assert_eq!(status, 422, "{body} → {answer:#}");
        assert_eq!(error_code(&answer), "invalid_spec");
        let want: Vec<(String, String)> = want.iter().map(|(f, c)| (f.to_string(), c.to_string())).collect();
        assert_eq!(detail_codes(&answer), want, "{body}");
    }
    assert_eq!(app.job(&id).await["state"], "in_review", "no refusal approved anything");
    assert_eq!(emu.state.direct_init_calls.load(Ordering::SeqCst), 0, "nothing reached TikTok");

    // An inbox job's approval takes no Direct Post choices.
    let inbox = app.submit(json!({ "script": "Just a draft.", "account": acct, "review": "video" })).await;
    wait_state(&app, &inbox, JobState::InReview).await;
    let (status, answer) =
        approve(&app, &inbox, json!({ "direct_post": { "privacy_level": "SELF_ONLY", "music_confirmed": true } }))
            .await;
    assert_eq!((status, detail_codes(&answer)), (422, vec![("direct_post".into(), "direct_post_not_asked".into())]));

    // Branded content made public, with the person's choices.
    let choice = json!({ "direct_post": {
        "privacy_level": "FOLLOWER_OF_CREATOR", "title": "Made with clipforge", "allow_comment": true,
        "disclose_commercial": true, "branded_content": true, "is_aigc": true, "music_confirmed": true } });
    let (status, answer) = approve(&app, &id, choice).await;
    assert_eq!(status, 200, "{answer:#}");
    let job = wait_state(&app, &id, JobState::Posted).await;
    let posts = emu.state.direct_posts();
    assert_eq!(posts.len(), 1, "exactly one Direct Post");
    assert!(emu.state.drafts().is_empty(), "and no draft");
    assert_eq!(
        posts[0].post_info,
        json!({ "privacy_level": "FOLLOWER_OF_CREATOR", "title": "Made with clipforge", "disable_comment": false,
            "disable_duet": true, "disable_stitch": true, "brand_content_toggle": true,
            "brand_organic_toggle": false, "is_aigc": true })
    );
    assert_eq!(posts[0].sha256, sha256_file(&staged_file(&app, &id)), "the staged MP4's bytes");
    assert_eq!(job["manifest"]["tiktok"]["post_id"], posts[0].post_id, "the public post id is kept");
    assert_eq!(job["manifest"]["direct_post"]["approved_by"], "anonymous", "{job:#}");

    // The post's figures come from the Display API by that id, without a status check.
    let (collector, _) = crate::performance::collector(&app).await;
    emu.state.set_counts(&posts[0].post_id, crate::performance::counts(640, 51, 4, 2));
    let status_calls = emu.state.status_calls.load(Ordering::SeqCst);
    let pass = collector.collect_due(chrono::Utc::now() + chrono::Duration::minutes(1)).await.unwrap();
    assert_eq!((pass.status_calls, pass.query_calls, pass.samples), (0, 1, 1), "{pass:?}");
    assert_eq!(emu.state.status_calls.load(Ordering::SeqCst), status_calls);
    let perf: Value = app.get(&format!("/v1/jobs/{id}/performance")).await.json().await.unwrap();
    assert_eq!(perf["post_id"], posts[0].post_id);
    assert_eq!(perf["samples"][0]["views"], 640, "{perf:#}");
}

#[tokio::test]
async fn the_studio_composer_offers_the_creators_choices_and_posts_only_after_they_are_made() {
    let emu = TikTok::start().await;
    emu.state.set_creator(tiktok::OPEN_ID, private_creator());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{port}");
    let extra =
        [PUBLISH_SCOPES, ("CLIPFORGE__SERVER__LISTEN", listen.as_str()), ("CLIPFORGE__SERVER__URL", url.as_str())];
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &extra).await;
    let account = connect_account(&app).await;
    let acct = account["id"].as_str().unwrap();
    let Some(b) = Browser::start(390, 844).await else { return };

    // The operator opts the account in on the Accounts page.
    b.open(&format!("{}/accounts", app.address)).await;
    let toggle = format!("#direct-{acct}");
    b.until("the account", Duration::from_secs(10), &format!("document.querySelector('{toggle}')")).await;
    assert_eq!(
        b.js(&format!("return document.querySelector('{toggle}').checked")).await,
        false,
        "opt-in: off at first"
    );
    b.click(&toggle).await;
    b.until("allowed", Duration::from_secs(10), "document.body.textContent.includes('Direct Post allowed.')").await;
    let listed: Value = app.get("/v1/accounts").await.json().await.unwrap();
    assert_eq!(listed["accounts"][0]["direct_post"], true, "{listed:#}");

    let id = app
        .submit(json!({ "script": "Composed in the studio.", "account": account["id"], "post_mode": "direct" }))
        .await;
    wait_state(&app, &id, JobState::InReview).await;
    b.open(&format!("{}/jobs/{id}", app.address)).await;
    b.until("the composer", Duration::from_secs(20), "!document.getElementById('post-form').hidden").await;
    assert_eq!(b.text("#post-nickname").await, tiktok::DISPLAY_NAME);
    let offered = b.js("return [...document.querySelectorAll('input[name=post-privacy]')].map(i => i.value)").await;
    assert_eq!(offered, json!(["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]), "exactly the creator's");
    let checked = b.js("return document.querySelectorAll('input[name=post-privacy]:checked').length").await;
    assert_eq!(checked, 0, "no privacy level is chosen for the person");
    let state = |css: &str| format!("const e = document.querySelector('{css}'); return [e.checked, e.disabled]");
    assert_eq!(b.js(&state("#post-duet")).await, json!([false, true]), "Duet off and greyed: the creator disabled it");
    assert_eq!(b.js(&state("#post-comment")).await, json!([false, false]), "comments off until chosen");
    assert_eq!(b.js(&state("#post-disclose")).await, json!([false, false]), "no disclosure assumed");
    assert!(b.js("return document.getElementById('act-approve').hidden").await.as_bool().unwrap());
    let post_disabled = || b.js("return document.getElementById('act-post').disabled");
    assert_eq!(post_disabled().await, true, "nothing chosen: no posting");
    b.js("document.getElementById('post-box').scrollIntoView(); return true").await;
    b.screenshot("composer-390x844").await;

    b.click("#post-music").await;
    assert_eq!(post_disabled().await, true, "the confirmation alone is not enough: no privacy level is chosen");
    b.click("#post-music").await;
    b.click("#post-privacy-MUTUAL_FOLLOW_FRIENDS").await;
    assert_eq!(post_disabled().await, true, "a privacy level alone is not enough: the confirmation is not ticked");
    b.click("#post-music").await;
    assert_eq!(post_disabled().await, false);
    // Branded content: never private, and its label and policy are shown.
    b.click("#post-disclose").await;
    assert_eq!(post_disabled().await, true, "a disclosure must say what it promotes");
    b.click("#post-branded").await;
    assert_eq!(b.js(&state("#post-privacy-SELF_ONLY")).await, json!([false, true]), "Only me is greyed");
    assert!(b.text("#post-label").await.contains("Paid partnership"));
    assert!(b.text("#post-declaration").await.contains("Branded Content Policy"));
    b.click("#post-disclose").await;
    assert_eq!(b.js(&state("#post-privacy-SELF_ONLY")).await, json!([false, false]));
    b.click("#post-comment").await;
    b.type_into("#post-title", "Posted from the studio").await;
    assert_eq!(emu.state.direct_init_calls.load(Ordering::SeqCst), 0, "nothing posted while composing");
    b.click("#act-post").await;
    b.until("posted", Duration::from_secs(240), "document.querySelector('#job-state[data-state=posted]')").await;
    let posts = emu.state.direct_posts();
    assert_eq!(posts.len(), 1, "exactly one Direct Post");
    assert_eq!(posts[0].post_info["privacy_level"], "MUTUAL_FOLLOW_FRIENDS");
    assert_eq!(posts[0].post_info["title"], "Posted from the studio");
    assert_eq!(
        [
            &posts[0].post_info["disable_comment"],
            &posts[0].post_info["disable_duet"],
            &posts[0].post_info["brand_content_toggle"]
        ],
        [&json!(false), &json!(true), &json!(false)]
    );
    b.until(
        "the post id",
        Duration::from_secs(10),
        &format!("document.getElementById('job-posted').textContent.includes('{}')", posts[0].post_id),
    )
    .await;
    b.screenshot("posted-390x844").await;
    let job = app.job(&id).await;
    assert_eq!(job["manifest"]["tiktok"]["post_id"], posts[0].post_id);
}

/// A publish worker as a separate process, logging to a file.
fn publish_worker(app: &TestApp, log: &str) -> Child {
    let file = std::fs::File::create(app.data.path().join(log)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .args(["worker", "--role", "publish"])
        .envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_publish_worker_killed_mid_upload_leaves_exactly_one_direct_post() {
    let emu = TikTok::start().await;
    let roles = Roles { api: true, stages: vec![Stage::Prepare, Stage::Render] };
    let app = app_with_tiktok(&emu, QueueKind::Redis, roles, &[PUBLISH_SCOPES]).await;
    let account = connect_account(&app).await;
    allow_direct_post(&app, account["id"].as_str().unwrap()).await;
    let id =
        app.submit(json!({ "script": "Killed while posting.", "account": account["id"], "post_mode": "direct" })).await;
    wait_state(&app, &id, JobState::InReview).await;
    let (status, answer) = approve(
        &app,
        &id,
        json!({ "direct_post": { "privacy_level": "PUBLIC_TO_EVERYONE", "music_confirmed": true } }),
    )
    .await;
    assert_eq!(status, 200, "{answer:#}");

    // Each chunk takes 3 s to be answered: time to kill the uploader mid-PUT.
    emu.state.put_delay_ms.store(3000, Ordering::SeqCst);
    let mut first = publish_worker(&app, "publish-1.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    while emu.state.put_calls.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the upload never started: {:#}", app.job(&id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(app.job(&id).await["state"], "uploading");
    assert!(emu.state.direct_posts().is_empty(), "killed before the last byte");

    emu.state.put_delay_ms.store(0, Ordering::SeqCst);
    let mut second = publish_worker(&app, "publish-2.log");
    let job = wait_state(&app, &id, JobState::Posted).await;
    let _ = second.kill();
    let _ = second.wait();
    let posts = emu.state.direct_posts();
    assert_eq!(posts.len(), 1, "exactly one Direct Post after the redelivery");
    assert_eq!(emu.state.direct_init_calls.load(Ordering::SeqCst), 1, "the redelivery resumed, no second init");
    assert_eq!(posts[0].sha256, sha256_file(&staged_file(&app, &id)));
    assert_eq!(job["manifest"]["tiktok"]["post_id"], posts[0].post_id);
}
