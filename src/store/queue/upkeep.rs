//! Keeping the queues true and small: what a purge forgets, finished tasks
//! pruned, workers kept alive, dead workers' tasks taken over first, and what
//! the reconciler asks is held.
//!
//! This reaches into apalis' storage layout (its `Jobs` table; its Redis
//! data hash, lists and sets), which apalis has no call for.

use std::time::Duration;

use apalis_redis::{ConnectionManager, RedisStorage};
use sqlx::sqlite::SqlitePool;

use super::{Backend, PatientConnection, PerStage, QueueError, StageQueues, StageTask, pushed_channel, queue_name};
use crate::domain::{JobId, Stage};
use crate::store::patient;

impl StageQueues {
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
        match &self.0 {
            Backend::Redis { queues, conn, .. } => run_on_each_queue(queues, conn, FORGET_LUA, &needle).await,
            Backend::Sqlite { pool, namespace, .. } => {
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

    /// How many tasks of `job` a worker holds right now, in all three stage
    /// queues. [`forget`](Self::forget) leaves those alone (their worker
    /// finishes them), so a purge waits until this is 0: a task that outlives
    /// the purge would keep the job's id in the queue until it is pruned.
    pub async fn running(&self, job: &JobId) -> Result<u64, QueueError> {
        let needle = job.to_string();
        match &self.0 {
            Backend::Redis { queues, conn, .. } => run_on_each_queue(queues, conn, RUNNING_LUA, &needle).await,
            Backend::Sqlite { pool, namespace, .. } => {
                let [prepare, render, publish] = Stage::ALL.map(|stage| queue_name(namespace, stage));
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM Jobs WHERE job_type IN (?, ?, ?) AND status = 'Running' AND instr(job, ?) > 0",
                )
                .bind(prepare)
                .bind(render)
                .bind(publish)
                .bind(needle.as_bytes())
                .fetch_one(pool)
                .await?;
                Ok(n as u64)
            }
        }
    }

    /// Deletes the tasks that finished more than `age` ago, in all three
    /// stage queues; returns how many. apalis keeps a finished task (payload
    /// and metadata) until someone deletes it, and nothing here reads it after
    /// it finished (the record store is the truth about a job), so without
    /// this Redis or the queue file would only grow.
    pub async fn prune_finished(&self, age: Duration) -> Result<u64, QueueError> {
        match &self.0 {
            Backend::Redis { queues, conn, .. } => {
                run_on_each_queue(queues, conn, PRUNE_LUA, &age.as_secs().to_string()).await
            }
            Backend::Sqlite { pool, namespace, .. } => {
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
        if let Backend::Redis { queues, .. } = &self.0 {
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
        match &self.0 {
            Backend::Redis { queues, conn, .. } => {
                let set = queues.get(stage).get_config().workers_set();
                patient::stamp_worker(&mut conn.clone(), &set, worker).await?;
            }
            Backend::Sqlite { pool, .. } => {
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
        let Backend::Redis { queues, conn, .. } = &self.0 else { return Ok(0) };
        let config = queues.get(stage).get_config();
        let now = patient::unix_secs();
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
        let payloads: Vec<Vec<u8>> = match &self.0 {
            Backend::Redis { queues, conn, .. } => {
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
            Backend::Sqlite { pool, namespace, .. } => {
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

/// Counts the tasks whose payload holds ARGV[1] in one apalis Redis queue
/// that a worker holds: neither waiting nor finished, the ones
/// [`FORGET_LUA`] leaves alone. KEYS as [`run_on_each_queue`] passes them.
const RUNNING_LUA: &str = r#"
local held = 0
local cursor = "0"
repeat
  local page = redis.call("HSCAN", KEYS[1], cursor, "COUNT", 500)
  cursor = page[1]
  local fields = page[2]
  for i = 1, #fields, 2 do
    local id, payload = fields[i], fields[i + 1]
    if string.find(payload, ARGV[1], 1, true) then
      local status = redis.call("HGET", KEYS[7] .. ":" .. id, "status")
      local idle = status == "Done" or status == "Killed"
        or redis.call("SISMEMBER", KEYS[5], id) == 1
        or redis.call("ZSCORE", KEYS[3], id)
        or redis.call("LPOS", KEYS[2], id)
      if not idle then
        held = held + 1
      end
    end
  end
until cursor == "0"
return held
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
