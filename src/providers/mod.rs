//! Providers: who writes the script, who speaks it, where footage comes from.
//!
//! Each capability is a trait; each vendor is one module behind it, picked by
//! `type` in settings ([`Providers::from_settings`]). The offline ones are the
//! embedded default.

pub mod footage;
pub mod http;
pub mod instagram;
pub mod oauth;
pub mod script;
pub mod tiktok;
pub mod voice;
pub mod youtube;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::{Costs, Manifest};
use crate::error_code::{self as codes, ErrorCode};
use crate::store::objects::ObjectStore;

use crate::media::Toolbox;
use crate::media::process::ProcessError;
use crate::settings::Settings;

pub use footage::{FootageSource, PlannedClip};
pub use script::ScriptWriter;
pub use voice::{Narrator, SpokenNarration};

/// Why a delivery to a publish target (TikTok, YouTube, Instagram) did not
/// end with the platform holding the video.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A limit or the operator must come first; try again at `until` (or,
    /// when `None`, once the account is connected again).
    #[error("{message}")]
    Wait { code: ErrorCode, message: String, until: Option<chrono::DateTime<chrono::Utc>> },
    #[error(transparent)]
    Failed(#[from] ProviderError),
}

/// A provider failure with a stable code, a message for people and whether a
/// second try can help. Providers decide the facts; the pipeline decides what
/// to do about them. Messages never carry keys or tokens.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct ProviderError {
    pub provider: &'static str,
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    /// How long the provider asked us to wait (Retry-After, a rate-limit reset).
    pub retry_after: Option<std::time::Duration>,
}

impl ProviderError {
    /// `retryable` must agree with the catalogue's word on `code` where it
    /// has one ([`ErrorCode::retryable`]).
    pub fn new(provider: &'static str, code: ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        debug_assert!(
            code.retryable().is_none_or(|r| r == retryable),
            "the catalogue says `{code}` is retryable: {:?}",
            code.job
        );
        Self { provider, code, message: message.into(), retryable, retry_after: None }
    }

    pub fn after(mut self, wait: Option<std::time::Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// A failed program run, coded by what went wrong.
    pub fn from_process(provider: &'static str, err: ProcessError) -> Self {
        let code = match &err {
            ProcessError::NotFound { .. } => codes::PROGRAM_NOT_FOUND,
            ProcessError::TimedOut { .. } => codes::PROGRAM_TIMED_OUT,
            _ => codes::PROGRAM_FAILED,
        };
        let retryable = err.is_retryable();
        Self::new(provider, code, err.to_string(), retryable)
    }

    pub fn io(provider: &'static str, err: std::io::Error) -> Self {
        Self::new(provider, codes::IO_ERROR, err.to_string(), true)
    }
}

/// Counts what a job's provider calls cost; the pipeline adds it to the manifest.
#[derive(Debug, Default)]
pub struct CostMeter {
    pub llm_prompt_tokens: AtomicU64,
    pub llm_completion_tokens: AtomicU64,
    pub tts_characters: AtomicU64,
    pub pexels_requests: AtomicU64,
    /// Cache objects read or written on the job's behalf that the manifest
    /// would not otherwise name (see [`Manifest::cache`]).
    pub cache_keys: std::sync::Mutex<Vec<String>>,
    /// Seconds of AI-generated video (tasks that succeeded).
    pub generated_video_seconds: AtomicU64,
    /// Their credits, in thousandths.
    pub generation_millicredits: AtomicU64,
    /// What went other than asked but did not fail the job (a fallback), for the manifest.
    pub warnings: std::sync::Mutex<Vec<String>>,
}

impl CostMeter {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_generation_credits(&self, credits: f64) {
        Self::add(&self.generation_millicredits, (credits * 1000.0).round() as u64);
    }

    /// Notes something the job's owner should know, e.g. that a slot fell back to stock footage.
    pub fn warn(&self, warning: String) {
        self.warnings.lock().expect("not poisoned").push(warning);
    }

    /// Notes that the job used the cache object `key`.
    pub fn used_cache(&self, key: &str) {
        self.cache_keys.lock().expect("not poisoned").push(key.to_string());
    }

    /// Adds what was counted and the cache objects used to `manifest`.
    pub fn record(&self, manifest: &mut Manifest) {
        self.add_to(&mut manifest.costs);
        self.record_cache(manifest);
        manifest.warnings.append(&mut self.warnings.lock().expect("not poisoned"));
    }

    /// Adds the cache objects used that `manifest` does not name yet to its
    /// `cache` list. Also for a part that failed: what it cached is the job's.
    /// Returns whether the list grew.
    pub fn record_cache(&self, manifest: &mut Manifest) -> bool {
        let mut used = self.cache_keys.lock().expect("not poisoned");
        let before = manifest.cache.len();
        for key in used.drain(..) {
            if !manifest.names(&key) {
                manifest.cache.push(key);
            }
        }
        manifest.cache.len() > before
    }

    /// Adds what was counted to `costs`.
    pub fn add_to(&self, costs: &mut Costs) {
        costs.llm_prompt_tokens += self.llm_prompt_tokens.load(Ordering::Relaxed);
        costs.llm_completion_tokens += self.llm_completion_tokens.load(Ordering::Relaxed);
        costs.tts_characters += self.tts_characters.load(Ordering::Relaxed);
        costs.pexels_requests += self.pexels_requests.load(Ordering::Relaxed);
        costs.generated_video_seconds += self.generated_video_seconds.load(Ordering::Relaxed);
        costs.generation_credits += self.generation_millicredits.load(Ordering::Relaxed) as f64 / 1000.0;
    }
}

/// The providers this process uses, built once from settings.
#[derive(Clone)]
pub struct Providers {
    pub script: Arc<dyn ScriptWriter>,
    pub voice: Arc<dyn Narrator>,
    pub footage: Arc<dyn FootageSource>,
    /// Failed calls of all three, for `/metrics` (moved to the record store by the pipeline).
    pub errors: Arc<http::ErrorTally>,
}

impl Providers {
    /// `objects` backs the providers' own caches (e.g. Pexels search results).
    pub fn from_settings(settings: &Settings, tools: &Toolbox, objects: Arc<dyn ObjectStore>) -> Self {
        let http = &settings.providers.http;
        let errors = Arc::new(http::ErrorTally::default());
        Self {
            script: script::from_settings(&settings.providers.script, http, errors.clone()),
            voice: voice::from_settings(&settings.providers.voice, http, errors.clone(), tools),
            footage: footage::with_ai_video(
                footage::from_settings(&settings.providers.footage, http, errors.clone(), tools, objects.clone()),
                &settings.providers.ai_video,
                http,
                errors.clone(),
                objects,
            ),
            errors,
        }
    }
}
