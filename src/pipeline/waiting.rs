//! Jobs that wait for a limit or for their operator: parked in `waiting`
//! with a retry time, and queued again when it comes.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{Pipeline, running_states};
use crate::domain::{JobId, JobState, Stage};
use crate::store::records::{StoreError, Transition};

impl Pipeline {
    /// Moves a job that must wait for a limit (or its operator) to `waiting`.
    pub(super) async fn park(
        &self,
        stage: Stage,
        id: &JobId,
        code: &str,
        message: &str,
        until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut t =
            Transition::new(running_states(stage), JobState::Waiting).stage(stage).note(format!("{code}: {message}"));
        if let Some(until) = until {
            t = t.retry_at(until);
        }
        if self.records.transition(id, t).await? {
            self.notify(id, JobState::Waiting).await;
        }
        info!(code, retry_at = ?until, "job is waiting");
        Ok(())
    }

    /// Queues again the waiting jobs whose time has come (and those whose
    /// account was connected again). Run by every publish-role process; the
    /// `waiting → queued` transition lets exactly one of them queue each job.
    pub async fn wake_due(&self) -> Result<usize, StoreError> {
        let now = Utc::now();
        let mut woken = 0;
        for w in self.records.waiting_jobs().await? {
            let mut accounts: Vec<String> = w.account.iter().cloned().collect();
            if w.retry_at.is_none() {
                // Waiting for a reconnect, maybe of a YouTube or Instagram
                // target's account: every account the job names must be back.
                if let Some(job) = self.records.job(&w.id).await? {
                    accounts.extend(job.spec.targets.iter().map(|t| t.account.clone()));
                }
            }
            let mut connected = true;
            for a in &accounts {
                let acct = self.records.account(a).await?;
                connected &= acct.is_some_and(|acct| acct.status == crate::store::records::AccountStatus::Connected);
            }
            let due = connected && w.retry_at.is_none_or(|t| t <= now);
            if !due {
                continue;
            }
            let t = Transition::new(&[JobState::Waiting], JobState::Queued)
                .stage(Stage::Publish)
                .note("woken: trying again");
            if self.records.transition(&w.id, t).await? {
                if let Err(e) = self.queues.enqueue(Stage::Publish, &w.id).await {
                    warn!(job_id = %w.id, error = %e, "could not queue a woken job; it waits for the next round");
                    let back = Transition::new(&[JobState::Queued], JobState::Waiting)
                        .stage(Stage::Publish)
                        .note("queue unavailable; waiting again")
                        .retry_at(now);
                    self.records.transition(&w.id, back).await?;
                    continue;
                }
                info!(job_id = %w.id, "waiting job queued again");
                woken += 1;
            }
        }
        Ok(woken)
    }
}
