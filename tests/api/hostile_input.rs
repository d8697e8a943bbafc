//! Input a stranger crafts: every answer stays a short JSON error that
//! names the problem, and nothing is created from it.

use clipforge::app::Roles;
use serde_json::{Value, json};

use crate::support::{QueueKind, TestApp, error_code, spawn_app_with};

async fn api_app() -> TestApp {
    spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await
}

async fn job_count(app: &TestApp) -> usize {
    let page: Value = app.get("/v1/jobs").await.json().await.unwrap();
    page["jobs"].as_array().unwrap().len()
}

async fn post(app: &TestApp, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, usize, Value) {
    let resp = app
        .http
        .post(format!("{}{path}", app.address))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])));
    (status, bytes.len(), json)
}

#[tokio::test]
async fn a_huge_csv_header_gets_a_short_escaped_answer() {
    let app = api_app().await;
    let column = format!("\u{1b}[2J{}", "x".repeat(31 * 1024 * 1024));
    let body = format!("script,{column}\nHello.,1\n");
    let (status, size, err) = post(&app, "/v1/batches", "text/csv", body).await;
    println!("31 MiB CSV header: {status}, {size}-byte answer: {err}");
    assert_eq!((status, Some(error_code(&err))), (422, Some("unknown_column")), "{err}");
    assert!(size < 1024, "the answer is {size} bytes");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("\\u{1b}[2Jxxx") && message.contains("more bytes"), "{message}");
    assert!(!message.contains('\u{1b}'), "control characters are escaped");
    // A bad cell is quoted the same way.
    let cell = format!("script,target_length_s\nHi.,{}\n", "9".repeat(100_000) + "x");
    let (status, size, answer) = post(&app, "/v1/batches", "text/csv", cell).await;
    assert_eq!(status, 200, "{answer}");
    assert!(size < 1024, "the answer is {size} bytes");
    assert_eq!(answer["rejected"][0]["details"][0]["code"], "not_a_number");
    assert_eq!(job_count(&app).await, 0);
}

#[tokio::test]
async fn a_nul_or_other_control_character_in_text_is_a_422_naming_the_field() {
    let app = api_app().await;
    let cases = [
        (json!({ "script": "Say this.\u{0}Then the hidden rest." }), "script"),
        (json!({ "script": "Clear\u{1b}[2J screen." }), "script"),
        (json!({ "script": "Lone\rreturn." }), "script"),
        (json!({ "topic": "tides\u{7f}" }), "topic"),
        (json!({ "script": "Fine.", "footage_queries": ["ocean", "mo\non"] }), "footage_queries[1]"),
    ];
    for (spec, field) in cases {
        let resp = app.post_job_raw(&spec.to_string()).await;
        assert_eq!(resp.status(), 422, "{spec}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(error_code(&err), "invalid_spec");
        let detail = &err["error"]["details"][0];
        assert_eq!(
            (detail["field"].as_str(), detail["code"].as_str()),
            (Some(field), Some("control_character")),
            "{err}"
        );
    }
    // In a batch line too.
    let (status, _, answer) =
        post(&app, "/v1/batches", "application/x-ndjson", "{\"script\": \"A\\u0000B\"}\n{\"script\": \"Good.\"}\n")
            .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["rejected"][0]["details"][0]["field"], "script");
    assert_eq!(answer["rejected"][0]["details"][0]["code"], "control_character");
    assert_eq!(job_count(&app).await, 1, "only the clean line became a job");
    // Tabs, newlines and CRLF line ends are text.
    let id = app.submit(json!({ "script": "One.\r\nTwo,\tthree." })).await;
    assert_eq!(app.job(&id).await["spec"]["script"], "One.\nTwo,\tthree.");
}

#[tokio::test]
async fn duplicate_keys_are_refused_in_jobs_and_in_every_batch_form() {
    let app = api_app().await;
    let (status, _, err) = post(&app, "/v1/jobs", "application/json", r#"{"script": "A.", "script": "B."}"#).await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("duplicate field `script`"), "{err}");
    let array = r#"[{"script": "Kept."}, {"script": "First.", "script": "Second."},
                    {"script": "Hi.", "notify": {"webhook_url": "https://a.example/h", "webhook_url": "https://b.example/h"}}]"#;
    let lines = "{\"script\": \"Kept too.\"}\n{\"topic\": \"a\", \"topic\": \"b\"}\n";
    for (content_type, body, bad_lines) in
        [("application/json", array, vec![2, 3]), ("application/x-ndjson", lines, vec![2])]
    {
        let (status, _, answer) = post(&app, "/v1/batches", content_type, body).await;
        assert_eq!(status, 201, "{content_type}: {answer}");
        let rejected: Vec<u64> =
            answer["rejected"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
        assert_eq!(rejected, bad_lines, "{content_type}: {answer}");
        for r in answer["rejected"].as_array().unwrap() {
            assert!(r["message"].as_str().unwrap().contains("duplicate field"), "{r}");
        }
    }
    assert_eq!(job_count(&app).await, 2, "one job per clean line");
}

#[tokio::test]
async fn the_batch_key_prefix_is_refused_for_a_single_job_and_a_batch_lines_own_key() {
    let app = api_app().await;
    // A batch makes line keys `batch:<key>:<line>`.
    let (status, _, first) = post(&app, "/v1/batches", "text/csv", "script\nLine two.\n").await;
    assert_eq!(status, 201, "{first}");
    let (status, _, answer) = post(&app, "/v1/batches", "text/csv", "script\nLater line two.\n").await;
    assert_eq!(status, 201, "{answer}");
    let key = "batch:sha256:0000:2";
    let resp = app.post_job_raw(&json!({ "script": "Squatter.", "idempotency_key": key }).to_string()).await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    let detail = &err["error"]["details"][0];
    assert_eq!(
        (detail["field"].as_str(), detail["code"].as_str()),
        (Some("idempotency_key"), Some("idempotency_key_reserved"))
    );
    assert!(detail["message"].as_str().unwrap().contains("`batch:`"), "{err}");
    let line = json!({ "script": "Squatter in a batch.", "idempotency_key": key }).to_string() + "\n";
    let (_, _, answer) = post(&app, "/v1/batches", "application/x-ndjson", line).await;
    assert_eq!(answer["rejected"][0]["details"][0]["code"], "idempotency_key_reserved", "{answer}");
    assert_eq!(job_count(&app).await, 2, "only the two batch lines");
}

#[tokio::test]
async fn too_large_bodies_unknown_methods_routes_and_bad_queries_get_the_json_envelope() {
    let app = api_app().await;
    let huge = json!({ "script": "x".repeat(3 * 1024 * 1024) }).to_string();
    let (status, _, err) = post(&app, "/v1/jobs", "application/json", huge).await;
    assert_eq!((status, Some(error_code(&err))), (413, Some("body_too_large")), "{err}");

    let cases: Vec<(reqwest::Method, &str, u16, &str)> = vec![
        (reqwest::Method::DELETE, "/healthz", 405, "method_not_allowed"),
        (reqwest::Method::PUT, "/v1/jobs", 405, "method_not_allowed"),
        (reqwest::Method::GET, "/v1/nothing-here", 404, "not_found"),
        (reqwest::Method::GET, "/v1/jobs?limit=abc", 400, "invalid_query"),
        (reqwest::Method::GET, "/v1/jobs?colour=red", 400, "invalid_query"),
        (reqwest::Method::GET, "/v1/jobs?limit=0", 400, "invalid_query"),
        (reqwest::Method::POST, "/v1/batches?nope=1", 400, "invalid_query"),
    ];
    for (method, path, status, code) in cases {
        let resp = app.http.request(method.clone(), format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{method} {path}");
        if status == 405 {
            assert!(resp.headers().contains_key("allow"), "{method} {path}: a 405 names the methods allowed");
        }
        let err: Value = resp.json().await.unwrap();
        assert_eq!(error_code(&err), code, "{method} {path}: {err}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_errors_every_route_may_answer() {
    let app = api_app().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let error_body = json!("#/components/schemas/ErrorBody");
    let submit = &doc["paths"]["/v1/jobs"]["post"]["responses"];
    for status in ["403", "413", "415", "421", "422", "default"] {
        assert_eq!(
            submit[status]["content"]["application/json"]["schema"]["$ref"], error_body,
            "POST /v1/jobs {status}"
        );
    }
    assert!(submit["403"]["description"].as_str().unwrap().contains("cross_site_request"));
    let list = &doc["paths"]["/v1/jobs"]["get"]["responses"];
    assert!(list["400"].is_object() && list["421"].is_object() && list["default"].is_object(), "{list}");
    assert!(list["415"].is_null(), "reads take no body");
    assert!(doc["paths"]["/healthz"]["get"]["responses"]["421"].is_object());
}

#[tokio::test]
async fn the_openapi_document_lists_the_error_codes() {
    let app = api_app().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let listed = |schema: &str| -> Vec<String> {
        let code = &doc["components"]["schemas"][schema]["properties"]["code"];
        code["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema}.code: {code}"))
            .iter()
            .map(|c| c.as_str().unwrap().into())
            .collect()
    };
    use clipforge::error_code::{self as codes, codes_where};
    assert_eq!(listed("ErrorDetail"), codes_where(|c| c.http.is_some() || c.job.is_some()));
    assert_eq!(listed("FieldError"), codes_where(|c| c.field));
    assert_eq!(listed("JobError"), codes_where(|c| c.job.is_some()));
    assert_eq!(listed("RejectedLine"), codes_where(|c| c.line));
    for code in [codes::JOB_NOT_FOUND, codes::HOST_NOT_ALLOWED, codes::RECORDS_UNAVAILABLE] {
        assert!(listed("ErrorDetail").iter().any(|c| c == code.as_str()), "{code}");
    }
    assert!(listed("FieldError").contains(&codes::SCRIPT_EMPTY.as_str().to_string()));
    assert!(listed("JobError").contains(&codes::VOICE_NOT_FOUND.as_str().to_string()));
}
