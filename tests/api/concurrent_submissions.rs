//! Many submissions at once on the embedded set-up (SQLite records, SQLite
//! queue): none is refused because the database is busy, and racing
//! submissions with one idempotency key agree on one job. Run with
//! `CLIPFORGE_TEST_RECORDS=postgres` for the same on PostgreSQL records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clipforge::app::Roles;
use clipforge::domain::JobState;
use serde_json::{Value, json};

use crate::support::{QueueKind, TestApp, spawn_app_with};

fn api_only() -> Roles {
    Roles { api: true, stages: vec![] }
}

/// Posts a job with an optional idempotency key (the spec's `idempotency_key`); returns (status, body).
async fn post(app: &TestApp, mut spec: Value, key: Option<String>) -> (u16, Value) {
    if let Some(key) = key {
        spec["idempotency_key"] = Value::String(key);
    }
    let resp = app.post_job_raw(&spec.to_string()).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// How many answers had each status, and the error codes of the others.
fn tally(answers: &[(u16, Value)]) -> (BTreeMap<u16, usize>, Vec<String>) {
    let mut by_status = BTreeMap::new();
    for (status, _) in answers {
        *by_status.entry(*status).or_default() += 1;
    }
    let errors = answers
        .iter()
        .filter(|(s, _)| *s >= 400)
        .map(|(s, b)| format!("{s} {} {}", b["error"]["code"], b["error"]["message"]))
        .collect();
    (by_status, errors)
}

fn job_count(app_jobs: &Value) -> usize {
    app_jobs["jobs"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_hundred_concurrent_keyed_submissions_are_all_accepted() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[]).await;
    let started = Instant::now();
    let racers = (0..100).map(|n| {
        let spec = json!({ "script": format!("Submission number {n}.") });
        post(&app, spec, Some(format!("distinct-{n}")))
    });
    let answers = futures::future::join_all(racers).await;
    let took = started.elapsed();
    let (by_status, errors) = tally(&answers);
    eprintln!("100 keyed submissions: {by_status:?} in {took:?}");
    assert_eq!(by_status, BTreeMap::from([(202, 100)]), "{errors:#?}");
    let mut ids: Vec<&str> = answers.iter().map(|(_, b)| b["job_id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "one job per key");
    assert_eq!(job_count(&app.get("/v1/jobs?limit=200").await.json().await.unwrap()), 100);
}

#[tokio::test]
async fn twenty_concurrent_submissions_with_one_key_make_one_job_and_every_answer_names_it() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[]).await;
    let spec = json!({ "script": "Sent twenty times at once." });
    let racers = (0..20).map(|_| post(&app, spec.clone(), Some("the-one-key".into())));
    let answers = futures::future::join_all(racers).await;
    let (by_status, errors) = tally(&answers);
    eprintln!("20 submissions with one key: {by_status:?}");
    assert_eq!(by_status, BTreeMap::from([(200, 19), (202, 1)]), "one new, the rest duplicates: {errors:#?}");
    let created = answers.iter().find(|(s, _)| *s == 202).unwrap().1["job_id"].clone();
    for (status, body) in &answers {
        assert_eq!(body["job_id"], created, "every answer names the one job");
        assert_eq!(body["duplicate"], *status == 200);
    }
    let jobs: Value = app.get("/v1/jobs?limit=200").await.json().await.unwrap();
    assert_eq!(job_count(&jobs), 1, "{jobs:#}");
    assert_eq!(jobs["jobs"][0]["id"], created);
}

#[tokio::test]
async fn submissions_while_a_batch_is_stored_and_workers_run_are_never_refused_as_busy() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &[]).await;
    // Work in hand: jobs whose workers write progress and transitions meanwhile.
    let mut working = Vec::new();
    for n in 0..3 {
        working.push(app.submit(json!({ "script": format!("Worked on during the rush, {n}.") })).await);
    }
    app.wait_for(&working[0], &[JobState::Preparing, JobState::Rendering, JobState::Staging], Duration::from_secs(60))
        .await;

    let csv: String = std::iter::once("script\n".to_string())
        .chain((0..200).map(|n| format!("\"Batch line {n}, a short script.\"\n")))
        .collect();
    let batch = async {
        let resp = app
            .http
            .post(format!("{}/v1/batches", app.address))
            .header("content-type", "text/csv")
            .header("idempotency-key", "the-rush-batch")
            .body(csv)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap())
    };
    let keyed = (0..40).map(|n| post(&app, json!({ "script": format!("Keyed {n}.") }), Some(format!("rush-{n}"))));
    let same_key = (0..10).map(|_| post(&app, json!({ "script": "Same key in the rush." }), Some("rush-same".into())));
    let unkeyed = (0..20).map(|n| post(&app, json!({ "script": format!("Unkeyed {n}.") }), None));
    let started = Instant::now();
    let (batch, keyed, same_key, unkeyed) = tokio::join!(
        batch,
        futures::future::join_all(keyed),
        futures::future::join_all(same_key),
        futures::future::join_all(unkeyed)
    );
    let took = started.elapsed();
    let all: Vec<(u16, Value)> = keyed.iter().chain(&same_key).chain(&unkeyed).cloned().collect();
    let (by_status, errors) = tally(&all);
    eprintln!(
        "rush of 70 submissions and a 200-line batch beside 3 working jobs: {by_status:?}, batch {}, in {took:?}",
        batch.0
    );
    assert_eq!(batch.0, 201, "{:#}", batch.1);
    assert_eq!(batch.1["counts"]["new"], 200);
    assert_eq!(by_status, BTreeMap::from([(200, 9), (202, 61)]), "{errors:#?}");
    let same: Vec<&Value> = same_key.iter().map(|(_, b)| &b["job_id"]).collect();
    assert!(same.iter().all(|id| *id == same[0]), "one job for the shared key: {same:?}");

    // The workers were not hurt either: the jobs in hand go on.
    for id in &working {
        let job = app.job(id).await;
        assert_ne!(job["state"], "failed", "{job:#}");
    }
}
