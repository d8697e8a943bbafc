//! Script writers: turn a job spec into the sentences to be spoken.

mod openrouter;
mod template;

use std::sync::Arc;

use async_trait::async_trait;

use super::http::ErrorTally;
use super::{CostMeter, ProviderError};
use crate::domain::{JobSpec, ScriptOutput};
use crate::settings::{HttpSettings, ScriptProviderSettings};

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
    async fn write(&self, spec: &JobSpec, meter: &CostMeter) -> Result<ScriptOutput, ProviderError>;
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

/// The given script, split into sentences, spoken as written.
pub fn given_script(text: &str) -> ScriptOutput {
    let sentences = split_sentences(text);
    let title = sentences.first().map(|s| s.chars().take(100).collect()).unwrap_or_default();
    ScriptOutput { title, sentences, writer: "given".into(), footage_terms: vec![], caption: None, hashtags: vec![] }
}

/// Splits text into sentences at `.`, `!`, `?`, `…` followed by a space, and at
/// line breaks; each keeps its punctuation. Narration is synthesised per
/// sentence, which is what gives every sentence a known start and end.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            current.push(c);
            let ends = matches!(c, '.' | '!' | '?' | '…')
                && chars.peek().is_none_or(|n| n.is_whitespace())
                && !matches!(chars.peek(), Some('.' | '!' | '?'));
            if ends {
                push_sentence(&mut out, &current);
                current.clear();
            }
        }
        push_sentence(&mut out, &current);
    }
    out
}

fn push_sentence(out: &mut Vec<String>, s: &str) {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        return;
    }
    // Punctuation or symbols alone ("—", "😀") join the previous sentence instead
    // of becoming a silent sentence of their own.
    match out.last_mut() {
        Some(last) if !s.chars().any(char::is_alphanumeric) => {
            last.push(' ');
            last.push_str(&s);
        }
        _ => out.push(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_ends_and_line_breaks() {
        assert_eq!(
            split_sentences("One. Two!  Three?\nFour is here… five 3.5 percent"),
            ["One.", "Two!", "Three?", "Four is here…", "five 3.5 percent"]
        );
    }

    #[test]
    fn symbol_only_pieces_join_the_previous_sentence() {
        assert_eq!(split_sentences("Wow. 😀\n---"), ["Wow. 😀 ---"]);
        assert_eq!(split_sentences("Wait... what?!"), ["Wait...", "what?!"]);
    }
}
