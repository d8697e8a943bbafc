//! The stage roles, run by one monitor per process: the pipeline is the
//! [`StageHandler`] of every stage queue's workers (see
//! [`crate::store::queue`] for how they are named and woken).

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::domain::Stage;
use crate::store::queue::{StageHandler, StageTask};

impl StageHandler for Pipeline {
    async fn run_task(&self, stage: Stage, task: StageTask, worker: &str) -> Result<(), BoxDynError> {
        self.handle(stage, task, worker).await.map_err(Into::into)
    }
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
        monitor = pipeline.queues.add_workers(monitor, stage, concurrency, pipeline.clone());
    }
    monitor
        .run_with_signal(async move {
            shutdown.cancelled().await;
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)
}
