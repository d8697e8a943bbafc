//! TikTok: connected accounts (Login Kit v2) and inbox drafts (Content Posting).
//!
//! - [`api`]: the HTTP endpoints and their error mapping;
//! - [`accounts`]: accounts and sealed tokens, refreshed one worker at a time;
//! - [`chunks`]: the media transfer rules' chunk plan;
//! - [`display`]: the Display API's counts (video/query, user.info.stats) and
//!   whether a draft was posted publicly (status/fetch's post id);
//! - [`upload`]: one job's render into the inbox, exactly once, and the
//!   creator check before render (creator_info/query, kept a few minutes).

pub mod accounts;
pub mod api;
mod api_errors;
pub mod chunks;
pub mod display;
pub mod settings;
pub mod upload;

pub use accounts::Accounts;
pub use api::CreatorInfo;
pub use api::TikTokApi;
pub use upload::{InboxUploader, PostLength, UploadError, UploadLimits, post_length};
