//! TikTok Content Posting: upload a render to the creator's inbox as a draft.
//!
//! Groundwork for the publish provider (issue 5): the chunk plan of the media
//! transfer rules. Accounts, tokens, the upload itself and status polling
//! build on it.

pub mod chunks;
