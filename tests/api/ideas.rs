//! Ideas from a web page (`POST /v1/ideas`): a local page server stands in
//! for the team's site. What a person sees: exactly the ideas asked for,
//! jobs made from the chosen ones; clear codes for pages that may not or
//! cannot be read, with nothing stored and no request reaching a refused
//! address; and an LLM key sent with a request that reaches the LLM and
//! appears in no log line, record or answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::{Html, Redirect};
use axum::routing::get;
use clipforge::app::Roles;
use serde_json::{Value, json};

use crate::emulators::openrouter::{self, OpenRouter};
use crate::support::{QueueKind, TestApp, error_code, spawn_app_with};

/// The page the team's site serves: what a reader sees, and what no reader
/// sees (a script, a style, the navigation, a footer, a form).
const ARTICLE: &str = r#"<!doctype html><html><head><title>The Shore Club journal</title>
<style>.hero { color: teal }</style>
<script>window.trackingSecret = "tracking-pixel-4242";</script></head>
<body><nav><a href="/">Home</a><a href="/shop">Shop the membership drive</a></nav>
<script>document.title = "A tracking script that counts every visitor of this page";</script>
<h1>Life in a tide pool</h1>
<p>Twice a day the sea leaves small worlds behind. Crabs and snails wait for the water.</p>
<h2>Why anemones close</h2>
<p>They fold up to keep water in when the tide goes out.</p>
<h2>How to visit without harm</h2>
<p>Go at low tide, step on bare rock and leave every shell where it lies.</p>
<form><label>Newsletter</label><input name="email"><button>Subscribe to the newsletter</button></form>
<footer>Copyright the Shore Club volunteers</footer></body></html>"#;

/// What a page server saw.
#[derive(Default)]
struct Hits {
    all: AtomicUsize,
}

/// A page server on a free loopback port.
pub(crate) struct PageServer {
    pub(crate) port: u16,
    hits: Arc<Hits>,
}

impl PageServer {
    /// Serves the article and the pages that must be refused; `/hop`
    /// redirects to `hop_to`.
    pub(crate) async fn start(hop_to: Option<String>) -> Self {
        let hits = Arc::new(Hits::default());
        let counted = hits.clone();
        let hop_to = hop_to.unwrap_or_else(|| "/article".into());
        let router = Router::new()
            .route("/article", get(|| async { Html(ARTICLE) }))
            .route("/hop", get(move || async move { Redirect::temporary(&hop_to) }))
            .route("/loop", get(|| async { Redirect::temporary("/loop") }))
            // 2 MiB and one byte, sent in pieces with no Content-Length.
            .route(
                "/big",
                get(|| async {
                    let piece = format!("<p>{}</p>", "tide ".repeat(13_106));
                    let pieces = 32;
                    let mut chunks: Vec<Result<String, std::io::Error>> = (0..pieces).map(|_| Ok(piece.clone())).collect();
                    let sent = piece.len() * pieces;
                    chunks.push(Ok("x".repeat((2 * 1024 * 1024 + 1usize).saturating_sub(sent).max(1))));
                    ([("content-type", "text/html")], Body::from_stream(futures::stream::iter(chunks)))
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Html(ARTICLE)
                }),
            )
            .route("/app", get(|| async { Html("<html><head><title>App</title></head><body><div id=root></div><script>boot()</script></body></html>") }))
            .route("/logo.png", get(|| async { ([("content-type", "image/png")], b"\x89PNG\r\n\x1a\n".to_vec()) }))
            .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                let counted = counted.clone();
                async move {
                    counted.all.fetch_add(1, Ordering::SeqCst);
                    next.run(req).await
                }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { port, hits }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.all.load(Ordering::SeqCst)
    }
}

/// An API-only app (no stage workers: jobs stay queued) that may read `allowed`.
async fn app_allowing(allowed: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("CLIPFORGE__IDEAS__ALLOWED_PRIVATE_HOSTS", allowed)];
    env.extend_from_slice(extra);
    spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &env).await
}

async fn ask(app: &TestApp, body: Value) -> (u16, Value) {
    // Bounded: the slowest refusal (page_too_slow) takes ideas.fetch_timeout_secs.
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        app.http.post(format!("{}/v1/ideas", app.address)).json(&body).send(),
    )
    .await
    .expect("an answer within 30 s")
    .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_page_yields_exactly_the_ideas_asked_for_and_two_of_them_become_jobs() {
    let site = PageServer::start(None).await;
    let app = app_allowing(&site.entry(), &[]).await;
    for count in [1, 4] {
        let (status, answer) = ask(&app, json!({ "url": site.url("/article"), "count": count })).await;
        assert_eq!(status, 200, "{answer:#}");
        let ideas = answer["ideas"].as_array().unwrap();
        assert_eq!(ideas.len(), count, "{answer:#}");
        for idea in ideas {
            assert!(!idea["topic"].as_str().unwrap().trim().is_empty(), "{idea}");
            assert!(!idea["hook"].as_str().unwrap().trim().is_empty(), "{idea}");
            assert!(!idea["footage_queries"].as_array().unwrap().is_empty(), "{idea}");
            let secs = idea["target_length_s"].as_u64().unwrap();
            assert!((5..=180).contains(&secs), "{idea}");
            assert_eq!(idea["job"]["topic"], idea["topic"]);
        }
    }
    let (_, answer) = ask(&app, json!({ "url": site.url("/article"), "count": 4 })).await;
    assert_eq!(answer["writer"], "template");
    assert_eq!(answer["title"], "The Shore Club journal");
    assert_eq!(answer["origin"], format!("http://127.0.0.1:{}", site.port));
    let topics: Vec<&str> = answer["ideas"].as_array().unwrap().iter().map(|i| i["topic"].as_str().unwrap()).collect();
    // The page's headings, in order, then its first sentence; nothing a reader does not see.
    assert_eq!(
        topics,
        [
            "Life in a tide pool",
            "Why anemones close",
            "How to visit without harm",
            "Twice a day the sea leaves small worlds behind"
        ]
    );
    assert_eq!(answer["ideas"][1]["hook"], "They fold up to keep water in when the tide goes out.");
    let text = answer.to_string();
    for unseen in ["tracking", "membership", "newsletter", "Copyright", "teal"] {
        assert!(!text.to_lowercase().contains(&unseen.to_lowercase()), "{unseen:?} came from markup no reader sees");
    }

    // Two chosen ideas become two jobs, with their topics.
    let chosen = [&answer["ideas"][0], &answer["ideas"][2]];
    let mut made = Vec::new();
    for idea in chosen {
        made.push(app.submit(idea["job"].clone()).await);
    }
    let listed: Value = app.get("/v1/jobs").await.json().await.unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2, "{listed:#}");
    for (id, idea) in made.iter().zip(chosen) {
        let job = app.job(id).await;
        assert_eq!(job["spec"]["topic"], idea["topic"], "{job:#}");
        assert_eq!(job["spec"]["target_length_s"], idea["target_length_s"]);
        assert_eq!(job["state"], "queued");
    }
}

#[tokio::test]
async fn pages_that_may_not_or_cannot_be_read_are_refused_with_clear_codes_and_nothing_is_stored() {
    // Another loopback server, not on the list, serving the same article.
    let inner = PageServer::start(None).await;
    let site = PageServer::start(Some(inner.url("/article"))).await;
    let app = app_allowing(&site.entry(), &[("CLIPFORGE__IDEAS__FETCH_TIMEOUT_SECS", "1")]).await;

    let refused = |status: u16, answer: &Value, code: &str, names: &str| {
        assert_eq!(error_code(answer), code, "{answer:#}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{code}: the message names {names:?}: {message}");
        status
    };
    // A loopback address not on the list, and private ones: refused before any request.
    let (status, answer) = ask(&app, json!({ "url": inner.url("/article"), "count": 2 })).await;
    assert_eq!(refused(status, &answer, "page_address_refused", "ideas.allowed_private_hosts"), 422);
    for url in ["http://10.1.2.3/", "http://[::1]:80/", "http://169.254.169.254/latest/meta-data/"] {
        let (status, answer) = ask(&app, json!({ "url": url })).await;
        assert_eq!(refused(status, &answer, "page_address_refused", "ideas.allowed_private_hosts"), 422, "{url}");
    }
    // A redirect from the allowed server into another loopback port.
    let (status, answer) = ask(&app, json!({ "url": site.url("/hop"), "count": 2 })).await;
    assert_eq!(refused(status, &answer, "page_redirect_refused", &inner.port.to_string()), 422);
    assert_eq!(inner.hits(), 0, "the refused server was never asked");
    // A redirect that never ends: given up after ideas.max_redirects (3).
    let before = site.hits();
    let (status, answer) = ask(&app, json!({ "url": site.url("/loop") })).await;
    assert_eq!(refused(status, &answer, "page_redirect_refused", "ideas.max_redirects"), 422);
    assert_eq!(site.hits() - before, 4, "the page and three redirects");
    // Over the default 2048 KiB while it streams in.
    let (status, answer) = ask(&app, json!({ "url": site.url("/big") })).await;
    assert_eq!(refused(status, &answer, "page_too_large", "ideas.max_page_kb"), 422);
    // Slower than the 1 s the settings give: given up at 1 s, not at the server's 5.
    let started = Instant::now();
    let (status, answer) = ask(&app, json!({ "url": site.url("/slow") })).await;
    let waited = started.elapsed();
    eprintln!("page_too_slow answered after {waited:?} (timeout 1 s, the server sleeps 5 s)");
    assert_eq!(refused(status, &answer, "page_too_slow", "ideas.fetch_timeout_secs"), 504);
    assert!(waited < Duration::from_secs(4), "given up after {waited:?}");
    // A page drawn by scripts, and a picture.
    let (status, answer) = ask(&app, json!({ "url": site.url("/app") })).await;
    assert_eq!(refused(status, &answer, "page_without_text", "readable text"), 422);
    let (status, answer) = ask(&app, json!({ "url": site.url("/logo.png") })).await;
    assert_eq!(refused(status, &answer, "page_without_text", "image/png"), 422);
    // Nobody home.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app_closed = app_allowing(&format!("127.0.0.1:{closed}"), &[]).await;
    let (status, answer) = ask(&app_closed, json!({ "url": format!("http://127.0.0.1:{closed}/") })).await;
    assert_eq!(refused(status, &answer, "page_unreachable", "could not be read"), 502);
    // Fields, each named.
    let (status, answer) = ask(&app, json!({ "url": "ftp://example.com/x", "count": 11, "llm_key": "" })).await;
    assert_eq!(status, 422);
    assert_eq!(error_code(&answer), "invalid_ideas_request");
    let details = crate::support::field_codes(&answer);
    assert_eq!(
        details,
        [("url", "page_url_invalid"), ("count", "idea_count_out_of_range"), ("llm_key", "llm_key_invalid")]
    );
    let (status, answer) = ask(&app, json!({ "url": site.url("/article"), "count": "three" })).await;
    assert_eq!((status, error_code(&answer)), (422, "invalid_ideas_request"));

    // Nothing stored: no job, no object, no scratch file.
    let listed: Value = app.get("/v1/jobs").await.json().await.unwrap();
    assert_eq!(listed["jobs"], json!([]));
    let files: Vec<_> = crate::support::files_under(app.data.path())
        .into_iter()
        .filter(|f| !f.file_name().unwrap().to_string_lossy().starts_with("clipforge.db"))
        .filter(|f| !f.file_name().unwrap().to_string_lossy().starts_with("queue.db"))
        .collect();
    assert!(files.is_empty(), "files left: {files:?}");
}

/// A key no other test or setting uses, easy to search for.
const USER_KEY: &str = "sk-or-v1-request-scoped-5ca1ab1e-d00d-4f00";
const WRONG_KEY: &str = "sk-or-v1-not-a-live-key-0b5e55ed-c0ffee";

#[tokio::test]
async fn a_request_scoped_llm_key_reaches_the_llm_for_that_request_only_and_nowhere_else() {
    let llm = OpenRouter::start().await;
    llm.accept_key(USER_KEY);
    let site = PageServer::start(None).await;
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = data.path().join("serve.log");
    let mut env = crate::support::test_env(data.path(), QueueKind::Sqlite, "ideas-key");
    let records_url = crate::support::test_records_url().await;
    if let Some(url) = &records_url {
        env.push(("CLIPFORGE__RECORDS__URL".into(), url.clone()));
    }
    for (k, v) in [
        ("CLIPFORGE__SERVER__LISTEN", format!("127.0.0.1:{port}")),
        ("CLIPFORGE__IDEAS__ALLOWED_PRIVATE_HOSTS", site.entry()),
        ("CLIPFORGE__PROVIDERS__SCRIPT__TYPE", "openrouter".into()),
        ("CLIPFORGE__PROVIDERS__SCRIPT__BASE_URL", llm.url.clone()),
        ("CLIPFORGE__PROVIDERS__SCRIPT__API_KEY", openrouter::KEY.into()),
        ("CLIPFORGE__PROVIDERS__HTTP__ATTEMPTS", "2".into()),
        ("CLIPFORGE__PROVIDERS__HTTP__INITIAL_BACKOFF_MS", "50".into()),
    ] {
        env.push((k.into(), v));
    }
    let (mut serve, base) = crate::support::serve_process(&env, &log).await;
    let http = reqwest::Client::new();
    let ideas = |body: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let resp = http.post(format!("{base}/v1/ideas")).json(&body).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let mut answers = String::new();

    // With the user's key: the LLM sees that key, not the configured one.
    let (status, body) = ideas(json!({ "url": site.url("/article"), "count": 3, "llm_key": USER_KEY })).await;
    answers.push_str(&body);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["writer"], "openrouter");
    assert_eq!(answer["ideas"].as_array().unwrap().len(), 3);
    assert_eq!(answer["ideas"][0]["topic"], "Life in a tide pool, angle 1", "the page's text reached the LLM");
    assert_eq!(llm.keys_seen(), [USER_KEY], "one call, with the request's key");
    let prompt = llm.state.ideas_prompts.lock().unwrap()[0].clone();
    assert!(prompt.contains("Why anemones close") && !prompt.contains("tracking-pixel"), "{prompt}");

    // Without a key: the configured one; the user's was for that request only.
    let (status, body) = ideas(json!({ "url": site.url("/article"), "count": 2 })).await;
    answers.push_str(&body);
    assert_eq!(status, 200, "{body}");
    assert_eq!(llm.keys_seen().last().map(String::as_str), Some(openrouter::KEY));

    // A key the LLM refuses: said plainly, not kept either.
    let (status, body) = ideas(json!({ "url": site.url("/article"), "count": 2, "llm_key": WRONG_KEY })).await;
    answers.push_str(&body);
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&serde_json::from_str(&body).unwrap()), "llm_key_refused");
    assert_eq!(llm.keys_seen().last().map(String::as_str), Some(WRONG_KEY));
    // A malformed body that carries the key: the error quotes none of it.
    let (status, body) = ideas(json!({ "url": site.url("/article"), "count": USER_KEY, "llm_key": USER_KEY })).await;
    answers.push_str(&body);
    assert_eq!(status, 422, "{body}");

    serve.kill().unwrap();
    serve.wait().unwrap();
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("ideas suggested"), "logs were captured");
    let stored = crate::support::stored_bytes(data.path(), &log, records_url.as_deref());
    assert!(!stored.is_empty(), "the record store was read");
    let stored = String::from_utf8_lossy(&stored);
    for key in [USER_KEY, WRONG_KEY] {
        assert!(!logs.contains(key), "a request's LLM key is in the logs");
        assert!(!answers.contains(key), "a request's LLM key is in an answer");
        assert!(!stored.contains(key), "a request's LLM key is in the record store or data folder");
    }
}
