//! The MCP server as an agent meets it, through the SDK's own client: over
//! streamable HTTP at `/mcp` on the real app, and over the stdio of a
//! `clipforge mcp` child process. The same keys and scopes as the API, its
//! error codes as tool errors, and no key in an answer or a log line.

use std::time::Duration;

use clipforge::app::Roles;
use clipforge::store::records::{NewApiKey, Scope};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{QueueKind, TestApp, assert_catalogued, eventually, spawn_app_with};

type Agent = RunningService<RoleClient, ()>;

const TOOLS: [&str; 7] =
    ["approve_job", "batch_status", "job_status", "list_jobs", "submit_batch", "submit_job", "video_link"];

/// Makes a key with `scopes` in the app's record store; returns the key.
async fn new_key(app: &TestApp, name: &str, scopes: Vec<Scope>) -> String {
    let (key, new) = NewApiKey::generate(name, scopes);
    app.records().await.create_api_key(&new).await.unwrap();
    key.expose_secret().to_string()
}

/// The SDK's client on the app's `/mcp`, sending `key` as a bearer token.
async fn over_http(base: &str, key: Option<&str>) -> Result<Agent, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
    if let Some(key) = key {
        config = config.auth_header(key);
    }
    ().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())
}

/// Calls `tool` with `args`; the tool's structured answer and whether it is a tool error.
async fn call(agent: &Agent, tool: &'static str, args: Value) -> (bool, Value) {
    let params = CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().expect("an object"));
    let result: CallToolResult = agent.call_tool(params).await.unwrap_or_else(|e| panic!("{tool} failed: {e}"));
    let answer = result.structured_content.clone().unwrap_or_else(|| panic!("{tool}: no structured answer"));
    assert_catalogued(&answer);
    (result.is_error == Some(true), answer)
}

/// The API's own answer to `POST /v1/jobs` with `body`, sent with `key`.
async fn api_post_job(base: &str, key: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new().post(format!("{base}/v1/jobs")).bearer_auth(key).json(body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// What every test checks of an agent's tool list.
async fn lists_the_tools(agent: &Agent) {
    let tools = agent.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(names, TOOLS);
    let submit = tools.iter().find(|t| t.name == "submit_job").unwrap();
    assert_eq!(submit.input_schema["required"], json!(["job"]), "{:?}", submit.input_schema);
    assert!(submit.description.as_deref().unwrap().contains("`jobs:write`"));
    // The job's schema is the API's own JobRequest, nested schemas written out.
    let job = &submit.input_schema["properties"]["job"];
    assert!(job["properties"]["script"].is_object(), "{job}");
    assert!(job["properties"]["music"].to_string().contains("track"), "{job}");
    assert!(!job.to_string().contains("#/components/"), "no reference into a document the agent lacks: {job}");
}

#[tokio::test]
async fn an_agent_over_streamable_http_submits_and_follows_a_job_with_its_keys_scopes() {
    let app = spawn_app_with(
        QueueKind::Sqlite,
        Roles { api: true, stages: vec![] },
        &[("CLIPFORGE__AUTH__REQUIRE_KEYS", "true")],
    )
    .await;
    let writer = new_key(&app, "agent", vec![Scope::JobsRead, Scope::JobsWrite]).await;
    let reader = new_key(&app, "watcher", vec![Scope::JobsRead]).await;
    let mut answers = String::new();

    // No key, or one the server does not know: the API's 401 and Bearer challenge; no session.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let resp = app
        .http
        .post(format!("{}/mcp", app.address))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(crate::support::error_code(&resp.json().await.unwrap()), "unauthorized");
    assert!(over_http(&app.address, None).await.is_err(), "a client without a key is refused");
    let unknown = format!("cfk_000000000000_{}", "A".repeat(43));
    assert!(over_http(&app.address, Some(&unknown)).await.is_err(), "an unknown key is refused");

    let agent = over_http(&app.address, Some(&writer)).await.unwrap();
    lists_the_tools(&agent).await;

    // Submit, then read the status: the API's own answers, as structured content.
    let (failed, accepted) = call(&agent, "submit_job", json!({"job": {"script": "An agent asked for this."}})).await;
    assert!(!failed, "{accepted}");
    assert_eq!(accepted["state"], "queued");
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    let (failed, status) = call(&agent, "job_status", json!({"job_id": job_id})).await;
    assert!(!failed, "{status}");
    assert_eq!((status["id"].as_str(), status["state"].as_str()), (Some(job_id.as_str()), Some("queued")));
    let stored: Value = app
        .http
        .get(format!("{}/v1/jobs/{job_id}", app.address))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["spec"]["script"], "An agent asked for this.", "the job the API holds: {stored}");
    let (_, page) = call(&agent, "list_jobs", json!({"limit": 5})).await;
    assert_eq!(page["jobs"][0]["id"], job_id.as_str(), "{page}");
    answers.push_str(&format!("{accepted}{status}{page}"));

    // A bad spec is a tool error with the API's 422 code, message and details.
    let bad = json!({"script": "", "voice": "en-us"});
    let (failed, refusal) = call(&agent, "submit_job", json!({"job": bad})).await;
    assert!(failed, "{refusal}");
    let (status, api) = api_post_job(&app.address, &writer, &bad).await;
    assert_eq!(status, 422);
    assert_eq!(refusal, json!({"status": 422, "error": api["error"]}), "the API's own refusal");
    // An id that cannot be one is answered as the API answers an unknown id.
    let (failed, refusal) = call(&agent, "job_status", json!({"job_id": "../keys"})).await;
    assert!(failed);
    assert_eq!((refusal["status"].as_u64(), refusal["error"]["code"].as_str()), (Some(404), Some("job_not_found")));
    answers.push_str(&refusal.to_string());

    // A read-only key reads, and writing is refused the way the API refuses it.
    let watcher = over_http(&app.address, Some(&reader)).await.unwrap();
    let (failed, _) = call(&watcher, "job_status", json!({"job_id": job_id})).await;
    assert!(!failed);
    let requests = async || {
        let records = app.records().await;
        records.api_key_by_hash(&clipforge::crypto::sha256_hex(&reader)).await.unwrap().unwrap().requests
    };
    let (status, api) = api_post_job(&app.address, &reader, &json!({"script": "Not with this key."})).await;
    let before = requests().await;
    let (failed, refusal) = call(&watcher, "submit_job", json!({"job": {"script": "Not with this key."}})).await;
    assert!(failed);
    assert_eq!((status, refusal["status"].as_u64()), (403, Some(403)));
    assert_eq!(refusal["error"], api["error"], "the API's own 403");
    assert_eq!(refusal["error"]["code"], "forbidden");
    assert!(refusal["error"]["message"].as_str().unwrap().contains("`jobs:write` scope that POST /v1/jobs needs"));
    let (failed, refusal) = call(&watcher, "approve_job", json!({"job_id": job_id})).await;
    assert!(failed);
    assert!(refusal["error"]["message"].as_str().unwrap().contains("`jobs:review`"), "{refusal}");
    answers.push_str(&refusal.to_string());

    // Each tool call counted once against the key's limit (its MCP request), not again for its API call.
    assert_eq!(requests().await - before, 2, "two tool calls, two requests counted");

    for key in [&writer, &reader] {
        assert!(!answers.contains(key.as_str()), "an answer holds a key");
    }
    agent.cancel().await.unwrap();
    watcher.cancel().await.unwrap();
}

/// `clipforge mcp` as an agent starts it: the key and the server from the
/// environment, stdout for MCP, stderr (here at debug level) into `log`.
fn stdio_agent(
    server: &str,
    key: &str,
    log: &std::path::Path,
) -> impl Future<Output = Result<Agent, rmcp::service::ClientInitializeError>> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_clipforge"));
    command.arg("mcp").env("CLIPFORGE_SERVER", server).env("CLIPFORGE_API_KEY", key).env("RUST_LOG", "debug");
    let stderr = std::fs::File::create(log).unwrap();
    let (transport, _) = TokioChildProcess::builder(command).stderr(stderr).spawn().expect("clipforge mcp starts");
    ().serve(transport)
}

#[tokio::test]
async fn an_agent_over_stdio_approves_a_job_and_fetches_its_video_and_no_key_reaches_a_log() {
    let data = tempfile::tempdir().unwrap();
    let port = crate::faults::free_port();
    let mut env = crate::support::test_env(data.path(), QueueKind::Sqlite, &format!("mcp-{port}"));
    if let Some(url) = crate::support::test_records_url().await {
        env.push(("CLIPFORGE__RECORDS__URL".into(), url));
    }
    env.push(("CLIPFORGE__SERVER__LISTEN".into(), format!("127.0.0.1:{port}")));
    env.push(("CLIPFORGE__AUTH__REQUIRE_KEYS".into(), "true".into()));
    let serve_log = data.path().join("serve.log");
    let (mut serve, base) = crate::support::serve_process(&env, &serve_log).await;
    let keys = |scopes: &'static str| {
        let env = env.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_clipforge"))
                .args(["keys", "create", "--name", "agent", "--scopes", scopes])
                .envs(env)
                .env("RUST_LOG", "warn")
                .output()
                .unwrap();
            assert!(out.status.success(), "keys create: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
    };
    let (editor, reader) = (keys("jobs:read,jobs:write,jobs:review").await.unwrap(), keys("jobs:read").await.unwrap());
    let (editor_log, reader_log, lost_log) =
        (data.path().join("mcp-editor.log"), data.path().join("mcp-reader.log"), data.path().join("mcp-lost.log"));
    let mut answers = String::new();

    let agent = stdio_agent(&base, &editor, &editor_log).await.expect("the stdio server starts");
    lists_the_tools(&agent).await;

    // A job that stops for a person at its video: submitted, followed, linked, approved.
    let spec = json!({"script": "Approved by an agent.", "review": "video"});
    let (failed, accepted) = call(&agent, "submit_job", json!({"job": spec})).await;
    assert!(!failed, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    let status = eventually(Duration::from_secs(240), || async {
        let (_, status) = call(&agent, "job_status", json!({"job_id": job_id})).await;
        match status["state"].as_str() {
            Some("in_review") => Ok(status),
            Some("failed" | "cancelled") => panic!("the job ended: {status}"),
            _ => Err(format!("not in review yet: {}", status["state"])),
        }
    })
    .await;
    answers.push_str(&status.to_string());
    let (failed, link) = call(&agent, "video_link", json!({"job_id": job_id})).await;
    assert!(!failed, "{link}");
    assert_eq!(link["url"], format!("{base}/v1/jobs/{job_id}/video"), "the API's own route, on a local store");
    assert_eq!(link["signed"], false);
    let video = reqwest::Client::new().get(link["url"].as_str().unwrap()).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(video.status(), 200);
    assert_eq!(video.headers()["content-type"], "video/mp4");
    assert!(video.bytes().await.unwrap().len() > 10_000, "an MP4");
    let (failed, approved) = call(&agent, "approve_job", json!({"job_id": job_id, "note": "Fine by the agent."})).await;
    assert!(!failed, "{approved}");
    let decision = &approved["review"]["decisions"][0];
    assert_eq!(decision["verdict"], "approved", "{approved}");
    assert_eq!(decision["by"], &editor[4..16], "the approval is the key's, as through the API");
    let (failed, again) = call(&agent, "approve_job", json!({"job_id": job_id})).await;
    assert!(failed);
    assert_eq!((again["status"].as_u64(), again["error"]["code"].as_str()), (Some(409), Some("not_in_review")));
    let bad = json!({"script": "Both given.", "topic": "Both given."});
    let (failed, refusal) = call(&agent, "submit_job", json!({"job": bad})).await;
    assert!(failed);
    let (status, api) = api_post_job(&base, &editor, &bad).await;
    assert_eq!(refusal, json!({"status": status, "error": api["error"]}), "the API's own refusal");
    answers.push_str(&format!("{link}{approved}{again}{refusal}"));

    // The reader's key is refused writing by the server, as the API refuses it.
    let watcher = stdio_agent(&base, &reader, &reader_log).await.unwrap();
    let (failed, refusal) = call(&watcher, "submit_batch", json!({"jobs": [{"script": "No."}]})).await;
    assert!(failed);
    assert_eq!((refusal["status"].as_u64(), refusal["error"]["code"].as_str()), (Some(403), Some("forbidden")));
    assert!(refusal["error"]["message"].as_str().unwrap().contains("POST /v1/batches"), "{refusal}");
    answers.push_str(&refusal.to_string());

    // A server that cannot be reached: a tool error saying so, not a crash.
    let lost = stdio_agent("http://127.0.0.1:9", &editor, &lost_log).await.unwrap();
    let (failed, refusal) = call(&lost, "job_status", json!({"job_id": job_id})).await;
    assert!(failed);
    assert_eq!(refusal["error"]["code"], "api_unreachable");
    assert!(refusal["error"]["message"].as_str().unwrap().contains("127.0.0.1:9"), "{refusal}");

    for running in [agent, watcher, lost] {
        running.cancel().await.unwrap();
    }
    serve.kill().unwrap();
    serve.wait().unwrap();
    for (name, log) in [("serve", &serve_log), ("editor", &editor_log), ("reader", &reader_log), ("lost", &lost_log)] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(!text.is_empty(), "the {name} log was written");
        for key in [&editor, &reader] {
            let secret = &key[17..];
            assert!(secret.len() > 20, "cfk_<id>_<secret>: {}", &key[..16]);
            assert!(!text.contains(secret), "the {name} log holds a key");
            assert!(!answers.contains(secret), "an answer holds a key");
        }
    }
}
