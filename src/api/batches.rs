//! `/v1/batches`: many jobs in one request, and how far they got.
//!
//! A batch is a JSON array, JSON lines or CSV (by `Content-Type`; see
//! [`crate::domain::parse_batch`]). Every line is validated on its own: the
//! answer lists the jobs accepted and the lines rejected, with their line
//! numbers. The batch's idempotency key is the `Idempotency-Key` header (or
//! `?key=`), else the SHA-256 of the body; each line without its own
//! `idempotency_key` gets `batch:<batch key>:<line>`, so sending a batch again
//! creates and queues nothing new and answers with the jobs it made the first
//! time, marked `duplicate`.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Query, read_body};
use crate::domain::{BatchError, BatchFormat, FieldError, JobId, JobRequest, JobSpec, Stage, parse_batch};
use crate::error_code as codes;
use crate::store::records::{LineOutcome, NewBatch};

/// Longest batch key accepted, so that `batch:<key>:<line>` stays a valid job key.
const MAX_BATCH_KEY_CHARS: usize = 100;

/// A line that became a job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AcceptedLine {
    pub line: u32,
    pub job_id: JobId,
    /// True when the line's idempotency key matched an earlier job (the batch
    /// was sent before), which is this job; nothing new was created or queued.
    pub duplicate: bool,
}

/// A line that did not become a job, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RejectedLine {
    pub line: u32,
    /// `invalid_spec`, `malformed_json`, `malformed_csv` or `idempotency_key_reused`.
    pub code: String,
    pub message: String,
    /// Per-field problems, for `invalid_spec`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// How the lines of one submission were taken.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchCounts {
    /// Lines with a request (blank JSON lines do not count).
    pub lines: u32,
    /// New jobs plus duplicates.
    pub accepted: u32,
    pub new: u32,
    pub duplicates: u32,
    pub rejected: u32,
}

/// The answer to a batch submission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchAccepted {
    pub batch_id: String,
    /// In line order.
    pub accepted: Vec<AcceptedLine>,
    /// In line order.
    pub rejected: Vec<RejectedLine>,
    pub counts: BatchCounts,
}

/// A batch and its jobs counted by state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchView {
    pub batch_id: String,
    /// The counts of the latest time the batch was sent.
    pub lines: u32,
    pub accepted: u32,
    pub rejected: u32,
    /// The batch's jobs by current state, e.g. `{"queued": 990, "staged": 7}`;
    /// states without jobs are left out.
    #[schema(value_type = HashMap<String, u64>)]
    pub jobs_by_state: BTreeMap<String, u64>,
    /// Every job of the batch has ended (staged, in_inbox, failed or cancelled).
    pub done: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    /// The batch's idempotency key, when the `Idempotency-Key` header cannot be set.
    pub key: Option<String>,
}

/// The batch key: the header or `?key=` (1-100 printable ASCII characters), else None.
fn given_key(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, ApiError> {
    let bad = |msg: String| ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_IDEMPOTENCY_KEY, msg);
    let header = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map_err(|_| bad("the Idempotency-Key header is not printable ASCII".into())))
        .transpose()?;
    let key = match (header, query) {
        (Some(h), Some(q)) if h != q => {
            return Err(bad("the Idempotency-Key header and ?key= differ; give one".into()));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => return Ok(None),
    };
    let ok = !key.is_empty() && key.len() <= MAX_BATCH_KEY_CHARS && key.chars().all(|c| c.is_ascii_graphic());
    if !ok {
        return Err(bad(format!(
            "the batch's idempotency key must be 1-{MAX_BATCH_KEY_CHARS} printable ASCII characters without spaces"
        )));
    }
    Ok(Some(key.to_string()))
}

fn refused(e: BatchError) -> ApiError {
    let (status, code) = match &e {
        BatchError::MalformedJson(_) => (StatusCode::BAD_REQUEST, codes::MALFORMED_JSON),
        BatchError::MalformedCsv(_) => (StatusCode::BAD_REQUEST, codes::MALFORMED_CSV),
        BatchError::NotAnArray(_) => (StatusCode::UNPROCESSABLE_ENTITY, codes::INVALID_BATCH),
        BatchError::UnknownColumn { .. } => (StatusCode::UNPROCESSABLE_ENTITY, codes::UNKNOWN_COLUMN),
        BatchError::DuplicateColumn { .. } => (StatusCode::UNPROCESSABLE_ENTITY, codes::DUPLICATE_COLUMN),
        BatchError::TooManyLines { .. } => (StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_MANY_LINES),
        BatchError::Empty => (StatusCode::UNPROCESSABLE_ENTITY, codes::BATCH_EMPTY),
    };
    ApiError::new(status, code, e.to_string())
}

/// Submit many jobs at once.
#[utoipa::path(post, path = "/v1/batches", tag = "batches",
    params(BatchQuery,
        ("Idempotency-Key" = Option<String>, Header,
         description = "The batch's key; without one the SHA-256 of the body is the key")),
    request_body(description = "A JSON array of jobs, JSON lines (one job per line) or CSV whose header row \
        names job fields (`music.track`, `music.volume` for music; several `footage_queries` separated by `|`)",
        content((Vec<JobRequest> = "application/json"), ("application/x-ndjson"), ("text/csv"))),
    responses(
        (status = 201, description = "New jobs created and queued (others may be duplicates or rejected)",
         body = BatchAccepted),
        (status = 200, description = "Nothing new: every accepted line was a duplicate", body = BatchAccepted),
        (status = 400, description = "Not JSON or CSV at all, a bad batch key or query", body = ErrorBody),
        (status = 408, description = "The body stalled (server.body_timeout_secs)", body = ErrorBody),
        (status = 413, description = "More than limits.max_batch_lines lines or limits.max_batch_mb MiB",
         body = ErrorBody),
        (status = 415, description = "Content-Type is not JSON, JSON lines or CSV", body = ErrorBody),
        (status = 422, description = "Unknown CSV column, not an array, or no lines", body = ErrorBody),
        (status = 503, description = "Record store or queue unavailable; nothing was stored", body = ErrorBody)))]
pub async fn create_batch(
    State(state): State<ApiState>,
    Query(query): Query<BatchQuery>,
    key: Option<axum::Extension<crate::store::records::ApiKeyRecord>>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(format) = BatchFormat::from_content_type(content_type) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type `{}` is not a batch format; send application/json (an array), \
                 application/x-ndjson (JSON lines) or text/csv",
                crate::domain::echo(content_type)
            ),
        ));
    };
    let given = given_key(&headers, query.key.as_deref())?;
    let body = read_body(body, state.max_batch_bytes).await.map_err(|e| {
        e.into_api_error(codes::BATCH_TOO_LARGE, || {
            format!(
                "the body is larger than {} MiB (limits.max_batch_mb); split the batch",
                state.max_batch_bytes >> 20
            )
        })
    })?;
    let batch_key = given.unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&body))));
    let lines = parse_batch(format, &body, &state.limits, state.max_batch_lines).map_err(refused)?;
    let total = lines.len() as u32;

    let mut rejected = Vec::new();
    let mut specs = Vec::with_capacity(lines.len());
    // Each account is checked once per batch, not once per line: its problem, if any.
    let mut accounts: HashMap<String, Option<RejectedLine>> = HashMap::new();
    for line in lines {
        let mut spec = match line.spec {
            Ok(spec) => spec,
            Err(p) => {
                rejected.push(RejectedLine {
                    line: line.line,
                    code: p.code.as_str().into(),
                    message: p.message,
                    details: p.details,
                });
                continue;
            }
        };
        if spec.idempotency_key.is_none() {
            spec.idempotency_key = Some(format!("batch:{batch_key}:{}", line.line));
        }
        if let Some(targets) = super::auth::key_targets(key.as_ref()) {
            spec.adopt_targets(targets);
        }
        if let Some(name) = spec.account.clone() {
            // Checked once per account and post mode.
            let account = format!("{name}\n{}", spec.post_mode);
            if !accounts.contains_key(&account) {
                let problem = match super::accounts::check_job_account(&state, &name, spec.post_mode).await {
                    Ok(()) => None,
                    Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => return Err(e),
                    Err(e) => Some(RejectedLine {
                        line: 0,
                        code: e.code.as_str().into(),
                        message: e.message,
                        details: e.details,
                    }),
                };
                accounts.insert(account.clone(), problem);
            }
            if let Some(problem) = &accounts[&account] {
                rejected.push(RejectedLine { line: line.line, ..problem.clone() });
                continue;
            }
        }
        // A voice that cannot speak the line's language, or media the team
        // does not have, as for one job.
        let checked = match super::voices::check_job_voice(&state, &spec).await {
            Ok(()) => super::media::check_job_media(&state, &spec).await,
            Err(e) => Err(e),
        };
        let checked = match checked {
            Ok(()) => super::accounts::check_job_targets(&state, &spec).await,
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            rejected.push(RejectedLine {
                line: line.line,
                code: e.code.as_str().into(),
                message: e.message,
                details: e.details,
            });
            continue;
        }
        specs.push((line.line, spec));
    }

    let records = &state.pipeline.records;
    let batch = NewBatch { idempotency_key: &batch_key, lines: total, rejected: rejected.len() as u32, jobs: &specs };
    let created =
        records.create_batch(&batch).await.map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let new_jobs = created.new_jobs();
    if let Err(e) = state.pipeline.queues.enqueue_many(Stage::Prepare, &new_jobs).await {
        // Nothing half-stored: jobs nobody will work on are removed again.
        if let Err(undo) = records.undo_batch(&created).await {
            tracing::error!(batch_id = %created.batch.id, error = %undo, "could not remove the unqueued jobs");
        }
        return Err(ApiError::unavailable(codes::QUEUE_UNAVAILABLE, e));
    }

    announce_queued(&state, &specs, &created.jobs).await;

    let mut accepted = Vec::with_capacity(created.jobs.len());
    for (line, outcome) in created.jobs {
        match outcome {
            LineOutcome::New(job_id) => accepted.push(AcceptedLine { line, job_id, duplicate: false }),
            LineOutcome::Existing(job_id) => accepted.push(AcceptedLine { line, job_id, duplicate: true }),
            LineOutcome::KeyConflict(existing) => rejected.push(RejectedLine {
                line,
                code: codes::IDEMPOTENCY_KEY_REUSED.as_str().into(),
                message: format!("idempotency key already used by job {existing} with a different spec"),
                details: Vec::new(),
            }),
        }
    }
    rejected.sort_by_key(|r| r.line);
    let new = new_jobs.len() as u32;
    let counts = BatchCounts {
        lines: total,
        accepted: accepted.len() as u32,
        new,
        duplicates: accepted.len() as u32 - new,
        rejected: rejected.len() as u32,
    };
    tracing::info!(
        batch_id = %created.batch.id,
        new = counts.new,
        duplicates = counts.duplicates,
        rejected = counts.rejected,
        "batch queued"
    );
    let status = if new > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(BatchAccepted { batch_id: created.batch.id, accepted, rejected, counts })))
}

/// Queues the `queued` notifications of the batch's new jobs that ask for
/// one (most do not: it is off by default), reading only those jobs back.
async fn announce_queued(state: &ApiState, specs: &[(u32, JobSpec)], outcomes: &[(u32, LineOutcome)]) {
    let defaults = &state.pipeline.config.notify;
    for ((_, spec), (_, outcome)) in specs.iter().zip(outcomes) {
        let LineOutcome::New(id) = outcome else { continue };
        if !defaults.announces_queued(spec) {
            continue;
        }
        state.pipeline.announce_submitted(id).await;
    }
}

/// The answer about a batch id that names no batch (the MCP tools give it
/// too, for an id that cannot be one).
pub fn batch_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::BATCH_NOT_FOUND,
        format!("no batch with id `{}`", crate::domain::echo(id)),
    )
}

/// A batch's jobs counted by state, and whether all of them have ended.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches",
    params(("id" = String, Path, description = "Batch id")),
    responses((status = 200, body = BatchView), (status = 404, body = ErrorBody)))]
pub async fn get_batch(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<BatchView>, ApiError> {
    let not_found = || batch_not_found(&id);
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found());
    }
    let records = &state.pipeline.records;
    let unavailable = |e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e);
    let batch = records.batch(&id).await.map_err(unavailable)?.ok_or_else(not_found)?;
    let by_state = records.batch_summary(&batch.id).await.map_err(unavailable)?;
    Ok(Json(BatchView {
        done: by_state.iter().all(|(s, _)| s.is_terminal()),
        jobs_by_state: by_state.into_iter().map(|(s, n)| (s.as_str().to_string(), n)).collect(),
        batch_id: batch.id,
        lines: batch.lines,
        accepted: batch.accepted,
        rejected: batch.rejected,
        created_at: batch.created_at,
    }))
}
