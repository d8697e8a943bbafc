//! Content performance: how each TikTok post did, measured from TikTok's
//! own counts and kept as a time series per job.
//!
//! # Layout
//!
//! - [`schedule`]: when a post is asked about ([`Cadence`]): hourly while it
//!   is young, daily until it is old, then never; a pure function of times.
//! - [`collect`]: the [`Collector`] publish-role processes run every tick:
//!   it claims due posts, asks status/fetch whether a draft became a public
//!   post (its id is never guessed), asks `video/query` for up to 20 posts of
//!   an account per call, and samples account totals (`user.info.stats`),
//!   within per-account and per-app slots of the shared rate limiter.
//! - [`report`]: posts grouped by topic, style, voice or account, from each
//!   post's latest sample; and the plain words a job shows about what is
//!   (not) measured.
//! - [`settings`]: the settings section `performance`.

pub mod collect;
pub mod report;
pub mod schedule;
pub mod settings;

pub use collect::{Collector, PassReport};
pub use report::{GroupBy, GroupTotals};
pub use schedule::Cadence;
