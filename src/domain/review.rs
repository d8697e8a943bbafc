//! The review gate: where a job stops for a person before it goes on, what
//! that person decided, and what a revision makes the pipeline do again.
//!
//! A job may stop twice: after prepare (the *script* point: script, narration
//! and footage picks exist) and after render (the *video* point: the MP4 is
//! rendered, nothing is staged or uploaded yet). While it waits it is
//! `in_review`; a reviewer approves it (it goes on with the next stage) or
//! sends it back (`changes_requested`), and a revision re-runs it from the
//! earliest part the change touches. The pure rules live here; the
//! operations are `Pipeline::approve`, `reject` and `revise`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{JobRequest, Manifest, MusicRequest, Stage};

/// A point where a job can stop for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewPoint {
    /// After prepare: the script, its narration and the footage picks.
    Script,
    /// After render: the video, before it is staged and uploaded.
    Video,
}

impl ReviewPoint {
    pub const ALL: [ReviewPoint; 2] = [ReviewPoint::Script, ReviewPoint::Video];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewPoint::Script => "script",
            ReviewPoint::Video => "video",
        }
    }

    /// The stage whose end this point follows.
    pub fn after(self) -> Stage {
        match self {
            ReviewPoint::Script => Stage::Prepare,
            ReviewPoint::Video => Stage::Render,
        }
    }

    /// The stage an approval at this point queues.
    pub fn next(self) -> Stage {
        match self {
            ReviewPoint::Script => Stage::Render,
            ReviewPoint::Video => Stage::Publish,
        }
    }

    /// The point that follows `stage`, if any.
    pub fn after_stage(stage: Stage) -> Option<ReviewPoint> {
        ReviewPoint::ALL.into_iter().find(|p| p.after() == stage)
    }
}

impl fmt::Display for ReviewPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job asks to be reviewed: the `review` option of a job spec, and
/// the team default (`review.default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Review {
    /// Straight through (the default).
    #[default]
    None,
    /// Stop after prepare.
    Script,
    /// Stop after render, before anything is staged or uploaded.
    Video,
    /// Stop at both points.
    Both,
}

impl Review {
    pub const ALL: [Review; 4] = [Review::None, Review::Script, Review::Video, Review::Both];

    pub fn as_str(self) -> &'static str {
        match self {
            Review::None => "none",
            Review::Script => "script",
            Review::Video => "video",
            Review::Both => "both",
        }
    }

    /// The option named `raw`, if it is one.
    pub fn parse(raw: &str) -> Option<Review> {
        Review::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// The allowed names, for messages: `none, script, video, both`.
    pub fn allowed() -> String {
        Review::ALL.map(Review::as_str).join(", ")
    }

    /// Whether a job with this option stops at `point`.
    pub fn asks(self, point: ReviewPoint) -> bool {
        matches!(
            (self, point),
            (Review::Both, _) | (Review::Script, ReviewPoint::Script) | (Review::Video, ReviewPoint::Video)
        )
    }
}

impl fmt::Display for Review {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a reviewer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approved,
    ChangesRequested,
}

/// One reviewer's decision, kept in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewDecision {
    pub point: ReviewPoint,
    pub verdict: Verdict,
    /// Who decided: an API key id, or `anonymous` when keys are off.
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The longest note a reviewer may give, in characters.
pub const MAX_REVIEW_NOTE_CHARS: usize = 2000;

/// A part of the manifest, in the order the pipeline makes them. A change
/// re-runs the job from the earliest part it touches; every later part is made
/// again too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ManifestPart {
    Script,
    Narration,
    Footage,
    Render,
}

impl ManifestPart {
    /// The stage that makes this part.
    pub fn stage(self) -> Stage {
        match self {
            ManifestPart::Script | ManifestPart::Narration | ManifestPart::Footage => Stage::Prepare,
            ManifestPart::Render => Stage::Render,
        }
    }
}

/// What a reviewer may change on a job sent back for changes: the fields of
/// [`JobRequest`] that shape the video. Each is optional; a field left out
/// (or given as it already is) changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    /// A new narration script. On a topic job it replaces the topic: the job
    /// then speaks this script as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footage_queries: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub music: Option<MusicRequest>,
    /// A new caption style (replaces the job's whole `caption_style`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_style: Option<super::CaptionStyleRequest>,
}

impl Revision {
    /// `current` with this revision's fields put in.
    pub fn apply(&self, current: &JobRequest) -> JobRequest {
        let mut req = current.clone();
        if let Some(script) = &self.script {
            req.script = Some(script.clone());
            req.topic = None;
            req.target_length_s = None;
        }
        if let Some(voice) = &self.voice {
            req.voice = Some(voice.clone());
        }
        if let Some(queries) = &self.footage_queries {
            req.footage_queries = queries.clone();
        }
        if let Some(captions) = self.captions {
            req.captions = Some(captions);
        }
        if let Some(music) = &self.music {
            req.music = Some(music.clone());
        }
        if let Some(style) = &self.caption_style {
            req.caption_style = Some(style.clone());
        }
        req
    }

    /// The earliest manifest part that must be made again when the job's
    /// spec goes from `before` to `after` (both as stored, so equal values
    /// compare equal), or None when nothing that shapes the video changed.
    ///
    /// Prepare reads the script (or topic), the voice and the footage hints;
    /// render reads the narration's words (the captions' text and timings),
    /// the footage picks, whether captions are burnt in, and the music. So a
    /// script change re-writes from the script, a voice change re-narrates
    /// (the script is kept), new footage hints pick footage again (narration
    /// kept), and captions or music only render again.
    pub fn earliest_change(before: &JobRequest, after: &JobRequest) -> Option<ManifestPart> {
        if before.script != after.script || before.topic != after.topic {
            Some(ManifestPart::Script)
        } else if before.voice != after.voice {
            Some(ManifestPart::Narration)
        } else if before.footage_queries != after.footage_queries {
            Some(ManifestPart::Footage)
        } else if before.captions != after.captions
            || before.music != after.music
            || before.caption_style != after.caption_style
        {
            Some(ManifestPart::Render)
        } else {
            None
        }
    }
}

impl Manifest {
    /// Whether a reviewer approved the job at `point` (and no revision since
    /// made that point's work again).
    pub fn approved(&self, point: ReviewPoint) -> bool {
        self.reviews.iter().any(|d| d.point == point && d.verdict == Verdict::Approved)
    }

    /// Forgets `from` and every part made after it, so the pipeline makes them
    /// again, and every approval of a point that follows the stage making
    /// `from` or a later one: what was approved is no longer what the job
    /// will show. Rejections stay, as the history of why the job was revised.
    /// Cache objects the forgotten parts named are kept in `cache`, so a purge
    /// of the job still finds them.
    pub fn forget_from(&mut self, from: ManifestPart) {
        let mut dropped = Vec::new();
        if from <= ManifestPart::Script {
            self.script = None;
        }
        if from <= ManifestPart::Narration
            && let Some(n) = self.narration.take()
        {
            dropped.push(n.key);
        }
        if from <= ManifestPart::Footage
            && let Some(picks) = self.footage.take()
        {
            dropped.extend(picks.into_iter().map(|p| p.key));
        }
        self.render = None;
        self.video = None;
        self.photos.clear();
        // Chosen for the video a person saw; a new render needs a new choice.
        self.direct_post = None;
        for key in dropped {
            if key.starts_with("cache/") && !self.cache.contains(&key) {
                self.cache.push(key);
            }
        }
        let stage = from.stage();
        self.reviews.retain(|d| d.verdict != Verdict::Approved || d.point.after() < stage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FootagePick, Narration, RenderOutput, ScriptOutput};

    fn stored(script: &str) -> JobRequest {
        JobRequest {
            script: Some(script.into()),
            voice: Some("en-us".into()),
            footage_queries: vec!["sea".into()],
            captions: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn a_revision_restarts_at_the_earliest_part_it_touches() {
        let before = stored("Old words.");
        let restart = |r: Revision| Revision::earliest_change(&before, &r.apply(&before));
        assert_eq!(
            restart(Revision { script: Some("New words.".into()), ..Default::default() }),
            Some(ManifestPart::Script)
        );
        assert_eq!(
            restart(Revision { voice: Some("en-gb".into()), ..Default::default() }),
            Some(ManifestPart::Narration)
        );
        let hints = Revision { footage_queries: Some(vec!["forest".into()]), ..Default::default() };
        assert_eq!(restart(hints), Some(ManifestPart::Footage));
        assert_eq!(restart(Revision { captions: Some(false), ..Default::default() }), Some(ManifestPart::Render));
        let music =
            Revision { music: Some(MusicRequest { track: "a.mp3".into(), volume: None }), ..Default::default() };
        assert_eq!(restart(music), Some(ManifestPart::Render));
        let restyled = Revision {
            caption_style: Some(crate::domain::CaptionStyleRequest {
                preset: Some("boxed".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(restart(restyled), Some(ManifestPart::Render), "a new caption style only renders again");
        let both = Revision { voice: Some("en-gb".into()), captions: Some(false), ..Default::default() };
        assert_eq!(restart(both), Some(ManifestPart::Narration), "the earliest of several changes");
        let same = Revision { script: Some("Old words.".into()), captions: Some(true), ..Default::default() };
        assert_eq!(restart(same), None, "values as they are change nothing");
        assert_eq!(ManifestPart::Footage.stage(), Stage::Prepare);
        assert_eq!(ManifestPart::Render.stage(), Stage::Render);
    }

    #[test]
    fn a_script_on_a_topic_job_replaces_the_topic() {
        let topic = JobRequest { topic: Some("tides".into()), target_length_s: Some(30), ..Default::default() };
        let revised = Revision { script: Some("The sea rises.".into()), ..Default::default() }.apply(&topic);
        assert_eq!(
            (revised.script.as_deref(), revised.topic, revised.target_length_s),
            (Some("The sea rises."), None, None)
        );
    }

    fn full_manifest() -> Manifest {
        let decision = |point, verdict| ReviewDecision { point, verdict, by: "k1".into(), at: Utc::now(), note: None };
        Manifest {
            script: Some(ScriptOutput {
                title: "t".into(),
                sentences: vec!["Hi.".into()],
                writer: "given".into(),
                footage_terms: vec![],
                caption: None,
                hashtags: vec![],
            }),
            narration: Some(Narration {
                key: "cache/narration/n.wav".into(),
                duration_s: 1.0,
                voice: "en-us".into(),
                sentences: vec![],
                words: vec![],
            }),
            footage: Some(vec![FootagePick {
                key: "cache/footage/f.mp4".into(),
                source: "generated:x".into(),
                at_s: 0.0,
                duration_s: 1.0,
                credit: None,
                still: false,
            }]),
            render: Some(RenderOutput {
                key: "work/j/video.mp4".into(),
                bytes: 1,
                duration_s: 1.0,
                width: 1080,
                height: 1920,
                render_seconds: 1.0,
            }),
            reviews: vec![
                decision(ReviewPoint::Script, Verdict::Approved),
                decision(ReviewPoint::Video, Verdict::ChangesRequested),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn forgetting_clears_the_part_and_everything_after_it_and_the_approvals_it_voids() {
        let parts = |m: &Manifest| [m.script.is_some(), m.narration.is_some(), m.footage.is_some(), m.render.is_some()];
        let mut m = full_manifest();
        m.forget_from(ManifestPart::Render);
        assert_eq!(parts(&m), [true, true, true, false]);
        assert!(m.approved(ReviewPoint::Script), "a re-render keeps the script's approval");
        assert_eq!(m.reviews.len(), 2, "rejections stay as history");

        let mut m = full_manifest();
        m.forget_from(ManifestPart::Footage);
        assert_eq!(parts(&m), [true, true, false, false]);
        assert!(!m.approved(ReviewPoint::Script), "new footage is reviewed again");
        assert_eq!(m.cache, ["cache/footage/f.mp4"], "a purge still finds the forgotten clip");

        let mut m = full_manifest();
        m.forget_from(ManifestPart::Narration);
        assert_eq!(parts(&m), [true, false, false, false]);
        assert_eq!(m.cache, ["cache/narration/n.wav", "cache/footage/f.mp4"]);

        let mut m = full_manifest();
        m.forget_from(ManifestPart::Script);
        assert_eq!(parts(&m), [false, false, false, false]);
        assert_eq!(m.reviews.iter().map(|d| d.verdict).collect::<Vec<_>>(), [Verdict::ChangesRequested]);
    }

    #[test]
    fn review_options_ask_for_their_points() {
        assert!(!Review::None.asks(ReviewPoint::Script) && !Review::None.asks(ReviewPoint::Video));
        assert!(Review::Script.asks(ReviewPoint::Script) && !Review::Script.asks(ReviewPoint::Video));
        assert!(!Review::Video.asks(ReviewPoint::Script) && Review::Video.asks(ReviewPoint::Video));
        assert!(Review::Both.asks(ReviewPoint::Script) && Review::Both.asks(ReviewPoint::Video));
        for r in Review::ALL {
            assert_eq!(Review::parse(r.as_str()), Some(r));
        }
        assert_eq!(Review::parse("Video"), None);
        assert_eq!(ReviewPoint::after_stage(Stage::Prepare), Some(ReviewPoint::Script));
        assert_eq!(ReviewPoint::after_stage(Stage::Publish), None);
        assert_eq!(ReviewPoint::Video.next(), Stage::Publish);
    }
}
