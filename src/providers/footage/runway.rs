//! AI-generated clips from Runway's API (`POST /v1/text_to_video`, then
//! `GET /v1/tasks/{id}` until it ends), as a footage source wrapped around the
//! configured stock source.
//!
//! The choice: a **wrapper**, not a replacement. The stock source plans every
//! slot first (that lays the slots out and gives each a ready fallback); then
//! up to `max_clips_per_job` slots, spread over the video, are generated, and
//! each success replaces the stock clip of its slot. A generation that fails
//! (a `FAILED` or `CANCELLED` task, the daily limit's 429, the poll timeout,
//! 5xx after the retries, a bad key) leaves the stock clip in its slot and adds
//! a warning to the job's manifest, so the job still renders.
//!
//! Generation happens while planning, so a failure can still fall back: the
//! downloaded clip goes straight into the object store under a content
//! address (model, ratio, duration, prompt, seed), and the pipeline finds it
//! there. A second job with the same sentence pays nothing. Every generated
//! second is counted in the job's costs, with its credits at the configured
//! (UNCONFIRMED) price.
//!
//! Contract: shared/specs/platforms.md §4. Runway's JSON error bodies are
//! UNCONFIRMED, so answers are classified by status alone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{FootageRequest, FootageSource, PlannedClip};
use crate::error_code as codes;
use crate::providers::http::{self, CallPolicy, ErrorTally, HttpSettings};
use crate::providers::{CostMeter, ProviderError};
use crate::settings::{Section, SettingsError, check, is_http_url, key, require_key, verdict};
use crate::store::objects::{ObjectKey, ObjectStore};

const NAME: &str = "runway";
/// The API version every request names (the SDK's default).
pub const API_VERSION: &str = "2024-11-06";
/// Longest `promptText`, in UTF-16 code units (gen4.5's limit, the lowest).
pub const MAX_PROMPT_UNITS: usize = 1000;
/// How long a 429 (the daily generation limit) is assumed to last when the
/// answer says nothing: longer than one call sits out, so it is not retried.
const DAILY_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// `[providers.ai_video]`: AI-generated clips on top of the footage source, picked by `type`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AiVideoSettings {
    /// Stock footage only.
    None,
    /// Runway text-to-video for some slots, stock footage for the rest.
    Runway(RunwaySettings),
}

impl Section for AiVideoSettings {
    const SECTION: &'static str = "providers.ai_video";

    fn validate(&self) -> Result<(), SettingsError> {
        match self {
            Self::None => Ok(()),
            Self::Runway(r) => r.validate(),
        }
    }
}

/// `providers.ai_video` when `type = "runway"`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct RunwaySettings {
    #[serde(default = "RunwaySettings::default_base_url")]
    pub base_url: String,
    /// `RUNWAYML_API_SECRET`; sent as `Authorization: Bearer`, never logged.
    #[serde(default)]
    #[cfg_attr(test, serde(serialize_with = "crate::settings::hidden"))]
    pub api_key: Option<SecretString>,
    /// One of [`MODELS`].
    #[serde(default = "RunwaySettings::default_model")]
    pub model: String,
    /// One of the model's ratios; the render scales and crops to 1080x1920.
    #[serde(default = "RunwaySettings::default_ratio")]
    pub ratio: String,
    /// Longest clip generated, in seconds; a duration the model allows. Each
    /// clip is as long as its slot needs, rounded up to an allowed duration.
    #[serde(default = "RunwaySettings::default_duration_secs")]
    pub duration_secs: u32,
    /// Most slots of one job that are generated.
    #[serde(default = "RunwaySettings::default_max_clips_per_job")]
    pub max_clips_per_job: u32,
    /// Wait between polls of a task, jittered by ±50 %.
    #[serde(default = "RunwaySettings::default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Longest wait for one task before it is cancelled and the slot falls back.
    #[serde(default = "RunwaySettings::default_poll_timeout_secs")]
    pub poll_timeout_secs: u64,
    /// Credits one generated second costs (UNCONFIRMED; about 25 for gen4.5).
    #[serde(default = "RunwaySettings::default_credits_per_second")]
    pub credits_per_second: f64,
    #[serde(default = "RunwaySettings::default_timeout_secs")]
    pub timeout_secs: u64,
}

impl RunwaySettings {
    fn default_base_url() -> String {
        "https://api.dev.runwayml.com".into()
    }
    fn default_model() -> String {
        "gen4.5".into()
    }
    fn default_ratio() -> String {
        "720:1280".into()
    }
    fn default_duration_secs() -> u32 {
        5
    }
    fn default_max_clips_per_job() -> u32 {
        3
    }
    fn default_poll_interval_ms() -> u64 {
        6000
    }
    fn default_poll_timeout_secs() -> u64 {
        600
    }
    fn default_credits_per_second() -> f64 {
        25.0
    }
    fn default_timeout_secs() -> u64 {
        60
    }

    fn rule(&self) -> Option<&'static ModelRule> {
        MODELS.iter().find(|m| m.name == self.model)
    }
}

impl Section for RunwaySettings {
    const SECTION: &'static str = "providers.ai_video";

    fn validate(&self) -> Result<(), SettingsError> {
        require_key(key!(api_key), &self.api_key, "runway")?;
        check!(self.base_url, |v| is_http_url(v), "an http(s) URL")?;
        let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        let rule = self.rule();
        verdict(key!(model), rule.is_some(), &self.model, names.join(", "))?;
        let rule = rule.expect("checked");
        check!(
            self.ratio,
            |v| rule.ratios.contains(&v.as_str()),
            format!("for {}: {}", rule.name, rule.ratios.join(", "))
        )?;
        check!(self.duration_secs, |v| rule.allows(*v), format!("for {}: {}", rule.name, rule.durations_text()))?;
        check!(self.max_clips_per_job, |v| (1..=100).contains(v), "1-100")?;
        check!(self.poll_interval_ms, |v| (100..=60_000).contains(v), "100-60000")?;
        check!(self.poll_timeout_secs, |v| (1..=3600).contains(v), "1-3600")?;
        check!(self.credits_per_second, |v| (0.0..1000.0).contains(v), "0.0 up to (not including) 1000.0")?;
        check!(self.timeout_secs, |v| (1..=600).contains(v), "1-600")
    }
}

/// What a model accepts (specs/platforms.md §4).
#[derive(Debug)]
pub struct ModelRule {
    pub name: &'static str,
    pub ratios: &'static [&'static str],
    /// Every allowed duration, ascending.
    pub durations: &'static [u32],
}

impl ModelRule {
    pub fn allows(&self, secs: u32) -> bool {
        self.durations.contains(&secs)
    }

    fn durations_text(&self) -> String {
        self.durations.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    }

    /// The clip length for a slot of `slot_s`: the shortest allowed duration
    /// that covers it, at most `max` (a longer slot loops its clip).
    pub fn clip_secs(&self, slot_s: f64, max: u32) -> u32 {
        let fits: Vec<u32> = self.durations.iter().copied().filter(|d| *d <= max).collect();
        fits.iter().copied().find(|d| f64::from(*d) >= slot_s - 1e-6).or(fits.last().copied()).unwrap_or(max)
    }
}

const WIDE: &[&str] = &["1280:720", "720:1280", "1080:1920", "1920:1080"];

/// The models this source knows, with their ratios and durations.
pub const MODELS: &[ModelRule] = &[
    ModelRule { name: "gen4.5", ratios: &["1280:720", "720:1280"], durations: &[2, 3, 4, 5, 6, 7, 8, 9, 10] },
    ModelRule { name: "veo3.1", ratios: WIDE, durations: &[4, 6, 8] },
    ModelRule { name: "veo3.1_fast", ratios: WIDE, durations: &[4, 6, 8] },
    ModelRule { name: "veo3", ratios: WIDE, durations: &[8] },
    ModelRule { name: "gemini_omni_flash", ratios: &["1280:720", "720:1280"], durations: &[3, 4, 5, 6, 7, 8, 9, 10] },
];

/// One clip to generate: everything its content address is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub model: String,
    pub ratio: String,
    pub duration: u32,
    pub prompt: String,
    pub seed: u32,
}

impl Generation {
    /// The object key the clip is cached under.
    pub fn cache_key(&self) -> String {
        let mut h = Sha256::new();
        for part in [NAME, &self.model, &self.ratio, &self.duration.to_string(), &self.seed.to_string(), &self.prompt] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let address = hex::encode(&h.finalize()[..16]);
        format!("cache/footage/runway-{address}.mp4")
    }

    /// The `POST /v1/text_to_video` body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.model,
            "promptText": self.prompt,
            "ratio": self.ratio,
            "duration": self.duration,
            "seed": self.seed,
        })
    }
}

/// The prompt for a slot: its sentence, then the writer's search terms as the
/// picture to show; cut to [`MAX_PROMPT_UNITS`] at a character boundary.
pub fn prompt_for(sentence: &str, terms: &[String]) -> String {
    let sentence = sentence.trim();
    let mut prompt = if terms.is_empty() {
        format!("Vertical cinematic stock-style shot illustrating: {sentence}")
    } else {
        format!("Vertical cinematic stock-style shot of {}. It illustrates: {sentence}", terms.join(", "))
    };
    prompt.push_str(" No text, no captions, no logos.");
    let mut units = 0;
    let mut end = prompt.len();
    for (i, c) in prompt.char_indices() {
        units += c.len_utf16();
        if units > MAX_PROMPT_UNITS {
            end = i;
            break;
        }
    }
    prompt.truncate(end);
    prompt
}

/// A seed from the prompt, so the same sentence asks for the same clip.
fn seed_for(prompt: &str) -> u32 {
    let h = Sha256::digest(prompt.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// Which of `slots` slots are generated: `n` spread evenly, the first included.
pub fn chosen_slots(slots: usize, n: usize) -> Vec<usize> {
    let n = n.min(slots);
    (0..n).map(|i| i * slots / n).collect()
}

/// The wait before poll number `n` (0-based): `interval` ±50 %, by a hash of
/// `seed` and `n`, so concurrent tasks do not poll in step.
pub fn jittered(interval: Duration, seed: &str, n: u32) -> Duration {
    let h = Sha256::digest(format!("{seed}\0{n}").as_bytes());
    let frac = f64::from(u16::from_be_bytes([h[0], h[1]])) / f64::from(u16::MAX);
    interval.mul_f64(0.5 + frac)
}

/// A task as `GET /v1/tasks/{id}` shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub output: Option<Vec<String>>,
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub failure_code: Option<String>,
}

/// What a task's status means for the poller.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    /// `PENDING`, `THROTTLED` (queued over the concurrency limit) or `RUNNING`.
    Waiting,
    /// `SUCCEEDED`, with its first output URL.
    Done(String),
    Failed(ProviderError),
}

/// Maps a task to what the poller does next.
pub fn task_state(task: &Task) -> TaskState {
    match task.status.as_str() {
        "PENDING" | "THROTTLED" | "RUNNING" => TaskState::Waiting,
        "SUCCEEDED" => match task.output.as_ref().and_then(|o| o.first()) {
            Some(url) => TaskState::Done(url.clone()),
            None => TaskState::Failed(ProviderError::new(
                NAME,
                codes::BAD_ANSWER,
                format!("task {} succeeded without an output URL", task.id),
                true,
            )),
        },
        "FAILED" => {
            let code = task.failure_code.as_deref().unwrap_or("unknown");
            // Moderation and input refusals come back the same way every time.
            let retryable = !(code.starts_with("SAFETY") || code.starts_with("INPUT"));
            TaskState::Failed(ProviderError::new(
                NAME,
                codes::GENERATION_FAILED,
                format!("task {} failed ({code}): {}", task.id, task.failure.as_deref().unwrap_or("no reason given")),
                retryable,
            ))
        }
        "CANCELLED" => TaskState::Failed(ProviderError::new(
            NAME,
            codes::GENERATION_FAILED,
            format!("task {} was cancelled", task.id),
            true,
        )),
        other => TaskState::Failed(ProviderError::new(
            NAME,
            codes::BAD_ANSWER,
            format!("task {} has an unknown status {other:?}", task.id),
            true,
        )),
    }
}

/// Polls with `get` (after a jittered wait each time) until the task ends or
/// `timeout` passes; returns the output URL.
pub async fn wait_for_task<F, Fut>(
    task_id: &str,
    interval: Duration,
    timeout: Duration,
    mut get: F,
) -> Result<String, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Task, ProviderError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    for n in 0.. {
        let wait = jittered(interval, task_id, n);
        if tokio::time::Instant::now() + wait > deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        let task = get().await?;
        match task_state(&task) {
            TaskState::Waiting => {
                tracing::debug!(task = %task.id, status = %task.status, progress = ?task.progress, "generation under way")
            }
            TaskState::Done(url) => return Ok(url),
            TaskState::Failed(e) => return Err(e),
        }
    }
    Err(ProviderError::new(
        NAME,
        codes::GENERATION_TIMED_OUT,
        format!("task {task_id} did not finish within {} s", timeout.as_secs()),
        true,
    ))
}

/// Runway clips for some slots, the stock source for the rest.
pub struct RunwayFootage {
    stock: Arc<dyn FootageSource>,
    base_url: String,
    api_key: SecretString,
    client: reqwest::Client,
    policy: CallPolicy,
    settings: RunwaySettings,
    cache: Arc<dyn ObjectStore>,
}

impl RunwayFootage {
    pub fn new(
        s: &RunwaySettings,
        http: &HttpSettings,
        tally: Arc<ErrorTally>,
        stock: Arc<dyn FootageSource>,
        cache: Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            stock,
            base_url: s.base_url.trim_end_matches('/').to_string(),
            api_key: s.api_key.clone().expect("checked in settings"),
            client: http::client(Duration::from_secs(s.timeout_secs)),
            policy: CallPolicy::new(http, tally),
            settings: s.clone(),
            cache,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .header("X-Runway-Version", API_VERSION)
    }

    /// A non-success answer of the API as a coded error.
    fn refusal(
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &str,
        what: &str,
    ) -> ProviderError {
        // The body is Runway's own words about our request; it never holds the key.
        let said: String = body.chars().take(300).collect();
        match status.as_u16() {
            401 | 403 => {
                ProviderError::new(NAME, codes::INVALID_API_KEY, format!("Runway refused the key ({status})"), false)
            }
            429 => ProviderError::new(
                NAME,
                codes::RATE_LIMITED,
                format!("{what}: Runway's daily generation limit is reached"),
                true,
            )
            .after(Some(http::retry_after(headers).unwrap_or(DAILY_LIMIT_WAIT))),
            _ if http::status_is_retryable(status) => {
                ProviderError::new(NAME, codes::UPSTREAM_ERROR, format!("{what}: Runway answered {status}"), true)
                    .after(http::retry_after(headers))
            }
            _ => {
                ProviderError::new(NAME, codes::BAD_REQUEST, format!("{what}: Runway answered {status}: {said}"), false)
            }
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, ProviderError> {
        self.policy
            .run(|| async {
                let resp = build().send().await.map_err(|e| http::transport_error(NAME, e))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.text().await.map_err(|e| http::transport_error(NAME, e))?;
                if !status.is_success() {
                    return Err(Self::refusal(status, &headers, &body, what));
                }
                serde_json::from_str(&body).map_err(|e| {
                    ProviderError::new(NAME, codes::BAD_ANSWER, format!("{what}: unreadable answer: {e}"), true)
                })
            })
            .await
    }

    async fn get_task(&self, id: &str) -> Result<Task, ProviderError> {
        self.json(|| self.request(reqwest::Method::GET, &format!("/v1/tasks/{id}")), "task status").await
    }

    /// Submits, polls and downloads one clip to `dest`; counts its seconds.
    async fn generate(&self, g: &Generation, dest: &Path, meter: &CostMeter) -> Result<(), ProviderError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let body = g.body();
        let created: Created =
            self.json(|| self.request(reqwest::Method::POST, "/v1/text_to_video").json(&body), "text_to_video").await?;
        tracing::info!(task = %created.id, model = %g.model, duration = g.duration, "generation submitted");
        let interval = Duration::from_millis(self.settings.poll_interval_ms);
        let timeout = Duration::from_secs(self.settings.poll_timeout_secs);
        let url = match wait_for_task(&created.id, interval, timeout, || self.get_task(&created.id)).await {
            Ok(url) => url,
            Err(e) => {
                if e.code == codes::GENERATION_TIMED_OUT {
                    // Best effort: a task nobody waits for should not keep running.
                    let _ = self.request(reqwest::Method::DELETE, &format!("/v1/tasks/{}", created.id)).send().await;
                }
                return Err(e);
            }
        };
        // A succeeded task is billed, whether or not its download works.
        CostMeter::add(&meter.generated_video_seconds, u64::from(g.duration));
        meter.add_generation_credits(f64::from(g.duration) * self.settings.credits_per_second);
        match self.download(&url, dest).await {
            Err(e) if e.code == codes::DOWNLOAD_FAILED && !e.retryable => {
                // Output URLs expire; the task gives fresh ones.
                tracing::info!(task = %created.id, "output URL refused; asking the task for a fresh one");
                match task_state(&self.get_task(&created.id).await?) {
                    TaskState::Done(fresh) => self.download(&fresh, dest).await,
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Streams the output to `dest` (the URL is presigned: it is never logged).
    async fn download(&self, url: &str, dest: &Path) -> Result<(), ProviderError> {
        let partial = dest.with_extension("part");
        self.policy
            .run(|| async {
                let resp = self.client.get(url).send().await.map_err(|e| http::transport_error(NAME, e))?;
                let status = resp.status();
                if !status.is_success() {
                    return Err(ProviderError::new(
                        NAME,
                        codes::DOWNLOAD_FAILED,
                        format!("generated clip download answered {status}"),
                        http::status_is_retryable(status),
                    ));
                }
                let mut file = tokio::fs::File::create(&partial).await.map_err(|e| ProviderError::io(NAME, e))?;
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| http::transport_error(NAME, e))?;
                    file.write_all(&chunk).await.map_err(|e| ProviderError::io(NAME, e))?;
                }
                file.flush().await.map_err(|e| ProviderError::io(NAME, e))?;
                Ok(())
            })
            .await?;
        tokio::fs::rename(&partial, dest).await.map_err(|e| ProviderError::io(NAME, e))
    }

    /// The clip of `g` in the cache, generated first when it is not there yet.
    async fn cached(&self, g: &Generation, meter: &CostMeter) -> Result<ObjectKey, ProviderError> {
        let cache_err =
            |e: crate::store::objects::ObjectError| ProviderError::new(NAME, codes::CACHE_ERROR, e.to_string(), true);
        let key = ObjectKey::parse(&g.cache_key()).expect("valid key");
        if self.cache.size(&key).await.map_err(cache_err)?.is_some() {
            tracing::info!(key = %key, "generated clip found in cache");
            return Ok(key);
        }
        let dir = tempfile::tempdir().map_err(|e| ProviderError::io(NAME, e))?;
        let file = dir.path().join("clip.mp4");
        self.generate(g, &file, meter).await?;
        self.cache.put_file(&key, &file).await.map_err(cache_err)?;
        meter.used_cache(key.as_str());
        Ok(key)
    }

    fn generation(&self, request: &FootageRequest<'_>, clip: &PlannedClip) -> Generation {
        let sentence = request.sentences.iter().rposition(|s| s.start_s <= clip.at_s + 0.05).unwrap_or(0);
        let text = request.sentences.get(sentence).map(|s| s.text.as_str()).unwrap_or_default();
        let terms: Vec<String> = match request.sentence_terms.get(sentence).filter(|t| !t.is_empty()) {
            Some(t) => t.clone(),
            None => request.job_queries.to_vec(),
        };
        let prompt = prompt_for(text, &terms);
        let rule = self.settings.rule().expect("checked in settings");
        Generation {
            model: self.settings.model.clone(),
            ratio: self.settings.ratio.clone(),
            duration: rule.clip_secs(clip.duration_s, self.settings.duration_secs),
            seed: seed_for(&prompt),
            prompt,
        }
    }
}

#[async_trait]
impl FootageSource for RunwayFootage {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn plan(&self, request: &FootageRequest<'_>, meter: &CostMeter) -> Result<Vec<PlannedClip>, ProviderError> {
        let mut plan = self.stock.plan(request, meter).await?;
        let chosen = chosen_slots(plan.len(), self.settings.max_clips_per_job as usize);
        let wanted: Vec<(usize, Generation)> =
            chosen.iter().map(|&i| (i, self.generation(request, &plan[i]))).collect();
        // All submitted at once: Runway queues what is over the concurrency limit.
        let results = futures::future::join_all(wanted.iter().map(|(_, g)| self.cached(g, meter))).await;
        for ((i, g), result) in wanted.into_iter().zip(results) {
            let slot = &mut plan[i];
            match result {
                Ok(key) => {
                    *slot = PlannedClip {
                        cache_key: key.to_string(),
                        source: format!("runway:{}", g.model),
                        locator: serde_json::to_string(&g).expect("serialises"),
                        at_s: slot.at_s,
                        duration_s: slot.duration_s,
                        credit: None,
                    };
                }
                Err(e) => {
                    tracing::warn!(slot = i, code = e.code.as_str(), error = %e, "AI clip not generated; stock footage used");
                    meter.warn(format!(
                        "footage at {:.1} s: the AI clip was not generated ({}: {}); {} is used instead",
                        slot.at_s, e.code, e, slot.source
                    ));
                }
            }
        }
        Ok(plan)
    }

    async fn fetch(&self, clip: &PlannedClip, dest: &Path, meter: &CostMeter) -> Result<(), ProviderError> {
        if !clip.source.starts_with("runway:") {
            return self.stock.fetch(clip, dest, meter).await;
        }
        // Planned clips are in the cache already; this runs only when it lost one.
        let g: Generation = serde_json::from_str(&clip.locator)
            .map_err(|e| ProviderError::new(NAME, codes::FOOTAGE_MISSING, format!("unreadable locator: {e}"), false))?;
        let key = self.cached(&g, meter).await?;
        self.cache
            .fetch_to(&key, dest)
            .await
            .map(|_| ())
            .map_err(|e| ProviderError::new(NAME, codes::CACHE_ERROR, e.to_string(), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: &str) -> Task {
        Task {
            id: "t1".into(),
            status: status.into(),
            progress: None,
            output: (status == "SUCCEEDED").then(|| vec!["https://cdn/out.mp4?sig=1".into()]),
            failure: (status == "FAILED").then(|| "the model failed".into()),
            failure_code: (status == "FAILED").then(|| "INTERNAL.BAD_OUTPUT".into()),
        }
    }

    #[test]
    fn the_request_body_has_the_contract_fields() {
        let g = Generation {
            model: "gen4.5".into(),
            ratio: "720:1280".into(),
            duration: 5,
            prompt: "waves".into(),
            seed: 7,
        };
        assert_eq!(
            g.body(),
            serde_json::json!({"model": "gen4.5", "promptText": "waves", "ratio": "720:1280", "duration": 5, "seed": 7})
        );
        let other = Generation { prompt: "sand".into(), ..g.clone() };
        assert_ne!(g.cache_key(), other.cache_key(), "the prompt is part of the address");
        assert!(g.cache_key().starts_with("cache/footage/runway-") && g.cache_key().ends_with(".mp4"));
    }

    #[test]
    fn prompts_carry_terms_and_sentence_and_stay_within_1000_utf16_units() {
        let p = prompt_for("Waves roll in.", &["ocean".into(), "waves".into()]);
        assert!(p.contains("ocean, waves") && p.contains("Waves roll in."), "{p}");
        let long = "😀".repeat(800); // two UTF-16 units each
        let p = prompt_for(&long, &[]);
        assert!(p.encode_utf16().count() <= MAX_PROMPT_UNITS);
        assert!(p.encode_utf16().count() >= MAX_PROMPT_UNITS - 1, "cut at the limit, not far before");
    }

    #[test]
    fn clip_lengths_cover_the_slot_within_what_the_model_allows() {
        let gen45 = &MODELS[0];
        assert_eq!(gen45.clip_secs(2.3, 5), 3);
        assert_eq!(gen45.clip_secs(1.0, 5), 2, "the shortest allowed");
        assert_eq!(gen45.clip_secs(9.0, 5), 5, "capped; the clip loops");
        let veo = MODELS.iter().find(|m| m.name == "veo3.1").unwrap();
        assert_eq!(veo.clip_secs(4.5, 8), 6);
        assert_eq!(chosen_slots(10, 3), [0, 3, 6]);
        assert_eq!(chosen_slots(2, 3), [0, 1]);
    }

    #[test]
    fn task_states_map_to_waiting_done_or_a_coded_failure() {
        for s in ["PENDING", "THROTTLED", "RUNNING"] {
            assert_eq!(task_state(&task(s)), TaskState::Waiting, "{s}");
        }
        assert_eq!(task_state(&task("SUCCEEDED")), TaskState::Done("https://cdn/out.mp4?sig=1".into()));
        let TaskState::Failed(e) = task_state(&task("FAILED")) else { panic!() };
        assert_eq!((e.code.as_str(), e.retryable), ("generation_failed", true));
        assert!(e.message.contains("INTERNAL.BAD_OUTPUT"), "{e}");
        let mut unsafe_prompt = task("FAILED");
        unsafe_prompt.failure_code = Some("SAFETY.INPUT.TEXT".into());
        let TaskState::Failed(e) = task_state(&unsafe_prompt) else { panic!() };
        assert!(!e.retryable, "a moderation refusal repeats");
        let TaskState::Failed(e) = task_state(&task("CANCELLED")) else { panic!() };
        assert_eq!(e.code, "generation_failed");
        let mut empty = task("SUCCEEDED");
        empty.output = Some(vec![]);
        let TaskState::Failed(e) = task_state(&empty) else { panic!() };
        assert_eq!(e.code, "bad_answer");
    }

    #[test]
    fn jitter_stays_within_half_the_interval_either_side_and_varies() {
        let base = Duration::from_secs(6);
        let waits: Vec<Duration> = (0..50).map(|n| jittered(base, "task", n)).collect();
        assert!(waits.iter().all(|w| *w >= Duration::from_secs(3) && *w <= Duration::from_secs(9)));
        assert!(waits.iter().collect::<std::collections::HashSet<_>>().len() > 10, "not in step");
    }

    #[tokio::test(start_paused = true)]
    async fn polling_goes_through_pending_throttled_running_to_the_output() {
        let started = tokio::time::Instant::now();
        let mut states = ["PENDING", "THROTTLED", "RUNNING", "SUCCEEDED"].into_iter();
        let mut polled_at = Vec::new();
        let url = wait_for_task("t1", Duration::from_secs(6), Duration::from_secs(600), || {
            polled_at.push(started.elapsed());
            let t = task(states.next().unwrap());
            async move { Ok(t) }
        })
        .await
        .unwrap();
        assert_eq!(url, "https://cdn/out.mp4?sig=1");
        assert_eq!(polled_at.len(), 4);
        let expected: Duration = (0..4).map(|n| jittered(Duration::from_secs(6), "t1", n)).sum();
        let off = started.elapsed().abs_diff(expected);
        assert!(off < Duration::from_millis(5), "one jittered wait before each poll, nothing more: {off:?}");
        assert!(polled_at.windows(2).all(|p| p[1] - p[0] >= Duration::from_secs(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_never_ends_times_out_at_the_cap() {
        let started = tokio::time::Instant::now();
        let mut polls = 0;
        let err = wait_for_task("t1", Duration::from_secs(6), Duration::from_secs(60), || {
            polls += 1;
            async { Ok(task("RUNNING")) }
        })
        .await
        .unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("generation_timed_out", true));
        assert!(started.elapsed() <= Duration::from_secs(60), "gave up within the cap: {:?}", started.elapsed());
        assert!(started.elapsed() >= Duration::from_secs(51), "waited nearly the cap: {:?}", started.elapsed());
        assert!((7..=20).contains(&polls), "{polls} polls");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_task_stops_polling_at_once() {
        let mut polls = 0;
        let err = wait_for_task("t1", Duration::from_secs(6), Duration::from_secs(600), || {
            polls += 1;
            async { Ok(task("FAILED")) }
        })
        .await
        .unwrap_err();
        assert_eq!(err.code, "generation_failed");
        assert_eq!(polls, 1);
    }
}
