//! `POST /v1/ideas`: video ideas drawn from a web page ([`crate::ideas`]).
//!
//! Nothing is stored: the answer is the ideas, each with the job request
//! that makes it (`job`), to be submitted as they are chosen. A request may
//! bring its own LLM key (`llm_key`); it is used for this request only and
//! never stored, logged or echoed.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::read_body;
use crate::domain::{FieldError, Idea, JobRequest};
use crate::error_code as codes;
use crate::ideas::IdeasError;
use crate::media::fetch::{FetchError, origin_of};

/// Ideas asked for when a request names no `count`.
pub const DEFAULT_COUNT: u32 = 5;
/// Longest page URL, in characters.
const MAX_URL_CHARS: usize = 2048;
/// Longest LLM key, in characters.
const MAX_KEY_CHARS: usize = 512;

/// A page to draw video ideas from.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdeasRequest {
    /// The page: an http(s) URL on a public address (or listed in
    /// `ideas.allowed_private_hosts`). Read once.
    pub url: String,
    /// How many ideas, 1 to `ideas.max_count` (default 5, or that maximum when lower).
    #[serde(default)]
    pub count: Option<i64>,
    /// An OpenRouter key to use instead of the configured one, for this
    /// request only: never stored, logged or sent back.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub llm_key: Option<SecretString>,
}

/// One idea, and the job request that makes it into a video.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdeaView {
    /// What the video is about.
    pub topic: String,
    /// The opening line that stops the scroll.
    pub hook: String,
    /// Footage search hints, most important first.
    pub footage_queries: Vec<String>,
    /// The suggested length in seconds, within the job limits.
    pub target_length_s: u32,
    /// `POST /v1/jobs` this (or put it in a batch) to make the video.
    pub job: JobRequest,
}

impl From<Idea> for IdeaView {
    fn from(idea: Idea) -> Self {
        let job = idea.job();
        Self {
            topic: idea.topic,
            hook: idea.hook,
            footage_queries: idea.footage_queries,
            target_length_s: idea.target_length_s,
            job,
        }
    }
}

/// The ideas a page gave.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdeasAnswer {
    /// The scheme and host of the page asked for (never its path or query).
    pub origin: String,
    /// The page's title, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Who wrote the ideas: `template` (offline, from the page's headings and
    /// sentences) or `openrouter`.
    pub writer: String,
    pub ideas: Vec<IdeaView>,
}

/// Video ideas from a web page.
///
/// The page is fetched once behind the address guard (no loopback or
/// private addresses unless listed exactly in `ideas.allowed_private_hosts`,
/// each redirect checked again), within `ideas.max_page_kb` and
/// `ideas.fetch_timeout_secs`; its readable text (title, headings,
/// paragraphs) goes to the script writer, which answers exactly `count`
/// ideas. Nothing is stored.
#[utoipa::path(post, path = "/v1/ideas", tag = "ideas", request_body = IdeasRequest,
    responses(
        (status = 200, description = "The ideas", body = IdeasAnswer),
        (status = 400, description = "Not JSON (`malformed_json`)", body = ErrorBody),
        (status = 422, description = "A field is wrong (`invalid_ideas_request`, with `details`); the page's address \
         (`page_address_refused`) or a redirect (`page_redirect_refused`) is refused; the page is too large \
         (`page_too_large`) or has no readable text (`page_without_text`); the request's `llm_key` was refused \
         (`llm_key_refused`)", body = ErrorBody),
        (status = 502, description = "The page could not be read (`page_unreachable`) or the script writer failed \
         (`ideas_writer_failed`)", body = ErrorBody),
        (status = 504, description = "The page took longer than `ideas.fetch_timeout_secs` (`page_too_slow`)", body = ErrorBody)))]
pub async fn suggest(State(state): State<ApiState>, body: Body) -> Result<Json<IdeasAnswer>, ApiError> {
    let raw = read_body(body, 16 * 1024)
        .await
        .map_err(|e| e.into_api_error(codes::BODY_TOO_LARGE, || "an ideas request is at most 16 KiB".into()))?;
    let req: IdeasRequest = serde_json::from_slice(&raw).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::MALFORMED_JSON,
                format!("the body is not valid JSON: line {}, column {}", e.line(), e.column()),
            ),
            // The message names fields and types; a value it could quote may be the key, so it quotes none.
            Category::Data => ApiError::invalid_fields(
                codes::INVALID_IDEAS_REQUEST,
                vec![FieldError::new("body", codes::WRONG_SHAPE, shape_problem(&e))],
            ),
        }
    })?;
    let finder = &state.ideas;
    let (url, count) =
        check(&req, finder.max_count).map_err(|d| ApiError::invalid_fields(codes::INVALID_IDEAS_REQUEST, d))?;
    let found =
        finder.ideas(&url, count, req.llm_key.as_ref()).await.map_err(|e| refusal(e, finder.rules().max_bytes))?;
    tracing::info!(origin = %origin_of(&url), count, writer = found.writer, "ideas suggested");
    Ok(Json(IdeasAnswer {
        origin: origin_of(&url),
        title: found.title,
        writer: found.writer.to_string(),
        ideas: found.ideas.into_iter().map(IdeaView::from).collect(),
    }))
}

/// A shape problem in words that quote no value: serde's message up to the
/// first quoted value, with its position.
fn shape_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let plain = match text.find(['"', '`']) {
        Some(at) if text.starts_with("unknown field") || text.starts_with("missing field") => {
            // Field names are safe to name.
            text.split(", expected").next().unwrap_or(&text[..at]).to_string()
        }
        Some(at) => text[..at].trim_end().to_string(),
        None => text.clone(),
    };
    format!("{plain} (line {}, column {}); send {{\"url\": …, \"count\": …, \"llm_key\": …}}", e.line(), e.column())
}

/// The URL and the count, or every field's problem.
fn check(req: &IdeasRequest, max_count: u32) -> Result<(reqwest::Url, u32), Vec<FieldError>> {
    let mut problems = Vec::new();
    let url = match reqwest::Url::parse(req.url.trim()) {
        _ if req.url.chars().count() > MAX_URL_CHARS => {
            problems.push(FieldError::new(
                "url",
                codes::PAGE_URL_INVALID,
                format!("the URL has more than {MAX_URL_CHARS} characters"),
            ));
            None
        }
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
        Ok(u) => {
            problems.push(FieldError::new(
                "url",
                codes::PAGE_URL_INVALID,
                format!("`{}` URLs are not read; give an http(s) URL with a host", crate::domain::echo(u.scheme())),
            ));
            None
        }
        Err(e) => {
            problems.push(FieldError::new("url", codes::PAGE_URL_INVALID, format!("not a URL: {e}")));
            None
        }
    };
    let count = req.count.unwrap_or(i64::from(DEFAULT_COUNT.min(max_count)));
    if !(1..=i64::from(max_count)).contains(&count) {
        problems.push(FieldError::new(
            "count",
            codes::IDEA_COUNT_OUT_OF_RANGE,
            format!("{count} ideas asked for; ask for 1 to {max_count} (ideas.max_count)"),
        ));
    }
    if let Some(key) = &req.llm_key {
        let key = key.expose_secret();
        let fine = !key.is_empty() && key.chars().count() <= MAX_KEY_CHARS && key.chars().all(|c| c.is_ascii_graphic());
        if !fine {
            // Never quoted: it is a key, or meant to be one.
            problems.push(FieldError::new(
                "llm_key",
                codes::LLM_KEY_INVALID,
                format!("the key must be 1-{MAX_KEY_CHARS} printable ASCII characters without spaces"),
            ));
        }
    }
    match (url, problems.is_empty()) {
        (Some(url), true) => Ok((url, count as u32)),
        _ => Err(problems),
    }
}

/// The answer for a page that gave no ideas.
fn refusal(e: IdeasError, max_bytes: u64) -> ApiError {
    let unprocessable = |code, message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
    match e {
        IdeasError::Fetch(FetchError::Refused { message, hops: 0 }) => {
            unprocessable(codes::PAGE_ADDRESS_REFUSED, format!("the page may not be read: {message}"))
        }
        IdeasError::Fetch(FetchError::Refused { message, hops }) => unprocessable(
            codes::PAGE_REDIRECT_REFUSED,
            format!("redirect {hops} of the page leads where it may not be read: {message}"),
        ),
        IdeasError::Fetch(FetchError::TooManyRedirects { max }) => unprocessable(
            codes::PAGE_REDIRECT_REFUSED,
            format!("the page redirected more than {max} times (ideas.max_redirects)"),
        ),
        IdeasError::Fetch(FetchError::TooLarge { .. }) => unprocessable(
            codes::PAGE_TOO_LARGE,
            format!("the page is larger than {} KiB (ideas.max_page_kb)", max_bytes / 1024),
        ),
        IdeasError::Fetch(FetchError::TimedOut { after }) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            codes::PAGE_TOO_SLOW,
            format!("the page was not read within {} s (ideas.fetch_timeout_secs)", after.as_secs()),
        ),
        IdeasError::Fetch(FetchError::Failed(m)) => {
            ApiError::new(StatusCode::BAD_GATEWAY, codes::PAGE_UNREACHABLE, format!("the page could not be read: {m}"))
        }
        IdeasError::NoText(m) => unprocessable(codes::PAGE_WITHOUT_TEXT, m),
        IdeasError::Writer { error, request_key: true }
            if error.code == codes::INVALID_API_KEY || error.code == codes::INSUFFICIENT_CREDITS =>
        {
            unprocessable(
                codes::LLM_KEY_REFUSED,
                format!("the LLM refused the key sent with the request ({}); it was not kept", error.code),
            )
        }
        IdeasError::Writer { error, .. } => {
            tracing::warn!(provider = error.provider, code = error.code.as_str(), "the script writer gave no ideas");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                codes::IDEAS_WRITER_FAILED,
                format!("the script writer gave no ideas: {} ({})", error.message, error.code),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> IdeasRequest {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn fields_are_checked_and_the_key_never_quoted() {
        assert_eq!(check(&req(r#"{"url": "https://example.com/a?b=c"}"#), 10).unwrap().1, DEFAULT_COUNT);
        assert_eq!(
            check(&req(r#"{"url": "https://example.com/"}"#), 3).unwrap().1,
            3,
            "the default fits a lower maximum"
        );
        let bad =
            check(&req(r#"{"url": "file:///etc/passwd", "count": 11, "llm_key": "sk or secret"}"#), 10).unwrap_err();
        let codes: Vec<&str> = bad.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["page_url_invalid", "idea_count_out_of_range", "llm_key_invalid"]);
        assert!(bad.iter().all(|d| !d.message.contains("secret")), "{bad:?}");
        assert_eq!(check(&req(r#"{"url": "http://", "count": 0}"#), 10).unwrap_err().len(), 2);
    }

    #[test]
    fn a_key_is_hidden_in_debug_output() {
        let r = req(r#"{"url": "https://example.com", "llm_key": "sk-or-v1-do-not-show"}"#);
        assert!(!format!("{r:?}").contains("do-not-show"));
    }

    #[test]
    fn a_shape_problem_quotes_no_value() {
        let e = serde_json::from_str::<IdeasRequest>(r#"{"url": "https://a.b", "llm_key": 5, "count": "sk-secret"}"#)
            .unwrap_err();
        assert!(!shape_problem(&e).contains("sk-secret"), "{}", shape_problem(&e));
        let e = serde_json::from_str::<IdeasRequest>(r#"{"url": "https://a.b", "count": "sk-secret"}"#).unwrap_err();
        let m = shape_problem(&e);
        assert!(!m.contains("sk-secret") && m.contains("invalid type"), "{m}");
        let e = serde_json::from_str::<IdeasRequest>(r#"{"uri": "https://a.b"}"#).unwrap_err();
        assert!(shape_problem(&e).starts_with("unknown field `uri`"), "{}", shape_problem(&e));
    }
}
