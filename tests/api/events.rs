//! `GET /v1/events` as a client of the stream meets it: a job's states in
//! order and its progress, without asking `GET /v1/jobs`; resuming with
//! `Last-Event-ID`; the batch filter; 404 and 401 before the stream starts;
//! a record store outage ridden out (PostgreSQL); and a stream that ends
//! when the server stops.

use std::time::Duration;

use clipforge::app::Roles;
use clipforge::cli::sse::{SseEvent, SseParser};
use clipforge::store::records::{NewApiKey, Scope};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{QueueKind, TestApp, error_code, eventually, fresh_postgres, history, spawn_app_with};

/// Streams poll the records every 100 ms in these tests.
const FAST_POLL: (&str, &str) = ("CLIPFORGE__SERVER__EVENTS_POLL_MS", "100");

fn api_only() -> Roles {
    Roles { api: true, stages: vec![] }
}

/// One open stream, read as it arrives.
struct Stream {
    resp: reqwest::Response,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
    /// Everything received, comments included.
    raw: String,
}

impl Stream {
    /// Opens `GET /v1/events{query}` with `headers`; panics unless it is a 200 event stream.
    async fn open(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> Stream {
        let resp = request(app, query, headers).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Stream { resp, parser: SseParser::default(), ready: Default::default(), raw: String::new() }
    }

    /// The next event, or None when nothing came within `timeout` or the stream ended.
    async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk()).await.ok()?.ok()??;
            self.raw.push_str(&String::from_utf8_lossy(&chunk));
            self.ready.extend(self.parser.feed(&chunk));
        }
    }

    /// Reads until the text received holds `text` (a comment, say); panics after `timeout`.
    async fn read_until_text(&mut self, text: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.raw.contains(text) {
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk()).await;
            let chunk = chunk.unwrap_or_else(|_| panic!("no {text:?} within {timeout:?}: {:?}", self.raw));
            let chunk = chunk.unwrap().expect("the stream is still open");
            self.raw.push_str(&String::from_utf8_lossy(&chunk));
            self.ready.extend(self.parser.feed(&chunk));
        }
    }

    /// The next `state` event's data and id, skipping progress; panics after `timeout`.
    async fn next_state(&mut self, timeout: Duration, progress: &mut Vec<Value>) -> (Value, i64) {
        loop {
            let e = self.next(timeout).await.unwrap_or_else(|| panic!("no state event within {timeout:?}"));
            let data: Value = serde_json::from_str(&e.data).unwrap();
            match e.event.as_str() {
                "state" => return (data, e.id.expect("state events carry an id").parse().unwrap()),
                "progress" => progress.push(data),
                other => panic!("unexpected event `{other}`: {}", e.data),
            }
        }
    }
}

async fn request(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.http.get(format!("{}/v1/events{query}", app.address));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

const RENDER: Duration = Duration::from_secs(240);

#[tokio::test]
async fn a_client_follows_a_job_to_staged_with_progress_and_resumes_after_the_last_event_it_saw() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &[FAST_POLL]).await;
    let id = app.submit(json!({ "script": "Streams tell the story. Each state arrives in order." })).await;
    let mut stream = Stream::open(&app, &format!("?job_id={id}"), &[]).await;
    let mut progress = Vec::new();
    let mut seen = Vec::new();
    // The first connection reads up to `rendering`, then drops.
    loop {
        let (data, event_id) = stream.next_state(RENDER, &mut progress).await;
        assert_eq!(data["job_id"], id.as_str());
        for key in ["stage", "attempt", "note", "error", "at", "retry_at"] {
            assert!(data.get(key).is_some(), "{key} missing: {data}");
        }
        seen.push((data["state"].as_str().unwrap().to_string(), event_id));
        if data["state"] == "rendering" {
            break;
        }
    }
    assert_eq!(stream.parser.retry_ms(), Some(2000), "the retry hint came first");
    drop(stream);
    let (_, last) = *seen.last().unwrap();
    let mut resumed = Stream::open(&app, &format!("?job_id={id}"), &[("last-event-id", &last.to_string())]).await;
    loop {
        let (data, event_id) = resumed.next_state(RENDER, &mut progress).await;
        seen.push((data["state"].as_str().unwrap().to_string(), event_id));
        if data["state"] == "staged" {
            break;
        }
    }
    let states: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["queued", "preparing", "rendering", "staging", "staged"], "nothing repeated, nothing missed");
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "ids grow: {seen:?}");
    assert!(!progress.is_empty(), "at least one progress event");
    for p in &progress {
        assert_eq!(p["job_id"], id.as_str());
        assert!(p["percent"].as_u64().unwrap() <= 100 && p["stage"].is_string(), "{p}");
    }
    // What the stream told is the job's history as the API keeps it.
    assert_eq!(history(&app.job(&id).await), states);
    // The query parameter resumes too (EventSource cannot send headers on its first connection).
    let (_, staging) = seen[3];
    let mut from_param = Stream::open(&app, &format!("?job_id={id}&last_event_id={staging}"), &[]).await;
    let (data, event_id) = from_param.next_state(Duration::from_secs(10), &mut Vec::new()).await;
    assert_eq!((data["state"].as_str(), event_id), (Some("staged"), seen[4].1));
    app.stop().await;
}

async fn post_batch(app: &TestApp, body: &str) -> Value {
    let resp = app
        .http
        .post(format!("{}/v1/batches", app.address))
        .header("content-type", "application/x-ndjson")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_batch_stream_shows_only_that_batchs_jobs_and_the_unfiltered_one_shows_all_from_now() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[FAST_POLL]).await;
    let outsider = app.submit(json!({ "script": "Not in the batch." })).await;
    let batch = post_batch(&app, "{\"script\": \"Line one.\"}\n{\"script\": \"Line two.\"}\n").await;
    let batch_id = batch["batch_id"].as_str().unwrap();
    let members: Vec<&str> =
        batch["accepted"].as_array().unwrap().iter().map(|a| a["job_id"].as_str().unwrap()).collect();
    let mut of_batch = Stream::open(&app, &format!("?batch_id={batch_id}&last_event_id=0"), &[]).await;
    let mut all = Stream::open(&app, "", &[]).await;
    let quick = Duration::from_secs(10);
    let mut first_two = Vec::new();
    for _ in 0..2 {
        let (data, _) = of_batch.next_state(quick, &mut Vec::new()).await;
        assert_eq!(data["state"], "queued");
        first_two.push(data["job_id"].as_str().unwrap().to_string());
    }
    first_two.sort();
    let mut expected: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    expected.sort();
    assert_eq!(first_two, expected, "the batch's jobs from their first event, and no other");
    // Wait until the unfiltered stream has looked up "now", so the cancels below come after it.
    assert!(all.next(Duration::from_millis(500)).await.is_none(), "nothing happened yet");
    assert_eq!(app.post(&format!("/v1/jobs/{outsider}/cancel")).await.status(), 200);
    assert_eq!(app.post(&format!("/v1/jobs/{}/cancel", members[1])).await.status(), 200);
    let (data, _) = of_batch.next_state(quick, &mut Vec::new()).await;
    assert_eq!((data["job_id"].as_str(), data["state"].as_str()), (Some(members[1]), Some("cancelled")));
    assert!(of_batch.next(Duration::from_millis(500)).await.is_none(), "the outsider's cancel is not the batch's");
    let (a, a_id) = all.next_state(quick, &mut Vec::new()).await;
    let (b, b_id) = all.next_state(quick, &mut Vec::new()).await;
    assert_eq!((a["job_id"].as_str(), b["job_id"].as_str()), (Some(outsider.as_str()), Some(members[1])));
    assert_eq!((a["note"].as_str(), b["state"].as_str()), (Some("cancelled on request"), Some("cancelled")));
    assert!(a_id < b_id);
    app.stop().await;
}

#[tokio::test]
async fn unknown_jobs_and_batches_and_bad_cursors_are_refused_before_the_stream_starts() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[]).await;
    let cases = [
        ("?job_id=01a20000-0000-7000-8000-000000000000", 404, "job_not_found"),
        ("?job_id=nope", 404, "job_not_found"),
        ("?batch_id=01a20000-0000-7000-8000-000000000000", 404, "batch_not_found"),
        ("?batch_id=nope", 404, "batch_not_found"),
        ("?job_id=a&batch_id=b", 400, "invalid_query"),
        ("?last_event_id=soon", 400, "invalid_query"),
        ("?colour=red", 400, "invalid_query"),
    ];
    for (query, status, code) in cases {
        let resp = request(&app, query, &[]).await;
        assert_eq!(resp.status(), status, "{query}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{query}");
        assert_eq!(error_code(&resp.json().await.unwrap()), code, "{query}");
    }
    let resp = request(&app, "", &[("last-event-id", "x1")]).await;
    assert_eq!((resp.status().as_u16(), error_code(&resp.json().await.unwrap())), (400, "invalid_query"));
    app.stop().await;
}

#[tokio::test]
async fn with_keys_on_a_stream_needs_a_key_with_jobs_read() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[("CLIPFORGE__AUTH__REQUIRE_KEYS", "true")]).await;
    let resp = request(&app, "", &[]).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(error_code(&resp.json().await.unwrap()), "unauthorized");
    let records = app.records().await;
    let (accounts_key, stored) = NewApiKey::generate("accounts-only", vec![Scope::Accounts]);
    records.create_api_key(&stored).await.unwrap();
    let (reader_key, stored) = NewApiKey::generate("studio", vec![Scope::JobsRead]);
    records.create_api_key(&stored).await.unwrap();
    let bearer = |k: &secrecy::SecretString| format!("Bearer {}", k.expose_secret());
    let resp = request(&app, "", &[("authorization", &bearer(&accounts_key))]).await;
    assert_eq!((resp.status().as_u16(), error_code(&resp.json().await.unwrap())), (403, "forbidden"));
    let mut stream = Stream::open(&app, "", &[("authorization", &bearer(&reader_key))]).await;
    assert!(stream.next(Duration::from_millis(300)).await.is_none(), "open, and nothing happened");
    app.stop().await;
}

#[tokio::test]
async fn an_open_stream_ends_when_the_server_stops() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[FAST_POLL]).await;
    let mut stream = Stream::open(&app, "", &[]).await;
    assert!(stream.next(Duration::from_millis(300)).await.is_none(), "open, and nothing happened");
    let stopping = tokio::spawn(app.stop());
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while stream.resp.chunk().await.is_ok_and(|c| c.is_some()) {}
    })
    .await;
    assert!(ended.is_ok(), "the stream was still open 10 s after the server began to stop");
    tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("the server stopped").unwrap();
}

/// Runs `sql` on the test PostgreSQL server's `postgres` database.
async fn admin(sql: &str) {
    use sqlx::Connection as _;
    let server =
        std::env::var("CLIPFORGE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let mut conn = sqlx::PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut conn).await.unwrap();
}

#[tokio::test]
async fn a_record_store_outage_is_ridden_out_by_an_open_stream() {
    let Some(url) = fresh_postgres().await else { return };
    let db = url.rsplit('/').next().unwrap().to_string();
    let app =
        spawn_app_with(QueueKind::Sqlite, api_only(), &[FAST_POLL, ("CLIPFORGE__RECORDS__URL", url.as_str())]).await;
    let mut stream = Stream::open(&app, "", &[]).await;
    assert!(stream.next(Duration::from_millis(500)).await.is_none(), "open, and nothing happened");
    // The outage: no new connections to the database, and the open ones cut.
    admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false")).await;
    admin(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")).await;
    // The pool waits up to 10 s for a connection before it reports the outage.
    stream.read_until_text(": record store unavailable; trying again", Duration::from_secs(20)).await;
    admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).await;
    let id = eventually(Duration::from_secs(30), || async {
        let resp = app.post_job_raw(r#"{"script": "After the outage."}"#).await;
        match resp.status().as_u16() {
            202 => Ok(resp.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string()),
            status => Err(format!("submission answered {status}")),
        }
    })
    .await;
    let (data, _) = stream.next_state(Duration::from_secs(20), &mut Vec::new()).await;
    assert_eq!((data["job_id"].as_str(), data["state"].as_str()), (Some(id.as_str()), Some("queued")));
    app.stop().await;
}
