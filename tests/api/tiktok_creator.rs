//! The creator check before render: a job for a TikTok account whose
//! narration runs longer than the creator may post (creator_info/query's
//! `max_video_post_duration_sec`, from the emulator) fails at prepare, before
//! footage is fetched or ffmpeg runs; one within it goes on to the inbox.

use std::sync::atomic::Ordering;
use std::time::Duration;

use clipforge::app::Roles;
use clipforge::domain::JobState;
use serde_json::json;

use crate::emulators::tiktok::{self, Creator, TikTok};
use crate::support::{QueueKind, history};
use crate::tiktok::{app_with_tiktok, connect_account, staged_file, wait_in_inbox};

/// The account grants video.publish, so creator_info/query may be asked.
const PUBLISH_SCOPES: (&str, &str) = ("CLIPFORGE__TIKTOK__SCOPES", "user.info.basic,video.upload,video.publish");

/// A given script espeak-ng speaks in about 90 s (20 sentences of 13 words).
fn ninety_second_script() -> String {
    const WORDS: [&str; 12] = [
        "river", "mountain", "garden", "window", "lantern", "harbour", "meadow", "thunder", "orchard", "compass",
        "violin", "candle",
    ];
    (0..20)
        .map(|i| {
            format!(
                "The {} and the {} wait quietly beside the old {} every single evening.",
                WORDS[i % 12],
                WORDS[(i + 5) % 12],
                WORDS[(i + 7) % 12]
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn a_90_s_job_for_a_creator_who_may_post_60_s_fails_at_prepare_before_any_render() {
    let emu = TikTok::start().await;
    emu.state.set_creator(tiktok::OPEN_ID, Creator { max_video_post_duration_sec: 60, ..Creator::default() });
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &[PUBLISH_SCOPES]).await;
    let account = connect_account(&app).await;
    let script = ninety_second_script();

    let id = app.submit(json!({ "script": script, "account": account["id"] })).await;
    let job =
        app.wait_for(&id, &[JobState::Failed, JobState::InInbox, JobState::Cancelled], Duration::from_secs(240)).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let error = &job["error"];
    assert_eq!(
        (error["code"].as_str(), error["stage"].as_str(), error["retryable"].as_bool()),
        (Some("video_too_long_for_creator"), Some("prepare"), Some(false)),
        "{job:#}"
    );
    let spoken = job["manifest"]["narration"]["duration_s"].as_f64().unwrap();
    assert!((75.0..=130.0).contains(&spoken), "the narration runs about 90 s, not {spoken}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{spoken:.1} s"))
            && message.contains("at most 60 s")
            && message.contains("target_length_s"),
        "the message names the length, the creator's maximum and what to do: {message}"
    );
    // Stopped before render: no rendering in its history, nothing rendered,
    // staged or sent to TikTok, and not even footage fetched.
    assert_eq!(history(&job), ["queued", "preparing", "failed"]);
    assert!(job["manifest"]["render"].is_null() && job["manifest"]["video"].is_null(), "{job:#}");
    assert!(job["manifest"]["footage"].is_null(), "no footage was fetched");
    assert!(!staged_file(&app, &id).exists());
    assert_eq!(emu.state.init_calls.load(Ordering::SeqCst), 0);
    assert!(emu.state.drafts().is_empty());
    assert_eq!(emu.state.creator_info_calls.load(Ordering::SeqCst), 1);

    // A second job within tiktok.creator_info_ttl_secs uses the answer kept
    // on the account: TikTok is not asked again.
    let again = app.submit(json!({ "script": script, "account": account["id"] })).await;
    let job = app.wait_for(&again, &[JobState::Failed, JobState::InInbox], Duration::from_secs(240)).await;
    assert_eq!(job["error"]["code"], "video_too_long_for_creator", "{job:#}");
    assert_eq!(emu.state.creator_info_calls.load(Ordering::SeqCst), 1, "the kept answer was used");
}

#[tokio::test]
async fn a_job_within_the_creators_maximum_goes_on_to_the_inbox_as_before() {
    let emu = TikTok::start().await;
    emu.state.set_creator(tiktok::OPEN_ID, Creator { max_video_post_duration_sec: 600, ..Creator::default() });
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &[PUBLISH_SCOPES]).await;
    let account = connect_account(&app).await;

    let id = app.submit(json!({ "script": "Short enough for any creator.", "account": account["id"] })).await;
    let job = wait_in_inbox(&app, &id).await;
    assert_eq!(history(&job), ["queued", "preparing", "rendering", "staging", "uploading", "in_inbox"]);
    assert_eq!(emu.state.creator_info_calls.load(Ordering::SeqCst), 1, "the creator was asked once, before render");
    assert_eq!(emu.state.drafts().len(), 1);
}

#[tokio::test]
async fn tiktoks_per_minute_limit_on_creator_info_makes_the_job_wait_before_render() {
    let emu = TikTok::start().await;
    // TikTok answers 429 rate_limit_exceeded to every creator_info/query.
    emu.state.creator_info_per_minute.store(0, Ordering::SeqCst);
    let app = app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &[PUBLISH_SCOPES]).await;
    let account = connect_account(&app).await;

    let id = app.submit(json!({ "script": "Waiting for TikTok's minute.", "account": account["id"] })).await;
    let job =
        app.wait_for(&id, &[JobState::Waiting, JobState::Failed, JobState::InInbox], Duration::from_secs(240)).await;
    assert_eq!(job["state"], "waiting", "{job:#}");
    let last = job["events"].as_array().unwrap().last().unwrap().clone();
    assert!(last["note"].as_str().unwrap().starts_with("rate_limit_exceeded"), "{last}");
    let retry_at: chrono::DateTime<chrono::Utc> = serde_json::from_value(last["retry_at"].clone()).unwrap();
    assert!(retry_at > chrono::Utc::now(), "it tries again later: {last}");
    assert_eq!(history(&job), ["queued", "preparing", "waiting"]);
    assert!(job["manifest"]["render"].is_null() && job["manifest"]["footage"].is_null(), "{job:#}");
    assert_eq!(emu.state.rate_limited.load(Ordering::SeqCst), 1);
}
