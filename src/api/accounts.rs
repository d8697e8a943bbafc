//! TikTok accounts: the web connect flow (Login Kit v2), listing and
//! disconnecting. Tokens never leave the server: views show them masked.
//!
//! The connect link's `state` is random, stored only as a hash, single-use
//! and expiring; a callback whose state is missing, unknown, reused or
//! expired is refused before any code is exchanged, so nothing is stored.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::extract::Query;
use crate::crypto::{random_token, sha256_hex};
use crate::error_code as codes;

/// What a held token looks like in every view: its kind, never its value.
const MASKED: &str = "act.********";
use crate::domain::{FieldError, PostMode};
use crate::providers::ProviderError;
use crate::providers::tiktok::Accounts;
use crate::store::records::{AccountRecord, AccountStatus};

/// An account as the API shows it: never a token, only masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    /// `tiktok`, `youtube` or `instagram`.
    pub platform: String,
    /// YouTube: the privacy status this channel's uploads get (None: `youtube.privacy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_privacy: Option<String>,
    pub open_id: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub scopes: String,
    #[schema(value_type = String)]
    pub status: AccountStatus,
    /// Masked: the token's kind and length, never its value.
    pub access_token: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub connected_at: DateTime<Utc>,
    /// What to do when the account cannot publish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Drafts started for the account that still count against TikTok's cap
    /// on pending drafts (those of the last `tiktok.pending_window_hours`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_drafts: Option<u32>,
    /// That cap (`tiktok.max_pending_drafts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_draft_cap: Option<u32>,
    /// Whether jobs for the account may ask for a Direct Post (`post_mode:
    /// direct`). Off until turned on with `PATCH /v1/accounts/{id}`.
    pub direct_post: bool,
}

/// What `PATCH /v1/accounts/{id}` changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    /// TikTok: allow (or stop allowing) Direct Post for the account's jobs.
    /// Each post still needs a person's approval with their choices.
    #[serde(default)]
    pub direct_post: Option<bool>,
    /// YouTube: the privacy status of this channel's uploads, `private`,
    /// `unlisted` or `public`.
    #[serde(default)]
    pub video_privacy: Option<String>,
}

impl From<AccountRecord> for AccountView {
    fn from(a: AccountRecord) -> Self {
        let action = match a.status {
            AccountStatus::Connected => None,
            _ if a.platform == "tiktok" => Some(
                "connect the account again: GET /v1/accounts/tiktok/connect, or `clipforge accounts connect`".into(),
            ),
            _ => Some(format!("connect the account again: GET /v1/accounts/{}/connect", a.platform)),
        };
        Self {
            access_token: a.tokens.as_ref().map(|_| MASKED.to_string()),
            access_expires_at: a.tokens.as_ref().map(|t| t.access_expires_at),
            refresh_expires_at: a.tokens.as_ref().map(|t| t.refresh_expires_at),
            id: a.id,
            platform: a.platform,
            video_privacy: a.video_privacy,
            open_id: a.open_id,
            display_name: a.display_name,
            avatar_url: a.avatar_url,
            scopes: a.scopes,
            status: a.status,
            connected_at: a.created_at,
            action,
            pending_drafts: None,
            pending_draft_cap: None,
            direct_post: a.direct_post,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<AccountView>,
}

fn accounts(state: &ApiState) -> Result<&Accounts, ApiError> {
    state.pipeline.tiktok.as_ref().map(|u| &u.accounts).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::PUBLISH_NOT_CONFIGURED,
            "this server has no TikTok app configured (tiktok.client_key, tiktok.client_secret)",
        )
    })
}

fn provider_error(e: ProviderError) -> ApiError {
    let status = match e.code {
        codes::ACCOUNT_UNKNOWN => StatusCode::NOT_FOUND,
        codes::TOKEN_KEY_MISSING | codes::TOKEN_KEY_INVALID => StatusCode::SERVICE_UNAVAILABLE,
        _ if e.retryable => StatusCode::BAD_GATEWAY,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::relayed(status, e.code, e.message)
}

/// A consent link to hand to a creator (`Accept: application/json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectLink {
    /// TikTok's consent page; single use.
    pub authorize_url: String,
    /// After this the link's `state` is refused.
    pub expires_at: DateTime<Utc>,
}

/// Starts connecting a TikTok account: redirects to TikTok's consent page, or,
/// asked with `Accept: application/json`, answers the link (for a teammate
/// with a key to send to the creator, whose browser carries no key).
#[utoipa::path(get, path = "/v1/accounts/tiktok/connect", tag = "accounts",
    responses((status = 302, description = "To TikTok's consent page"),
              (status = 200, description = "The consent link (Accept: application/json)", body = ConnectLink),
              (status = 404, description = "TikTok not configured", body = super::error::ErrorBody),
              (status = 503, description = "No token key set: tokens could not be stored", body = super::error::ErrorBody)))]
pub async fn connect(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let accounts = accounts(&state)?;
    if !accounts.can_store_tokens() {
        return Err(provider_error(ProviderError::new(
            "tiktok",
            codes::TOKEN_KEY_MISSING,
            crate::crypto::CryptoError::NoKey.to_string(),
            false,
        )));
    }
    let (st, expires) = new_consent(&state).await?;
    let url = accounts.api.authorize_url(&st, &state.tiktok_redirect, None);
    Ok(consent_answer(&headers, url, expires))
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// TikTok sends the browser back here with a code (or an error).
#[utoipa::path(get, path = "/v1/accounts/tiktok/callback", tag = "accounts",
    responses((status = 201, description = "Connected", body = AccountView),
              (status = 400, description = "Missing, unknown, reused or expired state; or consent refused", body = super::error::ErrorBody)))]
pub async fn callback(
    State(state): State<ApiState>,
    Query(q): Query<CallbackQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let accounts = accounts(&state)?;
    let code = take_consent(&state, q, "tiktok").await?;
    let account = accounts.connect(&code, &state.tiktok_redirect, None).await.map_err(provider_error)?;
    Ok((StatusCode::CREATED, Json(AccountView::from(account))))
}

/// Checks a consent callback: its `state` known, unused and unexpired (taken
/// once), no error from the platform; the `code` it carries.
async fn take_consent(state: &ApiState, q: CallbackQuery, platform: &str) -> Result<String, ApiError> {
    let bad = |code, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    let again = format!("start again from /v1/accounts/{platform}/connect");
    let Some(st) = q.state.filter(|s| !s.is_empty()) else {
        return Err(bad(codes::OAUTH_STATE_MISSING, format!("the callback carries no `state`; {again}")));
    };
    let expires = state
        .pipeline
        .records
        .take_oauth_state(&sha256_hex(&st))
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let Some(expires) = expires else {
        return Err(bad(codes::OAUTH_STATE_INVALID, format!("the `state` is unknown or was already used; {again}")));
    };
    if expires < Utc::now() {
        return Err(bad(codes::OAUTH_STATE_EXPIRED, format!("the connect link expired; {again}")));
    }
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or_default();
        let (error, why) = (crate::domain::echo(&error), crate::domain::echo(&why));
        let name = crate::providers::oauth::display(platform);
        return Err(bad(codes::OAUTH_DENIED, format!("{name} did not grant access ({error}): {why}")));
    }
    q.code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad(codes::OAUTH_CODE_MISSING, "the callback carries no `code`".into()))
}

/// Hands out a single-use, expiring `state` for a consent link.
async fn new_consent(state: &ApiState) -> Result<(String, DateTime<Utc>), ApiError> {
    let st = random_token(32);
    let expires = Utc::now() + chrono::Duration::from_std(state.state_ttl).unwrap_or_default();
    state
        .pipeline
        .records
        .put_oauth_state(&sha256_hex(&st), expires)
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    Ok((st, expires))
}

/// The consent link as a redirect, or as JSON when asked with `Accept: application/json`.
fn consent_answer(headers: &HeaderMap, url: String, expires: DateTime<Utc>) -> Response {
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return Json(ConnectLink { authorize_url: url, expires_at: expires }).into_response();
    }
    (StatusCode::FOUND, [(LOCATION, url)]).into_response()
}

fn not_configured(platform: &str, keys: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::PUBLISH_NOT_CONFIGURED,
        format!("this server has no {} app configured ({keys})", crate::providers::oauth::display(platform)),
    )
}

/// Starts connecting a YouTube channel: to Google's consent page (offline access).
#[utoipa::path(get, path = "/v1/accounts/youtube/connect", tag = "accounts",
    responses((status = 302, description = "To Google's consent page"),
              (status = 200, description = "The consent link (Accept: application/json)", body = ConnectLink),
              (status = 404, description = "YouTube not configured", body = super::error::ErrorBody)))]
pub async fn youtube_connect(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let yt = state.pipeline.targets.youtube.clone().ok_or_else(|| not_configured("youtube", "youtube.client_id"))?;
    yt.tokens.cipher().map_err(provider_error)?;
    let (st, expires) = new_consent(&state).await?;
    let url = yt.api.authorize_url(&st, &state.youtube_redirect, None);
    Ok(consent_answer(&headers, url, expires))
}

/// Google sends the browser back here with a code (or an error).
#[utoipa::path(get, path = "/v1/accounts/youtube/callback", tag = "accounts",
    responses((status = 201, description = "Connected", body = AccountView),
              (status = 400, description = "Missing, unknown, reused or expired state; or consent refused", body = super::error::ErrorBody)))]
pub async fn youtube_callback(
    State(state): State<ApiState>,
    Query(q): Query<CallbackQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let yt = state.pipeline.targets.youtube.clone().ok_or_else(|| not_configured("youtube", "youtube.client_id"))?;
    let code = take_consent(&state, q, "youtube").await?;
    let account = yt.connect(&code, &state.youtube_redirect, None).await.map_err(provider_error)?;
    Ok((StatusCode::CREATED, Json(AccountView::from(account))))
}

/// Starts connecting an Instagram professional account (Instagram Login).
#[utoipa::path(get, path = "/v1/accounts/instagram/connect", tag = "accounts",
    responses((status = 302, description = "To Instagram's consent page"),
              (status = 200, description = "The consent link (Accept: application/json)", body = ConnectLink),
              (status = 404, description = "Instagram not configured", body = super::error::ErrorBody)))]
pub async fn instagram_connect(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let ig = state.pipeline.targets.instagram.clone().ok_or_else(|| not_configured("instagram", "instagram.app_id"))?;
    ig.tokens.cipher().map_err(provider_error)?;
    let (st, expires) = new_consent(&state).await?;
    let url = ig.api.authorize_url(&st, &state.instagram_redirect);
    Ok(consent_answer(&headers, url, expires))
}

/// Instagram sends the browser back here with a code (or an error).
#[utoipa::path(get, path = "/v1/accounts/instagram/callback", tag = "accounts",
    responses((status = 201, description = "Connected", body = AccountView),
              (status = 400, description = "Missing, unknown, reused or expired state; or consent refused", body = super::error::ErrorBody)))]
pub async fn instagram_callback(
    State(state): State<ApiState>,
    Query(q): Query<CallbackQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let ig = state.pipeline.targets.instagram.clone().ok_or_else(|| not_configured("instagram", "instagram.app_id"))?;
    let code = take_consent(&state, q, "instagram").await?;
    let account = ig.connect(&code, &state.instagram_redirect).await.map_err(provider_error)?;
    Ok((StatusCode::CREATED, Json(AccountView::from(account))))
}

/// Connected accounts.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", responses((status = 200, body = AccountList)))]
pub async fn list_accounts(State(state): State<ApiState>) -> Result<Json<AccountList>, ApiError> {
    let list = state
        .pipeline
        .records
        .list_accounts()
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let mut accounts = Vec::with_capacity(list.len());
    for account in list {
        let counted = match &state.pipeline.tiktok {
            Some(uploader) => Some(
                uploader
                    .pending_drafts(&account.id)
                    .await
                    .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?,
            ),
            None => None,
        };
        let mut view = AccountView::from(account);
        if let Some((n, cap)) = counted {
            (view.pending_drafts, view.pending_draft_cap) = (Some(n), Some(cap));
        }
        accounts.push(view);
    }
    Ok(Json(AccountList { accounts }))
}

/// Disconnects an account: revokes the grant at TikTok and deletes the tokens.
#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "accounts",
    responses((status = 200, body = AccountView), (status = 404, body = super::error::ErrorBody)))]
pub async fn disconnect(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<AccountView>, ApiError> {
    let found =
        state.pipeline.records.account(&id).await.map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let targets = &state.pipeline.targets;
    let account = match found.as_ref().map(|a| a.platform.as_str()) {
        Some("youtube") => {
            let yt = targets.youtube.as_ref().ok_or_else(|| not_configured("youtube", "youtube.client_id"))?;
            yt.tokens.disconnect(&id).await
        }
        Some("instagram") => {
            let ig = targets.instagram.as_ref().ok_or_else(|| not_configured("instagram", "instagram.app_id"))?;
            ig.tokens.disconnect(&id).await
        }
        _ => accounts(&state)?.disconnect(&id).await,
    };
    Ok(Json(AccountView::from(account.map_err(provider_error)?)))
}

/// Changes an account's settings: whether its jobs may ask for a Direct Post.
#[utoipa::path(patch, path = "/v1/accounts/{id}", tag = "accounts", request_body = AccountChange,
    params(("id" = String, Path, description = "Our account id")),
    responses((status = 200, body = AccountView), (status = 404, body = super::error::ErrorBody),
        (status = 422, description = "A body of the wrong shape", body = super::error::ErrorBody)))]
pub async fn change(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Json<AccountView>, ApiError> {
    let change: AccountChange = super::review::review_body_required(body).await?;
    let records = &state.pipeline.records;
    let unavailable = |e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e);
    let account = records.account(&id).await.map_err(unavailable)?.filter(|a| a.id == id);
    let Some(account) = account else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::ACCOUNT_UNKNOWN,
            format!("no TikTok account `{}`; see GET /v1/accounts", crate::domain::echo(&id)),
        ));
    };
    let field = |name: &str, code, message: String| ApiError::invalid_spec(vec![FieldError::new(name, code, message)]);
    if let Some(privacy) = &change.video_privacy {
        if account.platform != "youtube" {
            return Err(field(
                "video_privacy",
                codes::TARGET_INVALID,
                "video_privacy is a YouTube channel's setting".into(),
            ));
        }
        if !crate::providers::youtube::settings::PRIVACY.contains(&privacy.as_str()) {
            return Err(field(
                "video_privacy",
                codes::TARGET_INVALID,
                format!("video_privacy `{}` is not private, unlisted or public", crate::domain::echo(privacy)),
            ));
        }
        records.set_video_privacy(&account.id, Some(privacy)).await.map_err(unavailable)?;
    }
    if let Some(direct) = change.direct_post {
        records.set_direct_post(&account.id, direct).await.map_err(unavailable)?;
    }
    tracing::info!(account = %account.id, direct_post = ?change.direct_post, video_privacy = ?change.video_privacy, "account settings changed");
    let account = records.account(&account.id).await.map_err(unavailable)?.unwrap_or(account);
    Ok(Json(AccountView::from(account)))
}

/// A job may name an account only when TikTok is configured and the account
/// was connected here; it may ask for a Direct Post only when the account
/// allows it.
pub async fn check_job_account(state: &ApiState, account: &str, mode: PostMode) -> Result<(), ApiError> {
    let field = |code, message: String| ApiError::invalid_spec(vec![FieldError::new("account", code, message)]);
    if state.pipeline.tiktok.is_none() {
        return Err(field(
            codes::PUBLISH_NOT_CONFIGURED,
            "this server has no TikTok publisher configured; leave `account` out to get a staged video".into(),
        ));
    }
    let found = state
        .pipeline
        .records
        .account(account)
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    match found {
        None => Err(field(
            codes::ACCOUNT_UNKNOWN,
            format!("no TikTok account `{account}` is connected; see GET /v1/accounts"),
        )),
        Some(a) if a.status == AccountStatus::Disconnected => Err(field(
            codes::ACCOUNT_DISCONNECTED,
            format!("account `{account}` was disconnected; connect it again first"),
        )),
        Some(a) if mode == PostMode::Direct && !a.direct_post => Err(ApiError::invalid_spec(vec![FieldError::new(
            "post_mode",
            codes::DIRECT_POST_NOT_ENABLED,
            format!(
                "account `{account}` does not allow Direct Post; turn it on with PATCH /v1/accounts/{} \
                     {{\"direct_post\": true}} (or the studio's Accounts page), or leave post_mode out for an inbox draft",
                a.id
            ),
        )])),
        Some(_) => Ok(()),
    }
}

/// A job may name a YouTube or Instagram target only when that platform is
/// configured and the account is one of its connected accounts.
pub async fn check_job_targets(state: &ApiState, spec: &crate::domain::JobSpec) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for (i, target) in spec.targets.iter().enumerate() {
        let field = format!("targets[{i}].account");
        if state.pipeline.targets.get(target.platform).is_none() {
            problems.push(FieldError::new(
                &format!("targets[{i}].platform"),
                codes::TARGET_INVALID,
                format!("this server has no {} app configured; leave this target out", target.platform),
            ));
            continue;
        }
        let found = state
            .pipeline
            .records
            .account(&target.account)
            .await
            .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
        match found {
            Some(a) if a.platform == target.platform.as_str() && a.status != AccountStatus::Disconnected => {}
            Some(a) if a.platform == target.platform.as_str() => problems.push(FieldError::new(
                &field,
                codes::ACCOUNT_DISCONNECTED,
                format!("account `{}` was disconnected; connect it again first", a.id),
            )),
            _ => problems.push(FieldError::new(
                &field,
                codes::ACCOUNT_UNKNOWN,
                format!(
                    "no {} account `{}` is connected; see GET /v1/accounts",
                    target.platform,
                    crate::domain::echo(&target.account)
                ),
            )),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ApiError::invalid_spec(problems)) }
}
