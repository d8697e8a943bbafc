//! Stage errors and the one place that decides retry or fail.

use std::time::Duration;

use crate::media::RenderError;
use crate::media::process::ProcessError;
use crate::providers::ProviderError;
use crate::store::objects::ObjectError;
use crate::store::queue::QueueError;
use crate::store::records::StoreError;

/// Everything that can stop a stage. Each knows its stable code and whether a
/// second try can help; [`RetryPolicy::decide`] turns that into what happens.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error(transparent)]
    Records(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("scratch folder: {0}")]
    Scratch(std::io::Error),
    /// The job asks for something that cannot be done as asked.
    #[error("{message}")]
    Job { code: &'static str, message: String },
    /// Not a failure: a limit (or the operator) must come first. The job goes
    /// to `waiting` until `until`, or until its account is connected again.
    #[error("{message}")]
    Wait { code: &'static str, message: String, until: Option<chrono::DateTime<chrono::Utc>> },
}

impl From<crate::providers::tiktok::UploadError> for StageError {
    fn from(e: crate::providers::tiktok::UploadError) -> Self {
        match e {
            crate::providers::tiktok::UploadError::Wait { code, message, until } => {
                StageError::Wait { code, message, until }
            }
            crate::providers::tiktok::UploadError::Failed(p) => StageError::Provider(p),
        }
    }
}

impl StageError {
    pub fn job(code: &'static str, message: impl Into<String>) -> Self {
        StageError::Job { code, message: message.into() }
    }

    /// The stable code shown in the API and used by scripts.
    pub fn code(&self) -> &'static str {
        match self {
            StageError::Provider(e) => e.code,
            StageError::Render(RenderError::Ffmpeg(ProcessError::NotFound { .. })) => "ffmpeg_not_found",
            StageError::Render(RenderError::Ffmpeg(ProcessError::TimedOut { .. })) => "render_timed_out",
            StageError::Render(RenderError::Ffmpeg(_)) => "ffmpeg_failed",
            StageError::Render(RenderError::Script(_)) => "scratch_error",
            StageError::Render(RenderError::Probe(_)) => "probe_failed",
            StageError::Render(RenderError::Check(_)) => "render_check_failed",
            StageError::Objects(ObjectError::NotFound(_)) => "object_missing",
            StageError::Objects(_) => "object_store_error",
            StageError::Records(_) => "record_store_error",
            StageError::Queue(_) => "queue_error",
            StageError::Scratch(_) => "scratch_error",
            StageError::Job { code, .. } | StageError::Wait { code, .. } => code,
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            StageError::Provider(e) => e.retryable,
            StageError::Render(RenderError::Ffmpeg(e)) => e.is_retryable(),
            StageError::Render(RenderError::Probe(_) | RenderError::Script(_)) => true,
            StageError::Render(RenderError::Check(_)) => false,
            StageError::Objects(e) => e.is_retryable(),
            StageError::Records(_) | StageError::Queue(_) | StageError::Scratch(_) => true,
            StageError::Job { .. } => false,
            StageError::Wait { .. } => true,
        }
    }
}

/// What to do after a stage attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RetryAfter(Duration),
    Fail,
}

/// Exponential backoff for retryable errors, a fixed number of attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Decides after attempt number `attempt` (1-based) failed with `err`.
    pub fn decide(&self, err: &StageError, attempt: u32) -> Decision {
        if !err.is_retryable() || attempt >= self.max_attempts {
            return Decision::Fail;
        }
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        Decision::RetryAfter(self.initial.saturating_mul(factor).min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 4, initial: Duration::from_secs(1), max: Duration::from_secs(3) }
    }

    fn retryable() -> StageError {
        StageError::Provider(ProviderError::new("x", "timeout", "slow", true))
    }

    #[test]
    fn retryable_errors_back_off_exponentially_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.decide(&retryable(), 1), Decision::RetryAfter(Duration::from_secs(1)));
        assert_eq!(p.decide(&retryable(), 2), Decision::RetryAfter(Duration::from_secs(2)));
        assert_eq!(p.decide(&retryable(), 3), Decision::RetryAfter(Duration::from_secs(3)));
        assert_eq!(p.decide(&retryable(), 4), Decision::Fail, "the last attempt fails the job");
    }

    #[test]
    fn permanent_errors_fail_at_once() {
        let err = StageError::job("music_not_found", "no such track");
        assert_eq!(policy().decide(&err, 1), Decision::Fail);
        let missing = StageError::Render(RenderError::Ffmpeg(ProcessError::NotFound { program: "ffmpeg".into() }));
        assert_eq!(missing.code(), "ffmpeg_not_found");
        assert_eq!(policy().decide(&missing, 1), Decision::Fail);
    }
}
