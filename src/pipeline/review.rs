//! The review gate's operations: stopping a job at a review point, and what a
//! reviewer does with it — approve, send back with a note, revise. The API,
//! the studio and the Telegram bot all call these, so the rules are in one
//! place.
//!
//! Every decision is one guarded transition that carries the manifest with
//! the decision in it: the decision is recorded exactly when the state
//! changes, so an approval delivered twice acts once (the second finds the
//! job no longer `in_review` and gets [`ReviewError::NotInReview`]). The
//! transition also requires the job untouched since it was read, so a
//! decision about what the reviewer saw never lands on a job that moved on
//! and came back to the same state (approved at the script, rendered, and in
//! review again at the video) in between.
//!
//! States: a stage that ends at a review point its job asks for moves the job
//! to `in_review` (instead of queueing the next stage); `approve` queues the
//! next stage, `reject` moves it to `changes_requested`, and `revise` (from
//! `changes_requested`, or straight from `in_review` when the reviewer edits
//! instead of sending back) stores the new spec, forgets the manifest parts
//! the change makes stale and queues the job at the earliest stage it
//! touches. Neither state is in flight: no queue holds such a job, the
//! reconciler and the waker leave it alone, and `cancel` ends it.

use chrono::Utc;
use tracing::info;

use super::{Pipeline, StageError};
use crate::domain::{
    DirectPostRequest, FieldError, JobId, JobSpec, JobState, MAX_REVIEW_NOTE_CHARS, Manifest, PostMode, ReviewDecision,
    ReviewPoint, Revision, Verdict,
};
use crate::error_code::{self as codes, ErrorCode};
use crate::providers::tiktok::{CreatorInfo, UploadError};
use crate::store::queue::QueueError;
use crate::store::records::{JobRecord, StoreError, Transition};

/// Why a review operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no job with id `{0}`")]
    NotFound(JobId),
    /// Approve and reject act only on a job waiting for review.
    #[error("job is {0}; only a job in_review can be approved or sent back")]
    NotInReview(JobState),
    /// Revise acts only on a job sent back, or waiting for review.
    #[error("job is {0}; only a job in changes_requested or in_review can be revised")]
    NotRevisable(JobState),
    /// The job moved on and came back to the same state while the request
    /// was made: what the reviewer decided on is no longer what it shows.
    #[error("job is {state} again, after more work since it was read; read it and decide again")]
    Moved { state: JobState, code: ErrorCode },
    /// The note is missing (a rejection needs one), too long, or holds
    /// control characters.
    #[error("note: {}", .0.message)]
    Note(FieldError),
    /// The revision changes nothing that shapes the video.
    #[error(
        "the revision changes nothing: give a new script, voice, footage_queries, captions, music or caption_style"
    )]
    NothingToRevise,
    /// The revised spec breaks the rules a submission must follow, or a
    /// Direct Post's choices are missing or not the creator's to make.
    #[error("the request is invalid")]
    InvalidSpec(Vec<FieldError>),
    /// TikTok could not say what the creator may choose for a Direct Post.
    #[error("{message}")]
    Creator { code: ErrorCode, message: String },
    #[error(transparent)]
    Records(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl ReviewError {
    /// The stable code of the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            ReviewError::NotFound(_) => codes::JOB_NOT_FOUND,
            ReviewError::NotInReview(_) => codes::NOT_IN_REVIEW,
            ReviewError::NotRevisable(_) => codes::NOT_REVISABLE,
            ReviewError::Moved { code, .. } => *code,
            ReviewError::Note(_) | ReviewError::InvalidSpec(_) => codes::INVALID_SPEC,
            ReviewError::NothingToRevise => codes::NOTHING_TO_REVISE,
            ReviewError::Creator { code, .. } => *code,
            ReviewError::Records(_) => codes::RECORDS_UNAVAILABLE,
            ReviewError::Queue(_) => codes::QUEUE_UNAVAILABLE,
        }
    }

    /// Whether the caller must change the request (or wait for the job's
    /// state to change); otherwise a store was unreachable and the same
    /// request may succeed later.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, ReviewError::Records(_) | ReviewError::Queue(_) | ReviewError::Creator { .. })
    }
}

/// A decision about to be recorded (see `Pipeline::decide`).
struct Decided {
    job: JobRecord,
    point: ReviewPoint,
    /// The reviewer, made safe to show.
    by: String,
    /// The job's manifest with the decision added.
    manifest: crate::domain::Manifest,
}

/// The point a job in review waits at: the one after the stage its latest
/// event names.
pub fn waiting_point(job: &JobRecord) -> Option<ReviewPoint> {
    if !job.state.awaits_person() {
        return None;
    }
    job.last_event.stage.and_then(ReviewPoint::after_stage)
}

/// A reviewer's note made fit to keep: `\r\n` read as `\n`, trimmed, None
/// when empty; refused when over [`MAX_REVIEW_NOTE_CHARS`] or holding a
/// control character other than tab and newline.
pub fn checked_note(note: Option<String>) -> Result<Option<String>, FieldError> {
    let Some(note) = note else { return Ok(None) };
    let note = note.replace("\r\n", "\n").trim().to_string();
    if note.is_empty() {
        return Ok(None);
    }
    if let Some((at, c)) = note.chars().enumerate().find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n')) {
        return Err(FieldError::new(
            "note",
            codes::CONTROL_CHARACTER,
            format!("note holds the control character U+{:04X} at character {}", u32::from(c), at + 1),
        ));
    }
    let chars = note.chars().count();
    if chars > MAX_REVIEW_NOTE_CHARS {
        return Err(FieldError::new(
            "note",
            codes::NOTE_TOO_LONG,
            format!("the note has {chars} characters; at most {MAX_REVIEW_NOTE_CHARS} are allowed"),
        ));
    }
    Ok(Some(note))
}

impl Pipeline {
    /// At the end of the stage before `point`: when the job asks for review
    /// there (its own `review`, else the team default) and nobody approved
    /// that point yet, moves it to `in_review` instead of letting the stage
    /// queue the next one, announces it, and returns true.
    pub(super) async fn stops_for_review(
        &self,
        job: &JobRecord,
        manifest: &Manifest,
        point: ReviewPoint,
    ) -> Result<bool, StageError> {
        let asked = job.spec.review.unwrap_or(self.config.review_default);
        // A Direct Post is published only after a person approved the video
        // with their choices, whatever the job or the team asked.
        let direct = point == ReviewPoint::Video && job.spec.post_mode == PostMode::Direct;
        if !(asked.asks(point) || direct) || manifest.approved(point) {
            return Ok(false);
        }
        let stage = point.after();
        let t = Transition::new(&[stage.running_state()], JobState::InReview)
            .stage(stage)
            .note(format!("waiting for {point} review"));
        // Cancelled meanwhile: the next stage must not be queued either.
        if self.settle("stop for review", || self.records.transition(&job.id, t.clone())).await? {
            info!(point = %point, "job waits for review");
            self.notify(&job.id, JobState::InReview).await;
        }
        Ok(true)
    }

    /// Approves the job waiting in review: records who approved which point
    /// (and their note) in the manifest, moves it `in_review → queued` for
    /// the next stage (render after a script review, publish after a video
    /// review), and queues that stage. Returns the job as it is then.
    ///
    /// Only from `in_review`: a second delivery of the same approval finds
    /// the job queued (or further) and gets [`ReviewError::NotInReview`].
    /// When the stage cannot be queued the job goes back to `in_review`
    /// without the approval, so it can be approved again.
    ///
    /// The video of a Direct Post job is approved only with `post`, the
    /// person's choices, checked against what TikTok says the creator may
    /// choose now; they are kept in the manifest with the approval, and the
    /// publish stage sends exactly them. Any other approval takes no `post`.
    pub async fn approve(
        &self,
        id: &JobId,
        by: &str,
        note: Option<String>,
        post: Option<DirectPostRequest>,
    ) -> Result<JobRecord, ReviewError> {
        let note = checked_note(note).map_err(ReviewError::Note)?;
        let Decided { job, point, by, mut manifest } = self.decide(id, by, Verdict::Approved, note).await?;
        let direct = point == ReviewPoint::Video && job.spec.post_mode == PostMode::Direct;
        match (direct, post) {
            (true, Some(post)) => {
                let creator = self.creator_info(&job).await?.choices();
                let checked = post.check(&creator, &by, Utc::now()).map_err(ReviewError::InvalidSpec)?;
                manifest.direct_post = Some(checked);
            }
            (true, None) => {
                return Err(ReviewError::InvalidSpec(vec![FieldError::new(
                    "direct_post",
                    codes::DIRECT_POST_REQUIRED,
                    "this job is a Direct Post: approve its video with `direct_post`, the choices of the person \
                     posting (privacy level, interactions, disclosure, music confirmation), as the studio's \
                     composer sends them",
                )]));
            }
            (false, Some(_)) => {
                return Err(ReviewError::InvalidSpec(vec![FieldError::new(
                    "direct_post",
                    codes::DIRECT_POST_NOT_ASKED,
                    format!(
                        "this approval is of the {point} of a job whose post_mode is {}; send direct_post only \
                         when approving the video of a Direct Post job",
                        job.spec.post_mode
                    ),
                )]));
            }
            (false, None) => {}
        }
        let next = point.next();
        let approved = Transition::new(&[JobState::InReview], JobState::Queued)
            .stage(next)
            .note(format!("approved by {by}"))
            .manifest(manifest)
            .unchanged_since(job.updated_at);
        if !self.records.transition(id, approved).await? {
            return Err(self.refused(id, JobState::InReview, codes::NOT_IN_REVIEW).await);
        }
        // Read (and announced) before it is queued: once queued, a worker may
        // take it at once, and the answer is the job as the decision left it.
        let decided = self.after_decision(id).await?;
        self.notify(id, JobState::Queued).await;
        if let Err(e) = self.queues.enqueue(next, id).await {
            let back = Transition::new(&[JobState::Queued], JobState::InReview)
                .stage(point.after())
                .note(format!("the approval could not be queued; waiting for {point} review again"))
                .manifest(job.manifest.clone());
            let _ = self.records.transition(id, back).await;
            return Err(ReviewError::Queue(e));
        }
        info!(job_id = %id, point = %point, by = %by, stage = %next, "review approved");
        Ok(decided)
    }

    /// Sends the job waiting in review back with `note` (required: what
    /// should change): records the decision and moves it `in_review →
    /// changes_requested`, where it waits for [`Pipeline::revise`] or a cancel.
    pub async fn reject(&self, id: &JobId, by: &str, note: String) -> Result<JobRecord, ReviewError> {
        let note = checked_note(Some(note)).map_err(ReviewError::Note)?.ok_or_else(|| {
            ReviewError::Note(FieldError::new(
                "note",
                codes::NOTE_REQUIRED,
                "say what should change: a job is sent back with a note",
            ))
        })?;
        let Decided { job, point, by, manifest } = self.decide(id, by, Verdict::ChangesRequested, Some(note)).await?;
        let sent_back = Transition::new(&[JobState::InReview], JobState::ChangesRequested)
            .stage(point.after())
            .note(format!("changes requested by {by} at the {point} review"))
            .manifest(manifest)
            .unchanged_since(job.updated_at);
        if !self.records.transition(id, sent_back).await? {
            return Err(self.refused(id, JobState::InReview, codes::NOT_IN_REVIEW).await);
        }
        info!(job_id = %id, point = %point, by = %by, "review sent back");
        self.notify(id, JobState::ChangesRequested).await;
        self.after_decision(id).await
    }

    /// Changes what the job will say or show and runs it again from the
    /// earliest stage the change touches, reusing what comes before.
    ///
    /// From `changes_requested`, and also straight from `in_review` (a
    /// reviewer who sees a typo fixes it instead of sending the job back
    /// first). The revised spec must pass the rules of a submission; what
    /// the change makes stale is forgotten (see [`Manifest::forget_from`]:
    /// a script change re-writes everything, a voice change re-narrates,
    /// footage hints pick footage again, captions and music only re-render),
    /// approvals of the points it re-runs are dropped, and the job goes to
    /// `queued` at that stage. If the stage cannot be queued, spec, manifest
    /// and state are put back as they were.
    pub async fn revise(&self, id: &JobId, by: &str, changes: Revision) -> Result<JobRecord, ReviewError> {
        let job = self.records.job(id).await?.ok_or_else(|| ReviewError::NotFound(id.clone()))?;
        if !job.state.awaits_person() {
            return Err(ReviewError::NotRevisable(job.state));
        }
        let before = job.spec.to_request();
        let mut after = changes.apply(&before);
        // The key (a batch line's starts with `batch:`) and the targets were
        // the submission's; only the changed fields are new input.
        let key = after.idempotency_key.take();
        let mut spec = JobSpec::parse_submission(after, &self.tools.budget.spec).map_err(ReviewError::InvalidSpec)?;
        spec.idempotency_key = key;
        let Some(part) = Revision::earliest_change(&before, &spec.to_request()) else {
            return Err(ReviewError::NothingToRevise);
        };
        let mut manifest = job.manifest.clone();
        manifest.forget_from(part);
        let stage = part.stage();
        let by = crate::domain::echo(by);
        let revised = Transition::new(&[job.state], JobState::Queued)
            .stage(stage)
            .note(format!("revised by {by}; runs again from {stage}"))
            .manifest(manifest)
            .unchanged_since(job.updated_at);
        if !self.records.revise_spec(id, &spec, revised).await? {
            return Err(self.refused(id, job.state, codes::NOT_REVISABLE).await);
        }
        // As for an approval: the answer is the job as the revision left it.
        let decided = self.after_decision(id).await?;
        self.notify(id, JobState::Queued).await;
        if let Err(e) = self.queues.enqueue(stage, id).await {
            let mut back = Transition::new(&[JobState::Queued], job.state)
                .note("the revision could not be queued; put back as it was")
                .manifest(job.manifest.clone());
            back.stage = job.last_event.stage;
            let _ = self.records.revise_spec(id, &job.spec, back).await;
            return Err(ReviewError::Queue(e));
        }
        info!(job_id = %id, by = %by, stage = %stage, part = ?part, "job revised");
        Ok(decided)
    }

    /// Why a guarded decision did not apply: the job left `expected`, or
    /// (still in it) moved on and came back.
    async fn refused(&self, id: &JobId, expected: JobState, code: ErrorCode) -> ReviewError {
        match self.records.job(id).await {
            Err(e) => ReviewError::Records(e),
            Ok(None) => ReviewError::NotFound(id.clone()),
            Ok(Some(job)) if job.state == expected => ReviewError::Moved { state: job.state, code },
            Ok(Some(job)) if code == codes::NOT_REVISABLE => ReviewError::NotRevisable(job.state),
            Ok(Some(job)) => ReviewError::NotInReview(job.state),
        }
    }

    /// The job waiting in review, the point it waits at, and its manifest
    /// with the decision added: what approving and sending back both start from.
    async fn decide(
        &self,
        id: &JobId,
        by: &str,
        verdict: Verdict,
        note: Option<String>,
    ) -> Result<Decided, ReviewError> {
        let job = self.records.job(id).await?.ok_or_else(|| ReviewError::NotFound(id.clone()))?;
        let Some(point) = waiting_point(&job).filter(|_| job.state == JobState::InReview) else {
            return Err(ReviewError::NotInReview(job.state));
        };
        let by = crate::domain::echo(by);
        let mut manifest = job.manifest.clone();
        manifest.reviews.push(ReviewDecision { point, verdict, by: by.clone(), at: Utc::now(), note });
        Ok(Decided { job, point, by, manifest })
    }

    /// What TikTok says about `job`'s creator: who posts and what a Direct
    /// Post may choose (kept for `tiktok.creator_info_ttl_secs`).
    pub async fn creator_info(&self, job: &JobRecord) -> Result<CreatorInfo, ReviewError> {
        let unavailable = |code, message: String| ReviewError::Creator { code, message };
        let (Some(uploader), Some(account)) = (&self.tiktok, &job.spec.account) else {
            return Err(unavailable(
                codes::PUBLISH_NOT_CONFIGURED,
                "this server has no TikTok settings (tiktok.client_key); a Direct Post cannot be approved".into(),
            ));
        };
        match uploader.creator_info(account).await {
            Ok(Some(info)) => Ok(info),
            Ok(None) => Err(unavailable(
                codes::SCOPE_NOT_AUTHORIZED,
                format!(
                    "account {account} did not grant video.publish, which Direct Post needs; connect it again \
                     and allow it (scope_not_authorized)"
                ),
            )),
            Err(UploadError::Wait { code, message, .. }) => Err(unavailable(code, format!("{message} ({code})"))),
            Err(UploadError::Failed(e)) => Err(unavailable(e.code, format!("{} ({})", e.message, e.code))),
        }
    }

    async fn after_decision(&self, id: &JobId) -> Result<JobRecord, ReviewError> {
        self.records.job(id).await?.ok_or_else(|| ReviewError::NotFound(id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_trimmed_bounded_and_one_of_text() {
        assert_eq!(checked_note(None).unwrap(), None);
        assert_eq!(checked_note(Some("  \r\n ".into())).unwrap(), None, "blank is no note");
        assert_eq!(checked_note(Some(" Shorter,\r\nplease. ".into())).unwrap().as_deref(), Some("Shorter,\nplease."));
        let long = checked_note(Some("é".repeat(MAX_REVIEW_NOTE_CHARS + 1))).unwrap_err();
        assert_eq!((long.field.as_str(), long.code.as_str()), ("note", "note_too_long"));
        assert!(checked_note(Some("é".repeat(MAX_REVIEW_NOTE_CHARS))).is_ok(), "counted in characters");
        assert_eq!(checked_note(Some("a\u{1b}[2J".into())).unwrap_err().code, "control_character");
    }
}
