//! `[providers.script]`: who writes the script, picked by `type`, and the
//! OpenRouter writer's settings. The OpenRouter defaults are written here once;
//! `config/default.toml` documents them and a settings test holds the two equal.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::settings::{Section, SettingsError, check, is_http_url, key, require_key};

/// The script writer, picked by `type`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScriptProviderSettings {
    /// The job's own script, or a template filled from its topic.
    Template {},
    /// OpenRouter chat completions with a strict JSON schema.
    Openrouter(OpenRouterSettings),
}

impl Section for ScriptProviderSettings {
    const SECTION: &'static str = "providers.script";

    fn validate(&self) -> Result<(), SettingsError> {
        match self {
            Self::Template {} => Ok(()),
            Self::Openrouter(o) => o.validate(),
        }
    }
}

/// `providers.script` when `type = "openrouter"`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct OpenRouterSettings {
    pub base_url: String,
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub api_key: Option<SecretString>,
    pub model: String,
    pub temperature: f32,
    /// User prompt; `{topic}`, `{seconds}` and `{words}` are filled in.
    pub prompt: String,
    pub max_tokens: u32,
    pub timeout_secs: u64,
}

impl Default for OpenRouterSettings {
    fn default() -> Self {
        Self {
            base_url: "https://openrouter.ai/api/v1".into(),
            api_key: None,
            model: "openai/gpt-4o-mini".into(),
            temperature: 0.7,
            prompt: "Write the narration of a vertical short video about: {topic}. It is spoken in about {seconds} seconds, \
                     so use about {words} words. Open with a hook, then short sentences of plain spoken English. For every \
                     sentence give two or three stock-footage search terms that would illustrate it."
                .into(),
            max_tokens: 2000,
            timeout_secs: 60,
        }
    }
}

impl OpenRouterSettings {
    /// `timeout_secs`: the timeout of one request.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl Section for OpenRouterSettings {
    const SECTION: &'static str = "providers.script";

    fn validate(&self) -> Result<(), SettingsError> {
        require_key(key!(api_key), &self.api_key, "openrouter")?;
        check!(self.base_url, |v| is_http_url(v), "an http(s) URL")?;
        check!(self.temperature, |v| (0.0..=2.0).contains(v), "0.0-2.0")?;
        check!(self.model, |v| !v.is_empty(), "a model id, e.g. openai/gpt-4o-mini")?;
        check!(self.timeout_secs, |v| (1..=600).contains(v), "1-600")
    }
}
