//! How TikTok's two error shapes map to [`ProviderError`]s: the Content
//! Posting / Display envelope and the OAuth endpoints' flat JSON, both read
//! from the body whatever the HTTP status says (see [`super::api`]).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::api::PROVIDER;
use crate::error_code as codes;
use crate::providers::ProviderError;
use crate::providers::http::transport_error;

/// Reads the Content Posting / Display envelope: `data` when `error.code` is
/// `ok`, whatever the HTTP status; the mapped error otherwise.
pub(super) async fn envelope(res: reqwest::Response) -> Result<Value, ProviderError> {
    let status = res.status();
    let body: Value = match res.json().await {
        Ok(v) => v,
        Err(_) if status.is_server_error() => {
            return Err(ProviderError::new(PROVIDER, codes::INTERNAL_ERROR, format!("TikTok answered {status}"), true));
        }
        Err(e) => return Err(transport_error(PROVIDER, e)),
    };
    let code = body.pointer("/error/code").and_then(Value::as_str).unwrap_or(if status.is_success() {
        "ok"
    } else {
        "internal_error"
    });
    if code == "ok" && status.is_success() {
        return Ok(body.get("data").cloned().unwrap_or_default());
    }
    let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
    let log_id = body.pointer("/error/log_id").or_else(|| body.pointer("/error/logid")).and_then(Value::as_str);
    Err(api_error(status, code, message, log_id))
}

/// Maps a Content Posting error code to ours: stable code, whether a retry helps.
pub fn api_error(status: StatusCode, code: &str, message: &str, log_id: Option<&str>) -> ProviderError {
    let (ours, retryable, hint): (codes::ErrorCode, bool, &str) = match code {
        "access_token_invalid" => (codes::ACCESS_TOKEN_INVALID, true, "the access token is no longer valid"),
        "scope_not_authorized" | "scope_permission_missed" => (
            codes::SCOPE_NOT_AUTHORIZED,
            false,
            "the account did not grant the scopes needed; connect it again and allow video.upload (drafts) and video.publish (Direct Post, creator checks)",
        ),
        "rate_limit_exceeded" => (codes::RATE_LIMIT_EXCEEDED, true, "TikTok's per-minute limit was reached"),
        "spam_risk_too_many_pending_share" => {
            (codes::SPAM_RISK_TOO_MANY_PENDING_SHARE, true, "the creator has too many drafts waiting in the inbox")
        }
        "spam_risk_too_many_posts" => {
            (codes::SPAM_RISK_TOO_MANY_POSTS, false, "the creator reached TikTok's daily post cap")
        }
        "spam_risk_user_banned_from_posting" => {
            (codes::SPAM_RISK_USER_BANNED_FROM_POSTING, false, "TikTok does not let this creator post")
        }
        "reached_active_user_cap" => (codes::REACHED_ACTIVE_USER_CAP, false, "the app reached its active-user cap"),
        "privacy_level_option_mismatch" => {
            (codes::PRIVACY_LEVEL_OPTION_MISMATCH, false, "the chosen privacy level is not one the creator may use now")
        }
        "unaudited_client_can_only_post_to_private_accounts" => (
            codes::UNAUDITED_CLIENT_CAN_ONLY_POST_TO_PRIVATE_ACCOUNTS,
            false,
            "TikTok has not audited this app, so it may only post privately (SELF_ONLY)",
        ),
        "invalid_param" | "invalid_params" => (codes::INVALID_PARAM, false, "TikTok refused the request's parameters"),
        "url_ownership_unverified" => (codes::URL_OWNERSHIP_UNVERIFIED, false, "the URL's domain is not verified"),
        "invalid_publish_id" => (codes::INVALID_PUBLISH_ID, false, "TikTok does not know this publish_id"),
        "token_not_authorized_for_specified_publish_id" => {
            (codes::TOKEN_NOT_AUTHORIZED_FOR_SPECIFIED_PUBLISH_ID, false, "the publish belongs to another account")
        }
        "internal_error" => (codes::INTERNAL_ERROR, true, "TikTok had an internal error"),
        _ if status.is_server_error() => (codes::INTERNAL_ERROR, true, "TikTok had an internal error"),
        _ => (codes::TIKTOK_ERROR, false, "TikTok refused the request"),
    };
    let mut text = format!("{hint} ({code}, HTTP {}", status.as_u16());
    if let Some(id) = log_id.filter(|s| !s.is_empty()) {
        text.push_str(&format!(", log_id {id}"));
    }
    text.push(')');
    if !message.is_empty() {
        text.push_str(&format!(": {message}"));
    }
    let err = ProviderError::new(PROVIDER, ours, text, retryable);
    if ours == codes::RATE_LIMIT_EXCEEDED { err.after(Some(Duration::from_secs(60))) } else { err }
}

/// The OAuth endpoints' flat `{"error", "error_description"}`, on any status.
pub(super) fn oauth_error(status: StatusCode, body: &Value) -> Option<ProviderError> {
    let category = match body.get("error") {
        Some(Value::String(s)) if !s.is_empty() && s != "ok" => s.as_str(),
        // Some answers use the envelope instead; read it the same way.
        Some(Value::Object(o)) => match o.get("code").and_then(Value::as_str) {
            Some("ok") | None if status.is_success() => return None,
            Some(code) => code,
            None => "server_error",
        },
        _ if status.is_success() => return None,
        _ => "server_error",
    };
    let description = body
        .get("error_description")
        .or_else(|| body.pointer("/error/message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (code, retryable, hint): (codes::ErrorCode, bool, &str) = match category {
        "invalid_grant" => (codes::INVALID_GRANT, false, "the grant is no longer valid; connect the account again"),
        "invalid_client" => (codes::INVALID_CLIENT, false, "TikTok refused the app's client key or secret"),
        "access_denied" => (codes::ACCESS_DENIED, false, "the creator did not allow access"),
        "invalid_scope" => (codes::INVALID_SCOPE, false, "a requested scope is not allowed for this app"),
        "invalid_request" => (codes::INVALID_REQUEST, false, "TikTok refused the request"),
        "unauthorized_client" => (codes::UNAUTHORIZED_CLIENT, false, "the app may not use this grant"),
        "temporarily_unavailable" | "server_error" => (codes::SERVER_ERROR, true, "TikTok's login service failed"),
        _ if status.is_server_error() => (codes::SERVER_ERROR, true, "TikTok's login service failed"),
        _ => (codes::OAUTH_ERROR, false, "TikTok refused the login request"),
    };
    let mut text = format!("{hint} ({category}, HTTP {})", status.as_u16());
    if !description.is_empty() {
        text.push_str(&format!(": {description}"));
    }
    Some(ProviderError::new(PROVIDER, code, text, retryable))
}
