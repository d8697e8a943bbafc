//! Narrators: turn sentences into speech with a start and end for every word.

pub mod alignment;
pub mod catalogue;
mod elevenlabs;
mod espeak;
pub mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use self::settings::VoiceProviderSettings;
use super::http::{ErrorTally, HttpSettings};
use super::{CostMeter, ProviderError};
use crate::domain::{SentenceTiming, Voice, WordTiming};
use crate::error_code as codes;
use crate::media::Toolbox;
use crate::media::wav::{Pcm, WavError};

pub use catalogue::VoiceInfo;
pub use elevenlabs::ElevenLabsNarrator;
pub use espeak::EspeakNarrator;

/// Words per second a narrator speaks when it knows no better figure: 150
/// words a minute, the usual pace of narration (and what ElevenLabs' stock
/// voices speak at their default speed, give or take a tenth).
pub const DEFAULT_WORDS_PER_SECOND: f64 = 2.5;

static NO_LANGUAGES: BTreeMap<String, String> = BTreeMap::new();

/// Narration written to a local WAV file, with its timings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpokenNarration {
    pub wav: PathBuf,
    pub duration_s: f64,
    pub sentences: Vec<SentenceTiming>,
    pub words: Vec<WordTiming>,
}

/// Speaks a script.
#[async_trait]
pub trait Narrator: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The voice used when a job names none.
    fn default_voice(&self) -> Voice;
    /// Everything besides the text that changes the audio; part of the cache key.
    fn cache_identity(&self, voice: &Voice) -> String;
    /// The voices this narrator has, with the languages each speaks. Read
    /// once and kept; empty when the narrator cannot list them.
    async fn voices(&self) -> Result<Arc<Vec<VoiceInfo>>, ProviderError> {
        Ok(Arc::new(Vec::new()))
    }
    /// `providers.voice.languages`: the voice configured for a language tag.
    fn configured_languages(&self) -> &BTreeMap<String, String> {
        &NO_LANGUAGES
    }
    /// Words this voice speaks per second, for the word budget of a script
    /// written to a target length.
    fn words_per_second(&self, _voice: &Voice) -> f64 {
        DEFAULT_WORDS_PER_SECOND
    }
    /// Speaks `sentences` in `voice`, writing files into `dir`.
    async fn narrate(
        &self,
        sentences: &[String],
        voice: &Voice,
        dir: &Path,
        meter: &CostMeter,
    ) -> Result<SpokenNarration, ProviderError>;
}

pub fn from_settings(
    settings: &VoiceProviderSettings,
    http: &HttpSettings,
    tally: Arc<ErrorTally>,
    tools: &Toolbox,
) -> Arc<dyn Narrator> {
    match settings {
        VoiceProviderSettings::Espeak(s) => Arc::new(EspeakNarrator {
            program: tools.espeak.clone(),
            default_voice: Voice::parse(&s.default_voice).expect("validated in settings"),
            words_per_minute: s.words_per_minute,
            languages: s.languages.clone(),
            voices: Default::default(),
        }),
        VoiceProviderSettings::Elevenlabs(s) => Arc::new(ElevenLabsNarrator::new(s, http, tally, tools.ffmpeg.clone())),
    }
}

/// The voice a job is spoken in, by the rule of [`catalogue`]: the voice
/// asked for, or the one for the job's language; a problem names the field.
/// A catalogue that cannot be read, or not within `wait` (a submission does
/// not wait out a vendor's retries), leaves the voice as asked (logged).
pub async fn voice_for(
    narrator: &dyn Narrator,
    asked: Option<&Voice>,
    language: Option<(&crate::domain::Language, catalogue::LanguageSource)>,
    wait: Option<std::time::Duration>,
) -> Result<Voice, crate::domain::FieldError> {
    let listed = async {
        match wait {
            None => narrator.voices().await,
            Some(wait) => tokio::time::timeout(wait, narrator.voices()).await.unwrap_or_else(|_| {
                Err(ProviderError::new(narrator.name(), codes::TIMEOUT, "the voice list took too long", true))
            }),
        }
    };
    let voices = match language {
        None => Arc::new(Vec::new()),
        Some(_) => listed.await.unwrap_or_else(|e| {
            tracing::warn!(narrator = narrator.name(), error = %e, "voice list unavailable; language not checked");
            Arc::new(Vec::new())
        }),
    };
    let default_voice = narrator.default_voice();
    let book = catalogue::VoiceBook {
        narrator: narrator.name(),
        voices: &voices,
        default_voice: &default_voice,
        configured: narrator.configured_languages(),
    };
    catalogue::choose_voice(asked, language, &book)
}

/// Joins per-request (or per-sentence) audio into `dir/narration.wav` with
/// `gap_s` after each part; returns the file, its length and each part's start.
pub(crate) async fn write_narration<'a>(
    provider: &'static str,
    parts: impl IntoIterator<Item = &'a Pcm>,
    gap_s: f64,
    dir: &Path,
) -> Result<(PathBuf, f64, Vec<f64>), ProviderError> {
    let bad_audio = |e: WavError| ProviderError::new(provider, codes::BAD_AUDIO, e.to_string(), false);
    let (joined, offsets) = Pcm::concat(parts, gap_s)
        .map_err(bad_audio)?
        .ok_or_else(|| ProviderError::new(provider, codes::SCRIPT_EMPTY, "nothing to say", false))?;
    let wav = dir.join("narration.wav");
    tokio::fs::write(&wav, joined.to_wav_bytes()).await.map_err(|e| ProviderError::io(provider, e))?;
    Ok((wav, joined.duration_s(), offsets))
}

/// Spreads the words of a sentence over `[start_s, end_s]` in proportion to
/// their length (plus one for the gap), which is how long they take to say,
/// give or take.
pub fn spread_words(sentence: &str, start_s: f64, end_s: f64) -> Vec<WordTiming> {
    let words = crate::domain::caption_words(sentence);
    let weights: Vec<f64> = words.iter().map(|w| w.chars().count() as f64 + 1.0).collect();
    let total: f64 = weights.iter().sum();
    let span = (end_s - start_s).max(0.0);
    let mut at = start_s;
    words
        .iter()
        .zip(weights)
        .map(|(w, weight)| {
            let len = span * weight / total;
            let timing = WordTiming { text: w.clone(), start_s: at, end_s: at + len };
            at += len;
            timing
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fill_the_sentence_in_order_without_gaps() {
        let w = spread_words("a bbb cc", 1.0, 2.0);
        assert_eq!(w.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(), ["a", "bbb", "cc"]);
        assert_eq!(w[0].start_s, 1.0);
        assert!((w[2].end_s - 2.0).abs() < 1e-9);
        assert!(w[1].end_s - w[1].start_s > w[0].end_s - w[0].start_s, "longer words take longer");
        assert!(w.windows(2).all(|p| (p[0].end_s - p[1].start_s).abs() < 1e-9));
    }
}
