//! The HTTP API (axum): jobs, batches, accounts, live events
//! (server-sent, [`events`]), health, readiness, metrics, the OpenAPI document,
//! the two-way Telegram bot's front door ([`telegram`]) and the MCP endpoint
//! `/mcp` ([`crate::mcp`]).

pub mod accounts;
pub mod auth;
pub mod batches;
pub mod browser;
pub mod direct_post;
pub mod error;
pub mod events;
pub mod extract;
pub mod ideas;
pub mod intake;
pub mod jobs;
pub mod keys;
pub mod media;
pub mod metrics;
pub mod performance;
pub mod photos;
pub mod privacy;
pub mod review;
pub mod serve;
pub mod studio_support;
pub mod styles;
pub mod telegram;
mod views;
pub mod voices;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use self::auth::KeysInDoc;
use self::error::ErrorsInDoc;
use crate::domain::SpecLimits;
use crate::error_code as codes;
use crate::media::process::{self, Invocation};
use crate::pipeline::Pipeline;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub pipeline: Arc<Pipeline>,
    pub limits: SpecLimits,
    /// Lifetime of the download links handed out by `GET /v1/jobs/{id}/video`.
    pub presign_ttl: Duration,
    /// Where TikTok sends the browser back in the web connect flow.
    pub tiktok_redirect: String,
    /// The YouTube and Instagram connect flows' callbacks.
    pub youtube_redirect: String,
    pub instagram_redirect: String,
    /// How long a connect link's `state` is valid.
    pub state_ttl: Duration,
    /// Whether callers need API keys, and each key's rate limit.
    pub auth: Arc<auth::AuthGate>,
    /// Most lines one `POST /v1/batches` may carry (`limits.max_batch_lines`).
    pub max_batch_lines: usize,
    /// Largest `POST /v1/batches` body, in bytes (`limits.max_batch_mb`).
    pub max_batch_bytes: usize,
    /// The hosts and the origin browsers are held to (`[server]`).
    pub browser: Arc<browser::BrowserRules>,
    /// How often each `GET /v1/events` stream reads the record store (`server.events_poll_ms`).
    pub events_poll: Duration,
    /// Cancelled when the server stops: event streams end, so that every
    /// connection can finish.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Sessions and reviewer links of the studio (`[auth]`, `[server]`).
    pub studio: Arc<crate::studio::StudioConfig>,
    /// Reads pages for video ideas (`[ideas]`).
    pub ideas: Arc<crate::ideas::IdeaFinder>,
    /// The two-way Telegram bot, when `telegram.mode` is not `off`.
    pub telegram: Option<Arc<telegram::ChatBot>>,
    /// How single submissions are stored and queued: grouped or one by one
    /// (`server.group_commit_jobs`).
    pub intake: Arc<intake::JobIntake>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "clipforge", description = "Short-video requests in, staged MP4s (and TikTok drafts) out."),
    modifiers(&KeysInDoc, &ErrorsInDoc),
    paths(
        jobs::create_job,
        jobs::get_job,
        jobs::video,
        jobs::list_jobs,
        jobs::retry_job,
        jobs::cancel_job,
        events::events,
        review::approve,
        review::reject,
        review::revise,
        privacy::purge_job,
        privacy::export,
        performance::job_performance,
        performance::grouped,
        batches::create_batch,
        batches::get_batch,
        accounts::connect,
        accounts::callback,
        accounts::youtube_connect,
        accounts::youtube_callback,
        accounts::instagram_connect,
        accounts::instagram_callback,
        accounts::list_accounts,
        accounts::disconnect,
        accounts::change,
        direct_post::creator,
        photos::photo,
        keys::list_keys,
        keys::create_key,
        keys::revoke_key,
        studio_support::voice_preview,
        voices::list_voices,
        voices::voice_preview,
        studio_support::system,
        studio_support::review_link,
        styles::list_styles,
        styles::style_preview,
        media::upload,
        media::list,
        media::get,
        media::delete,
        ideas::suggest,
        healthz,
        readyz
    ),
    components(schemas(
        crate::domain::JobRequest,
        crate::domain::MusicRequest,
        crate::domain::FieldError,
        crate::domain::JobError,
        crate::domain::JobEvent,
        crate::domain::JobState,
        crate::domain::Stage,
        crate::domain::Manifest,
        jobs::Accepted,
        jobs::JobView,
        jobs::JobPage,
        jobs::VideoView,
        events::StateData,
        events::ProgressData,
        jobs::ReviewView,
        review::ApproveRequest,
        review::RejectRequest,
        crate::domain::Revision,
        crate::domain::ReviewDecision,
        crate::domain::ReviewPoint,
        crate::domain::Verdict,
        batches::BatchAccepted,
        batches::AcceptedLine,
        batches::RejectedLine,
        batches::BatchCounts,
        batches::BatchView,
        accounts::AccountView,
        accounts::AccountChange,
        direct_post::CreatorView,
        crate::domain::DirectPostRequest,
        crate::domain::DirectPost,
        accounts::AccountList,
        accounts::ConnectLink,
        crate::domain::TikTokDraft,
        performance::JobPerformance,
        performance::PerformanceSummary,
        performance::SampleView,
        performance::PerformanceReport,
        performance::AccountTotalsView,
        crate::performance::GroupTotals,
        privacy::ExportDocument,
        privacy::ExportedJob,
        privacy::ExportedUpload,
        privacy::ExportedBatch,
        privacy::BatchLine,
        crate::pipeline::purge::PurgeReport,
        keys::NewKeyRequest,
        keys::NewKey,
        keys::KeyList,
        keys::Revoked,
        studio_support::VoiceSampleRequest,
        voices::VoiceList,
        voices::SampleText,
        crate::providers::voice::VoiceInfo,
        studio_support::SystemPart,
        studio_support::SystemView,
        studio_support::ReviewLink,
        styles::StyleList,
        styles::StyleView,
        styles::SafeAreaView,
        media::MediaView,
        media::MediaList,
        media::MediaFromUrl,
        crate::domain::MediaKind,
        crate::domain::JobMediaRequest,
        crate::domain::MediaPinRequest,
        crate::domain::CaptionStyleRequest,
        crate::domain::Position,
        crate::domain::Effect,
        crate::domain::Transition,
        ideas::IdeasRequest,
        ideas::IdeasAnswer,
        ideas::IdeaView,
        error::ErrorBody,
        Readiness,
        Check
    ))
)]
pub struct ApiDoc;

/// All routes, with state applied.
pub fn router(state: ApiState) -> Router {
    let routes = api_routes();
    // What the MCP tools call, in-process: the same routes behind the same
    // key guard, answering errors in the same envelope.
    let for_tools = routes
        .clone()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(axum::middleware::from_fn(error::envelope_plain_errors))
        .with_state(state.clone());
    let mcp = crate::mcp::http_service(for_tools, state.studio.public_url.clone(), &state.shutdown);
    routes
        .route_service("/mcp", mcp)
        // API keys and scopes (auth::ROUTE_ACCESS) for every route above: keep
        // this after the last `.route`, since it guards only the routes before it.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        // The studio's pages decide on sign-in themselves (the sign-in page, not a JSON 401).
        .merge(crate::studio::routes())
        // After the last `.route` too: it covers the routes before it.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { error::ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such route") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), browser::guard))
        // Outside everything that may answer an error, so each one is JSON.
        .layer(axum::middleware::from_fn(error::envelope_plain_errors))
        // Spans name the path, never the query: OAuth callbacks carry codes there.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()))
            },
        ))
        .with_state(state)
}

/// The API's routes, without their guards and layers (see [`router`]).
fn api_routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/jobs", post(jobs::create_job).get(jobs::list_jobs))
        .route("/v1/jobs/{id}", get(jobs::get_job).delete(privacy::purge_job))
        .route("/v1/jobs/{id}/video", get(jobs::video))
        .route("/v1/jobs/{id}/retry", post(jobs::retry_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/events", get(events::events))
        .route("/v1/jobs/{id}/approve", post(review::approve))
        .route("/v1/jobs/{id}/creator", get(direct_post::creator))
        .route("/p/{job}/{file}", get(photos::photo))
        .route("/v1/jobs/{id}/reject", post(review::reject))
        .route("/v1/jobs/{id}/revise", post(review::revise))
        .route("/v1/export", get(privacy::export))
        .route("/v1/jobs/{id}/performance", get(performance::job_performance))
        .route("/v1/performance", get(performance::grouped))
        .route("/v1/batches", post(batches::create_batch))
        .route("/v1/batches/{id}", get(batches::get_batch))
        .route("/v1/accounts", get(accounts::list_accounts))
        .route("/v1/accounts/{id}", axum::routing::delete(accounts::disconnect).patch(accounts::change))
        .route("/v1/accounts/tiktok/connect", get(accounts::connect))
        .route("/v1/accounts/tiktok/callback", get(accounts::callback))
        .route("/v1/accounts/youtube/connect", get(accounts::youtube_connect))
        .route("/v1/accounts/youtube/callback", get(accounts::youtube_callback))
        .route("/v1/accounts/instagram/connect", get(accounts::instagram_connect))
        .route("/v1/accounts/instagram/callback", get(accounts::instagram_callback))
        .route("/v1/jobs/{id}/review-link", post(studio_support::review_link))
        .route("/v1/voices/preview", post(studio_support::voice_preview))
        .route("/v1/voices", get(voices::list_voices))
        .route("/v1/voices/{id}/preview", post(voices::voice_preview))
        .route("/v1/system", get(studio_support::system))
        .route("/v1/styles", get(styles::list_styles))
        .route("/v1/styles/preview.png", get(styles::style_preview))
        .route("/v1/media", post(media::upload).get(media::list))
        .route("/v1/media/{id}", get(media::get).delete(media::delete))
        .route("/v1/ideas", post(ideas::suggest))
        .route("/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke_key))
        .route("/telegram/webhook", post(telegram::webhook))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}

/// A request's path as logs may show it: a reviewer link's token (`/r/<token>`)
/// is a credential, so it is left out.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/r/") {
        Some(rest) => {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            std::borrow::Cow::Owned(format!("/r/{{token}}{tail}"))
        }
        None => std::borrow::Cow::Borrowed(path),
    }
}

/// A known route asked with a method it does not have; `Allow` names those it has.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}; see the Allow header", crate::domain::echo(uri.path())),
    )
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

/// Everything a job needs answers: records, queue, ffmpeg.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Readiness>) {
    let p = &state.pipeline;
    let records = p.records.ping().await.map(|_| "reachable".to_string()).map_err(|e| e.to_string());
    let queue = p.queues.ping().await.map(|_| format!("{} reachable", p.queues.describe())).map_err(|e| e.to_string());
    let ffmpeg_check = Invocation::new(p.tools.ffmpeg.clone(), vec!["-version".into()], Duration::from_secs(10));
    let ffmpeg = process::run(&ffmpeg_check)
        .await
        .map(|out| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string())
        .map_err(|e| e.to_string());
    let checks: Vec<Check> = [("records", records), ("queue", queue), ("ffmpeg", ffmpeg)]
        .into_iter()
        .map(|(name, r)| match r {
            Ok(detail) => Check { name, ok: true, detail },
            Err(detail) => Check { name, ok: false, detail },
        })
        .collect();
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, checks }))
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn a_reviewer_links_token_never_reaches_a_log_line() {
        assert_eq!(loggable_path("/r/0190abcd.1764.c2lnbmF0dXJl"), "/r/{token}");
        assert_eq!(loggable_path("/r/0190abcd.1764.c2ln/approve"), "/r/{token}/approve");
        assert_eq!(loggable_path("/v1/jobs/0190abcd"), "/v1/jobs/0190abcd");
        assert_eq!(loggable_path("/review"), "/review");
    }
}
