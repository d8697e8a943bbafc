//! The tools: each is one call of the HTTP API, named and described for an
//! agent, whose answer comes back as the tool's result.
//!
//! A success is the API's JSON as structured content (and as text). A
//! refusal is a tool error (`isError: true`) whose structured content is the
//! API's own error envelope with its status, `{"status": 422, "error":
//! {"code", "message", "details"}}`: the same `code` a script of the HTTP API
//! branches on. A call that reaches no API is a tool error with the code
//! `api_unreachable`. No tool fails the MCP request itself, so an agent
//! always reads why.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::caller::{Answer, Api, Call, CallError};
use crate::api::error::ApiError;
use crate::error_code as codes;
use crate::store::records::ApiKeyRecord;

/// What `submit_job` takes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SubmitJob {
    /// The job, exactly as the body of `POST /v1/jobs` (`JobRequest` in the
    /// API's `/openapi.json`). Give `script` (the words to narrate) or
    /// `topic` (what the video is about), not both. Optional: `voice`,
    /// `language` (BCP-47), `target_length_s`, `footage_queries` (search
    /// hints), `captions` (true/false), `caption_style`, `music`
    /// (`{"track", "volume"}`), `review` (`none`, `script`, `video` or
    /// `both`: where the job stops for a person to approve it), `account`
    /// (the TikTok account for the draft), `post_mode` (`inbox` or `direct`),
    /// `format` (`video` or `photos`), `idempotency_key` (sending the same
    /// key again returns the first job).
    #[schemars(schema_with = "job_request_schema")]
    pub job: Map<String, Value>,
}

/// What `submit_batch` takes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SubmitBatch {
    /// The jobs, each as `submit_job`'s `job`. Each is checked on its own:
    /// the answer lists the jobs made and the lines refused, by line number
    /// (from 1).
    #[schemars(schema_with = "job_requests_schema")]
    pub jobs: Vec<Map<String, Value>>,
    /// The batch's idempotency key (1-100 printable ASCII characters):
    /// sending the batch again with it makes no new jobs. Default: the
    /// SHA-256 of the jobs.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A job, by id.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct JobRef {
    /// The job's id, as `submit_job` or `list_jobs` gave it.
    pub job_id: String,
}

/// A batch, by id.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct BatchRef {
    /// The batch's id, as `submit_batch` gave it.
    pub batch_id: String,
}

/// What `list_jobs` takes.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListJobs {
    /// Only jobs in this state: queued, preparing, rendering, staging,
    /// uploading, in_inbox, staged, posted, in_review, changes_requested,
    /// failed, cancelled or waiting.
    #[serde(default)]
    pub state: Option<String>,
    /// Page size, 1-200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only jobs created before this job id: the `next` of the previous page.
    #[serde(default)]
    pub before: Option<String>,
    /// Only jobs whose request contains this text (at most 200 characters).
    #[serde(default)]
    pub q: Option<String>,
}

/// What `approve_job` takes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ApproveJob {
    /// The job waiting in review (`in_review`).
    pub job_id: String,
    /// Kept with the approval (at most 2000 characters).
    #[serde(default)]
    pub note: Option<String>,
    /// Only for a job whose `post_mode` is `direct`, at its video review: the
    /// person's Direct Post choices (`DirectPostRequest` in `/openapi.json`).
    #[serde(default)]
    pub direct_post: Option<Map<String, Value>>,
}

/// clipforge's tools, acting through [`Api`] for the caller of each request.
#[derive(Clone)]
pub struct Tools {
    api: Api,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    pub fn new(api: Api) -> Self {
        Self { api, tool_router: Self::tool_router() }
    }

    #[tool(
        description = "Submit one short-video job: clipforge writes or takes the script, narrates it, picks \
        footage, renders a 1080x1920 MP4 and stages it (and, with an `account`, sends it to that TikTok \
        inbox as a draft). Answers the job's id and state; follow it with `job_status`. Needs the \
        `jobs:write` scope.",
        annotations(title = "Submit a video job", read_only_hint = false, destructive_hint = false)
    )]
    async fn submit_job(
        &self,
        Parameters(args): Parameters<SubmitJob>,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.answer(Call::post("/v1/jobs", &args.job), &extensions).await)
    }

    #[tool(
        description = "Submit many jobs at once (at most the server's `limits.max_batch_lines`). Answers \
        the batch id, the jobs made (by line) and the lines refused with their error codes; follow it \
        with `batch_status`. Needs the `jobs:write` scope.",
        annotations(title = "Submit a batch of video jobs", read_only_hint = false, destructive_hint = false)
    )]
    async fn submit_batch(
        &self,
        Parameters(args): Parameters<SubmitBatch>,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let mut path = reqwest::Url::parse("http://api/v1/batches").expect("a URL");
        if let Some(key) = &args.idempotency_key {
            path.query_pairs_mut().append_pair("key", key);
        }
        let call = Call::post(path_and_query(&path), &args.jobs);
        Ok(self.answer(call, &extensions).await)
    }

    #[tool(
        description = "A job's state (queued, preparing, rendering, staging, uploading, in_inbox, staged, \
        posted, in_review, changes_requested, failed, cancelled, waiting), progress, error (with its code \
        and what to do), outputs and history. Needs the `jobs:read` scope.",
        annotations(title = "Job status", read_only_hint = true)
    )]
    async fn job_status(
        &self,
        Parameters(args): Parameters<JobRef>,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(id) = segment(&args.job_id) else { return Ok(api_refusal(ApiError::not_found(&args.job_id)).await) };
        Ok(self.answer(Call::get(format!("/v1/jobs/{id}")), &extensions).await)
    }

    #[tool(
        description = "A batch's jobs counted by state, and whether every one has ended. Needs the \
        `jobs:read` scope.",
        annotations(title = "Batch status", read_only_hint = true)
    )]
    async fn batch_status(
        &self,
        Parameters(args): Parameters<BatchRef>,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(id) = segment(&args.batch_id) else {
            return Ok(api_refusal(crate::api::batches::batch_not_found(&args.batch_id)).await);
        };
        Ok(self.answer(Call::get(format!("/v1/batches/{id}")), &extensions).await)
    }

    #[tool(
        description = "Jobs, newest first, optionally only those in one state or whose request contains \
        some text; pages with `before` set to the previous page's `next`. Needs the `jobs:read` scope.",
        annotations(title = "List jobs", read_only_hint = true)
    )]
    async fn list_jobs(
        &self,
        Parameters(args): Parameters<ListJobs>,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let mut path = reqwest::Url::parse("http://api/v1/jobs").expect("a URL");
        {
            let mut query = path.query_pairs_mut();
            if let Some(state) = &args.state {
                query.append_pair("state", state);
            }
            if let Some(limit) = args.limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(before) = &args.before {
                query.append_pair("before", before);
            }
            if let Some(q) = &args.q {
                query.append_pair("q", q);
            }
        }
        Ok(self.answer(Call::get(path_and_query(&path)), &extensions).await)
    }

    #[tool(
        description = "Approve a job waiting in review (`in_review`): it goes on with the next stage \
        (render after a script review, staging and TikTok after a video review). Sent twice, it acts once: \
        the second is refused with `not_in_review`. Needs the `jobs:review` scope.",
        annotations(title = "Approve a job in review", read_only_hint = false, destructive_hint = false)
    )]
    async fn approve_job(
        &self,
        Parameters(args): Parameters<ApproveJob>,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(id) = segment(&args.job_id) else { return Ok(api_refusal(ApiError::not_found(&args.job_id)).await) };
        let mut body = Map::new();
        if let Some(note) = args.note {
            body.insert("note".into(), Value::String(note));
        }
        if let Some(choices) = args.direct_post {
            body.insert("direct_post".into(), Value::Object(choices));
        }
        Ok(self.answer(Call::post(format!("/v1/jobs/{id}/approve"), &body), &extensions).await)
    }

    #[tool(
        description = "Where to download a job's staged MP4 (or, while its video waits in review, the \
        render): a signed link that expires (object storage), or the API's own download route, which \
        needs an API key with `jobs:read` sent as `Authorization: Bearer`. Refused with `no_video` before \
        the job has one and `video_expired` after the retention period. Needs the `jobs:read` scope.",
        annotations(title = "Video link", read_only_hint = true)
    )]
    async fn video_link(
        &self,
        Parameters(args): Parameters<JobRef>,
        extensions: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(id) = segment(&args.job_id) else { return Ok(api_refusal(ApiError::not_found(&args.job_id)).await) };
        let route = format!("/v1/jobs/{id}/video");
        // One byte at most: the link is wanted, not the video.
        let call = Call::get(&route).header(header::RANGE, HeaderValue::from_static("bytes=0-0"));
        let answer = match self.api.send(call, caller(&extensions).as_ref()).await {
            Ok(answer) => answer,
            Err(e) => return Ok(unreachable(e)),
        };
        Ok(match answer {
            Answer { status: StatusCode::TEMPORARY_REDIRECT, location: Some(url), .. } => {
                // A signed link is a credential for that one video: handed to
                // the caller who may read it, never logged.
                CallToolResult::structured(json!({
                    "job_id": id,
                    "url": url,
                    "signed": true,
                    "note": "A signed download link; it expires after the server's storage.presign_secs.",
                }))
            }
            Answer { status, .. } if status.is_success() => CallToolResult::structured(json!({
                "job_id": id,
                "url": format!("{}{route}", self.api.public_url()),
                "signed": false,
                "note": "Served by the API: send an API key with the jobs:read scope as `Authorization: Bearer <key>`.",
            })),
            Answer { status, body, .. } => refused(status, body),
        })
    }

    /// Sends `call` for the caller of the MCP request and turns the API's answer into the tool's result.
    async fn answer(&self, call: Call, extensions: &Extensions) -> CallToolResult {
        match self.api.send(call, caller(extensions).as_ref()).await {
            Ok(Answer { status, body, .. }) if status.is_success() => CallToolResult::structured(body),
            Ok(Answer { status, body, .. }) => refused(status, body),
            Err(e) => unreachable(e),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("clipforge", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "clipforge turns short-video requests into staged MP4s and TikTok drafts; nothing is \
                 published without a person. submit_job (or submit_batch) queues work and answers ids; \
                 job_status and batch_status follow it; a job that stops `in_review` waits for \
                 approve_job; video_link says where to download the MP4 once it is staged. A refused \
                 call is a tool error carrying the API's `error.code` and `message`: read them, fix the \
                 request, and try again.",
            )
    }
}

/// `JobRequest` as the API's OpenAPI document defines it, with every
/// reference to another of its schemas written out in place: the tool's
/// input schema then stands alone and cannot drift from what `POST /v1/jobs`
/// takes. Made once.
static JOB_REQUEST: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(crate::api::ApiDoc::openapi()).expect("the OpenAPI document serialises");
    let schemas = &doc["components"]["schemas"];
    inline_refs(&schemas["JobRequest"], schemas, 0)
});

/// `schema`, with each `$ref` to `#/components/schemas/<name>` replaced by
/// that schema (its own keys beside the `$ref`, such as a description, kept).
/// A chain of references deeper than 8 is left as it is.
fn inline_refs(schema: &Value, schemas: &Value, depth: usize) -> Value {
    match schema {
        Value::Object(object) => {
            let target =
                object.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"));
            if let Some(name) = target.filter(|_| depth < 8) {
                let mut resolved = inline_refs(&schemas[name], schemas, depth + 1);
                if let Value::Object(resolved) = &mut resolved {
                    for (key, value) in object.iter().filter(|(key, _)| *key != "$ref") {
                        resolved.insert(key.clone(), inline_refs(value, schemas, depth));
                    }
                }
                return resolved;
            }
            Value::Object(object.iter().map(|(key, value)| (key.clone(), inline_refs(value, schemas, depth))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|item| inline_refs(item, schemas, depth)).collect()),
        other => other.clone(),
    }
}

fn job_request_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::Schema::try_from(JOB_REQUEST.clone()).expect("JobRequest's schema is an object")
}

fn job_requests_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let array = json!({ "type": "array", "items": JOB_REQUEST.clone() });
    schemars::Schema::try_from(array).expect("an object")
}

/// The key the MCP request was admitted with: the API's guard put it on the
/// HTTP request, whose parts the streamable HTTP transport hands to each
/// tool call. None over stdio, where the remote API checks the key itself.
fn caller(extensions: &Extensions) -> Option<ApiKeyRecord> {
    extensions.get::<axum::http::request::Parts>()?.extensions.get::<ApiKeyRecord>().cloned()
}

/// `id` as one path segment, if it can be an id at all: ids are UUIDs, so
/// only letters, digits and dashes. Anything else (a `/`, `..`) is no id the
/// API knows, and is answered as the API answers an unknown one.
fn segment(id: &str) -> Option<&str> {
    let fits = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    fits.then_some(id)
}

fn path_and_query(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// The API's refusal as a tool error: its envelope with its status.
fn refused(status: StatusCode, body: Value) -> CallToolResult {
    let error = match body.get("error") {
        Some(error @ Value::Object(_)) => error.clone(),
        _ => json!({
            "code": codes::INTERNAL_ERROR.as_str(),
            "message": format!("the API answered {status} without its error body"),
        }),
    };
    CallToolResult::structured_error(json!({ "status": status.as_u16(), "error": error }))
}

/// The answer the API gives to `error`, as a tool error.
async fn api_refusal(error: ApiError) -> CallToolResult {
    let response = error.into_response();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    refused(status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A call that reached no API, as a tool error.
fn unreachable(e: CallError) -> CallToolResult {
    tracing::warn!(error = %e, "an MCP tool could not reach the API");
    CallToolResult::structured_error(json!({
        "error": { "code": codes::API_UNREACHABLE.as_str(), "message": e.to_string() },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_schema_is_the_apis_job_request_with_every_reference_written_out() {
        let schema = JOB_REQUEST.to_string();
        assert!(!schema.contains("$ref"), "{schema}");
        let properties = JOB_REQUEST["properties"].as_object().unwrap();
        for field in ["script", "topic", "voice", "review", "music", "caption_style", "media", "account"] {
            assert!(properties.contains_key(field), "JobRequest lacks `{field}`: {schema}");
        }
        assert!(properties["music"].to_string().contains("track"), "music's own schema is in place");
    }

    #[test]
    fn only_what_can_be_an_id_becomes_a_path_segment() {
        assert_eq!(segment("0190abcd-0000-7000-8000-000000000000"), Some("0190abcd-0000-7000-8000-000000000000"));
        for bad in ["", "..", "../keys", "a/b", "a?b", "a%2Fb", "a b", &"a".repeat(65)] {
            assert_eq!(segment(bad), None, "{bad}");
        }
    }
}
