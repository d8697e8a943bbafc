//! `[providers.voice]`: who speaks the narration, picked by `type`, and each
//! narrator's settings. Their defaults are written here once;
//! `config/default.toml` documents them and a settings test holds the two equal.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::settings::{Key, Section, SettingsError, check, is_http_url, key, require_key};

/// The narrator, picked by `type`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VoiceProviderSettings {
    /// espeak-ng, offline.
    Espeak(EspeakSettings),
    /// ElevenLabs text-to-speech with timestamps.
    Elevenlabs(ElevenLabsSettings),
}

impl Section for VoiceProviderSettings {
    const SECTION: &'static str = "providers.voice";

    fn validate(&self) -> Result<(), SettingsError> {
        match self {
            Self::Espeak(e) => e.validate(),
            Self::Elevenlabs(e) => e.validate(),
        }
    }
}

fn is_voice_name(v: &str) -> bool {
    crate::domain::Voice::parse(v).is_ok()
}

const LANGUAGE_MAP: &str = "BCP-47 language tags mapped to voice names, e.g. languages.hi = \"hi\"";

/// Every entry of a `languages` map: a language tag and a voice name.
fn check_language_map(key: Key, map: &BTreeMap<String, String>) -> Result<(), SettingsError> {
    // Not a `rule`: the map's own keys are the settings keys, and it has none by default.
    match map.iter().find(|(k, v)| crate::domain::Language::parse(k).is_err() || !is_voice_name(v)) {
        None => Ok(()),
        Some((k, v)) => {
            Err(SettingsError::Invalid { key, problem: format!("got `{k} = {v}`"), allowed: LANGUAGE_MAP.into() })
        }
    }
}

/// `providers.voice` when `type = "espeak"`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct EspeakSettings {
    /// Voice used when a job names none.
    pub default_voice: String,
    pub words_per_minute: u32,
    /// A voice per language tag (`{ hi = "hi" }`) for jobs that name no voice
    /// and whose language the default voice does not speak. Empty by default:
    /// espeak-ng's voices are named after their languages, and the one for a
    /// language is found in `espeak-ng --voices`.
    pub languages: BTreeMap<String, String>,
}

impl Default for EspeakSettings {
    fn default() -> Self {
        Self { default_voice: "en-us".into(), words_per_minute: 165, languages: BTreeMap::new() }
    }
}

impl Section for EspeakSettings {
    const SECTION: &'static str = "providers.voice";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.words_per_minute, |v| (80..=450).contains(v), "80-450")?;
        check_language_map(key!(languages), &self.languages)?;
        check!(self.default_voice, |v| is_voice_name(v), "a voice name of letters, digits, '-', '_', '+'")
    }
}

/// `providers.voice` when `type = "elevenlabs"`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct ElevenLabsSettings {
    pub base_url: String,
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub api_key: Option<SecretString>,
    /// Always sent: the API's own default model has changed over time.
    pub model_id: String,
    /// A voice id, used when a job names none.
    pub default_voice: String,
    /// `mp3_*` (any plan) or `pcm_*`.
    pub output_format: String,
    /// Characters per request; stay under the model's limit.
    pub max_chars_per_request: usize,
    /// Requests in flight at once from this process (ElevenLabs limits concurrency).
    pub concurrency: usize,
    pub timeout_secs: u64,
    /// A voice id per language tag, for jobs that name no voice and whose
    /// language the default voice does not speak. Empty by default: the
    /// account's voices (`GET /v1/voices`) are searched for one.
    pub languages: BTreeMap<String, String>,
}

impl Default for ElevenLabsSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.elevenlabs.io".into(),
            api_key: None,
            model_id: "eleven_multilingual_v2".into(),
            default_voice: "21m00Tcm4TlvDq8ikWAM".into(),
            output_format: "mp3_44100_128".into(),
            max_chars_per_request: 4000,
            concurrency: 2,
            timeout_secs: 60,
            languages: BTreeMap::new(),
        }
    }
}

impl ElevenLabsSettings {
    /// `timeout_secs`: the timeout of one request.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl Section for ElevenLabsSettings {
    const SECTION: &'static str = "providers.voice";

    fn validate(&self) -> Result<(), SettingsError> {
        require_key(key!(api_key), &self.api_key, "elevenlabs")?;
        check!(self.base_url, |v| is_http_url(v), "an http(s) URL")?;
        check!(self.default_voice, |v| is_voice_name(v), "a voice id")?;
        check!(
            self.output_format,
            |v| v.starts_with("mp3_") || v.starts_with("pcm_"),
            "an mp3_* or pcm_* output format, e.g. mp3_44100_128",
        )?;
        check!(
            self.max_chars_per_request,
            |v| (100..=40_000).contains(v),
            "100-40000 (keep under the model's limit: 10000 for multilingual v2)",
        )?;
        check!(self.concurrency, |v| (1..=30).contains(v), "1-30")?;
        check_language_map(key!(languages), &self.languages)?;
        check!(self.timeout_secs, |v| (1..=600).contains(v), "1-600")
    }
}
