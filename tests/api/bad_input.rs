//! Bad requests get a clear JSON error and leave nothing behind.

use clipforge::app::Roles;
use serde_json::{Value, json};

use crate::support::{QueueKind, REDIS_URL, TestApp, error_code, spawn_app_with};

/// Tasks waiting in the app's queue, read from the queue backend itself.
async fn queued_tasks(app: &TestApp, kind: QueueKind) -> i64 {
    match kind {
        QueueKind::Sqlite => {
            let url = format!("sqlite://{}", app.data.path().join("queue.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM Jobs").fetch_one(&pool).await.unwrap()
        }
        QueueKind::Redis => {
            let client = redis::Client::open(REDIS_URL).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            // apalis-redis keeps every pushed task's payload in `<queue>:data`.
            let mut n = 0;
            for stage in ["prepare", "render", "publish"] {
                let len: i64 = redis::cmd("HLEN")
                    .arg(format!("{}:{stage}:data", app.namespace))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                n += len;
            }
            n
        }
    }
}

async fn job_count(app: &TestApp) -> usize {
    let page: Value = app.get("/v1/jobs").await.json().await.unwrap();
    page["jobs"].as_array().unwrap().len()
}

async fn refused(app: &TestApp, body: &str) -> (u16, Value) {
    let resp = app.post_job_raw(body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("error bodies are JSON"))
}

#[tokio::test]
async fn bad_submissions_get_clear_errors_and_leave_no_job_or_task() {
    for kind in [QueueKind::Sqlite, QueueKind::Redis] {
        // API only: no worker takes tasks off the queue, so the count is exact.
        let app = spawn_app_with(kind, Roles { api: true, stages: vec![] }, &[]).await;
        let long = "word ".repeat(700);
        let cases: Vec<(String, u16, &str, &str)> = vec![
            (r#"{"script": "Hello"#.into(), 400, "malformed_json", "not valid JSON"),
            (r#"{"script": "Hi.", "colour": "red"}"#.into(), 422, "invalid_spec", "unknown field `colour`"),
            (r#"{"script": 5}"#.into(), 422, "invalid_spec", "invalid type"),
            (r#"{"script": "   "}"#.into(), 422, "invalid_spec", "no words"),
            (json!({ "script": long }).to_string(), 422, "invalid_spec", "at most 3000"),
            (r#"{"topic": "tides", "target_length_s": 4}"#.into(), 422, "invalid_spec", "allowed 5-180"),
            (r#"{"topic": "tides", "target_length_s": 181}"#.into(), 422, "invalid_spec", "allowed 5-180"),
            (r#"{}"#.into(), 422, "invalid_spec", "give a `script` or a `topic`"),
            (r#"{"script": "Hi.", "account": "creator-1"}"#.into(), 422, "invalid_spec", "no TikTok publisher"),
            // Text that would caption as something else than it is spoken.
            (json!({ "script": "Read me \u{202E}backwards." }).to_string(), 422, "invalid_spec", "bidi control U+202E"),
            (
                json!({ "topic": format!("tides{}", "\u{0301}".repeat(20)) }).to_string(),
                422,
                "invalid_spec",
                "combining marks",
            ),
        ];
        for (body, status, code, message) in cases {
            let (got, err) = refused(&app, &body).await;
            assert_eq!(got, status, "{kind:?} {body}: {err}");
            assert_eq!(error_code(&err), code, "{body}: {err}");
            let text = err["error"]["message"].as_str().unwrap();
            assert!(text.contains(message), "{body}: message `{text}` lacks `{message}`");
        }
        let (_, err) = refused(&app, r#"{"script": "   ", "voice": "-x"}"#).await;
        let codes: Vec<&str> =
            err["error"]["details"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["script_empty", "voice_invalid"], "every problem is named at once");

        assert_eq!(job_count(&app).await, 0, "{kind:?}: a refused job left a record");
        assert_eq!(queued_tasks(&app, kind).await, 0, "{kind:?}: a refused job left a queue entry");
        // The same checks see a job that was accepted.
        app.submit(json!({ "script": "Counted." })).await;
        assert_eq!(job_count(&app).await, 1);
        assert_eq!(queued_tasks(&app, kind).await, 1, "{kind:?}: the accepted job is queued");
    }
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_job() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let spec = json!({ "script": "Once only.", "idempotency_key": "batch-7-line-3" });
    let first = app.post_job_raw(&spec.to_string()).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = app.post_job_raw(&spec.to_string()).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["job_id"], first["job_id"]);
    assert_eq!(again["duplicate"], true);
    let other =
        app.post_job_raw(&json!({ "script": "Different.", "idempotency_key": "batch-7-line-3" }).to_string()).await;
    assert_eq!(other.status(), 409);
    assert_eq!(error_code(&other.json::<Value>().await.unwrap()), "idempotency_key_reused");
    let page: Value = app.get("/v1/jobs").await.json().await.unwrap();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_jobs_bad_queries_and_wrong_states_are_refused_with_codes() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let missing = app.get("/v1/jobs/01a20000-0000-7000-8000-000000000000").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(&missing.json::<Value>().await.unwrap()), "job_not_found");
    let bad_state = app.get("/v1/jobs?state=done").await;
    assert_eq!(bad_state.status(), 400);
    let body: Value = bad_state.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("in_inbox"), "{body}");

    let id = app.submit(json!({ "script": "Not failed yet." })).await;
    let retry = app.post(&format!("/v1/jobs/{id}/retry")).await;
    assert_eq!(retry.status(), 409);
    assert_eq!(error_code(&retry.json::<Value>().await.unwrap()), "not_failed");
    let cancel = app.post(&format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!(cancel.status(), 200);
    assert_eq!(cancel.json::<Value>().await.unwrap()["state"], "cancelled");
    let again = app.post(&format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_code(&again.json::<Value>().await.unwrap()), "already_finished");
}

#[tokio::test]
async fn health_readiness_and_the_openapi_document_answer() {
    let app = spawn_app_with(QueueKind::Redis, Roles { api: true, stages: vec![] }, &[]).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    let names: Vec<&str> = ready["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["records", "queue", "ffmpeg"]);
    assert!(ready["checks"][1]["detail"].as_str().unwrap().contains("redis"));
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/retry",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/approve",
        "/v1/jobs/{id}/reject",
        "/v1/jobs/{id}/revise",
        "/readyz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    let states = &doc["components"]["schemas"]["JobState"]["enum"];
    for state in ["in_review", "changes_requested"] {
        assert!(states.as_array().unwrap().iter().any(|s| s == state), "JobState lacks {state}: {states}");
    }
}

#[tokio::test]
async fn readiness_fails_when_ffmpeg_is_missing() {
    let app = spawn_app_with(
        QueueKind::Sqlite,
        Roles { api: true, stages: vec![] },
        &[("CLIPFORGE__MEDIA__FFMPEG", "/nonexistent/ffmpeg")],
    )
    .await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"][2]["ok"], false);
    assert!(body["checks"][2]["detail"].as_str().unwrap().contains("not found"), "{body}");
}
