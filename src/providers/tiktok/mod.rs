//! TikTok: connected accounts (Login Kit v2) and inbox drafts (Content Posting).
//!
//! - [`api`]: the HTTP endpoints and their error mapping;
//! - [`accounts`]: accounts and sealed tokens, refreshed one worker at a time;
//! - [`chunks`]: the media transfer rules' chunk plan;
//! - [`upload`]: one job's render into the inbox, exactly once.

pub mod accounts;
pub mod api;
mod api_errors;
pub mod chunks;
pub mod settings;
pub mod upload;

pub use accounts::Accounts;
pub use api::TikTokApi;
pub use upload::{InboxUploader, UploadError, UploadLimits};
