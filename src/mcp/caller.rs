//! How a tool reaches the HTTP API: through the API's own router in this
//! process (`/mcp` on `clipforge serve`/`api`), or over HTTP to a server
//! (`clipforge mcp`, the stdio bridge). Either way the call meets the API's
//! key check, scope check, handlers and error envelope, unchanged.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::api::auth::Admitted;
use crate::store::records::ApiKeyRecord;

/// Largest API answer a tool reads: a page of 200 jobs is far smaller.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Longest wait for the remote API's answer (a batch of thousands of lines
/// takes seconds to store).
const REMOTE_TIMEOUT: Duration = Duration::from_secs(120);

/// One call of the API a tool makes.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    /// Path and query, e.g. `/v1/jobs?limit=20`.
    pub path: String,
    /// A JSON body, if any (sent as `application/json`).
    pub json: Option<Vec<u8>>,
    /// Further headers: `Idempotency-Key`, `Range`.
    pub headers: HeaderMap,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self { method, path: path.into(), json: None, headers: HeaderMap::new() }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>, json: &impl serde::Serialize) -> Self {
        let mut call = Self::new(Method::POST, path);
        call.json = Some(serde_json::to_vec(json).expect("a JSON value serialises"));
        call
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }
}

/// What the API answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The `Location` header (a signed download link on a 307).
    pub location: Option<String>,
    /// The JSON body; `Null` when the answer is not JSON (a video's bytes,
    /// which are never read).
    pub body: Value,
}

/// Why a call got no answer from the API.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach the clipforge API at {base}: {reason}")]
    Unreachable { base: String, reason: String },
    #[error("the API at {base} answered {status} with a body that is not the clipforge API's JSON: {reason}")]
    NotTheApi { base: String, status: StatusCode, reason: String },
}

/// Where the tools send their calls.
#[derive(Clone)]
pub enum Api {
    /// The API's router in this process, with its key and scope guard. Each
    /// call carries the MCP request's already admitted key ([`Admitted`]),
    /// so the guard checks the called route's scope without counting the
    /// caller against its rate limit a second time.
    InProcess {
        router: axum::Router,
        /// `server.url`: the base of the download links handed out.
        public_url: String,
    },
    /// A clipforge server over HTTP, with the key of `CLIPFORGE_API_KEY`
    /// sent as `Authorization: Bearer` (a header marked sensitive, never
    /// logged). Redirects are not followed: a 307 is a signed video link to
    /// hand out, not to download.
    Remote { base: String, http: reqwest::Client },
}

impl Api {
    /// The API at `base` (e.g. `http://127.0.0.1:8080`), called with `key` when one is given.
    pub fn remote(base: &str, key: Option<&str>) -> Self {
        let mut headers = HeaderMap::new();
        if let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) {
            match HeaderValue::from_str(&format!("Bearer {key}")) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    headers.insert(header::AUTHORIZATION, value);
                }
                Err(_) => tracing::warn!("the API key holds characters an HTTP header cannot carry; sending none"),
            }
        }
        let http = reqwest::Client::builder()
            .timeout(REMOTE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .expect("HTTP client");
        Api::Remote { base: base.trim_end_matches('/').to_string(), http }
    }

    /// The API's public base URL, for links to its own routes.
    pub fn public_url(&self) -> &str {
        match self {
            Api::InProcess { public_url, .. } => public_url,
            Api::Remote { base, .. } => base,
        }
    }

    /// Sends `call` for `caller` (the key the MCP request was admitted with,
    /// if keys are required; only the in-process API uses it).
    pub async fn send(&self, call: Call, caller: Option<&ApiKeyRecord>) -> Result<Answer, CallError> {
        match self {
            Api::InProcess { router, .. } => Ok(in_process(router, call, caller).await),
            Api::Remote { base, http } => remote(base, http, call).await,
        }
    }
}

async fn in_process(router: &axum::Router, call: Call, caller: Option<&ApiKeyRecord>) -> Answer {
    let Call { method, path, json, headers } = call;
    let has_json = json.is_some();
    let mut request = Request::new(Body::from(json.unwrap_or_default()));
    *request.method_mut() = method;
    *request.uri_mut() = match path.parse() {
        Ok(uri) => uri,
        // Paths are built from escaped parts (see `tools::segment`); a bad one is a bug.
        Err(e) => panic!("an MCP tool built the path `{path}`, which is not a URI: {e}"),
    };
    *request.headers_mut() = headers;
    if has_json {
        request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(key) = caller {
        request.extensions_mut().insert(Admitted(key.clone()));
    }
    let Ok(response) = router.clone().oneshot(request).await;
    let status = response.status();
    let location = location(response.headers());
    let body = if is_json(response.headers()) {
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    } else {
        // Dropped unread: a video's bytes are never pulled.
        Value::Null
    };
    Answer { status, location, body }
}

async fn remote(base: &str, http: &reqwest::Client, call: Call) -> Result<Answer, CallError> {
    let Call { method, path, json, headers } = call;
    let mut request = http.request(method, format!("{base}{path}")).headers(headers);
    if let Some(json) = json {
        request = request.header(header::CONTENT_TYPE, "application/json").body(json);
    }
    // reqwest's error names the URL, which holds no credential; the key is a header.
    let unreachable = |e: reqwest::Error| CallError::Unreachable { base: base.to_string(), reason: e.to_string() };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let location = location(response.headers());
    if !is_json(response.headers()) {
        if status.is_success() || status.is_redirection() {
            return Ok(Answer { status, location, body: Value::Null });
        }
        let reason = format!("Content-Type {:?}", response.headers().get(header::CONTENT_TYPE));
        return Err(CallError::NotTheApi { base: base.to_string(), status, reason });
    }
    let bytes = response.bytes().await.map_err(unreachable)?;
    if bytes.len() > MAX_ANSWER_BYTES {
        let reason = format!("{} bytes, over {MAX_ANSWER_BYTES}", bytes.len());
        return Err(CallError::NotTheApi { base: base.to_string(), status, reason });
    }
    let body = serde_json::from_slice(&bytes).map_err(|e| CallError::NotTheApi {
        base: base.to_string(),
        status,
        reason: e.to_string(),
    })?;
    Ok(Answer { status, location, body })
}

fn location(headers: &HeaderMap) -> Option<String> {
    headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/json"))
}
