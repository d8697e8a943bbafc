//! Typed settings, layered `config/default.toml` → optional file → environment,
//! and validated once at start.
//!
//! The defaults are compiled into the binary so `clipforge demo` works from any
//! folder. Every key is documented in `config/default.toml`, next to its env var.
//!
//! # Layout
//!
//! Each section is a struct of its own that checks its own values
//! ([`Section::validate`]): the core sections live in this folder, one file
//! each; a vendor's settings live beside its provider (`providers::script`,
//! `providers::voice`, `providers::footage`, `providers::tiktok`, `notify`) and
//! are re-exported here under their old names. This file holds the loader, the
//! error, the check helpers and the checks that span sections.
//!
//! An error names its key and env var from the field it checks (`key!`,
//! `check!`), never from a typed string, so it cannot name the wrong one; the
//! `every_key` tests refuse a bad value of every key with a rule and read the
//! error. Durations are read through each section's accessors (`heartbeat()`
//! for `heartbeat_secs`), so every conversion is written once.
//!
//! Each default is written once: a section's in `config/default.toml` (always
//! the first layer), a provider type's in code beside its struct, which
//! `config/default.toml` documents and the tests hold equal.

mod auth;
mod captions;
mod data;
#[cfg(test)]
mod every_key;
mod ideas;
mod limits;
mod media;
mod queue;
mod retry;
mod review;
mod server;
mod storage;
#[cfg(test)]
mod tests;
mod uploads;

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use self::auth::AuthSettings;
pub use self::captions::CaptionSettings;
pub use self::data::{DataSettings, RecordsSettings};
pub use self::ideas::IdeaSettings;
pub use self::limits::LimitSettings;
pub use self::media::MediaSettings;
pub use self::queue::QueueSettings;
pub use self::retry::RetrySettings;
pub use self::review::ReviewSettings;
pub use self::server::ServerSettings;
pub use self::storage::{StorageKind, StorageSettings};
pub use self::uploads::UploadSettings;
pub use crate::notify::settings::{BotChat, BotMode, NotifySettings, TelegramSettings, WebhookSettings};
pub use crate::performance::settings::PerformanceSettings;
pub use crate::providers::footage::settings::{FootageProviderSettings, LocalFootageSettings, PexelsSettings};
pub use crate::providers::http::HttpSettings;
pub use crate::providers::instagram::settings::InstagramSettings;
pub use crate::providers::script::settings::{OpenRouterSettings, ScriptProviderSettings};
pub use crate::providers::tiktok::settings::TikTokSettings;
pub use crate::providers::voice::settings::{ElevenLabsSettings, EspeakSettings, VoiceProviderSettings};
pub use crate::providers::youtube::settings::YouTubeSettings;

/// The settings file shipped with the code: every key, its default and its env var.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of every environment variable that overrides a key.
pub const ENV_PREFIX: &str = "CLIPFORGE";

/// Why settings could not be loaded. Each variant names the key and its env var,
/// because the operator who reads it has to find the value to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value parsed but is outside what is allowed.
    #[error("setting `{key}` (env {env}) is invalid: {problem}; allowed: {allowed}", env = key.env())]
    Invalid { key: Key, problem: String, allowed: String },
    /// The layered sources could not be read or did not match the typed shape.
    #[error("settings could not be read: {0} (env vars take the form {ENV_PREFIX}__SECTION__KEY)")]
    Load(#[from] config::ConfigError),
}

/// One key of the settings tree: a section's path and a field of it, e.g.
/// `providers.voice` and `words_per_minute`. Made by `key!` from the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    section: &'static str,
    field: &'static str,
}

impl Key {
    #[doc(hidden)]
    pub const fn new(section: &'static str, field: &'static str) -> Self {
        Self { section, field }
    }

    /// The env var that overrides this key, e.g. `CLIPFORGE__QUEUE__HEARTBEAT_SECS`.
    pub fn env(&self) -> String {
        env_var_for(&self.to_string())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.section, self.field)
    }
}

/// A table of the settings tree, which checks its own values.
pub trait Section {
    /// Where the table sits in the tree, e.g. `queue` or `providers.voice`; the
    /// keys its errors name are this path and the field's name.
    const SECTION: &'static str;

    /// Checks what serde cannot: ranges, formats, and values of this section
    /// that must agree with each other.
    fn validate(&self) -> Result<(), SettingsError> {
        Ok(())
    }
}

/// The [`Key`] of a field: `key!(field)` inside an `impl` of a [`Section`], or
/// `key!(Type, field)` for another section's. The field must exist, so a
/// renamed field cannot leave a stale key behind.
macro_rules! key {
    ($field:ident) => {
        $crate::settings::key!(Self, $field)
    };
    ($ty:ty, $field:ident) => {{
        let _field_exists = |s: &$ty| {
            let _ = &s.$field;
        };
        $crate::settings::Key::new(<$ty as $crate::settings::Section>::SECTION, stringify!($field))
    }};
}
pub(crate) use key;

/// Checks one field of a [`Section`]: `check!(self.heartbeat_secs, |v| (1..=300).contains(v), "1-300")`
/// binds `v` to `&self.heartbeat_secs`, and a failure names that field's key,
/// its env var, the value and what is allowed.
macro_rules! check {
    ($s:ident . $field:ident, |$v:ident| $ok:expr, $allowed:expr $(,)?) => {{
        let $v = &$s.$field;
        $crate::settings::verdict($crate::settings::key!($field), $ok, $v, $allowed)
    }};
}
pub(crate) use check;

/// Everything clipforge can be told at start.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub data: DataSettings,
    pub records: RecordsSettings,
    pub queue: QueueSettings,
    pub retry: RetrySettings,
    pub review: ReviewSettings,
    pub storage: StorageSettings,
    pub media: MediaSettings,
    pub captions: CaptionSettings,
    /// The team's own media (`POST /v1/media`).
    pub uploads: UploadSettings,
    /// Video ideas read from a web page (`POST /v1/ideas`).
    pub ideas: IdeaSettings,
    pub limits: LimitSettings,
    pub providers: ProviderSettings,
    pub tiktok: TikTokSettings,
    /// YouTube Shorts as a publish target (`targets` in a job).
    pub youtube: YouTubeSettings,
    /// Instagram Reels as a publish target (`targets` in a job).
    pub instagram: InstagramSettings,
    /// Collecting each TikTok post's counts.
    pub performance: PerformanceSettings,
    pub auth: AuthSettings,
    pub notify: NotifySettings,
    pub telegram: TelegramSettings,
    pub webhooks: WebhookSettings,
}

/// `[providers.*]`: the outside services a job uses, each picked by `type`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub http: HttpSettings,
    pub script: ScriptProviderSettings,
    pub voice: VoiceProviderSettings,
    pub footage: FootageProviderSettings,
    /// AI-generated clips on top of `footage`.
    pub ai_video: crate::providers::footage::AiVideoSettings,
}

impl Settings {
    /// Loads the compiled-in defaults, then `file` when given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Settings::load`], with explicit `(key, value)` overrides instead of
    /// the process environment; tests use this to stay independent of each other.
    pub fn load_with_env(file: Option<&Path>, env: Option<Vec<(String, String)>>) -> Result<Self, SettingsError> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let mut environment =
            config::Environment::with_prefix(ENV_PREFIX).prefix_separator("__").separator("__").try_parsing(true);
        if let Some(vars) = env {
            environment = environment.source(Some(vars.into_iter().collect()));
        }
        let settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Each section's own checks, then the values of different sections that must agree.
    fn validate(&self) -> Result<(), SettingsError> {
        self.server.validate()?;
        self.data.validate()?;
        self.records.validate()?;
        self.queue.validate()?;
        self.retry.validate()?;
        self.review.validate()?;
        self.storage.validate()?;
        self.media.validate()?;
        self.captions.validate()?;
        self.uploads.validate()?;
        self.ideas.validate()?;
        self.limits.validate()?;
        let p = &self.providers;
        p.http.validate()?;
        p.script.validate()?;
        p.voice.validate()?;
        p.footage.validate()?;
        p.ai_video.validate()?;
        self.tiktok.validate()?;
        self.youtube.validate()?;
        self.instagram.validate()?;
        self.performance.validate()?;
        self.auth.validate()?;
        self.notify.validate()?;
        self.telegram.validate()?;
        self.webhooks.validate()?;
        self.validate_across_sections()
    }

    fn validate_across_sections(&self) -> Result<(), SettingsError> {
        let l = &self.limits;
        let narrator_wpm = match &self.providers.voice {
            VoiceProviderSettings::Espeak(e) => e.words_per_minute,
            VoiceProviderSettings::Elevenlabs(_) => 0,
        };
        verdict(
            key!(LimitSettings, fastest_words_per_minute),
            (100..=1000).contains(&l.fastest_words_per_minute) && l.fastest_words_per_minute >= narrator_wpm,
            l.fastest_words_per_minute,
            format!(
                "100-1000, and at least {} (else scripts that fit would be refused)",
                key!(EspeakSettings, words_per_minute)
            ),
        )?;
        let a = &self.auth;
        rule(
            key!(AuthSettings, require_keys),
            self.server.listen.ip().is_loopback() || a.require_keys || a.allow_open_non_loopback,
            || {
                format!(
                    "false while {} is {}, which is not a loopback address: anyone who can reach the port could \
                     submit jobs, read them and manage accounts",
                    key!(ServerSettings, listen),
                    self.server.listen
                )
            },
            format!(
                "true (then create keys with `clipforge keys create`); or listen on 127.0.0.1; or set {} = true \
                 when a gateway in front authenticates every request",
                key!(AuthSettings, allow_open_non_loopback)
            ),
        )?;
        let chat_set = !self.notify.telegram_chat_id.trim().is_empty();
        rule(
            key!(TelegramSettings, bot_token),
            !chat_set || self.telegram.bot_token().is_some(),
            || format!("missing; {} is set", key!(NotifySettings, telegram_chat_id)),
            "the bot token from @BotFather",
        )?;
        rule(
            key!(WebhookSettings, secret),
            self.notify.webhook_url.is_empty() || self.webhooks.secret().is_some(),
            || format!("missing; {} is set", key!(NotifySettings, webhook_url)),
            "a random key the receivers share, e.g. `openssl rand -hex 32`",
        )
    }

    /// The record store URL, defaulting to the SQLite file in the data folder.
    pub fn records_url(&self) -> String {
        if self.records.url.is_empty() {
            format!("sqlite://{}", self.data.dir.join("clipforge.db").display())
        } else {
            self.records.url.clone()
        }
    }

    /// The queue URL, defaulting to a SQLite file beside the records (embedded
    /// mode). It is a file of its own because apalis migrates it with its own
    /// migration history, which must not mix with ours.
    pub fn queue_url(&self) -> String {
        if self.queue.url.is_empty() {
            format!("sqlite://{}", self.data.dir.join("queue.db").display())
        } else {
            self.queue.url.clone()
        }
    }

    /// Folder of the local object store.
    pub fn storage_dir(&self) -> PathBuf {
        or_data_dir(&self.storage.dir, &self.data.dir, "objects")
    }

    /// Folder under which each stage gets its own scratch folder.
    pub fn scratch_dir(&self) -> PathBuf {
        or_data_dir(&self.media.scratch_dir, &self.data.dir, "scratch")
    }

    /// Where TikTok sends the browser back after consent in the web flow.
    /// The web connect flow's callback for `platform` (`youtube`, `instagram`):
    /// the setting, or `{server.url}/v1/accounts/{platform}/callback`.
    pub fn platform_redirect_uri(&self, platform: &str) -> String {
        let set = match platform {
            "youtube" => &self.youtube.redirect_uri,
            _ => &self.instagram.redirect_uri,
        };
        if set.is_empty() {
            format!("{}/v1/accounts/{platform}/callback", self.server.url.trim_end_matches('/'))
        } else {
            set.clone()
        }
    }

    pub fn tiktok_redirect_uri(&self) -> String {
        if self.tiktok.redirect_uri.is_empty() {
            format!("{}/v1/accounts/tiktok/callback", self.server.url.trim_end_matches('/'))
        } else {
            self.tiktok.redirect_uri.clone()
        }
    }

    /// Folder of background music tracks, when configured.
    pub fn music_dir(&self) -> Option<PathBuf> {
        (!self.media.music_dir.is_empty()).then(|| PathBuf::from(&self.media.music_dir))
    }
}

fn or_data_dir(value: &str, data_dir: &Path, leaf: &str) -> PathBuf {
    if value.is_empty() { data_dir.join(leaf) } else { PathBuf::from(value) }
}

/// The env var that overrides `key`, e.g. `queue.url` → `CLIPFORGE__QUEUE__URL`.
pub fn env_var_for(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
}

/// `Ok` when `ok`, else the error naming `key`, the value it got and what is allowed.
pub(crate) fn verdict(
    key: Key,
    ok: bool,
    value: impl fmt::Display,
    allowed: impl Into<String>,
) -> Result<(), SettingsError> {
    rule(key, ok, || format!("got `{value}`"), allowed)
}

/// Like [`verdict`], with the problem in words of its own (a missing value, a
/// value that disagrees with another key).
pub(crate) fn rule(
    key: Key,
    ok: bool,
    problem: impl FnOnce() -> String,
    allowed: impl Into<String>,
) -> Result<(), SettingsError> {
    #[cfg(test)]
    every_key::note_rule(key);
    if ok {
        return Ok(());
    }
    Err(SettingsError::Invalid { key, problem: problem(), allowed: allowed.into() })
}

/// A real provider without its key fails at start, not at the first job.
pub(crate) fn require_key(key: Key, value: &Option<SecretString>, provider: &str) -> Result<(), SettingsError> {
    rule(
        key,
        value.as_ref().is_some_and(|v| !v.expose_secret().trim().is_empty()),
        || format!("missing; the {provider} provider is chosen"),
        "the provider's API key (or choose an offline provider type)",
    )
}

/// A secret set to an empty value counts as unset, so a compose file can pass
/// an empty variable through.
pub(crate) fn non_empty(secret: &Option<SecretString>) -> Option<&SecretString> {
    secret.as_ref().filter(|k| !k.expose_secret().trim().is_empty())
}

pub(crate) fn is_http_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Secrets show as `(hidden)` when the tests walk the settings tree.
#[cfg(test)]
pub(crate) fn hidden<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("(hidden)"),
        None => s.serialize_none(),
    }
}
