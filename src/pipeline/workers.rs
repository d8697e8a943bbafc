//! apalis workers for the stage roles, run by one monitor per process.
//!
//! Each worker gets a name unique to this process (`<stage>-<host>-<pid>-<run>`):
//! apalis-redis refuses to re-register a name that is "still active", and a
//! shared name would stop live workers from reclaiming a dead one's tasks.
//!
//! Every worker fetches when its stage's doorbell rings (push delivery, see
//! [`crate::store::doorbell`]); its heartbeat is the safety net.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_core::backend::ext::poll_strategy::PollWith;
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::domain::Stage;
use crate::store::queue::{StageQueues, StageTask};

async fn prepare(task: StageTask, pipeline: Data<Arc<Pipeline>>, worker: WorkerContext) -> Result<(), BoxDynError> {
    pipeline.handle(Stage::Prepare, task, worker.name()).await.map_err(Into::into)
}

async fn render(task: StageTask, pipeline: Data<Arc<Pipeline>>, worker: WorkerContext) -> Result<(), BoxDynError> {
    pipeline.handle(Stage::Render, task, worker.name()).await.map_err(Into::into)
}

async fn publish(task: StageTask, pipeline: Data<Arc<Pipeline>>, worker: WorkerContext) -> Result<(), BoxDynError> {
    pipeline.handle(Stage::Publish, task, worker.name()).await.map_err(Into::into)
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
    ($monitor:expr, $backend:expr, $stage:expr, $concurrency:expr, $pipeline:expr, $handler:path) => {{
        let backend = $backend.clone();
        let pipeline = $pipeline.clone();
        let (stage, concurrency) = ($stage, $concurrency);
        let bell = pipeline.queues.doorbell(stage).clone();
        $monitor.register(move |run| {
            let name = worker_name(stage, run);
            pipeline.queues.note_worker(stage, &name);
            WorkerBuilder::new(name)
                .backend(PollWith::new(backend.clone(), bell.listen()))
                .data(pipeline.clone())
                .concurrency(concurrency)
                .catch_panic()
                .enable_tracing()
                .build($handler)
        })
    }};
}

/// Runs workers for `roles` until `shutdown` is cancelled; work in hand is
/// finished (up to `grace`) before it returns.
pub async fn run_workers(
    pipeline: Arc<Pipeline>,
    roles: &[(Stage, usize)],
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let stopping = shutdown.clone();
    let mut monitor = Monitor::new().shutdown_timeout(grace).should_restart(move |_ctx, err| {
        if stopping.is_cancelled() {
            tracing::info!(error = %err, "worker stopped while shutting down");
            return false;
        }
        tracing::error!(error = %err, "worker stopped; restarting it");
        true
    });
    for &(stage, concurrency) in roles {
        monitor = match (&pipeline.queues, stage) {
            (StageQueues::Redis { queues, .. }, Stage::Prepare) => {
                register!(monitor, queues.prepare, stage, concurrency, pipeline, prepare)
            }
            (StageQueues::Redis { queues, .. }, Stage::Render) => {
                register!(monitor, queues.render, stage, concurrency, pipeline, render)
            }
            (StageQueues::Redis { queues, .. }, Stage::Publish) => {
                register!(monitor, queues.publish, stage, concurrency, pipeline, publish)
            }
            (StageQueues::Sqlite { queues, .. }, Stage::Prepare) => {
                register!(monitor, queues.prepare, stage, concurrency, pipeline, prepare)
            }
            (StageQueues::Sqlite { queues, .. }, Stage::Render) => {
                register!(monitor, queues.render, stage, concurrency, pipeline, render)
            }
            (StageQueues::Sqlite { queues, .. }, Stage::Publish) => {
                register!(monitor, queues.publish, stage, concurrency, pipeline, publish)
            }
        };
    }
    monitor
        .run_with_signal(async move {
            shutdown.cancelled().await;
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)
}
