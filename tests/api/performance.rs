//! Content performance against the TikTok emulator: a draft's post id is
//! learned only once the creator posts it publicly, its counts are sampled
//! on the back-off schedule (simulated time, passed to the collector), posts
//! are asked twenty at a time within the rate limits, and the API, the
//! export and the studio show the series and the groups.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use clipforge::app::Roles;
use clipforge::domain::{JobId, JobRequest, JobSpec, SpecLimits, TikTokDraft};
use clipforge::performance::{Collector, PassReport};
use clipforge::providers::tiktok::Accounts;
use clipforge::settings::Settings;
use clipforge::store::records::{Created, RecordStore, UploadRecord, UploadStatus};
use serde_json::{Value, json};

use crate::emulators::tiktok::{Counts, OPEN_ID, TikTok, UserStats};
use crate::support::{QueueKind, TestApp, error_code, eventually};
use crate::tiktok::{app_with_tiktok, connect_account, wait_in_inbox};

/// The grant a measured account gives: drafts, video.list and its totals.
const SCOPES: &str = "user.info.basic,video.upload,video.list,user.info.stats";

/// A collector on the app's stores and settings, driven by the test with
/// times of its choosing.
pub(crate) async fn collector(app: &TestApp) -> (Collector, Arc<dyn RecordStore>) {
    let mut env = app.env.clone();
    env.push(("CLIPFORGE__PERFORMANCE__ENABLED".into(), "true".into()));
    let settings = Settings::load_with_env(None, Some(env)).unwrap();
    let records = app.records().await;
    let accounts = Accounts::from_settings(&settings, records.clone()).expect("TikTok is configured");
    (Collector::from_settings(&settings, records.clone(), Some(accounts)).unwrap(), records)
}

async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = app.get(path).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

pub(crate) fn counts(views: u64, likes: u64, comments: u64, shares: u64) -> Counts {
    Counts { views, likes, comments, shares }
}

fn sample_counts(sample: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| sample[k].as_u64().unwrap();
    (n("views"), n("likes"), n("comments"), n("shares"))
}

#[tokio::test]
async fn a_draft_is_measured_only_once_posted_publicly_then_sampled_again_when_due() {
    let emu = TikTok::start().await;
    let app = app_with_tiktok(
        &emu,
        QueueKind::Sqlite,
        Roles::all(),
        &[("CLIPFORGE__TIKTOK__SCOPES", SCOPES), ("CLIPFORGE__PERFORMANCE__TICK_SECS", "1")],
    )
    .await;
    let account = connect_account(&app).await;
    let account_id = account["id"].as_str().unwrap().to_string();
    emu.state.set_user_stats(OPEN_ID, UserStats { followers: 4200, following: 12, likes: 99_000, videos: 31 });
    let id = app.submit(json!({ "script": "Measured once posted.", "account": account_id })).await;
    let (status, early) = get_json(&app, &format!("/v1/jobs/{id}/performance")).await;
    assert_eq!(status, 200);
    assert!(early["note"].as_str().unwrap().contains("not reached TikTok yet"), "{early}");
    let (status, missing) = get_json(&app, &format!("/v1/jobs/{}/performance", JobId::new())).await;
    assert_eq!((status, error_code(&missing)), (404, "job_not_found"));
    let job = wait_in_inbox(&app, &id).await;
    let publish_id = job["manifest"]["tiktok"]["publish_id"].as_str().unwrap().to_string();

    // The app's own collector finds the draft and asks status/fetch; the
    // creator has not posted it, so there is no post id and nothing to measure.
    let perf = eventually(std::time::Duration::from_secs(30), || async {
        let (status, perf) = get_json(&app, &format!("/v1/jobs/{id}/performance")).await;
        // Its first status check done: the next one is an hour away (a post
        // only tracked so far is due at once, and the check could then
        // learn the post id the test gives below).
        let next = perf["next_sample_at"].as_str().and_then(|t| t.parse::<chrono::DateTime<Utc>>().ok());
        if status == 200 && next.is_some_and(|t| t > Utc::now() + Duration::minutes(30)) {
            Ok(perf)
        } else {
            Err(format!("{status} {perf}"))
        }
    })
    .await;
    assert_eq!(perf["post_id"], Value::Null);
    let note = perf["note"].as_str().unwrap();
    assert!(
        note.contains("only after the creator posts it publicly") && note.contains("nothing is measured"),
        "{note}"
    );
    assert_eq!(perf["samples"], json!([]));
    let shown = app.job(&id).await;
    assert_eq!(shown["performance"]["post_id"], Value::Null, "{shown:#}");
    assert_eq!(shown["performance"]["note"], note);
    assert_eq!(emu.state.video_query_calls.load(Ordering::SeqCst), 0, "nothing was asked of video/query");

    // The creator posts it; TikTok now names the post.
    let post_id = "7390000000000000001";
    emu.state.post_publicly(&publish_id, post_id);
    emu.state.set_counts(post_id, counts(1200, 85, 7, 3));
    let (collector, _) = collector(&app).await;
    let t1 = Utc::now() + Duration::minutes(61); // the next status check is due an hour after the first
    let pass = collector.collect_due(t1).await.unwrap();
    assert_eq!(
        (pass.status_calls, pass.post_ids_learned, pass.query_calls, pass.samples, pass.account_totals),
        (1, 1, 1, 1, 1),
        "{pass:?}"
    );
    let (_, perf) = get_json(&app, &format!("/v1/jobs/{id}/performance")).await;
    assert_eq!(perf["post_id"], post_id);
    assert!(perf.get("note").is_none(), "measured as planned: {perf}");
    assert_eq!(perf["samples"].as_array().unwrap().len(), 1);
    assert_eq!(sample_counts(&perf["samples"][0]), (1200, 85, 7, 3), "the emulator's counts");
    let shown = app.job(&id).await;
    assert_eq!(shown["manifest"]["tiktok"]["post_id"], post_id, "the manifest keeps the post id");
    assert_eq!(shown["performance"]["latest"]["views"], 1200);

    // Not due ten minutes later; due at the next hour mark.
    emu.state.set_counts(post_id, counts(5000, 300, 20, 11));
    let early = collector.collect_due(t1 + Duration::minutes(10)).await.unwrap();
    assert_eq!((early.claimed, early.query_calls), (0, 0), "{early:?}");
    let pass = collector.collect_due(t1 + Duration::minutes(61)).await.unwrap();
    assert_eq!((pass.query_calls, pass.samples), (1, 1), "{pass:?}");
    assert_eq!(emu.state.video_query_calls.load(Ordering::SeqCst), 2);

    let (_, perf) = get_json(&app, &format!("/v1/jobs/{id}/performance")).await;
    let samples = perf["samples"].as_array().unwrap();
    assert_eq!(samples.iter().map(sample_counts).collect::<Vec<_>>(), [(5000, 300, 20, 11), (1200, 85, 7, 3)]);
    assert!(samples[0]["sampled_at"].as_str() > samples[1]["sampled_at"].as_str(), "newest first");

    let (status, grouped) = get_json(&app, "/v1/performance?group_by=account").await;
    assert_eq!(status, 200, "{grouped}");
    assert_eq!(
        grouped["groups"],
        json!([{ "group": account_id, "posts": 1, "views": 5000, "likes": 300, "comments": 20, "shares": 11 }])
    );
    assert_eq!(grouped["accounts"][0]["followers"], 4200);
    assert_eq!(grouped["accounts"][0]["videos"], 31);
    let since = (Utc::now() + Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, later) = get_json(&app, &format!("/v1/performance?group_by=topic&since={since}")).await;
    assert_eq!(later["groups"], json!([]), "posted before `since`");

    // Bad parameters: 422 naming what is allowed.
    let (status, bad) = get_json(&app, "/v1/performance?group_by=colour").await;
    assert_eq!((status, error_code(&bad)), (422, "group_by_invalid"));
    assert!(bad["error"]["message"].as_str().unwrap().contains("topic, style, voice, account"), "{bad}");
    let (status, bad) = get_json(&app, "/v1/performance?group_by=voice&since=yesterday").await;
    assert_eq!((status, error_code(&bad)), (422, "since_invalid"));
    assert!(bad["error"]["message"].as_str().unwrap().contains("RFC 3339"), "{bad}");

    // The export holds the samples and the account's totals.
    let export: Value = app.get("/v1/export").await.json().await.unwrap();
    let exported = export["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id.as_str()).unwrap();
    assert_eq!(exported["performance_samples"].as_array().unwrap().len(), 2);
    assert_eq!(exported["performance_samples"][0]["views"], 5000);
    assert_eq!(export["account_totals"][0]["followers"], 4200);

    // The studio: the grouped table, linked in the navigation.
    let page = app.get("/performance?group_by=account").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<a href=\"/performance\" aria-current=\"page\">Performance</a>"), "{html}");
    assert!(html.contains("id=\"perf-table\"") && html.contains("<td>5000</td>"), "{html}");
    assert!(html.contains(crate::emulators::tiktok::DISPLAY_NAME), "accounts are named: {html}");
    let page = app.get("/performance?group_by=colour").await;
    assert_eq!(page.status(), 422);
    assert!(page.text().await.unwrap().contains("role=\"alert\""));
}

/// Jobs delivered to `account` whose post ids are known (as a Direct Post
/// records them), each with a video at the emulator.
async fn posted_jobs(
    emu: &TikTok,
    records: &Arc<dyn RecordStore>,
    account: &str,
    topics: &[&str],
    first_id: u64,
) -> Vec<(JobId, String)> {
    let mut jobs = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        let req = JobRequest { topic: Some((*topic).into()), account: Some(account.into()), ..Default::default() };
        let spec = JobSpec::parse(req, &SpecLimits::default()).unwrap();
        let Created::New(job) = records.create_job(&spec).await.unwrap() else { panic!() };
        let post_id = (first_id + i as u64).to_string();
        let publish_id = format!("v_pub_direct~v2.{post_id}");
        let mut manifest = job.manifest.clone();
        manifest.tiktok = Some(TikTokDraft {
            account: account.into(),
            publish_id: publish_id.clone(),
            delivered_at: Utc::now(),
            post_id: Some(post_id.clone()),
        });
        records.save_manifest(&job.id, &manifest).await.unwrap();
        records
            .save_upload(&UploadRecord {
                job_id: job.id.clone(),
                account_id: account.into(),
                publish_id,
                upload_url: None,
                video_size: 1,
                chunk_size: 1,
                status: UploadStatus::InInbox,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            })
            .await
            .unwrap();
        emu.state.add_video(OPEN_ID, &post_id, counts(10 * (i as u64 + 1), i as u64, 1, 0));
        jobs.push((job.id, post_id));
    }
    jobs
}

/// An app without workers (so no collector of its own) and a connected account.
async fn measured_account(emu: &TikTok) -> (TestApp, String) {
    let app = app_with_tiktok(
        emu,
        QueueKind::Sqlite,
        Roles { api: true, stages: vec![] },
        &[("CLIPFORGE__TIKTOK__SCOPES", SCOPES)],
    )
    .await;
    let account = connect_account(&app).await["id"].as_str().unwrap().to_string();
    (app, account)
}

#[tokio::test]
async fn an_accounts_posts_are_asked_twenty_at_a_time_and_a_429_delays_them_without_losing_any() {
    let emu = TikTok::start().await;
    let (app, account) = measured_account(&emu).await;
    let (collector, records) = collector(&app).await;
    let topics = vec!["Tides"; 23];
    let jobs = posted_jobs(&emu, &records, &account, &topics, 7_400_000_000_000_000_000).await;

    // TikTok lets one video/query call a minute through: the second batch gets 429.
    emu.state.video_query_per_minute.store(1, Ordering::SeqCst);
    let now = Utc::now();
    let pass = collector.collect_due(now).await.unwrap();
    assert_eq!(
        (pass.claimed, pass.post_ids_learned, pass.query_calls, pass.samples, pass.deferred),
        (23, 23, 2, 20, 3),
        "{pass:?}"
    );
    assert_eq!(*emu.state.video_query_batches.lock().unwrap(), [20, 3], "ids per call");
    assert_eq!(emu.state.rate_limited.load(Ordering::SeqCst), 1);
    let sampled = |jobs: &[(JobId, String)]| {
        let records = records.clone();
        let jobs = jobs.to_vec();
        async move {
            let mut n = Vec::new();
            for (job, _) in &jobs {
                n.push(records.samples(job).await.unwrap().len());
            }
            n
        }
    };
    let per_job = sampled(&jobs).await;
    assert_eq!(per_job.iter().filter(|n| **n == 1).count(), 20);
    for (job, post_id) in &jobs {
        let tracked = records.tracked_post(job).await.unwrap().unwrap();
        assert_eq!(tracked.post_id.as_deref(), Some(post_id.as_str()), "every post id is kept");
        assert!(tracked.next_due_at.is_some());
    }

    // Within the back-off the account is left alone.
    let waiting = collector.collect_due(now + Duration::seconds(30)).await.unwrap();
    assert_eq!((waiting.claimed, waiting.query_calls), (0, 0), "{waiting:?}");
    // After it, the three left are asked; nothing was lost.
    emu.state.video_query_per_minute.store(600, Ordering::SeqCst);
    let after = collector.collect_due(now + Duration::seconds(61)).await.unwrap();
    assert_eq!((after.claimed, after.query_calls, after.samples), (3, 1, 3), "{after:?}");
    assert_eq!(*emu.state.video_query_batches.lock().unwrap(), [20, 3, 3]);
    assert_eq!(sampled(&jobs).await, vec![1; 23], "one sample each");
    let (_, grouped) = get_json(&app, "/v1/performance?group_by=topic").await;
    let views: u64 = (1..=23).map(|i| 10 * i).sum();
    assert_eq!(grouped["groups"][0]["posts"], 23, "{grouped}");
    assert_eq!(grouped["groups"][0]["views"], views);
}

#[tokio::test]
async fn three_posts_over_thirty_simulated_days_follow_the_back_off_schedule_within_the_limits() {
    let emu = TikTok::start().await;
    let (app, account) = measured_account(&emu).await;
    // Two publish workers' collectors, running every pass at the same time.
    let (collector, records) = collector(&app).await;
    let (other, _) = crate::performance::collector(&app).await;
    emu.state.set_user_stats(OPEN_ID, UserStats { followers: 10, following: 1, likes: 5, videos: 3 });
    let jobs = posted_jobs(&emu, &records, &account, &["Tides", "Tides", "Volcanoes"], 7_500_000_000_000_000_000).await;
    let start: DateTime<Utc> = Utc::now();

    // Every half hour of 31 days; which marks had samples, and how many.
    let mut total = PassReport::default();
    let mut samples_per_day = vec![0u32; 32];
    let mut marks = std::collections::BTreeSet::new();
    let mut t = start;
    let mut passes = 0;
    while t <= start + Duration::days(31) && passes < 2000 {
        let (a, b) = tokio::join!(collector.collect_due(t), other.collect_due(t));
        for p in [a.unwrap(), b.unwrap()] {
            samples_per_day[((t - start).num_hours() / 24) as usize] += p.samples;
            if p.samples > 0 {
                marks.insert(t);
            }
            total.query_calls += p.query_calls;
            total.samples += p.samples;
            total.stats_calls += p.stats_calls;
            total.deferred += p.deferred;
        }
        t += Duration::minutes(30);
        passes += 1;
    }
    // Marks: at once, 24 hourly, 29 daily (days 2-30); each post asked
    // once a mark, by whichever collector claimed it (the three went up
    // together, so one call asks for all three unless the two collectors
    // split them: SQLite serialises the claims, PostgreSQL's SKIP LOCKED may not).
    assert_eq!(marks.len(), 54);
    assert_eq!(total.samples, 54 * 3, "{samples_per_day:?}");
    assert!((54..=54 * 3).contains(&total.query_calls), "{}", total.query_calls);
    let batches = emu.state.video_query_batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 54 * 3, "no post was asked twice at a mark: {batches:?}");
    assert_eq!(samples_per_day[0], 24 * 3, "hourly on the first day");
    assert!(samples_per_day[1..=30].iter().all(|n| *n == 3), "daily after: {samples_per_day:?}");
    assert_eq!(samples_per_day[31], 0, "nothing after 30 days: {samples_per_day:?}");
    assert_eq!(total.stats_calls, 54, "the account's totals on the same schedule, by one collector");
    assert_eq!((total.deferred, emu.state.rate_limited.load(Ordering::SeqCst)), (0, 0), "no limit was reached");
    for (job, _) in &jobs {
        assert_eq!(records.samples(job).await.unwrap().len(), 54);
        assert_eq!(records.tracked_post(job).await.unwrap().unwrap().next_due_at, None, "the schedule ended");
    }

    let (_, grouped) = get_json(&app, "/v1/performance?group_by=topic").await;
    assert_eq!(
        grouped["groups"],
        json!([
            { "group": "Tides", "posts": 2, "views": 30, "likes": 1, "comments": 2, "shares": 0 },
            { "group": "Volcanoes", "posts": 1, "views": 30, "likes": 2, "comments": 1, "shares": 0 },
        ])
    );
    let (_, perf) = get_json(&app, &format!("/v1/jobs/{}/performance", jobs[0].0)).await;
    assert_eq!(perf["samples"].as_array().unwrap().len(), 54);
    assert!(perf["note"].as_str().unwrap().contains("schedule has ended"), "{perf}");
}

#[tokio::test]
async fn without_video_list_nothing_is_asked_and_the_job_says_why() {
    let emu = TikTok::start().await;
    let app = app_with_tiktok(
        &emu,
        QueueKind::Sqlite,
        Roles { api: true, stages: vec![] },
        &[("CLIPFORGE__TIKTOK__SCOPES", "user.info.basic,video.upload")],
    )
    .await;
    let account = connect_account(&app).await["id"].as_str().unwrap().to_string();
    let (collector, records) = collector(&app).await;
    let jobs = posted_jobs(&emu, &records, &account, &["Tides"], 7_600_000_000_000_000_000).await;
    let user_info_calls = emu.state.user_info_calls.load(Ordering::SeqCst);

    let pass = collector.collect_due(Utc::now()).await.unwrap();
    assert_eq!((pass.post_ids_learned, pass.query_calls, pass.stats_calls, pass.samples), (1, 0, 0, 0), "{pass:?}");
    assert_eq!(emu.state.video_query_calls.load(Ordering::SeqCst), 0);
    assert_eq!(emu.state.user_info_calls.load(Ordering::SeqCst), user_info_calls, "no totals without user.info.stats");
    let (_, perf) = get_json(&app, &format!("/v1/jobs/{}/performance", jobs[0].0)).await;
    assert_eq!(perf["post_id"], jobs[0].1.as_str(), "the post id is kept");
    assert!(perf["note"].as_str().unwrap().contains("video.list"), "{perf}");
    // The account is left alone for a while rather than asked every tick.
    let again = collector.collect_due(Utc::now() + Duration::minutes(5)).await.unwrap();
    assert_eq!(again.claimed, 0, "{again:?}");
}
