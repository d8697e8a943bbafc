//! TikTok Login Kit (OAuth v2), Content Posting (inbox drafts and Direct
//! Posts: `video/init` checks `post_info` against the creator, the app's
//! audit and the daily cap, then TikTok's moderation takes
//! `moderation_delay_ms` before `PUBLISH_COMPLETE` and the post id) and the Display
//! API's user info (spec sections 1, 2 and 3), stateful: codes are single use,
//! refresh tokens rotate, access tokens expire, init and status are rate
//! limited per token, drafts are capped per user, and the chunked PUT enforces
//! the Media Transfer Guide byte for byte. creator_info/query answers per
//! creator what [`TikTokState::set_creator`] said (or [`Creator::default`]),
//! only to a token granted `video.publish`, 20 times a minute per token. Knobs on [`TikTokState`] make it
//! expire, fail or slow down on demand; counters tell what it received.
//!
//! After delivery: [`TikTokState::post_publicly`] plays the creator posting a
//! draft publicly (status/fetch then answers `PUBLISH_COMPLETE` with
//! `publicaly_available_post_id`), [`TikTokState::set_counts`] sets a video's
//! counts, and `video/query` (scope `video.list`, `fields` required, at most
//! 20 ids, only the caller's videos, a per-token per-minute limit) reads them;
//! `user/info` answers [`TikTokState::set_user_stats`]'s totals to a token
//! granted `user.info.stats`.

// Helpers return the finished error response as their `Err`.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::serve;

pub const CLIENT_KEY: &str = "tt-emulated-client-key";
pub const CLIENT_SECRET: &str = "tt-emulated-client-secret-0123456789";
/// The user the authorize page approves unless `state.user` says otherwise.
pub const OPEN_ID: &str = "open-id-creator-1";
pub const DISPLAY_NAME: &str = "Creator One";

/// Lifetime of an authorization code.
const CODE_TTL: Duration = Duration::from_secs(5 * 60);
const REFRESH_EXPIRES_IN: u64 = 31_536_000;
const RATE_WINDOW: Duration = Duration::from_secs(60);
const PENDING_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

// Media Transfer Guide bounds (the safe reading of the ambiguous "MB").
const MIN_CHUNK: u64 = 5 * 1024 * 1024;
const MAX_CHUNK: u64 = 64_000_000;
const MAX_LAST_CHUNK: u64 = 128_000_000;
const MAX_CHUNKS: u64 = 1000;
const MAX_VIDEO: u64 = 4 * 1024 * 1024 * 1024;

const BASIC_FIELDS: [&str; 4] = ["open_id", "union_id", "avatar_url", "display_name"];
const PROFILE_FIELDS: [&str; 3] = ["bio_description", "profile_deep_link", "is_verified"];
const STATS_FIELDS: [&str; 4] = ["follower_count", "following_count", "likes_count", "video_count"];

/// A video's counts, as the Display API tells them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub views: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
}

/// An account's totals, as `user/info` tells them with `user.info.stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserStats {
    pub followers: u64,
    pub following: u64,
    pub likes: u64,
    pub videos: u64,
}

/// A public video of a creator.
#[derive(Debug, Clone)]
struct Video {
    open_id: String,
    create_time: i64,
    counts: Counts,
}

/// The fields video/query knows.
const VIDEO_FIELDS: [&str; 15] = [
    "id",
    "create_time",
    "cover_image_url",
    "share_url",
    "video_description",
    "duration",
    "height",
    "width",
    "title",
    "embed_html",
    "embed_link",
    "like_count",
    "comment_count",
    "share_count",
    "view_count",
];

/// A completed upload that reached the creator's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub publish_id: String,
    pub open_id: String,
    /// Lowercase hex SHA-256 of every byte received.
    pub sha256: String,
    pub bytes: u64,
}

/// A Direct Post that finished uploading: what `video/init` was given and
/// what arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectPost {
    pub publish_id: String,
    pub open_id: String,
    pub post_info: Value,
    /// Lowercase hex SHA-256 of every byte received.
    pub sha256: String,
    pub bytes: u64,
    /// The public post id status/fetch gives after moderation (none for SELF_ONLY).
    pub post_id: String,
}

/// A photo post TikTok pulled: what `content/init` was given and the
/// SHA-256 of each image it downloaded.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoPost {
    pub publish_id: String,
    pub open_id: String,
    /// `MEDIA_UPLOAD` (inbox) or `DIRECT_POST`.
    pub post_mode: String,
    pub post_info: Value,
    pub urls: Vec<String>,
    /// Lowercase hex SHA-256 of each downloaded image, in order (filled once downloaded).
    pub images: Vec<String>,
    /// Set when a download failed (status then says FAILED photo_pull_failed).
    pub pull_failed: bool,
}

/// What creator_info/query tells about one creator.
#[derive(Debug, Clone, PartialEq)]
pub struct Creator {
    pub max_video_post_duration_sec: u32,
    pub privacy_level_options: Vec<String>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
}

impl Default for Creator {
    /// A public account with every interaction allowed and 10 minutes to post.
    fn default() -> Self {
        Self {
            max_video_post_duration_sec: 600,
            privacy_level_options: ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
                .map(String::from)
                .to_vec(),
            comment_disabled: false,
            duet_disabled: false,
            stitch_disabled: false,
        }
    }
}

pub struct TikTokState {
    pub authorize_calls: AtomicU32,
    /// Successful authorization_code exchanges.
    pub code_grants: AtomicU32,
    /// Every refresh_token grant request, successful or not.
    pub refresh_calls: AtomicU32,
    pub revoke_calls: AtomicU32,
    pub user_info_calls: AtomicU32,
    /// Every init request, successful or not.
    pub init_calls: AtomicU32,
    pub put_calls: AtomicU32,
    pub status_calls: AtomicU32,
    /// Every creator_info/query request, successful or not.
    pub creator_info_calls: AtomicU32,
    /// creator_info/query calls per access token in a sliding 60 s window.
    pub creator_info_per_minute: AtomicU32,
    /// 429s given.
    pub rate_limited: AtomicU32,
    /// Every video/query request, successful or not.
    pub video_query_calls: AtomicU32,
    /// video/query calls per access token in a sliding 60 s window.
    pub video_query_per_minute: AtomicU32,
    /// The number of ids of every video/query call with an id list, in order (refused ones too).
    pub video_query_batches: Mutex<Vec<usize>>,
    /// `expires_in` of access tokens issued from now on.
    pub access_ttl_secs: AtomicU64,
    /// How long an upload_url stays usable after init.
    pub upload_url_ttl_ms: AtomicU64,
    /// Inits per access token in a sliding 60 s window.
    pub init_per_minute: AtomicU32,
    /// Status fetches per access token in a sliding 60 s window.
    pub status_per_minute: AtomicU32,
    /// Successful inits per open_id within 24 h before 403 spam_risk_too_many_pending_share.
    pub pending_cap: AtomicU32,
    /// Each PUT sleeps this long before it is handled (a test can kill the uploader mid-PUT).
    pub put_delay_ms: AtomicU64,
    /// The next init is carried out (its upload exists), then answered this
    /// late: a client with a shorter timeout never learns its publish_id.
    pub slow_next_init_ms: AtomicU64,
    /// The next N PUTs answer 500 without storing anything.
    pub fail_puts: AtomicU32,
    /// After the last byte, status says PROCESSING_UPLOAD this long, then SEND_TO_USER_INBOX.
    pub inbox_delay_ms: AtomicU64,
    /// The next upload to complete ends FAILED with this fail_reason (no draft kept).
    pub fail_next_publish: Mutex<Option<String>>,
    /// The next Content Posting / Display API call (after auth) answers HTTP 200 with this error.code.
    pub error_on_200: Mutex<Option<String>>,
    /// (open_id, display_name) the authorize page approves.
    pub user: Mutex<(String, String)>,
    /// Status answers leave out `uploaded_bytes` (the field is optional in the
    /// docs), so a resuming client has to learn TikTok's progress from a 416.
    pub status_without_progress: std::sync::atomic::AtomicBool,
    /// Every Direct Post init request (`video/init`), successful or not.
    pub direct_init_calls: AtomicU32,
    /// A Direct Post's moderation: after its last byte, status says
    /// PROCESSING_UPLOAD this long, then PUBLISH_COMPLETE with the post id.
    pub moderation_delay_ms: AtomicU64,
    /// Whether TikTok audited the app; an unaudited one may only post SELF_ONLY.
    pub audited: std::sync::atomic::AtomicBool,
    /// Direct Posts per creator in 24 h before 403 spam_risk_too_many_posts.
    pub direct_post_cap: AtomicU32,
    /// Every photo post init request (`content/init`), successful or not.
    pub photo_init_calls: AtomicU32,
    /// URL prefixes verified for the app (TikTok's "URL properties"): photo
    /// URLs must start with one of them.
    pub verified_prefixes: Mutex<Vec<String>>,
    /// Where a verified host is really served in a test (host → base URL,
    /// e.g. `photos.clipforge.test` → `http://127.0.0.1:PORT`): a CDN in
    /// front of the app. The URL's path is kept.
    pub resolve: Mutex<HashMap<String, String>>,
    base: Mutex<String>,
    seq: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    /// open_id → display_name of everyone who ever logged in.
    users: HashMap<String, String>,
    init_log: HashMap<String, VecDeque<Instant>>,
    status_log: HashMap<String, VecDeque<Instant>>,
    creator_info_log: HashMap<String, VecDeque<Instant>>,
    video_query_log: HashMap<String, VecDeque<Instant>>,
    /// post id → public video.
    videos: HashMap<String, Video>,
    /// publish_id → the post id the creator's public post got.
    posted: HashMap<String, String>,
    /// open_id → totals.
    user_stats: HashMap<String, UserStats>,
    /// open_id → what creator_info/query says (default: [`Creator::default`]).
    creators: HashMap<String, Creator>,
    /// open_id → time of every successful init.
    inits: HashMap<String, Vec<Instant>>,
    /// upload_id → upload.
    uploads: HashMap<String, Upload>,
    /// publish_id → upload_id.
    publishes: HashMap<String, String>,
    drafts: Vec<Draft>,
    direct_posts: Vec<DirectPost>,
    /// publish_id → photo post.
    photo_posts: HashMap<String, PhotoPost>,
    /// open_id → time of every successful Direct Post init.
    direct_inits: HashMap<String, Vec<Instant>>,
    secrets: Vec<String>,
}

struct CodeGrant {
    redirect_uri: String,
    challenge: Option<String>,
    scopes: Vec<String>,
    open_id: String,
    display_name: String,
    issued: Instant,
    used: bool,
}

struct AccessToken {
    open_id: String,
    scopes: Vec<String>,
    expires: Instant,
    revoked: bool,
}

struct RefreshToken {
    open_id: String,
    scopes: Vec<String>,
    valid: bool,
}

struct Upload {
    publish_id: String,
    open_id: String,
    token: String,
    issued: Instant,
    /// Set by [`TikTokState::expire_upload_urls`]: the URL answers 403 from now on.
    expired: bool,
    video_size: u64,
    chunk_size: u64,
    total_chunks: u64,
    received: u64,
    /// Hash of the bytes so far; the bytes themselves are not kept.
    hasher: Sha256,
    /// Set on the last byte: when, the hash, and the fail_reason if it is to fail.
    completed: Option<(Instant, String, Option<String>)>,
    /// A Direct Post's `post_info` (None: an inbox draft).
    post_info: Option<Value>,
    /// A Direct Post's public id, given after moderation.
    post_id: String,
}

pub struct TikTok {
    pub url: String,
    pub state: Arc<TikTokState>,
}

impl TikTok {
    pub async fn start() -> TikTok {
        let state = Arc::new(TikTokState::new());
        let router = axum::Router::new()
            .route("/v2/auth/authorize/", get(authorize))
            .route("/v2/oauth/token/", post(token))
            .route("/v2/oauth/revoke/", post(revoke))
            .route("/v2/user/info/", get(user_info))
            .route("/v2/post/publish/inbox/video/init/", post(init))
            .route("/v2/post/publish/video/init/", post(direct_init))
            .route("/v2/post/publish/content/init/", post(content_init))
            .route("/v2/post/publish/status/fetch/", post(status))
            .route("/v2/post/publish/creator_info/query/", post(creator_info))
            .route("/v2/video/query/", post(video_query))
            .route("/upload/", put(upload))
            // A last chunk may reach 128 MB.
            .layer(DefaultBodyLimit::max(MAX_LAST_CHUNK as usize + 1024))
            .with_state(state.clone());
        let url = serve(router).await;
        *state.base.lock().unwrap() = url.clone();
        TikTok { url, state }
    }
}

impl TikTokState {
    fn new() -> Self {
        Self {
            authorize_calls: AtomicU32::new(0),
            code_grants: AtomicU32::new(0),
            refresh_calls: AtomicU32::new(0),
            revoke_calls: AtomicU32::new(0),
            user_info_calls: AtomicU32::new(0),
            init_calls: AtomicU32::new(0),
            put_calls: AtomicU32::new(0),
            status_calls: AtomicU32::new(0),
            creator_info_calls: AtomicU32::new(0),
            creator_info_per_minute: AtomicU32::new(20),
            rate_limited: AtomicU32::new(0),
            video_query_calls: AtomicU32::new(0),
            video_query_per_minute: AtomicU32::new(600),
            video_query_batches: Mutex::new(Vec::new()),
            access_ttl_secs: AtomicU64::new(86_400),
            upload_url_ttl_ms: AtomicU64::new(3_600_000),
            init_per_minute: AtomicU32::new(6),
            status_per_minute: AtomicU32::new(30),
            pending_cap: AtomicU32::new(5),
            put_delay_ms: AtomicU64::new(0),
            slow_next_init_ms: AtomicU64::new(0),
            status_without_progress: std::sync::atomic::AtomicBool::new(false),
            direct_init_calls: AtomicU32::new(0),
            moderation_delay_ms: AtomicU64::new(300),
            audited: std::sync::atomic::AtomicBool::new(true),
            direct_post_cap: AtomicU32::new(15),
            photo_init_calls: AtomicU32::new(0),
            verified_prefixes: Mutex::new(Vec::new()),
            resolve: Mutex::new(HashMap::new()),
            fail_puts: AtomicU32::new(0),
            inbox_delay_ms: AtomicU64::new(200),
            fail_next_publish: Mutex::new(None),
            error_on_200: Mutex::new(None),
            user: Mutex::new((OPEN_ID.to_string(), DISPLAY_NAME.to_string())),
            base: Mutex::new(String::new()),
            seq: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// What creator_info/query says about `open_id` from now on.
    pub fn set_creator(&self, open_id: &str, creator: Creator) {
        self.inner.lock().unwrap().creators.insert(open_id.to_string(), creator);
    }

    /// The creator posts the draft of `publish_id` publicly: from now on
    /// status/fetch answers PUBLISH_COMPLETE naming `post_id`, and video/query
    /// knows the video (counts 0 until [`TikTokState::set_counts`]).
    pub fn post_publicly(&self, publish_id: &str, post_id: &str) {
        let mut inner = self.inner.lock().unwrap();
        let open_id = {
            let upload = inner.publishes.get(publish_id).and_then(|id| inner.uploads.get(id));
            upload.expect("post_publicly: no such publish_id").open_id.clone()
        };
        inner.posted.insert(publish_id.to_string(), post_id.to_string());
        let create_time = chrono::Utc::now().timestamp();
        inner.videos.insert(post_id.to_string(), Video { open_id, create_time, counts: Counts::default() });
    }

    /// A public video of `open_id` that no upload of this emulator made (a
    /// Direct Post, or one posted in the app).
    pub fn add_video(&self, open_id: &str, post_id: &str, counts: Counts) {
        let create_time = chrono::Utc::now().timestamp();
        self.inner
            .lock()
            .unwrap()
            .videos
            .insert(post_id.to_string(), Video { open_id: open_id.into(), create_time, counts });
    }

    /// What video/query says of `post_id` from now on.
    pub fn set_counts(&self, post_id: &str, counts: Counts) {
        self.inner.lock().unwrap().videos.get_mut(post_id).expect("set_counts: no such video").counts = counts;
    }

    /// What user/info says of `open_id`'s totals from now on.
    pub fn set_user_stats(&self, open_id: &str, stats: UserStats) {
        self.inner.lock().unwrap().user_stats.insert(open_id.to_string(), stats);
    }

    /// Completed uploads, in order of completion.
    pub fn drafts(&self) -> Vec<Draft> {
        self.inner.lock().unwrap().drafts.clone()
    }

    /// Photo posts accepted by content/init, in no particular order.
    pub fn photo_posts(&self) -> Vec<PhotoPost> {
        self.inner.lock().unwrap().photo_posts.values().cloned().collect()
    }

    /// Direct Posts whose last byte arrived, in order.
    pub fn direct_posts(&self) -> Vec<DirectPost> {
        self.inner.lock().unwrap().direct_posts.clone()
    }

    pub fn drafts_for(&self, open_id: &str) -> Vec<Draft> {
        self.drafts().into_iter().filter(|d| d.open_id == open_id).collect()
    }

    /// Every access token issued so far is now expired.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for t in self.inner.lock().unwrap().access.values_mut() {
            t.expires = t.expires.min(now);
        }
    }

    /// Every refresh token issued so far now gives invalid_grant.
    pub fn revoke_refresh_tokens(&self) {
        for t in self.inner.lock().unwrap().refresh.values_mut() {
            t.valid = false;
        }
    }

    /// The one valid refresh token of that user.
    pub fn current_refresh_token(&self, open_id: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap();
        inner.refresh.iter().find(|(_, t)| t.valid && t.open_id == open_id).map(|(k, _)| k.clone())
    }

    /// Every access token, refresh token, authorization code and upload_token
    /// ever issued, plus CLIENT_SECRET: none of them may show up in logs.
    pub fn secrets(&self) -> Vec<String> {
        let mut all = vec![CLIENT_SECRET.to_string()];
        all.extend(self.inner.lock().unwrap().secrets.iter().cloned());
        all
    }

    /// Successful inits of that user.
    /// Forgets every unfinished upload, as TikTok drops abandoned tasks:
    /// status then answers `invalid_publish_id` for them.
    pub fn forget_unfinished_uploads(&self) {
        let mut inner = self.inner.lock().unwrap();
        let gone: Vec<String> =
            inner.uploads.iter().filter(|(_, up)| up.completed.is_none()).map(|(id, _)| id.clone()).collect();
        for id in gone {
            if let Some(up) = inner.uploads.remove(&id) {
                inner.publishes.remove(&up.publish_id);
            }
        }
    }

    /// Every upload URL issued so far has passed its hour: PUTs get 403.
    pub fn expire_upload_urls(&self) {
        for up in self.inner.lock().unwrap().uploads.values_mut() {
            up.expired = true;
        }
    }

    /// The user's pending shares, the uploads TikTok holds against the cap:
    /// those initialised within 24 h that reached the inbox (the emulator's
    /// creators never post), and those still being uploaded. An upload whose
    /// URL expired before its last byte, one that failed and one TikTok
    /// dropped hold nothing (UNCONFIRMED in the docs, which say only "pending
    /// shares"; this is how issue 11 reads them).
    pub fn pending_shares(&self, open_id: &str) -> usize {
        let ttl = Duration::from_millis(self.upload_url_ttl_ms.load(Ordering::SeqCst));
        let inner = self.inner.lock().unwrap();
        inner
            .uploads
            .values()
            .filter(|up| up.open_id == open_id && up.post_info.is_none() && up.issued.elapsed() < PENDING_WINDOW)
            .filter(|up| match &up.completed {
                Some((_, _, fail_reason)) => fail_reason.is_none(),
                None => !up.expired && up.issued.elapsed() < ttl,
            })
            .count()
    }

    pub fn inits_for(&self, open_id: &str) -> u32 {
        self.inner.lock().unwrap().inits.get(open_id).map_or(0, |v| v.len() as u32)
    }

    /// A random-looking 40-hex-digit value, unique within the process.
    fn random(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let mut h = Sha256::new();
        h.update(uuid::Uuid::now_v7().as_bytes());
        h.update(n.to_le_bytes());
        h.update(format!("{:?}", Instant::now()).as_bytes());
        hex::encode(h.finalize())[..40].to_string()
    }

    /// A new secret of the given kind, remembered for `secrets()`.
    fn secret(&self, prefix: &str) -> String {
        let s = format!("{prefix}{}", self.random());
        self.inner.lock().unwrap().secrets.push(s.clone());
        s
    }

    fn log_id(&self) -> String {
        format!("{}{}", chrono::Utc::now().format("%Y%m%d%H%M%S"), &self.random()[..18].to_uppercase())
    }

    /// Issues an access token and a refresh token; the user's older refresh
    /// tokens stop working (one valid refresh token per user).
    fn issue_tokens(&self, open_id: &str, scopes: &[String]) -> Value {
        let access = self.secret("act.");
        let refresh = self.secret("rft.");
        let ttl = self.access_ttl_secs.load(Ordering::SeqCst);
        let mut inner = self.inner.lock().unwrap();
        for t in inner.refresh.values_mut().filter(|t| t.open_id == open_id) {
            t.valid = false;
        }
        inner.refresh.insert(
            refresh.clone(),
            RefreshToken { open_id: open_id.to_string(), scopes: scopes.to_vec(), valid: true },
        );
        inner.access.insert(
            access.clone(),
            AccessToken {
                open_id: open_id.to_string(),
                scopes: scopes.to_vec(),
                expires: Instant::now() + Duration::from_secs(ttl),
                revoked: false,
            },
        );
        json!({
            "access_token": access,
            "expires_in": ttl,
            "open_id": open_id,
            "refresh_token": refresh,
            "refresh_expires_in": REFRESH_EXPIRES_IN,
            "scope": scopes.join(","),
            "token_type": "Bearer",
        })
    }
}

// ---------------------------------------------------------------- responses

/// The v2 API envelope with `error.code == "ok"`.
fn ok(state: &TikTokState, data: Value) -> Response {
    Json(json!({ "data": data, "error": { "code": "ok", "message": "", "log_id": state.log_id() } })).into_response()
}

/// The v2 API envelope carrying an error, with empty `data`.
fn api_error(state: &TikTokState, status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "data": {}, "error": { "code": code, "message": message, "log_id": state.log_id() } });
    (status, Json(body)).into_response()
}

/// The flat OAuth error shape.
fn oauth_error(state: &TikTokState, status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description, "log_id": state.log_id() });
    (status, Json(body)).into_response()
}

/// invalid_grant arrives with HTTP 200 (the unconfirmed reading): clients
/// must look at the body, not the status.
fn invalid_grant(state: &TikTokState, description: &str) -> Response {
    oauth_error(state, StatusCode::OK, "invalid_grant", description)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------- auth

/// The caller of a Content Posting / Display API endpoint.
struct Caller {
    token: String,
    open_id: String,
    scopes: Vec<String>,
}

/// Checks the bearer token and that it holds one of `scopes`, then fires
/// `error_on_200` if it is set.
fn bearer(state: &TikTokState, headers: &HeaderMap, scopes: &[&str]) -> Result<Caller, Response> {
    let invalid = || {
        api_error(
            state,
            StatusCode::UNAUTHORIZED,
            "access_token_invalid",
            "The access token is invalid or not found in the request.",
        )
    };
    let token =
        header_str(headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(invalid)?;
    let caller = {
        let inner = state.inner.lock().unwrap();
        let t = inner.access.get(token).ok_or_else(invalid)?;
        if t.revoked || Instant::now() >= t.expires {
            return Err(invalid());
        }
        Caller { token: token.to_string(), open_id: t.open_id.clone(), scopes: t.scopes.clone() }
    };
    if !scopes.iter().any(|s| caller.scopes.iter().any(|c| c == s)) {
        let message =
            format!("The user did not authorize the scope required for this endpoint: {}", scopes.join(" or "));
        return Err(api_error(state, StatusCode::UNAUTHORIZED, "scope_not_authorized", &message));
    }
    if let Some(code) = state.error_on_200.lock().unwrap().take() {
        return Err(api_error(state, StatusCode::OK, &code, "Injected by the emulator's error_on_200 knob."));
    }
    Ok(caller)
}

/// Sliding 60 s window of accepted requests per token; a refused one does
/// not take a slot.
fn rate_limit(
    state: &TikTokState,
    log: impl FnOnce(&mut Inner) -> &mut HashMap<String, VecDeque<Instant>>,
    token: &str,
    limit: u32,
) -> Result<(), Response> {
    let now = Instant::now();
    let allowed = {
        let mut inner = state.inner.lock().unwrap();
        let times = log(&mut inner).entry(token.to_string()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW) {
            times.pop_front();
        }
        let allowed = times.len() < limit as usize;
        if allowed {
            times.push_back(now);
        }
        allowed
    };
    if allowed {
        return Ok(());
    }
    state.rate_limited.fetch_add(1, Ordering::SeqCst);
    Err(api_error(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        "API rate limit was exceeded, please try again later.",
    ))
}

// ---------------------------------------------------------------- OAuth

async fn authorize(State(state): State<Arc<TikTokState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    state.authorize_calls.fetch_add(1, Ordering::SeqCst);
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if get("client_key") != Some(CLIENT_KEY) {
        return text(StatusCode::BAD_REQUEST, "client_key is missing or unknown");
    }
    if get("response_type") != Some("code") {
        return text(StatusCode::BAD_REQUEST, "response_type must be code");
    }
    let scopes: Vec<String> =
        get("scope").unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if scopes.is_empty() {
        return text(StatusCode::BAD_REQUEST, "scope is required (comma-separated)");
    }
    let Some(redirect_uri) = get("redirect_uri") else {
        return text(StatusCode::BAD_REQUEST, "redirect_uri is required");
    };
    let Some(csrf) = get("state") else {
        return text(StatusCode::BAD_REQUEST, "state is required");
    };
    let challenge = get("code_challenge").map(String::from);
    if let Some(c) = &challenge {
        if get("code_challenge_method") != Some("S256") {
            return text(StatusCode::BAD_REQUEST, "code_challenge_method must be S256");
        }
        if c.len() != 64 || !c.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return text(
                StatusCode::BAD_REQUEST,
                "code_challenge must be the lowercase hex SHA-256 of the code_verifier (64 hex characters)",
            );
        }
    } else if get("code_challenge_method").is_some() {
        return text(StatusCode::BAD_REQUEST, "code_challenge_method given without code_challenge");
    }
    let (open_id, display_name) = state.user.lock().unwrap().clone();
    let code = state.secret("");
    state.inner.lock().unwrap().codes.insert(
        code.clone(),
        CodeGrant {
            redirect_uri: redirect_uri.to_string(),
            challenge,
            scopes: scopes.clone(),
            open_id,
            display_name,
            issued: Instant::now(),
            used: false,
        },
    );
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!(
        "{redirect_uri}{sep}code={}&scopes={}&state={}",
        encode(&code),
        encode(&scopes.join(",")),
        encode(csrf)
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// Decodes an application/x-www-form-urlencoded body (`+` is a space).
fn decode_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &[u8]| {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    match std::str::from_utf8(&s[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (decode(&pair[..eq]), decode(&pair[eq + 1..])),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// The form, or the flat invalid_request error when the body is not form-urlencoded.
fn form(state: &TikTokState, headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, Response> {
    if !header_str(headers, header::CONTENT_TYPE).is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        return Err(oauth_error(
            state,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    Ok(decode_form(body))
}

/// Checks client_key and client_secret.
fn client(state: &TikTokState, f: &HashMap<String, String>) -> Result<(), Response> {
    let (Some(key), Some(secret)) = (f.get("client_key"), f.get("client_secret")) else {
        return Err(oauth_error(
            state,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_key and client_secret are required",
        ));
    };
    if key != CLIENT_KEY || secret != CLIENT_SECRET {
        return Err(oauth_error(state, StatusCode::UNAUTHORIZED, "invalid_client", "Client key or secret is invalid"));
    }
    Ok(())
}

async fn token(State(state): State<Arc<TikTokState>>, headers: HeaderMap, body: Bytes) -> Response {
    // Counted before any check, whatever the body's encoding.
    let grant_type = decode_form(&body).remove("grant_type").or_else(|| {
        let json = serde_json::from_slice::<Value>(&body).ok()?;
        json["grant_type"].as_str().map(String::from)
    });
    let grant_type = grant_type.as_deref();
    if grant_type == Some("refresh_token") {
        state.refresh_calls.fetch_add(1, Ordering::SeqCst);
    }
    let f = match form(&state, &headers, &body) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if let Err(resp) = client(&state, &f) {
        return resp;
    }
    let field = |k: &str| f.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match grant_type {
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri)) = (field("code"), field("redirect_uri")) else {
                return oauth_error(
                    &state,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code and redirect_uri are required",
                );
            };
            let (open_id, display_name, scopes) = {
                let mut inner = state.inner.lock().unwrap();
                let Some(grant) = inner.codes.get_mut(code) else {
                    return invalid_grant(&state, "Authorization code is invalid");
                };
                if grant.used {
                    return invalid_grant(&state, "Authorization code has been used");
                }
                if grant.issued.elapsed() >= CODE_TTL {
                    return invalid_grant(&state, "Authorization code is expired");
                }
                if grant.redirect_uri != redirect_uri {
                    return invalid_grant(&state, "redirect_uri does not match the one used to authorize");
                }
                if let Some(challenge) = &grant.challenge {
                    let verifier = field("code_verifier").unwrap_or("");
                    let well_formed = (43..=128).contains(&verifier.len())
                        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                    if !well_formed || hex::encode(Sha256::digest(verifier.as_bytes())) != *challenge {
                        return invalid_grant(&state, "Code verifier or code challenge is invalid");
                    }
                }
                grant.used = true;
                (grant.open_id.clone(), grant.display_name.clone(), grant.scopes.clone())
            };
            state.inner.lock().unwrap().users.insert(open_id.clone(), display_name);
            state.code_grants.fetch_add(1, Ordering::SeqCst);
            Json(state.issue_tokens(&open_id, &scopes)).into_response()
        }
        Some("refresh_token") => {
            let Some(refresh) = field("refresh_token") else {
                return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
            };
            let (open_id, scopes) = {
                let mut inner = state.inner.lock().unwrap();
                match inner.refresh.get_mut(refresh) {
                    Some(t) if t.valid => {
                        t.valid = false;
                        (t.open_id.clone(), t.scopes.clone())
                    }
                    _ => return invalid_grant(&state, "Refresh token is invalid or expired"),
                }
            };
            Json(state.issue_tokens(&open_id, &scopes)).into_response()
        }
        None => oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
        Some(other) => oauth_error(
            &state,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type {other} is not supported"),
        ),
    }
}

/// Revokes an access token and every refresh token of its user.
async fn revoke(State(state): State<Arc<TikTokState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.revoke_calls.fetch_add(1, Ordering::SeqCst);
    let f = match form(&state, &headers, &body) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if let Err(resp) = client(&state, &f) {
        return resp;
    }
    let Some(token) = f.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let mut inner = state.inner.lock().unwrap();
    if let Some(t) = inner.access.get_mut(token) {
        t.revoked = true;
        let open_id = t.open_id.clone();
        for r in inner.refresh.values_mut().filter(|r| r.open_id == open_id) {
            r.valid = false;
        }
    }
    Json(json!({})).into_response()
}

// ---------------------------------------------------------------- Display API

async fn user_info(
    State(state): State<Arc<TikTokState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    state.user_info_calls.fetch_add(1, Ordering::SeqCst);
    let caller = match bearer(&state, &headers, &["user.info.basic"]) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let fields: Vec<&str> =
        q.get("fields").map(|f| f.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    if fields.is_empty() {
        return api_error(&state, StatusCode::BAD_REQUEST, "invalid_params", "fields is required");
    }
    let has = |s: &str| caller.scopes.iter().any(|c| c == s);
    let display_name = state.inner.lock().unwrap().users.get(&caller.open_id).cloned().unwrap_or_default();
    let mut user = Map::new();
    for field in fields {
        let value = if BASIC_FIELDS.contains(&field) {
            match field {
                "open_id" => json!(caller.open_id),
                "union_id" => json!(format!("union-{}", caller.open_id)),
                "avatar_url" => json!(format!("https://example.invalid/avatar/{}.jpg", caller.open_id)),
                _ => json!(display_name),
            }
        } else if PROFILE_FIELDS.contains(&field) && has("user.info.profile") {
            match field {
                "bio_description" => json!(""),
                "profile_deep_link" => json!(format!("https://example.invalid/@{}", caller.open_id)),
                _ => json!(false),
            }
        } else if STATS_FIELDS.contains(&field) && has("user.info.stats") {
            let stats = state.inner.lock().unwrap().user_stats.get(&caller.open_id).copied().unwrap_or_default();
            match field {
                "follower_count" => json!(stats.followers),
                "following_count" => json!(stats.following),
                "likes_count" => json!(stats.likes),
                _ => json!(stats.videos),
            }
        } else if STATS_FIELDS.contains(&field) {
            let message = format!("The field {field} needs the user.info.stats scope, which the user did not grant");
            return api_error(&state, StatusCode::UNAUTHORIZED, "scope_not_authorized", &message);
        } else if PROFILE_FIELDS.contains(&field) {
            let message = format!("The field {field} needs a scope the user did not grant");
            return api_error(&state, StatusCode::BAD_REQUEST, "scope_permission_missed", &message);
        } else {
            return api_error(&state, StatusCode::BAD_REQUEST, "invalid_params", &format!("Unknown field {field}"));
        };
        user.insert(field.to_string(), value);
    }
    ok(&state, json!({ "user": user }))
}

// ---------------------------------------------------------------- Content Posting

/// The media transfer rules for `source_info`; the error names the broken rule.
fn check_chunk_plan(video_size: u64, chunk_size: u64, total: u64) -> Result<(), String> {
    if video_size == 0 || video_size > MAX_VIDEO {
        return Err(format!("video_size must be between 1 and {MAX_VIDEO} bytes"));
    }
    if video_size < MIN_CHUNK {
        if chunk_size != video_size || total != 1 {
            return Err(format!(
                "a video under {MIN_CHUNK} bytes must be one chunk: chunk_size == video_size and total_chunk_count == 1"
            ));
        }
        return Ok(());
    }
    if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) {
        return Err(format!("chunk_size must be between {MIN_CHUNK} and {MAX_CHUNK} bytes"));
    }
    if total != video_size / chunk_size {
        return Err("total_chunk_count must be floor(video_size / chunk_size)".to_string());
    }
    if !(1..=MAX_CHUNKS).contains(&total) {
        return Err(format!("total_chunk_count must be between 1 and {MAX_CHUNKS}"));
    }
    if video_size - (total - 1) * chunk_size > MAX_LAST_CHUNK {
        return Err(format!("the last chunk must be at most {MAX_LAST_CHUNK} bytes"));
    }
    Ok(())
}

/// What every init (inbox, Direct Post, photos) checks first: the token and
/// its `scope`, the shared 6-a-minute init limit, and a JSON body.
fn init_caller(state: &TikTokState, headers: &HeaderMap, scope: &str) -> Result<Caller, Response> {
    let caller = bearer(state, headers, &[scope])?;
    let limit = state.init_per_minute.load(Ordering::SeqCst);
    rate_limit(state, |i| &mut i.init_log, &caller.token, limit)?;
    if !header_str(headers, header::CONTENT_TYPE).is_some_and(|c| c.starts_with("application/json")) {
        return Err(api_error(
            state,
            StatusCode::BAD_REQUEST,
            "invalid_param",
            "Content-Type must be application/json",
        ));
    }
    Ok(caller)
}

async fn init(State(state): State<Arc<TikTokState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.init_calls.fetch_add(1, Ordering::SeqCst);
    let caller = match init_caller(&state, &headers, "video.upload") {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let invalid = |message: &str| api_error(&state, StatusCode::BAD_REQUEST, "invalid_param", message);
    let cap = state.pending_cap.load(Ordering::SeqCst) as usize;
    if state.pending_shares(&caller.open_id) >= cap {
        return api_error(
            &state,
            StatusCode::FORBIDDEN,
            "spam_risk_too_many_pending_share",
            "The user has too many pending shares in the last 24 hours.",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("The body is not valid JSON");
    };
    start_upload(&state, caller, &body["source_info"], None).await
}

/// `video/init`: a Direct Post. Scope `video.publish`; the same 6 a minute
/// per token as inbox inits; `post_info` checked against the creator's
/// creator_info, the app's audit and the creator's daily cap; then the
/// source as for a draft.
async fn direct_init(State(state): State<Arc<TikTokState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.direct_init_calls.fetch_add(1, Ordering::SeqCst);
    let caller = match init_caller(&state, &headers, "video.publish") {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let invalid = |message: &str| api_error(&state, StatusCode::BAD_REQUEST, "invalid_params", message);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("The body is not valid JSON");
    };
    let post_info = &body["post_info"];
    if let Err(resp) = check_post_info(&state, &caller.open_id, post_info) {
        return resp;
    }
    let cap = state.direct_post_cap.load(Ordering::SeqCst) as usize;
    let posted_today = {
        let inner = state.inner.lock().unwrap();
        inner.direct_inits.get(&caller.open_id).map_or(0, |v| v.iter().filter(|t| t.elapsed() < PENDING_WINDOW).count())
    };
    if posted_today >= cap {
        return api_error(
            &state,
            StatusCode::FORBIDDEN,
            "spam_risk_too_many_posts",
            "The user has reached the daily post cap.",
        );
    }
    let open_id = caller.open_id.clone();
    let resp = start_upload(&state, caller, &body["source_info"], Some(post_info.clone())).await;
    if resp.status() == StatusCode::OK {
        state.inner.lock().unwrap().direct_inits.entry(open_id).or_default().push(Instant::now());
    }
    resp
}

/// The Direct Post rules of `post_info` (spec §1.8): a `privacy_level` among
/// the creator's options (an unaudited app: SELF_ONLY only), booleans for
/// the toggles, interactions the creator disabled left disabled, branded
/// content never private, a title of at most 2200 UTF-16 units.
fn check_post_info(state: &TikTokState, open_id: &str, post_info: &Value) -> Result<(), Response> {
    let invalid = |message: &str| api_error(state, StatusCode::BAD_REQUEST, "invalid_params", message);
    let Some(info) = post_info.as_object() else {
        return Err(invalid("post_info is required for a direct post"));
    };
    let creator = state.inner.lock().unwrap().creators.get(open_id).cloned().unwrap_or_default();
    let Some(privacy) = info.get("privacy_level").and_then(Value::as_str) else {
        return Err(invalid("post_info.privacy_level is required"));
    };
    if !creator.privacy_level_options.iter().any(|o| o == privacy) {
        return Err(api_error(
            state,
            StatusCode::BAD_REQUEST,
            "privacy_level_option_mismatch",
            "privacy_level is not one of the creator's privacy_level_options.",
        ));
    }
    if !state.audited.load(Ordering::SeqCst) && privacy != "SELF_ONLY" {
        return Err(api_error(
            state,
            StatusCode::FORBIDDEN,
            "unaudited_client_can_only_post_to_private_accounts",
            "Unaudited clients can only post with SELF_ONLY privacy.",
        ));
    }
    for k in
        ["disable_duet", "disable_stitch", "disable_comment", "brand_content_toggle", "brand_organic_toggle", "is_aigc"]
    {
        if info.get(k).is_some_and(|v| !v.is_boolean()) {
            return Err(invalid(&format!("post_info.{k} must be a boolean")));
        }
    }
    let on = |k: &str| info.get(k).and_then(Value::as_bool).unwrap_or(false);
    for (disabled, k) in [
        (creator.comment_disabled, "disable_comment"),
        (creator.duet_disabled, "disable_duet"),
        (creator.stitch_disabled, "disable_stitch"),
    ] {
        if disabled && !on(k) {
            return Err(invalid(&format!("post_info.{k} must be true: the creator disabled it")));
        }
    }
    if on("brand_content_toggle") && privacy == "SELF_ONLY" {
        return Err(invalid("Branded content cannot be posted with SELF_ONLY privacy"));
    }
    if let Some(title) = info.get("title") {
        match title.as_str() {
            Some(t) if t.encode_utf16().count() <= 2200 => {}
            _ => return Err(invalid("post_info.title must be a string of at most 2200 UTF-16 units")),
        }
    }
    Ok(())
}

/// `content/init` for photos (spec §1.7): `media_type` PHOTO, `post_mode`
/// MEDIA_UPLOAD (scope `video.upload`) or DIRECT_POST (`video.publish`,
/// `post_info` checked as for video, title at most 90 UTF-16 units),
/// `source_info` PULL_FROM_URL only with 1–35 https URLs on a domain name
/// (not an IP), each under a verified prefix (else 403
/// `url_ownership_unverified`). Then TikTok downloads them: a redirect or an
/// error fails the post (`photo_pull_failed`).
async fn content_init(State(state): State<Arc<TikTokState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.photo_init_calls.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let direct = body["post_mode"] == "DIRECT_POST";
    let scope = if direct { "video.publish" } else { "video.upload" };
    let caller = match init_caller(&state, &headers, scope) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let invalid = |message: &str| api_error(&state, StatusCode::BAD_REQUEST, "invalid_params", message);
    if body["media_type"] != "PHOTO" {
        return invalid("media_type must be PHOTO");
    }
    let mode = body["post_mode"].as_str().unwrap_or_default();
    if !["DIRECT_POST", "MEDIA_UPLOAD"].contains(&mode) {
        return invalid("post_mode must be DIRECT_POST or MEDIA_UPLOAD");
    }
    let post_info = body["post_info"].clone();
    if post_info["title"].as_str().is_some_and(|t| t.encode_utf16().count() > 90) {
        return invalid("post_info.title is at most 90 UTF-16 units");
    }
    if post_info["description"].as_str().is_some_and(|t| t.encode_utf16().count() > 4000) {
        return invalid("post_info.description is at most 4000 UTF-16 units");
    }
    if direct {
        // The video rules, less the Duet/Stitch/title ones photos do not have.
        let mut checked = post_info.clone();
        if let Some(o) = checked.as_object_mut() {
            o.remove("title");
            o.remove("description");
            o.remove("auto_add_music");
        }
        if let Err(resp) = check_post_info(&state, &caller.open_id, &checked) {
            return resp;
        }
    }
    let source = &body["source_info"];
    if source["source"] != "PULL_FROM_URL" {
        return invalid("source_info.source must be PULL_FROM_URL for photos");
    }
    let urls: Vec<String> = match source["photo_images"].as_array() {
        Some(list) if (1..=35).contains(&list.len()) && list.iter().all(Value::is_string) => {
            list.iter().map(|u| u.as_str().unwrap().to_string()).collect()
        }
        _ => return invalid("source_info.photo_images must be 1 to 35 URLs"),
    };
    if source["photo_cover_index"].as_u64().is_none_or(|i| i as usize >= urls.len()) {
        return invalid("source_info.photo_cover_index must index photo_images");
    }
    for url in &urls {
        let Ok(parsed) = reqwest::Url::parse(url) else { return invalid("photo_images holds a URL that is not one") };
        let on_domain =
            parsed.host_str().is_some_and(|h| !h.starts_with('[') && h.parse::<std::net::IpAddr>().is_err());
        if parsed.scheme() != "https" || !on_domain {
            return invalid("photo URLs must be https on a domain name");
        }
        let verified = state.verified_prefixes.lock().unwrap().iter().any(|p| url.starts_with(p.as_str()));
        if !verified {
            return api_error(
                &state,
                StatusCode::FORBIDDEN,
                "url_ownership_unverified",
                "The domain or URL prefix of the photo URLs is not verified for this app.",
            );
        }
    }
    let n = state.seq.fetch_add(1, Ordering::SeqCst);
    let publish_id = format!("p_pub_url~v2.{}", 7_600_000_000_000_000_000u64 + n);
    let post = PhotoPost {
        publish_id: publish_id.clone(),
        open_id: caller.open_id,
        post_mode: mode.to_string(),
        post_info,
        urls: urls.clone(),
        images: Vec::new(),
        pull_failed: false,
    };
    state.inner.lock().unwrap().photo_posts.insert(publish_id.clone(), post);
    // TikTok downloads after answering; status says PROCESSING_DOWNLOAD meanwhile.
    let puller = state.clone();
    let id = publish_id.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut hashes = Vec::new();
        let mut failed = false;
        for url in urls {
            let mut real = reqwest::Url::parse(&url).unwrap();
            let base = puller.resolve.lock().unwrap().get(real.host_str().unwrap_or_default()).cloned();
            if let Some(base) = base {
                let path = real.path().to_string();
                real = reqwest::Url::parse(&base).unwrap().join(&path).unwrap();
            }
            match http.get(real).send().await {
                Ok(r) if r.status() == StatusCode::OK => {
                    hashes.push(hex::encode(Sha256::digest(r.bytes().await.unwrap_or_default())));
                }
                _ => {
                    failed = true;
                    break;
                }
            }
        }
        if let Some(p) = puller.inner.lock().unwrap().photo_posts.get_mut(&id) {
            p.images = hashes;
            p.pull_failed = failed;
        }
    });
    ok(&state, json!({ "publish_id": publish_id }))
}

/// Checks a FILE_UPLOAD `source_info` and opens its upload task; the answer
/// is init's (publish_id and upload_url).
async fn start_upload(state: &TikTokState, caller: Caller, source_info: &Value, post_info: Option<Value>) -> Response {
    let invalid = |message: &str| api_error(state, StatusCode::BAD_REQUEST, "invalid_param", message);
    match source_info["source"].as_str() {
        Some("FILE_UPLOAD") => {}
        Some("PULL_FROM_URL") => {
            return api_error(
                state,
                StatusCode::FORBIDDEN,
                "url_ownership_unverified",
                "The domain or URL prefix of video_url is not verified.",
            );
        }
        _ => return invalid("source_info.source must be FILE_UPLOAD or PULL_FROM_URL"),
    }
    let number = |k: &str| source_info[k].as_u64();
    let (Some(video_size), Some(chunk_size), Some(total)) =
        (number("video_size"), number("chunk_size"), number("total_chunk_count"))
    else {
        return invalid("source_info needs video_size, chunk_size and total_chunk_count as non-negative integers");
    };
    if let Err(rule) = check_chunk_plan(video_size, chunk_size, total) {
        return invalid(&rule);
    }
    let n = state.seq.fetch_add(1, Ordering::SeqCst);
    let kind = if post_info.is_some() { "v_pub_file" } else { "v_inbox_file" };
    let publish_id = format!("{kind}~v2.{}", 7_300_000_000_000_000_000u64 + n);
    let post_id = format!("{}", 7_500_000_000_000_000_000u64 + n);
    let upload_id = format!("{}", 7_400_000_000_000_000_000u64 + n);
    let upload_token = state.secret("");
    let base = state.base.lock().unwrap().clone();
    let upload_url = format!("{base}/upload/?upload_id={upload_id}&upload_token={upload_token}");
    {
        let mut inner = state.inner.lock().unwrap();
        inner.inits.entry(caller.open_id.clone()).or_default().push(Instant::now());
        inner.publishes.insert(publish_id.clone(), upload_id.clone());
        inner.uploads.insert(
            upload_id,
            Upload {
                publish_id: publish_id.clone(),
                open_id: caller.open_id,
                token: upload_token,
                issued: Instant::now(),
                expired: false,
                video_size,
                chunk_size,
                total_chunks: total,
                received: 0,
                hasher: Sha256::new(),
                completed: None,
                post_info,
                post_id,
            },
        );
    }
    let late = state.slow_next_init_ms.swap(0, Ordering::SeqCst);
    if late > 0 {
        tokio::time::sleep(Duration::from_millis(late)).await;
    }
    ok(state, json!({ "publish_id": publish_id, "upload_url": upload_url }))
}

/// `bytes FIRST-LAST/TOTAL`.
fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (first.parse().ok()?, last.parse().ok()?, total.parse().ok()?);
    (first <= last && last < total).then_some((first, last, total))
}

/// `Content-Range: bytes 0-{received-1}/{total}`, or `bytes */{total}` before the first byte.
fn progress(received: u64, total: u64) -> String {
    if received == 0 { format!("bytes */{total}") } else { format!("bytes 0-{}/{total}", received - 1) }
}

async fn upload(
    State(state): State<Arc<TikTokState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    state.put_calls.fetch_add(1, Ordering::SeqCst);
    let delay = state.put_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if headers.contains_key(header::AUTHORIZATION) {
        return text(StatusCode::BAD_REQUEST, "the upload_url takes no Authorization header");
    }
    let ttl = Duration::from_millis(state.upload_url_ttl_ms.load(Ordering::SeqCst));
    {
        let inner = state.inner.lock().unwrap();
        let Some(up) = q.get("upload_id").and_then(|id| inner.uploads.get(id)) else {
            return text(StatusCode::NOT_FOUND, "no such upload task");
        };
        if q.get("upload_token") != Some(&up.token) {
            return text(StatusCode::FORBIDDEN, "upload_token is invalid");
        }
        if up.expired || up.issued.elapsed() >= ttl {
            return text(StatusCode::FORBIDDEN, "upload_url expired");
        }
    }
    if state.fail_puts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error (injected by fail_puts)");
    }
    if !header_str(&headers, header::CONTENT_TYPE)
        .is_some_and(|c| ["video/mp4", "video/quicktime", "video/webm"].contains(&c))
    {
        return text(StatusCode::BAD_REQUEST, "Content-Type must be video/mp4, video/quicktime or video/webm");
    }
    let Some((first, last, total)) = header_str(&headers, header::CONTENT_RANGE).and_then(parse_content_range) else {
        return text(StatusCode::BAD_REQUEST, "Content-Range must be bytes FIRST-LAST/TOTAL");
    };
    let length = last - first + 1;
    let declared = header_str(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared != Some(body.len() as u64) || declared != Some(length) {
        return text(StatusCode::BAD_REQUEST, "Content-Length must equal the body length and LAST-FIRST+1");
    }
    let mut inner = state.inner.lock().unwrap();
    let up = inner.uploads.get_mut(q["upload_id"].as_str()).expect("checked above");
    if total != up.video_size {
        return text(StatusCode::BAD_REQUEST, format!("Content-Range TOTAL must be video_size {}", up.video_size));
    }
    if first != up.received {
        let range = progress(up.received, total);
        return (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, range)],
            "Content-Range does not match upload progress",
        )
            .into_response();
    }
    let is_last = first / up.chunk_size + 1 >= up.total_chunks;
    if is_last && last != total - 1 {
        return text(StatusCode::BAD_REQUEST, "the last chunk must end at TOTAL-1 and take the remainder");
    }
    if !is_last && length != up.chunk_size {
        return text(
            StatusCode::BAD_REQUEST,
            format!("every chunk but the last must be chunk_size {} bytes", up.chunk_size),
        );
    }
    up.hasher.update(&body);
    up.received += length;
    let range = progress(up.received, total);
    if up.received < total {
        return (StatusCode::PARTIAL_CONTENT, [(header::CONTENT_RANGE, range)]).into_response();
    }
    let sha256 = hex::encode(std::mem::take(&mut up.hasher).finalize());
    let fail_reason = state.fail_next_publish.lock().unwrap().take();
    let draft = fail_reason.is_none().then(|| Draft {
        publish_id: up.publish_id.clone(),
        open_id: up.open_id.clone(),
        sha256: sha256.clone(),
        bytes: total,
    });
    let direct = up.post_info.clone().filter(|_| fail_reason.is_none()).map(|post_info| DirectPost {
        publish_id: up.publish_id.clone(),
        open_id: up.open_id.clone(),
        post_info,
        sha256: sha256.clone(),
        bytes: total,
        post_id: up.post_id.clone(),
    });
    up.completed = Some((Instant::now(), sha256, fail_reason));
    match direct {
        Some(post) => inner.direct_posts.push(post),
        None => inner.drafts.extend(draft),
    }
    (StatusCode::CREATED, [(header::CONTENT_RANGE, range)]).into_response()
}

/// `creator_info/query`: a POST without a body, for a token granted
/// `video.publish` (else 401 `scope_not_authorized`), 20 a minute per token.
async fn creator_info(State(state): State<Arc<TikTokState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.creator_info_calls.fetch_add(1, Ordering::SeqCst);
    let caller = match bearer(&state, &headers, &["video.publish"]) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let limit = state.creator_info_per_minute.load(Ordering::SeqCst);
    if let Err(resp) = rate_limit(&state, |i| &mut i.creator_info_log, &caller.token, limit) {
        return resp;
    }
    // The endpoint takes no parameters; a JSON object body (even `{}`) is tolerated.
    if !body.is_empty() && !serde_json::from_slice::<Value>(&body).is_ok_and(|b| b.is_object()) {
        return api_error(&state, StatusCode::BAD_REQUEST, "invalid_param", "The request body is not valid JSON");
    }
    let (creator, nickname) = {
        let inner = state.inner.lock().unwrap();
        let creator = inner.creators.get(&caller.open_id).cloned().unwrap_or_default();
        (creator, inner.users.get(&caller.open_id).cloned().unwrap_or_default())
    };
    let username: String =
        nickname.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let base = state.base.lock().unwrap().clone();
    ok(
        &state,
        json!({
            "creator_avatar_url": format!("{base}/avatar/{}.jpg", caller.open_id),
            "creator_username": username,
            "creator_nickname": nickname,
            "privacy_level_options": creator.privacy_level_options,
            "comment_disabled": creator.comment_disabled,
            "duet_disabled": creator.duet_disabled,
            "stitch_disabled": creator.stitch_disabled,
            "max_video_post_duration_sec": creator.max_video_post_duration_sec,
        }),
    )
}

async fn status(State(state): State<Arc<TikTokState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.status_calls.fetch_add(1, Ordering::SeqCst);
    let caller = match bearer(&state, &headers, &["video.upload", "video.publish"]) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let limit = state.status_per_minute.load(Ordering::SeqCst);
    if let Err(resp) = rate_limit(&state, |i| &mut i.status_log, &caller.token, limit) {
        return resp;
    }
    let publish_id =
        serde_json::from_slice::<Value>(&body).ok().and_then(|b| b["publish_id"].as_str().map(String::from));
    let Some(publish_id) = publish_id else {
        return api_error(
            &state,
            StatusCode::BAD_REQUEST,
            "invalid_param",
            "The body must be {\"publish_id\": \"...\"}",
        );
    };
    let inbox_delay = Duration::from_millis(state.inbox_delay_ms.load(Ordering::SeqCst));
    let moderation = Duration::from_millis(state.moderation_delay_ms.load(Ordering::SeqCst));
    let inner = state.inner.lock().unwrap();
    if let Some(photo) = inner.photo_posts.get(&publish_id) {
        if photo.open_id != caller.open_id {
            return api_error(
                &state,
                StatusCode::BAD_REQUEST,
                "token_not_authorized_for_specified_publish_id",
                "The access token's user does not own this publish_id.",
            );
        }
        let data = match (photo.pull_failed, photo.images.len() == photo.urls.len()) {
            (true, _) => json!({ "status": "FAILED", "fail_reason": "photo_pull_failed" }),
            (false, false) => json!({ "status": "PROCESSING_DOWNLOAD" }),
            (false, true) if photo.post_mode == "DIRECT_POST" => {
                json!({ "status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [] })
            }
            (false, true) => json!({ "status": "SEND_TO_USER_INBOX" }),
        };
        drop(inner);
        return ok(&state, data);
    }
    let Some(up) = inner.publishes.get(&publish_id).and_then(|id| inner.uploads.get(id)) else {
        return api_error(&state, StatusCode::BAD_REQUEST, "invalid_publish_id", "The publish_id does not exist.");
    };
    if up.open_id != caller.open_id {
        return api_error(
            &state,
            StatusCode::BAD_REQUEST,
            "token_not_authorized_for_specified_publish_id",
            "The access token's user does not own this publish_id.",
        );
    }
    let posted = inner.posted.get(&publish_id).cloned();
    let data = match &up.completed {
        // The creator posted the draft publicly: its id, as an int64 when it is one.
        Some(_) if posted.is_some() => {
            let id = posted.clone().unwrap();
            let id = id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n));
            json!({ "status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [id], "uploaded_bytes": up.received })
        }
        Some((_, _, Some(reason))) if up.post_info.is_some() => json!({ "status": "FAILED", "fail_reason": reason }),
        // A Direct Post is moderated, then public (with its id) unless only the creator may see it.
        Some((at, _, None)) if up.post_info.is_some() && at.elapsed() >= moderation => {
            let public = up.post_info.as_ref().is_some_and(|p| p["privacy_level"] != "SELF_ONLY");
            let ids: Vec<Value> = if public { vec![json!(up.post_id.parse::<u64>().unwrap())] } else { Vec::new() };
            json!({ "status": "PUBLISH_COMPLETE", "publicaly_available_post_id": ids, "uploaded_bytes": up.received })
        }
        Some(_) if up.post_info.is_some() => json!({ "status": "PROCESSING_UPLOAD", "uploaded_bytes": up.received }),
        Some((at, _, fail_reason)) if at.elapsed() >= inbox_delay => match fail_reason {
            Some(reason) => json!({ "status": "FAILED", "fail_reason": reason }),
            None => json!({ "status": "SEND_TO_USER_INBOX", "uploaded_bytes": up.received }),
        },
        _ if state.status_without_progress.load(Ordering::SeqCst) => json!({ "status": "PROCESSING_UPLOAD" }),
        _ => json!({ "status": "PROCESSING_UPLOAD", "uploaded_bytes": up.received }),
    };
    // A public Direct Post is a video of the creator's from now on: video/query knows it.
    let public_post = (data["status"] == "PUBLISH_COMPLETE" && up.post_info.is_some() && posted.is_none())
        .then(|| data["publicaly_available_post_id"][0].as_u64())
        .flatten()
        .map(|id| (id.to_string(), up.open_id.clone()));
    drop(inner);
    if let Some((post_id, open_id)) = public_post {
        let mut inner = state.inner.lock().unwrap();
        let create_time = chrono::Utc::now().timestamp();
        inner.videos.entry(post_id).or_insert(Video { open_id, create_time, counts: Counts::default() });
    }
    ok(&state, data)
}

/// `video/query`: the counts of up to 20 of the caller's videos (scope
/// `video.list`, `fields` required, a per-token per-minute limit). Ids of
/// other creators' videos (or unknown ones) are left out of the answer.
async fn video_query(
    State(state): State<Arc<TikTokState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    state.video_query_calls.fetch_add(1, Ordering::SeqCst);
    let caller = match bearer(&state, &headers, &["video.list"]) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    // Every call's ids are logged, the refused ones too.
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let asked = parsed.as_ref().and_then(|b| b["filters"]["video_ids"].as_array()).map(Vec::len);
    if let Some(n) = asked {
        state.video_query_batches.lock().unwrap().push(n);
    }
    let limit = state.video_query_per_minute.load(Ordering::SeqCst);
    if let Err(resp) = rate_limit(&state, |i| &mut i.video_query_log, &caller.token, limit) {
        return resp;
    }
    let invalid = |message: &str| api_error(&state, StatusCode::BAD_REQUEST, "invalid_params", message);
    let fields: Vec<&str> =
        q.get("fields").map(|f| f.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    if fields.is_empty() {
        return invalid("fields is required");
    }
    if let Some(unknown) = fields.iter().find(|f| !VIDEO_FIELDS.contains(f)) {
        return invalid(&format!("Unknown field {unknown}"));
    }
    if !header_str(&headers, header::CONTENT_TYPE).is_some_and(|c| c.starts_with("application/json")) {
        return invalid("Content-Type must be application/json");
    }
    let Some(body) = parsed else {
        return invalid("The body is not valid JSON");
    };
    let Some(ids) = body["filters"]["video_ids"].as_array() else {
        return invalid("filters.video_ids is required");
    };
    if ids.is_empty() || ids.len() > 20 {
        return invalid("filters.video_ids must hold 1 to 20 ids");
    }
    let Some(ids) = ids.iter().map(|v| v.as_str().map(String::from)).collect::<Option<Vec<String>>>() else {
        return invalid("filters.video_ids must be strings");
    };
    let inner = state.inner.lock().unwrap();
    let mut videos = Vec::new();
    for id in &ids {
        let Some(v) = inner.videos.get(id).filter(|v| v.open_id == caller.open_id) else { continue };
        let mut out = Map::new();
        for field in &fields {
            let value = match *field {
                "id" => json!(id),
                "create_time" => json!(v.create_time),
                "view_count" => json!(v.counts.views),
                "like_count" => json!(v.counts.likes),
                "comment_count" => json!(v.counts.comments),
                "share_count" => json!(v.counts.shares),
                "title" | "video_description" => json!(""),
                "duration" => json!(12),
                "height" => json!(1920),
                "width" => json!(1080),
                other => json!(format!("https://example.invalid/{other}/{id}")),
            };
            out.insert(field.to_string(), value);
        }
        videos.push(Value::Object(out));
    }
    drop(inner);
    ok(&state, json!({ "videos": videos, "cursor": 0, "has_more": false }))
}
