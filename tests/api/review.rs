//! The review gate as a team meets it: a job stops `in_review` at the point
//! it asked for (after prepare, or after render before anything reaches
//! TikTok), a reviewer approves it or sends it back with a note, a revision
//! runs it again from the stage the change touches, and every refusal is an
//! answer with a catalogued code.

use std::time::Duration;

use clipforge::app::Roles;
use clipforge::domain::JobState;
use serde_json::{Value, json};

use crate::auth::{create_key, key_id, refusal};
use crate::emulators::tiktok::{self, TikTok};
use crate::support::{QueueKind, TestApp, error_code, history, spawn_app, spawn_app_with};
use crate::tiktok::{app_with_tiktok, connect_account, wait_in_inbox};

const WAIT: Duration = Duration::from_secs(240);

async fn wait_in_review(app: &TestApp, id: &str) -> Value {
    let job =
        app.wait_for(id, &[JobState::InReview, JobState::Failed, JobState::Cancelled, JobState::Staged], WAIT).await;
    assert_eq!(job["state"], "in_review", "{job:#}");
    job
}

/// POSTs `body` (JSON) to the job's review route `action`.
async fn act(app: &TestApp, id: &str, action: &str, body: Value) -> reqwest::Response {
    app.http.post(format!("{}/v1/jobs/{id}/{action}", app.address)).json(&body).send().await.unwrap()
}

/// The answer to an action that must succeed with `status`.
async fn acted(app: &TestApp, id: &str, action: &str, body: Value, status: u16) -> Value {
    let resp = act(app, id, action, body).await;
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(got, status, "{action}: {body:#}");
    body
}

#[tokio::test]
async fn a_video_review_holds_the_draft_until_approved_and_then_makes_exactly_one() {
    let emu = TikTok::start().await;
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &[]).await;
    let account = connect_account(&app).await;
    let id =
        app.submit(json!({ "script": "Look before it ships.", "account": account["id"], "review": "video" })).await;

    let job = wait_in_review(&app, &id).await;
    assert_eq!((job["stage"].as_str(), job["review"]["waiting_at"].as_str()), (Some("render"), Some("video")));
    assert_eq!(job["review"]["asked"], "video");
    assert!(job["manifest"]["render"]["bytes"].as_u64().unwrap() > 0, "the render is there to watch: {job:#}");
    assert!(job["manifest"].get("video").is_none() && job["outputs"].get("video").is_none(), "nothing staged");
    // Nothing reached TikTok, and nothing counts against its pending-draft cap:
    // the cap is counted by the uploads the publish stage starts.
    assert!(emu.state.drafts().is_empty());
    assert_eq!(emu.state.pending_shares(tiktok::OPEN_ID), 0);

    let approved = acted(&app, &id, "approve", json!({ "note": "Ship it." }), 200).await;
    assert_eq!(approved["id"], id.as_str());
    let decision = &approved["review"]["decisions"][0];
    assert_eq!((decision["point"].as_str(), decision["verdict"].as_str()), (Some("video"), Some("approved")));
    assert_eq!((decision["by"].as_str(), decision["note"].as_str()), (Some("anonymous"), Some("Ship it.")));

    // The same approval delivered again acts once.
    let again = act(&app, &id, "approve", json!({})).await;
    let (status, code, _) = refusal(again).await;
    assert!(status == 409 && code == "not_in_review", "{status} {code}");

    let job = wait_in_inbox(&app, &id).await;
    assert_eq!(emu.state.drafts().len(), 1, "exactly one draft");
    assert_eq!(
        history(&job),
        ["queued", "preparing", "rendering", "in_review", "queued", "staging", "uploading", "in_inbox"]
    );
    let events = job["events"].as_array().unwrap();
    assert_eq!(events[4]["note"], "approved by anonymous");
    assert_eq!(events[4]["stage"], "publish");
}

#[tokio::test]
async fn a_rejected_job_is_revised_runs_again_from_prepare_and_ships_once_approved() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let id = app.submit(json!({ "script": "The first version is long and winding.", "review": "video" })).await;
    wait_in_review(&app, &id).await;

    let resp = act(&app, &id, "reject", json!({})).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_spec");
    assert_eq!(
        (body["error"]["details"][0]["field"].as_str(), body["error"]["details"][0]["code"].as_str()),
        (Some("note"), Some("note_required")),
        "{body:#}"
    );
    assert_eq!(app.job(&id).await["state"], "in_review", "a refused rejection changes nothing");

    let sent_back = acted(&app, &id, "reject", json!({ "note": "Shorter, please." }), 200).await;
    assert_eq!(sent_back["state"], "changes_requested");
    assert_eq!(sent_back["review"]["waiting_at"], "video");
    let decision = &sent_back["review"]["decisions"][0];
    assert_eq!(
        (decision["verdict"].as_str(), decision["note"].as_str()),
        (Some("changes_requested"), Some("Shorter, please."))
    );
    let (status, code, _) = refusal(act(&app, &id, "approve", json!({})).await).await;
    assert_eq!((status, code.as_str()), (409, "not_in_review"), "sent back: nothing to approve");

    let nothing = act(&app, &id, "revise", json!({ "script": "The first version is long and winding." })).await;
    let (status, code, _) = refusal(nothing).await;
    assert_eq!((status, code.as_str()), (422, "nothing_to_revise"));
    let bad = act(&app, &id, "revise", json!({ "voice": "--rm" })).await;
    assert_eq!(bad.status(), 422);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["details"][0]["code"], "voice_invalid", "checked like a submission: {bad:#}");

    let revised = acted(&app, &id, "revise", json!({ "script": "Short now." }), 202).await;
    assert_eq!((revised["job_id"].as_str(), revised["state"].as_str()), (Some(id.as_str()), Some("queued")));

    let job = wait_in_review(&app, &id).await;
    assert_eq!(job["spec"]["script"], "Short now.");
    assert_eq!(job["manifest"]["script"]["sentences"], json!(["Short now."]), "the script was written again");
    let words: Vec<&str> =
        job["manifest"]["narration"]["words"].as_array().unwrap().iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert_eq!(words, ["Short", "now."], "and narrated again");
    assert_eq!(job["review"]["decisions"].as_array().unwrap().len(), 1, "the rejection stays as history");
    let states = history(&job);
    assert_eq!(
        states,
        [
            "queued",
            "preparing",
            "rendering",
            "in_review",
            "changes_requested",
            "queued",
            "preparing",
            "rendering",
            "in_review"
        ]
    );
    assert_eq!(job["events"][5]["stage"], "prepare", "a new script runs again from prepare");

    acted(&app, &id, "approve", json!({}), 200).await;
    let job = app.wait_staged(&id).await;
    assert!(job["outputs"]["video"]["bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_script_review_stops_after_prepare_and_approval_renders() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let id = app.submit(json!({ "script": "Check my words first.", "review": "script" })).await;

    let job = wait_in_review(&app, &id).await;
    assert_eq!((job["stage"].as_str(), job["review"]["waiting_at"].as_str()), (Some("prepare"), Some("script")));
    let manifest = &job["manifest"];
    assert_eq!(manifest["script"]["sentences"], json!(["Check my words first."]));
    assert!(manifest["narration"]["duration_s"].as_f64().unwrap() > 0.0);
    assert!(!manifest["footage"].as_array().unwrap().is_empty());
    assert!(manifest.get("render").is_none(), "no render before the script is approved: {manifest:#}");
    assert_eq!(history(&job), ["queued", "preparing", "in_review"]);
    assert_eq!(job["events"][2]["note"], "waiting for script review");

    // No body at all is an approval without a note.
    let approved = app.post(&format!("/v1/jobs/{id}/approve")).await;
    assert_eq!(approved.status(), 200);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["state"], "queued");
    assert_eq!(approved["stage"], "render");
    let job = app.wait_staged(&id).await;
    assert_eq!(history(&job), ["queued", "preparing", "in_review", "queued", "rendering", "staging", "staged"]);
    assert_eq!(job["review"]["decisions"][0]["point"], "script");
}

#[tokio::test]
async fn review_requests_on_the_wrong_job_or_with_bad_input_are_refused_with_catalogued_codes() {
    // No stage workers: a submitted job stays queued.
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let resp = app.post_job_raw(&json!({ "script": "Hi.", "review": "later" }).to_string()).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_spec");
    let detail = &body["error"]["details"][0];
    assert_eq!((detail["field"].as_str(), detail["code"].as_str()), (Some("review"), Some("review_invalid")));
    assert!(detail["message"].as_str().unwrap().contains("none, script, video, both"), "{body:#}");
    let listed: Value = app.get("/v1/jobs").await.json().await.unwrap();
    assert!(listed["jobs"].as_array().unwrap().is_empty(), "nothing stored");

    let id = app.submit(json!({ "script": "Hi.", "review": "both" })).await;
    let (status, code, message) = refusal(act(&app, &id, "approve", json!({})).await).await;
    assert_eq!((status, code.as_str()), (409, "not_in_review"));
    assert!(message.contains("queued"), "{message}");
    let (status, code, _) = refusal(act(&app, &id, "reject", json!({ "note": "No." })).await).await;
    assert_eq!((status, code.as_str()), (409, "not_in_review"));
    let (status, code, _) = refusal(act(&app, &id, "revise", json!({ "script": "Other." })).await).await;
    assert_eq!((status, code.as_str()), (409, "not_revisable"));
    let long = act(&app, &id, "approve", json!({ "note": "x".repeat(2001) })).await;
    let body: Value = long.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["code"], "note_too_long", "{body:#}");
    let shape = act(&app, &id, "reject", json!({ "note": "x", "colour": "red" })).await;
    assert_eq!(shape.status(), 422);
    assert_eq!(error_code(&shape.json::<Value>().await.unwrap()), "invalid_spec");
    let unknown = act(&app, "0190b7c4-0000-7000-8000-000000000000", "approve", json!({})).await;
    let (status, code, _) = refusal(unknown).await;
    assert_eq!((status, code.as_str()), (404, "job_not_found"));

    let job = app.job(&id).await;
    assert_eq!(job["state"], "queued", "{job:#}");
    assert_eq!(job["review"]["asked"], "both");
    assert!(job["review"]["decisions"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn with_keys_on_deciding_needs_jobs_review_and_the_decision_names_the_key() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &[("CLIPFORGE__AUTH__REQUIRE_KEYS", "true")]).await;
    let writer = create_key(&app, "writer", "jobs:read,jobs:write").await;
    let reviewer = create_key(&app, "reviewer", "jobs:read,jobs:review").await;
    let submitted = app
        .http
        .post(format!("{}/v1/jobs", app.address))
        .bearer_auth(&writer)
        .json(&json!({ "script": "Reviewed by a key.", "review": "script" }))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 202);
    let id = submitted.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string();
    crate::support::eventually(WAIT, || async {
        let get = app.http.get(format!("{}/v1/jobs/{id}", app.address)).bearer_auth(&writer);
        let job: Value = get.send().await.unwrap().json().await.unwrap();
        if job["state"] == "in_review" { Ok(()) } else { Err(format!("{job:#}")) }
    })
    .await;

    let post = |key: &str, action: &str, body: Value| {
        app.http.post(format!("{}/v1/jobs/{id}/{action}", app.address)).bearer_auth(key.to_string()).json(&body).send()
    };
    let (status, code, message) = refusal(post(&writer, "approve", json!({})).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(message.contains("jobs:review"), "{message}");
    let (status, code, _) = refusal(post(&writer, "reject", json!({ "note": "No." })).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let (status, _, _) = refusal(post(&reviewer, "revise", json!({ "script": "Mine." })).await.unwrap()).await;
    assert_eq!(status, 403, "revising changes the job: jobs:write");

    let approved = post(&reviewer, "approve", json!({})).await.unwrap();
    assert_eq!(approved.status(), 200);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["review"]["decisions"][0]["by"], key_id(&reviewer), "the key that decided");
}

#[tokio::test]
async fn a_job_in_review_takes_no_draft_slot_and_can_be_cancelled() {
    let emu = TikTok::start().await;
    let app =
        app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &[("CLIPFORGE__TIKTOK__MAX_PENDING_DRAFTS", "1")]).await;
    let account = connect_account(&app).await;
    let held = app.submit(json!({ "script": "Held for review.", "account": account["id"], "review": "video" })).await;
    wait_in_review(&app, &held).await;

    // The account may have one pending draft; the job in review is not one.
    let through = app.submit(json!({ "script": "Straight through.", "account": account["id"] })).await;
    wait_in_inbox(&app, &through).await;
    assert_eq!(emu.state.drafts().len(), 1);

    let cancelled = app.post(&format!("/v1/jobs/{held}/cancel")).await;
    assert_eq!(cancelled.status(), 200);
    let job = app.job(&held).await;
    assert_eq!(job["state"], "cancelled");
    let (status, code, _) = refusal(act(&app, &held, "approve", json!({})).await).await;
    assert_eq!((status, code.as_str()), (409, "not_in_review"));
    assert_eq!(emu.state.drafts().len(), 1, "the cancelled job never reached TikTok");
}

#[tokio::test]
async fn both_points_are_announced_and_a_caption_edit_in_review_only_renders_again() {
    let tg = crate::emulators::telegram::Telegram::start().await;
    let env = crate::notify::notify_env(&tg);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &extra).await;
    let chat = crate::notify::CHAT;
    let id = app
        .submit(json!({ "script": "Two looks, one edit.", "review": "both", "notify": { "telegram_chat_id": chat } }))
        .await;

    let job = wait_in_review(&app, &id).await;
    assert_eq!(job["review"]["waiting_at"], "script");
    acted(&app, &id, "approve", json!({}), 200).await;
    let job = wait_in_review(&app, &id).await;
    assert_eq!(job["review"]["waiting_at"], "video");

    // Edited straight from review: captions off only renders again, and the
    // script's approval still holds, so the job stops at the video alone.
    let revised = acted(&app, &id, "revise", json!({ "captions": false }), 202).await;
    assert_eq!(revised["state"], "queued");
    let job = wait_in_review(&app, &id).await;
    assert_eq!(job["state"], "in_review", "{job:#}");
    assert_eq!(job["review"]["waiting_at"], "video");
    assert_eq!(job["spec"]["captions"], false);
    assert_eq!(
        history(&job),
        ["queued", "preparing", "in_review", "queued", "rendering", "in_review", "queued", "rendering", "in_review"]
    );
    assert_eq!(job["events"][6]["stage"], "render", "captions are a render's business");
    let decisions = job["review"]["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1, "the video's approval was never given; the script's stays: {decisions:#?}");
    assert_eq!(decisions[0]["point"], "script");

    let announced = crate::support::eventually(Duration::from_secs(30), || async {
        let texts: Vec<String> = tg.messages().into_iter().map(|m| m.text).collect();
        let waits = texts.iter().filter(|t| t.starts_with(&format!("Job {id} waits for"))).count();
        if waits >= 3 { Ok(texts) } else { Err(format!("{texts:#?}")) }
    })
    .await;
    assert!(announced.iter().any(|t| t.starts_with(&format!("Job {id} waits for script review"))), "{announced:#?}");
    assert!(announced.iter().any(|t| t.starts_with(&format!("Job {id} waits for video review"))), "{announced:#?}");
}

#[tokio::test]
async fn a_job_that_names_no_review_follows_the_team_default() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &[("CLIPFORGE__REVIEW__DEFAULT", "script")]).await;
    let by_default = app.submit(json!({ "script": "The team looks first." })).await;
    let opted_out = app.submit(json!({ "script": "This one ships.", "review": "none" })).await;
    let job = wait_in_review(&app, &by_default).await;
    assert_eq!(
        (job["review"]["asked"].as_str(), job["review"]["waiting_at"].as_str()),
        (Some("script"), Some("script"))
    );
    assert!(job["spec"].get("review").is_none(), "the spec says what the caller said");
    let job = app.wait_staged(&opted_out).await;
    assert_eq!(job["review"]["asked"], "none");
    assert!(job["review"].get("waiting_at").is_none());
}

#[tokio::test]
async fn a_revised_job_cancelled_in_review_is_purged_with_what_each_version_made() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let id = app.submit(json!({ "script": "The first take.", "review": "video" })).await;
    let first = wait_in_review(&app, &id).await;
    let first_narration = first["manifest"]["narration"]["key"].as_str().unwrap().to_string();
    acted(&app, &id, "revise", json!({ "script": "The second take." }), 202).await;
    let second = wait_in_review(&app, &id).await;
    assert_ne!(second["manifest"]["narration"]["key"], first_narration.as_str(), "narrated again");
    let objects = app.data.path().join("objects");
    let cached = |name: &str| crate::support::files_under(&objects).iter().any(|p| p.ends_with(name));
    let first_file = first_narration.rsplit('/').next().unwrap().to_string();
    assert!(cached(&first_file), "the first take's narration is in the cache");

    assert_eq!(app.post(&format!("/v1/jobs/{id}/cancel")).await.status(), 200);
    // Nothing runs while a job waits for a person: it is purged at once.
    let purged = app.http.delete(format!("{}/v1/jobs/{id}", app.address)).send().await.unwrap();
    assert_eq!(purged.status(), 200, "{}", purged.text().await.unwrap());
    assert!(!cached(&first_file), "the forgotten take's narration went with the job");
    let left: Vec<_> = crate::support::files_under(&objects.join("cache"));
    assert!(left.is_empty(), "cache objects of the purged job remain: {left:?}");
}
