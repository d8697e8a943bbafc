//! Footage sources: plan which clip covers which stretch of the narration,
//! then fetch each planned clip to a file.
//!
//! Planning and fetching are separate so the pipeline can skip fetching a clip
//! the object store's cache already holds.

mod local;
mod pexels;
pub mod runway;
pub mod settings;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use self::settings::FootageProviderSettings;
use super::http::{ErrorTally, HttpSettings};
use super::{CostMeter, ProviderError};
use crate::domain::{Credit, SentenceTiming};
use crate::media::Toolbox;
use crate::store::objects::ObjectStore;

pub use local::LocalFootage;
pub use pexels::{PexelsFootage, VideoFile, choose_file};
pub use runway::{AiVideoSettings, RunwayFootage};

/// What footage is wanted for: the narration's timing and the search hints.
#[derive(Debug, Clone, Copy)]
pub struct FootageRequest<'a> {
    /// The job's own footage queries.
    pub job_queries: &'a [String],
    /// Search terms per sentence, from the script writer (may be empty).
    pub sentence_terms: &'a [Vec<String>],
    pub sentences: &'a [SentenceTiming],
    pub duration_s: f64,
    /// Most slots (render inputs) the plan may have (`limits.max_footage_segments`).
    pub max_segments: usize,
}

/// A clip chosen for a stretch of the video, not yet fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedClip {
    /// Object key it is cached under (content-addressed).
    pub cache_key: String,
    /// Where it comes from, for people: `library:<file>`, `generated:<pattern>`, `pexels:<id>`.
    pub source: String,
    /// Where the provider fetches it from (a file name, a pattern, a download link).
    pub locator: String,
    pub at_s: f64,
    pub duration_s: f64,
    pub credit: Option<Credit>,
}

/// Finds footage for a narration.
#[async_trait]
pub trait FootageSource: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn plan(&self, request: &FootageRequest<'_>, meter: &CostMeter) -> Result<Vec<PlannedClip>, ProviderError>;
    /// Writes the planned clip's file to `dest`.
    async fn fetch(&self, clip: &PlannedClip, dest: &Path, meter: &CostMeter) -> Result<(), ProviderError>;
}

pub fn from_settings(
    settings: &FootageProviderSettings,
    http: &HttpSettings,
    tally: Arc<ErrorTally>,
    tools: &Toolbox,
    objects: Arc<dyn ObjectStore>,
) -> Arc<dyn FootageSource> {
    match settings {
        FootageProviderSettings::Local(s) => {
            Arc::new(LocalFootage::new(&s.library_dir, s.max_clip_secs, tools.ffmpeg.clone()))
        }
        FootageProviderSettings::Pexels(s) => Arc::new(PexelsFootage::new(
            s,
            http,
            tally,
            LocalFootage::new(&s.library_dir, s.max_clip_secs, tools.ffmpeg.clone()),
            objects,
        )),
    }
}

/// `stock`, with AI-generated clips for some slots when `[providers.ai_video]` asks for them.
pub fn with_ai_video(
    stock: Arc<dyn FootageSource>,
    settings: &AiVideoSettings,
    http: &HttpSettings,
    tally: Arc<ErrorTally>,
    objects: Arc<dyn ObjectStore>,
) -> Arc<dyn FootageSource> {
    match settings {
        AiVideoSettings::None => stock,
        AiVideoSettings::Runway(s) => Arc::new(RunwayFootage::new(s, http, tally, stock, objects)),
    }
}

/// A stretch of the video and the search hint for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub at_s: f64,
    pub duration_s: f64,
    pub query: Option<String>,
}

/// The slots of a request, each with the query of the sentence it falls in:
/// the writer's terms for that sentence first, else the job's queries in turn.
pub fn slots_with_queries(req: &FootageRequest<'_>, max_s: f64) -> Vec<Slot> {
    slots(req.sentences, req.duration_s, max_s, req.max_segments)
        .into_iter()
        .enumerate()
        .map(|(i, (at_s, duration_s))| {
            let sentence = req.sentences.iter().rposition(|s| s.start_s <= at_s + 0.05).unwrap_or(0);
            let terms = req.sentence_terms.get(sentence).filter(|t| !t.is_empty());
            let query = match terms {
                Some(t) => Some(t.iter().take(2).cloned().collect::<Vec<_>>().join(" ")),
                None if !req.job_queries.is_empty() => Some(req.job_queries[i % req.job_queries.len()].clone()),
                None => None,
            };
            Slot { at_s, duration_s, query }
        })
        .collect()
}

/// Cuts the video into slots: a new slot at each sentence start, and no slot
/// longer than `max_s`. Slots cover `[0, duration_s]` exactly, in order.
///
/// There are never more than `max_segments` slots, since each is one input of
/// the render's ffmpeg: when sentences (or `max_s`) would cut more, a slot
/// runs on over the next sentence starts until it is at least
/// `duration_s / max_segments` long, and may then be longer than `max_s`
/// (its clip loops).
pub fn slots(sentences: &[SentenceTiming], duration_s: f64, max_s: f64, max_segments: usize) -> Vec<(f64, f64)> {
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
    if out.len() <= max_segments.max(1) {
        return out;
    }
    // Every slot but the last is at least `shortest` long, and a short last
    // one joins the slot before it, so at most `max_segments` fit.
    let shortest = duration_s / max_segments.max(1) as f64;
    let mut merged: Vec<(f64, f64)> = Vec::new();
    let mut start = 0.0;
    for &b in &bounds[1..bounds.len() - 1] {
        if b - start >= shortest {
            merged.push((start, b - start));
            start = b;
        }
    }
    match merged.last_mut() {
        Some(last) if duration_s - start < shortest => last.1 = duration_s - last.0,
        _ => merged.push((start, duration_s - start)),
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start_s: f64, end_s: f64) -> SentenceTiming {
        SentenceTiming { text: "x".into(), start_s, end_s }
    }

    #[test]
    fn slot_queries_prefer_the_sentence_terms_then_the_job_queries() {
        let sentences = [s(0.0, 2.0), s(2.0, 4.0)];
        let terms = vec![vec!["ocean".to_string(), "waves".to_string(), "sand".to_string()], vec![]];
        let queries = vec!["city".to_string()];
        let req = FootageRequest {
            job_queries: &queries,
            sentence_terms: &terms,
            sentences: &sentences,
            duration_s: 4.0,
            max_segments: 32,
        };
        let slots = slots_with_queries(&req, 4.0);
        assert_eq!(slots[0].query.as_deref(), Some("ocean waves"));
        assert_eq!(slots[1].query.as_deref(), Some("city"));
    }

    #[test]
    fn slots_follow_sentences_and_cover_the_whole_video() {
        let slots = slots(&[s(0.1, 2.0), s(2.3, 9.0)], 9.5, 4.0, 32);
        assert_eq!(slots.len(), 1 + 2, "2.3 s, then 7.2 s split in two");
        assert_eq!(slots[0], (0.0, 2.3));
        let total: f64 = slots.iter().map(|s| s.1).sum();
        assert!((total - 9.5).abs() < 1e-9);
        assert!(slots.iter().all(|s| s.1 <= 4.0));
        assert!(slots.windows(2).all(|p| (p[0].0 + p[0].1 - p[1].0).abs() < 1e-9), "no gaps");
    }

    #[test]
    fn two_hundred_sentences_share_at_most_max_segments_slots() {
        // 200 one-word sentences of 0.8 s each, as espeak speaks one word a line.
        let sentences: Vec<_> = (0..200).map(|i| s(i as f64 * 0.8, i as f64 * 0.8 + 0.5)).collect();
        for cap in [1, 7, 32, 199] {
            let slots = slots(&sentences, 160.0, 4.0, cap);
            assert!(slots.len() <= cap && slots.len() >= cap / 2, "cap {cap}: {} slots", slots.len());
            let total: f64 = slots.iter().map(|s| s.1).sum();
            assert!((total - 160.0).abs() < 1e-6, "cap {cap}: covers {total}");
            assert!(slots.windows(2).all(|p| (p[0].0 + p[0].1 - p[1].0).abs() < 1e-9), "cap {cap}: no gaps");
            let starts: Vec<f64> = sentences.iter().map(|s| s.start_s).collect();
            assert!(
                slots.iter().all(|(at, _)| starts.iter().any(|t| (t - at).abs() < 1e-9)),
                "cap {cap}: slots still start where sentences do"
            );
        }
        assert_eq!(slots(&sentences, 160.0, 4.0, 200).len(), 200, "under the cap nothing is merged");
    }
}
