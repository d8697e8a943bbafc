//! Data rights: `GET /v1/export` hands over everything held, `DELETE
//! /v1/jobs/{id}` erases one job (see [`crate::pipeline::purge`]).
//!
//! This is a single-team service: everything held is the team's. Both routes
//! need the `admin` scope when keys are required.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::accounts::AccountView;
use super::error::{ApiError, ErrorBody};
use super::jobs::JobView;
use crate::domain::JobId;
use crate::error_code as codes;
use crate::pipeline::purge::{PurgeError, PurgeReport};
use crate::store::records::{JobFilter, StoreError};

/// The export's format name; bumped when its shape changes incompatibly.
pub const EXPORT_FORMAT: &str = "clipforge-export/1";

/// Jobs read from the record store per round trip while exporting.
const EXPORT_PAGE: u32 = 100;

/// Everything clipforge holds, as `GET /v1/export` returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportDocument {
    /// `clipforge-export/1`.
    pub format: String,
    pub exported_at: DateTime<Utc>,
    /// Every job, newest first, with its spec, history, manifest and notifications.
    pub jobs: Vec<ExportedJob>,
    pub batches: Vec<ExportedBatch>,
    /// Connected TikTok accounts, without their tokens.
    pub accounts: Vec<AccountView>,
    /// API keys: names, scopes, use, notification targets (webhook URLs
    /// redacted to scheme and host); never the key or its hash.
    #[schema(value_type = Vec<Object>)]
    pub api_keys: Vec<crate::store::records::ApiKeyRecord>,
    /// The team's own media (`GET /v1/media`): what each item is and where it
    /// came from; the files themselves stay in the object store under `media/`.
    pub media: Vec<super::media::MediaView>,
    /// Each account's totals over time (`user.info.stats`), newest first.
    pub account_totals: Vec<super::performance::AccountTotalsView>,
}

/// A job as exported: what `GET /v1/jobs/{id}` shows, and its TikTok upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedJob {
    #[serde(flatten)]
    pub job: JobView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiktok_upload: Option<ExportedUpload>,
    /// Its TikTok post's counts over time, newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub performance_samples: Vec<super::performance::SampleView>,
}

/// A job's TikTok inbox upload, without its (secret) upload URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedUpload {
    pub account_id: String,
    pub publish_id: String,
    pub video_size: u64,
    pub chunk_size: u64,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A batch and the job each of its accepted lines became.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedBatch {
    pub id: String,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    pub lines: u32,
    pub accepted: u32,
    pub rejected: u32,
    pub jobs: Vec<BatchLine>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchLine {
    pub line: u32,
    pub job_id: JobId,
}

/// Everything held: jobs (with specs, histories, manifests and notification
/// outcomes), batches, accounts without tokens and API keys' metadata.
///
/// Streamed page by page, so a large store is never held in memory; if the
/// record store fails midway the connection is cut and the body is not
/// valid JSON (never a partial document that parses). Not a snapshot: a job
/// created while the export runs may be missing from `jobs` yet named by a
/// batch line.
#[utoipa::path(get, path = "/v1/export", tag = "data rights",
    responses((status = 200, body = ExportDocument), (status = 503, body = ErrorBody)))]
pub async fn export(State(state): State<ApiState>) -> Result<Response, ApiError> {
    // Fail before the 200 when the store is down; later failures cut the stream.
    state.pipeline.records.ping().await.map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        match write_export(&state, &tx).await {
            Ok(()) => {}
            Err(ExportError::Gone) => tracing::info!("export abandoned: the client went away"),
            Err(e) => {
                tracing::error!(error = %e, "export stopped; the response is cut short");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"clipforge-export.json\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// Why writing the export stopped.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Records(#[from] StoreError),
    #[error("a part of the export does not serialise: {0}")]
    Json(serde_json::Error),
    #[error("the client went away")]
    Gone,
}

async fn write_export(
    state: &ApiState,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), ExportError> {
    let send = |text: String| async move { tx.send(Ok(Bytes::from(text))).await.map_err(|_| ExportError::Gone) };
    let records = &state.pipeline.records;
    send(format!("{{\"format\":{},\"exported_at\":{},\"jobs\":[", json(&EXPORT_FORMAT)?, json(&Utc::now())?)).await?;
    let mut before = None;
    let mut first = true;
    loop {
        let page = records
            .list_jobs(&JobFilter { state: None, limit: EXPORT_PAGE, before: before.clone(), ..Default::default() })
            .await?;
        let last = page.len() < EXPORT_PAGE as usize;
        before = page.last().map(|j| j.id.clone());
        for job in page {
            let upload = records.upload(&job.id).await?.map(|u| ExportedUpload {
                account_id: u.account_id,
                publish_id: u.publish_id,
                video_size: u.video_size,
                chunk_size: u.chunk_size,
                status: u.status.as_str().to_string(),
                created_at: u.created_at,
                updated_at: u.updated_at,
            });
            let samples = records.samples(&job.id).await?;
            let exported = ExportedJob {
                job: state.full_view(job).await?,
                tiktok_upload: upload,
                performance_samples: samples.iter().map(super::performance::SampleView::from).collect(),
            };
            let comma = if first { "" } else { "," };
            first = false;
            send(format!("{comma}{}", json(&exported)?)).await?;
        }
        if last {
            break;
        }
    }
    let batches: Vec<ExportedBatch> = records
        .list_batches()
        .await?
        .into_iter()
        .map(|(b, lines)| ExportedBatch {
            id: b.id,
            idempotency_key: b.idempotency_key,
            created_at: b.created_at,
            lines: b.lines,
            accepted: b.accepted,
            rejected: b.rejected,
            jobs: lines.into_iter().map(|(line, job_id)| BatchLine { line, job_id }).collect(),
        })
        .collect();
    let accounts: Vec<AccountView> = records.list_accounts().await?.into_iter().map(AccountView::from).collect();
    let mut keys = records.list_api_keys().await?;
    for key in &mut keys {
        // As in job specs: a webhook URL only as where it goes.
        if let Some(url) = key.notify.as_mut().and_then(|n| n.webhook_url.as_mut()) {
            *url = crate::crypto::redact_url(url);
        }
    }
    let mut media = Vec::new();
    loop {
        let page = records.list_media(200, media.last().map(|m: &crate::store::records::MediaRecord| &m.id)).await?;
        let done = page.len() < 200;
        media.extend(page);
        if done {
            break;
        }
    }
    let media: Vec<super::media::MediaView> = media.into_iter().map(Into::into).collect();
    let totals: Vec<super::performance::AccountTotalsView> =
        records.account_totals().await?.into_iter().map(Into::into).collect();
    send(format!(
        "],\"batches\":{},\"accounts\":{},\"api_keys\":{},\"media\":{},\"account_totals\":{}}}",
        json(&batches)?,
        json(&accounts)?,
        json(&keys)?,
        json(&media)?,
        json(&totals)?
    ))
    .await?;
    tracing::info!("export written");
    Ok(())
}

/// One part of the export document as JSON text.
fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, ExportError> {
    serde_json::to_string(value).map_err(ExportError::Json)
}

/// Erase an ended job: its records, staged and hand-off files, queue tasks,
/// scratch folders, and the cache objects (script, narration, footage,
/// searches) no other job uses. Irreversible.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "data rights",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Purged", body = PurgeReport),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job has not ended (`job_active`: cancel it first), or was just \
            cancelled while a stage ran (`job_stopping`: purge again after the time named)", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn purge_job(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<PurgeReport>, ApiError> {
    let job = state.find(&id).await?;
    state.pipeline.purge(&job.id).await.map(Json).map_err(|e| match e {
        PurgeError::NotFound(_) => ApiError::not_found(&id),
        PurgeError::Active(_) => ApiError::new(StatusCode::CONFLICT, codes::JOB_ACTIVE, e.to_string()),
        PurgeError::Stopping { .. } | PurgeError::Held { .. } => {
            ApiError::new(StatusCode::CONFLICT, codes::JOB_STOPPING, e.to_string())
        }
        PurgeError::Records(e) => ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e),
        PurgeError::Objects(e) => ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e),
        PurgeError::Queue(e) => ApiError::unavailable(codes::QUEUE_UNAVAILABLE, e),
        e @ PurgeError::Scratch { .. } => ApiError::unavailable(codes::SCRATCH_UNAVAILABLE, e),
    })
}
