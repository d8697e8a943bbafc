//! API keys as a caller and an operator meet them: keys made and revoked with
//! the CLI, 401 without a (valid) key, 403 for the wrong scope, 429 with
//! Retry-After over the per-key limit (shared by API processes on one Redis),
//! usage counted, no key in clear in the record store, and no open API on a
//! public address.

use std::process::{Command, Output};

use clipforge::app::Roles;
use clipforge::crypto::sha256_hex;
use clipforge::store::records::{NewApiKey, Scope};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{QueueKind, TestApp, spawn_app_with};

/// An API-only app that asks for keys and lets each key make 5 requests a minute.
async fn app_with_keys(queue: QueueKind) -> TestApp {
    let settings = [("CLIPFORGE__AUTH__REQUIRE_KEYS", "true"), ("CLIPFORGE__AUTH__REQUESTS_PER_MINUTE", "5")];
    spawn_app_with(queue, Roles { api: true, stages: vec![] }, &settings).await
}

/// `clipforge keys …` with the app's settings, as an operator on its machine runs it.
async fn keys_cli(app: &TestApp, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clipforge"));
    command.arg("keys").args(args).envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

/// Makes a key with the CLI; returns the key it printed.
pub(crate) async fn create_key(app: &TestApp, name: &str, scopes: &str) -> String {
    let out = keys_cli(app, &["create", "--name", name, "--scopes", scopes]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "keys create: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "stdout is the key alone: {stdout}");
    let key = stdout.trim().to_string();
    assert!(key.starts_with("cfk_"), "{key}");
    assert!(stderr.contains("shown only this once") && !stderr.contains(&key), "{stderr}");
    key
}

/// The `<id>` of `cfk_<id>_<secret>`.
pub(crate) fn key_id(key: &str) -> &str {
    &key[4..16]
}

async fn get_with(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    app.http.get(format!("{}{path}", app.address)).bearer_auth(key).send().await.unwrap()
}

async fn post_job_with(app: &TestApp, key: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/jobs", app.address))
        .bearer_auth(key)
        .json(&json!({ "script": "Only with a key." }))
        .send()
        .await
        .unwrap()
}

/// The status and the error's code and message.
pub(crate) async fn refusal(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error bodies are JSON");
    let text = |f: &str| body["error"][f].as_str().unwrap_or_default().to_string();
    (status, text("code"), text("message"))
}

#[tokio::test]
async fn keys_with_scopes_and_a_rate_limit_guard_the_api_and_only_their_hashes_are_stored() {
    let app = app_with_keys(QueueKind::Sqlite).await;

    // Health, the API description and TikTok's browser callback need no key.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/openapi.json").await.status(), 200);
    let (status, code, _) = refusal(app.get("/v1/accounts/tiktok/callback").await).await;
    assert_eq!((status, code.as_str()), (404, "publish_not_configured"), "reached the handler");

    // Without a key: 401, a JSON error and the Bearer challenge, on every guarded route.
    let resp = app.post_job_raw(r#"{"script": "No key."}"#).await;
    assert_eq!(resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
    let (status, code, message) = refusal(resp).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(message.contains("Authorization: Bearer"), "{message}");
    for path in ["/v1/jobs", "/v1/accounts", "/metrics"] {
        assert_eq!(app.get(path).await.status(), 401, "{path}");
    }
    let basic = app.http.get(format!("{}/v1/jobs", app.address)).header("authorization", "Basic dXNlcjpwdw==");
    assert_eq!(refusal(basic.send().await.unwrap()).await.0, 401);
    let made_up = format!("cfk_000000000000_{}", "A".repeat(43));
    let (status, _, message) = refusal(get_with(&app, "/v1/jobs", &made_up).await).await;
    assert_eq!(status, 401);
    assert!(message.contains("not known"), "{message}");

    // Bad scopes are refused by the CLI, naming what is allowed.
    let out = keys_cli(&app, &["create", "--name", "x", "--scopes", "jobs:read,jobs:delete"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("jobs:read, jobs:write, jobs:review, accounts, admin"));

    // A read-only key reads, and is told which scope writing needs.
    let reader = create_key(&app, "dashboard", "jobs:read").await;
    assert_eq!(get_with(&app, "/v1/jobs", &reader).await.status(), 200);
    let (status, code, message) = refusal(post_job_with(&app, &reader).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(message.contains("`jobs:write`") && message.contains("POST /v1/jobs"), "{message}");
    let (status, _, message) = refusal(get_with(&app, "/metrics", &reader).await).await;
    assert_eq!(status, 403);
    assert!(message.contains("`admin`"), "{message}");
    let jobs: Value = get_with(&app, "/v1/jobs", &reader).await.json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "the refused submission stored nothing");

    // Export and purge (data rights) need `admin`; a key with every other scope is refused.
    let operator = create_key(&app, "operator", "jobs:read,jobs:write,accounts").await;
    let (status, _, message) = refusal(get_with(&app, "/v1/export", &operator).await).await;
    assert_eq!(status, 403);
    assert!(message.contains("`admin`"), "{message}");
    let purge = app.http.delete(format!("{}/v1/jobs/{}", app.address, uuid::Uuid::now_v7())).bearer_auth(&operator);
    let (status, _, message) = refusal(purge.send().await.unwrap()).await;
    assert_eq!(status, 403);
    assert!(message.contains("`admin`") && message.contains("DELETE /v1/jobs/{id}"), "{message}");

    // A writing key submits; its sixth request within the minute is refused with Retry-After.
    let writer = create_key(&app, "ci", "jobs:read,jobs:write").await;
    let accepted = post_job_with(&app, &writer).await;
    assert_eq!(accepted.status(), 202);
    let job_id = accepted.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string();
    for _ in 0..4 {
        assert_eq!(get_with(&app, &format!("/v1/jobs/{job_id}"), &writer).await.status(), 200);
    }
    let over = get_with(&app, "/v1/jobs", &writer).await;
    let retry_after: u64 = over.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    let (status, code, message) = refusal(over).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    assert!(message.contains(key_id(&writer)) && !message.contains(&writer), "{message}");
    assert_eq!(get_with(&app, "/v1/jobs", &reader).await.status(), 200, "each key has its own limit");

    // Usage shows in `keys list`, which never shows a key or a hash.
    let out = keys_cli(&app, &["list"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entry = |key: &str| listed.iter().find(|k| k["id"] == key_id(key)).unwrap().clone();
    assert_eq!(entry(&writer)["requests"], 5, "the refused sixth request is not counted: {listed:?}");
    assert_eq!(entry(&writer)["scopes"], json!(["jobs:read", "jobs:write"]));
    assert_eq!(entry(&reader)["requests"], 5, "{listed:?}");
    assert!(entry(&reader)["last_used_at"].is_string());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&writer) && !text.contains(&sha256_hex(&writer)), "{text}");

    // A revoked key is refused from the next request on.
    let out = keys_cli(&app, &["revoke", key_id(&reader)]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, _, message) = refusal(get_with(&app, "/v1/jobs", &reader).await).await;
    assert_eq!(status, 401);
    assert!(message.contains("revoked"), "{message}");
    assert_eq!(keys_cli(&app, &["revoke", "0123456789ab"]).await.status.code(), Some(4));

    // `clipforge jobs` sends the key given in CLIPFORGE_API_KEY (or --api-key).
    let cli_key = create_key(&app, "laptop", "jobs:read").await;
    let jobs_list = |key: Option<String>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_clipforge"));
        command.args(["jobs", "list", "--server", &app.address]).env("RUST_LOG", "warn");
        if let Some(key) = key {
            command.env("CLIPFORGE_API_KEY", key);
        }
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let without = jobs_list(None).await.unwrap();
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("unauthorized"));
    let with = jobs_list(Some(cli_key.clone())).await.unwrap();
    assert!(with.status.success(), "{}", String::from_utf8_lossy(&with.stderr));
    assert!(String::from_utf8_lossy(&with.stdout).contains(&job_id));

    // The record store holds each key's hash and never the key.
    let stored = String::from_utf8_lossy(&app.raw_records()).into_owned();
    for key in [&reader, &writer, &cli_key] {
        let secret = &key[17..];
        assert!(!stored.contains(secret), "the record store holds a key in clear ({}…)", &key[..8]);
        assert!(stored.contains(&sha256_hex(key)), "its hash is what is stored");
    }
}

#[tokio::test]
async fn every_route_but_the_open_ones_refuses_a_request_without_a_key() {
    use clipforge::api::auth::{Access, access_for};
    let app = app_with_keys(QueueKind::Sqlite).await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let mut routes: Vec<(String, String)> = vec![("get".into(), "/metrics".into())];
    for (path, item) in doc["paths"].as_object().unwrap() {
        routes.extend(item.as_object().unwrap().keys().map(|method| (method.clone(), path.clone())));
    }
    assert!(routes.len() > 10, "{routes:?}");
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = app.http.request(method.clone(), format!("{}{}", app.address, path.replace("{id}", "x"))).send();
        let status = resp.await.unwrap().status();
        match access_for(&method, &path) {
            Access::Open => assert_ne!(status, 401, "{method} {path} should be open"),
            Access::AnyKey | Access::Needs(_) => {
                assert_eq!(status, 401, "{method} {path} answered without a key")
            }
        }
    }
}

#[tokio::test]
async fn api_processes_on_one_redis_share_each_keys_limit() {
    let first = app_with_keys(QueueKind::Redis).await;
    let second = first.sibling(Roles { api: true, stages: vec![] }, &[]).await;
    // Made through the record store this time, as an admin tool might.
    let records = first.records().await;
    let (key, new) = NewApiKey::generate("shared", vec![Scope::Admin]);
    records.create_api_key(&new).await.unwrap();
    let key = key.expose_secret();

    for (n, app) in [&first, &second, &first, &second, &first].into_iter().enumerate() {
        assert_eq!(get_with(app, "/v1/jobs", key).await.status(), 200, "request {}", n + 1);
    }
    for app in [&second, &first] {
        let over = get_with(app, "/metrics", key).await;
        assert_eq!(over.status(), 429, "the count is shared, not per process");
        let retry_after: u64 = over.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    }
    let used = records.api_key_by_hash(&sha256_hex(key)).await.unwrap().unwrap();
    assert_eq!(used.requests, 5);
    second.stop().await;
}

#[tokio::test]
async fn the_api_will_not_listen_on_a_public_address_without_keys() {
    let data = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_clipforge"))
            .arg("api")
            .env("CLIPFORGE__DATA__DIR", data.path())
            .env("CLIPFORGE__SERVER__LISTEN", "0.0.0.0:0")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "refused at start, as bad settings");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.require_keys") && stderr.contains("CLIPFORGE__AUTH__REQUIRE_KEYS"), "{stderr}");
    assert!(stderr.contains("anyone who can reach the port"), "{stderr}");
}
