//! Signing in to the studio: an API key pasted once becomes a session cookie.
//!
//! The cookie holds a random token; the record store keeps only its SHA-256,
//! the key it was made from and its expiry ([`SessionStore`]). The cookie is
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page
//! sends it), `Path=/`, and `Secure` when `server.url` is https. Every request
//! that comes with the cookie reads the key again, so revoking a key ends its
//! sessions on the next request; sign-out ends one at once.
//!
//! A state-changing request authenticated by the cookie must also show it
//! comes from our own pages: `Sec-Fetch-Site: same-origin`, or an `Origin`
//! (which [`crate::api::browser`] has already held to `server.url`). Browsers
//! send both on every fetch and form post; a request with neither is no
//! browser's, and gets 403 `cross_site_request`.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::pages::{self, Viewer};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::crypto::{random_token, sha256_hex};
use crate::error_code as codes;
use crate::store::records::{ApiKeyRecord, StoreError};

/// The session cookie's name.
pub const COOKIE: &str = "clipforge_session";

/// The session token a request's `Cookie` header carries, if any.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// The key behind a request's session cookie: None without a cookie or with
/// one whose session is over (expired, signed out, its key revoked).
pub async fn key_of(state: &ApiState, headers: &HeaderMap) -> Result<Option<ApiKeyRecord>, StoreError> {
    let Some(token) = token(headers) else { return Ok(None) };
    let found = state.pipeline.records.live_session(&sha256_hex(&token), Utc::now()).await?;
    Ok(found.map(|(_, key)| key))
}

/// Why a cookie-authenticated request may not change anything, if it may not.
pub fn cross_site(method: &Method, headers: &HeaderMap) -> Option<ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let same_origin = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("same-origin"));
    if same_origin || headers.contains_key(header::ORIGIN) {
        return None;
    }
    Some(ApiError::new(
        StatusCode::FORBIDDEN,
        codes::CROSS_SITE_REQUEST,
        "a request signed in by the studio's cookie must come from the studio's own pages \
         (Sec-Fetch-Site: same-origin or an Origin header); scripts send `Authorization: Bearer <key>` instead",
    ))
}

/// The `Set-Cookie` value for a new session (or, with `max_age` 0, for ending one).
pub fn cookie(token: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

/// Where to go after signing in: a path on this server, `/` otherwise.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.contains("://") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /signin`: the sign-in form (straight to the studio when no key is needed).
pub async fn signin_page(State(state): State<ApiState>, Query(q): Query<NextQuery>) -> Response {
    if !state.auth.require_keys() {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    pages::signin(&safe_next(q.next.as_deref()), None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct SigninForm {
    key: String,
    next: Option<String>,
}

/// `POST /signin`: checks the pasted key and answers with the session cookie.
pub async fn signin(State(state): State<ApiState>, Form(form): Form<SigninForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    if !state.auth.require_keys() {
        return Redirect::to(&next).into_response();
    }
    let records = &state.pipeline.records;
    let found = match records.api_key_by_hash(&sha256_hex(form.key.trim())).await {
        Ok(found) => found,
        Err(e) => return ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e).into_response(),
    };
    let key = match found {
        Some(key) if key.revoked_at.is_none() => key,
        Some(_) => return pages::signin(&next, Some("This key was revoked."), StatusCode::UNAUTHORIZED),
        None => {
            return pages::signin(
                &next,
                Some("This key is not known here. Paste a whole key from `clipforge keys create`."),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let token = random_token(32);
    let ttl = state.studio.session_ttl;
    let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    if let Err(e) = records.create_session(&sha256_hex(&token), &key.id, expires).await {
        return ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e).into_response();
    }
    tracing::info!(key_id = %key.id, "studio sign-in");
    let set = cookie(&token, ttl.as_secs(), state.studio.secure_cookies);
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&set).expect("a cookie is ASCII"));
    response
}

/// `POST /signout`: ends the session and clears the cookie.
pub async fn signout(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(token) = token(&headers) {
        if let Err(e) = state.pipeline.records.end_session(&sha256_hex(&token)).await {
            return ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e).into_response();
        }
    }
    let mut response = Redirect::to("/signin").into_response();
    let clear = cookie("", 0, state.studio.secure_cookies);
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&clear).expect("a cookie is ASCII"));
    response
}

/// Who is looking at a page: None sends them to sign in.
pub async fn viewer(state: &ApiState, headers: &HeaderMap) -> Result<Option<Viewer>, StoreError> {
    if !state.auth.require_keys() {
        return Ok(Some(Viewer::open()));
    }
    Ok(key_of(state, headers).await?.map(Viewer::of))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_token_is_read_from_any_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; clipforge_session=tok123; b=2".parse().unwrap());
        assert_eq!(token(&h).as_deref(), Some("tok123"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "x=1".parse().unwrap());
        h.append(header::COOKIE, "clipforge_session=second".parse().unwrap());
        assert_eq!(token(&h).as_deref(), Some("second"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "clipforge_session=; clipforge_sessionx=no".parse().unwrap());
        assert_eq!(token(&h), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_on_https() {
        let c = cookie("t", 3600, false);
        assert_eq!(c, "clipforge_session=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600");
        assert!(cookie("t", 1, true).ends_with("; Secure"));
    }

    #[test]
    fn only_our_own_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/jobs?state=failed")), "/jobs?state=failed");
        for bad in ["//evil.example", "https://evil.example", "/\\evil.example", "jobs", "/x?u=http://e"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookie_requests_that_change_things_must_come_from_our_pages() {
        let mut h = HeaderMap::new();
        assert!(cross_site(&Method::GET, &h).is_none());
        assert!(cross_site(&Method::POST, &h).is_some(), "no browser header at all");
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(cross_site(&Method::POST, &h).is_none());
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(cross_site(&Method::DELETE, &h).is_none(), "the Origin's value is the browser guard's to check");
    }
}
