//! Batches: many jobs in one request, every line judged on its own, and a
//! re-sent batch creates nothing new.

use std::time::{Duration, Instant};

use clipforge::app::Roles;
use serde_json::{Value, json};

use crate::support::{QueueKind, TestApp, error_code, spawn_app, spawn_app_with};

fn api_only() -> Roles {
    // No worker takes tasks off the queue, so nothing renders and counts are exact.
    Roles { api: true, stages: vec![] }
}

async fn post_batch(app: &TestApp, content_type: &str, body: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/v1/batches", app.address))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("batch answers are JSON"))
}

/// Every job in the record store, paging through `GET /v1/jobs`.
async fn all_job_ids(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(b) => format!("/v1/jobs?limit=200&before={b}"),
            None => "/v1/jobs?limit=200".to_string(),
        };
        let page: Value = app.get(&path).await.json().await.unwrap();
        ids.extend(page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => return ids,
        }
    }
}

/// Tasks in the app's embedded SQLite queue.
async fn queued_tasks(app: &TestApp) -> i64 {
    let url = format!("sqlite://{}", app.data.path().join("queue.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM Jobs").fetch_one(&pool).await.unwrap()
}

fn rejections(answer: &Value) -> Vec<(u64, String, Vec<String>)> {
    answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let details = r["details"]
                .as_array()
                .map_or(Vec::new(), |d| d.iter().map(|d| d["code"].as_str().unwrap().to_string()).collect());
            (r["line"].as_u64().unwrap(), r["code"].as_str().unwrap().to_string(), details)
        })
        .collect()
}

fn job_ids(answer: &Value) -> Vec<String> {
    answer["accepted"].as_array().unwrap().iter().map(|a| a["job_id"].as_str().unwrap().to_string()).collect()
}

/// A CSV of `rows` jobs; the data row on file line `n` is row n - 1 (the header is line 1).
fn csv_with_bad_lines(rows: usize, bad: &[(usize, &str)]) -> String {
    let mut csv = String::from("script,topic,voice,target_length_s,footage_queries,captions\n");
    for line in 2..rows + 2 {
        let row = match bad.iter().find(|(l, _)| *l == line) {
            Some((_, row)) => row.to_string(),
            None => format!("\"Line {line}, a short script.\",,en-us,,ocean|moon,true"),
        };
        csv.push_str(&row);
        csv.push('\n');
    }
    csv
}

#[tokio::test]
async fn a_thousand_line_csv_with_three_bad_lines_makes_997_jobs_once() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[]).await;
    let bad = [(10, "...,,,,,"), (500, ",tides,,4,,"), (999, "Fine words.,,en us!,,,")];
    let csv = csv_with_bad_lines(1000, &bad);

    let (status, first) = post_batch(&app, "text/csv", &csv, None).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        rejections(&first),
        [
            (10, "invalid_spec".into(), vec!["script_empty".into()]),
            (500, "invalid_spec".into(), vec!["target_length_out_of_range".into()]),
            (999, "invalid_spec".into(), vec!["voice_invalid".into()]),
        ]
    );
    let accepted = first["accepted"].as_array().unwrap();
    assert_eq!(accepted.len(), 997);
    assert_eq!((accepted[0]["line"].as_u64(), accepted[996]["line"].as_u64()), (Some(2), Some(1001)));
    assert!(accepted.iter().all(|a| a["duplicate"] == false));
    assert_eq!(first["counts"], json!({ "lines": 1000, "accepted": 997, "new": 997, "duplicates": 0, "rejected": 3 }));
    let mut ids = job_ids(&first);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 997, "one job per accepted line");
    let mut stored = all_job_ids(&app).await;
    stored.sort();
    assert_eq!(stored, ids, "the record store holds exactly the accepted jobs");
    assert_eq!(queued_tasks(&app).await, 997, "and each is queued once");

    // The job keeps what the CSV said.
    let job = app.job(&job_ids(&first)[0]).await;
    assert_eq!(job["spec"]["footage_queries"], json!(["ocean", "moon"]));
    assert_eq!(job["spec"]["voice"], "en-us");

    let (status, again) = post_batch(&app, "text/csv", &csv, None).await;
    assert_eq!(status, 200, "nothing new: {again}");
    assert_eq!(again["batch_id"], first["batch_id"]);
    assert_eq!(again["counts"]["new"], 0);
    assert_eq!(again["counts"]["duplicates"], 997);
    assert!(again["accepted"].as_array().unwrap().iter().all(|a| a["duplicate"] == true));
    assert_eq!(job_ids(&again), job_ids(&first), "the same jobs, line for line");
    assert_eq!(rejections(&again), rejections(&first));
    assert_eq!(all_job_ids(&app).await.len(), 997);
    assert_eq!(queued_tasks(&app).await, 997, "nothing queued twice");

    let view: Value =
        app.get(&format!("/v1/batches/{}", first["batch_id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(
        (view["lines"].as_u64(), view["accepted"].as_u64(), view["rejected"].as_u64()),
        (Some(1000), Some(997), Some(3))
    );
    assert_eq!(view["jobs_by_state"], json!({ "queued": 997 }));
    assert_eq!(view["done"], false);
}

#[tokio::test]
async fn json_lines_and_json_arrays_are_batches_too_with_their_own_line_numbers() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[]).await;
    let jsonl = "{\"script\": \"First line.\"}\n\n{\"script\": \"Third line.\", \"colour\": \"red\"}\n\
                 {\"script\": \"Fourth\n{\"topic\": \"tides\", \"target_length_s\": 20}\n";
    let (status, lines) = post_batch(&app, "application/x-ndjson", jsonl, Some("campaign-7")).await;
    assert_eq!(status, 201, "{lines}");
    assert_eq!(
        lines["accepted"].as_array().unwrap().iter().map(|a| a["line"].as_u64().unwrap()).collect::<Vec<_>>(),
        [1, 5]
    );
    assert_eq!(
        rejections(&lines),
        [(3, "invalid_spec".into(), vec!["wrong_shape".into()]), (4, "malformed_json".into(), vec![])]
    );
    assert!(lines["rejected"][0]["message"].as_str().unwrap().contains("colour"), "{lines}");
    assert_eq!(lines["counts"]["lines"], 4, "the blank line is skipped but counted");

    // The same key with the same lines, now as `application/jsonl`: nothing new.
    let (status, again) = post_batch(&app, "application/jsonl", jsonl, Some("campaign-7")).await;
    assert_eq!(status, 200);
    assert_eq!((again["batch_id"].clone(), job_ids(&again)), (lines["batch_id"].clone(), job_ids(&lines)));
    // ... and through ?key= as well.
    let resp = app
        .http
        .post(format!("{}/v1/batches?key=campaign-7", app.address))
        .header("content-type", "application/x-ndjson")
        .body(jsonl)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let array = json!([
        { "script": "Element one." },
        { "script": "Element two.", "idempotency_key": "my-own-key" },
        { "script": "   " },
        { "script": "For TikTok.", "account": "creator-1" },
    ]);
    let (status, elements) = post_batch(&app, "application/json", &array.to_string(), None).await;
    assert_eq!(status, 201, "{elements}");
    assert_eq!(
        elements["accepted"].as_array().unwrap().iter().map(|a| a["line"].as_u64().unwrap()).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        rejections(&elements),
        [
            (3, "invalid_spec".into(), vec!["script_empty".into()]),
            (4, "invalid_spec".into(), vec!["publish_not_configured".into()]),
        ]
    );
    let own = app.job(&job_ids(&elements)[1]).await;
    assert_eq!(own["spec"]["idempotency_key"], "my-own-key", "a line's own key is kept");
    let derived = app.job(&job_ids(&elements)[0]).await;
    assert!(derived["spec"]["idempotency_key"].as_str().unwrap().starts_with("batch:sha256:"), "{derived}");

    // A different line under a key the batch used before is refused, the rest still counts.
    let changed = json!([{ "script": "Element one, edited." }, { "script": "A new element." }]);
    let key = derived["spec"]["idempotency_key"].as_str().unwrap().trim_start_matches("batch:");
    let key = key.rsplit_once(':').unwrap().0;
    let (status, edited) = post_batch(&app, "application/json", &changed.to_string(), Some(key)).await;
    assert_eq!(status, 201, "{edited}");
    assert_eq!(edited["batch_id"], elements["batch_id"]);
    assert_eq!(rejections(&edited), [(1, "idempotency_key_reused".into(), vec![])]);
    assert_eq!(edited["accepted"][0]["line"], 2);
    assert_eq!(all_job_ids(&app).await.len(), 5);
    assert_eq!(queued_tasks(&app).await, 5);
}

#[tokio::test]
async fn whole_batches_are_refused_for_unknown_columns_wrong_types_and_too_many_lines() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[("CLIPFORGE__LIMITS__MAX_BATCH_LINES", "3")]).await;
    let (status, err) = post_batch(&app, "text/csv", "script,colour\nHello.,red\n", None).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(error_code(&err), "unknown_column");
    assert!(err["error"]["message"].as_str().unwrap().contains("`colour`"), "{err}");

    let (status, err) = post_batch(&app, "text/plain", "script\nHello.\n", None).await;
    assert_eq!((status, Some(error_code(&err))), (415, Some("unsupported_media_type")));
    let (status, err) = post_batch(&app, "application/json", "[{\"script\": ", None).await;
    assert_eq!((status, Some(error_code(&err))), (400, Some("malformed_json")));
    let (status, err) = post_batch(&app, "application/json", "{\"script\": \"One.\"}", None).await;
    assert_eq!((status, Some(error_code(&err))), (422, Some("invalid_batch")));
    let (status, err) = post_batch(&app, "text/csv", "script\n", None).await;
    assert_eq!((status, Some(error_code(&err))), (422, Some("batch_empty")));
    let four = "script\nA.\nB.\nC.\nD.\n";
    let (status, err) = post_batch(&app, "text/csv", four, None).await;
    assert_eq!((status, Some(error_code(&err))), (413, Some("too_many_lines")), "{err}");
    let (status, err) = post_batch(&app, "text/csv", "script\nA.\n", Some("has space")).await;
    assert_eq!((status, Some(error_code(&err))), (400, Some("invalid_idempotency_key")));

    assert!(all_job_ids(&app).await.is_empty(), "a refused batch leaves no job");
    assert_eq!(queued_tasks(&app).await, 0);
    let missing = app.get("/v1/batches/01a20000-0000-7000-8000-000000000000").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(&missing.json::<Value>().await.unwrap()), "batch_not_found");
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["paths"].get("/v1/batches").is_some() && doc["paths"].get("/v1/batches/{id}").is_some());
}

#[tokio::test]
async fn a_small_batch_on_redis_runs_to_staged_and_its_summary_says_done() {
    let app = spawn_app(QueueKind::Redis).await;
    let csv = "script,footage_queries\nThe tide comes in.,ocean\n\"Twice a day, nobody asks it to.\",moon|sea\n";
    let (status, answer) = post_batch(&app, "text/csv", csv, None).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["counts"]["new"], 2);
    let path = format!("/v1/batches/{}", answer["batch_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(240);
    let view = loop {
        let view: Value = app.get(&path).await.json().await.unwrap();
        if view["done"] == true {
            break view;
        }
        assert!(Instant::now() < deadline, "the batch did not finish: {view}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(view["jobs_by_state"], json!({ "staged": 2 }), "{view}");
    for id in job_ids(&answer) {
        let job = app.job(&id).await;
        assert!(job["outputs"]["video"]["bytes"].as_u64().unwrap() > 0, "{job}");
    }
}

fn clipforge(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_clipforge")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

#[tokio::test]
async fn submit_a_csv_with_wait_reports_bad_lines_and_a_table_and_exits_by_outcome() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let mixed = dir.path().join("jobs.csv");
    std::fs::write(&mixed, "script,voice\nA batch from the command line.,en-us\n...,\n").unwrap();
    let all_bad = dir.path().join("bad.jsonl");
    std::fs::write(&all_bad, "{\"script\": \"   \"}\n{\"topic\": \"tides\", \"target_length_s\": 2}\n").unwrap();
    let (server, mixed, all_bad) = (app.address.clone(), mixed.display().to_string(), all_bad.display().to_string());
    let (waited, refused) = tokio::task::spawn_blocking(move || {
        (
            clipforge(&["submit", &mixed, "--wait", "--server", &server]),
            clipforge(&["submit", &all_bad, "--server", &server]),
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert_eq!(waited.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("line 3: script: the script has no words to speak (invalid_spec)"), "{stderr}");
    let stdout = String::from_utf8(waited.stdout).unwrap();
    let table: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(table, [vec!["state", "jobs"], vec!["staged", "1"], vec!["total", "1"]], "{stdout}");

    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "nothing accepted: {stderr}");
    assert!(stderr.contains("line 1:") && stderr.contains("line 2:"), "{stderr}");
}

#[tokio::test]
async fn a_batch_the_queue_refuses_leaves_nothing_behind_and_can_be_sent_again() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[]).await;
    let url = format!("sqlite://{}", app.data.path().join("queue.db").display());
    let queue = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE Jobs RENAME TO Jobs_away").execute(&queue).await.unwrap();
    let csv = csv_with_bad_lines(20, &[(5, "...,,,,,")]);
    let (status, err) = post_batch(&app, "text/csv", &csv, None).await;
    assert_eq!((status, Some(error_code(&err))), (503, Some("queue_unavailable")), "{err}");
    assert!(all_job_ids(&app).await.is_empty(), "the jobs that could not be queued were removed");

    sqlx::query("ALTER TABLE Jobs_away RENAME TO Jobs").execute(&queue).await.unwrap();
    let (status, answer) = post_batch(&app, "text/csv", &csv, None).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["counts"]["new"], 19, "nothing of the failed attempt counts as sent");
    assert_eq!(queued_tasks(&app).await, 19);
}
