//! Script writers: turn a job spec into the sentences to be spoken, and a
//! web page into video ideas (`POST /v1/ideas`).

mod openrouter;
pub mod settings;
mod template;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use self::settings::ScriptProviderSettings;
use super::http::{ErrorTally, HttpSettings};
use super::{CostMeter, ProviderError};
pub use crate::domain::split_sentences;
use crate::domain::{Idea, IdeaBounds, JobSpec, ScriptOutput};
use crate::ideas::PageText;

pub use openrouter::OpenRouterWriter;
pub use template::TemplateWriter;

/// Writes the script of a job.
#[async_trait]
pub trait ScriptWriter: Send + Sync + 'static {
    /// A name for manifests and cache keys.
    fn name(&self) -> &'static str;
    /// Everything besides the spec that changes what is written (model,
    /// prompt, temperature). `None` for writers that cost nothing to ask again.
    fn cache_identity(&self) -> Option<String>;
    /// Writes the script; a topic's to about `words` words when a budget is
    /// given (see [`word_budget`]).
    async fn write(&self, spec: &JobSpec, words: Option<u32>, meter: &CostMeter)
    -> Result<ScriptOutput, ProviderError>;
    /// Rewrites a topic's script that, spoken, ran `spoken_s` seconds instead
    /// of the target, to about `words` words. `None`: this writer does not
    /// rewrite (the template writer, whose length is its own).
    async fn rewrite_to_length(
        &self,
        _spec: &JobSpec,
        _script: &ScriptOutput,
        _spoken_s: f64,
        _words: u32,
        _meter: &CostMeter,
    ) -> Result<Option<ScriptOutput>, ProviderError> {
        Ok(None)
    }
    /// Suggests exactly `ask.bounds.count` video ideas drawn from a page.
    /// `key`, an LLM key the request brought, replaces the configured one
    /// for this call only; it is never kept, logged or put in an error.
    async fn ideas(
        &self,
        ask: &IdeaAsk<'_>,
        key: Option<&SecretString>,
        meter: &CostMeter,
    ) -> Result<Vec<Idea>, ProviderError>;
}

/// A page to draw ideas from, and what the ideas must fit.
#[derive(Debug, Clone, Copy)]
pub struct IdeaAsk<'a> {
    pub page: &'a PageText,
    /// Most characters of the page's text an LLM is shown (`ideas.max_text_chars`).
    pub max_text_chars: usize,
    pub bounds: IdeaBounds,
}

/// How far a narration may miss its target length before the script is
/// rewritten once: 10 %.
pub const LENGTH_TOLERANCE: f64 = 0.10;

/// The words a script of `target_s` seconds has for a voice that speaks
/// `words_per_second`.
pub fn word_budget(target_s: u32, words_per_second: f64) -> u32 {
    (f64::from(target_s) * words_per_second).round().max(1.0) as u32
}

/// Whether a narration of `spoken_s` misses `target_s` by more than [`LENGTH_TOLERANCE`].
pub fn off_target(spoken_s: f64, target_s: u32) -> bool {
    let target = f64::from(target_s);
    (spoken_s - target).abs() > target * LENGTH_TOLERANCE
}

/// The budget for a rewrite: the script's own pace (`words` spoken in
/// `spoken_s`, pauses included) scaled to the target, which corrects for a
/// voice faster or slower than its nominal figure.
pub fn corrected_budget(words: usize, spoken_s: f64, target_s: u32) -> u32 {
    let pace = words as f64 / spoken_s.max(0.1);
    word_budget(target_s, pace)
}

pub fn from_settings(
    settings: &ScriptProviderSettings,
    http: &HttpSettings,
    tally: Arc<ErrorTally>,
) -> Arc<dyn ScriptWriter> {
    match settings {
        ScriptProviderSettings::Template {} => Arc::new(TemplateWriter),
        ScriptProviderSettings::Openrouter(s) => Arc::new(OpenRouterWriter::new(s, http, tally)),
    }
}

/// The writer that answers an ideas request that brings its own LLM key:
/// the configured OpenRouter writer, or, when the offline template is
/// configured, OpenRouter at its defaults (`providers.script`'s key table)
/// with no key of its own, so the key the request brings is the only one.
pub fn for_request_keys(
    settings: &ScriptProviderSettings,
    http: &HttpSettings,
    tally: Arc<ErrorTally>,
) -> Arc<dyn ScriptWriter> {
    match settings {
        ScriptProviderSettings::Template {} => {
            Arc::new(OpenRouterWriter::new(&settings::OpenRouterSettings::default(), http, tally))
        }
        ScriptProviderSettings::Openrouter(s) => Arc::new(OpenRouterWriter::new(s, http, tally)),
    }
}

/// The given script, split into sentences, spoken as written.
pub fn given_script(text: &str) -> ScriptOutput {
    let sentences = split_sentences(text);
    let title = sentences.first().map(|s| s.chars().take(100).collect()).unwrap_or_default();
    ScriptOutput { title, sentences, writer: "given".into(), footage_terms: vec![], caption: None, hashtags: vec![] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_follow_the_voice_and_the_spoken_pace() {
        assert_eq!(word_budget(30, 2.5), 75);
        assert_eq!(word_budget(60, 165.0 / 60.0 * 1.19), 196);
        assert_eq!(word_budget(5, 0.01), 1, "never an empty budget");
        // 150 words came out as 75 s for a 60 s target: the rewrite asks for 120.
        assert_eq!(corrected_budget(150, 75.0, 60), 120);
        assert_eq!(corrected_budget(50, 20.0, 30), 75);
    }

    #[test]
    fn only_a_miss_of_more_than_a_tenth_is_off_target() {
        assert!(!off_target(33.0, 30) && !off_target(27.0, 30) && !off_target(60.0, 60));
        assert!(off_target(33.1, 30) && off_target(26.9, 30) && off_target(45.0, 90));
    }
}
