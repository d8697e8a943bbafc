//! The studio: web pages where a content team writes, watches, reviews and
//! ships its videos, served by the API process at `/`, same origin as `/v1`.
//!
//! - [`pages`]: the layout and one body per page (compiled in); the page
//!   script (`assets/studio.js`, no framework, no build step) fills them from
//!   the `/v1` API and follows jobs live over `GET /v1/events`.
//! - [`session`]: with `auth.require_keys`, an API key pasted once becomes a
//!   server-side session behind an HttpOnly, SameSite=Strict cookie.
//! - [`links`]: signed, expiring reviewer links to one job's review page.
//!
//! The API's own checks stand in front of every page too (Host, Origin and
//! `Sec-Fetch-Site`, [`crate::api::browser`]); scopes decide what each page
//! shows and allows, through the same API routes.

pub mod links;
pub mod pages;
pub mod reviewer;
pub mod session;

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::OnceCell;

use crate::api::ApiState;
use crate::crypto::random_token;
use crate::settings::Settings;
use crate::store::records::{SessionStore, StoreError};

/// What the studio needs from the settings.
#[derive(Debug)]
pub struct StudioConfig {
    /// `auth.session_hours`.
    pub session_ttl: Duration,
    /// `auth.review_link_hours`.
    pub link_ttl: Duration,
    /// Whether cookies are marked `Secure` (`server.url` is https).
    pub secure_cookies: bool,
    /// `server.url` without a trailing slash, for the links the studio hands out.
    pub public_url: String,
    link_secret: OnceCell<Vec<u8>>,
    /// Each caption preset's still, drawn on first use.
    pub style_previews: crate::api::styles::StylePreviews,
}

impl StudioConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            session_ttl: settings.auth.session_ttl(),
            link_ttl: settings.auth.review_link_ttl(),
            secure_cookies: settings.server.url.starts_with("https://"),
            public_url: settings.server.url.trim_end_matches('/').to_string(),
            link_secret: OnceCell::new(),
            style_previews: Default::default(),
        }
    }

    /// The key that signs reviewer links, shared by every API process
    /// through the record store (made by whichever asks first).
    pub async fn link_secret(&self, records: &dyn SessionStore) -> Result<&[u8], StoreError> {
        let secret = self
            .link_secret
            .get_or_try_init(|| async {
                let value = records.shared_secret("review_links", &random_token(32)).await?;
                Ok::<_, StoreError>(value.into_bytes())
            })
            .await?;
        Ok(secret.as_slice())
    }
}

/// The studio's routes: pages, sign-in, reviewer links and assets. Pages
/// decide on sign-in themselves (they answer with the sign-in page, not a
/// JSON 401), so these are merged outside the API's key guard.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(pages::new_video))
        .route("/ideas", get(pages::ideas))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{id}", get(pages::job))
        .route("/review", get(pages::review))
        .route("/batches", get(pages::batches))
        .route("/accounts", get(pages::accounts))
        .route("/keys", get(pages::keys))
        .route("/system", get(pages::system))
        .route("/performance", get(pages::performance))
        .route("/signin", get(session::signin_page).post(session::signin))
        .route("/signout", post(session::signout))
        .route("/r/{token}", get(reviewer::page))
        .route("/r/{token}/job", get(reviewer::job))
        .route("/r/{token}/video", get(reviewer::video))
        .route("/r/{token}/creator", get(reviewer::creator))
        .route("/r/{token}/approve", post(reviewer::approve))
        .route("/r/{token}/reject", post(reviewer::reject))
        .route(
            "/assets/studio.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("assets/studio.css")) }),
        )
        .route(
            "/assets/studio.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/studio.js")) }),
        )
}

/// An embedded asset. Cached for a short while only: a new binary may bring a new one.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body)
        .into_response()
}
