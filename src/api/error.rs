//! API errors: JSON bodies with a stable code, so scripts branch on `code`
//! and people read `message`.
//!
//! Every error answer is this envelope, including the ones axum writes itself
//! (a body over the limit, a query string that does not parse, an unknown
//! route or method): [`envelope_plain_errors`] rewrites those, so no client
//! has to parse plain text. The codes that are not a route's own:
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `invalid_query` | the query string does not parse or names an unknown parameter |
//! | 400 | `bad_request` | any other request axum could not read |
//! | 403 | `cross_site_request` | a state-changing request from another site ([`super::browser`]) |
//! | 404 | `not_found` | no such route |
//! | 405 | `method_not_allowed` | the route exists, the method does not (see `Allow`) |
//! | 408 | `body_timeout` | the body stalled longer than `server.body_timeout_secs` |
//! | 413 | `body_too_large` | the body is over the route's limit |
//! | 415 | `unsupported_media_type` | a body that is not JSON (or, for batches, a batch format) |
//! | 421 | `host_not_allowed` | the Host is not one this server answers to |

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `invalid_spec`.
    pub code: &'static str,
    pub message: String,
    /// Per-field problems, for invalid specs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Vec::new() }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "job_not_found", format!("no job with id `{}`", crate::domain::echo(what)))
    }

    pub fn invalid_spec(details: Vec<FieldError>) -> Self {
        let message = details.iter().map(|d| format!("{}: {}", d.field, d.message)).collect::<Vec<_>>().join("; ");
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid_spec", message, details }
    }

    /// A store or queue that cannot be reached: the request may succeed later.
    pub fn unavailable(code: &'static str, err: impl std::fmt::Display) -> Self {
        tracing::error!(code, error = %err, "dependency unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, format!("{err}; try again shortly"))
    }
}

/// Longest `message` an error answer carries, in bytes: a last guard, since
/// each message that quotes input quotes only a short prefix of it.
const MAX_MESSAGE_BYTES: usize = 2048;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let details = self.details.into_iter().map(|d| FieldError { message: bounded(d.message), ..d }).collect();
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: bounded(self.message), details } };
        (self.status, Json(body)).into_response()
    }
}

/// The code of an error answer axum wrote itself, by its status.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "body_timeout",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

/// The largest plain-text error body read to become a `message`.
const PLAIN_BODY_LIMIT: usize = 4096;

/// Middleware: an error answer that is not JSON (axum's rejections and
/// defaults are `text/plain` or empty) becomes the envelope, with axum's text,
/// bounded and escaped, as the message. Its headers (`Allow` on a 405) stay.
/// HTML pages and successful answers pass untouched.
pub async fn envelope_plain_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let plain = content_type.is_empty() || content_type.starts_with("text/plain");
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, PLAIN_BODY_LIMIT).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_lowercase(),
        t => crate::domain::clip(t),
    };
    let body = ErrorBody { error: ErrorDetail { code: code_for(status), message, details: Vec::new() } };
    let json = serde_json::to_vec(&body).expect("an error body serialises");
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json))
}

/// Writes the answers every route may give into the OpenAPI document: 421 on
/// each operation, 403 and 415 on the state-changing ones, 400 where there is
/// a query string, and a `default` answer saying any other error (405, 413,
/// 408, 5xx) is the same envelope. Runs after [`super::auth::KeysInDoc`], whose
/// 403 it extends.
pub struct ErrorsInDoc;

impl utoipa::Modify for ErrorsInDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
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
        let cross_site = "From another site: an `Origin` that is not server.url's, or `Sec-Fetch-Site: cross-site` \
                          or `same-site` (`cross_site_request`)";
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (false, &mut item.get),
                (true, &mut item.post),
                (true, &mut item.put),
                (true, &mut item.patch),
                (true, &mut item.delete),
            ];
            for (changes_state, operation) in operations {
                let Some(op) = operation else { continue };
                let has_query = op
                    .parameters
                    .as_ref()
                    .is_some_and(|ps| ps.iter().any(|p| matches!(p.parameter_in, ParameterIn::Query)));
                let responses = &mut op.responses.responses;
                responses
                    .entry("421".into())
                    .or_insert_with(|| error("The Host is not one this server answers to (`host_not_allowed`)"));
                if changes_state {
                    match responses.get_mut("403") {
                        Some(RefOr::T(existing)) => {
                            existing.description = format!("{}; or: {cross_site}", existing.description)
                        }
                        _ => {
                            responses.insert("403".into(), error(cross_site));
                        }
                    }
                    if path.starts_with("/v1/") {
                        responses.entry("415".into()).or_insert_with(|| {
                            error("A body that is not `application/json` (`unsupported_media_type`)")
                        });
                    }
                }
                if has_query {
                    responses.entry("400".into()).or_insert_with(|| {
                        error("The query string does not parse or names an unknown parameter (`invalid_query`)")
                    });
                }
                responses.entry("default".into()).or_insert_with(|| {
                    error(
                        "Any other error, in the same envelope: 405 `method_not_allowed`, 408 `body_timeout`, \
                         413 `body_too_large`, 5xx",
                    )
                });
            }
        }
    }
}
