//! Footage sources: plan which clip covers which stretch of the narration,
//! then fetch each planned clip to a file.
//!
//! Planning and fetching are separate so the pipeline can skip fetching a clip
//! the object store's cache already holds.

mod local;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::ProviderError;
use crate::domain::SentenceTiming;
use crate::media::Toolbox;
use crate::settings::FootageProviderSettings;

pub use local::LocalFootage;

/// A clip chosen for a stretch of the video, not yet fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedClip {
    /// Object key it is cached under (content-addressed).
    pub cache_key: String,
    /// Where it comes from, for people: `library:<file>` or `generated:<pattern>`.
    pub source: String,
    pub at_s: f64,
    pub duration_s: f64,
}

/// Finds footage for a narration.
#[async_trait]
pub trait FootageSource: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn plan(
        &self,
        queries: &[String],
        sentences: &[SentenceTiming],
        duration_s: f64,
    ) -> Result<Vec<PlannedClip>, ProviderError>;
    /// Writes the planned clip's file to `dest`.
    async fn fetch(&self, clip: &PlannedClip, dest: &Path) -> Result<(), ProviderError>;
}

pub fn from_settings(settings: &FootageProviderSettings, tools: &Toolbox) -> Arc<dyn FootageSource> {
    match settings {
        FootageProviderSettings::Local { library_dir, max_clip_secs } => Arc::new(LocalFootage {
            library: (!library_dir.is_empty()).then(|| library_dir.into()),
            max_clip_s: *max_clip_secs,
            ffmpeg: tools.ffmpeg.clone(),
        }),
    }
}

/// Cuts the video into slots: a new slot at each sentence start, and no slot
/// longer than `max_s`. Slots cover `[0, duration_s]` exactly, in order.
pub fn slots(sentences: &[SentenceTiming], duration_s: f64, max_s: f64) -> Vec<(f64, f64)> {
    let mut bounds: Vec<f64> = vec![0.0];
    bounds.extend(sentences.iter().skip(1).map(|s| s.start_s).filter(|&t| t > 0.0 && t < duration_s));
    bounds.push(duration_s);
    bounds.dedup_by(|b, a| (*b - *a).abs() < 0.05);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let pieces = ((end - start) / max_s).ceil().max(1.0) as usize;
        let len = (end - start) / pieces as f64;
        for i in 0..pieces {
            out.push((start + len * i as f64, len));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start_s: f64, end_s: f64) -> SentenceTiming {
        SentenceTiming { text: "x".into(), start_s, end_s }
    }

    #[test]
    fn slots_follow_sentences_and_cover_the_whole_video() {
        let slots = slots(&[s(0.1, 2.0), s(2.3, 9.0)], 9.5, 4.0);
        assert_eq!(slots.len(), 1 + 2, "2.3 s, then 7.2 s split in two");
        assert_eq!(slots[0], (0.0, 2.3));
        let total: f64 = slots.iter().map(|s| s.1).sum();
        assert!((total - 9.5).abs() < 1e-9);
        assert!(slots.iter().all(|s| s.1 <= 4.0));
        assert!(slots.windows(2).all(|p| (p[0].0 + p[0].1 - p[1].0).abs() < 1e-9), "no gaps");
    }
}
