//! The limits every job spec is checked against: what keeps an accepted job's
//! cost bounded (see `[limits]` in config/default.toml).

use crate::error_code::{self as codes, ErrorCode};

use super::script::shortest_narration_secs;

/// The limits a spec is checked against; they come from settings (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpecLimits {
    pub max_script_chars: usize,
    pub min_target_secs: u32,
    pub max_target_secs: u32,
    /// Most sentences (caption lines, narration segments) a script may have.
    pub max_sentences: usize,
    /// Longest narration a job may have, in seconds. A given script is refused
    /// when even [`SpecLimits::fastest_words_per_minute`] puts it over.
    pub max_narration_secs: u32,
    /// A speaking rate faster than any configured narrator's, so that the
    /// estimate at submission only refuses scripts that are over for certain.
    pub fastest_words_per_minute: u32,
}

impl Default for SpecLimits {
    fn default() -> Self {
        Self {
            max_script_chars: 3000,
            min_target_secs: 5,
            max_target_secs: 180,
            max_sentences: 200,
            max_narration_secs: 180,
            fastest_words_per_minute: 300,
        }
    }
}

impl SpecLimits {
    /// No limit at all: for reading back specs that were checked against the
    /// limits of their day, which may have been tightened since.
    pub const fn unbounded() -> Self {
        Self {
            max_script_chars: usize::MAX,
            min_target_secs: 0,
            max_target_secs: u32::MAX,
            max_sentences: usize::MAX,
            max_narration_secs: u32::MAX,
            fastest_words_per_minute: u32::MAX,
        }
    }

    /// The limits a script of `sentences` goes over: too many sentences, or a
    /// narration that must run longer than allowed even when spoken fast.
    pub fn script_over_limits<S: AsRef<str>>(&self, sentences: &[S]) -> Vec<OverLimit> {
        let mut over = Vec::new();
        if sentences.len() > self.max_sentences {
            over.push(OverLimit::Sentences { count: sentences.len(), max: self.max_sentences });
        }
        let at_least_s = shortest_narration_secs(sentences, self.fastest_words_per_minute);
        if at_least_s > f64::from(self.max_narration_secs) {
            over.push(OverLimit::Narration { at_least_s, max_s: self.max_narration_secs });
        }
        over
    }
}

/// A script that would cost more than a job may: refused at submission (a
/// field error) or, for a script only written in the prepare stage, failing
/// the job with the same code.
#[derive(Debug, Clone, PartialEq)]
pub enum OverLimit {
    /// More sentences than `limits.max_sentences`.
    Sentences { count: usize, max: usize },
    /// A narration that runs at least `at_least_s`, over `limits.max_narration_secs`.
    Narration { at_least_s: f64, max_s: u32 },
}

impl OverLimit {
    /// The stable code, the same in a 422's details and on a failed job.
    pub fn code(&self) -> ErrorCode {
        match self {
            OverLimit::Sentences { .. } => codes::TOO_MANY_SENTENCES,
            OverLimit::Narration { .. } => codes::NARRATION_TOO_LONG,
        }
    }

    /// What a person reads: the numbers, and the setting that holds the limit.
    pub fn message(&self) -> String {
        match self {
            OverLimit::Sentences { count, max } => format!(
                "the script has {count} sentences (each line and each `.`, `!`, `?` ends one); \
                 at most {max} are allowed (limits.max_sentences)"
            ),
            OverLimit::Narration { at_least_s, max_s } => format!(
                "the narration of this script would run at least {at_least_s:.0} s; \
                 at most {max_s} s are allowed (limits.max_narration_secs)"
            ),
        }
    }
}
