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
use crate::error_code::{self as codes, ErrorCode};

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
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<FieldError>,
}

impl ApiError {
    /// An answer with `status` and the catalogued `code`, which says it is
    /// answered with that status.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        debug_assert_eq!(code.http, Some(status.as_u16()), "the catalogue's status for `{code}`");
        Self { status, code, message: message.into(), details: Vec::new() }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::JOB_NOT_FOUND,
            format!("no job with id `{}`", crate::domain::echo(what)),
        )
    }

    /// A provider's error passed on as the answer, with the status its
    /// retryability gives (the code is a provider's, answered with several).
    pub fn relayed(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Vec::new() }
    }

    pub fn invalid_spec(details: Vec<FieldError>) -> Self {
        Self::invalid_fields(codes::INVALID_SPEC, details)
    }

    /// 422 with `code` and the per-field problems, each named in the message too.
    pub fn invalid_fields(code: ErrorCode, details: Vec<FieldError>) -> Self {
        let message = details.iter().map(|d| format!("{}: {}", d.field, d.message)).collect::<Vec<_>>().join("; ");
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, code, message, details }
    }

    /// A store or queue that cannot be reached: the request may succeed later.
    pub fn unavailable(code: ErrorCode, err: impl std::fmt::Display) -> Self {
        tracing::error!(code = code.as_str(), error = %err, "dependency unavailable");
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
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.as_str(), message: bounded(self.message), details } };
        (self.status, Json(body)).into_response()
    }
}

/// The code of an error answer axum wrote itself, by its status.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => codes::BAD_REQUEST,
        StatusCode::NOT_FOUND => codes::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => codes::METHOD_NOT_ALLOWED,
        StatusCode::REQUEST_TIMEOUT => codes::BODY_TIMEOUT,
        StatusCode::LENGTH_REQUIRED => codes::LENGTH_REQUIRED,
        StatusCode::PAYLOAD_TOO_LARGE => codes::BODY_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => codes::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNPROCESSABLE_ENTITY => codes::UNPROCESSABLE,
        s if s.is_server_error() => codes::INTERNAL_ERROR,
        _ => codes::BAD_REQUEST,
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
    let body = ErrorBody { error: ErrorDetail { code: code_for(status).as_str(), message, details: Vec::new() } };
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
        // Each `code` lists the catalogue's codes met there. An accounts
        // route may pass on a provider's code, so the envelope's list holds
        // the job codes too.
        list_codes(openapi, "ErrorDetail", |c| c.http.is_some() || c.job.is_some());
        list_codes(openapi, "FieldError", |c| c.field);
        list_codes(openapi, "JobError", |c| c.job.is_some());
        list_codes(openapi, "RejectedLine", |c| c.line);
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
        let cross_site = format!(
            "From another site: an `Origin` that is not server.url's, or `Sec-Fetch-Site: cross-site` \
             or `same-site` (`{}`)",
            codes::CROSS_SITE_REQUEST
        );
        let cross_site = cross_site.as_str();
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
                responses.entry("421".into()).or_insert_with(|| {
                    error(&format!("The Host is not one this server answers to (`{}`)", codes::HOST_NOT_ALLOWED))
                });
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
                            error(&format!(
                                "A body that is not `application/json` (`{}`)",
                                codes::UNSUPPORTED_MEDIA_TYPE
                            ))
                        });
                    }
                }
                if has_query {
                    responses.entry("400".into()).or_insert_with(|| {
                        error(&format!(
                            "The query string does not parse or names an unknown parameter (`{}`)",
                            codes::INVALID_QUERY
                        ))
                    });
                }
                responses.entry("default".into()).or_insert_with(|| {
                    error(&format!(
                        "Any other error, in the same envelope: 405 `{}`, 408 `{}`, 413 `{}`, 5xx",
                        codes::METHOD_NOT_ALLOWED,
                        codes::BODY_TIMEOUT,
                        codes::BODY_TOO_LARGE
                    ))
                });
            }
        }
    }
}

/// Sets the `code` property of the schema `name` to the catalogued codes
/// `keep` picks, as an enum.
fn list_codes(openapi: &mut utoipa::openapi::OpenApi, name: &str, keep: impl Fn(&ErrorCode) -> bool) {
    use utoipa::openapi::{RefOr, Schema};
    let Some(components) = openapi.components.as_mut() else { return };
    let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(name) else { return };
    if let Some(RefOr::T(Schema::Object(code))) = schema.properties.get_mut("code") {
        code.enum_values = Some(codes::codes_where(keep).into_iter().map(Into::into).collect());
        code.description = Some(format!(
            "{} Every code, where it is met and what to do: the README's \"Error codes\".",
            code.description.as_deref().unwrap_or("Stable, machine-readable code.")
        ));
    }
}
