//! Stage errors and the one place that decides retry or fail.

use std::time::Duration;

use crate::domain::public_message;
use crate::error_code::{self as codes, ErrorCode};
use crate::media::RenderError;
use crate::media::process::ProcessError;
use crate::providers::ProviderError;
use crate::store::objects::ObjectError;
use crate::store::queue::QueueError;
use crate::store::records::StoreError;

/// Everything that can stop a stage. Each knows its stable code and whether a
/// second try can help; [`RetryPolicy::decide`] turns that into what happens.
///
/// Its message is what a failed job stores and the API shows, so every
/// variant's is passed through [`public_message`]: at most 4 KB, with paths
/// cut to their file names. (Programs log their full command line and stderr
/// where they fail, in [`crate::media::process`].)
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{}", public_message(&.0.to_string()))]
    Provider(#[from] ProviderError),
    #[error("{}", public_message(&.0.to_string()))]
    Render(#[from] RenderError),
    #[error("{}", public_message(&.0.to_string()))]
    Objects(#[from] ObjectError),
    #[error("{}", public_message(&.0.to_string()))]
    Records(#[from] StoreError),
    #[error("{}", public_message(&.0.to_string()))]
    Queue(#[from] QueueError),
    #[error("scratch folder: {}", public_message(&.0.to_string()))]
    Scratch(std::io::Error),
    /// The job asks for something that cannot be done as asked.
    #[error("{}", public_message(message))]
    Job { code: ErrorCode, message: String },
    /// Not a failure: a limit (or the operator) must come first. The job goes
    /// to `waiting` until `until`, or until its account is connected again.
    #[error("{message}")]
    Wait { code: ErrorCode, message: String, until: Option<chrono::DateTime<chrono::Utc>> },
}

impl From<crate::providers::UploadError> for StageError {
    fn from(e: crate::providers::UploadError) -> Self {
        match e {
            crate::providers::UploadError::Wait { code, message, until } => StageError::Wait { code, message, until },
            crate::providers::UploadError::Failed(p) => StageError::Provider(p),
        }
    }
}

impl StageError {
    pub fn job(code: ErrorCode, message: impl Into<String>) -> Self {
        StageError::Job { code, message: message.into() }
    }

    /// The stable code shown in the API and used by scripts.
    pub fn code(&self) -> ErrorCode {
        match self {
            StageError::Provider(e) => e.code,
            StageError::Render(RenderError::Ffmpeg(ProcessError::NotFound { .. })) => codes::FFMPEG_NOT_FOUND,
            StageError::Render(RenderError::Ffmpeg(ProcessError::TimedOut { .. })) => codes::RENDER_TIMED_OUT,
            StageError::Render(RenderError::Ffmpeg(_)) => codes::FFMPEG_FAILED,
            StageError::Render(RenderError::Script(_)) => codes::SCRATCH_ERROR,
            StageError::Render(RenderError::Probe(_)) => codes::PROBE_FAILED,
            StageError::Render(RenderError::Check(_)) => codes::RENDER_CHECK_FAILED,
            StageError::Objects(ObjectError::NotFound(_)) => codes::OBJECT_MISSING,
            StageError::Objects(_) => codes::OBJECT_STORE_ERROR,
            StageError::Records(_) => codes::RECORD_STORE_ERROR,
            StageError::Queue(_) => codes::QUEUE_ERROR,
            StageError::Scratch(_) => codes::SCRATCH_ERROR,
            StageError::Job { code, .. } | StageError::Wait { code, .. } => *code,
        }
    }

    /// Whether the record store or the queue could not be reached: the
    /// stage waits for it instead of counting a failed attempt.
    pub fn is_store_outage(&self) -> bool {
        match self {
            StageError::Records(e) => e.is_outage(),
            StageError::Queue(e) => e.is_outage(),
            _ => false,
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
        StageError::Provider(ProviderError::new("x", codes::TIMEOUT, "slow", true))
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
        let err = StageError::job(codes::MUSIC_NOT_FOUND, "no such track");
        assert_eq!(policy().decide(&err, 1), Decision::Fail);
        let missing = StageError::Render(RenderError::Ffmpeg(ProcessError::NotFound { program: "ffmpeg".into() }));
        assert_eq!(missing.code(), "ffmpeg_not_found");
        assert_eq!(policy().decide(&missing, 1), Decision::Fail);
    }

    #[test]
    fn what_a_failed_job_stores_is_at_most_4_kb_and_names_no_scratch_path() {
        let stderr = "/data/scratch/0193-render/clip-7.mp4: Invalid data found when processing input\n".repeat(5000);
        let ffmpeg = StageError::Render(RenderError::Ffmpeg(ProcessError::Failed {
            program: "ffmpeg".into(),
            command: format!("ffmpeg -filter_complex {}", "[0:v]scale=1080:1920[v0];".repeat(20_000)),
            status: "exit status: 1".into(),
            stderr_tail: stderr,
        }));
        let chatty = StageError::Provider(ProviderError::new(
            "elevenlabs",
            codes::BAD_REQUEST,
            format!("answer body {} in /srv/data/scratch/0193-prepare/sentence-1.txt", "é".repeat(100_000)),
            false,
        ));
        for err in [ffmpeg, chatty, StageError::job(codes::FFMPEG_FAILED, "y".repeat(10_000))] {
            let message = err.to_string();
            assert!(message.len() <= crate::domain::MAX_ERROR_MESSAGE_BYTES, "{} bytes", message.len());
            assert!(!message.contains("/scratch/") && !message.contains("-filter_complex"), "{message}");
        }
    }
}
