//! A small client of the HTTP API, for `submit` and `jobs`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use serde_json::Value;

use super::{JobsCommand, exit};
use crate::api::jobs::{Accepted, JobPage, JobView};
use crate::domain::JobState;

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

    /// The headers that carry the API key (empty without one).
    fn auth_headers(&self) -> reqwest::header::HeaderMap {
        self.auth.clone()
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let resp = req.send().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| ClientError::Decode(e.to_string()))?;
        if !status.is_success() {
            let err = &body["error"];
            return Err(ClientError::Api {
                status,
                code: err["code"].as_str().unwrap_or("unknown").into(),
                message: err["message"].as_str().unwrap_or_default().into(),
            });
        }
        serde_json::from_value(body).map_err(|e| ClientError::Decode(e.to_string()))
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

    /// Polls the job until it ends, drawing a progress bar on stderr.
    pub async fn wait(&self, id: &str) -> Result<JobView, ClientError> {
        let bar = ProgressBar::new(300);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}").expect("valid template"),
        );
        loop {
            let job = self.job(id).await?;
            // Three stages of 0-100 each make one bar of 0-300.
            let stage_base = match job.stage {
                Some(crate::domain::Stage::Render) => 100,
                Some(crate::domain::Stage::Publish) => 200,
                _ => 0,
            };
            bar.set_position(stage_base + u64::from(job.progress));
            if job.state == JobState::Waiting {
                let until = job.retry_at.map_or("the account is connected again".to_string(), |t| t.to_rfc3339());
                bar.set_message(format!("waiting until {until}: {}", job.waiting.clone().unwrap_or_default()));
            } else {
                bar.set_message(format!("{} {}%", job.state, job.progress));
            }
            if job.state.is_terminal() {
                bar.finish_with_message(job.state.to_string());
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What a finished job means for the exit code; prints the outcome.
pub fn report_outcome(job: &JobView) -> ExitCode {
    match job.state {
        JobState::Staged | JobState::InInbox => {
            if let Some(v) = &job.outputs.video {
                eprintln!(
                    "job {} {}: {}x{}, {:.1}s, {} bytes",
                    job.id, job.state, v.width, v.height, v.duration_s, v.bytes
                );
                println!("{}", v.path.clone().unwrap_or_else(|| v.key.clone()));
            }
            ExitCode::SUCCESS
        }
        _ => {
            if let Some(e) = &job.error {
                eprintln!(
                    "job {} failed at {}: {} ({}){}",
                    job.id,
                    e.stage,
                    e.message,
                    e.code,
                    if e.retryable { "; retry may help" } else { "" }
                );
            } else {
                eprintln!("job {} {}", job.id, job.state);
            }
            ExitCode::from(exit::JOB_FAILED)
        }
    }
}

pub async fn submit_file(client: &Client, file: &Path, wait: bool) -> ExitCode {
    let body = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(exit::USAGE);
        }
    };
    if let Some(format) = super::batch::format_of(file, &body) {
        return super::batch::submit(client, body, format, wait).await;
    }
    let accepted = match client.submit(body).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    if accepted.duplicate {
        eprintln!("same idempotency key as job {}; following that job", accepted.job_id);
    }
    if !wait {
        println!("{}", accepted.job_id);
        return ExitCode::SUCCESS;
    }
    match client.wait(accepted.job_id.as_str()).await {
        Ok(job) => report_outcome(&job),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

pub async fn jobs(client: &Client, command: JobsCommand) -> ExitCode {
    let result = match command {
        JobsCommand::List { state, limit } => client.list(state.as_deref(), limit).await.map(|page| {
            println!("{:<38} {:<10} {:<8} {:>4}  created", "id", "state", "stage", "pct");
            for j in page.jobs {
                let stage = j.stage.map(|s| s.to_string()).unwrap_or_default();
                println!(
                    "{:<38} {:<10} {:<8} {:>3}%  {}",
                    j.id,
                    j.state,
                    stage,
                    j.progress,
                    j.created_at.format("%F %T")
                );
            }
        }),
        JobsCommand::Show { id } => {
            client.job(&id).await.map(|j| println!("{}", serde_json::to_string_pretty(&j).expect("serialises")))
        }
        JobsCommand::Retry { id } => client.retry(&id).await.map(|a| println!("{} {}", a.job_id, a.state)),
        JobsCommand::Cancel { id } => client.cancel(&id).await.map(|j| println!("{} {}", j.id, j.state)),
        JobsCommand::Purge { id, yes: false } => {
            eprintln!("error: purging erases job {id} for good; run again with --yes to confirm");
            return ExitCode::from(exit::USAGE);
        }
        JobsCommand::Purge { id, yes: true } => client.purge(&id).await.map(|r| {
            println!(
                "{} purged: {} objects deleted, {} cache objects kept (other jobs use them), {} queue tasks deleted",
                r.job_id, r.objects_deleted, r.cache_kept, r.queue_tasks_deleted
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Batches: `clipforge submit FILE.csv|jsonl|ndjson` (see [`super::batch`]).
impl Client {
    /// Posts a batch file as it is; the server reads it by `content_type`.
    pub async fn submit_batch(
        &self,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<crate::api::batches::BatchAccepted, ClientError> {
        // Ten thousand lines take a few seconds to store; allow far more.
        let req = self
            .http
            .post(format!("{}/v1/batches", self.base))
            .header("content-type", content_type)
            .timeout(Duration::from_secs(600))
            .body(body);
        self.call(req).await
    }

    pub async fn batch(&self, id: &str) -> Result<crate::api::batches::BatchView, ClientError> {
        self.call(self.http.get(format!("{}/v1/batches/{id}", self.base))).await
    }
}

/// Where an export to `out` is written until it is complete: `<out>.partial`.
fn partial(out: &Path) -> std::path::PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    name.into()
}

/// `clipforge export`: streams `GET /v1/export` to `out` (or stdout). A file
/// is written under a temporary name and renamed when complete, so a cut
/// stream never leaves a half export under the name asked for.
pub async fn export(client: &Client, out: Option<&Path>) -> ExitCode {
    use tokio::io::AsyncWriteExt;
    let result = async {
        // No overall timeout: a large store takes a while to stream.
        let resp = reqwest::Client::builder()
            .default_headers(client.auth_headers())
            .build()
            .expect("HTTP client")
            .get(format!("{}/v1/export", client.base))
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url: client.base.clone(), source })?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or_default();
            return Err(ClientError::Api {
                status,
                code: body["error"]["code"].as_str().unwrap_or("unknown").into(),
                message: body["error"]["message"].as_str().unwrap_or_default().into(),
            });
        }
        let tmp = out.map(partial);
        let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &tmp {
            Some(t) => Box::new(tokio::fs::File::create(t).await.map_err(|e| ClientError::Decode(e.to_string()))?),
            None => Box::new(tokio::io::stdout()),
        };
        let mut resp = resp;
        let mut bytes = 0u64;
        let cut = |e: reqwest::Error| ClientError::Decode(format!("the export was cut short: {e}"));
        while let Some(chunk) = resp.chunk().await.map_err(cut)? {
            bytes += chunk.len() as u64;
            sink.write_all(&chunk).await.map_err(|e| ClientError::Decode(e.to_string()))?;
        }
        sink.flush().await.map_err(|e| ClientError::Decode(e.to_string()))?;
        if let (Some(t), Some(o)) = (&tmp, out) {
            tokio::fs::rename(t, o).await.map_err(|e| ClientError::Decode(e.to_string()))?;
            eprintln!("exported {bytes} bytes to {}", o.display());
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(o) = out {
                let _ = std::fs::remove_file(partial(o));
            }
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
