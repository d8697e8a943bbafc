//! YouTube Shorts: a connected channel's OAuth grant (offline access, sealed,
//! refreshed, revoked on disconnect) and `videos.insert` with the resumable
//! upload protocol.
//!
//! Exactly one video per job: the session URI is recorded (sealed) before the
//! first byte goes; a redelivered publish asks YouTube how much of that
//! session it holds (`308` + `Range`) and goes on from there, or, when the
//! session finished, only checks the video's processing. A new session is
//! started only when none was recorded or YouTube forgot it (404/410) before
//! it finished.

pub mod api;
pub mod settings;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::{info, warn};

use self::api::{Processing, Progress, YouTubeApi};
pub use self::settings::YouTubeSettings;
use crate::crypto::TokenCipher;
use crate::domain::JobId;
use crate::error_code as codes;
use crate::providers::oauth::TokenKeeper;
use crate::providers::{ProviderError, UploadError};
use crate::store::records::{AccountRecord, NewAccount, RecordStore, TargetStatus, TargetUpload};

pub use api::PROVIDER;

/// What a video is published with.
#[derive(Debug, Clone)]
pub struct VideoMeta {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
}

/// The finished video.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub video_id: String,
    pub url: String,
}

/// YouTube for one process: the API, the channels' tokens, the upload records.
#[derive(Clone)]
pub struct YouTube {
    pub api: YouTubeApi,
    pub tokens: TokenKeeper,
    records: Arc<dyn RecordStore>,
    settings: YouTubeSettings,
}

impl YouTube {
    /// `None` when YouTube is not configured.
    pub fn from_settings(s: &crate::settings::Settings, records: Arc<dyn RecordStore>) -> Option<Self> {
        let y = &s.youtube;
        if !y.enabled() {
            return None;
        }
        let api = YouTubeApi::new(y);
        let tokens = TokenKeeper::from_settings(s, Arc::new(api.clone()), records.clone(), y.refresh_margin());
        Some(Self { api, tokens, records, settings: y.clone() })
    }

    /// Finishes a connect: exchanges the code, reads the channel, stores the
    /// account with sealed tokens.
    pub async fn connect(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<AccountRecord, ProviderError> {
        self.tokens.cipher()?;
        let grant = self.api.exchange_code(code, redirect_uri, verifier).await?;
        let channel = self.api.channel(&grant.access_token).await?;
        let open_id = format!("{PROVIDER}:{}", channel.id);
        let account = NewAccount {
            platform: PROVIDER.into(),
            tokens: self.tokens.seal(&open_id, &grant)?,
            open_id,
            display_name: channel.title,
            avatar_url: None,
            scopes: grant.scope.replace(' ', ","),
        };
        let stored = self.records.upsert_account(&account).await.map_err(|e| self.tokens.store_error(e))?;
        info!(account = %stored.id, "YouTube channel connected");
        Ok(stored)
    }

    /// Uploads `file` (`bytes` long) to `account`'s channel for `job`,
    /// exactly once, and waits for YouTube to process it.
    pub async fn deliver(
        &self,
        job: &JobId,
        account: &str,
        file: &Path,
        bytes: u64,
        meta: &VideoMeta,
        report: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<Published, UploadError> {
        let acct = self.tokens.load(account).await?;
        let cipher = self.tokens.cipher()?.clone();
        let kept = self.records.target_upload(job, PROVIDER).await.map_err(|e| self.tokens.store_error(e))?;
        let (session, mut record) = match kept {
            Some(r) if r.status == TargetStatus::Published => {
                return Ok(published(r.remote_id.unwrap_or_default()));
            }
            Some(r) if r.status != TargetStatus::Failed && r.account_id == acct.id => {
                let session = cipher
                    .open(&r.session, &context(job))
                    .map_err(|e| crate::providers::oauth::crypto_error(PROVIDER, e))?;
                (session, r)
            }
            _ => self.start(job, &acct, bytes, meta, &cipher).await?,
        };
        let video_id = match record.remote_id.clone() {
            Some(id) => id,
            None => match self.send(&session, file, bytes, report).await {
                Ok(id) => id,
                Err(e) if e.code == codes::YOUTUBE_SESSION_LOST => {
                    // YouTube forgot the session before it finished: no video
                    // came of it, so the next try starts a new one.
                    record.status = TargetStatus::Failed;
                    self.save(&record).await?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            },
        };
        if record.remote_id.is_none() {
            record.remote_id = Some(video_id.clone());
            record.status = TargetStatus::Uploaded;
            self.save(&record).await?;
            info!(job_id = %job, video_id = %video_id, "YouTube has every byte");
        }
        self.wait_processed(job, &acct.id, &video_id).await?;
        record.status = TargetStatus::Published;
        self.save(&record).await?;
        report(100);
        Ok(published(video_id))
    }

    /// Starts a session and records it before any byte is sent.
    async fn start(
        &self,
        job: &JobId,
        acct: &AccountRecord,
        bytes: u64,
        meta: &VideoMeta,
        cipher: &TokenCipher,
    ) -> Result<(SecretString, TargetUpload), UploadError> {
        let privacy = acct.video_privacy.clone().unwrap_or_else(|| self.settings.privacy.clone());
        let video = video_resource(meta, &privacy, &self.settings);
        let session = self
            .tokens
            .with_token(&acct.id, |token| {
                let video = video.clone();
                async move { self.api.start_upload(&token, &video, bytes).await }
            })
            .await
            .map_err(|e| self.limit(e))?;
        let now = Utc::now();
        let record = TargetUpload {
            job_id: job.clone(),
            platform: PROVIDER.into(),
            account_id: acct.id.clone(),
            session: cipher.seal(session.expose_secret(), &context(job)),
            status: TargetStatus::Started,
            remote_id: None,
            created_at: now,
            updated_at: now,
        };
        self.save(&record).await?;
        info!(job_id = %job, account = %acct.id, privacy, "YouTube upload session started");
        Ok((session, record))
    }

    /// Sends the bytes YouTube does not hold yet, chunk by chunk; the video id at the end.
    async fn send(
        &self,
        session: &SecretString,
        file: &Path,
        total: u64,
        report: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<String, ProviderError> {
        let mut at = match self.api.query_upload(session, total).await? {
            Progress::Done(id) => return Ok(id),
            Progress::Incomplete(n) => n,
        };
        if at > 0 {
            info!(offset = at, total, "resuming the YouTube upload where YouTube says it stopped");
        }
        let mut f = tokio::fs::File::open(file).await.map_err(|e| ProviderError::io(PROVIDER, e))?;
        loop {
            let len = (total - at).min(self.settings.chunk_bytes);
            f.seek(std::io::SeekFrom::Start(at)).await.map_err(|e| ProviderError::io(PROVIDER, e))?;
            let mut chunk = vec![0; len as usize];
            f.read_exact(&mut chunk).await.map_err(|e| ProviderError::io(PROVIDER, e))?;
            match self.api.put_chunk(session, at, total, chunk).await? {
                Progress::Done(id) => return Ok(id),
                Progress::Incomplete(next) => {
                    if next <= at {
                        warn!(offset = at, next, "YouTube kept none of the chunk; sending it again");
                    }
                    at = next;
                    report((at * 90 / total.max(1)) as u8);
                }
            }
        }
    }

    /// Polls `videos.list` until YouTube has processed the video.
    async fn wait_processed(&self, job: &JobId, account: &str, video_id: &str) -> Result<(), UploadError> {
        let deadline = tokio::time::Instant::now() + self.settings.processing_timeout();
        loop {
            let state = self
                .tokens
                .with_token(account, |token| async move { self.api.processing(&token, video_id).await })
                .await?;
            match state {
                Processing::Done => return Ok(()),
                Processing::Refused(why) => {
                    return Err(ProviderError::new(
                        PROVIDER,
                        codes::YOUTUBE_REJECTED,
                        format!("YouTube did not publish video {video_id}: {why}"),
                        false,
                    )
                    .into());
                }
                Processing::Processing if tokio::time::Instant::now() >= deadline => {
                    return Err(ProviderError::new(
                        PROVIDER,
                        codes::YOUTUBE_UNAVAILABLE,
                        format!("YouTube was still processing video {video_id} after youtube.processing_timeout_secs"),
                        true,
                    )
                    .into());
                }
                Processing::Processing => {
                    tracing::debug!(job_id = %job, video_id, "YouTube is processing");
                    tokio::time::sleep(self.settings.processing_poll()).await;
                }
            }
        }
    }

    /// A quota or upload limit becomes a wait until it resets.
    fn limit(&self, e: ProviderError) -> UploadError {
        let until = match e.code {
            codes::YOUTUBE_QUOTA_EXCEEDED => next_reset(Utc::now(), self.settings.quota_reset_utc_hour),
            codes::YOUTUBE_UPLOAD_LIMIT => Utc::now() + ChronoDuration::hours(24),
            _ => return e.into(),
        };
        UploadError::Wait { code: e.code, message: e.message, until: Some(until) }
    }

    async fn save(&self, record: &TargetUpload) -> Result<(), ProviderError> {
        self.records.save_target_upload(record).await.map_err(|e| self.tokens.store_error(e))
    }
}

fn published(video_id: String) -> Published {
    Published { url: format!("https://youtube.com/shorts/{video_id}"), video_id }
}

/// Binds a sealed session URI to its job.
fn context(job: &JobId) -> String {
    format!("youtube:{job}:session")
}

/// The next time the quota resets: `hour` o'clock UTC, today or tomorrow.
pub fn next_reset(now: DateTime<Utc>, hour: u32) -> DateTime<Utc> {
    let today = now.date_naive().and_hms_opt(hour, 0, 0).map_or(now, |t| t.and_utc());
    if today > now { today } else { today + ChronoDuration::days(1) }
}

/// The `video` resource `videos.insert` gets: YouTube's limits applied
/// (title at most 100 characters, no `<` or `>`; description at most 5000
/// bytes; tags at most 500 characters in all).
pub fn video_resource(meta: &VideoMeta, privacy: &str, s: &YouTubeSettings) -> Value {
    let clean = |t: &str| t.replace(['<', '>'], "");
    let title: String = clean(&meta.title).chars().take(100).collect();
    let mut description = clean(&meta.description);
    while description.len() > 5000 {
        description.pop();
    }
    let mut tags = Vec::new();
    let mut used = 0;
    for tag in &meta.tags {
        let tag = clean(tag);
        let cost = tag.chars().count() + if tag.contains(' ') { 2 } else { 0 } + usize::from(!tags.is_empty());
        if used + cost > 500 {
            break;
        }
        used += cost;
        tags.push(tag);
    }
    json!({
        "snippet": {
            "title": if title.trim().is_empty() { "Short".to_string() } else { title },
            "description": description,
            "tags": tags,
            "categoryId": s.category_id,
        },
        "status": {
            "privacyStatus": privacy,
            "selfDeclaredMadeForKids": s.made_for_kids,
            "containsSyntheticMedia": s.synthetic_media,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn settings() -> YouTubeSettings {
        crate::settings::Settings::load_with_env(None, Some(vec![])).unwrap().youtube
    }

    #[test]
    fn the_resource_keeps_to_youtubes_limits() {
        let meta = VideoMeta {
            title: format!("<b>{}</b>", "t".repeat(150)),
            description: "é".repeat(3000),
            tags: vec!["a b".into(); 200],
        };
        let v = video_resource(&meta, "unlisted", &settings());
        let title = v["snippet"]["title"].as_str().unwrap();
        assert_eq!(title.chars().count(), 100);
        assert!(!title.contains('<'));
        assert!(v["snippet"]["description"].as_str().unwrap().len() <= 5000);
        let tags: Vec<&str> = v["snippet"]["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        let cost: usize = tags.iter().map(|t| t.len() + 2).sum::<usize>() + tags.len() - 1;
        assert!(cost <= 500 && !tags.is_empty(), "{cost}");
        assert_eq!(v["status"]["privacyStatus"], "unlisted");
        assert_eq!(v["status"]["containsSyntheticMedia"], true);
    }

    #[test]
    fn the_quota_resets_at_the_next_reset_hour() {
        let at = |h, m| Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).unwrap();
        assert_eq!(next_reset(at(3, 0), 8), at(8, 0));
        assert_eq!(next_reset(at(8, 0), 8), at(8, 0) + ChronoDuration::days(1));
        assert_eq!(next_reset(at(23, 30), 8), Utc.with_ymd_and_hms(2026, 12, 8, 8, 0, 0).unwrap());
    }
}
