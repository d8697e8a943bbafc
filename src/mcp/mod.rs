//! The MCP server: clipforge's tools for AI agents (the Model Context
//! Protocol, with the official Rust SDK `rmcp`; what we rely on, with
//! sources, is in docs/mcp.md). Seven tools: submit a job or a batch, a job's
//! or a batch's status, list jobs, approve a job in review, and a job's video
//! link.
//!
//! Two transports, one set of tools:
//!
//! - **Streamable HTTP** at `/mcp` on the API (`clipforge serve`/`api`):
//!   [`http_service`]. The route sits behind the API's key guard like every
//!   other (`auth::ROUTE_ACCESS`: any valid key), so a request without a
//!   valid key gets the API's 401 with `WWW-Authenticate: Bearer`.
//! - **stdio**, `clipforge mcp`: [`serve_stdio`], a bridge an agent starts
//!   as a child process. Its key comes from the environment
//!   (`CLIPFORGE_API_KEY`), as the MCP authorization spec asks of stdio
//!   servers, and its API from `--server`/`CLIPFORGE_SERVER`.
//!
//! # One source of truth for keys and scopes
//!
//! Every tool is exactly one call of an HTTP API route ([`caller::Call`]),
//! made through the API's own router (in-process, for `/mcp`) or over HTTP
//! (stdio). The route's guard decides with `ROUTE_ACCESS`, so a key lacking
//! `jobs:write` that calls `submit_job` gets the same 403 `forbidden` (as a
//! tool error) that `POST /v1/jobs` answers it; the handlers, the validation
//! and the error codes are the API's own. Nothing here checks a scope.
//!
//! # Layout
//!
//! - [`tools`]: the tools and how an API answer becomes a tool result.
//! - [`caller`]: how a tool reaches the API, in-process or over HTTP.

pub mod caller;
pub mod tools;

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub use caller::Api;
pub use tools::Tools;

/// The streamable HTTP endpoint, calling `api` (the API's routes with their
/// key guard) in-process; links to the API's own routes start with
/// `public_url` (`server.url`).
///
/// Stateless (no MCP sessions, as the 2026-07-28 revision of the protocol
/// has it; older clients' `initialize` is still answered): any API replica
/// can answer any request. Answers are plain JSON, not event streams, since
/// no tool sends progress. The SDK's own Host check is off because the
/// API's `browser::guard` already holds every route, `/mcp` included, to
/// `server.url`'s host, loopback and `server.allowed_hosts`; its Origin check
/// refuses a browser page of another site. `stop` ends the service with the server.
pub fn http_service(
    api: axum::Router,
    public_url: String,
    stop: &CancellationToken,
) -> StreamableHttpService<Tools, NeverSessionManager> {
    let api = Api::InProcess { router: api, public_url };
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts()
        .with_cancellation_token(stop.child_token());
    StreamableHttpService::new(move || Ok(Tools::new(api.clone())), Arc::new(NeverSessionManager::default()), config)
}

/// Why the stdio server stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("the MCP client's first messages did not start a session: {0}")]
    Start(String),
    #[error("the MCP session ended with an error: {0}")]
    Run(String),
}

/// Serves the tools on stdin/stdout until the client closes stdin, each
/// tool calling `api` over HTTP. Logs go to stderr (see
/// [`crate::telemetry`]): stdout carries only MCP messages.
pub async fn serve_stdio(api: Api) -> Result<(), StdioError> {
    let running =
        Tools::new(api).serve(rmcp::transport::stdio()).await.map_err(|e| StdioError::Start(e.to_string()))?;
    running.waiting().await.map_err(|e| StdioError::Run(e.to_string()))?;
    Ok(())
}
