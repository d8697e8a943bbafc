//! Typed settings, layered `config/default.toml` → optional file → environment,
//! and validated once at start.
//!
//! The defaults are compiled into the binary so `clipforge demo` works from any
//! folder. Every key is documented in `config/default.toml`, next to its env var.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The settings file shipped with the code: every key, its default and its env var.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of every environment variable that overrides a key.
pub const ENV_PREFIX: &str = "CLIPFORGE";

/// Why settings could not be loaded. Each variant names the key and its env var,
/// because the operator who reads it has to find the value to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value parsed but is outside what is allowed.
    #[error("setting `{key}` (env {env}) is invalid: {problem}; allowed: {allowed}")]
    Invalid { key: &'static str, env: String, problem: String, allowed: &'static str },
    /// The layered sources could not be read or did not match the typed shape.
    #[error("settings could not be read: {0} (env vars take the form {ENV_PREFIX}__SECTION__KEY)")]
    Load(#[from] config::ConfigError),
}

/// Everything clipforge can be told at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub data: DataSettings,
    pub records: RecordsSettings,
    pub queue: QueueSettings,
    pub retry: RetrySettings,
    pub storage: StorageSettings,
    pub media: MediaSettings,
    pub limits: LimitSettings,
    pub providers: ProviderSettings,
    pub tiktok: TikTokSettings,
    pub auth: AuthSettings,
    pub notify: NotifySettings,
    pub telegram: TelegramSettings,
    pub webhooks: WebhookSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// The public URL of the API: where the CLI finds it, and the only origin
    /// (and, with `allowed_hosts`, the only host name) browsers may use.
    pub url: String,
    /// More host names (or IP literals) the API answers to, comma-separated,
    /// besides `url`'s host and loopback literals; empty for none.
    pub allowed_hosts: String,
    /// How long a client has to send a whole request head.
    pub header_timeout_secs: u64,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout_secs: u64,
    /// Longest wait for the next piece of a request body.
    pub body_timeout_secs: u64,
}

impl ServerSettings {
    /// The host names of `allowed_hosts`, lowercased.
    pub fn allowed_host_list(&self) -> Vec<String> {
        self.allowed_hosts.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsSettings {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub url: String,
    pub namespace: String,
    pub heartbeat_secs: u64,
    pub missed_heartbeats: usize,
    pub redis_response_timeout_secs: u64,
    pub max_deliveries: usize,
    pub prepare_concurrency: usize,
    pub render_concurrency: usize,
    pub publish_concurrency: usize,
    /// How long a finished task stays in the queue before it is deleted.
    pub keep_finished_secs: u64,
    /// How long a stage waits for an unreachable store (queue or records)
    /// before it gives up; an outage shorter than this delays work, never fails it.
    pub outage_patience_secs: u64,
    /// How often the reconciler compares the records with the queues.
    pub reconcile_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct StorageSettings {
    #[serde(rename = "type")]
    pub kind: StorageKind,
    pub dir: String,
    pub retention_days: u32,
    pub sweep_interval_secs: u64,
    #[serde(default)]
    pub bucket: String,
    /// Empty: AWS's own endpoint for the region.
    #[serde(default)]
    pub endpoint: String,
    #[serde(default = "defaults::region")]
    pub region: String,
    #[serde(default = "defaults::yes")]
    pub path_style: bool,
    /// Empty: the default AWS credential chain.
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Option<SecretString>,
    #[serde(default = "defaults::part_size_mb")]
    pub part_size_mb: u64,
    #[serde(default = "defaults::presign_secs")]
    pub presign_secs: u64,
    #[serde(default = "defaults::yes")]
    pub manage_lifecycle: bool,
}

/// Which object store holds staged renders and the provider cache.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// A folder on this machine.
    Local,
    /// An S3-compatible bucket (AWS S3, Cloudflare R2, Garage, MinIO).
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub espeak: PathBuf,
    pub scratch_dir: String,
    pub render_timeout_secs: u64,
    pub preset: String,
    pub crf: u8,
    pub fonts_dir: PathBuf,
    pub caption_font: String,
    pub caption_size: u32,
    pub music_dir: String,
    /// Threads one ffmpeg render may use for encoding and for filtering (each
    /// input's decoder runs on one thread of its own).
    pub ffmpeg_threads: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_script_chars: usize,
    pub min_target_secs: u32,
    pub max_target_secs: u32,
    /// Most lines (jobs) one `POST /v1/batches` may carry.
    pub max_batch_lines: usize,
    /// Largest batch body, in MiB.
    pub max_batch_mb: usize,
    /// Most sentences (caption lines, narration segments) one script may have.
    pub max_sentences: usize,
    /// Longest narration one job may have, in seconds.
    pub max_narration_secs: u32,
    /// The speaking rate the narration of a submitted script is estimated
    /// with: faster than any narrator speaks, so only a sure overrun is refused.
    pub fastest_words_per_minute: u32,
    /// Most footage segments (ffmpeg inputs) one render may have.
    pub max_footage_segments: usize,
}

impl LimitSettings {
    /// The limits every submitted spec is checked against.
    pub fn spec(&self) -> crate::domain::SpecLimits {
        crate::domain::SpecLimits {
            max_script_chars: self.max_script_chars,
            min_target_secs: self.min_target_secs,
            max_target_secs: self.max_target_secs,
            max_sentences: self.max_sentences,
            max_narration_secs: self.max_narration_secs,
            fastest_words_per_minute: self.fastest_words_per_minute,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub http: HttpSettings,
    pub script: ScriptProviderSettings,
    pub voice: VoiceProviderSettings,
    pub footage: FootageProviderSettings,
}

/// The script writer, picked by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScriptProviderSettings {
    /// The job's own script, or a template filled from its topic.
    Template {},
    /// OpenRouter chat completions with a strict JSON schema.
    Openrouter(OpenRouterSettings),
}

/// `providers.script` when `type = "openrouter"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRouterSettings {
    #[serde(default = "defaults::openrouter_url")]
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    #[serde(default = "defaults::openrouter_model")]
    pub model: String,
    #[serde(default = "defaults::temperature")]
    pub temperature: f32,
    /// User prompt; `{topic}`, `{seconds}` and `{words}` are filled in.
    #[serde(default = "defaults::prompt")]
    pub prompt: String,
    #[serde(default = "defaults::max_tokens")]
    pub max_tokens: u32,
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
}

/// The narrator, picked by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VoiceProviderSettings {
    /// espeak-ng, offline.
    Espeak(EspeakSettings),
    /// ElevenLabs text-to-speech with timestamps.
    Elevenlabs(ElevenLabsSettings),
}

/// `providers.voice` when `type = "espeak"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EspeakSettings {
    /// Voice used when a job names none.
    #[serde(default = "defaults::espeak_voice")]
    pub default_voice: String,
    #[serde(default = "defaults::words_per_minute")]
    pub words_per_minute: u32,
}

/// `providers.voice` when `type = "elevenlabs"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElevenLabsSettings {
    #[serde(default = "defaults::elevenlabs_url")]
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Always sent: the API's own default model has changed over time.
    #[serde(default = "defaults::elevenlabs_model")]
    pub model_id: String,
    /// A voice id, used when a job names none.
    #[serde(default = "defaults::elevenlabs_voice")]
    pub default_voice: String,
    /// `mp3_*` (any plan) or `pcm_*`.
    #[serde(default = "defaults::elevenlabs_format")]
    pub output_format: String,
    /// Characters per request; stay under the model's limit.
    #[serde(default = "defaults::elevenlabs_chunk")]
    pub max_chars_per_request: usize,
    /// Requests in flight at once from this process (ElevenLabs limits concurrency).
    #[serde(default = "defaults::elevenlabs_concurrency")]
    pub concurrency: usize,
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
}

/// The footage source, picked by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FootageProviderSettings {
    /// A folder of clips, or generated clips when the folder is not set.
    Local { library_dir: String, max_clip_secs: f64 },
    /// Pexels video search, falling back to the local library (or generated clips).
    Pexels(PexelsSettings),
}

/// `providers.footage` when `type = "pexels"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PexelsSettings {
    #[serde(default = "defaults::pexels_url")]
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Used when a search finds nothing usable, even after a broader query.
    #[serde(default)]
    pub library_dir: String,
    #[serde(default = "defaults::max_clip_secs")]
    pub max_clip_secs: f64,
    /// Longest wait for the hourly request budget before failing as retryable.
    #[serde(default = "defaults::max_rate_wait_secs")]
    pub max_rate_wait_secs: u64,
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
}

/// TikTok publishing: the app's credentials, where TikTok lives, and its limits.
/// Empty `client_key` means no publisher: jobs naming an `account` are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TikTokSettings {
    pub client_key: String,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// 32 bytes, base64: seals access and refresh tokens at rest (AES-256-GCM).
    #[serde(default)]
    pub token_key: Option<SecretString>,
    pub authorize_url: String,
    pub api_url: String,
    pub scopes: String,
    /// The web flow's callback; empty means `{server.url}/v1/accounts/tiktok/callback`.
    pub redirect_uri: String,
    /// Port the desktop flow (`clipforge accounts connect`) listens on; 0 picks a free one.
    pub desktop_port: u16,
    pub state_ttl_secs: u64,
    pub refresh_margin_secs: u64,
    pub refresh_lock_secs: u64,
    pub init_per_minute: u32,
    pub status_per_minute: u32,
    pub max_pending_drafts: u32,
    pub pending_window_hours: u64,
    pub rate_limit_backoff_secs: u64,
    pub pending_share_backoff_secs: u64,
    /// New uploads one delivery may start after its upload URL expired or
    /// TikTok dropped its upload; past that the job fails `upload_url_expired`.
    pub upload_restarts: u32,
    /// Wait before the n-th such new upload: the initial wait, doubling, at most the max.
    pub restart_backoff_initial_ms: u64,
    pub restart_backoff_max_ms: u64,
    pub status_poll_initial_ms: u64,
    pub status_poll_max_ms: u64,
    pub status_timeout_secs: u64,
    pub waiting_check_secs: u64,
    pub timeout_secs: u64,
}

/// Who may call the API: API keys with scopes, and how often each key may call.
/// Off by default, so the embedded mode on 127.0.0.1 needs no set-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Every route but health, readiness, the OpenAPI document and TikTok's
    /// callback needs `Authorization: Bearer <key>` with the route's scope.
    pub require_keys: bool,
    /// Requests one key may make per 60-second window, counted across every
    /// API process that shares the Redis queue (or in this process without Redis).
    pub requests_per_minute: u32,
    /// Lets the API listen beyond loopback without keys, for operators whose
    /// gateway in front authenticates every request.
    pub allow_open_non_loopback: bool,
}

/// Team-wide notification targets, used for every job that names none of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Telegram chat (numeric id or `@channelname`); empty sends no Telegram messages.
    pub telegram_chat_id: String,
    /// Where job events are POSTed; empty sends no webhooks.
    pub webhook_url: String,
    /// Also announce jobs when they are queued (the other events always go).
    pub on_queued: bool,
    /// How often a publish-role process looks for notifications to send.
    pub poll_ms: u64,
    /// How long a claimed notification is held by its sender before another
    /// process takes it to be dead and sends it again.
    pub lease_secs: u64,
}

/// The Telegram bot that sends notifications.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// The bot token from @BotFather; without it no Telegram message is sent.
    #[serde(default)]
    pub bot_token: Option<SecretString>,
    pub api_url: String,
    /// Finished videos up to this size are uploaded with sendVideo; larger ones
    /// are sent as a link (Telegram refuses bot uploads over 50 MB).
    pub send_video_max_mb: u64,
    pub timeout_secs: u64,
}

impl TelegramSettings {
    /// The bot token, when one is set (an empty value counts as unset).
    pub fn bot_token(&self) -> Option<&SecretString> {
        self.bot_token.as_ref().filter(|k| !k.expose_secret().trim().is_empty())
    }
}

/// Signed webhooks: the HMAC key, which targets are allowed, and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The HMAC-SHA256 key receivers verify signatures with; required when any
    /// webhook target is configured.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// Allow targets on loopback, private, link-local and unique-local addresses.
    pub allow_private: bool,
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub timeout_secs: u64,
}

impl WebhookSettings {
    /// The signing key, when one is set (an empty value counts as unset).
    pub fn secret(&self) -> Option<&SecretString> {
        self.secret.as_ref().filter(|k| !k.expose_secret().trim().is_empty())
    }
}

impl TikTokSettings {
    /// Whether TikTok publishing is configured at all.
    pub fn enabled(&self) -> bool {
        !self.client_key.trim().is_empty()
    }

    /// The token key, when one is set (an empty value counts as unset, so a
    /// compose file can pass an empty variable through).
    pub fn token_key(&self) -> Option<&SecretString> {
        self.token_key.as_ref().filter(|k| !k.expose_secret().trim().is_empty())
    }
}

/// How each outside call is retried before its error reaches the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

mod defaults {
    pub fn region() -> String {
        "auto".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn part_size_mb() -> u64 {
        16
    }
    pub fn presign_secs() -> u64 {
        86_400
    }
    pub fn openrouter_url() -> String {
        "https://openrouter.ai/api/v1".into()
    }
    pub fn openrouter_model() -> String {
        "openai/gpt-4o-mini".into()
    }
    pub fn temperature() -> f32 {
        0.7
    }
    pub fn prompt() -> String {
        "Write the narration of a vertical short video about: {topic}. It is spoken in about {seconds} seconds, \
         so use about {words} words. Open with a hook, then short sentences of plain spoken English. For every \
         sentence give two or three stock-footage search terms that would illustrate it."
            .into()
    }
    pub fn max_tokens() -> u32 {
        2000
    }
    pub fn timeout_secs() -> u64 {
        60
    }
    pub fn espeak_voice() -> String {
        "en-us".into()
    }
    pub fn words_per_minute() -> u32 {
        165
    }
    pub fn elevenlabs_url() -> String {
        "https://api.elevenlabs.io".into()
    }
    pub fn elevenlabs_model() -> String {
        "eleven_multilingual_v2".into()
    }
    pub fn elevenlabs_voice() -> String {
        "21m00Tcm4TlvDq8ikWAM".into()
    }
    pub fn elevenlabs_format() -> String {
        "mp3_44100_128".into()
    }
    pub fn elevenlabs_chunk() -> usize {
        4000
    }
    pub fn elevenlabs_concurrency() -> usize {
        2
    }
    pub fn pexels_url() -> String {
        "https://api.pexels.com".into()
    }
    pub fn max_clip_secs() -> f64 {
        4.0
    }
    pub fn max_rate_wait_secs() -> u64 {
        120
    }
}

/// The x264 presets we accept; slower ones than `slow` make no sense for drafts.
const PRESETS: &[&str] = &["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"];

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

    /// Checks what serde cannot: ranges, formats, and values that must agree.
    fn validate(&self) -> Result<(), SettingsError> {
        self.validate_server()?;
        let q = &self.queue;
        check(
            "queue.url",
            q.url.is_empty() || q.url.starts_with("redis://") || q.url.starts_with("sqlite:"),
            &q.url,
            "empty (embedded SQLite queue), redis://HOST:PORT[/DB] or sqlite://PATH",
        )?;
        check(
            "records.url",
            self.records.url.is_empty()
                || ["sqlite:", "postgres://", "postgresql://"].iter().any(|p| self.records.url.starts_with(p)),
            &self.records.url,
            "empty (embedded), sqlite://PATH or postgres://USER@HOST:PORT/DB",
        )?;
        check(
            "queue.namespace",
            !q.namespace.is_empty()
                && q.namespace.len() <= 64
                && q.namespace.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            &q.namespace,
            "1-64 characters of a-z, A-Z, 0-9, '-', '_', '.'",
        )?;
        check("queue.heartbeat_secs", (1..=300).contains(&q.heartbeat_secs), q.heartbeat_secs, "1-300")?;
        check("queue.missed_heartbeats", (1..=100).contains(&q.missed_heartbeats), q.missed_heartbeats, "1-100")?;
        check(
            "queue.outage_patience_secs",
            (1..=86_400).contains(&q.outage_patience_secs),
            q.outage_patience_secs,
            "1-86400",
        )?;
        check("queue.reconcile_secs", (1..=3_600).contains(&q.reconcile_secs), q.reconcile_secs, "1-3600")?;
        check(
            "queue.redis_response_timeout_secs",
            (1..=600).contains(&q.redis_response_timeout_secs),
            q.redis_response_timeout_secs,
            "1-600",
        )?;
        check("queue.max_deliveries", (1..=20).contains(&q.max_deliveries), q.max_deliveries, "1-20")?;
        check(
            "queue.keep_finished_secs",
            q.keep_finished_secs <= 31_536_000,
            q.keep_finished_secs,
            "0-31536000 (a year)",
        )?;
        for (key, n) in [
            ("queue.prepare_concurrency", q.prepare_concurrency),
            ("queue.render_concurrency", q.render_concurrency),
            ("queue.publish_concurrency", q.publish_concurrency),
        ] {
            check(key, (1..=64).contains(&n), n, "1-64")?;
        }
        let r = &self.retry;
        check("retry.max_attempts", (1..=20).contains(&r.max_attempts), r.max_attempts, "1-20")?;
        check(
            "retry.initial_backoff_ms",
            (1..=600_000).contains(&r.initial_backoff_ms),
            r.initial_backoff_ms,
            "1-600000",
        )?;
        check(
            "retry.max_backoff_ms",
            r.max_backoff_ms >= r.initial_backoff_ms && r.max_backoff_ms <= 3_600_000,
            r.max_backoff_ms,
            "at least retry.initial_backoff_ms, at most 3600000",
        )?;
        check(
            "storage.retention_days",
            (1..=365).contains(&self.storage.retention_days),
            self.storage.retention_days,
            "1-365",
        )?;
        let st = &self.storage;
        if st.kind == StorageKind::S3 {
            check(
                "storage.bucket",
                !st.bucket.is_empty(),
                &st.bucket,
                "a bucket name (required when storage.type = s3)",
            )?;
            check(
                "storage.endpoint",
                st.endpoint.is_empty() || is_http_url(&st.endpoint),
                &st.endpoint,
                "empty (AWS) or an http(s) URL, e.g. https://<account>.r2.cloudflarestorage.com",
            )?;
            check("storage.region", !st.region.is_empty(), &st.region, "a region; \"auto\" for R2")?;
            check(
                "storage.secret_access_key",
                st.access_key_id.is_empty() == st.secret_access_key.is_none(),
                "(hidden)",
                "set both storage.access_key_id and storage.secret_access_key, or neither (default credential chain)",
            )?;
        }
        check(
            "storage.part_size_mb",
            (5..=512).contains(&st.part_size_mb),
            st.part_size_mb,
            "5-512 (S3 parts are at least 5 MiB; all but the last are this size)",
        )?;
        check(
            "storage.presign_secs",
            (1..=604_800).contains(&st.presign_secs),
            st.presign_secs,
            "1-604800 (a SigV4 link lasts at most 7 days)",
        )?;
        check(
            "storage.sweep_interval_secs",
            (1..=86_400).contains(&self.storage.sweep_interval_secs),
            self.storage.sweep_interval_secs,
            "1-86400",
        )?;
        let m = &self.media;
        check(
            "media.preset",
            PRESETS.contains(&m.preset.as_str()),
            &m.preset,
            "ultrafast, superfast, veryfast, faster, fast, medium, slow",
        )?;
        check("media.crf", m.crf <= 51, m.crf, "0-51")?;
        check(
            "media.render_timeout_secs",
            (10..=86_400).contains(&m.render_timeout_secs),
            m.render_timeout_secs,
            "10-86400",
        )?;
        check("media.caption_size", (12..=300).contains(&m.caption_size), m.caption_size, "12-300")?;
        check(
            "media.caption_font",
            !m.caption_font.is_empty() && !m.caption_font.contains([',', '\n']),
            &m.caption_font,
            "a font family name without commas",
        )?;
        check("media.ffmpeg_threads", (1..=64).contains(&m.ffmpeg_threads), m.ffmpeg_threads, "1-64")?;
        let l = &self.limits;
        check(
            "limits.max_script_chars",
            (100..=20_000).contains(&l.max_script_chars),
            l.max_script_chars,
            "100-20000",
        )?;
        check(
            "limits.min_target_secs",
            l.min_target_secs >= 1 && l.min_target_secs <= l.max_target_secs,
            l.min_target_secs,
            "1 up to limits.max_target_secs",
        )?;
        check("limits.max_target_secs", l.max_target_secs <= 600, l.max_target_secs, "at most 600")?;
        check("limits.max_batch_lines", (1..=100_000).contains(&l.max_batch_lines), l.max_batch_lines, "1-100000")?;
        check("limits.max_batch_mb", (1..=1024).contains(&l.max_batch_mb), l.max_batch_mb, "1-1024")?;
        check("limits.max_sentences", (1..=5000).contains(&l.max_sentences), l.max_sentences, "1-5000")?;
        check(
            "limits.max_narration_secs",
            l.max_narration_secs >= l.max_target_secs && l.max_narration_secs <= 3600,
            l.max_narration_secs,
            "at least limits.max_target_secs (a topic job may ask for that much), at most 3600",
        )?;
        check(
            "limits.max_footage_segments",
            (1..=500).contains(&l.max_footage_segments),
            l.max_footage_segments,
            "1-500",
        )?;
        let narrator_wpm = match &self.providers.voice {
            VoiceProviderSettings::Espeak(e) => e.words_per_minute,
            VoiceProviderSettings::Elevenlabs(_) => 0,
        };
        check(
            "limits.fastest_words_per_minute",
            (100..=1000).contains(&l.fastest_words_per_minute) && l.fastest_words_per_minute >= narrator_wpm,
            l.fastest_words_per_minute,
            "100-1000, and at least providers.voice.words_per_minute (else scripts that fit would be refused)",
        )?;
        let h = &self.providers.http;
        check("providers.http.attempts", (1..=10).contains(&h.attempts), h.attempts, "1-10")?;
        check(
            "providers.http.max_backoff_ms",
            h.initial_backoff_ms >= 1 && h.max_backoff_ms >= h.initial_backoff_ms,
            h.max_backoff_ms,
            "at least providers.http.initial_backoff_ms (which must be at least 1)",
        )?;
        match &self.providers.script {
            ScriptProviderSettings::Template {} => {}
            ScriptProviderSettings::Openrouter(o) => {
                require_key("providers.script.api_key", &o.api_key, "openrouter")?;
                check("providers.script.base_url", is_http_url(&o.base_url), &o.base_url, "an http(s) URL")?;
                check("providers.script.temperature", (0.0..=2.0).contains(&o.temperature), o.temperature, "0.0-2.0")?;
                check("providers.script.model", !o.model.is_empty(), &o.model, "a model id, e.g. openai/gpt-4o-mini")?;
                check("providers.script.timeout_secs", (1..=600).contains(&o.timeout_secs), o.timeout_secs, "1-600")?;
            }
        }
        let voice_name = |v: &str| crate::domain::Voice::parse(v).is_ok();
        match &self.providers.voice {
            VoiceProviderSettings::Espeak(EspeakSettings { default_voice, words_per_minute }) => {
                check(
                    "providers.voice.words_per_minute",
                    (80..=450).contains(words_per_minute),
                    words_per_minute,
                    "80-450",
                )?;
                check(
                    "providers.voice.default_voice",
                    voice_name(default_voice),
                    default_voice,
                    "a voice name of letters, digits, '-', '_', '+'",
                )?;
            }
            VoiceProviderSettings::Elevenlabs(e) => {
                require_key("providers.voice.api_key", &e.api_key, "elevenlabs")?;
                check("providers.voice.base_url", is_http_url(&e.base_url), &e.base_url, "an http(s) URL")?;
                check("providers.voice.default_voice", voice_name(&e.default_voice), &e.default_voice, "a voice id")?;
                check(
                    "providers.voice.output_format",
                    e.output_format.starts_with("mp3_") || e.output_format.starts_with("pcm_"),
                    &e.output_format,
                    "an mp3_* or pcm_* output format, e.g. mp3_44100_128",
                )?;
                check(
                    "providers.voice.max_chars_per_request",
                    (100..=40_000).contains(&e.max_chars_per_request),
                    e.max_chars_per_request,
                    "100-40000 (keep under the model's limit: 10000 for multilingual v2)",
                )?;
                check("providers.voice.concurrency", (1..=30).contains(&e.concurrency), e.concurrency, "1-30")?;
                check("providers.voice.timeout_secs", (1..=600).contains(&e.timeout_secs), e.timeout_secs, "1-600")?;
            }
        }
        let t = &self.tiktok;
        if t.enabled() {
            require_key("tiktok.client_secret", &t.client_secret, "tiktok")?;
            check("tiktok.authorize_url", is_http_url(&t.authorize_url), &t.authorize_url, "an http(s) URL")?;
            check("tiktok.api_url", is_http_url(&t.api_url), &t.api_url, "an http(s) URL")?;
            check(
                "tiktok.scopes",
                t.scopes.split(',').any(|s| s.trim() == "video.upload"),
                &t.scopes,
                "comma-separated scopes including video.upload (and user.info.basic)",
            )?;
            check(
                "tiktok.redirect_uri",
                t.redirect_uri.is_empty() || is_http_url(&t.redirect_uri),
                &t.redirect_uri,
                "empty or an absolute http(s) URL registered with TikTok",
            )?;
        }
        if let Some(key) = t.token_key()
            && crate::crypto::TokenCipher::from_base64(key).is_err()
        {
            return Err(SettingsError::Invalid {
                key: "tiktok.token_key",
                env: env_var_for("tiktok.token_key"),
                problem: "not 32 bytes of base64".into(),
                allowed: "32 random bytes, base64 (openssl rand -base64 32)",
            });
        }
        check("tiktok.state_ttl_secs", (60..=3600).contains(&t.state_ttl_secs), t.state_ttl_secs, "60-3600")?;
        check("tiktok.refresh_lock_secs", (1..=300).contains(&t.refresh_lock_secs), t.refresh_lock_secs, "1-300")?;
        check("tiktok.init_per_minute", (1..=60).contains(&t.init_per_minute), t.init_per_minute, "1-60")?;
        check("tiktok.status_per_minute", (1..=600).contains(&t.status_per_minute), t.status_per_minute, "1-600")?;
        check("tiktok.max_pending_drafts", (1..=100).contains(&t.max_pending_drafts), t.max_pending_drafts, "1-100")?;
        check(
            "tiktok.pending_window_hours",
            (1..=168).contains(&t.pending_window_hours),
            t.pending_window_hours,
            "1-168",
        )?;
        check("tiktok.upload_restarts", t.upload_restarts <= 10, t.upload_restarts, "0-10")?;
        check(
            "tiktok.restart_backoff_max_ms",
            t.restart_backoff_initial_ms >= 1
                && t.restart_backoff_max_ms >= t.restart_backoff_initial_ms
                && t.restart_backoff_max_ms <= 3_600_000,
            t.restart_backoff_max_ms,
            "at least tiktok.restart_backoff_initial_ms (which must be at least 1), at most 3600000 (an hour)",
        )?;
        check(
            "tiktok.status_poll_max_ms",
            t.status_poll_initial_ms >= 1 && t.status_poll_max_ms >= t.status_poll_initial_ms,
            t.status_poll_max_ms,
            "at least tiktok.status_poll_initial_ms (which must be at least 1)",
        )?;
        check("tiktok.waiting_check_secs", (1..=3600).contains(&t.waiting_check_secs), t.waiting_check_secs, "1-3600")?;
        check("tiktok.timeout_secs", (1..=3600).contains(&t.timeout_secs), t.timeout_secs, "1-3600")?;
        let a = &self.auth;
        check(
            "auth.requests_per_minute",
            (1..=100_000).contains(&a.requests_per_minute),
            a.requests_per_minute,
            "1-100000",
        )?;
        if !self.server.listen.ip().is_loopback() && !a.require_keys && !a.allow_open_non_loopback {
            return Err(SettingsError::Invalid {
                key: "auth.require_keys",
                env: env_var_for("auth.require_keys"),
                problem: format!(
                    "false while server.listen is {}, which is not a loopback address: anyone who can reach the \
                     port could submit jobs, read them and manage accounts",
                    self.server.listen
                ),
                allowed: "true (then create keys with `clipforge keys create`); or listen on 127.0.0.1; or set \
                          auth.allow_open_non_loopback = true when a gateway in front authenticates every request",
            });
        }
        let max_clip_secs = match &self.providers.footage {
            FootageProviderSettings::Local { max_clip_secs, .. } => *max_clip_secs,
            FootageProviderSettings::Pexels(p) => {
                require_key("providers.footage.api_key", &p.api_key, "pexels")?;
                check("providers.footage.base_url", is_http_url(&p.base_url), &p.base_url, "an http(s) URL")?;
                check("providers.footage.timeout_secs", (1..=600).contains(&p.timeout_secs), p.timeout_secs, "1-600")?;
                p.max_clip_secs
            }
        };
        check("providers.footage.max_clip_secs", (1.0..=60.0).contains(&max_clip_secs), max_clip_secs, "1.0-60.0")?;
        self.validate_notifications()?;
        Ok(())
    }

    /// The `[server]` section.
    fn validate_server(&self) -> Result<(), SettingsError> {
        let s = &self.server;
        check(
            "server.url",
            is_http_url(&s.url) && reqwest::Url::parse(&s.url).is_ok_and(|u| u.host_str().is_some()),
            &s.url,
            "an absolute http(s) URL with a host, e.g. https://clips.example.com",
        )?;
        for host in s.allowed_host_list() {
            check(
                "server.allowed_hosts",
                is_host_name(&host),
                &host,
                "comma-separated host names or IP literals, without scheme, port or path (e.g. clips.internal,10.0.0.5)",
            )?;
        }
        check(
            "server.header_timeout_secs",
            (1..=300).contains(&s.header_timeout_secs),
            s.header_timeout_secs,
            "1-300",
        )?;
        check("server.idle_timeout_secs", (1..=3600).contains(&s.idle_timeout_secs), s.idle_timeout_secs, "1-3600")?;
        check("server.body_timeout_secs", (1..=3600).contains(&s.body_timeout_secs), s.body_timeout_secs, "1-3600")?;
        Ok(())
    }

    /// The `[notify]`, `[telegram]` and `[webhooks]` sections.
    fn validate_notifications(&self) -> Result<(), SettingsError> {
        let n = &self.notify;
        let chat = n.telegram_chat_id.trim();
        check(
            "notify.telegram_chat_id",
            chat.is_empty() || crate::domain::is_telegram_chat_id(chat),
            chat,
            "empty, a numeric chat id or @channelname",
        )?;
        check(
            "notify.webhook_url",
            n.webhook_url.is_empty() || is_http_url(&n.webhook_url),
            &n.webhook_url,
            "empty or an http(s) URL",
        )?;
        check("notify.poll_ms", (50..=60_000).contains(&n.poll_ms), n.poll_ms, "50-60000")?;
        check("notify.lease_secs", (1..=3600).contains(&n.lease_secs), n.lease_secs, "1-3600")?;
        let t = &self.telegram;
        check("telegram.api_url", is_http_url(&t.api_url), &t.api_url, "an http(s) URL")?;
        check(
            "telegram.send_video_max_mb",
            t.send_video_max_mb <= 2000,
            t.send_video_max_mb,
            "0-2000 (0 always sends a link)",
        )?;
        check("telegram.timeout_secs", (1..=600).contains(&t.timeout_secs), t.timeout_secs, "1-600")?;
        if !chat.is_empty() && t.bot_token().is_none() {
            return Err(SettingsError::Invalid {
                key: "telegram.bot_token",
                env: env_var_for("telegram.bot_token"),
                problem: "missing; notify.telegram_chat_id is set".into(),
                allowed: "the bot token from @BotFather",
            });
        }
        let w = &self.webhooks;
        check("webhooks.max_attempts", (1..=50).contains(&w.max_attempts), w.max_attempts, "1-50")?;
        check(
            "webhooks.initial_backoff_ms",
            (1..=3_600_000).contains(&w.initial_backoff_ms),
            w.initial_backoff_ms,
            "1-3600000",
        )?;
        check("webhooks.timeout_secs", (1..=300).contains(&w.timeout_secs), w.timeout_secs, "1-300")?;
        if !n.webhook_url.is_empty() && w.secret().is_none() {
            return Err(SettingsError::Invalid {
                key: "webhooks.secret",
                env: env_var_for("webhooks.secret"),
                problem: "missing; notify.webhook_url is set".into(),
                allowed: "a random key the receivers share, e.g. `openssl rand -hex 32`",
            });
        }
        Ok(())
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

fn is_http_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// A host name (letters, digits, '-', '.') or an IP literal (IPv6 in brackets).
fn is_host_name(s: &str) -> bool {
    if let Some(v6) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !s.is_empty() && s.len() <= 253 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// A real provider without its key fails at start, not at the first job.
fn require_key(key: &'static str, value: &Option<SecretString>, provider: &str) -> Result<(), SettingsError> {
    match value {
        Some(v) if !v.expose_secret().trim().is_empty() => Ok(()),
        _ => Err(SettingsError::Invalid {
            key,
            env: env_var_for(key),
            problem: format!("missing; the {provider} provider is chosen"),
            allowed: "the provider's API key (or choose an offline provider type)",
        }),
    }
}

fn check(
    key: &'static str,
    ok: bool,
    value: impl std::fmt::Display,
    allowed: &'static str,
) -> Result<(), SettingsError> {
    if ok {
        return Ok(());
    }
    Err(SettingsError::Invalid { key, env: env_var_for(key), problem: format!("got `{value}`"), allowed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn defaults_load_and_are_embedded_mode() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(s.records_url(), "sqlite://clipforge-data/clipforge.db");
        assert_eq!(s.queue_url(), "sqlite://clipforge-data/queue.db");
        assert_eq!(s.storage.retention_days, 14);
    }

    #[test]
    fn env_overrides_nested_keys() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("CLIPFORGE__QUEUE__URL", "redis://127.0.0.1:6379"),
                ("CLIPFORGE__MEDIA__CRF", "30"),
                ("CLIPFORGE__PROVIDERS__VOICE__DEFAULT_VOICE", "en-gb"),
            ]),
        )
        .unwrap();
        assert_eq!(s.queue_url(), "redis://127.0.0.1:6379");
        assert_eq!(s.media.crf, 30);
        let VoiceProviderSettings::Espeak(EspeakSettings { default_voice, .. }) = s.providers.voice else {
            panic!("not espeak")
        };
        assert_eq!(default_voice, "en-gb");
    }

    #[test]
    fn server_url_allowed_hosts_and_timeouts_are_checked() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(
            (s.server.header_timeout_secs, s.server.idle_timeout_secs, s.server.body_timeout_secs),
            (10, 60, 30)
        );
        let s = Settings::load_with_env(None, env(&[("CLIPFORGE__SERVER__ALLOWED_HOSTS", " Clips.Internal, [::1] ,")]))
            .unwrap();
        assert_eq!(s.server.allowed_host_list(), ["clips.internal", "[::1]"]);
        for (key, value, named) in [
            ("CLIPFORGE__SERVER__URL", "clips.example.com", "server.url"),
            ("CLIPFORGE__SERVER__URL", "https://", "server.url"),
            ("CLIPFORGE__SERVER__ALLOWED_HOSTS", "https://clips.example.com", "server.allowed_hosts"),
            ("CLIPFORGE__SERVER__ALLOWED_HOSTS", "a.example:8080", "server.allowed_hosts"),
            ("CLIPFORGE__SERVER__HEADER_TIMEOUT_SECS", "0", "server.header_timeout_secs"),
            ("CLIPFORGE__SERVER__IDLE_TIMEOUT_SECS", "0", "server.idle_timeout_secs"),
            ("CLIPFORGE__SERVER__BODY_TIMEOUT_SECS", "4000", "server.body_timeout_secs"),
        ] {
            let err = Settings::load_with_env(None, env(&[(key, value)])).unwrap_err().to_string();
            assert!(err.contains(named) && err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn a_bad_value_names_key_env_and_allowed() {
        let err =
            Settings::load_with_env(None, env(&[("CLIPFORGE__MEDIA__PRESET", "placebo")])).unwrap_err().to_string();
        assert!(err.contains("media.preset"), "{err}");
        assert!(err.contains("CLIPFORGE__MEDIA__PRESET"), "{err}");
        assert!(err.contains("veryfast"), "{err}");
    }

    #[test]
    fn cost_limits_load_and_must_agree_with_each_other() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        let spec = s.limits.spec();
        assert_eq!((spec.max_sentences, spec.max_narration_secs, spec.fastest_words_per_minute), (200, 180, 300));
        assert_eq!((s.limits.max_footage_segments, s.media.ffmpeg_threads), (32, 2));
        for (key, value, names) in [
            ("CLIPFORGE__LIMITS__MAX_NARRATION_SECS", "120", "limits.max_target_secs"),
            ("CLIPFORGE__LIMITS__FASTEST_WORDS_PER_MINUTE", "150", "providers.voice.words_per_minute"),
            ("CLIPFORGE__LIMITS__MAX_FOOTAGE_SEGMENTS", "0", "1-500"),
            ("CLIPFORGE__MEDIA__FFMPEG_THREADS", "0", "1-64"),
        ] {
            let err = Settings::load_with_env(None, env(&[(key, value)])).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(names), "{key}={value}: {err}");
        }
    }

    #[test]
    fn a_wrongly_typed_value_names_the_key() {
        let err = Settings::load_with_env(None, env(&[("CLIPFORGE__MEDIA__CRF", "lots")])).unwrap_err().to_string();
        assert!(err.contains("crf"), "{err}");
    }

    #[test]
    fn an_unknown_queue_scheme_is_refused() {
        let err = Settings::load_with_env(None, env(&[("CLIPFORGE__QUEUE__URL", "amqp://x")])).unwrap_err().to_string();
        assert!(err.contains("CLIPFORGE__QUEUE__URL"), "{err}");
    }

    #[test]
    fn a_real_provider_without_a_key_fails_at_start_and_names_the_variable() {
        let err = Settings::load_with_env(
            None,
            env(&[
                ("CLIPFORGE__PROVIDERS__SCRIPT__TYPE", "openrouter"),
                ("CLIPFORGE__PROVIDERS__SCRIPT__MODEL", "x/y"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CLIPFORGE__PROVIDERS__SCRIPT__API_KEY") && err.contains("openrouter"), "{err}");
    }

    #[test]
    fn a_real_provider_is_configured_by_env_alone_and_its_key_stays_secret() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("CLIPFORGE__PROVIDERS__FOOTAGE__TYPE", "pexels"),
                ("CLIPFORGE__PROVIDERS__FOOTAGE__API_KEY", "pexels-secret-123"),
            ]),
        )
        .unwrap();
        let FootageProviderSettings::Pexels(p) = &s.providers.footage else { panic!("not pexels") };
        assert_eq!(p.base_url, "https://api.pexels.com");
        assert!(!format!("{s:?}").contains("pexels-secret-123"), "Debug output shows the key");
    }

    #[test]
    fn the_production_example_loads_as_redis_and_postgres() {
        let s = Settings::load_with_env(Some(Path::new("config/production.example.toml")), env(&[])).unwrap();
        assert!(s.queue_url().starts_with("redis://"));
        assert!(s.records_url().starts_with("postgres://"));
        assert!(s.auth.require_keys, "it listens on 0.0.0.0, so it asks for keys");
    }

    #[test]
    fn env_var_names_follow_the_key() {
        assert_eq!(env_var_for("providers.voice.type"), "CLIPFORGE__PROVIDERS__VOICE__TYPE");
    }

    #[test]
    fn listening_beyond_loopback_without_keys_is_refused_and_says_why() {
        let open = [("CLIPFORGE__SERVER__LISTEN", "0.0.0.0:8080")];
        let err = Settings::load_with_env(None, env(&open)).unwrap_err().to_string();
        assert!(err.contains("auth.require_keys") && err.contains("CLIPFORGE__AUTH__REQUIRE_KEYS"), "{err}");
        assert!(err.contains("0.0.0.0:8080") && err.contains("anyone who can reach the port"), "{err}");
        let with_keys = [open[0], ("CLIPFORGE__AUTH__REQUIRE_KEYS", "true")];
        assert!(Settings::load_with_env(None, env(&with_keys)).unwrap().auth.require_keys);
        let behind_gateway = [open[0], ("CLIPFORGE__AUTH__ALLOW_OPEN_NON_LOOPBACK", "true")];
        assert!(Settings::load_with_env(None, env(&behind_gateway)).is_ok());
        for loopback in ["127.0.0.1:0", "[::1]:8080"] {
            let s = Settings::load_with_env(None, env(&[("CLIPFORGE__SERVER__LISTEN", loopback)])).unwrap();
            assert!(!s.auth.require_keys, "loopback stays zero-setup");
        }
    }

    #[test]
    fn the_rate_limit_must_be_positive() {
        let err = Settings::load_with_env(None, env(&[("CLIPFORGE__AUTH__REQUESTS_PER_MINUTE", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CLIPFORGE__AUTH__REQUESTS_PER_MINUTE") && err.contains("1-100000"), "{err}");
    }
}
