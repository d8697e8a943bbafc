//! The reconciler: the records are the truth, the queues only deliver.
//!
//! A job whose records say it is queued or in a stage must reach a worker.
//! Normally its task does; but a queue can lose tasks (Redis flushed or
//! failed over to an empty replica, a Redis without persistence restarted,
//! the SQLite queue file emptied or replaced), and then nothing would ever
//! pick those jobs up again. Every so often (and at start) the reconciler
//! compares the two: a job that has sat queued, or in a stage with no live
//! worker touching it, for longer than the orphan window, and that no task in
//! its stage's queue names (waiting, scheduled, or held by any worker), is
//! put back on that queue, with an event saying so.
//!
//! Several processes may reconcile at once: a job in a stage goes back to
//! `queued` by a guarded transition, so only one of them queues it; a job
//! already queued may get a second task, which its worker drops (deliveries
//! are at-least-once and the records decide who works on a job).

use std::collections::HashSet;

use chrono::Utc;
use tracing::{info, warn};

use super::{Pipeline, running_states};
use crate::domain::{JobId, JobState, Stage};
use crate::store::records::{JobFilter, JobRecord, StoreError, Transition};

/// The states in which a job is somebody's work. Not `in_review` or
/// `changes_requested`: those wait for a person, and no queue holds them.
const IN_FLIGHT: [JobState; 5] =
    [JobState::Queued, JobState::Preparing, JobState::Rendering, JobState::Staging, JobState::Uploading];

/// Why a reconciliation round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Records(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] crate::store::queue::QueueError),
}

/// The stage whose queue should hold a job in `state` (whose latest event
/// names `stage`): a queued job waits for the stage it resumes at, a
/// running one for the stage it is in.
pub fn stage_for(state: JobState, stage: Option<Stage>) -> Option<Stage> {
    match state {
        JobState::Queued => Some(stage.unwrap_or(Stage::Prepare)),
        _ => Stage::ALL.into_iter().find(|s| running_states(*s).contains(&state)),
    }
}

impl Pipeline {
    /// One round: queues again every stuck job; returns how many.
    pub async fn reconcile(&self) -> Result<usize, ReconcileError> {
        // The queues first: a job queued after this snapshot is younger than
        // the orphan window, and so is left alone below.
        let mut held: Vec<(Stage, HashSet<String>)> = Vec::new();
        for stage in Stage::ALL {
            held.push((stage, self.queues.held_jobs(stage).await?));
        }
        let mut requeued = 0;
        for state in IN_FLIGHT {
            let mut before = None;
            loop {
                let page = self
                    .records
                    .list_jobs(&JobFilter { state: Some(state), limit: 500, before, ..Default::default() })
                    .await?;
                let Some(last) = page.last() else { break };
                before = Some(last.id.clone());
                for job in &page {
                    let Some(stage) = self.stuck_stage(job, &held) else { continue };
                    if self.requeue(job, stage).await? {
                        requeued += 1;
                    }
                }
                if page.len() < 500 {
                    break;
                }
            }
        }
        Ok(requeued)
    }

    /// The stage to queue `job` on, if it is stuck: in flight, untouched for
    /// longer than the orphan window, and named by no task of that stage.
    fn stuck_stage(&self, job: &JobRecord, held: &[(Stage, HashSet<String>)]) -> Option<Stage> {
        if !IN_FLIGHT.contains(&job.state) {
            return None;
        }
        let silent = (Utc::now() - job.updated_at).to_std().unwrap_or_default();
        if silent < self.config.orphan_after {
            return None;
        }
        let stage = stage_for(job.state, job.last_event.stage)?;
        let id = job.id.to_string();
        let named = held.iter().any(|(s, jobs)| *s == stage && jobs.contains(&id));
        (!named).then_some(stage)
    }

    /// Whether `id` is stuck right now; if so, queues it again and returns
    /// the stage. For `POST /v1/jobs/{id}/retry` on a job that is not failed.
    pub async fn requeue_if_stuck(&self, id: &JobId) -> Result<Option<Stage>, ReconcileError> {
        let Some(job) = self.records.job(id).await? else { return Ok(None) };
        let Some(stage) = stage_for(job.state, job.last_event.stage) else { return Ok(None) };
        let held = vec![(stage, self.queues.held_jobs(stage).await?)];
        let Some(stage) = self.stuck_stage(&job, &held) else { return Ok(None) };
        Ok(self.requeue(&job, stage).await?.then_some(stage))
    }

    async fn requeue(&self, job: &JobRecord, stage: Stage) -> Result<bool, ReconcileError> {
        let note = format!(
            "reconciled: the records showed it {} with no worker on it and no queued task; queued again for {stage}",
            job.state
        );
        let t = Transition::new(&[job.state], JobState::Queued).stage(stage).note(note);
        if !self.records.transition(&job.id, t).await? {
            return Ok(false); // it moved on meanwhile: somebody has it
        }
        if let Err(e) = self.queues.enqueue(stage, &job.id).await {
            // The job stays queued in the records; the next round tries again.
            warn!(job_id = %job.id, error = %e, "could not queue a stuck job again; the next round retries");
            return Err(e.into());
        }
        info!(job_id = %job.id, stage = %stage, was = %job.state, "stuck job queued again");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_waits_on_the_queue_of_the_stage_it_is_in_or_resumes_at() {
        assert_eq!(stage_for(JobState::Queued, None), Some(Stage::Prepare));
        assert_eq!(stage_for(JobState::Queued, Some(Stage::Render)), Some(Stage::Render));
        assert_eq!(stage_for(JobState::Rendering, Some(Stage::Render)), Some(Stage::Render));
        assert_eq!(stage_for(JobState::Uploading, Some(Stage::Publish)), Some(Stage::Publish));
        assert_eq!(stage_for(JobState::Staged, Some(Stage::Publish)), None);
        assert_eq!(stage_for(JobState::Waiting, Some(Stage::Publish)), None);
        // A job waiting for a person is nobody's work: no queue should hold it.
        assert_eq!(stage_for(JobState::InReview, Some(Stage::Render)), None);
        assert_eq!(stage_for(JobState::ChangesRequested, Some(Stage::Prepare)), None);
        assert!(!IN_FLIGHT.iter().any(|s| s.awaits_person()));
    }
}
