//! YouTube Data API v3 and Google's OAuth endpoints, one method each, and
//! how their answers map to [`ProviderError`]s (platforms spec section 1).
//!
//! Tokens and the resumable session URI are secrets (whoever holds the URI
//! can upload to the channel): they travel in [`SecretString`]s and no
//! message here includes them.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::settings::YouTubeSettings;
use crate::error_code::{self as codes, ErrorCode};
use crate::providers::ProviderError;
use crate::providers::http::transport_error;
use crate::providers::oauth::{Grantor, TokenGrant};

pub const PROVIDER: &str = "youtube";

/// Google issues refresh tokens without an expiry; they last until revoked
/// (or, for a project in testing, 7 days). Kept as a year.
const REFRESH_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The app's identity and where Google lives.
#[derive(Clone)]
pub struct YouTubeApi {
    http: reqwest::Client,
    client_id: String,
    client_secret: SecretString,
    auth_url: String,
    token_url: String,
    revoke_url: String,
    api_url: String,
    upload_url: String,
    scopes: String,
}

/// Where a resumable upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// YouTube holds the bytes before this offset (`Range: bytes=0-N` → N+1;
    /// no `Range` → 0).
    Incomplete(u64),
    /// The upload is complete: the video's id.
    Done(String),
}

/// The channel a token belongs to.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: String,
    pub title: String,
}

/// What `videos.list?part=status,processingDetails` says of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processing {
    Processing,
    Done,
    /// Failed or rejected, with YouTube's reason.
    Refused(String),
}

impl YouTubeApi {
    pub fn new(s: &YouTubeSettings) -> Self {
        Self {
            http: crate::providers::http::client(s.timeout()),
            client_id: s.client_id.clone(),
            client_secret: s.client_secret.clone().unwrap_or_else(|| SecretString::from(String::new())),
            auth_url: s.auth_url.clone(),
            token_url: s.token_url.clone(),
            revoke_url: s.revoke_url.clone(),
            api_url: s.api_url.trim_end_matches('/').to_string(),
            upload_url: s.upload_url.trim_end_matches('/').to_string(),
            scopes: s.scopes.clone(),
        }
    }

    /// The consent page: offline access (a refresh token), consent asked
    /// every time (so a reconnect gets a new refresh token), and PKCE S256
    /// where the caller keeps a verifier (the desktop flow; the web flow
    /// authenticates with the client secret).
    pub fn authorize_url(&self, state: &str, redirect_uri: &str, challenge: Option<&str>) -> String {
        let mut url = reqwest::Url::parse(&self.auth_url).expect("validated in settings");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &self.scopes)
            .append_pair("access_type", "offline")
            .append_pair("prompt", "consent")
            .append_pair("state", state);
        if let Some(challenge) = challenge {
            url.query_pairs_mut().append_pair("code_challenge", challenge).append_pair("code_challenge_method", "S256");
        }
        url.to_string()
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<TokenGrant, ProviderError> {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        self.token(&form).await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenGrant, ProviderError> {
        #[derive(Deserialize)]
        struct Grant {
            access_token: String,
            #[serde(default)]
            refresh_token: Option<String>,
            expires_in: u64,
            #[serde(default)]
            scope: String,
        }
        let mut form: Vec<(&str, &str)> = form.to_vec();
        form.push(("client_id", &self.client_id));
        form.push(("client_secret", self.client_secret.expose_secret()));
        let res = self.http.post(&self.token_url).form(&form).send().await.map_err(transport)?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(oauth_error(status, &body));
        }
        let g: Grant = serde_json::from_value(body).map_err(|e| unexpected(format!("token answer: {e}")))?;
        // A refresh answers without a new refresh token: the old one stays.
        let refresh =
            g.refresh_token.or_else(|| form.iter().find(|(k, _)| *k == "refresh_token").map(|(_, v)| v.to_string()));
        let Some(refresh) = refresh else {
            return Err(ProviderError::new(
                PROVIDER,
                codes::INVALID_GRANT,
                "Google gave no refresh token (the consent lacked offline access); connect the account again",
                false,
            ));
        };
        Ok(TokenGrant {
            access_token: SecretString::from(g.access_token),
            refresh_token: SecretString::from(refresh),
            expires_in: Duration::from_secs(g.expires_in),
            refresh_expires_in: REFRESH_LIFETIME,
            open_id: String::new(),
            scope: g.scope,
        })
    }

    /// The channel of the token's user (`channels.list?mine=true`).
    pub async fn channel(&self, token: &SecretString) -> Result<Channel, ProviderError> {
        let res = self
            .http
            .get(format!("{}/youtube/v3/channels", self.api_url))
            .query(&[("part", "snippet"), ("mine", "true")])
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        let body = read(res).await?;
        let item = body["items"].get(0).ok_or_else(|| {
            ProviderError::new(
                PROVIDER,
                codes::ACCOUNT_UNKNOWN,
                "this Google account has no YouTube channel; create one, then connect again",
                false,
            )
        })?;
        Ok(Channel {
            id: item["id"].as_str().unwrap_or_default().to_string(),
            title: item["snippet"]["title"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Step 1 of `videos.insert`: the resumable session's URI.
    pub async fn start_upload(
        &self,
        token: &SecretString,
        video: &Value,
        bytes: u64,
    ) -> Result<SecretString, ProviderError> {
        let res = self
            .http
            .post(format!("{}/upload/youtube/v3/videos", self.upload_url))
            .query(&[("uploadType", "resumable"), ("part", "snippet,status")])
            .bearer_auth(token.expose_secret())
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .header("X-Upload-Content-Length", bytes)
            .header("X-Upload-Content-Type", "video/mp4")
            .json(video)
            .send()
            .await
            .map_err(transport)?;
        if !res.status().is_success() {
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            return Err(api_error(status, &body));
        }
        let location = res.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        location
            .map(SecretString::from)
            .ok_or_else(|| unexpected("the resumable upload answer has no Location header".into()))
    }

    /// Sends `chunk`, the bytes from `start` of a `total`-byte file.
    pub async fn put_chunk(
        &self,
        session: &SecretString,
        start: u64,
        total: u64,
        chunk: Vec<u8>,
    ) -> Result<Progress, ProviderError> {
        let end = start + chunk.len() as u64 - 1;
        let res = self
            .http
            .put(session.expose_secret())
            .header(CONTENT_TYPE, "video/mp4")
            .header(CONTENT_LENGTH, chunk.len())
            .header(CONTENT_RANGE, format!("bytes {start}-{end}/{total}"))
            .body(chunk)
            .send()
            .await
            .map_err(transport)?;
        progress(res).await
    }

    /// Asks how much of the upload YouTube holds (an empty PUT with
    /// `Content-Range: bytes */TOTAL`).
    pub async fn query_upload(&self, session: &SecretString, total: u64) -> Result<Progress, ProviderError> {
        let res = self
            .http
            .put(session.expose_secret())
            .header(CONTENT_LENGTH, 0)
            .header(CONTENT_RANGE, format!("bytes */{total}"))
            .send()
            .await
            .map_err(transport)?;
        progress(res).await
    }

    /// Whether YouTube has finished processing the video.
    pub async fn processing(&self, token: &SecretString, id: &str) -> Result<Processing, ProviderError> {
        let res = self
            .http
            .get(format!("{}/youtube/v3/videos", self.api_url))
            .query(&[("part", "status,processingDetails"), ("id", id)])
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        let body = read(res).await?;
        let Some(video) = body["items"].get(0) else {
            return Err(ProviderError::new(
                PROVIDER,
                codes::YOUTUBE_REJECTED,
                format!("YouTube no longer lists video {id} (deleted?)"),
                false,
            ));
        };
        Ok(processing_of(video))
    }
}

/// Reads `videos.list`'s status of one video.
pub fn processing_of(video: &Value) -> Processing {
    let status = &video["status"];
    match status["uploadStatus"].as_str().unwrap_or("uploaded") {
        "failed" => Processing::Refused(format!(
            "processing failed: {}",
            status["failureReason"].as_str().unwrap_or("no reason given")
        )),
        "rejected" => Processing::Refused(format!(
            "rejected: {}",
            status["rejectionReason"].as_str().unwrap_or("no reason given")
        )),
        "deleted" => Processing::Refused("deleted".into()),
        "processed" => Processing::Done,
        _ => match video["processingDetails"]["processingStatus"].as_str() {
            Some("succeeded") => Processing::Done,
            Some(s @ ("failed" | "terminated")) => Processing::Refused(format!("processing {s}")),
            _ => Processing::Processing,
        },
    }
}

#[async_trait]
impl Grantor for YouTubeApi {
    fn platform(&self) -> &'static str {
        PROVIDER
    }

    async fn refresh(&self, refresh: &SecretString) -> Result<TokenGrant, ProviderError> {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh.expose_secret())]).await
    }

    async fn revoke(&self, access: &SecretString) -> Result<(), ProviderError> {
        let res = self
            .http
            .post(&self.revoke_url)
            .form(&[("token", access.expose_secret())])
            .send()
            .await
            .map_err(transport)?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else {
            let body: Value = res.json().await.unwrap_or(Value::Null);
            Err(oauth_error(status, &body))
        }
    }
}

/// A PUT's answer: 308 (or 200 with `X-HTTP-Status-Code-Override: 308`)
/// and a `Range`, or 200/201 with the video.
async fn progress(res: reqwest::Response) -> Result<Progress, ProviderError> {
    let status = res.status();
    let overridden = res.headers().get("X-HTTP-Status-Code-Override").is_some_and(|v| v.as_bytes() == b"308");
    if status == StatusCode::PERMANENT_REDIRECT || overridden {
        let range = res.headers().get(RANGE).and_then(|v| v.to_str().ok());
        return Ok(Progress::Incomplete(next_offset(range)?));
    }
    let body = read(res).await?;
    body["id"]
        .as_str()
        .map(|id| Progress::Done(id.to_string()))
        .ok_or_else(|| unexpected("the finished upload's answer names no video id".into()))
}

/// The offset to go on from, from a 308's `Range: bytes=0-N` (absent when
/// YouTube holds nothing).
pub fn next_offset(range: Option<&str>) -> Result<u64, ProviderError> {
    let Some(range) = range else { return Ok(0) };
    range
        .strip_prefix("bytes=0-")
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| n + 1)
        .ok_or_else(|| unexpected(format!("a 308 with an unreadable Range `{range}`")))
}

async fn read(res: reqwest::Response) -> Result<Value, ProviderError> {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status.is_success() { Ok(body) } else { Err(api_error(status, &body)) }
}

/// Maps YouTube's error envelope
/// (`{"error":{"code","message","errors":[{"reason","domain"}]}}`).
pub fn api_error(status: StatusCode, body: &Value) -> ProviderError {
    let reason = body["error"]["errors"][0]["reason"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    let (code, retryable): (ErrorCode, bool) = match (status.as_u16(), reason) {
        (_, "quotaExceeded" | "dailyLimitExceeded") => (codes::YOUTUBE_QUOTA_EXCEEDED, true),
        (_, "uploadLimitExceeded") => (codes::YOUTUBE_UPLOAD_LIMIT, true),
        (401, _) => (codes::ACCESS_TOKEN_INVALID, true),
        (404 | 410, _) => (codes::YOUTUBE_SESSION_LOST, true),
        (429, _) | (500..=599, _) => (codes::YOUTUBE_UNAVAILABLE, true),
        (_, "rateLimitExceeded" | "userRateLimitExceeded") => (codes::YOUTUBE_UNAVAILABLE, true),
        _ => (codes::YOUTUBE_REFUSED, false),
    };
    ProviderError::new(PROVIDER, code, format!("YouTube answered {status} {reason}: {message}"), retryable)
}

/// Google's OAuth errors (`{"error": "invalid_grant", "error_description"}`).
fn oauth_error(status: StatusCode, body: &Value) -> ProviderError {
    let error = body["error"].as_str().unwrap_or_default();
    let description = body["error_description"].as_str().unwrap_or("no description");
    let (code, retryable) = match error {
        "invalid_grant" => (codes::INVALID_GRANT, false),
        "invalid_client" | "unauthorized_client" => (codes::INVALID_CLIENT, false),
        _ if status.is_server_error() => (codes::YOUTUBE_UNAVAILABLE, true),
        _ => (codes::OAUTH_ERROR, false),
    };
    ProviderError::new(PROVIDER, code, format!("Google refused the token request ({error}): {description}"), retryable)
}

fn transport(e: reqwest::Error) -> ProviderError {
    transport_error(PROVIDER, e)
}

fn unexpected(message: String) -> ProviderError {
    ProviderError::new(PROVIDER, codes::UNEXPECTED_RESPONSE, message, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_308s_range_says_where_to_go_on() {
        assert_eq!(next_offset(None).unwrap(), 0, "no Range: YouTube holds nothing");
        assert_eq!(next_offset(Some("bytes=0-262143")).unwrap(), 262_144);
        assert!(next_offset(Some("bytes=5-9")).is_err());
    }

    #[test]
    fn quota_and_upload_limits_wait_while_bad_metadata_fails() {
        let envelope = |reason: &str| json!({"error": {"code": 403, "message": "m", "errors": [{"reason": reason}]}});
        assert_eq!(api_error(StatusCode::FORBIDDEN, &envelope("quotaExceeded")).code, codes::YOUTUBE_QUOTA_EXCEEDED);
        assert_eq!(
            api_error(StatusCode::BAD_REQUEST, &envelope("uploadLimitExceeded")).code,
            codes::YOUTUBE_UPLOAD_LIMIT
        );
        let bad = api_error(StatusCode::BAD_REQUEST, &envelope("invalidTitle"));
        assert_eq!((bad.code, bad.retryable), (codes::YOUTUBE_REFUSED, false));
        assert!(api_error(StatusCode::SERVICE_UNAVAILABLE, &Value::Null).retryable);
    }

    #[test]
    fn processing_ends_processed_or_refused_with_the_reason() {
        assert_eq!(processing_of(&json!({"status": {"uploadStatus": "uploaded"}})), Processing::Processing);
        assert_eq!(processing_of(&json!({"status": {"uploadStatus": "processed"}})), Processing::Done);
        assert_eq!(
            processing_of(&json!({"status": {"uploadStatus": "rejected", "rejectionReason": "duplicate"}})),
            Processing::Refused("rejected: duplicate".into())
        );
    }
}
