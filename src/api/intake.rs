//! How single submissions (`POST /v1/jobs`) reach the stores: one at a time,
//! or gathered into group commits.
//!
//! A submission is answered 202 only once its job is stored *and* queued.
//! One at a time, that is a record-store transaction (an fsync on SQLite and
//! on PostgreSQL) and a queue push (another fsync on the embedded queue, a
//! Redis round trip) per job, and a 2-core machine took about 1,000 jobs/s
//! that way however many clients sent them: the disks' flushes, not the CPU,
//! set the pace.
//!
//! [`JobIntake::Grouped`] hands concurrent submissions to two tasks. The
//! recorder takes every submission waiting (up to `server.group_commit_jobs`),
//! stores them in one transaction ([`JobStore::create_jobs`]) and passes the
//! group on to the queuer, which queues the new jobs of every group waiting in
//! one bulk push ([`StageQueues::enqueue_many`]) and only then answers each
//! caller. The recorder stores the next group while the queuer pushes the
//! last, so the two stores work side by side. Nothing waits for a group to
//! fill: a submission that finds the recorder idle is stored at once, alone;
//! groups grow only with the load, so a lone client sees no added latency.
//!
//! Every check of a submission (its spec, voice, media, accounts, the key's
//! scope and rate limit) runs in its own request before it is handed over;
//! idempotency keys are decided by the store as before, also between two
//! submissions of one group. Failures are per group and answer as a
//! submission of its own would: a record-store error stores nothing of the
//! group (503 `records_unavailable`); a queue that refuses the push gets the
//! group's new jobs deleted again (503 `queue_unavailable`). A process killed
//! between the two leaves jobs stored but not queued and not answered; the
//! reconciler queues them after the orphan window, as it does for a
//! submission killed at the same point one at a time.
//!
//! [`JobStore::create_jobs`]: crate::store::records::JobStore::create_jobs

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::domain::{JobId, JobSpec, Stage};
use crate::store::queue::{QueueError, StageQueues};
use crate::store::records::{Created, RecordStore, StoreError};

/// Why a submission was not stored and queued. Both are outages worth a
/// retry; nothing of the submission was kept.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Records(Arc<StoreError>),
    #[error(transparent)]
    Queue(Arc<QueueError>),
    /// The group committer is gone (the process is stopping).
    #[error("the server is stopping and takes no more jobs")]
    Stopped,
}

/// The way single submissions are stored and queued (see the module docs).
/// One per process, so the size of its larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum JobIntake {
    /// Each submission in its own transaction and queue push
    /// (`server.group_commit_jobs = 1`).
    OneByOne { records: Arc<dyn RecordStore>, queues: StageQueues },
    /// Concurrent submissions stored and queued together.
    Grouped { submissions: mpsc::Sender<Submission> },
}

/// A submission waiting for its group, and where its answer goes.
pub struct Submission {
    spec: JobSpec,
    answer: oneshot::Sender<Result<Created, IntakeError>>,
}

/// A group stored in the record store, waiting to be queued: one outcome
/// and one caller per submission, in the same order.
struct StoredGroup {
    created: Vec<Created>,
    answers: Vec<oneshot::Sender<Result<Created, IntakeError>>>,
}

impl JobIntake {
    /// One at a time when `group_jobs` is 1; otherwise starts the recorder
    /// and the queuer, which run until the last handle is dropped.
    pub fn start(records: Arc<dyn RecordStore>, queues: StageQueues, group_jobs: usize) -> Self {
        if group_jobs <= 1 {
            return JobIntake::OneByOne { records, queues };
        }
        // Room for a few groups: a caller beyond that waits to hand its job over.
        let (submissions, waiting) = mpsc::channel(group_jobs * 4);
        let (stored, to_queue) = mpsc::channel(4);
        tokio::spawn(record_groups(records.clone(), waiting, stored, group_jobs));
        tokio::spawn(queue_groups(records, queues, to_queue, group_jobs));
        JobIntake::Grouped { submissions }
    }

    /// Stores `spec` as a new job and queues it for its first stage, or finds
    /// the job its idempotency key names. Returns once both happened (or
    /// neither): a `New` job is in the record store and on the queue.
    pub async fn submit(&self, spec: JobSpec) -> Result<Created, IntakeError> {
        match self {
            JobIntake::OneByOne { records, queues } => submit_one(records.as_ref(), queues, &spec).await,
            JobIntake::Grouped { submissions } => {
                let (answer, answered) = oneshot::channel();
                submissions.send(Submission { spec, answer }).await.map_err(|_| IntakeError::Stopped)?;
                // A caller that goes away meanwhile does not stop its job: it
                // is stored and queued with its group, unanswered.
                answered.await.map_err(|_| IntakeError::Stopped)?
            }
        }
    }
}

/// One submission, one transaction, one push.
async fn submit_one(records: &dyn RecordStore, queues: &StageQueues, spec: &JobSpec) -> Result<Created, IntakeError> {
    let created = records.create_job(spec).await.map_err(|e| IntakeError::Records(Arc::new(e)))?;
    if let Created::New(job) = &created
        && let Err(e) = queues.enqueue(Stage::Prepare, &job.id).await
    {
        // Nothing half-stored: a job nobody will work on is removed again.
        if let Err(undo) = records.delete_job(&job.id).await {
            tracing::error!(job_id = %job.id, error = %undo, "could not remove the unqueued job");
        }
        return Err(IntakeError::Queue(Arc::new(e)));
    }
    Ok(created)
}

/// The recorder: stores every submission waiting, up to `max` at once, in
/// one transaction, and hands the group to the queuer.
async fn record_groups(
    records: Arc<dyn RecordStore>,
    mut waiting: mpsc::Receiver<Submission>,
    stored: mpsc::Sender<StoredGroup>,
    max: usize,
) {
    while let Some(first) = waiting.recv().await {
        let mut group = vec![first];
        while group.len() < max {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let (specs, answers): (Vec<JobSpec>, Vec<_>) = group.into_iter().map(|s| (s.spec, s.answer)).unzip();
        match records.create_jobs(&specs).await {
            Ok(created) => {
                tracing::debug!(jobs = created.len(), "group of submissions stored");
                if stored.send(StoredGroup { created, answers }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for answer in answers {
                    let _ = answer.send(Err(IntakeError::Records(e.clone())));
                }
            }
        }
    }
}

/// The queuer: queues the new jobs of every stored group waiting (up to about
/// `max` jobs) in one bulk push, then answers their callers.
async fn queue_groups(
    records: Arc<dyn RecordStore>,
    queues: StageQueues,
    mut to_queue: mpsc::Receiver<StoredGroup>,
    max: usize,
) {
    while let Some(first) = to_queue.recv().await {
        let mut jobs = first.created.len();
        let mut groups = vec![first];
        while jobs < max {
            match to_queue.try_recv() {
                Ok(next) => {
                    jobs += next.created.len();
                    groups.push(next);
                }
                Err(_) => break,
            }
        }
        let new: Vec<JobId> = groups
            .iter()
            .flat_map(|g| &g.created)
            .filter_map(|c| match c {
                Created::New(job) => Some(job.id.clone()),
                _ => None,
            })
            .collect();
        let refused = match queues.enqueue_many(Stage::Prepare, &new).await {
            Ok(()) => None,
            Err(e) => {
                // Nothing half-stored: jobs nobody will work on are removed again.
                for id in &new {
                    if let Err(undo) = records.delete_job(id).await {
                        tracing::error!(job_id = %id, error = %undo, "could not remove the unqueued job");
                    }
                }
                Some(Arc::new(e))
            }
        };
        for group in groups {
            for (created, answer) in group.created.into_iter().zip(group.answers) {
                let answer_with = match (&refused, created) {
                    // A duplicate of a job of this push was removed with it.
                    (Some(e), Created::New(_)) => Err(IntakeError::Queue(e.clone())),
                    (Some(e), Created::Existing(job)) if new.contains(&job.id) => Err(IntakeError::Queue(e.clone())),
                    (_, created) => Ok(created),
                };
                let _ = answer.send(answer_with);
            }
        }
    }
}
