//! Instagram Reels through the Instagram Platform (Instagram Login, host
//! `graph.instagram.com`): long-lived tokens (60 days) refreshed before they
//! run out, a REELS container made from a presigned link of the staged MP4
//! (Instagram fetches it), the container polled to FINISHED, then
//! `media_publish`, with `content_publishing_limit` checked first.
//!
//! Exactly one reel per job: the container id is recorded before
//! `media_publish` is ever called, and a redelivered publish goes on with
//! that container (publishing it only if Instagram does not say PUBLISHED).
//! A container alone is no post: an unpublished one expires after 24 h.

pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tracing::info;

pub use self::settings::InstagramSettings;
use crate::domain::{JobId, Platform, TargetResult};
use crate::error_code::{self as codes, ErrorCode};
use crate::pipeline::targets::{PublishTarget, StagedFile};
use crate::providers::http::transport_error;
use crate::providers::oauth::{Grantor, TokenGrant, TokenKeeper};
use crate::providers::youtube::VideoMeta;
use crate::providers::{ProviderError, UploadError};
use crate::store::objects::ObjectStore;
use crate::store::records::{AccountRecord, NewAccount, RecordStore, TargetStatus, TargetUpload};

pub const PROVIDER: &str = "instagram";

/// A caption's limit in characters.
const MAX_CAPTION: usize = 2200;

/// The Instagram Platform's endpoints, one method each.
#[derive(Clone)]
pub struct InstagramApi {
    http: reqwest::Client,
    app_id: String,
    app_secret: SecretString,
    auth_url: String,
    token_url: String,
    graph: String,
    scopes: String,
}

/// A container's `status_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    InProgress,
    Finished,
    Published,
    Expired,
    /// ERROR, with Instagram's free-text `status`.
    Error(String),
}

impl InstagramApi {
    pub fn new(s: &InstagramSettings) -> Self {
        Self {
            http: crate::providers::http::client(s.timeout()),
            app_id: s.app_id.clone(),
            app_secret: s.app_secret.clone().unwrap_or_else(|| SecretString::from(String::new())),
            auth_url: s.auth_url.clone(),
            token_url: s.token_url.clone(),
            graph: format!("{}/{}", s.graph_url.trim_end_matches('/'), s.api_version),
            scopes: s.scopes.clone(),
        }
    }

    fn graph_root(&self) -> &str {
        self.graph.rsplit_once('/').map_or(&self.graph, |(root, _)| root)
    }

    pub fn authorize_url(&self, state: &str, redirect_uri: &str) -> String {
        let mut url = reqwest::Url::parse(&self.auth_url).expect("validated in settings");
        url.query_pairs_mut()
            .append_pair("client_id", &self.app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &self.scopes)
            .append_pair("state", state);
        url.to_string()
    }

    /// The code for a short-lived token (1 h), then that for a long-lived one
    /// (60 days). The user id comes with the first.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<TokenGrant, ProviderError> {
        let res = self
            .http
            .post(&self.token_url)
            .form(&[
                ("client_id", self.app_id.as_str()),
                ("client_secret", self.app_secret.expose_secret()),
                ("grant_type", "authorization_code"),
                ("redirect_uri", redirect_uri),
                ("code", code),
            ])
            .send()
            .await
            .map_err(transport)?;
        let short = read(res).await?;
        let short_token = short["access_token"].as_str().ok_or_else(|| unexpected("no access_token"))?;
        let user_id = match &short["user_id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return Err(unexpected("no user_id")),
        };
        let res = self
            .http
            .get(format!("{}/access_token", self.graph_root()))
            .query(&[
                ("grant_type", "ig_exchange_token"),
                ("client_secret", self.app_secret.expose_secret()),
                ("access_token", short_token),
            ])
            .send()
            .await
            .map_err(transport)?;
        let mut grant = long_lived(read(res).await?)?;
        grant.open_id = user_id;
        grant.scope = short["permissions"].as_str().unwrap_or(&self.scopes).to_string();
        Ok(grant)
    }

    /// The account's username.
    pub async fn username(&self, token: &SecretString) -> Result<String, ProviderError> {
        let res = self
            .http
            .get(format!("{}/me", self.graph))
            .query(&[("fields", "user_id,username")])
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        Ok(read(res).await?["username"].as_str().unwrap_or_default().to_string())
    }

    /// Posts used and allowed in the rolling 24 h.
    pub async fn publishing_limit(&self, token: &SecretString, user: &str) -> Result<(u32, u32), ProviderError> {
        let res = self
            .http
            .get(format!("{}/{user}/content_publishing_limit", self.graph))
            .query(&[("fields", "config,quota_usage")])
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        let body = read(res).await?;
        let data = &body["data"][0];
        let used = data["quota_usage"].as_u64().unwrap_or(0) as u32;
        let total = data["config"]["quota_total"].as_u64().unwrap_or(u64::from(u32::MAX)) as u32;
        Ok((used, total))
    }

    /// A REELS container Instagram fills by fetching `video_url`.
    pub async fn create_container(
        &self,
        token: &SecretString,
        user: &str,
        video_url: &str,
        caption: &str,
        share_to_feed: bool,
    ) -> Result<String, ProviderError> {
        let res = self
            .http
            .post(format!("{}/{user}/media", self.graph))
            .bearer_auth(token.expose_secret())
            .form(&[
                ("media_type", "REELS"),
                ("video_url", video_url),
                ("caption", caption),
                ("share_to_feed", if share_to_feed { "true" } else { "false" }),
            ])
            .send()
            .await
            .map_err(transport)?;
        let body = read(res).await?;
        body["id"].as_str().map(str::to_string).ok_or_else(|| unexpected("the container answer has no id"))
    }

    pub async fn container(&self, token: &SecretString, id: &str) -> Result<ContainerState, ProviderError> {
        let res = self
            .http
            .get(format!("{}/{id}", self.graph))
            .query(&[("fields", "status_code,status")])
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        let body = read(res).await?;
        Ok(match body["status_code"].as_str().unwrap_or_default() {
            "FINISHED" => ContainerState::Finished,
            "PUBLISHED" => ContainerState::Published,
            "EXPIRED" => ContainerState::Expired,
            "ERROR" => ContainerState::Error(body["status"].as_str().unwrap_or("no status given").to_string()),
            _ => ContainerState::InProgress,
        })
    }

    /// Publishes a FINISHED container; the reel's media id.
    pub async fn publish(&self, token: &SecretString, user: &str, container: &str) -> Result<String, ProviderError> {
        let res = self
            .http
            .post(format!("{}/{user}/media_publish", self.graph))
            .bearer_auth(token.expose_secret())
            .form(&[("creation_id", container)])
            .send()
            .await
            .map_err(transport)?;
        let body = read(res).await?;
        body["id"].as_str().map(str::to_string).ok_or_else(|| unexpected("the publish answer has no id"))
    }
}

#[async_trait]
impl Grantor for InstagramApi {
    fn platform(&self) -> &'static str {
        PROVIDER
    }

    /// A long-lived token refreshes itself (`ig_refresh_token`).
    async fn refresh(&self, refresh: &SecretString) -> Result<TokenGrant, ProviderError> {
        let res = self
            .http
            .get(format!("{}/refresh_access_token", self.graph_root()))
            .query(&[("grant_type", "ig_refresh_token"), ("access_token", refresh.expose_secret())])
            .send()
            .await
            .map_err(transport)?;
        match read(res).await {
            Ok(body) => long_lived(body),
            // A token Instagram no longer takes cannot be refreshed: reconnect.
            Err(e) if e.code == codes::ACCESS_TOKEN_INVALID => Err(ProviderError::new(
                PROVIDER,
                codes::INVALID_GRANT,
                format!("Instagram refused the refresh: {}", e.message),
                false,
            )),
            Err(e) => Err(e),
        }
    }

    /// Instagram Login has no revoke call; the tokens are deleted here and
    /// the person removes the app in Instagram's settings.
    async fn revoke(&self, _access: &SecretString) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// A long-lived token answer: `access_token`, `expires_in` (about 60 days).
fn long_lived(body: Value) -> Result<TokenGrant, ProviderError> {
    let token = body["access_token"].as_str().ok_or_else(|| unexpected("no long-lived access_token"))?;
    let expires = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(60 * 86_400));
    Ok(TokenGrant {
        access_token: SecretString::from(token.to_string()),
        refresh_token: SecretString::from(token.to_string()),
        expires_in: expires,
        refresh_expires_in: expires,
        open_id: String::new(),
        scope: String::new(),
    })
}

async fn read(res: reqwest::Response) -> Result<Value, ProviderError> {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status.is_success() && body.get("error").is_none() { Ok(body) } else { Err(api_error(status, &body)) }
}

/// Maps the Graph API's error envelope by code and subcode (platforms spec §2).
pub fn api_error(status: StatusCode, body: &Value) -> ProviderError {
    let e = &body["error"];
    let code = e["code"].as_i64().unwrap_or(0);
    let sub = e["error_subcode"].as_i64().unwrap_or(0);
    let text = e["error_user_msg"].as_str().or(e["message"].as_str()).unwrap_or("no message");
    let (ours, retryable): (ErrorCode, bool) = match (code, sub) {
        (9, 2_207_042) => (codes::INSTAGRAM_PUBLISH_LIMIT, true),
        (4, 2_207_051) => (codes::INSTAGRAM_RESTRICTED, false),
        (9004, _) | (_, 2_207_052) => (codes::INSTAGRAM_MEDIA_UNREACHABLE, false),
        (352, _) | (36003, _) | (36000, _) | (1, 2_207_057) => (codes::INSTAGRAM_MEDIA_REFUSED, false),
        (190, _) | (102, _) => (codes::ACCESS_TOKEN_INVALID, true),
        (10, _) | (200..=299, _) => (codes::INSTAGRAM_RESTRICTED, false),
        (-2, 2_207_020) => (codes::INSTAGRAM_CONTAINER_FAILED, true),
        (9007, 2_207_027) | (4 | 17 | 32 | 613, _) | (1 | 2 | -1 | -2, _) => (codes::INSTAGRAM_UNAVAILABLE, true),
        _ if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
            (codes::INSTAGRAM_UNAVAILABLE, true)
        }
        _ => (codes::INSTAGRAM_CONTAINER_FAILED, false),
    };
    ProviderError::new(PROVIDER, ours, format!("Instagram error {code}/{sub}: {text}"), retryable)
}

fn transport(e: reqwest::Error) -> ProviderError {
    transport_error(PROVIDER, e)
}

fn unexpected(what: &str) -> ProviderError {
    ProviderError::new(PROVIDER, codes::UNEXPECTED_RESPONSE, format!("unexpected Instagram answer: {what}"), true)
}

/// Instagram for one process.
pub struct Instagram {
    pub api: InstagramApi,
    pub tokens: TokenKeeper,
    records: Arc<dyn RecordStore>,
    objects: Arc<dyn ObjectStore>,
    settings: InstagramSettings,
    presign_ttl: Duration,
}

impl Instagram {
    pub fn from_settings(
        s: &crate::settings::Settings,
        records: Arc<dyn RecordStore>,
        objects: Arc<dyn ObjectStore>,
    ) -> Option<Self> {
        let i = &s.instagram;
        if !i.enabled() {
            return None;
        }
        let api = InstagramApi::new(i);
        let tokens = TokenKeeper::from_settings(s, Arc::new(api.clone()), records.clone(), i.refresh_margin());
        Some(Self { api, tokens, records, objects, settings: i.clone(), presign_ttl: s.storage.presign_ttl() })
    }

    pub async fn connect(&self, code: &str, redirect_uri: &str) -> Result<AccountRecord, ProviderError> {
        self.tokens.cipher()?;
        let grant = self.api.exchange_code(code, redirect_uri).await?;
        let username = self.api.username(&grant.access_token).await?;
        let open_id = format!("{PROVIDER}:{}", grant.open_id);
        let account = NewAccount {
            platform: PROVIDER.into(),
            tokens: self.tokens.seal(&open_id, &grant)?,
            open_id,
            display_name: username,
            avatar_url: None,
            scopes: grant.scope.clone(),
        };
        let stored = self.records.upsert_account(&account).await.map_err(|e| self.tokens.store_error(e))?;
        info!(account = %stored.id, "Instagram account connected");
        Ok(stored)
    }

    async fn save(&self, record: &TargetUpload) -> Result<(), ProviderError> {
        self.records.save_target_upload(record).await.map_err(|e| self.tokens.store_error(e))
    }

    /// Waits for the account's posts in 24 h to fall under the limit.
    async fn check_limit(&self, account: &str, user: &str) -> Result<(), UploadError> {
        let (used, total) =
            self.tokens.with_token(account, |t| async move { self.api.publishing_limit(&t, user).await }).await?;
        let cap = total.min(self.settings.posts_per_day);
        if used >= cap {
            return Err(UploadError::Wait {
                code: codes::INSTAGRAM_PUBLISH_LIMIT,
                message: format!("the Instagram account published {used} of its {cap} posts in the last 24 h"),
                until: Some(Utc::now() + chrono::Duration::seconds(self.settings.limit_wait_secs as i64)),
            });
        }
        Ok(())
    }

    async fn new_container(
        &self,
        job: &JobId,
        acct: &AccountRecord,
        user: &str,
        video: &StagedFile,
        caption: &str,
    ) -> Result<TargetUpload, UploadError> {
        let url = self
            .objects
            .presigned_get(&video.key, self.presign_ttl)
            .await
            .map_err(|e| ProviderError::new(PROVIDER, codes::OBJECT_STORE_ERROR, e.to_string(), true))?
            .ok_or_else(|| {
                ProviderError::new(
                    PROVIDER,
                    codes::INSTAGRAM_MEDIA_UNREACHABLE,
                    "Instagram fetches the video from a link, and the local object store gives none; store videos \
                     in S3 or R2 (storage.kind)",
                    false,
                )
            })?;
        let share = self.settings.share_to_feed;
        let container = self
            .tokens
            .with_token(&acct.id, |t| {
                let url = url.clone();
                async move { self.api.create_container(&t, user, &url, caption, share).await }
            })
            .await?;
        let now = Utc::now();
        let record = TargetUpload {
            job_id: job.clone(),
            platform: PROVIDER.into(),
            account_id: acct.id.clone(),
            session: container,
            status: TargetStatus::Started,
            remote_id: None,
            created_at: now,
            updated_at: now,
        };
        self.save(&record).await?;
        info!(job_id = %job, account = %acct.id, container = %record.session, "Instagram container created");
        Ok(record)
    }
}

fn reel(account: &str, media_id: Option<String>) -> TargetResult {
    TargetResult {
        platform: Platform::Instagram,
        account: account.to_string(),
        state: "published".into(),
        url: None,
        remote_id: media_id,
        post_id: None,
    }
}

/// The caption: the title, then the description, within 2200 characters.
pub fn caption(meta: &VideoMeta) -> String {
    let text = if meta.description.is_empty() {
        meta.title.clone()
    } else {
        format!("{}\n\n{}", meta.title, meta.description)
    };
    text.chars().take(MAX_CAPTION).collect()
}

#[async_trait]
impl PublishTarget for Instagram {
    fn platform(&self) -> Platform {
        Platform::Instagram
    }

    async fn deliver(
        &self,
        job: &JobId,
        account: &str,
        video: &StagedFile,
        meta: &VideoMeta,
        report: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<TargetResult, UploadError> {
        let acct = self.tokens.load(account).await?;
        let user = acct.open_id.strip_prefix("instagram:").unwrap_or(&acct.open_id).to_string();
        let kept = self.records.target_upload(job, PROVIDER).await.map_err(|e| self.tokens.store_error(e))?;
        let mut record = match kept {
            Some(r) if r.status == TargetStatus::Published => return Ok(reel(account, r.remote_id)),
            Some(r) if r.status != TargetStatus::Failed && r.account_id == acct.id => r,
            _ => {
                self.check_limit(&acct.id, &user).await?;
                self.new_container(job, &acct, &user, video, &caption(meta)).await?
            }
        };
        report(30);
        let deadline = tokio::time::Instant::now() + self.settings.container_timeout();
        loop {
            let id = record.session.clone();
            let state = self.tokens.with_token(&acct.id, |t| {
                let id = id.clone();
                async move { self.api.container(&t, &id).await }
            });
            match state.await? {
                ContainerState::Finished => break,
                ContainerState::Published => {
                    // Published by an earlier delivery whose answer was lost.
                    record.status = TargetStatus::Published;
                    self.save(&record).await?;
                    return Ok(reel(account, record.remote_id));
                }
                done @ (ContainerState::Expired | ContainerState::Error(_)) => {
                    let why = match done {
                        ContainerState::Error(status) => status,
                        _ => "the container expired before it was published".into(),
                    };
                    record.status = TargetStatus::Failed;
                    self.save(&record).await?;
                    return Err(ProviderError::new(
                        PROVIDER,
                        codes::INSTAGRAM_CONTAINER_FAILED,
                        format!("Instagram could not make the reel from the video: {why}"),
                        false,
                    )
                    .into());
                }
                ContainerState::InProgress if tokio::time::Instant::now() >= deadline => {
                    return Err(ProviderError::new(
                        PROVIDER,
                        codes::INSTAGRAM_UNAVAILABLE,
                        "Instagram was still processing the video after instagram.container_timeout_secs",
                        true,
                    )
                    .into());
                }
                ContainerState::InProgress => tokio::time::sleep(self.settings.container_poll()).await,
            }
        }
        report(70);
        self.check_limit(&acct.id, &user).await?;
        let container = record.session.clone();
        let media = self
            .tokens
            .with_token(&acct.id, |t| {
                let (user, container) = (user.clone(), container.clone());
                async move { self.api.publish(&t, &user, &container).await }
            })
            .await
            .map_err(|e| match e.code {
                codes::INSTAGRAM_PUBLISH_LIMIT => UploadError::Wait {
                    code: e.code,
                    message: e.message,
                    until: Some(Utc::now() + chrono::Duration::seconds(self.settings.limit_wait_secs as i64)),
                },
                _ => e.into(),
            })?;
        record.status = TargetStatus::Published;
        record.remote_id = Some(media.clone());
        self.save(&record).await?;
        info!(job_id = %job, media_id = %media, "Instagram reel published");
        report(100);
        Ok(reel(account, Some(media)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(code: i64, sub: i64) -> ProviderError {
        api_error(StatusCode::BAD_REQUEST, &json!({"error": {"message": "m", "code": code, "error_subcode": sub}}))
    }

    #[test]
    fn graph_errors_map_by_code_and_subcode() {
        assert_eq!(err(9, 2_207_042).code, codes::INSTAGRAM_PUBLISH_LIMIT);
        assert_eq!(err(9004, 2_207_052).code, codes::INSTAGRAM_MEDIA_UNREACHABLE);
        assert_eq!(err(36003, 2_207_009).code, codes::INSTAGRAM_MEDIA_REFUSED);
        assert_eq!(err(190, 0).code, codes::ACCESS_TOKEN_INVALID);
        assert_eq!(err(4, 2_207_051).code, codes::INSTAGRAM_RESTRICTED);
        let busy = err(9007, 2_207_027);
        assert_eq!((busy.code, busy.retryable), (codes::INSTAGRAM_UNAVAILABLE, true));
    }

    #[test]
    fn the_caption_keeps_to_2200_characters() {
        let meta = VideoMeta { title: "T".into(), description: "é".repeat(3000), tags: vec![] };
        assert_eq!(caption(&meta).chars().count(), 2200);
    }
}
