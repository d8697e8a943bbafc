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

/// What a stage queue carries: which job to work on. Never media bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTask {
    pub job_id: String,
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
pub enum StageQueues {
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
            Ok(StageQueues::Redis { queues, conn, bells })
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Deleted tasks are overwritten, not left in free pages (see `forget`).
                .pragma("secure_delete", "on")
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePool::connect_with(options).await?;
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
            Ok(StageQueues::Sqlite { queues, pool, namespace: s.namespace.clone(), bells })
        }
    }

    /// The doorbell of `stage`'s queue: rung on every push, heard by its workers.
    pub fn doorbell(&self, stage: Stage) -> &Doorbell {
        match self {
            StageQueues::Redis { bells, .. } | StageQueues::Sqlite { bells, .. } => bells.get(stage),
        }
    }

    /// Wakes `stage`'s workers after a push: this process's by their
    /// doorbell, other processes' through Redis. apalis-redis 1.0 has a
    /// channel for this, but its push script files every task under its
    /// scheduled set (due now) and so never publishes on it; we do.
    /// Best effort: a worker that misses it still fetches at its heartbeat.
    async fn announce(&self, stage: Stage) {
        self.doorbell(stage).ring();
        if let StageQueues::Redis { queues, conn, .. } = self {
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
        let task = StageTask { job_id: job.to_string() };
        match self {
            StageQueues::Redis { queues, .. } => {
                queues.get(stage).clone().push(task).await.map_err(|e| QueueError::Push(e.to_string()))?
            }
            StageQueues::Sqlite { queues, .. } => {
                queues.get(stage).clone().push(task).await.map_err(|e| QueueError::Push(e.to_string()))?
            }
        }
        self.announce(stage).await;
        Ok(())
    }

    /// Tasks waiting (not yet taken) in `stage`'s queue, including scheduled retries.
    pub async fn depth(&self, stage: Stage) -> Result<u64, QueueError> {
        match self {
            StageQueues::Redis { queues, conn, .. } => {
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
            StageQueues::Sqlite { pool, namespace, .. } => {
                let queue = queue_name(namespace, stage);
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE job_type = ? AND status = 'Pending'")
                    .bind(queue)
                    .fetch_one(pool)
                    .await?;
                Ok(n as u64)
            }
        }
    }

    /// Deletes every task of `job` that is not running, in all three stage
    /// queues: waiting, scheduled and finished ones alike (apalis keeps a
    /// finished task's payload). For a purge, after the job has ended; returns
    /// how many tasks went. A task a worker holds right now is left to finish
    /// (it is dropped: its job is gone) and pruned later with the finished.
    ///
    /// This reaches into apalis' storage layout (its `Jobs` table; its Redis
    /// data hash, lists and sets), which apalis has no call for: a task is
    /// found by the job id in its payload.
    pub async fn forget(&self, job: &JobId) -> Result<u64, QueueError> {
        let needle = job.to_string();
        match self {
            StageQueues::Redis { queues, conn, .. } => run_on_each_queue(queues, conn, FORGET_LUA, &needle).await,
            StageQueues::Sqlite { pool, namespace, .. } => {
                let [prepare, render, publish] = Stage::ALL.map(|stage| queue_name(namespace, stage));
                let removed = sqlx::query(
                    "DELETE FROM Jobs WHERE job_type IN (?, ?, ?) AND status <> 'Running' AND instr(job, ?) > 0",
                )
                .bind(prepare)
                .bind(render)
                .bind(publish)
                .bind(needle.as_bytes())
                .execute(pool)
                .await?
                .rows_affected();
                truncate_log(pool).await?;
                Ok(removed)
            }
        }
    }

    /// Deletes the tasks that finished more than `age` ago, in all three
    /// stage queues; returns how many. apalis keeps a finished task (payload
    /// and metadata) until someone deletes it, and nothing here reads it after
    /// it finished (the record store is the truth about a job), so without
    /// this Redis or the queue file would only grow.
    pub async fn prune_finished(&self, age: Duration) -> Result<u64, QueueError> {
        match self {
            StageQueues::Redis { queues, conn, .. } => {
                run_on_each_queue(queues, conn, PRUNE_LUA, &age.as_secs().to_string()).await
            }
            StageQueues::Sqlite { pool, namespace, .. } => {
                let [prepare, render, publish] = Stage::ALL.map(|stage| queue_name(namespace, stage));
                let removed = sqlx::query(
                    "DELETE FROM Jobs WHERE job_type IN (?, ?, ?) \
                     AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts)) \
                     AND done_at IS NOT NULL AND done_at <= CAST(strftime('%s', 'now') AS INTEGER) - ?",
                )
                .bind(prepare)
                .bind(render)
                .bind(publish)
                .bind(age.as_secs() as i64)
                .execute(pool)
                .await?
                .rows_affected();
                if removed > 0 {
                    truncate_log(pool).await?;
                }
                Ok(removed)
            }
        }
    }

    /// Remembers that `worker` serves `stage` in this process (see
    /// [`PatientConnection::note_worker`]).
    pub fn note_worker(&self, stage: Stage, worker: &str) {
        if let StageQueues::Redis { queues, .. } = self {
            let storage = queues.get(stage);
            let set = storage.get_config().workers_set();
            let mut storage = storage.clone();
            storage.get_connection().note_worker(set, worker.to_string());
        }
    }

    /// Tells the queue that `worker`, of `stage`, is alive. A worker's own
    /// heartbeat stops while it drains on SIGTERM (apalis no longer polls
    /// it), and without this its task would be handed to another worker and
    /// delivered twice; the stage calls it while it works. Best effort: an
    /// error is logged by the caller and the next beat tries again.
    pub async fn keep_alive(&self, stage: Stage, worker: &str) -> Result<(), QueueError> {
        match self {
            StageQueues::Redis { queues, conn, .. } => {
                let set = queues.get(stage).get_config().workers_set();
                super::patient::stamp_worker(&mut conn.clone(), &set, worker).await?;
            }
            StageQueues::Sqlite { pool, .. } => {
                sqlx::query("UPDATE Workers SET last_seen = strftime('%s', 'now') WHERE id = ?")
                    .bind(worker)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Puts the tasks of `stage`'s workers that stopped heartbeating for
    /// longer than `orphan_after` at the head of the queue, so the next
    /// worker to fetch takes them over ahead of the backlog; returns how many.
    ///
    /// apalis-redis reclaims orphans too, but only at a live worker's
    /// heartbeat and to the tail of the list, where a backlog can hold them
    /// for minutes while the job shows frozen progress. Its window is set one
    /// heartbeat longer than ours (see `connect`), and this runs every second
    /// (see `app.rs`), so this gets there first. The
    /// SQLite queue needs nothing: it hands out tasks oldest first, and a
    /// reclaimed task keeps its place.
    ///
    /// Workers whose names start with `ours` (this process's) are never
    /// taken for dead: this process is alive, and its stages keep their
    /// tasks alive themselves.
    pub async fn reclaim_orphans(&self, stage: Stage, orphan_after: Duration, ours: &str) -> Result<u64, QueueError> {
        let StageQueues::Redis { queues, conn, .. } = self else { return Ok(0) };
        let config = queues.get(stage).get_config();
        let now = super::patient::unix_secs();
        let n: u64 = redis::Script::new(RECLAIM_LUA)
            .key(config.workers_set())
            .key(config.active_jobs_list())
            .key(config.inflight_jobs_set())
            .key(config.signal_list())
            .arg(now.saturating_sub(orphan_after.as_secs()))
            .arg(pushed_channel(config))
            .arg(ours)
            .invoke_async(&mut conn.clone())
            .await?;
        Ok(n)
    }

    /// The ids of the jobs that have a task in `stage`'s queue that some
    /// worker will still run: waiting, scheduled for a retry, or held by a
    /// worker (alive, or dead and about to be reclaimed). The reconciler
    /// queues again the in-flight jobs missing from this list.
    pub async fn held_jobs(&self, stage: Stage) -> Result<std::collections::HashSet<String>, QueueError> {
        let payloads: Vec<Vec<u8>> = match self {
            StageQueues::Redis { queues, conn, .. } => {
                let config = queues.get(stage).get_config();
                redis::Script::new(HELD_LUA)
                    .key(config.active_jobs_list())
                    .key(config.scheduled_jobs_set())
                    .key(config.workers_set())
                    .key(config.inflight_jobs_set())
                    .key(config.job_data_hash())
                    .invoke_async(&mut conn.clone())
                    .await?
            }
            StageQueues::Sqlite { pool, namespace, .. } => {
                sqlx::query_scalar(
                    "SELECT job FROM Jobs WHERE job_type = ? \
                     AND (status IN ('Pending', 'Queued', 'Running') OR (status = 'Failed' AND attempts < max_attempts))",
                )
                .bind(queue_name(namespace, stage))
                .fetch_all(pool)
                .await?
            }
        };
        Ok(payloads.iter().filter_map(|p| serde_json::from_slice::<StageTask>(p).ok()).map(|t| t.job_id).collect())
    }

    /// Checks that the backend answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        match self {
            StageQueues::Redis { conn, .. } => {
                let mut conn = conn.clone();
                redis::cmd("PING").query_async::<String>(&mut conn).await?;
            }
            StageQueues::Sqlite { pool, .. } => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub fn describe(&self) -> &'static str {
        match self {
            StageQueues::Redis { .. } => "redis",
            StageQueues::Sqlite { .. } => "sqlite",
        }
    }

    /// Queues every job in `jobs` for `stage`, a few thousand per round trip:
    /// one SQLite transaction or one Redis script per chunk, not one per job.
    /// On an error, the chunks before it stay queued; their workers drop tasks
    /// whose job was deleted since.
    pub async fn enqueue_many(&self, stage: Stage, jobs: &[JobId]) -> Result<(), QueueError> {
        const CHUNK: usize = 2_000;
        for chunk in jobs.chunks(CHUNK) {
            let tasks: Vec<StageTask> = chunk.iter().map(|j| StageTask { job_id: j.to_string() }).collect();
            let pushed = match self {
                StageQueues::Redis { queues, .. } => {
                    queues.get(stage).clone().push_bulk(tasks).await.map_err(|e| e.to_string())
                }
                StageQueues::Sqlite { queues, .. } => {
                    queues.get(stage).clone().push_bulk(tasks).await.map_err(|e| e.to_string())
                }
            };
            pushed.map_err(QueueError::Push)?;
            self.announce(stage).await;
        }
        Ok(())
    }
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

/// Checkpoints the SQLite queue's write-ahead log and empties it, so the
/// older copies of deleted rows' pages leave the disk too (secure_delete
/// zeroes only the database file's copy).
async fn truncate_log(pool: &SqlitePool) -> Result<(), QueueError> {
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(pool).await?;
    if busy != 0 {
        tracing::warn!("the queue's write-ahead log was busy; older copies leave it at the next checkpoint");
    }
    Ok(())
}

/// Runs one of the task-deleting scripts below on each stage's apalis Redis
/// queue with `arg`; returns how many tasks they removed in all. Every script
/// gets the same KEYS: data hash, active list, scheduled set, done set, dead
/// set, failed set, meta-hash prefix.
async fn run_on_each_queue(
    queues: &PerStage<RedisStorage<StageTask, PatientConnection>>,
    conn: &ConnectionManager,
    lua: &str,
    arg: &str,
) -> Result<u64, QueueError> {
    let script = redis::Script::new(lua);
    let mut removed = 0;
    for stage in Stage::ALL {
        let c = queues.get(stage).get_config();
        let n: u64 = script
            .key(c.job_data_hash())
            .key(c.active_jobs_list())
            .key(c.scheduled_jobs_set())
            .key(c.done_jobs_set())
            .key(c.dead_jobs_set())
            .key(c.failed_jobs_set())
            .key(c.job_meta_hash())
            .arg(arg)
            .invoke_async(&mut conn.clone())
            .await?;
        removed += n;
    }
    Ok(removed)
}

/// Removes the tasks whose payload holds ARGV[1] from one apalis Redis queue
/// (KEYS as [`run_on_each_queue`] passes them). A task is removed when it waits (active list,
/// scheduled set) or has finished (status Done or Killed, or dead); one a
/// worker holds right now is in neither and is left alone.
const FORGET_LUA: &str = r#"
local removed = 0
local cursor = "0"
repeat
  local page = redis.call("HSCAN", KEYS[1], cursor, "COUNT", 500)
  cursor = page[1]
  local fields = page[2]
  for i = 1, #fields, 2 do
    local id, payload = fields[i], fields[i + 1]
    local status = redis.call("HGET", KEYS[7] .. ":" .. id, "status")
    local idle = status == "Done" or status == "Killed"
      or redis.call("SISMEMBER", KEYS[5], id) == 1
      or redis.call("ZSCORE", KEYS[3], id)
      or redis.call("LPOS", KEYS[2], id)
    if idle and string.find(payload, ARGV[1], 1, true) then
      redis.call("HDEL", KEYS[1], id)
      redis.call("LREM", KEYS[2], 0, id)
      redis.call("ZREM", KEYS[3], id)
      redis.call("SREM", KEYS[4], id)
      redis.call("SREM", KEYS[5], id)
      redis.call("SREM", KEYS[6], id)
      redis.call("HDEL", KEYS[7] .. ":result", id)
      redis.call("DEL", KEYS[7] .. ":" .. id)
      removed = removed + 1
    end
  end
until cursor == "0"
return removed
"#;

/// Moves the tasks of workers last seen before ARGV[1] (seconds) to the head
/// of the active list and forgets those workers, as apalis'
/// `reenqueue_orphaned.lua` does but with LPUSH instead of RPUSH; then
/// publishes on ARGV[2], the push channel, so idle workers fetch at once.
/// Workers named with the prefix ARGV[3] are skipped.
/// KEYS: workers set, active list, inflight-set prefix, signal list.
const RECLAIM_LUA: &str = r#"
local workers = redis.call("zrangebyscore", KEYS[1], 0, ARGV[1])
local moved = 0
for _, worker in ipairs(workers) do
  if string.sub(worker, 1, #ARGV[3]) ~= ARGV[3] then
    local inflight = KEYS[3] .. ":" .. worker
    local tasks = redis.call("smembers", inflight)
    if #tasks > 0 then
      redis.call("lpush", KEYS[2], unpack(tasks))
      redis.call("del", inflight)
      moved = moved + #tasks
    end
    redis.call("zrem", KEYS[1], worker)
  end
end
if moved > 0 then
  redis.call("del", KEYS[4])
  redis.call("lpush", KEYS[4], 1)
  redis.call("publish", ARGV[2], "reclaimed")
end
return moved
"#;

/// The payloads of every task of one queue that a worker will still run:
/// in the active list, the scheduled set, or any registered worker's
/// inflight set. KEYS: active list, scheduled set, workers set,
/// inflight-set prefix, data hash.
const HELD_LUA: &str = r#"
local ids = redis.call("lrange", KEYS[1], 0, -1)
for _, id in ipairs(redis.call("zrange", KEYS[2], 0, -1)) do table.insert(ids, id) end
for _, worker in ipairs(redis.call("zrange", KEYS[3], 0, -1)) do
  for _, id in ipairs(redis.call("smembers", KEYS[4] .. ":" .. worker)) do table.insert(ids, id) end
end
local payloads = {}
for _, id in ipairs(ids) do
  local p = redis.call("hget", KEYS[5], id)
  if p then table.insert(payloads, p) end
end
return payloads
"#;

/// Removes one apalis Redis queue's tasks that finished (Done, Killed, or
/// dead) at least ARGV[1] seconds ago, by Redis' clock (KEYS as
/// [`run_on_each_queue`] passes them). apalis writes `done_at` in seconds.
const PRUNE_LUA: &str = r#"
local cutoff = tonumber(redis.call("TIME")[1]) - tonumber(ARGV[1])
local removed = 0
local cursor = "0"
repeat
  local page = redis.call("HSCAN", KEYS[1], cursor, "COUNT", 500)
  cursor = page[1]
  local fields = page[2]
  for i = 1, #fields, 2 do
    local id = fields[i]
    local meta = KEYS[7] .. ":" .. id
    local status = redis.call("HGET", meta, "status")
    local done_at = tonumber(redis.call("HGET", meta, "done_at") or "")
    local finished = status == "Done" or status == "Killed" or redis.call("SISMEMBER", KEYS[5], id) == 1
    if finished and done_at and done_at <= cutoff then
      redis.call("HDEL", KEYS[1], id)
      redis.call("SREM", KEYS[4], id)
      redis.call("SREM", KEYS[5], id)
      redis.call("HDEL", KEYS[7] .. ":result", id)
      redis.call("DEL", meta)
      removed = removed + 1
    end
  end
until cursor == "0"
return removed
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_explicit_and_namespaced() {
        assert_eq!(queue_name("clipforge", Stage::Render), "clipforge:render");
    }
}
