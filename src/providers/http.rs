//! The one loop every outside HTTP call goes through: a timeout per call,
//! retries of retryable failures with exponential backoff, and the provider's
//! own wait signal (Retry-After, a rate-limit reset) honoured when longer.
//!
//! Each provider classifies its own answers into [`ProviderError`]s; this
//! module only decides whether to try the same call again.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;

use serde::Deserialize;

use super::ProviderError;
use crate::error_code as codes;
use crate::settings::{Section, SettingsError, check, key};

/// Waits longer than this are not sat out inside one call: the error goes to
/// the pipeline, which retries the stage later.
const MAX_SINGLE_WAIT: Duration = Duration::from_secs(300);

/// Counts every failed outside call of this process by provider and code,
/// retried or not, until the pipeline moves the counts to the record store.
#[derive(Debug, Default)]
pub struct ErrorTally {
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl ErrorTally {
    pub fn record(&self, err: &ProviderError) {
        *self.counts.lock().expect("tally lock").entry((err.provider, err.code.as_str())).or_default() += 1;
    }

    /// The counts so far, leaving the tally empty.
    pub fn take(&self) -> Vec<(&'static str, &'static str, u64)> {
        std::mem::take(&mut *self.counts.lock().expect("tally lock")).into_iter().map(|((p, c), n)| (p, c, n)).collect()
    }

    /// Puts counts back (when they could not be stored).
    pub fn restore(&self, counts: &[(&'static str, &'static str, u64)]) {
        let mut map = self.counts.lock().expect("tally lock");
        for (p, c, n) in counts {
            *map.entry((p, c)).or_default() += n;
        }
    }
}

/// `[providers.http]`: how each outside call is retried before its error
/// reaches the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl HttpSettings {
    /// `initial_backoff_ms`: the first wait, doubled per try.
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }

    /// `max_backoff_ms`: the longest wait between tries.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
}

impl Section for HttpSettings {
    const SECTION: &'static str = "providers.http";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.attempts, |v| (1..=10).contains(v), "1-10")?;
        check!(self.initial_backoff_ms, |v| *v >= 1, "at least 1")?;
        check!(self.max_backoff_ms, |v| *v >= self.initial_backoff_ms, format!("at least {}", key!(initial_backoff_ms)))
    }
}

/// Retries of one outside call.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    pub tally: Arc<ErrorTally>,
}

impl CallPolicy {
    pub fn new(s: &HttpSettings, tally: Arc<ErrorTally>) -> Self {
        Self { attempts: s.attempts, initial: s.initial_backoff(), max: s.max_backoff(), tally }
    }

    /// How long to wait after failed try number `attempt` (1-based), or `None` to give up.
    pub fn wait_after(&self, err: &ProviderError, attempt: u32) -> Option<Duration> {
        if !err.retryable || attempt >= self.attempts {
            return None;
        }
        let backoff = self.initial.saturating_mul(2u32.saturating_pow(attempt - 1)).min(self.max);
        let wait = backoff.max(err.retry_after.unwrap_or_default());
        (wait <= MAX_SINGLE_WAIT).then_some(wait)
    }

    /// Runs `call` until it succeeds, fails for good, or the tries are used up.
    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(err) => {
                    self.tally.record(&err);
                    match self.wait_after(&err, attempt) {
                        Some(wait) => {
                            tracing::warn!(
                                provider = err.provider,
                                code = err.code.as_str(),
                                attempt,
                                wait_ms = wait.as_millis() as u64,
                                "provider call failed; trying again"
                            );
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                        }
                        None => return Err(err),
                    }
                }
            }
        }
    }
}

/// A client with the provider's timeout on every request.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("clipforge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client")
}

/// A request that got no HTTP answer: timeouts and connection trouble are
/// worth another try. The URL is left out of the message (it may carry a token
/// in other APIs; these ones keep keys in headers, and we keep the habit).
pub fn transport_error(provider: &'static str, err: reqwest::Error) -> ProviderError {
    let code = if err.is_timeout() { codes::TIMEOUT } else { codes::UNREACHABLE };
    ProviderError::new(provider, code, format!("request failed: {}", err.without_url()), true)
}

/// `Retry-After` in seconds, when the answer has one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<f64>().ok().map(Duration::from_secs_f64)
}

/// The retryable/permanent split every HTTP API here shares for plain statuses.
pub fn status_is_retryable(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CallPolicy {
        CallPolicy {
            attempts: 3,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(150),
            tally: Arc::default(),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_a_longer_retry_after_wins() {
        let e = ProviderError::new("x", codes::RATE_LIMITED, "", true);
        assert_eq!(policy().wait_after(&e, 1), Some(Duration::from_millis(100)));
        assert_eq!(policy().wait_after(&e, 2), Some(Duration::from_millis(150)));
        assert_eq!(policy().wait_after(&e, 3), None, "tries used up");
        let told = e.clone().after(Some(Duration::from_secs(2)));
        assert_eq!(policy().wait_after(&told, 1), Some(Duration::from_secs(2)));
        let too_long = e.after(Some(Duration::from_secs(3600)));
        assert_eq!(policy().wait_after(&too_long, 1), None, "an hour is the pipeline's to wait, not the call's");
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let r: Result<(), _> = policy()
            .run(|| {
                calls += 1;
                async { Err(ProviderError::new("x", codes::INVALID_API_KEY, "no", false)) }
            })
            .await;
        assert_eq!(r.unwrap_err().code, "invalid_api_key");
        assert_eq!(calls, 1);
        assert_eq!(started.elapsed(), Duration::ZERO, "no wait before giving up");
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_until_success() {
        let started = tokio::time::Instant::now();
        let mut tried_at = Vec::new();
        let r = policy()
            .run(|| {
                tried_at.push(started.elapsed());
                let n = tried_at.len();
                async move { if n < 3 { Err(ProviderError::new("x", codes::RATE_LIMITED, "", true)) } else { Ok(n) } }
            })
            .await;
        assert_eq!(r.unwrap(), 3);
        // 100 ms, then 150 ms (doubled, capped).
        assert_eq!(tried_at, [Duration::ZERO, Duration::from_millis(100), Duration::from_millis(250)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_longer_than_the_backoff_is_waited_out_and_the_tries_run_out() {
        let started = tokio::time::Instant::now();
        let mut tried_at = Vec::new();
        let r: Result<(), _> = policy()
            .run(|| {
                tried_at.push(started.elapsed());
                async {
                    Err(ProviderError::new("x", codes::RATE_LIMITED, "", true).after(Some(Duration::from_secs(2))))
                }
            })
            .await;
        assert_eq!(r.unwrap_err().code, "rate_limited", "the last error is handed back");
        assert_eq!(tried_at, [Duration::ZERO, Duration::from_secs(2), Duration::from_secs(4)]);
        assert_eq!(started.elapsed(), Duration::from_secs(4), "no wait after the last try");
    }

    #[tokio::test(start_paused = true)]
    async fn every_failed_call_is_tallied_retried_or_not() {
        let p = policy();
        let mut calls = 0;
        let _ = p
            .run(|| {
                calls += 1;
                let n = calls;
                async move { if n < 2 { Err(ProviderError::new("x", codes::RATE_LIMITED, "", true)) } else { Ok(()) } }
            })
            .await;
        let _: Result<(), _> =
            p.run(|| async { Err(ProviderError::new("x", codes::INVALID_API_KEY, "", false)) }).await;
        assert_eq!(p.tally.take(), [("x", "invalid_api_key", 1), ("x", "rate_limited", 1)]);
        assert!(p.tally.take().is_empty(), "taking empties the tally");
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
