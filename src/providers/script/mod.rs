//! Script writers: turn a job spec into the sentences to be spoken.

mod openrouter;
pub mod settings;
mod template;

use std::sync::Arc;

use async_trait::async_trait;

use self::settings::ScriptProviderSettings;
use super::http::{ErrorTally, HttpSettings};
use super::{CostMeter, ProviderError};
pub use crate::domain::split_sentences;
use crate::domain::{JobSpec, ScriptOutput};

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
