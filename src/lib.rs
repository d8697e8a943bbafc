//! clipforge turns short-video requests into TikTok drafts: a script, a
//! narration with word timings, stock footage, one ffmpeg pass with burnt-in
//! captions, and a staged MP4.
//!
//! # Layout
//!
//! - [`settings`]: typed settings, layered default file → file → environment.
//! - [`crypto`]: tokens sealed at rest (AES-256-GCM), OAuth randomness and hashes.
//! - [`domain`]: job specs, jobs, states and manifests; no I/O.
//! - [`error_code`]: every stable error code, with where it is met and what
//!   to do about it; the README's and the OpenAPI document's lists come from it.
//! - [`media`]: the subprocess runner, pure ffmpeg argument builders, ffprobe,
//!   captions, WAV joining, scratch folders.
//! - [`providers`]: script writers, narrators and footage sources, one module
//!   per vendor behind a trait each.
//! - [`store`]: records (sqlx), stage queues (apalis) and the object store.
//! - [`pipeline`]: the prepare, render and publish stages as queue handlers;
//!   retry or fail is decided there, in one place; the review gate (approve,
//!   reject, revise) beside them.
//! - [`performance`]: how each TikTok post did: a back-off schedule, the
//!   collector publish-role processes run, and the grouped report.
//! - [`notify`]: Telegram messages and signed webhooks about job events, sent
//!   from an outbox in the record store.
//! - [`ideas`]: video ideas from a web page: the guarded fetch, the page's
//!   readable text, and the script writer's suggestions.
//! - [`api`]: the HTTP API (axum), its live event stream and its OpenAPI document.
//! - [`studio`]: the web pages at `/`: sessions, reviewer links, embedded assets.
//! - [`mcp`]: the MCP server for AI agents (stdio and `/mcp`): tools that
//!   each make one API call, with the caller's key and scopes.
//! - [`app`]: builds everything from settings and runs it until stopped.
//! - [`cli`]: the `clipforge` command line, used by the thin binaries.
//! - [`telemetry`]: tracing set-up.

pub mod api;
pub mod app;
pub mod cli;
pub mod crypto;
pub mod domain;
pub mod error_code;
pub mod ideas;
pub mod mcp;
pub mod media;
pub mod notify;
pub mod performance;
pub mod pipeline;
pub mod providers;
pub mod settings;
pub mod store;
pub mod studio;
pub mod telemetry;
