//! Reading requests so that every way they can be wrong is an [`ApiError`]:
//! a query string that does not parse, a body over its limit or one that
//! stalls.

use crate::error_code as codes;
use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The query string as `T`, refused with 400 `invalid_query` (in the
/// envelope) when it does not parse or names an unknown parameter.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_QUERY,
                crate::domain::clip(&rejection.body_text()),
            )),
        }
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit given to [`read_body`].
    TooLarge,
    /// The client stopped sending for longer than `server.body_timeout_secs`.
    Stalled,
    /// The connection broke or the body was not valid HTTP framing.
    Broken(String),
}

/// The whole body, at most `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if err.is::<tower_http::timeout::TimeoutError>() {
                return BodyError::Stalled;
            }
            if err.is::<http_body_util::LengthLimitError>() {
                return BodyError::TooLarge;
            }
            source = err.source();
        }
        BodyError::Broken(e.to_string())
    })
}

impl BodyError {
    /// The answer: 413 with `too_large_code` and the message `too_large`
    /// gives, 408 `body_timeout`, or 400 `body_unreadable`.
    pub fn into_api_error(self, too_large_code: codes::ErrorCode, too_large: impl FnOnce() -> String) -> ApiError {
        match self {
            BodyError::TooLarge => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large_code, too_large()),
            BodyError::Stalled => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                codes::BODY_TIMEOUT,
                "the body stopped arriving for longer than server.body_timeout_secs; send it again",
            ),
            BodyError::Broken(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::BODY_UNREADABLE,
                format!("the body could not be read: {}", crate::domain::clip(&e)),
            ),
        }
    }
}
