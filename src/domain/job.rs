//! Jobs as the record store and the API see them: ids, states, stages, errors and
//! the manifest of what each stage produced.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

uuid_v7_id! {
    /// A job's id.
    JobId
}

/// The three queued stages; each has its own queue and worker role. They
/// order as they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Script, narration and footage.
    Prepare,
    /// One ffmpeg pass and its check.
    Render,
    /// Staging in the object store (and, later, the TikTok upload).
    Publish,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Prepare, Stage::Render, Stage::Publish];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prepare => "prepare",
            Stage::Render => "render",
            Stage::Publish => "publish",
        }
    }

    /// The state a job is in while this stage runs.
    pub fn running_state(self) -> JobState {
        match self {
            Stage::Prepare => JobState::Preparing,
            Stage::Render => JobState::Rendering,
            Stage::Publish => JobState::Staging,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown stage `{}`", super::echo(s)))
    }
}

/// Where a job is. The current state is the state of its latest event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Preparing,
    Rendering,
    Staging,
    Uploading,
    /// Done: the draft waits in the creator's TikTok inbox.
    InInbox,
    /// Done: published on the creator's TikTok profile by Direct Post, after
    /// a person approved it (`post_mode: direct`).
    Posted,
    /// Done: the video is staged and no TikTok account was asked for.
    Staged,
    Failed,
    Cancelled,
    /// Held back by a limit; tries again later.
    Waiting,
    /// Stopped at a review point (see `review`): waits for a person to
    /// approve it or send it back.
    InReview,
    /// A reviewer sent it back with a note: waits for a revision (or a cancel).
    ChangesRequested,
}

impl JobState {
    pub const ALL: [JobState; 13] = [
        JobState::Queued,
        JobState::Preparing,
        JobState::Rendering,
        JobState::Staging,
        JobState::Uploading,
        JobState::InInbox,
        JobState::Posted,
        JobState::Staged,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Waiting,
        JobState::InReview,
        JobState::ChangesRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Preparing => "preparing",
            JobState::Rendering => "rendering",
            JobState::Staging => "staging",
            JobState::Uploading => "uploading",
            JobState::InInbox => "in_inbox",
            JobState::Posted => "posted",
            JobState::Staged => "staged",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Waiting => "waiting",
            JobState::InReview => "in_review",
            JobState::ChangesRequested => "changes_requested",
        }
    }

    /// No more work will happen unless someone asks (retry).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::InInbox | JobState::Posted | JobState::Staged | JobState::Failed | JobState::Cancelled)
    }

    /// Waits for a person (a reviewer, or a revision): no stage runs, no
    /// queue holds it, and it goes on only when someone acts on it.
    pub fn awaits_person(self) -> bool {
        matches!(self, JobState::InReview | JobState::ChangesRequested)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let allowed: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown state `{}`; one of {}", super::echo(s), allowed.join(", "))
        })
    }
}

/// Why a job failed, in the words the API shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    pub stage: Stage,
    /// Stable, machine-readable code, e.g. `ffmpeg_failed`.
    pub code: String,
    /// For people: at most [`MAX_ERROR_MESSAGE_BYTES`], without server paths
    /// (the full detail, command line and stderr included, is in the log).
    pub message: String,
    /// Whether `retry` can be expected to help.
    pub retryable: bool,
}

impl JobError {
    /// A job error whose message is made fit to store and show ([`public_message`]).
    pub fn new(stage: Stage, code: impl Into<String>, message: &str, retryable: bool) -> Self {
        Self { stage, code: code.into(), message: public_message(message), retryable }
    }
}

/// The longest error message a job stores and the API returns.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// Ends a message that was cut to fit.
const CUT_MARKER: &str = " …[cut; the full message is in the log]";

/// `text` made fit for a job's error: every absolute path shortened to its
/// file name (scratch folders and data folders are the server's business,
/// not the API caller's) and at most [`MAX_ERROR_MESSAGE_BYTES`] long.
pub fn public_message(text: &str) -> String {
    cap_text(&scrub_paths(text), MAX_ERROR_MESSAGE_BYTES)
}

/// `text` cut to at most `max` bytes on a character boundary, ending with a
/// marker that says so when anything was cut.
pub fn cap_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(CUT_MARKER.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &text[..end])
}

/// Replaces each absolute path of two or more parts in `text` with its last
/// part: `/srv/data/scratch/<job>-render/clip-3.mp4: Invalid data` becomes
/// `clip-3.mp4: Invalid data`. A path starts with `/` at the start of a word
/// (after a space, a quote, `=`, `(` or `[`), so URLs keep their paths.
pub fn scrub_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().expect("i is on a char boundary");
        let starts_word = prev.is_none_or(|p| p.is_whitespace() || "'\"`=([<,".contains(p));
        if c == '/' && starts_word {
            let end = rest.find(|ch: char| ch.is_whitespace() || "'\"`,;()[]<>|".contains(ch)).unwrap_or(rest.len());
            let path = &rest[..end];
            let parts: Vec<&str> = path.trim_end_matches('/').split('/').filter(|p| !p.is_empty()).collect();
            if parts.len() >= 2 {
                out.push_str(parts.last().expect("two or more"));
            } else {
                out.push_str(path);
            }
            prev = path.chars().last();
            i += end;
            continue;
        }
        out.push(c);
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

/// One transition in a job's append-only history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobEvent {
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    pub at: DateTime<Utc>,
    /// Which delivery of the stage this was (1 for the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When a waiting job tries again.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_at: Option<DateTime<Utc>>,
}

/// A word and when it is spoken, in seconds from the start of the narration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WordTiming {
    pub text: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// A sentence and when it is spoken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SentenceTiming {
    pub text: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// What the script stage produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScriptOutput {
    pub title: String,
    pub sentences: Vec<String>,
    /// Which writer made it (`given`, `template`, `openrouter:<model>`).
    pub writer: String,
    /// Footage search terms per sentence, when the writer gave them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub footage_terms: Vec<Vec<String>>,
    /// A post caption suggested by the writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashtags: Vec<String>,
}

/// What a job's outside calls and render cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Costs {
    pub llm_prompt_tokens: u64,
    pub llm_completion_tokens: u64,
    pub tts_characters: u64,
    pub pexels_requests: u64,
    pub render_seconds: f64,
    /// Seconds of AI-generated video the job paid for (`providers.ai_video`).
    #[serde(default)]
    pub generated_video_seconds: u64,
    /// Their credits at `providers.ai_video.credits_per_second`.
    #[serde(default)]
    pub generation_credits: f64,
}

/// Who made a piece of stock footage, shown wherever it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Credit {
    pub creator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_url: Option<String>,
    /// The footage's page at its source (link it when crediting).
    pub page_url: String,
    pub license: String,
}

/// The narration: where its audio lives and when each word is spoken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Narration {
    /// Object key of the WAV file.
    pub key: String,
    pub duration_s: f64,
    pub voice: String,
    pub sentences: Vec<SentenceTiming>,
    pub words: Vec<WordTiming>,
}

/// A footage clip chosen for the video, and the stretch of the narration it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FootagePick {
    /// Object key of the clip file.
    pub key: String,
    /// Where it came from: `library:<file name>` or `generated:<pattern>`.
    pub source: String,
    /// Where in the video it starts and how long it runs.
    pub at_s: f64,
    pub duration_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<Credit>,
    /// A still image (the team's own media), shown with slow motion (Ken
    /// Burns) for its stretch instead of played like a clip.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub still: bool,
}

/// The checked result of the render stage, waiting to be staged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RenderOutput {
    /// Object key of the rendered file before staging.
    pub key: String,
    pub bytes: u64,
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    pub render_seconds: f64,
}

/// A staged video, reachable for the retention period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StagedVideo {
    pub key: String,
    pub bytes: u64,
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    pub expires_at: DateTime<Utc>,
}

/// One still of a photo post (`format: photos`), kept under `renders/` for
/// the retention period like a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PhotoOutput {
    pub key: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
}

/// The draft waiting in a creator's TikTok inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TikTokDraft {
    /// Our account id.
    pub account: String,
    /// TikTok's id of the upload (status/fetch takes it).
    pub publish_id: String,
    pub delivered_at: DateTime<Utc>,
    /// The public post's id (status/fetch's `publicaly_available_post_id`),
    /// once TikTok tells it: for a Direct Post after moderation, for an inbox
    /// draft only after the creator posts it publicly. The Display API's
    /// `video/query` takes it. Never guessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_id: Option<String>,
}

/// What each stage produced. A stage writes its part before the next stage is
/// queued, so a retry resumes where the job stopped and reuses earlier picks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Manifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narration: Option<Narration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footage: Option<Vec<FootagePick>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<StagedVideo>,
    /// A photo post's stills, in order (`format: photos`; no video then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<PhotoOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiktok: Option<TikTokDraft>,
    /// A Direct Post's approved choices (`post_mode: direct`): what the
    /// person posting chose in the review gate, sent as TikTok's `post_info`.
    /// A revision that re-renders drops it with the video approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_post: Option<super::DirectPost>,
    /// What the job's YouTube and Instagram targets came to, as each ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<super::TargetResult>,
    #[serde(default)]
    pub costs: Costs,
    /// What reviewers decided, oldest first (see `review`). A revision drops
    /// the approvals it makes void; rejections stay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviews: Vec<super::ReviewDecision>,
    /// Provider-cache objects the job used that the fields above do not name
    /// (its cached script, Pexels search answers), so a purge can find them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<String>,
    /// What went other than asked without failing the job, e.g. a slot whose
    /// AI clip could not be generated and that shows stock footage instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Manifest {
    /// Whether the manifest names object `key` anywhere.
    pub fn names(&self, key: &str) -> bool {
        self.narration.as_ref().is_some_and(|n| n.key == key)
            || self.footage.iter().flatten().any(|p| p.key == key)
            || self.render.as_ref().is_some_and(|r| r.key == key)
            || self.video.as_ref().is_some_and(|v| v.key == key)
            || self.photos.iter().any(|p| p.key == key)
            || self.cache.iter().any(|k| k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("done".parse::<JobState>().unwrap_err().contains("in_inbox"));
    }

    #[test]
    fn paths_are_cut_to_their_file_names_and_urls_are_left_alone() {
        let raw = "/srv/clipforge/scratch/0193-render/clip-3.mp4: Invalid data found when processing input\n\
                   [Parsed_ass_12 @ 0x55d] Unable to open '/tmp/x y/captions.ass' fontsdir=/usr/share/fonts/dejavu";
        let clean = scrub_paths(raw);
        assert_eq!(
            clean,
            "clip-3.mp4: Invalid data found when processing input\n\
             [Parsed_ass_12 @ 0x55d] Unable to open 'x y/captions.ass' fontsdir=dejavu"
        );
        assert_eq!(
            scrub_paths("see https://api.example.com/v1/jobs/42 or /healthz"),
            "see https://api.example.com/v1/jobs/42 or /healthz"
        );
        assert_eq!(scrub_paths("a/b/c and 1/2/3"), "a/b/c and 1/2/3", "relative pieces are not server paths");
    }

    #[test]
    fn a_long_message_is_cut_on_a_char_boundary_with_a_marker() {
        let short = "ffmpeg failed (exit status: 1)";
        assert_eq!(cap_text(short, 4096), short);
        let long = "é".repeat(5000); // two bytes each
        let cut = cap_text(&long, 4096);
        assert!(cut.len() <= 4096, "{}", cut.len());
        assert!(cut.ends_with(CUT_MARKER));
        assert!(cut.len() > 4000, "keeps nearly all it may");
        let odd = format!("x{}", "é".repeat(5000));
        assert!(cap_text(&odd, 4096).len() <= 4096, "an odd cut point moves back to a boundary");
        let e = JobError::new(Stage::Render, "ffmpeg_failed", &format!("/a/b/c.mp4 {}", "z".repeat(10_000)), false);
        assert!(e.message.starts_with("c.mp4 zzz") && e.message.len() <= MAX_ERROR_MESSAGE_BYTES);
    }

    #[test]
    fn job_ids_are_uuids_and_nothing_else() {
        let id = JobId::new();
        assert_eq!(JobId::parse(id.as_str()), Some(id));
        assert_eq!(JobId::parse("../../etc"), None);
    }
}
