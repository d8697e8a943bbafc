//! API keys at the door: which scope each route needs, whose key it is, and
//! how often each key may call.
//!
//! With `auth.require_keys` off (the embedded default) every request passes.
//! With it on, [`guard`] runs in front of every route: it reads
//! `Authorization: Bearer <key>` (or, from the studio's pages, a session
//! cookie made from a key: [`crate::studio::session`]), finds the key by its SHA-256 in the record
//! store, counts the request against the key's per-minute limit, and checks
//! the scope [`ROUTE_ACCESS`] names for the route (`/mcp` takes any valid key:
//! each MCP tool's own call of a route is checked for that route's scope, see
//! [`Admitted`]). Refusals are the API's
//! usual JSON errors: 401 `unauthorized` with `WWW-Authenticate: Bearer`, 429
//! `rate_limited` with `Retry-After`, 403 `forbidden` naming the scope needed.
//! Keys are made, listed and revoked with `clipforge keys`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use crate::crypto::sha256_hex;
use crate::error_code as codes;
use crate::settings::AuthSettings;
use chrono::Utc;

use crate::store::records::{ApiKeyRecord, RateLimits, Scope, StoreError};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key.
    Open,
    /// Any valid key, whatever its scopes: the route acts only through other
    /// routes of this table, each checked for its own scope (`/mcp`, whose
    /// every tool is one call of a route below; see [`Admitted`]).
    AnyKey,
    /// A key holding this scope (or `admin`).
    Needs(Scope),
}

/// A key this process has already admitted (found, not revoked, counted
/// against its rate limit) for the request that carries it. The MCP tools
/// served at `/mcp` put it on each API call they make in-process for their
/// caller, so [`guard`] checks that call's scope against [`ROUTE_ACCESS`] like
/// any other request's, without counting the caller twice. Only code in this
/// process can set a request's extensions: no client can send one.
#[derive(Debug, Clone)]
pub struct Admitted(pub ApiKeyRecord);

/// The access each route needs, by method and route path as registered in
/// [`super::router`]. A route missing here needs `admin`: a new route stays
/// closed until someone decides who may call it.
pub const ROUTE_ACCESS: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Open),
    ("GET", "/readyz", Access::Open),
    ("GET", "/openapi.json", Access::Open),
    // TikTok sends the creator's browser back here, without a key; the
    // single-use `state` of the connect link is what protects it.
    ("GET", "/v1/accounts/tiktok/callback", Access::Open),
    ("GET", "/v1/accounts/youtube/callback", Access::Open),
    ("GET", "/v1/accounts/instagram/callback", Access::Open),
    // TikTok pulls a photo post's stills without credentials (PULL_FROM_URL);
    // only stills a job's manifest lists are served.
    ("GET", "/p/{job}/{file}", Access::Open),
    // Telegram's webhook deliveries carry no key: the registered secret token
    // is checked instead, and each chat acts with the key it is bound to.
    ("POST", "/telegram/webhook", Access::Open),
    ("GET", "/v1/jobs", Access::Needs(Scope::JobsRead)),
    ("GET", "/v1/jobs/{id}", Access::Needs(Scope::JobsRead)),
    ("GET", "/v1/jobs/{id}/video", Access::Needs(Scope::JobsRead)),
    ("GET", "/v1/jobs/{id}/performance", Access::Needs(Scope::JobsRead)),
    ("GET", "/v1/performance", Access::Needs(Scope::JobsRead)),
    ("POST", "/v1/jobs", Access::Needs(Scope::JobsWrite)),
    ("POST", "/v1/jobs/{id}/retry", Access::Needs(Scope::JobsWrite)),
    ("POST", "/v1/jobs/{id}/cancel", Access::Needs(Scope::JobsWrite)),
    ("GET", "/v1/events", Access::Needs(Scope::JobsRead)),
    // Deciding is a reviewer's; changing what a job says is a writer's.
    ("POST", "/v1/jobs/{id}/approve", Access::Needs(Scope::JobsReview)),
    ("GET", "/v1/jobs/{id}/creator", Access::Needs(Scope::JobsReview)),
    ("POST", "/v1/jobs/{id}/reject", Access::Needs(Scope::JobsReview)),
    ("POST", "/v1/jobs/{id}/revise", Access::Needs(Scope::JobsWrite)),
    ("GET", "/v1/batches/{id}", Access::Needs(Scope::JobsRead)),
    ("POST", "/v1/batches", Access::Needs(Scope::JobsWrite)),
    ("GET", "/v1/accounts", Access::Needs(Scope::Accounts)),
    ("DELETE", "/v1/accounts/{id}", Access::Needs(Scope::Accounts)),
    ("PATCH", "/v1/accounts/{id}", Access::Needs(Scope::Accounts)),
    ("GET", "/v1/accounts/tiktok/connect", Access::Needs(Scope::Accounts)),
    ("GET", "/v1/accounts/youtube/connect", Access::Needs(Scope::Accounts)),
    ("GET", "/v1/accounts/instagram/connect", Access::Needs(Scope::Accounts)),
    ("POST", "/v1/jobs/{id}/review-link", Access::Needs(Scope::JobsReview)),
    ("POST", "/v1/voices/preview", Access::Needs(Scope::JobsWrite)),
    ("GET", "/v1/voices", Access::Needs(Scope::JobsRead)),
    ("POST", "/v1/voices/{id}/preview", Access::Needs(Scope::JobsWrite)),
    ("GET", "/v1/system", Access::Needs(Scope::Admin)),
    ("GET", "/v1/styles", Access::Needs(Scope::JobsRead)),
    ("GET", "/v1/styles/preview.png", Access::Needs(Scope::JobsRead)),
    // The team's own media: adding and removing it is a writer's.
    ("POST", "/v1/media", Access::Needs(Scope::JobsWrite)),
    ("GET", "/v1/media", Access::Needs(Scope::JobsRead)),
    ("GET", "/v1/media/{id}", Access::Needs(Scope::JobsRead)),
    ("DELETE", "/v1/media/{id}", Access::Needs(Scope::JobsWrite)),
    // Ideas from a page: a writer's first step towards jobs.
    ("POST", "/v1/ideas", Access::Needs(Scope::JobsWrite)),
    ("GET", "/v1/keys", Access::Needs(Scope::Admin)),
    ("POST", "/v1/keys", Access::Needs(Scope::Admin)),
    ("DELETE", "/v1/keys/{id}", Access::Needs(Scope::Admin)),
    ("GET", "/metrics", Access::Needs(Scope::Admin)),
    // Data rights: everything held, and erasing a job for good.
    ("GET", "/v1/export", Access::Needs(Scope::Admin)),
    ("DELETE", "/v1/jobs/{id}", Access::Needs(Scope::Admin)),
    // The MCP server (streamable HTTP): each tool is refused or let through
    // by the route it calls, with that route's scope.
    ("POST", "/mcp", Access::AnyKey),
    ("GET", "/mcp", Access::AnyKey),
    ("DELETE", "/mcp", Access::AnyKey),
];

/// The access `method` on `route` needs (HEAD as GET, which axum answers it with).
pub fn access_for(method: &Method, route: &str) -> Access {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTE_ACCESS
        .iter()
        .find(|(m, path, _)| *m == method && *path == route)
        .map_or(Access::Needs(Scope::Admin), |(_, _, access)| *access)
}

/// Writes [`ROUTE_ACCESS`] into the OpenAPI document: a Bearer security
/// scheme, and on every guarded operation the scope it needs and its 401, 403
/// and 429 answers. Derived from the same table the guard reads, so the
/// document cannot drift from what the server does.
pub struct KeysInDoc;

impl utoipa::Modify for KeysInDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from `clipforge keys create`, sent as `Authorization: Bearer <key>`; \
                         needed when the server runs with auth.require_keys.",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("PUT", &mut item.put),
                ("PATCH", &mut item.patch),
                ("DELETE", &mut item.delete),
            ];
            for (method, operation) in operations {
                let Some(op) = operation else { continue };
                let Ok(method) = method.parse::<Method>() else { continue };
                let Access::Needs(scope) = access_for(&method, path) else { continue };
                op.security = Some(vec![SecurityRequirement::new("api_key", Vec::<String>::new())]);
                let also = if scope == Scope::Admin { "" } else { " (or `admin`)" };
                let note = format!("Needs an API key with the `{scope}` scope{also} when keys are required.");
                op.description = Some(match op.description.take() {
                    Some(d) => format!("{d}\n\n{note}"),
                    None => note,
                });
                let responses = &mut op.responses.responses;
                responses.entry("401".into()).or_insert_with(|| error("No key, or a key that is unknown or revoked"));
                responses.entry("403".into()).or_insert_with(|| error(&format!("The key lacks the `{scope}` scope")));
                responses
                    .entry("429".into())
                    .or_insert_with(|| error("Over the key's requests per minute; see Retry-After"));
            }
        }
    }
}

/// The length of a key's rate-limit window.
const WINDOW: Duration = Duration::from_secs(60);

/// Counts each key's requests over a sliding 60-second window, with the one
/// shared limiter ([`crate::store::limits`]): every API process, on any
/// machine, counts against the same total per key, and a refused request
/// learns when the oldest counted one leaves the window.
pub struct RateLimiter {
    limits: Arc<dyn RateLimits>,
    per_window: u32,
}

impl RateLimiter {
    pub fn new(per_minute: u32, limits: Arc<dyn RateLimits>) -> Self {
        Self { limits, per_window: per_minute }
    }

    /// Requests a key may make per window.
    pub fn per_window(&self) -> u32 {
        self.per_window
    }

    /// Counts one request of key `key_id`. None: it may go ahead; Some: the
    /// window is full, and this is how long until a request is let in again.
    pub async fn hit(&self, key_id: &str) -> Result<Option<Duration>, StoreError> {
        let now = Utc::now();
        let refused =
            self.limits.acquire_slot_at(&format!("api_key:{key_id}"), None, self.per_window, WINDOW, now).await?;
        Ok(refused.map(|until| (until - now).to_std().unwrap_or_default()))
    }
}

/// What the API asks of callers: keys or not, and each key's rate limit.
pub struct AuthGate {
    require_keys: bool,
    limiter: RateLimiter,
}

impl AuthGate {
    pub fn new(settings: &AuthSettings, limits: Arc<dyn RateLimits>) -> Self {
        Self { require_keys: settings.require_keys, limiter: RateLimiter::new(settings.requests_per_minute, limits) }
    }

    /// Whether callers need a key (or a studio session made from one).
    pub fn require_keys(&self) -> bool {
        self.require_keys
    }
}

/// The middleware in front of every route (see the module docs).
pub async fn guard(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    if !state.auth.require_keys {
        return next.run(request).await;
    }
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let scope = match access_for(request.method(), &route) {
        Access::Open => return next.run(request).await,
        Access::AnyKey => None,
        Access::Needs(scope) => Some(scope),
    };
    let key = match request.extensions_mut().remove::<Admitted>() {
        Some(Admitted(key)) => key,
        None => match admit(&state, request.method(), request.headers()).await {
            Ok(key) => key,
            Err(refusal) => return refusal,
        },
    };
    if let Some(scope) = scope
        && !key.allows(scope)
    {
        tracing::info!(key_id = %key.id, method = %request.method(), route, needed = %scope, "request refused: scope");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            format!(
                "this API key lacks the `{scope}` scope that {} {route} needs; it holds: {}",
                request.method(),
                Scope::join(&key.scopes)
            ),
        )
        .into_response();
    }
    // Handlers see whose key it is (jobs take the key's notification targets).
    request.extensions_mut().insert(key);
    next.run(request).await
}

/// The targets of the key a request came with, for jobs that name none of
/// their own (none when keys are off or the key has none).
pub fn key_targets(key: Option<&axum::Extension<ApiKeyRecord>>) -> Option<&crate::domain::NotifyRequest> {
    key.and_then(|k| k.notify.as_ref())
}

/// Finds the request's key (from `Authorization: Bearer`, or else from a
/// studio session cookie) and counts the request against its limit.
async fn admit(state: &ApiState, method: &Method, headers: &HeaderMap) -> Result<ApiKeyRecord, Response> {
    let records = &state.pipeline.records;
    let Some(header) = headers.get(AUTHORIZATION) else {
        return match crate::studio::session::token(headers) {
            Some(_) => {
                let key = crate::studio::session::key_of(state, headers)
                    .await
                    .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e).into_response())?
                    .ok_or_else(|| {
                        unauthorized("the studio session ended (signed out, expired or its key revoked); sign in again")
                    })?;
                if let Some(refusal) = crate::studio::session::cross_site(method, headers) {
                    return Err(refusal.into_response());
                }
                limit(state, key).await
            }
            None => Err(unauthorized(
                "this server needs an API key: send `Authorization: Bearer <key>` (make one with `clipforge keys create`)",
            )),
        };
    };
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return Err(unauthorized("the Authorization header is not `Bearer <key>`"));
    };
    let found = records
        .api_key_by_hash(&sha256_hex(token))
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e).into_response())?;
    let key = match found {
        None => return Err(unauthorized("this API key is not known here")),
        Some(key) if key.revoked_at.is_some() => return Err(unauthorized("this API key was revoked")),
        Some(key) => key,
    };
    limit(state, key).await
}

/// Counts one request of `key` against its per-minute limit (also each
/// command of a Telegram chat bound to the key: [`super::telegram`]).
pub(crate) async fn limit(state: &ApiState, key: ApiKeyRecord) -> Result<ApiKeyRecord, Response> {
    let records = &state.pipeline.records;
    let over = state
        .auth
        .limiter
        .hit(&key.id)
        .await
        .map_err(|e| ApiError::unavailable(codes::RATE_LIMITER_UNAVAILABLE, e).into_response())?;
    if let Some(wait) = over {
        // Whole seconds, rounded up, so a client that waits that long is let in.
        let secs = wait.as_millis().div_ceil(1000).max(1);
        tracing::info!(key_id = %key.id, retry_after_s = secs, "request refused: rate limit");
        let mut refusal = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!(
                "API key {} made more than {} requests in a minute (auth.requests_per_minute); retry in {secs} s",
                key.id,
                state.auth.limiter.per_window()
            ),
        )
        .into_response();
        refusal.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs as u64));
        return Err(refusal);
    }
    if let Err(e) = records.count_api_key_use(&key.id).await {
        tracing::warn!(key_id = %key.id, error = %e, "API key use could not be counted");
    }
    Ok(key)
}

/// 401 with the challenge that tells clients which scheme to use.
fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_names_its_scope_and_unlisted_routes_need_admin() {
        assert_eq!(access_for(&Method::GET, "/healthz"), Access::Open);
        assert_eq!(access_for(&Method::GET, "/v1/accounts/tiktok/callback"), Access::Open);
        assert_eq!(access_for(&Method::GET, "/v1/jobs"), Access::Needs(Scope::JobsRead));
        assert_eq!(access_for(&Method::GET, "/v1/events"), Access::Needs(Scope::JobsRead));
        assert_eq!(access_for(&Method::HEAD, "/v1/jobs/{id}/video"), Access::Needs(Scope::JobsRead));
        assert_eq!(access_for(&Method::POST, "/v1/jobs"), Access::Needs(Scope::JobsWrite));
        assert_eq!(access_for(&Method::DELETE, "/v1/accounts/{id}"), Access::Needs(Scope::Accounts));
        assert_eq!(access_for(&Method::GET, "/metrics"), Access::Needs(Scope::Admin));
        assert_eq!(access_for(&Method::GET, "/v1/something-new"), Access::Needs(Scope::Admin));
        assert_eq!(access_for(&Method::POST, "/mcp"), Access::AnyKey);
    }

    #[test]
    fn the_readmes_scope_table_names_every_guarded_route_in_its_scopes_row() {
        let readme = include_str!("../../README.md");
        for (method, path, access) in ROUTE_ACCESS {
            let name = match access {
                Access::Open => continue,
                Access::AnyKey => "any key".to_string(),
                Access::Needs(scope) => format!("`{scope}`"),
            };
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| {name} |")))
                .unwrap_or_else(|| panic!("the README's scope table has no row for {name}"));
            assert!(row.contains(&format!("`{method} {path}`")), "the README's {name} row lacks `{method} {path}`");
        }
    }

    #[test]
    fn every_documented_route_has_an_entry() {
        use utoipa::OpenApi;
        let doc = super::super::ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
            ];
            for (method, op) in methods {
                if op.is_some() {
                    assert!(
                        ROUTE_ACCESS.iter().any(|(m, p, _)| *m == method && p == path),
                        "{method} {path} is not in ROUTE_ACCESS: say who may call it"
                    );
                }
            }
        }
    }

    #[test]
    fn the_document_shows_the_bearer_scheme_and_each_guarded_operations_scope_and_refusals() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(super::super::ApiDoc::openapi()).unwrap();
        let scheme = &doc["components"]["securitySchemes"]["api_key"];
        assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
        let purge = &doc["paths"]["/v1/jobs/{id}"]["delete"];
        assert_eq!(purge["security"][0]["api_key"], serde_json::json!([]));
        assert!(purge["description"].as_str().unwrap().contains("with the `admin` scope when"), "{purge}");
        for status in ["401", "403", "429"] {
            assert_eq!(
                purge["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody"
            );
        }
        let submit = &doc["paths"]["/v1/jobs"]["post"];
        assert!(submit["description"].as_str().unwrap().contains("with the `jobs:write` scope (or `admin`)"));
        let health = &doc["paths"]["/healthz"]["get"];
        assert!(health["security"].is_null() && health["responses"]["401"].is_null(), "open routes stay open");
    }
}
