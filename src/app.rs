//! Builds clipforge from settings and runs the roles a process was asked for
//! until its shutdown handle is cancelled.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::domain::Stage;
use crate::media::Toolbox;
use crate::media::process::{self, Invocation, ProcessError};
use crate::pipeline::{Pipeline, PipelineConfig, workers};
use crate::providers::Providers;
use crate::providers::tiktok::{Accounts, InboxUploader, UploadLimits};
use crate::settings::Settings;
use crate::settings::StorageKind;
use crate::store::objects::{LocalFolder, ObjectStore};
use crate::store::queue::{QueueError, StageQueues};
use crate::store::records::StoreError;
use crate::store::s3::S3Store;

/// Why clipforge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data folder {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Records(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("{0} (needed by the {1} role)")]
    Tool(ProcessError, &'static str),
    #[error(transparent)]
    Lifecycle(#[from] crate::store::s3::LifecycleError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

/// Which parts this process runs.
#[derive(Debug, Clone)]
pub struct Roles {
    pub api: bool,
    pub stages: Vec<Stage>,
}

impl Roles {
    /// Everything in one process (`clipforge serve`).
    pub fn all() -> Self {
        Self { api: true, stages: Stage::ALL.to_vec() }
    }
}

/// A built, not yet running clipforge process.
pub struct Application {
    pipeline: Arc<Pipeline>,
    settings: Arc<Settings>,
    listener: Option<TcpListener>,
    roles: Roles,
    shutdown: CancellationToken,
}

/// Checks that `program` runs, so a missing ffmpeg is reported at start, not per job.
async fn check_tool(program: &std::path::Path, arg: &str, role: &'static str) -> Result<(), StartError> {
    let inv = Invocation::new(program, vec![arg.into()], Duration::from_secs(10));
    process::run(&inv).await.map(|_| ()).map_err(|e| StartError::Tool(e, role))
}

impl Application {
    /// Connects the stores, checks the tools the roles need and binds the API
    /// listener (port 0 picks a free port; see [`Application::port`]).
    pub async fn build(settings: Settings, roles: Roles) -> Result<Self, StartError> {
        let data_dir = &settings.data.dir;
        tokio::fs::create_dir_all(data_dir)
            .await
            .map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?;
        let records = crate::store::records::connect(&settings.records_url()).await?;
        let queues = StageQueues::connect(&settings.queue_url(), &settings.queue).await?;
        let objects = open_object_store(&settings).await?;
        let tools = Toolbox::from_settings(&settings);
        if roles.stages.contains(&Stage::Render) || roles.stages.contains(&Stage::Prepare) {
            check_tool(&tools.ffmpeg, "-version", "render").await?;
            check_tool(&tools.ffprobe, "-version", "render").await?;
        }
        if roles.stages.contains(&Stage::Prepare) {
            check_tool(&tools.espeak, "--version", "prepare").await?;
        }
        let listener = if roles.api {
            let addr = settings.server.listen;
            Some(listen(addr).map_err(|source| StartError::Bind { addr: addr.to_string(), source })?)
        } else {
            None
        };
        let tiktok = Accounts::from_settings(&settings, records.clone()).map(|a| {
            InboxUploader::new(a, records.clone(), records.clone(), UploadLimits::from_settings(&settings.tiktok))
        });
        let targets = crate::pipeline::targets::Targets {
            youtube: crate::providers::youtube::YouTube::from_settings(&settings, records.clone()).map(Arc::new),
            instagram: crate::providers::instagram::Instagram::from_settings(
                &settings,
                records.clone(),
                objects.clone(),
            )
            .map(Arc::new),
        };
        let pipeline = Arc::new(Pipeline {
            records,
            tiktok,
            targets,
            objects: objects.clone(),
            queues,
            providers: Providers::from_settings(&settings, &tools, objects),
            tools,
            config: PipelineConfig::from_settings(&settings),
        });
        Ok(Self { pipeline, settings: Arc::new(settings), listener, roles, shutdown: CancellationToken::new() })
    }

    /// The port the API listens on, when this process runs the API.
    pub fn port(&self) -> Option<u16> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    /// Cancel it to stop: the API stops accepting, workers finish the job in hand.
    pub fn shutdown_handle(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline.clone()
    }

    /// Runs the API and workers until the shutdown handle is cancelled.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application { pipeline, settings, listener, roles, shutdown } = self;
        let api = listener.map(|listener| {
            let state = ApiState {
                pipeline: pipeline.clone(),
                tiktok_redirect: settings.tiktok_redirect_uri(),
                youtube_redirect: settings.platform_redirect_uri("youtube"),
                instagram_redirect: settings.platform_redirect_uri("instagram"),
                state_ttl: settings.tiktok.state_ttl(),
                presign_ttl: settings.storage.presign_ttl(),
                limits: settings.limits.spec(),
                auth: Arc::new(api::auth::AuthGate::new(&settings.auth, pipeline.records.clone())),
                max_batch_lines: settings.limits.max_batch_lines,
                max_batch_bytes: settings.limits.max_batch_mb * 1024 * 1024,
                browser: Arc::new(api::browser::BrowserRules::from_settings(&settings.server)),
                events_poll: settings.server.events_poll(),
                shutdown: shutdown.clone(),
                studio: Arc::new(crate::studio::StudioConfig::from_settings(&settings)),
                ideas: Arc::new(crate::ideas::IdeaFinder::new(
                    &settings.ideas,
                    settings.limits.spec(),
                    pipeline.providers.script.clone(),
                    crate::providers::script::for_request_keys(
                        &settings.providers.script,
                        &settings.providers.http,
                        pipeline.providers.errors.clone(),
                    ),
                )),
                telegram: api::telegram::ChatBot::from_settings(&settings),
                intake: Arc::new(api::intake::JobIntake::start(
                    pipeline.records.clone(),
                    pipeline.queues.clone(),
                    settings.server.group_commit_jobs,
                )),
            };
            // One API-role process at a time polls Telegram (a lease in the
            // record store); in webhook mode the route above hears updates.
            if let Some(bot) = state.telegram.clone().filter(|b| b.mode() == crate::settings::BotMode::Polling) {
                tokio::spawn(bot.poll(state.clone(), shutdown.clone()));
            }
            let stop = shutdown.clone();
            tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "API listening");
            let timeouts = api::serve::Timeouts::from_settings(&settings.server);
            tokio::spawn(api::serve::serve(listener, api::router(state), timeouts, stop))
        });
        let q = &settings.queue;
        let stages: Vec<(Stage, usize)> = roles
            .stages
            .iter()
            .map(|&s| {
                let n = match s {
                    Stage::Prepare => q.prepare_concurrency,
                    Stage::Render => q.render_concurrency,
                    Stage::Publish => q.publish_concurrency,
                };
                (s, n)
            })
            .collect();
        if roles.stages.contains(&Stage::Publish) {
            tokio::spawn(sweep_periodically(
                pipeline.clone(),
                Sweep {
                    retention: settings.storage.retention(),
                    keep_finished_tasks: settings.queue.keep_finished(),
                    every: settings.storage.sweep_interval(),
                },
                shutdown.clone(),
            ));
        }
        if roles.stages.contains(&Stage::Publish) {
            // Notifications are their own step: publish-role processes send the
            // outbox, so a Telegram or receiver outage never holds up a job.
            let notifier = Arc::new(crate::notify::Notifier::from_settings(
                &settings,
                pipeline.records.clone(),
                pipeline.objects.clone(),
            ));
            tokio::spawn(notifier.run(shutdown.clone()));
        }
        if roles.stages.contains(&Stage::Publish) {
            tokio::spawn(reconcile_periodically(pipeline.clone(), settings.queue.reconcile_every(), shutdown.clone()));
        }
        if !roles.stages.is_empty() && pipeline.queues.describe() == "redis" {
            tokio::spawn(reclaim_orphans_periodically(pipeline.clone(), roles.stages.clone(), shutdown.clone()));
        }
        if roles.stages.contains(&Stage::Publish) && pipeline.tiktok.is_some() {
            tokio::spawn(wake_waiting_periodically(
                pipeline.clone(),
                settings.tiktok.waiting_check(),
                shutdown.clone(),
            ));
        }
        // Publish-role processes collect how each TikTok post did (see `performance`).
        if roles.stages.contains(&Stage::Publish)
            && let Some(collector) = crate::performance::Collector::from_settings(
                &settings,
                pipeline.records.clone(),
                pipeline.tiktok.as_ref().map(|u| u.accounts.clone()),
            )
        {
            tokio::spawn(Arc::new(collector).run(shutdown.clone()));
        }
        if !stages.is_empty() {
            tokio::spawn(flush_provider_errors(pipeline.clone(), shutdown.clone()));
            tracing::info!(queue = pipeline.queues.describe(), roles = ?roles.stages, "workers starting");
            let grace = settings.media.render_timeout();
            workers::run_workers(pipeline.clone(), &stages, shutdown.clone(), grace).await?;
        } else {
            shutdown.cancelled().await;
        }
        if let Some(api) = api {
            api.await.map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

/// Connections the kernel queues for the API before it accepts them. The
/// default of `TcpListener::bind` (128) overflows under a burst of a few
/// hundred connections, and an overflowed client waits seconds for the
/// kernel's retry; the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The object store the settings ask for; an S3 bucket gets its lifecycle rule checked.
pub async fn open_object_store(settings: &Settings) -> Result<Arc<dyn ObjectStore>, StartError> {
    match settings.storage.kind {
        StorageKind::Local => {
            let dir = settings.storage_dir();
            let store = LocalFolder::open(&dir)
                .await
                .map_err(|source| StartError::DataDir { path: dir.display().to_string(), source })?;
            Ok(Arc::new(store))
        }
        StorageKind::S3 => {
            let store = S3Store::connect(&settings.storage).await;
            if settings.storage.manage_lifecycle {
                store.ensure_lifecycle(settings.storage.retention_days).await?;
            }
            Ok(Arc::new(store))
        }
    }
}

/// What the periodic sweep forgets, and how often it runs.
struct Sweep {
    /// Staged renders older than this go.
    retention: Duration,
    /// Finished stage tasks older than this leave the queue.
    keep_finished_tasks: Duration,
    every: Duration,
}

/// Deletes expired staged renders (and stale hand-offs) and finished queue
/// tasks every `sweep.every`, so neither the local store nor the queue grows
/// without anyone remembering to clean it. Several processes sweeping at
/// once is harmless.
async fn sweep_periodically(pipeline: Arc<Pipeline>, sweep: Sweep, stop: CancellationToken) {
    let mut tick = tokio::time::interval(sweep.every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (prefix, max_age) in [("renders/", sweep.retention), ("work/", Duration::from_secs(86_400))] {
            match pipeline.objects.sweep(prefix, max_age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(prefix, removed = n, "expired objects removed"),
                Err(e) => tracing::warn!(prefix, error = %e, "sweep failed; trying again next round"),
            }
        }
        // Studio sign-ins that ended (expired or signed out) leave no row behind.
        match pipeline.records.forget_ended_sessions(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "ended studio sessions removed"),
            Err(e) => tracing::warn!(error = %e, "session sweep failed; trying again next round"),
        }
        match pipeline.queues.prune_finished(sweep.keep_finished_tasks).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "finished queue tasks removed"),
            Err(e) => tracing::warn!(error = %e, "queue prune failed; trying again next round"),
        }
    }
}

/// Runs the reconciler at start and every `every` (see
/// [`crate::pipeline::reconcile`]): jobs the records show in flight that no
/// worker holds and no task names go back on their queue.
async fn reconcile_periodically(pipeline: Arc<Pipeline>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match pipeline.reconcile().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(requeued = n, "reconciler queued stuck jobs again"),
            Err(e) => {
                tracing::warn!(error = %e, "reconciler could not compare records and queues; trying again next round")
            }
        }
    }
}

/// Every second, moves the tasks of dead workers of `stages` to the head of
/// their queue (Redis only; see [`crate::store::queue::StageQueues::reclaim_orphans`]).
///
/// After Redis was unreachable, every worker's last heartbeat looks old at
/// once; so this waits for one orphan window of Redis answering before it
/// takes anyone for dead, which gives live workers time to beat again.
async fn reclaim_orphans_periodically(pipeline: Arc<Pipeline>, stages: Vec<Stage>, stop: CancellationToken) {
    let window = pipeline.config.orphan_after;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut answering_since = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if pipeline.queues.ping().await.is_err() {
            answering_since = tokio::time::Instant::now();
            continue;
        }
        if answering_since.elapsed() < window {
            continue;
        }
        for &stage in &stages {
            let ours = crate::store::queue::process_prefix(stage);
            match pipeline.queues.reclaim_orphans(stage, window, &ours).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(stage = %stage, tasks = n, "took over the tasks of a worker that stopped responding")
                }
                Err(e) => {
                    answering_since = tokio::time::Instant::now();
                    tracing::debug!(stage = %stage, error = %e, "could not look for orphaned tasks");
                }
            }
        }
    }
}

/// Queues waiting jobs again when their time comes or their account is
/// connected again.
async fn wake_waiting_periodically(pipeline: Arc<Pipeline>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = pipeline.wake_due().await {
            tracing::warn!(error = %e, "could not look for waiting jobs; trying again next round");
        }
    }
}

/// Moves this process's failed-call counts into the shared record store every
/// few seconds (and once more at shutdown), so `/metrics` on any API replica
/// counts the errors of every worker.
async fn flush_provider_errors(pipeline: Arc<Pipeline>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        let counts = pipeline.providers.errors.take();
        if !counts.is_empty()
            && let Err(e) = pipeline.records.add_provider_errors(&counts).await
        {
            tracing::warn!(error = %e, "provider error counts could not be stored; keeping them for next time");
            pipeline.providers.errors.restore(&counts);
        }
        if stopping {
            return;
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, for binaries.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
