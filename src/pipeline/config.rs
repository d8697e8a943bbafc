//! What the stages are told by settings, read once at start.

use std::path::PathBuf;
use std::time::Duration;

use super::RetryPolicy;
use crate::media::ffmpeg::Encoder;
use crate::settings::Settings;

/// The knobs the stages need, taken from settings once.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub scratch_root: PathBuf,
    pub render_timeout: Duration,
    /// `media.segment_min_seconds`: videos this long render in segments; 0: never.
    pub segment_min_seconds: u32,
    /// `media.segment_seconds`: about how long each segment is.
    pub segment_seconds: u32,
    /// `media.split_min_seconds`: videos this long render as side-by-side
    /// runs on the worker's cores; 0: never.
    pub split_min_seconds: u32,
    pub encoder: Encoder,
    pub fonts_dir: PathBuf,
    pub caption_font: String,
    pub caption_size: u32,
    /// The team's caption preset, font, size and safe area, that jobs' caption styles resolve against.
    pub captions: crate::media::captions::CaptionDefaults,
    pub music_dir: Option<PathBuf>,
    pub retention_days: u32,
    pub retry: RetryPolicy,
    pub max_deliveries: u32,
    /// A stage whose job record was not touched for this long is taken to be
    /// abandoned by a dead worker (the queue's orphan window).
    pub orphan_after: Duration,
    /// How often a running stage checks for cancellation and proves it is alive.
    pub watch_every: Duration,
    /// How long a stage waits for an unreachable record store or queue.
    pub outage_patience: Duration,
    /// How often a running stage tells the queue its worker is alive.
    pub keep_alive_every: Duration,
    /// Team-wide notification targets (`[notify]`).
    pub notify: crate::notify::NotifyDefaults,
    /// Where jobs that name no `review` stop for a person (`review.default`).
    pub review_default: crate::domain::Review,
    /// What the team's own media may be, and how URLs are fetched (`[uploads]`).
    pub uploads: crate::settings::UploadSettings,
    /// Where TikTok pulls photo posts from (`tiktok.photo_url_prefix`); empty: nowhere.
    pub photo_url_prefix: String,
}

impl PipelineConfig {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            scratch_root: s.scratch_dir(),
            render_timeout: s.media.render_timeout(),
            segment_min_seconds: s.media.segment_min_seconds,
            segment_seconds: s.media.segment_seconds,
            split_min_seconds: s.media.split_min_seconds,
            encoder: Encoder::from_settings(&s.media),
            fonts_dir: s.media.fonts_dir.clone(),
            caption_font: s.media.caption_font.clone(),
            caption_size: s.media.caption_size,
            captions: crate::media::captions::CaptionDefaults {
                preset: s.captions.preset(),
                font: s.media.caption_font.clone(),
                size: s.media.caption_size,
                safe: s.captions.safe_area(),
            },
            music_dir: s.music_dir(),
            retention_days: s.storage.retention_days,
            retry: RetryPolicy {
                max_attempts: s.retry.max_attempts,
                initial: s.retry.initial_backoff(),
                max: s.retry.max_backoff(),
            },
            max_deliveries: s.queue.max_deliveries as u32,
            orphan_after: s.queue.orphan_after(),
            watch_every: Duration::from_secs(1),
            outage_patience: s.queue.outage_patience(),
            keep_alive_every: s.queue.heartbeat() / 2,
            notify: crate::notify::NotifyDefaults::from_settings(s),
            review_default: s.review.default_review(),
            uploads: s.uploads.clone(),
            photo_url_prefix: s.tiktok.photo_url_prefix.clone(),
        }
    }
}
