//! A Redis connection that waits out an outage instead of failing.
//!
//! apalis turns any error from its Redis calls (heartbeat, fetch, ack) into a
//! dead worker: the monitor restarts it, and the work in hand is dropped
//! without a word. A Redis that is restarting, failing over or briefly
//! unreachable is not a reason to give up a render, so every call apalis
//! makes goes through [`PatientConnection`], which retries a call that could
//! not reach Redis (refused, dropped, timed out) with backoff, logging every
//! so often, until Redis answers or `patience` runs out. Errors Redis itself
//! returns (a script error, a wrong type) are passed on at once.
//!
//! A call whose answer was lost may have taken effect; retrying it can push a
//! task twice or find an ack refused. Both are safe here: deliveries are
//! at-least-once by design and the records decide who works on a job.
//!
//! One call needs more: apalis' heartbeat stamps the worker with the time the
//! call was *made*, then looks for workers whose stamp is older than the
//! orphan window. After a wait longer than the window, that stale stamp
//! would make a live worker take its own tasks for orphans. So after any call
//! that waited, this process's workers are stamped again with the time now
//! before the answer is handed back (see [`PatientConnection::note_worker`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

/// How often a call that keeps waiting says so in the log.
const LOG_EVERY: Duration = Duration::from_secs(10);
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(5);

/// A call that took longer than this is taken to have waited for Redis.
const WAITED: Duration = Duration::from_millis(1000);

/// A [`ConnectionManager`] whose calls wait for Redis to come back.
#[derive(Clone)]
pub struct PatientConnection {
    inner: ConnectionManager,
    patience: Duration,
    /// This process's workers: (apalis workers set, worker name).
    workers: Arc<Mutex<Vec<(String, String)>>>,
}

impl PatientConnection {
    pub fn new(inner: ConnectionManager, patience: Duration) -> Self {
        Self { inner, patience, workers: Arc::default() }
    }

    /// Remembers that `worker`, listed in the apalis workers set `set`, runs
    /// in this process, so its stamp is renewed after a wait.
    pub fn note_worker(&self, set: String, worker: String) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if !workers.iter().any(|(s, w)| *s == set && *w == worker) {
            workers.push((set, worker));
        }
    }

    /// Stamps this process's workers with the time now.
    async fn restamp(&self) {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut conn = self.inner.clone();
        for (set, worker) in workers {
            if let Err(e) = stamp_worker(&mut conn, &set, &worker).await {
                tracing::debug!(worker, error = %e, "could not renew a worker's stamp after a wait");
            }
        }
    }

    /// Runs `call` patiently, then restamps this process's workers if it waited.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, RedisError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let started = Instant::now();
        let attempt = patiently(self.patience, call);
        tokio::pin!(attempt);
        // A Redis that went away mid-call can leave the call hanging rather
        // than failing; say so too.
        let result = tokio::select! {
            r = &mut attempt => r,
            () = tokio::time::sleep(LOG_EVERY / 2) => {
                tracing::warn!(waited_s = started.elapsed().as_secs(), "the queue (Redis) has not answered; waiting for it");
                attempt.await
            }
        };
        if started.elapsed() >= WAITED {
            self.restamp().await;
        }
        result
    }
}

/// Seconds since the epoch, by this machine's clock: the unit apalis-redis
/// stamps workers with.
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Stamps `worker` in the apalis workers set `set` as seen now. `XX` never
/// brings back a worker the queue has already given up on.
pub async fn stamp_worker(conn: &mut ConnectionManager, set: &str, worker: &str) -> Result<(), RedisError> {
    redis::cmd("ZADD").arg(set).arg("XX").arg(unix_secs()).arg(worker).query_async::<i64>(conn).await?;
    Ok(())
}

/// Whether `e` says Redis could not be reached, rather than that it refused.
pub fn is_outage(e: &RedisError) -> bool {
    e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout() || e.is_io_error()
}

/// Waits between attempts: doubling from 100 ms up to 5 s.
fn next_wait(wait: Duration) -> Duration {
    (wait * 2).min(MAX_WAIT)
}

/// Runs `call` until it succeeds, fails with something other than an
/// outage, or `patience` has passed since the first attempt.
async fn patiently<T, F, Fut>(patience: Duration, mut call: F) -> Result<T, RedisError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RedisError>>,
{
    let started = Instant::now();
    let mut wait = FIRST_WAIT;
    let mut logged = started;
    loop {
        match call().await {
            Err(e) if is_outage(&e) && started.elapsed() + wait < patience => {
                if logged.elapsed() >= LOG_EVERY || logged == started {
                    tracing::warn!(
                        error = %e,
                        waited_s = started.elapsed().as_secs(),
                        patience_s = patience.as_secs(),
                        "the queue (Redis) is unreachable; waiting for it"
                    );
                    logged = Instant::now();
                }
                tokio::time::sleep(wait).await;
                wait = next_wait(wait);
            }
            Err(e) => return Err(e),
            Ok(v) => {
                if started.elapsed() >= FIRST_WAIT * 2 && logged != started {
                    tracing::info!(waited_s = started.elapsed().as_secs(), "the queue (Redis) answers again");
                }
                return Ok(v);
            }
        }
    }
}

impl ConnectionLike for PatientConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let this = self.clone();
        Box::pin(async move {
            this.call(|| {
                let mut conn = this.inner.clone();
                async move { conn.req_packed_command(cmd).await }
            })
            .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let this = self.clone();
        Box::pin(async move {
            this.call(|| {
                let mut conn = this.inner.clone();
                async move { conn.req_packed_commands(pipeline, offset, count).await }
            })
            .await
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn refused() -> RedisError {
        RedisError::from(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_waited_out_and_the_call_then_succeeds() {
        let mut failures = 5;
        let started = tokio::time::Instant::now();
        let got = patiently(Duration::from_secs(600), || {
            let outcome = if failures > 0 {
                failures -= 1;
                Err(refused())
            } else {
                Ok(7)
            };
            async move { outcome }
        })
        .await;
        assert_eq!(got.unwrap(), 7);
        // 100 + 200 + 400 + 800 + 1600 ms of backoff.
        assert_eq!(started.elapsed(), Duration::from_millis(3100));
    }

    #[tokio::test(start_paused = true)]
    async fn patience_runs_out_with_the_outage_error() {
        let started = tokio::time::Instant::now();
        let mut tried_at = Vec::new();
        let got: Result<(), _> = patiently(Duration::from_secs(60), || {
            tried_at.push(started.elapsed().as_millis() as u64);
            async { Err(refused()) }
        })
        .await;
        assert!(is_outage(&got.unwrap_err()));
        // Doubling from 100 ms to the 5 s cap; no wait that would end past the
        // patience is begun, so the last try is at 56.3 s and the error follows.
        let mut expected = vec![0, 100, 300, 700, 1500, 3100, 6300];
        expected.extend((1..=10).map(|n| 6300 + n * 5000));
        assert_eq!(tried_at, expected);
        assert_eq!(started.elapsed(), Duration::from_millis(56_300));
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_redis_answered_is_not_retried() {
        let mut calls = 0;
        let got: Result<(), _> = patiently(Duration::from_secs(60), || {
            calls += 1;
            async { Err(RedisError::from((redis::ErrorKind::Client, "script error"))) }
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls, 1);
    }
}
