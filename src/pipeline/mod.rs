//! The stages (prepare, render, publish) as job handlers.
//!
//! apalis delivers a [`StageTask`]; [`Pipeline::handle`] decides whether this
//! delivery may work on the job (the record store is the truth, deliveries are
//! at-least-once), records the state change, runs the stage with retries, and
//! records success or failure. Each stage saves what it produced in the
//! manifest before it queues the next, so a retry resumes where the job stopped.
//! At a review point the job asks for, the stage stops it `in_review` instead
//! of queueing the next ([`review`]).

mod config;
mod error;
mod own_media;
pub mod photos;
mod prepare;
mod publish;
pub mod purge;
pub mod reconcile;
mod render;
pub mod review;
mod segments;
pub mod targets;
mod voicing;
mod waiting;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

pub use config::PipelineConfig;
pub use error::{Decision, RetryPolicy, StageError};
pub(crate) use prepare::content_address;
pub use publish::staged_key;
pub use render::{caption_style as render_caption_style, job_caption_style, work_key};
pub use review::ReviewError;
pub use voicing::job_language;

use crate::domain::{JobError, JobId, JobState, Stage};
use crate::error_code as codes;
use crate::media::Toolbox;
use crate::providers::Providers;
use crate::providers::tiktok::InboxUploader;
use crate::store::objects::ObjectStore;
use crate::store::queue::{RenderPart, StageQueues, StageTask};
use crate::store::records::{JobRecord, RecordStore, StoreError, Transition};

/// Everything a stage needs; shared by all workers of a process.
pub struct Pipeline {
    pub records: Arc<dyn RecordStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub queues: StageQueues,
    pub providers: Providers,
    /// TikTok inbox uploads; `None` when TikTok is not configured.
    pub tiktok: Option<InboxUploader>,
    /// YouTube and Instagram; each `None` when not configured.
    pub targets: targets::Targets,
    pub tools: Toolbox,
    pub config: PipelineConfig,
}

/// Whether a delivery may work on a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The job waits for this stage.
    Start,
    /// A worker started this stage and went silent for longer than the orphan
    /// window: it died, and this delivery takes over.
    TakeOver,
    /// Another worker is on this stage and was heard from recently: look again
    /// later (it either finishes, or falls silent and is taken over).
    Busy,
    /// Done, cancelled, or not this stage's turn: drop the delivery.
    Skip,
}

/// The states in which `stage` may begin: right after the stage before it, or
/// `queued` (new jobs, retries that resume at this stage, and waiting jobs the
/// waker queued again).
fn start_states(stage: Stage) -> &'static [JobState] {
    match stage {
        Stage::Prepare => &[JobState::Queued],
        Stage::Render => &[JobState::Queued, JobState::Preparing],
        Stage::Publish => &[JobState::Queued, JobState::Rendering],
    }
}

/// The states a job is in while `stage` runs: publish stages the video, then
/// (with an account) uploads it.
pub fn running_states(stage: Stage) -> &'static [JobState] {
    match stage {
        Stage::Prepare => &[JobState::Preparing],
        Stage::Render => &[JobState::Rendering],
        Stage::Publish => &[JobState::Staging, JobState::Uploading],
    }
}

/// Decides what a delivery of `stage` may do with a job in `state` whose
/// record was last touched at `touched`.
pub fn claim(
    stage: Stage,
    state: JobState,
    touched: DateTime<Utc>,
    now: DateTime<Utc>,
    orphan_after: Duration,
) -> Claim {
    if start_states(stage).contains(&state) {
        return Claim::Start;
    }
    if running_states(stage).contains(&state) {
        let silent = (now - touched).to_std().unwrap_or_default();
        return if silent >= orphan_after { Claim::TakeOver } else { Claim::Busy };
    }
    Claim::Skip
}

impl Pipeline {
    /// Handles one delivery of `stage` for the job in `task`. Returns an error
    /// only when the record store cannot be reached before the job was claimed,
    /// so that the queue delivers it again later.
    ///
    /// `worker` names the apalis worker holding the task; the stage keeps
    /// it alive in the queue while it works (see [`StageQueues::keep_alive`]).
    pub async fn handle(&self, stage: Stage, task: StageTask, worker: &str) -> Result<(), StoreError> {
        let Some(id) = JobId::parse(&task.job_id) else {
            warn!(stage = %stage, job_id = %task.job_id, "dropping a task with a malformed job id");
            return Ok(());
        };
        let span = info_span!("stage", job_id = %id, stage = %stage);
        match task.part {
            None => self.handle_job(stage, id, worker).instrument(span).await,
            Some(part) if stage == Stage::Render => self.handle_part(id, part, worker).instrument(span).await,
            Some(part) => {
                warn!(stage = %stage, job_id = %id, ?part, "dropping a render part queued on another stage");
                Ok(())
            }
        }
    }

    async fn handle_job(&self, stage: Stage, id: JobId, worker: &str) -> Result<(), StoreError> {
        // A redelivered task can arrive while the record still looks busy (a
        // worker just died, or a duplicate delivery while the first still runs);
        // wait until that settles one way or the other.
        let mut announced = false;
        let (job, claim) = loop {
            let Some(job) = self.records.job(&id).await? else {
                warn!("job no longer exists; dropping the task");
                return Ok(());
            };
            match claim(stage, job.state, job.updated_at, Utc::now(), self.config.orphan_after) {
                Claim::Busy => {
                    if !announced {
                        info!("another worker is on this stage; waiting to see whether it finishes");
                        announced = true;
                    }
                    tokio::time::sleep(self.config.watch_every).await;
                }
                claim => break (job, claim),
            }
        };
        let from = match claim {
            Claim::Skip | Claim::Busy => {
                info!(state = %job.state, "job is not waiting for this stage; dropping the delivery");
                return Ok(());
            }
            Claim::Start => start_states(stage).to_vec(),
            Claim::TakeOver => running_states(stage).to_vec(),
        };
        let delivery = self.records.stage_starts(&id, stage).await? + 1;
        if delivery > self.config.max_deliveries {
            let err = JobError {
                stage,
                code: codes::TOO_MANY_DELIVERIES.as_str().into(),
                message: format!(
                    "the {stage} stage was started {} times without finishing (workers crashed or were killed); \
                     retry once the cause is fixed",
                    delivery - 1
                ),
                retryable: true,
            };
            self.fail(&id, err).await?;
            return Ok(());
        }
        let start = Transition::new(&from, stage.running_state()).stage(stage).attempt(delivery);
        let start = if claim == Claim::TakeOver {
            start.note("taken over from a worker that stopped responding")
        } else {
            start
        };
        if !self.records.transition(&id, start).await? {
            info!("job changed state meanwhile; dropping the delivery");
            return Ok(());
        }
        self.records.reset_progress(&id, stage).await?;
        info!(delivery, "stage started");
        self.run_with_retries(stage, &id, worker, None).await
    }

    /// Runs `stage` of the job (or `part` of its segmented render), retrying
    /// failures the retry policy allows, until it finishes, fails the job,
    /// parks it, or the job is cancelled.
    async fn run_with_retries(
        &self,
        stage: Stage,
        id: &JobId,
        worker: &str,
        part: Option<RenderPart>,
    ) -> Result<(), StoreError> {
        let mut attempt = 1;
        let mut outage_since: Option<tokio::time::Instant> = None;
        loop {
            let (progress_tx, progress_rx) = watch::channel(0u8);
            let outcome = tokio::select! {
                r = self.run_stage(stage, id, part, worker, &progress_tx) => Some(r),
                () = self.watch_job(id, stage, worker, part, progress_rx) => None,
            };
            let err = match outcome {
                None => {
                    // Dropping the stage future killed any ffmpeg it was running.
                    info!("job was cancelled; stage stopped");
                    return Ok(());
                }
                Some(Ok(())) => {
                    info!("stage finished");
                    return Ok(());
                }
                Some(Err(StageError::Wait { code, message, until })) => {
                    return self.park(stage, id, code.as_str(), &message, until).await;
                }
                Some(Err(err)) => err,
            };
            // A store outage is not the stage's failure: wait for the store
            // and run the stage again without counting an attempt (what it
            // did is in the manifest and the cache, so it resumes).
            if err.is_store_outage() {
                let since = *outage_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() < self.config.outage_patience {
                    warn!(code = err.code().as_str(), error = %err, waited_s = since.elapsed().as_secs(),
                        "a store is unreachable; the stage waits for it");
                    self.wait_for_stores(since).await;
                    continue;
                }
            }
            outage_since = None;
            match self.config.retry.decide(&err, attempt) {
                Decision::RetryAfter(wait) => {
                    warn!(attempt, code = err.code().as_str(), error = %err, retry_in_ms = wait.as_millis() as u64, "stage failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Decision::Fail => {
                    warn!(attempt, code = err.code().as_str(), error = %err, "stage failed; failing the job");
                    let job_error = JobError {
                        stage,
                        code: err.code().as_str().into(),
                        message: err.to_string(),
                        retryable: err.is_retryable(),
                    };
                    return self.fail(id, job_error).await;
                }
            }
        }
    }

    async fn run_stage(
        &self,
        stage: Stage,
        id: &JobId,
        part: Option<RenderPart>,
        worker: &str,
        progress: &watch::Sender<u8>,
    ) -> Result<(), StageError> {
        let job = self.load(id).await?;
        match (stage, part) {
            (Stage::Prepare, _) => self.prepare(job, progress).await,
            (Stage::Render, None) => self.render(job, progress).await,
            (Stage::Render, Some(part)) => self.render_part(job, part, worker, progress).await,
            (Stage::Publish, _) => self.publish(job, progress).await,
        }
    }

    /// Waits (with backoff, up to the outage patience counted from `since`)
    /// until both the record store and the queue answer.
    async fn wait_for_stores(&self, since: tokio::time::Instant) {
        let mut wait = Duration::from_millis(200);
        while since.elapsed() < self.config.outage_patience {
            let records = self.records.ping().await;
            let queue = self.queues.ping().await;
            if records.is_ok() && queue.is_ok() {
                info!(waited_s = since.elapsed().as_secs(), "the stores answer again");
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Runs a record-store or queue call that records work already done
    /// (a manifest, a hand-off to the next stage), waiting out an outage of
    /// the store for up to the outage patience, so that a store that is down
    /// for a minute delays the job instead of throwing that work away.
    pub(crate) async fn settle<T, E, Fut>(&self, what: &str, call: impl FnMut() -> Fut) -> Result<T, StageError>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Into<StageError>,
    {
        settle_within(self.config.outage_patience, what, call).await
    }

    /// Returns when the job is cancelled. Meanwhile it writes progress and
    /// touches the job record, which tells other workers this stage is alive,
    /// and keeps `worker` alive in the queue, so that a worker draining on
    /// SIGTERM (whose apalis heartbeat has stopped) is not taken for dead.
    ///
    /// Working on a `part` of a segmented render, it also touches the part's
    /// record, and returns as well when the job stops rendering (another
    /// part failed it) or the part was taken over (this worker was taken for dead).
    async fn watch_job(
        &self,
        id: &JobId,
        stage: Stage,
        worker: &str,
        part: Option<RenderPart>,
        mut progress: watch::Receiver<u8>,
    ) {
        let mut tick = tokio::time::interval(self.config.watch_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut kept_alive: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let pct = *progress.borrow_and_update();
            if let Err(e) = self.records.set_progress(id, stage, pct).await {
                warn!(error = %e, "progress could not be recorded");
            }
            match self.records.job(id).await {
                Ok(Some(job)) if part.is_some() && job.state != JobState::Rendering => return,
                Ok(Some(job)) if job.state != JobState::Cancelled => {}
                Ok(_) => return,
                Err(e) => warn!(error = %e, "could not check for cancellation"),
            }
            if let Some(part) = part {
                match self.records.touch_render_part(id, segments::part_index(part), worker).await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!(?part, "another worker took this part over; stopping");
                        return;
                    }
                    Err(e) => warn!(error = %e, "could not tell other workers this part is alive"),
                }
            }
            // Twice per heartbeat is enough to stay inside the orphan window.
            if kept_alive.is_none_or(|t| t.elapsed() >= self.config.keep_alive_every) {
                if let Err(e) = self.queues.keep_alive(stage, worker).await {
                    tracing::debug!(error = %e, "could not tell the queue this worker is alive");
                }
                kept_alive = Some(tokio::time::Instant::now());
            }
        }
    }

    async fn load(&self, id: &JobId) -> Result<JobRecord, StageError> {
        self.records
            .job(id)
            .await?
            .ok_or_else(|| StageError::job(codes::JOB_MISSING, "the job was deleted while it ran"))
    }

    async fn fail(&self, id: &JobId, error: JobError) -> Result<(), StoreError> {
        let from: Vec<JobState> = JobState::ALL.into_iter().filter(|s| !s.is_terminal()).collect();
        let failed = Transition::new(&from, JobState::Failed).stage(error.stage).error(error);
        if self.records.transition(id, failed).await? {
            self.notify(id, JobState::Failed).await;
        }
        Ok(())
    }

    /// Adds the notifications announcing that the job just entered `state`
    /// (nothing when it has no targets, or has moved on meanwhile). Never
    /// fails the caller: a record store error is logged and the message lost,
    /// as the job itself matters more than its announcement.
    /// Queues the `queued` announcement of a job just submitted, as of its
    /// submission: a worker may have taken the job on before the API got
    /// here, and the announcement is owed all the same (asked-for events are
    /// never skipped because a worker was quick). Its time is the job's
    /// creation, so a second call adds nothing.
    pub async fn announce_submitted(&self, id: &JobId) {
        let mut job = match self.records.job(id).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(e) => {
                warn!(job_id = %id, error = %e, "could not read the job to notify about it");
                return;
            }
        };
        if job.state != JobState::Queued {
            job.state = JobState::Queued;
            job.last_event = crate::domain::JobEvent {
                state: JobState::Queued,
                stage: None,
                at: job.created_at,
                attempt: None,
                error: None,
                note: None,
                retry_at: None,
            };
        }
        if let Err(e) = crate::notify::enqueue(self.records.as_ref(), &self.config.notify, &job).await {
            warn!(job_id = %id, event = "queued", error = %e, "could not queue the job's notifications");
        }
    }

    pub async fn notify(&self, id: &JobId, state: JobState) {
        let job = match self.records.job(id).await {
            Ok(Some(job)) if job.state == state => job,
            Ok(_) => return,
            Err(e) => {
                warn!(job_id = %id, error = %e, "could not read the job to notify about it");
                return;
            }
        };
        if let Err(e) = crate::notify::enqueue(self.records.as_ref(), &self.config.notify, &job).await {
            warn!(job_id = %id, event = %state, error = %e, "could not queue the job's notifications");
        }
    }
}

/// [`Pipeline::settle`] with its patience: runs `call` again while it fails
/// with a store outage, waiting 200 ms, doubling up to 5 s, and hands back
/// the error instead of starting a wait that would end past `patience`.
async fn settle_within<T, E, Fut>(
    patience: Duration,
    what: &str,
    mut call: impl FnMut() -> Fut,
) -> Result<T, StageError>
where
    Fut: Future<Output = Result<T, E>>,
    E: Into<StageError>,
{
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(200);
    let mut said = None::<tokio::time::Instant>;
    loop {
        let err: StageError = match call().await {
            Ok(v) => return Ok(v),
            Err(e) => e.into(),
        };
        if !err.is_store_outage() || started.elapsed() + wait >= patience {
            return Err(err);
        }
        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            warn!(what, error = %err, waited_s = started.elapsed().as_secs(), "a store is unreachable; waiting to record finished work");
            said = Some(tokio::time::Instant::now());
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_job_is_started_and_a_busy_one_is_left_alone() {
        let now = Utc::now();
        let window = Duration::from_secs(60);
        assert_eq!(claim(Stage::Render, JobState::Preparing, now, now, window), Claim::Start);
        assert_eq!(claim(Stage::Render, JobState::Queued, now, now, window), Claim::Start);
        assert_eq!(claim(Stage::Render, JobState::Rendering, now, now, window), Claim::Busy);
        let silent = now - chrono::Duration::seconds(61);
        assert_eq!(claim(Stage::Render, JobState::Rendering, silent, now, window), Claim::TakeOver);
    }

    #[test]
    fn finished_or_cancelled_jobs_are_never_claimed() {
        let now = Utc::now();
        let old = now - chrono::Duration::days(1);
        for state in [JobState::Staging, JobState::Staged, JobState::Cancelled, JobState::Failed] {
            assert_eq!(claim(Stage::Render, state, old, now, Duration::ZERO), Claim::Skip, "{state}");
        }
        assert_eq!(claim(Stage::Prepare, JobState::Rendering, old, now, Duration::ZERO), Claim::Skip);
    }

    fn outage() -> StageError {
        StageError::Records(StoreError::Database(sqlx::Error::PoolTimedOut))
    }

    #[tokio::test(start_paused = true)]
    async fn finished_work_is_recorded_once_the_store_is_back() {
        let started = tokio::time::Instant::now();
        let mut tried_at = Vec::new();
        let saved = settle_within(Duration::from_secs(60), "save", || {
            tried_at.push(started.elapsed().as_millis() as u64);
            let n = tried_at.len();
            async move { if n < 5 { Err(outage()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(saved.unwrap(), 5);
        assert_eq!(tried_at, [0, 200, 600, 1400, 3000], "200 ms, doubling");
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_longer_than_the_patience_is_handed_back_and_a_refusal_at_once() {
        let started = tokio::time::Instant::now();
        let mut tried_at = Vec::new();
        let got: Result<(), _> = settle_within(Duration::from_secs(10), "save", || {
            tried_at.push(started.elapsed().as_millis() as u64);
            async { Err(outage()) }
        })
        .await;
        assert!(got.unwrap_err().is_store_outage());
        // The next wait (5 s, capped) would end at 11.2 s, past the patience.
        assert_eq!(tried_at, [0, 200, 600, 1400, 3000, 6200]);
        assert_eq!(started.elapsed(), Duration::from_millis(6200));

        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let got: Result<(), _> = settle_within(Duration::from_secs(10), "save", || {
            calls += 1;
            async { Err(StageError::Records(StoreError::Corrupt("bad row".into()))) }
        })
        .await;
        assert!(!got.unwrap_err().is_store_outage());
        assert_eq!((calls, started.elapsed()), (1, Duration::ZERO), "a store that answered is not waited for");
    }
}
