//! Data rights: `DELETE /v1/jobs/{id}` erases a job — no row, file, cache
//! object or queue task of it remains, and nothing another job needs goes —
//! and `GET /v1/export` holds everything else.

use std::collections::BTreeSet;
use std::path::Path;

use clipforge::app::Roles;
use serde_json::{Value, json};

use crate::providers::{Emulators, app_with};
use crate::support::{QueueKind, TestApp, error_code, files_under, holds, spawn_app_with};

/// Every object file, as its key (path under the objects folder).
fn object_keys(app: &TestApp) -> BTreeSet<String> {
    let root = app.data.path().join("objects");
    files_under(&root)
        .into_iter()
        .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
        .filter(|k| !k.starts_with(".tmp"))
        .collect()
}

/// Every path under the data folder (files and folders) that names `id`.
fn paths_naming(dir: &Path, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.display().to_string().contains(id) {
            out.push(p.display().to_string());
        }
        if p.is_dir() {
            out.extend(paths_naming(&p, id));
        }
    }
    out
}

async fn purge(app: &TestApp, id: &str) -> reqwest::Response {
    app.http.delete(format!("{}/v1/jobs/{id}", app.address)).send().await.unwrap()
}

/// Purges a cancelled job, asking again while its stage may still be
/// stopping (409), for up to `patience_s` seconds.
async fn purge_once_stopped(app: &TestApp, id: &str, patience_s: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(patience_s);
    loop {
        let resp = purge(app, id).await;
        if resp.status() == 200 {
            return;
        }
        assert_eq!(resp.status(), 409);
        assert!(std::time::Instant::now() < deadline, "never purged");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn export(app: &TestApp) -> (String, Value) {
    let resp = app.get("/v1/export").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let text = resp.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).expect("the export is one JSON document");
    (text, doc)
}

fn exported_ids(doc: &Value) -> BTreeSet<String> {
    doc["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect()
}

/// Whether `key` is one of the files `job` uses: named in its manifest, or the
/// timings file beside its narration.
fn used_by(job: &Value, key: &str) -> bool {
    let manifest = job["manifest"].to_string();
    let narration_timings =
        job["manifest"]["narration"]["key"].as_str().and_then(|k| k.strip_suffix(".wav")).map(|s| format!("{s}.json"));
    manifest.contains(&format!("\"{key}\"")) || narration_timings.as_deref() == Some(key)
}

#[tokio::test]
async fn a_purged_job_leaves_no_row_file_or_cache_object_and_the_export_holds_everything_else() {
    let emu = Emulators::start().await;
    let app = app_with(&emu, &[]).await;

    // A and B: the same topic, so B uses every cache object A made (script,
    // searches, narration, footage). C: a script of its own, with objects of its own.
    let topic = json!({ "topic": "why tides happen", "target_length_s": 10 });
    let a = app.submit(topic.clone()).await;
    app.wait_staged(&a).await;
    let b = app.submit(topic).await;
    let job_b = app.wait_staged(&b).await;
    let c = app.submit(json!({ "script": "Owls hunt at night. Their eyes gather every bit of light." })).await;

    // A job still running is not purged.
    let busy = purge(&app, &c).await;
    assert_eq!(busy.status(), 409);
    let body: Value = busy.json().await.unwrap();
    assert_eq!(error_code(&body), "job_active");
    assert!(body["error"]["message"].as_str().unwrap().contains("cancel it first"), "{body}");
    let job_c = app.wait_staged(&c).await;

    // Before: A is everywhere (so the checks below can fail).
    assert!(holds(&app.raw_records(), &a));
    assert!(holds(&app.raw_queue().await, &a), "apalis keeps finished tasks' payloads");
    let before = object_keys(&app);
    assert!(before.contains(&format!("renders/{a}.mp4")));

    let resp = purge(&app, &a).await;
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["job_id"], a.as_str());
    assert!(report["queue_tasks_deleted"].as_u64().unwrap() >= 3, "{report}");

    // Gone for the user…
    assert_eq!(app.get(&format!("/v1/jobs/{a}")).await.status(), 404);
    assert_eq!(purge(&app, &a).await.status(), 404);
    // …and in every store: no row, queue task, file or folder names it.
    assert!(!holds(&app.raw_records(), &a), "the record store still holds job {a}");
    assert!(!holds(&app.raw_queue().await, &a), "the queue still holds job {a}");
    assert_eq!(paths_naming(app.data.path(), &a), Vec::<String>::new());
    // Only A's own render went: every cache object it used, B uses too.
    let after = object_keys(&app);
    let gone: Vec<_> = before.difference(&after).cloned().collect();
    assert_eq!(gone, vec![format!("renders/{a}.mp4")]);
    assert_eq!(report["objects_deleted"], 1);
    assert!(report["cache_kept"].as_u64().unwrap() >= 4, "{report}");
    let video = app.get(&format!("/v1/jobs/{b}/video")).await;
    assert_eq!(video.status(), 200, "B's video is untouched");

    // The export holds B and C whole, and nothing of A.
    let (text, doc) = export(&app).await;
    assert_eq!(doc["format"], "clipforge-export/1");
    assert_eq!(exported_ids(&doc), BTreeSet::from([b.clone(), c.clone()]));
    assert!(!text.contains(&a), "the export mentions the purged job");
    for (id, shown) in [(&b, &job_b), (&c, &job_c)] {
        let exported = doc["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id.as_str()).unwrap();
        assert_eq!(exported["manifest"], shown["manifest"]);
        assert_eq!(exported["spec"], shown["spec"]);
        assert_eq!(exported["events"], shown["events"]);
    }
    assert!(doc["accounts"].is_array() && doc["api_keys"].is_array() && doc["batches"].is_array());

    // Purging C takes the objects only C used (its narration at least) and
    // leaves exactly what B uses.
    let before = object_keys(&app);
    let only_c: Vec<_> = before.iter().filter(|k| used_by(&job_c, k) && !used_by(&job_b, k)).cloned().collect();
    assert!(only_c.iter().any(|k| k.starts_with("cache/narration/")), "{only_c:?}");
    assert_eq!(purge(&app, &c).await.status(), 200);
    let after = object_keys(&app);
    assert!(
        after.iter().all(|k| used_by(&job_b, k)),
        "left behind: {:?}",
        after.iter().filter(|k| !used_by(&job_b, k)).collect::<Vec<_>>()
    );
    assert!(before.iter().filter(|k| used_by(&job_b, k)).all(|k| after.contains(k)), "a file B uses went");
    assert!(!holds(&app.raw_records(), &c));
    let (_, doc) = export(&app).await;
    assert_eq!(exported_ids(&doc), BTreeSet::from([b]));
}

#[tokio::test]
async fn with_a_redis_queue_the_purged_jobs_tasks_leave_redis_and_the_cli_purges_and_exports() {
    let app = spawn_app_with(QueueKind::Redis, Roles::all(), &[]).await;
    let kept = app.submit(json!({ "script": "Bees dance to talk." })).await;
    let gone = app.submit(json!({ "script": "Ants farm fungus underground." })).await;
    app.wait_staged(&kept).await;
    app.wait_staged(&gone).await;
    assert!(String::from_utf8(app.raw_queue().await).unwrap().contains(&gone), "apalis keeps finished tasks in Redis");

    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_clipforge"));
        command.args(args).envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).env("RUST_LOG", "warn");
        command.env("CLIPFORGE_SERVER", &app.address);
        async move { tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap() }
    };

    // Without --yes nothing happens.
    let out = cli(&["jobs", "purge", &gone]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(app.get(&format!("/v1/jobs/{gone}")).await.status(), 200);

    let out = cli(&["jobs", "purge", &gone, "--yes"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{gone} purged")));
    let dump = String::from_utf8(app.raw_queue().await).unwrap();
    assert!(!dump.contains(&gone), "Redis still holds the purged job");
    assert!(dump.contains(&kept), "the other job's tasks were left alone");
    assert!(!holds(&app.raw_records(), &gone));
    assert_eq!(paths_naming(app.data.path(), &gone), Vec::<String>::new());
    assert_eq!(cli(&["jobs", "purge", &gone, "--yes"]).await.status.code(), Some(4), "no such job: exit 4");

    let file = app.data.path().join("export.json");
    let out = cli(&["export", "--out", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(exported_ids(&doc), BTreeSet::from([kept]));
    assert!(!app.data.path().join("export.json.partial").exists());
}

#[tokio::test]
async fn a_job_cancelled_mid_stage_is_purged_only_once_its_stage_has_surely_stopped() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &[]).await;
    let id = app.submit(json!({ "script": "This render is cancelled and then erased. ".repeat(8) })).await;
    app.wait_for(&id, &[clipforge::domain::JobState::Rendering], std::time::Duration::from_secs(120)).await;
    assert_eq!(app.post(&format!("/v1/jobs/{id}/cancel")).await.status(), 200);

    // The render may still be stopping: refused, saying when to come back.
    let early = purge(&app, &id).await;
    assert_eq!(early.status(), 409);
    let body: Value = early.json().await.unwrap();
    assert_eq!(error_code(&body), "job_stopping", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("purge again after"), "{body}");
    assert_eq!(app.get(&format!("/v1/jobs/{id}")).await.status(), 200, "nothing was erased");

    // After the orphan window (3 s in tests) it goes, leaving no trace.
    purge_once_stopped(&app, &id, 20).await;
    assert!(!holds(&app.raw_records(), &id));
    assert!(!holds(&app.raw_queue().await, &id));
    assert_eq!(paths_naming(app.data.path(), &id), Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_job_being_purged_can_no_longer_be_retried() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &[]).await;
    let id = app.submit(json!({ "script": "Short one.", "music": { "track": "missing.mp3" } })).await;
    app.wait_for(&id, &[clipforge::domain::JobState::Failed], std::time::Duration::from_secs(120)).await;
    // Purge and retry race; whichever wins, the job is not both erased and running.
    let retry_path = format!("/v1/jobs/{id}/retry");
    let (purged, retried) = tokio::join!(purge(&app, &id), app.post(&retry_path));
    match (purged.status().as_u16(), retried.status().as_u16()) {
        (200, 409 | 404) => assert_eq!(app.get(&format!("/v1/jobs/{id}")).await.status(), 404),
        (409, 202) => assert_ne!(app.job(&id).await["state"], "failed"),
        other => panic!("purge and retry both went through, or neither: {other:?}"),
    }
}

#[tokio::test]
async fn a_segmented_render_cancelled_before_its_join_is_purged_with_its_segments_and_audio() {
    let settings = [
        ("CLIPFORGE__MEDIA__SEGMENT_MIN_SECONDS", "5"),
        ("CLIPFORGE__MEDIA__SEGMENT_SECONDS", "5"),
        ("CLIPFORGE__MEDIA__FFMPEG_THREADS", "1"),
    ];
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &settings).await;
    let id = app.submit(json!({ "script": "This segmented render is cancelled and then erased. ".repeat(8) })).await;
    // The audio encoded beside the segments, which no manifest names, is stored.
    let work = app.data.path().join("objects").join("work").join(&id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !files_under(&work).iter().any(|p| p.to_string_lossy().ends_with(".m4a")) {
        assert!(std::time::Instant::now() < deadline, "no audio encoded ahead: {:#}", app.job(&id).await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.post(&format!("/v1/jobs/{id}/cancel")).await.status(), 200);

    purge_once_stopped(&app, &id, 30).await;
    assert!(!holds(&app.raw_records(), &id));
    assert_eq!(paths_naming(app.data.path(), &id), Vec::<String>::new(), "segments or audio left");
}
