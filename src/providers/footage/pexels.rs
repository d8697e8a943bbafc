//! Pexels video search and download.
//!
//! Searches are portrait-first and cached in the object store (Pexels asks
//! for caching, and the budget is 200 requests an hour). The last seen
//! `X-Ratelimit-Remaining`/`X-Ratelimit-Reset` are remembered, because a 429
//! answer carries neither: with the budget spent we wait for the reset rather
//! than hammer. A search with nothing usable is retried with a broader query,
//! then the slot falls back to the local library (or generated clips).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::settings::PexelsSettings;
use super::{FootageRequest, FootageSource, LocalFootage, PlannedClip, Slot, slots_with_queries};
use crate::domain::Credit;
use crate::error_code as codes;
use crate::providers::http::HttpSettings;
use crate::providers::http::{self, CallPolicy, ErrorTally};
use crate::providers::{CostMeter, ProviderError};
use crate::store::objects::{ObjectKey, ObjectStore};

const NAME: &str = "pexels";
const PER_PAGE: u32 = 15;
/// Used when neither the script nor the job gives a search term.
const DEFAULT_QUERY: &str = "nature";
/// Width and height a chosen file should reach.
const WANT: (u32, u32) = (1080, 1920);

/// One entry of a video's `video_files`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VideoFile {
    pub id: u64,
    #[serde(default)]
    pub quality: Option<String>,
    #[serde(default)]
    pub file_type: Option<String>,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    pub link: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Video {
    id: u64,
    url: String,
    user: User,
    video_files: Vec<VideoFile>,
}

#[derive(Debug, Clone, Deserialize)]
struct User {
    name: String,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct SearchPage {
    #[serde(default)]
    videos: Vec<Video>,
}

/// Picks the file to download: MP4s with known sizes (HLS entries have none),
/// portrait before landscape, the smallest that reaches 1080x1920, else the largest.
pub fn choose_file(files: &[VideoFile]) -> Option<&VideoFile> {
    let usable: Vec<(&VideoFile, u32, u32)> = files
        .iter()
        .filter(|f| f.quality.as_deref() != Some("hls"))
        .filter(|f| f.file_type.as_deref().is_none_or(|t| t == "video/mp4"))
        .filter_map(|f| match (f.width, f.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Some((f, w, h)),
            _ => None,
        })
        .collect();
    let portrait: Vec<_> = usable.iter().copied().filter(|(_, w, h)| h >= w).collect();
    let pool = if portrait.is_empty() { usable } else { portrait };
    let area = |(_, w, h): &(&VideoFile, u32, u32)| u64::from(*w) * u64::from(*h);
    let big_enough = pool.iter().filter(|(_, w, h)| *w >= WANT.0 && *h >= WANT.1).min_by_key(|c| area(c));
    big_enough.or_else(|| pool.iter().max_by_key(|c| area(c))).map(|(f, _, _)| *f)
}

/// What the last answer said of the hourly budget.
#[derive(Debug, Default)]
struct Budget {
    remaining: Option<u64>,
    reset_unix: Option<u64>,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Footage from Pexels.
pub struct PexelsFootage {
    base_url: String,
    api_key: SecretString,
    client: reqwest::Client,
    policy: CallPolicy,
    max_clip_s: f64,
    max_rate_wait: Duration,
    fallback: LocalFootage,
    cache: Arc<dyn ObjectStore>,
    budget: Mutex<Budget>,
}

impl PexelsFootage {
    pub fn new(
        s: &PexelsSettings,
        http: &HttpSettings,
        tally: Arc<ErrorTally>,
        fallback: LocalFootage,
        cache: Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            base_url: s.base_url.trim_end_matches('/').to_string(),
            api_key: s.api_key.clone().expect("checked in settings"),
            client: http::client(s.timeout()),
            policy: CallPolicy::new(http, tally),
            max_clip_s: s.max_clip_secs,
            max_rate_wait: s.max_rate_wait(),
            fallback,
            cache,
            budget: Mutex::new(Budget::default()),
        }
    }

    /// How long until the spent budget resets, if it is spent.
    async fn budget_wait(&self) -> Option<Duration> {
        let b = self.budget.lock().await;
        match (b.remaining, b.reset_unix) {
            (Some(0), Some(reset)) if reset > now_unix() => Some(Duration::from_secs(reset - now_unix())),
            _ => None,
        }
    }

    async fn remember_budget(&self, headers: &reqwest::header::HeaderMap) {
        let read =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let mut b = self.budget.lock().await;
        if let Some(r) = read("x-ratelimit-remaining") {
            b.remaining = Some(r);
        }
        if let Some(r) = read("x-ratelimit-reset") {
            b.reset_unix = Some(r);
        }
    }

    /// One search, from the cache when it was made before.
    async fn search(&self, query: &str, meter: &CostMeter) -> Result<Vec<Video>, ProviderError> {
        let address = hex::encode(&Sha256::digest(format!("{query}\0portrait\0{PER_PAGE}").as_bytes())[..16]);
        let key = ObjectKey::parse(&format!("cache/pexels/search-{address}.json")).expect("valid key");
        meter.used_cache(key.as_str());
        let cache_err =
            |e: crate::store::objects::ObjectError| ProviderError::new(NAME, codes::CACHE_ERROR, e.to_string(), true);
        if let Some(bytes) = self.cache.get_bytes(&key).await.map_err(cache_err)?
            && let Ok(page) = serde_json::from_slice::<SearchPage>(&bytes)
        {
            return Ok(page.videos);
        }
        let url = format!("{}/videos/search", self.base_url);
        let body: Vec<u8> = self
            .policy
            .run(|| async {
                if let Some(wait) = self.budget_wait().await {
                    if wait > self.max_rate_wait {
                        return Err(ProviderError::new(
                            NAME,
                            codes::RATE_LIMITED,
                            "the hourly Pexels budget is spent",
                            true,
                        )
                        .after(Some(wait)));
                    }
                    tracing::info!(wait_s = wait.as_secs(), "Pexels budget spent; waiting for its reset");
                    tokio::time::sleep(wait).await;
                }
                CostMeter::add(&meter.pexels_requests, 1);
                let resp = self
                    .client
                    .get(&url)
                    .query(&[("query", query), ("orientation", "portrait"), ("per_page", &PER_PAGE.to_string())])
                    // Pexels takes the raw key, not "Bearer <key>".
                    .header(reqwest::header::AUTHORIZATION, self.api_key.expose_secret())
                    .send()
                    .await
                    .map_err(|e| http::transport_error(NAME, e))?;
                let status = resp.status();
                if status.is_success() {
                    self.remember_budget(resp.headers()).await;
                    let bytes = resp.bytes().await.map_err(|e| http::transport_error(NAME, e))?;
                    return Ok(bytes.to_vec());
                }
                // A 429 carries no rate headers: wait for the last reset we saw.
                let wait = http::retry_after(resp.headers()).or({
                    let b = self.budget.lock().await;
                    b.reset_unix.filter(|r| *r > now_unix()).map(|r| Duration::from_secs(r - now_unix()))
                });
                Err(match status.as_u16() {
                    401 | 403 => ProviderError::new(
                        NAME,
                        codes::INVALID_API_KEY,
                        format!("Pexels refused the key ({status})"),
                        false,
                    ),
                    429 => ProviderError::new(NAME, codes::RATE_LIMITED, "Pexels rate limit reached", true)
                        .after(Some(wait.unwrap_or(Duration::from_secs(60)))),
                    _ if http::status_is_retryable(status) => {
                        ProviderError::new(NAME, codes::UPSTREAM_ERROR, format!("Pexels answered {status}"), true)
                            .after(wait)
                    }
                    _ => ProviderError::new(NAME, codes::BAD_REQUEST, format!("Pexels answered {status}"), false),
                })
            })
            .await?;
        let page: SearchPage = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::new(NAME, codes::BAD_ANSWER, format!("unreadable search answer: {e}"), true))?;
        self.cache.put_bytes(&key, &body).await.map_err(cache_err)?;
        Ok(page.videos)
    }

    /// Usable videos for `query`, trying its first word alone when it finds none.
    async fn find(&self, query: &str, meter: &CostMeter) -> Result<Vec<(Video, VideoFile)>, ProviderError> {
        let usable = |videos: Vec<Video>| -> Vec<(Video, VideoFile)> {
            videos.into_iter().filter_map(|v| choose_file(&v.video_files).cloned().map(|f| (v, f))).collect()
        };
        let found = usable(self.search(query, meter).await?);
        if !found.is_empty() {
            return Ok(found);
        }
        match query.split_whitespace().next() {
            Some(broader) if broader != query => Ok(usable(self.search(broader, meter).await?)),
            _ => Ok(found),
        }
    }
}

#[async_trait]
impl FootageSource for PexelsFootage {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn plan(&self, request: &FootageRequest<'_>, meter: &CostMeter) -> Result<Vec<PlannedClip>, ProviderError> {
        let slots = slots_with_queries(request, self.max_clip_s);
        let mut planned = Vec::with_capacity(slots.len());
        let mut uses: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut fallback: Vec<(usize, Slot)> = Vec::new();
        for (i, slot) in slots.into_iter().enumerate() {
            let query = slot.query.clone().unwrap_or_else(|| DEFAULT_QUERY.to_string());
            let found = self.find(&query, meter).await?;
            if found.is_empty() {
                tracing::info!(query = %query, "no usable Pexels footage; using the local fallback");
                fallback.push((i, slot));
                planned.push(None);
                continue;
            }
            // The same query in several slots rotates through its results.
            let n = uses.entry(query).or_default();
            let (video, file) = &found[*n % found.len()];
            *n += 1;
            planned.push(Some(PlannedClip {
                cache_key: format!("cache/footage/pexels-{}.mp4", file.id),
                source: format!("pexels:{}", video.id),
                locator: file.link.clone(),
                at_s: slot.at_s,
                duration_s: slot.duration_s,
                credit: Some(Credit {
                    creator: video.user.name.clone(),
                    creator_url: video.user.url.clone(),
                    page_url: video.url.clone(),
                    license: "Pexels License".into(),
                }),
            }));
        }
        let mut local = self.fallback.plan_slots(&fallback).await?.into_iter();
        Ok(planned.into_iter().map(|p| p.or_else(|| local.next()).expect("one fallback per gap")).collect())
    }

    async fn fetch(&self, clip: &PlannedClip, dest: &Path, meter: &CostMeter) -> Result<(), ProviderError> {
        if !clip.source.starts_with("pexels:") {
            return self.fallback.fetch(clip, dest, meter).await;
        }
        let partial = dest.with_extension("part");
        self.policy
            .run(|| async {
                let resp = self.client.get(&clip.locator).send().await.map_err(|e| http::transport_error(NAME, e))?;
                let status = resp.status();
                if !status.is_success() {
                    let retryable = http::status_is_retryable(status);
                    return Err(ProviderError::new(
                        NAME,
                        codes::DOWNLOAD_FAILED,
                        format!("footage download answered {status}"),
                        retryable,
                    )
                    .after(http::retry_after(resp.headers())));
                }
                // Streamed to disk: a clip is never held in memory whole.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64, quality: &str, w: Option<u32>, h: Option<u32>) -> VideoFile {
        VideoFile {
            id,
            quality: Some(quality.into()),
            file_type: Some(if quality == "hls" { "application/x-mpegURL" } else { "video/mp4" }.into()),
            width: w,
            height: h,
            link: format!("https://cdn/{id}.mp4"),
        }
    }

    #[test]
    fn the_smallest_portrait_file_reaching_1080x1920_is_chosen() {
        let files = [
            file(1, "hls", None, None),
            file(2, "sd", Some(540), Some(960)),
            file(3, "uhd", Some(2160), Some(3840)),
            file(4, "hd", Some(1080), Some(1920)),
            file(5, "hd", Some(1920), Some(1080)),
        ];
        assert_eq!(choose_file(&files).unwrap().id, 4);
    }

    #[test]
    fn without_a_big_enough_file_the_largest_is_taken_and_hls_never() {
        let files =
            [file(1, "hls", None, None), file(2, "sd", Some(360), Some(640)), file(3, "hd", Some(720), Some(1280))];
        assert_eq!(choose_file(&files).unwrap().id, 3);
        assert!(choose_file(&[file(9, "hls", None, None)]).is_none());
    }

    #[test]
    fn landscape_is_used_only_when_no_portrait_file_exists() {
        let files = [file(1, "hd", Some(1920), Some(1080)), file(2, "uhd", Some(3840), Some(2160))];
        assert_eq!(choose_file(&files).unwrap().id, 2, "3840x2160 is tall enough to crop a 1080x1920 frame from");
    }
}
