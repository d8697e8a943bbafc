//! Stage workers: apalis workers on whichever backend the queues are, each
//! handing its tasks to a [`StageHandler`] (the pipeline), so nothing outside
//! `store` needs to know the backend.
//!
//! Each worker gets a name unique to this process (`<stage>-<host>-<pid>-<run>`):
//! apalis-redis refuses to re-register a name that is "still active", and a
//! shared name would stop live workers from reclaiming a dead one's tasks.
//! Every worker fetches when its stage's doorbell rings (push delivery, see
//! [`crate::store::doorbell`]); its heartbeat is the safety net.

use std::future::Future;
use std::sync::Arc;

use apalis::prelude::*;
use apalis_core::backend::ext::poll_strategy::{PollStrategy, PollWith};

use super::{Backend, StageQueues, StageTask};
use crate::domain::Stage;

/// What a stage worker does with one task.
pub trait StageHandler: Send + Sync + 'static {
    /// Works on `task` for `stage`, as the worker named `worker`. An error
    /// stops the worker (the monitor restarts it); failures of the job itself
    /// are the job's business and end in Ok.
    fn run_task(
        &self,
        stage: Stage,
        task: StageTask,
        worker: &str,
    ) -> impl Future<Output = Result<(), BoxDynError>> + Send;
}

/// A handler and the stage it serves, as a worker's data.
struct StageRunner<H> {
    stage: Stage,
    handler: Arc<H>,
}

impl<H> Clone for StageRunner<H> {
    fn clone(&self) -> Self {
        Self { stage: self.stage, handler: self.handler.clone() }
    }
}

async fn run_stage_task<H: StageHandler>(
    task: StageTask,
    runner: Data<StageRunner<H>>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    runner.handler.run_task(runner.stage, task, worker.name()).await
}

/// A worker name no other process shares.
pub fn worker_name(stage: Stage, run: usize) -> String {
    format!("{}{run}", process_prefix(stage))
}

/// The start of the names of this process's workers of `stage`.
pub fn process_prefix(stage: Stage) -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{stage}-{host}-{}-", std::process::id())
}

macro_rules! register {
    ($monitor:expr, $queues:expr, $backend:expr, $stage:expr, $concurrency:expr, $runner:expr, $prefix:expr, $wake:expr) => {{
        let (backend, runner, queues, prefix, wake) = ($backend.clone(), $runner, $queues.clone(), $prefix, $wake);
        let (stage, concurrency) = ($stage, $concurrency);
        $monitor.register(move |run| {
            let name = format!("{prefix}{run}");
            queues.note_worker(stage, &name);
            WorkerBuilder::new(name)
                .backend(PollWith::new(backend.clone(), wake()))
                .data(runner.clone())
                .concurrency(concurrency)
                .catch_panic()
                .enable_tracing()
                .build(run_stage_task::<H>)
        })
    }};
}

impl StageQueues {
    /// Adds `stage`'s workers (`concurrency` tasks at a time) to `monitor`,
    /// woken by the stage's doorbell, each passing its tasks to `handler`.
    pub fn add_workers<H: StageHandler>(
        &self,
        monitor: Monitor,
        stage: Stage,
        concurrency: usize,
        handler: Arc<H>,
    ) -> Monitor {
        let bell = self.doorbell(stage).clone();
        self.add_workers_with(monitor, stage, concurrency, handler, process_prefix(stage), move || bell.listen())
    }

    /// [`StageQueues::add_workers`] with names `<prefix><run>` and a poll
    /// strategy of the caller's: for measuring what push delivery is worth.
    pub fn add_workers_with<H, P>(
        &self,
        monitor: Monitor,
        stage: Stage,
        concurrency: usize,
        handler: Arc<H>,
        prefix: String,
        wake: impl Fn() -> P + Send + Sync + 'static,
    ) -> Monitor
    where
        H: StageHandler,
        P: PollStrategy + Send + Sync + Unpin + 'static,
    {
        let runner = StageRunner { stage, handler };
        match &self.0 {
            Backend::Redis { queues, .. } => {
                register!(monitor, self, queues.get(stage), stage, concurrency, runner, prefix, wake)
            }
            Backend::Sqlite { queues, .. } => {
                register!(monitor, self, queues.get(stage), stage, concurrency, runner, prefix, wake)
            }
        }
    }
}
