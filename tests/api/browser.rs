//! What a web page (or a slow stranger) cannot make the API do: create jobs
//! cross-site, read it through a rebound host name, or hold its sockets.

use std::time::{Duration, Instant};

use clipforge::app::Roles;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{QueueKind, TestApp, error_code, spawn_app_with};

fn api_only() -> Roles {
    Roles { api: true, stages: vec![] }
}

/// `host:port` of the app.
fn socket(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

/// Sends `head` (request line and headers, without the blank line) and `body`
/// over a fresh connection exactly as written, as a browser or a rebinding
/// page would; returns the status and the body as JSON.
async fn raw(app: &TestApp, head: &str, body: &str) -> (u16, Value, String) {
    let mut stream = TcpStream::connect(socket(app)).await.unwrap();
    let request = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    (status, json, head.to_ascii_lowercase())
}

async fn job_count(app: &TestApp) -> usize {
    let page: Value = app.get("/v1/jobs").await.json().await.unwrap();
    page["jobs"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_web_page_cannot_create_jobs_cross_site_nor_reach_the_api_through_another_host() {
    let app = spawn_app_with(
        QueueKind::Sqlite,
        api_only(),
        &[
            ("CLIPFORGE__SERVER__URL", "https://clips.example.com"),
            ("CLIPFORGE__SERVER__ALLOWED_HOSTS", "clips.internal"),
        ],
    )
    .await;
    let spec = json!({ "script": "Made by a web page." }).to_string();
    let ours = "Host: 127.0.0.1";
    let refused = [
        // The form a page posts cross-site without a preflight.
        (
            format!(
                "POST /v1/jobs HTTP/1.1\r\n{ours}\r\nContent-Type: text/plain\r\nOrigin: https://evil.example\r\nSec-Fetch-Site: cross-site"
            ),
            403,
            "cross_site_request",
        ),
        (
            format!(
                "POST /v1/jobs HTTP/1.1\r\n{ours}\r\nContent-Type: text/plain;charset=UTF-8\r\nSec-Fetch-Site: cross-site"
            ),
            403,
            "cross_site_request",
        ),
        (
            format!(
                "POST /v1/jobs HTTP/1.1\r\n{ours}\r\nContent-Type: application/json\r\nOrigin: https://evil.example"
            ),
            403,
            "cross_site_request",
        ),
        (
            format!("POST /v1/jobs HTTP/1.1\r\n{ours}\r\nContent-Type: application/json\r\nOrigin: null"),
            403,
            "cross_site_request",
        ),
        (
            format!("POST /v1/batches HTTP/1.1\r\n{ours}\r\nContent-Type: text/csv\r\nOrigin: https://evil.example"),
            403,
            "cross_site_request",
        ),
        // No browser headers, but not JSON: a non-preflighted type all the same.
        (format!("POST /v1/jobs HTTP/1.1\r\n{ours}\r\nContent-Type: text/plain"), 415, "unsupported_media_type"),
        (
            format!("POST /v1/jobs HTTP/1.1\r\n{ours}\r\nContent-Type: application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
        ),
        (format!("POST /v1/jobs HTTP/1.1\r\n{ours}"), 415, "unsupported_media_type"),
        // A page whose own name was rebound to 127.0.0.1.
        (
            "POST /v1/jobs HTTP/1.1\r\nHost: evil.example:8080\r\nContent-Type: application/json".to_string(),
            421,
            "host_not_allowed",
        ),
    ];
    for (head, status, code) in &refused {
        let (got, body, _) = raw(&app, head, &spec).await;
        assert_eq!((got, Some(error_code(&body))), (*status, Some(*code)), "{head}: {body}");
    }
    for head in [
        "GET /v1/jobs HTTP/1.1\r\nHost: evil.example:8080",
        "GET /v1/jobs HTTP/1.1\r\nHost: clips.example.com.evil.example",
    ] {
        let (got, body, _) = raw(&app, head, "").await;
        assert_eq!((got, Some(error_code(&body))), (421, Some("host_not_allowed")), "{head}: {body}");
        assert!(body.get("jobs").is_none(), "the job list must not leak: {body}");
    }
    assert_eq!(job_count(&app).await, 0, "a refused request created a job");

    // The same requests from the server's own origin and hosts are served.
    let accepted = [
        format!("POST /v1/jobs HTTP/1.1\r\n{ours}\r\nContent-Type: application/json"),
        "POST /v1/jobs HTTP/1.1\r\nHost: clips.example.com\r\nContent-Type: application/json; charset=utf-8\r\n\
         Origin: https://clips.example.com\r\nSec-Fetch-Site: same-origin"
            .to_string(),
        "POST /v1/jobs HTTP/1.1\r\nHost: clips.internal:8080\r\nContent-Type: application/json".to_string(),
        "POST /v1/jobs HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Type: application/json".to_string(),
    ];
    for (i, head) in accepted.iter().enumerate() {
        let body = json!({ "script": format!("Allowed number {i}.") }).to_string();
        let (got, answer, _) = raw(&app, head, &body).await;
        assert_eq!(got, 202, "{head}: {answer}");
    }
    assert_eq!(job_count(&app).await, accepted.len());
    // Body-less state changes (curl -X POST, the CLI) need no Content-Type.
    let id = app.submit(json!({ "script": "To cancel." })).await;
    assert_eq!(app.post(&format!("/v1/jobs/{id}/cancel")).await.status(), 200);
}

#[tokio::test]
async fn cors_stays_closed_and_preflights_get_no_allow_origin() {
    let app = spawn_app_with(QueueKind::Sqlite, api_only(), &[]).await;
    let preflight = "OPTIONS /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n\
                     Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type";
    let (status, body, head) = raw(&app, preflight, "").await;
    assert_eq!((status, Some(error_code(&body))), (405, Some("method_not_allowed")), "{body}");
    assert!(!head.contains("access-control-allow"), "a preflight was granted: {head}");
    let (status, _, head) =
        raw(&app, "GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example", "").await;
    assert_eq!(status, 200, "a read is answered, but a browser may not hand it to the page");
    assert!(!head.contains("access-control-allow"), "{head}");
}

/// Raises this process's open-file limit to at least `want`, as far as the hard limit allows.
fn raise_fd_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < want {
            limit.rlim_cur = limit.rlim_max.min(want);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

/// One slow client: connects, then sends nothing (`trickle` false) or the
/// start of a request line one byte every 250 ms, never finishing its head.
/// Returns how long after connecting the server hung up (EOF or reset).
async fn slow_client(address: String, trickle: bool, give_up: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(&address).await.ok()?;
    let start = Instant::now();
    let partial = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut sent = 0;
    let mut buf = [0u8; 256];
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(start.elapsed()),
                Ok(_) => panic!("the server answered a request that was never finished"),
            },
            _ = tick.tick(), if trickle => {
                if sent < partial.len() && stream.write_all(&partial[sent..=sent]).await.is_err() {
                    return Some(start.elapsed());
                }
                sent += 1;
            }
            () = tokio::time::sleep(give_up.saturating_sub(start.elapsed())) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_clients_are_dropped_within_the_header_timeout_while_healthz_stays_fast() {
    const CLIENTS: usize = 1_000;
    let header_timeout = Duration::from_secs(2);
    let limit = raise_fd_limit(4 * CLIENTS as u64 + 512);
    assert!(limit >= 2 * CLIENTS as u64 + 256, "open-file limit {limit} is too low for {CLIENTS} clients");
    let app = spawn_app_with(
        QueueKind::Sqlite,
        api_only(),
        &[("CLIPFORGE__SERVER__HEADER_TIMEOUT_SECS", "2"), ("CLIPFORGE__SERVER__IDLE_TIMEOUT_SECS", "60")],
    )
    .await;
    let give_up = Duration::from_secs(15);
    let opened = Instant::now();
    let clients: Vec<_> = (0..CLIENTS).map(|i| tokio::spawn(slow_client(socket(&app), i % 2 == 0, give_up))).collect();
    // Let them all connect, then ask for /healthz while every one is held open.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let asked = Instant::now();
        let health = reqwest::Client::new().get(format!("{}/healthz", app.address)).send().await.unwrap();
        assert_eq!(health.status(), 200);
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healthz_done = opened.elapsed();
    let mut dropped_after = Vec::with_capacity(CLIENTS);
    let mut held = 0;
    for client in clients {
        match client.await.unwrap() {
            Some(after) => dropped_after.push(after),
            None => held += 1,
        }
    }
    assert_eq!(held, 0, "{held} slow clients were still connected after {give_up:?}");
    dropped_after.sort();
    let (first, median, last) = (dropped_after[0], dropped_after[CLIENTS / 2], dropped_after[CLIENTS - 1]);
    println!(
        "{CLIENTS} slow clients (half silent, half trickling): /healthz slowest {slowest:?} (asked until \
         {healthz_done:?}); dropped after first {first:?}, median {median:?}, last {last:?} (header timeout \
         {header_timeout:?})"
    );
    assert!(healthz_done < header_timeout, "healthz was asked while the slow clients were all connected");
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?} with {CLIENTS} slow clients connected");
    assert!(
        first >= header_timeout - Duration::from_millis(700),
        "dropped at {first:?}, before the timeout: not by it"
    );
    assert!(last <= header_timeout + Duration::from_millis(1500), "a slow client was held {last:?}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout_and_a_stalled_body_gets_408() {
    let app = spawn_app_with(
        QueueKind::Sqlite,
        api_only(),
        &[
            ("CLIPFORGE__SERVER__HEADER_TIMEOUT_SECS", "1"),
            ("CLIPFORGE__SERVER__IDLE_TIMEOUT_SECS", "3"),
            ("CLIPFORGE__SERVER__BODY_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    // Kept alive after an answer: closed after the idle timeout (not the shorter header one).
    let mut stream = TcpStream::connect(socket(&app)).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let answered = Instant::now();
    let closed =
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.expect("closed by the server");
    let idle = answered.elapsed();
    println!("kept-alive connection closed after {idle:?} idle (idle timeout 3 s, header timeout 1 s)");
    assert!(matches!(closed, Ok(0) | Err(_)), "the server sent more: {closed:?}");
    assert!(idle >= Duration::from_millis(2500) && idle <= Duration::from_millis(4500), "closed after {idle:?}");

    // A body that stops arriving: 408 in the envelope, and no job.
    let mut stream = TcpStream::connect(socket(&app)).await.unwrap();
    let head =
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(br#"{"script": "#).await.unwrap();
    let sent = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.expect("answered");
    let waited = sent.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    println!("stalled body answered after {waited:?} (body timeout 1 s)");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(error_code(&body), "body_timeout");
    assert!(waited <= Duration::from_millis(2500), "{waited:?}");
    assert_eq!(job_count(&app).await, 0);
}
