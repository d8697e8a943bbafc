//! The stage queues, delivered by apalis: Redis in production, SQLite embedded.
//!
//! Queues carry only a job id; the record store is the truth about a job and
//! apalis only delivers. Queue names are set explicitly
//! (`<namespace>:prepare|render|publish`), because apalis would otherwise name
//! a queue after the Rust type and a rename would strand queued work.

use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::TaskSink;
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::SqliteStorage;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};

use super::doorbell::{Doorbell, WeakDoorbell};
use crate::domain::{JobId, Stage};
use crate::settings::QueueSettings;

pub use super::patient::PatientConnection;
pub use workers::{StageHandler, process_prefix, worker_name};

mod upkeep;
mod workers;

/// What a stage queue carries: which job to work on. Never media bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTask {
    pub job_id: String,
    /// On the render queue, one part of a segmented render (see
    /// `pipeline::segments`); absent for the stage itself. Defaulted so tasks
    /// queued before segmented renders existed still decode, and left out of
    /// the payload when absent so older workers read new stage tasks too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<RenderPart>,
}

impl StageTask {
    /// The task of `job`'s stage itself.
    pub fn stage(job: &JobId) -> Self {
        Self { job_id: job.to_string(), part: None }
    }
}

/// A piece of a segmented render that any render worker may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderPart {
    /// Segment `k` (from 0) of the job's plan.
    Segment(u32),
    /// Joining the rendered segments with the audio, once all are done.
    Join,
}

/// A queue failure; the queue being down is always worth a retry.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue (redis): {0}")]
    Redis(#[from] redis::RedisError),
    #[error("queue (sqlite): {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("queue push failed: {0}")]
    Push(String),
}

impl QueueError {
    /// Whether the queue could not be reached (worth waiting for), rather
    /// than that it refused what was asked.
    pub fn is_outage(&self) -> bool {
        match self {
            QueueError::Redis(e) => super::patient::is_outage(e),
            QueueError::Sqlite(e) => super::records::is_outage(e),
            // apalis' push error is a string; pushes go through a
            // PatientConnection, which waited already.
            QueueError::Push(_) => false,
        }
    }
}

/// One storage handle per stage for one backend.
#[derive(Clone)]
pub struct PerStage<S> {
    pub prepare: S,
    pub render: S,
    pub publish: S,
}

impl<S> PerStage<S> {
    pub fn get(&self, stage: Stage) -> &S {
        match stage {
            Stage::Prepare => &self.prepare,
            Stage::Render => &self.render,
            Stage::Publish => &self.publish,
        }
    }
}

impl<S> PerStage<S> {
    /// Builds one `S` per stage.
    pub fn build(mut make: impl FnMut(Stage) -> S) -> Self {
        PerStage { prepare: make(Stage::Prepare), render: make(Stage::Render), publish: make(Stage::Publish) }
    }
}

/// The three stage queues on one backend, and their doorbells.
///
/// apalis talks to Redis through a [`PatientConnection`], which waits out an
/// outage instead of failing the worker (and with it the work in hand);
/// `conn` is the plain connection, for callers that would rather fail fast.
#[derive(Clone)]
pub struct StageQueues(Backend);

/// The backend behind [`StageQueues`]; nothing outside `store` sees which.
#[derive(Clone)]
enum Backend {
    Redis {
        queues: PerStage<RedisStorage<StageTask, PatientConnection>>,
        conn: ConnectionManager,
        bells: PerStage<Doorbell>,
    },
    Sqlite {
        queues: PerStage<SqliteStorage<StageTask>>,
        pool: SqlitePool,
        namespace: String,
        bells: PerStage<Doorbell>,
    },
}

impl std::fmt::Debug for StageQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// `<namespace>:<stage>`.
pub fn queue_name(namespace: &str, stage: Stage) -> String {
    format!("{namespace}:{stage}")
}

fn concurrency(s: &QueueSettings, stage: Stage) -> usize {
    match stage {
        Stage::Prepare => s.prepare_concurrency,
        Stage::Render => s.render_concurrency,
        Stage::Publish => s.publish_concurrency,
    }
}

impl StageQueues {
    /// Connects to the queue at `url` (redis:// or sqlite:) and prepares it.
    /// On Redis, it also starts listening for pushes made by other processes
    /// (see [`super::doorbell`]).
    pub async fn connect(url: &str, s: &QueueSettings) -> Result<Self, QueueError> {
        let heartbeat = s.heartbeat();
        let bells = PerStage::build(|stage| Doorbell::for_queue(url, &queue_name(&s.namespace, stage)));
        if url.starts_with("redis://") {
            let client = redis::Client::open(url)?;
            // redis-rs' default 500 ms response timeout turns load into fatal
            // worker errors (apalis-redis#76).
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_response_timeout(Some(s.redis_response_timeout()))
                .set_connection_timeout(Some(Duration::from_secs(5)));
            let conn = client.get_connection_manager_with_config(config).await?;
            let patient = PatientConnection::new(conn.clone(), s.outage_patience());
            let queues = PerStage::build(|stage| {
                RedisStorage::new(patient.clone()).with_config(
                    apalis_redis::Config::default()
                        .queue(queue_name(&s.namespace, stage))
                        // Prefetch no more than we run, or long renders sit claimed but idle.
                        .batch_size(concurrency(s, stage))
                        .heartbeat_interval(heartbeat)
                        // apalis' own reclaim (to the tail of the queue) is the
                        // fallback, one heartbeat after ours (to the head; see
                        // `reclaim_orphans`), so ours always gets there first.
                        .missed_heartbeats(s.missed_heartbeats + 1),
                )
            });
            let channels = PerStage::build(|stage| pushed_channel(queues.get(stage).get_config()));
            tokio::spawn(listen_for_pushes(
                client,
                Stage::ALL.map(|stage| (channels.get(stage).clone(), bells.get(stage).downgrade())),
            ));
            Ok(StageQueues(Backend::Redis { queues, conn, bells }))
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Deleted tasks are overwritten, not left in free pages (see `forget`).
                .pragma("secure_delete", "on")
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePool::connect_with(options.clone()).await?;
            SqliteStorage::<()>::setup(&pool).await.map_err(|e| QueueError::Push(e.to_string()))?;
            let queues = PerStage::build(|stage| {
                SqliteStorage::new(&pool).with_config(
                    apalis_sqlite::Config::default()
                        .queue(queue_name(&s.namespace, stage))
                        .batch_size(concurrency(s, stage))
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(s.missed_heartbeats),
                )
            });
            // One watcher per queue and process: the bells are shared by every
            // handle on this queue, so only the handle that first claims them starts one.
            let unwatched = Stage::ALL.map(|stage| bells.get(stage).claim_watch());
            if unwatched.iter().any(|&first| first) {
                watch_for_commits(options, Stage::ALL.map(|stage| bells.get(stage).downgrade()));
            }
            Ok(StageQueues(Backend::Sqlite { queues, pool, namespace: s.namespace.clone(), bells }))
        }
    }

    /// The doorbell of `stage`'s queue: rung on every push, heard by its workers.
    pub fn doorbell(&self, stage: Stage) -> &Doorbell {
        match &self.0 {
            Backend::Redis { bells, .. } | Backend::Sqlite { bells, .. } => bells.get(stage),
        }
    }

    /// Wakes `stage`'s workers after a push: this process's by their
    /// doorbell, other processes' through Redis. apalis-redis 1.0 has a
    /// channel for this, but its push script files every task under its
    /// scheduled set (due now) and so never publishes on it; we do.
    /// Best effort: a worker that misses it still fetches at its heartbeat.
    async fn announce(&self, stage: Stage) {
        self.doorbell(stage).ring();
        if let Backend::Redis { queues, conn, .. } = &self.0 {
            let published: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(pushed_channel(queues.get(stage).get_config()))
                .arg("pushed")
                .query_async(&mut conn.clone())
                .await;
            if let Err(e) = published {
                tracing::debug!(stage = %stage, error = %e, "could not announce a push to other processes");
            }
        }
    }

    /// Queues `job` for `stage` and wakes that stage's workers.
    pub async fn enqueue(&self, stage: Stage, job: &JobId) -> Result<(), QueueError> {
        self.enqueue_task(stage, StageTask::stage(job)).await
    }

    /// Queues one part of `job`'s segmented render on the render queue.
    pub async fn enqueue_part(&self, job: &JobId, part: RenderPart) -> Result<(), QueueError> {
        self.enqueue_task(Stage::Render, StageTask { job_id: job.to_string(), part: Some(part) }).await
    }

    async fn enqueue_task(&self, stage: Stage, task: StageTask) -> Result<(), QueueError> {
        match &self.0 {
            Backend::Redis { queues, .. } => {
                queues.get(stage).clone().push(task).await.map_err(|e| QueueError::Push(e.to_string()))?
            }
            Backend::Sqlite { queues, .. } => {
                queues.get(stage).clone().push(task).await.map_err(|e| QueueError::Push(e.to_string()))?
            }
        }
        self.announce(stage).await;
        Ok(())
    }

    /// Tasks waiting (not yet taken) in `stage`'s queue, including scheduled retries.
    pub async fn depth(&self, stage: Stage) -> Result<u64, QueueError> {
        match &self.0 {
            Backend::Redis { queues, conn, .. } => {
                let config = queues.get(stage).get_config();
                let mut conn = conn.clone();
                let (active, scheduled): (u64, u64) = redis::pipe()
                    .cmd("LLEN")
                    .arg(config.active_jobs_list())
                    .cmd("ZCARD")
                    .arg(config.scheduled_jobs_set())
                    .query_async(&mut conn)
                    .await?;
                Ok(active + scheduled)
            }
            Backend::Sqlite { pool, namespace, .. } => {
                let queue = queue_name(namespace, stage);
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE job_type = ? AND status = 'Pending'")
                    .bind(queue)
                    .fetch_one(pool)
                    .await?;
                Ok(n as u64)
            }
        }
    }

    /// Checks that the backend answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        match &self.0 {
            Backend::Redis { conn, .. } => {
                let mut conn = conn.clone();
                redis::cmd("PING").query_async::<String>(&mut conn).await?;
            }
            Backend::Sqlite { pool, .. } => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub fn describe(&self) -> &'static str {
        match &self.0 {
            Backend::Redis { .. } => "redis",
            Backend::Sqlite { .. } => "sqlite",
        }
    }

    /// Queues every job in `jobs` for `stage`, a few thousand per round trip:
    /// one SQLite transaction or one Redis script per chunk, not one per job.
    /// On an error, the chunks before it stay queued; their workers drop tasks
    /// whose job was deleted since.
    pub async fn enqueue_many(&self, stage: Stage, jobs: &[JobId]) -> Result<(), QueueError> {
        const CHUNK: usize = 2_000;
        for chunk in jobs.chunks(CHUNK) {
            let tasks: Vec<StageTask> = chunk.iter().map(StageTask::stage).collect();
            let pushed = match &self.0 {
                Backend::Redis { queues, .. } => {
                    queues.get(stage).clone().push_bulk(tasks).await.map_err(|e| e.to_string())
                }
                Backend::Sqlite { pool, namespace, .. } => {
                    push_sqlite_rows(pool, &queue_name(namespace, stage), &tasks).await.map_err(|e| e.to_string())
                }
            };
            pushed.map_err(QueueError::Push)?;
            self.announce(stage).await;
        }
        Ok(())
    }
}

/// Queues `tasks` on the SQLite queue named `queue` in one statement,
/// writing the rows apalis-sqlite's own push writes (its
/// `queries/task/sink.sql`: a ULID, `Pending`, no attempts yet, 25 allowed,
/// due now, priority 0, empty metadata), which its workers fetch like any
/// other. apalis pushes a batch one statement per task, each a round trip to
/// sqlx's SQLite thread: for a 20,000-line batch that was 20,000 round trips,
/// about half the request. `a_bulk_push_writes_the_rows_apalis_writes`
/// checks the rows against apalis' own, so an apalis upgrade that changes
/// them fails a test rather than a worker.
async fn push_sqlite_rows(pool: &SqlitePool, queue: &str, tasks: &[StageTask]) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String)> = tasks
        .iter()
        .map(|t| (ulid::Ulid::generate().to_string(), serde_json::to_string(t).expect("a stage task is plain JSON")))
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    sqlx::query(
        "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata) \
         SELECT CAST(value ->> 1 AS BLOB), value ->> 0, ?1, 'Pending', 0, 25, ?2, 0, '{}' FROM json_each(?3)",
    )
    .bind(queue)
    .bind(now as i64)
    .bind(serde_json::to_string(&rows).expect("ids and JSON texts"))
    .execute(pool)
    .await?;
    Ok(())
}

/// The channel on which a push to the queue of `config` is announced
/// (`tasks:<active list>:available`, the one apalis-redis' own fetch path
/// listens on; see [`StageQueues::announce`]).
fn pushed_channel(config: &apalis_redis::Config) -> String {
    format!("tasks:{}:available", config.active_jobs_list())
}

/// Rings a stage's doorbell whenever another process pushes to its queue.
/// apalis-redis' own subscriber (`RedisStorageFactory`) cannot be used here:
/// it takes a queue name to end at the first `:`, and ours are namespaced
/// (`<namespace>:<stage>`). Reconnects after a
/// Redis outage, and ends once every queue handle of the process is gone.
async fn listen_for_pushes(client: redis::Client, channels: [(String, WeakDoorbell); 3]) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let pubsub = async {
            let mut pubsub = client.get_async_pubsub().await?;
            for (channel, _) in &channels {
                pubsub.subscribe(channel).await?;
            }
            Ok::<_, redis::RedisError>(pubsub)
        };
        match pubsub.await {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(200);
                // Anything may have been pushed while we were not listening.
                if !channels.iter().all(|(_, bell)| bell.ring()) {
                    return;
                }
                let mut messages = pubsub.on_message();
                loop {
                    let msg = tokio::select! {
                        msg = messages.next() => msg,
                        // Look now and then whether anyone still listens.
                        () = tokio::time::sleep(Duration::from_secs(30)) => {
                            if channels.iter().any(|(_, bell)| !bell.is_alive()) {
                                return;
                            }
                            continue;
                        }
                    };
                    let Some(msg) = msg else { break };
                    if let Some((_, bell)) = channels.iter().find(|(c, _)| c == msg.get_channel_name())
                        && !bell.ring()
                    {
                        return;
                    }
                }
                tracing::warn!("lost the Redis subscription that wakes workers; reconnecting");
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot subscribe to queue pushes yet; retrying");
            }
        }
        if channels.iter().any(|(_, bell)| !bell.is_alive()) {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// How often a process on the embedded queue looks whether another
/// connection committed to it (see [`watch_for_commits`]).
const COMMIT_WATCH_EVERY: Duration = Duration::from_millis(200);

/// Rings the stage doorbells when another connection, in this process or
/// another, commits to the embedded queue's file, so a worker process hears
/// a task pushed by another process within [`COMMIT_WATCH_EVERY`] instead of
/// at its heartbeat (10 s: a segmented render's second worker process sat
/// idle that long before its first segment). SQLite has no notifications
/// across processes, but `PRAGMA data_version` changes whenever another
/// connection has committed a change. An empty fetch changes no rows and
/// writes nothing, so idle workers do not ring one another; any commit
/// (a push, an ack, a worker's keep-alive) rings every stage, and the fetch
/// that follows is cheap.
///
/// Runs on a thread of its own, with its own runtime and the real clock, so
/// a test on a paused tokio clock never sees its timer. Ends once the
/// doorbells have gone (every queue handle of the process dropped).
fn watch_for_commits(options: SqliteConnectOptions, bells: [WeakDoorbell; 3]) {
    let watch = move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::warn!(error = %e, "{CANNOT_WATCH}");
                return;
            }
        };
        runtime.block_on(async move {
            use sqlx::Connection;
            let mut conn: Option<sqlx::SqliteConnection> = None;
            let mut seen: Option<i64> = None;
            while bells.iter().all(WeakDoorbell::is_alive) {
                if conn.is_none() {
                    conn = sqlx::SqliteConnection::connect_with(&options).await.ok();
                }
                if let Some(c) = conn.as_mut() {
                    match sqlx::query_scalar::<_, i64>("PRAGMA data_version").fetch_one(&mut *c).await {
                        Ok(version) => {
                            // The first look rings too: anything may have been pushed before it.
                            if seen != Some(version) {
                                bells.iter().for_each(|bell| {
                                    bell.ring();
                                });
                            }
                            seen = Some(version);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "could not read the queue's data version; reconnecting");
                            (conn, seen) = (None, None);
                        }
                    }
                }
                tokio::time::sleep(COMMIT_WATCH_EVERY).await;
            }
        });
    };
    if let Err(e) = std::thread::Builder::new().name("queue-commits".into()).spawn(watch) {
        tracing::warn!(error = %e, "{CANNOT_WATCH}");
    }
}

/// What a process that cannot watch the embedded queue logs: its workers
/// still fetch, at their heartbeat.
const CANNOT_WATCH: &str = "cannot watch the queue for other processes' pushes; they wait for the heartbeat";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_tasks_keep_their_old_payload_and_parts_are_named() {
        let id = JobId::new();
        let plain = serde_json::to_string(&StageTask::stage(&id)).unwrap();
        assert_eq!(plain, format!(r#"{{"job_id":"{id}"}}"#), "older workers read it");
        let old: StageTask = serde_json::from_str(&plain).unwrap();
        assert_eq!(old.part, None);
        let seg = StageTask { job_id: id.to_string(), part: Some(RenderPart::Segment(3)) };
        let text = serde_json::to_string(&seg).unwrap();
        assert!(text.ends_with(r#""part":{"segment":3}}"#), "{text}");
        assert_eq!(serde_json::from_str::<StageTask>(&text).unwrap(), seg);
        let join = StageTask { job_id: id.to_string(), part: Some(RenderPart::Join) };
        assert!(serde_json::to_string(&join).unwrap().ends_with(r#""part":"join"}"#));
    }

    #[tokio::test]
    async fn a_bulk_push_writes_the_rows_apalis_writes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("queue.db").display());
        let settings = crate::settings::Settings::load_with_env(None, Some(Vec::new())).unwrap();
        let queues = StageQueues::connect(&url, &settings.queue).await.unwrap();
        let (one, many) = (JobId::new(), [JobId::new(), JobId::new()]);
        queues.enqueue(Stage::Render, &one).await.unwrap();
        queues.enqueue_many(Stage::Render, &many).await.unwrap();
        let Backend::Sqlite { pool, .. } = &queues.0 else { unreachable!() };
        // Every column but the second it was queued in.
        type Row = (Vec<u8>, String, String, String, i64, i64, Option<String>, Option<i64>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT job, id, job_type, status, attempts, max_attempts, last_result, priority, metadata \
                 FROM Jobs ORDER BY rowid",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 3);
        let typed: Vec<&str> = rows.iter().map(|r| std::str::from_utf8(&r.0).unwrap()).collect();
        assert_eq!(typed, [&one, &many[0], &many[1]].map(|j| format!(r#"{{"job_id":"{j}"}}"#)));
        for row in &rows[1..] {
            assert!(row.1.parse::<ulid::Ulid>().is_ok(), "a task id apalis can read: {}", row.1);
            let rest = |r: &Row| (r.2.clone(), r.3.clone(), r.4, r.5, r.6.clone(), r.7, r.8.clone());
            assert_eq!(rest(row), rest(&rows[0]), "as apalis' own push writes it");
        }
        assert_eq!(queues.depth(Stage::Render).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_commit_by_another_connection_rings_the_doorbells_and_an_idle_queue_does_not() {
        use apalis_core::backend::ext::poll_strategy::{PollMetrics, PollStrategy};
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{}", dir.path().join("queue.db").display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut other = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE pushes (n INTEGER)").execute(&mut other).await.unwrap();
        let bell = Doorbell::default();
        // Whether `ear` heard a ring within `limit`, looking every 10 ms.
        async fn heard(ear: &mut super::super::doorbell::Wakeups, limit: Duration) -> bool {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let snapshot = PollMetrics::default().snapshot();
            let end = std::time::Instant::now() + limit;
            loop {
                if ear.poll_drive(&mut cx, &snapshot).is_ready() {
                    return true;
                }
                if std::time::Instant::now() >= end {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }

        let mut first = bell.listen();
        watch_for_commits(options, [bell.downgrade(), bell.downgrade(), bell.downgrade()]);
        assert!(heard(&mut first, Duration::from_secs(5)).await, "the first look rings: pushes may predate it");
        tokio::time::sleep(COMMIT_WATCH_EVERY).await;
        // Five looks at a file nobody writes: no ring.
        let mut idle = bell.listen();
        tokio::time::sleep(COMMIT_WATCH_EVERY * 5).await;
        assert!(!heard(&mut idle, Duration::ZERO).await, "an idle queue rang");
        let mut pushed = bell.listen();
        sqlx::query("INSERT INTO pushes VALUES (1)").execute(&mut other).await.unwrap();
        assert!(heard(&mut pushed, Duration::from_secs(5)).await, "another connection's commit was not heard");
    }

    #[test]
    fn queue_names_are_explicit_and_namespaced() {
        assert_eq!(queue_name("clipforge", Stage::Render), "clipforge:render");
    }
}
