//! Video ideas drawn from a web page (`POST /v1/ideas`): what a person picks
//! from to make jobs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::JobRequest;

/// Longest topic an idea carries, in characters (a job takes 300).
pub const MAX_IDEA_TOPIC_CHARS: usize = 150;
/// Longest hook, in characters.
pub const MAX_HOOK_CHARS: usize = 240;
/// Most footage hints per idea, and the longest one, in characters.
pub const MAX_IDEA_QUERIES: usize = 5;
pub const MAX_IDEA_QUERY_CHARS: usize = 60;
/// The length suggested when a writer gives none.
pub const DEFAULT_IDEA_SECS: u32 = 30;

/// One video idea.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Idea {
    /// What the video is about: a job's `topic`.
    pub topic: String,
    /// The opening line that stops the scroll.
    pub hook: String,
    /// Footage search hints, most important first: a job's `footage_queries`.
    pub footage_queries: Vec<String>,
    /// The suggested length in seconds, within the job limits: a job's `target_length_s`.
    pub target_length_s: u32,
}

/// What every idea of an answer must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdeaBounds {
    /// How many ideas were asked for.
    pub count: usize,
    /// The shortest and longest target length a job may have (`[limits]`).
    pub min_secs: u32,
    pub max_secs: u32,
}

impl Idea {
    /// An idea as a writer put it, made fit for a job: text without control
    /// or direction characters and with single spaces, each field cut to its
    /// length, empty hints dropped, the length clamped into `bounds` (a
    /// missing or non-positive one becomes [`DEFAULT_IDEA_SECS`]). `None` when
    /// the topic has no words.
    pub fn tidy(topic: &str, hook: &str, queries: &[String], secs: Option<i64>, bounds: &IdeaBounds) -> Option<Self> {
        let topic = tidy_text(topic, MAX_IDEA_TOPIC_CHARS);
        if !topic.chars().any(char::is_alphanumeric) {
            return None;
        }
        let mut footage_queries: Vec<String> = Vec::new();
        for q in queries {
            let q = tidy_text(q, MAX_IDEA_QUERY_CHARS);
            if q.chars().any(char::is_alphanumeric) && !footage_queries.contains(&q) {
                footage_queries.push(q);
            }
        }
        footage_queries.truncate(MAX_IDEA_QUERIES);
        let secs = secs.filter(|s| *s > 0).map_or(i64::from(DEFAULT_IDEA_SECS), |s| s);
        let target_length_s = secs.clamp(i64::from(bounds.min_secs), i64::from(bounds.max_secs)) as u32;
        Some(Self { hook: tidy_text(hook, MAX_HOOK_CHARS), topic, footage_queries, target_length_s })
    }

    /// The job request that makes this idea into a video.
    pub fn job(&self) -> JobRequest {
        JobRequest {
            topic: Some(self.topic.clone()),
            target_length_s: Some(self.target_length_s),
            footage_queries: self.footage_queries.clone(),
            ..Default::default()
        }
    }
}

/// `text` with control and bidi characters removed, white space collapsed,
/// cut to `max` characters.
pub fn tidy_text(text: &str, max: usize) -> String {
    let kept: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    let collapsed = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(max).collect::<String>().trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: IdeaBounds = IdeaBounds { count: 3, min_secs: 5, max_secs: 180 };

    #[test]
    fn a_writers_idea_is_made_fit_for_a_job() {
        let queries = vec!["  ocean  waves ".into(), "".into(), "ocean waves".into(), "x".repeat(100)];
        let idea = Idea::tidy(" Tide\u{202e} pools\n", "Look\tdown.", &queries, Some(900), &BOUNDS).unwrap();
        assert_eq!(idea.topic, "Tide pools");
        assert_eq!(idea.hook, "Look down.");
        assert_eq!(idea.footage_queries, ["ocean waves".to_string(), "x".repeat(MAX_IDEA_QUERY_CHARS)]);
        assert_eq!(idea.target_length_s, 180, "clamped to the job limit");
        assert_eq!(Idea::tidy("t", "", &[], Some(1), &BOUNDS).unwrap().target_length_s, 5);
        assert_eq!(Idea::tidy("t", "", &[], None, &BOUNDS).unwrap().target_length_s, DEFAULT_IDEA_SECS);
        assert_eq!(Idea::tidy("t", "", &[], Some(-4), &BOUNDS).unwrap().target_length_s, DEFAULT_IDEA_SECS);
        assert!(Idea::tidy(" \u{0007} ", "hook", &[], Some(30), &BOUNDS).is_none(), "no words, no idea");
        assert_eq!(Idea::tidy(&"a".repeat(400), "", &[], None, &BOUNDS).unwrap().topic.len(), MAX_IDEA_TOPIC_CHARS);
    }

    #[test]
    fn an_idea_makes_a_job_that_passes_the_spec_checks() {
        let idea = Idea::tidy("Tide pools", "Look down.", &["ocean".into()], Some(40), &BOUNDS).unwrap();
        let spec = crate::domain::JobSpec::parse(idea.job(), &crate::domain::SpecLimits::default()).unwrap();
        assert_eq!(spec.target_length_s, Some(40));
        assert_eq!(spec.footage_queries, ["ocean"]);
    }
}
