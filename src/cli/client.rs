//! A small client of the HTTP API: one method per call, answers decoded into
//! the API's own views. The commands (`jobs`, `batch`, `demo`) use it; it
//! knows none of them.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::exit;
use crate::api::batches::{BatchAccepted, BatchView};
use crate::api::jobs::{Accepted, JobPage, JobView};

/// Why a call to the API did not give the answer wanted.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the clipforge API at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status}: {code}: {message}")]
    Api { status: StatusCode, code: String, message: String },
    #[error("unexpected answer from the API: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            ClientError::Unreachable { .. } => exit::UNREACHABLE,
            ClientError::Api { status, .. } if *status == StatusCode::NOT_FOUND => exit::NOT_FOUND,
            ClientError::Api { status, .. } if status.is_client_error() => exit::USAGE,
            _ => exit::UNREACHABLE,
        })
    }
}

/// Longest silence on an event stream before the connection is taken for
/// dead: three of the server's 15-second keep-alive comments.
pub const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// The API at one base URL.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// The Authorization header, when a key was given (marked sensitive).
    auth: reqwest::header::HeaderMap,
}

impl Client {
    pub fn new(base: impl Into<String>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("HTTP client");
        Self { base: base.into().trim_end_matches('/').to_string(), http, auth: Default::default() }
    }

    /// Sends `key` as `Authorization: Bearer <key>` with every request, for
    /// servers with `auth.require_keys`. None leaves the client as it is.
    pub fn with_api_key(mut self, key: Option<&str>) -> Self {
        let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else { return self };
        let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")) else {
            eprintln!("warning: the API key holds characters an HTTP header cannot carry; sending none");
            return self;
        };
        value.set_sensitive(true);
        self.auth = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
        self.http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(self.auth.clone())
            .build()
            .expect("HTTP client");
        self
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let resp = req.send().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| ClientError::Decode(e.to_string()))?;
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        serde_json::from_value(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends `req` and hands back the answer unread when it is a success
    /// (for bodies the caller streams), the API's error otherwise.
    async fn streamed(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or_default();
            return Err(api_error(status, &body));
        }
        Ok(resp)
    }

    pub async fn submit(&self, body: Vec<u8>) -> Result<Accepted, ClientError> {
        let req =
            self.http.post(format!("{}/v1/jobs", self.base)).header("content-type", "application/json").body(body);
        self.call(req).await
    }

    pub async fn job(&self, id: &str) -> Result<JobView, ClientError> {
        self.call(self.http.get(format!("{}/v1/jobs/{id}", self.base))).await
    }

    pub async fn list(&self, state: Option<&str>, limit: u32) -> Result<JobPage, ClientError> {
        let mut req = self.http.get(format!("{}/v1/jobs", self.base)).query(&[("limit", limit.to_string())]);
        if let Some(s) = state {
            req = req.query(&[("state", s)]);
        }
        self.call(req).await
    }

    pub async fn retry(&self, id: &str) -> Result<Accepted, ClientError> {
        self.call(self.http.post(format!("{}/v1/jobs/{id}/retry", self.base))).await
    }

    pub async fn cancel(&self, id: &str) -> Result<JobView, ClientError> {
        self.call(self.http.post(format!("{}/v1/jobs/{id}/cancel", self.base))).await
    }

    pub async fn purge(&self, id: &str) -> Result<crate::pipeline::purge::PurgeReport, ClientError> {
        self.call(self.http.delete(format!("{}/v1/jobs/{id}", self.base))).await
    }

    /// Posts a batch file as it is; the server reads it by `content_type`.
    pub async fn submit_batch(&self, body: Vec<u8>, content_type: &str) -> Result<BatchAccepted, ClientError> {
        // Ten thousand lines take a few seconds to store; allow far more.
        let req = self
            .http
            .post(format!("{}/v1/batches", self.base))
            .header("content-type", content_type)
            .timeout(Duration::from_secs(600))
            .body(body);
        self.call(req).await
    }

    pub async fn batch(&self, id: &str) -> Result<BatchView, ClientError> {
        self.call(self.http.get(format!("{}/v1/batches/{id}", self.base))).await
    }

    /// `GET /v1/events?job_id=`, once it answered with success: the caller
    /// reads the stream (see [`super::sse`]). `last_event_id` resumes after
    /// that event. No overall timeout, since the stream is meant to stay
    /// open; a read that waits longer than [`STREAM_SILENCE`] (the server
    /// writes a comment every 15 s) fails, so a dead connection is noticed.
    pub async fn job_events(
        &self,
        job_id: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let http = reqwest::Client::builder()
            .default_headers(self.auth.clone())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(STREAM_SILENCE)
            .build()
            .expect("HTTP client");
        let mut req = http.get(format!("{}/v1/events", self.base)).query(&[("job_id", job_id)]);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        self.streamed(req).await
    }

    /// `GET /v1/export`, once it answered with success; the caller streams
    /// the body. No overall timeout: a large store takes a while to stream.
    pub async fn export(&self) -> Result<reqwest::Response, ClientError> {
        let http = reqwest::Client::builder().default_headers(self.auth.clone()).build().expect("HTTP client");
        self.streamed(http.get(format!("{}/v1/export", self.base))).await
    }
}

/// The API's error answer (`{"error": {code, message}}`) with its status.
fn api_error(status: StatusCode, body: &Value) -> ClientError {
    let err = &body["error"];
    ClientError::Api {
        status,
        code: err["code"].as_str().unwrap_or("unknown").into(),
        message: err["message"].as_str().unwrap_or_default().into(),
    }
}
