//! Providers: who writes the script, who speaks it, where footage comes from.
//!
//! Each capability is a trait; each vendor is one module behind it, picked by
//! `type` in settings ([`Providers::from_settings`]). The offline ones are the
//! embedded default.

pub mod footage;
pub mod script;
pub mod voice;

use std::sync::Arc;

use crate::media::Toolbox;
use crate::media::process::ProcessError;
use crate::settings::Settings;

pub use footage::{FootageSource, PlannedClip};
pub use script::ScriptWriter;
pub use voice::{Narrator, SpokenNarration};

/// A provider failure with a stable code, a message for people and whether a
/// second try can help. Providers decide the facts; the pipeline decides what
/// to do about them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct ProviderError {
    pub provider: &'static str,
    pub code: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl ProviderError {
    pub fn new(provider: &'static str, code: &'static str, message: impl Into<String>, retryable: bool) -> Self {
        Self { provider, code, message: message.into(), retryable }
    }

    /// A failed program run, coded by what went wrong.
    pub fn from_process(provider: &'static str, err: ProcessError) -> Self {
        let code = match &err {
            ProcessError::NotFound { .. } => "program_not_found",
            ProcessError::TimedOut { .. } => "program_timed_out",
            _ => "program_failed",
        };
        let retryable = err.is_retryable();
        Self::new(provider, code, err.to_string(), retryable)
    }

    pub fn io(provider: &'static str, err: std::io::Error) -> Self {
        Self::new(provider, "io_error", err.to_string(), true)
    }
}

/// The providers this process uses, built once from settings.
#[derive(Clone)]
pub struct Providers {
    pub script: Arc<dyn ScriptWriter>,
    pub voice: Arc<dyn Narrator>,
    pub footage: Arc<dyn FootageSource>,
}

impl Providers {
    pub fn from_settings(settings: &Settings, tools: &Toolbox) -> Self {
        Self {
            script: script::from_settings(&settings.providers.script),
            voice: voice::from_settings(&settings.providers.voice, tools),
            footage: footage::from_settings(&settings.providers.footage, tools),
        }
    }
}
