//! TikTok's HTTP endpoints, one method each, and how their answers map to
//! [`ProviderError`]s (spec sections 1–3).
//!
//! Two error shapes exist: the Content Posting and Display APIs wrap every
//! answer in `{"data", "error": {"code", "message", "log_id"}}` and may put an
//! error in an HTTP 200; the OAuth endpoints answer flat JSON with an `error`
//! key, also possibly on HTTP 200. Both are read from the body, whatever the
//! status says. Tokens and upload URLs are secrets: they travel in
//! [`SecretString`]s and no message here includes them.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use super::api_errors::api_error;
use super::api_errors::{envelope, oauth_error};
use super::chunks::ChunkPlan;
use crate::error_code as codes;
use crate::providers::ProviderError;
use crate::providers::http::transport_error;

pub(crate) const PROVIDER: &str = "tiktok";

/// The app's identity and where TikTok lives.
#[derive(Clone)]
pub struct TikTokApi {
    pub(super) http: reqwest::Client,
    authorize_url: String,
    pub(super) api_url: String,
    client_key: String,
    client_secret: SecretString,
    scopes: String,
}

pub use crate::providers::oauth::TokenGrant;

/// The creator, as /v2/user/info/ tells.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Profile {
    pub open_id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// A started inbox upload. The URL carries the upload token: a secret.
#[derive(Debug)]
pub struct Started {
    pub publish_id: String,
    pub upload_url: SecretString,
}

/// What TikTok said to one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkAnswer {
    /// 206: accepted, more expected.
    Accepted,
    /// 201: every byte is there.
    Complete,
    /// 416: the range did not follow TikTok's progress; it has this many bytes.
    OutOfOrder { received: Option<u64> },
    /// 403: the upload URL expired (an hour after init); start again.
    Expired,
}

/// What creator_info/query says about the creator behind a token (spec
/// §1.8): who posts, what a Direct Post may choose, and how long a video the
/// creator may post. Kept on the account row for a few minutes, so it is
/// (de)serialisable; the avatar URL is left out (it expires in 2 h and is not
/// needed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatorInfo {
    #[serde(default)]
    pub creator_username: String,
    #[serde(default)]
    pub creator_nickname: String,
    /// The `privacy_level` values a Direct Post of this creator may use.
    #[serde(default)]
    pub privacy_level_options: Vec<String>,
    #[serde(default)]
    pub comment_disabled: bool,
    #[serde(default)]
    pub duet_disabled: bool,
    #[serde(default)]
    pub stitch_disabled: bool,
    /// The longest video the creator may post, in seconds; None when TikTok
    /// leaves it out, and then the limit is unknown, not zero.
    #[serde(default)]
    pub max_video_post_duration_sec: Option<u32>,
}

impl CreatorInfo {
    /// What a Direct Post of this creator may choose.
    pub fn choices(&self) -> crate::domain::CreatorChoices {
        crate::domain::CreatorChoices {
            privacy_level_options: self.privacy_level_options.clone(),
            comment_disabled: self.comment_disabled,
            duet_disabled: self.duet_disabled,
            stitch_disabled: self.stitch_disabled,
        }
    }

    /// Reads the envelope's `data`. Only a field of the wrong type is an
    /// error; missing ones take their defaults, as TikTok may add or drop
    /// fields without notice.
    pub fn from_data(data: Value) -> Result<Self, ProviderError> {
        serde_json::from_value(data).map_err(|e| {
            ProviderError::new(PROVIDER, codes::UNEXPECTED_RESPONSE, format!("creator info not understood: {e}"), true)
        })
    }
}

/// What status/fetch says about a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishStatus {
    Uploading {
        uploaded_bytes: Option<u64>,
    },
    /// The draft is in the creator's inbox (`SEND_TO_USER_INBOX`).
    InInbox,
    /// Posted (`PUBLISH_COMPLETE`): a Direct Post is live, or the creator
    /// posted an inbox draft. `post_ids` holds the public post ids once
    /// TikTok gives them (after moderation, and never for a private post).
    Published {
        post_ids: Vec<String>,
    },
    Failed {
        reason: String,
    },
}

impl TikTokApi {
    pub fn new(
        http: reqwest::Client,
        authorize_url: &str,
        api_url: &str,
        client_key: &str,
        client_secret: SecretString,
        scopes: &str,
    ) -> Self {
        Self {
            http,
            authorize_url: authorize_url.to_string(),
            api_url: api_url.trim_end_matches('/').to_string(),
            client_key: client_key.to_string(),
            client_secret,
            scopes: scopes.to_string(),
        }
    }

    /// The consent page URL. `challenge` (desktop PKCE) is TikTok's lowercase
    /// hex SHA-256 of the verifier, sent with method S256.
    pub fn authorize_url(&self, state: &str, redirect_uri: &str, challenge: Option<&str>) -> String {
        let mut url = reqwest::Url::parse(&self.authorize_url).expect("validated in settings");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_key", &self.client_key)
                .append_pair("scope", &self.scopes)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state)
                .append_pair("response_type", "code");
            if let Some(challenge) = challenge {
                q.append_pair("code_challenge", challenge).append_pair("code_challenge_method", "S256");
            }
        }
        url.to_string()
    }

    /// Exchanges an authorization code (and the PKCE verifier of the desktop flow).
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<TokenGrant, ProviderError> {
        let mut form = vec![
            ("client_key", self.client_key.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        self.token(&form).await
    }

    /// Trades a refresh token for new tokens; TikTok may rotate the refresh token.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenGrant, ProviderError> {
        self.token(&[
            ("client_key", self.client_key.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ])
        .await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenGrant, ProviderError> {
        #[derive(Deserialize)]
        struct Grant {
            access_token: String,
            refresh_token: String,
            expires_in: u64,
            #[serde(default)]
            refresh_expires_in: u64,
            open_id: String,
            #[serde(default)]
            scope: String,
        }
        let res = self
            .http
            .post(format!("{}/v2/oauth/token/", self.api_url))
            .header("Cache-Control", "no-cache")
            .form(form)
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        let status = res.status();
        let body: Value = res.json().await.map_err(|e| transport_error(PROVIDER, e))?;
        if let Some(err) = oauth_error(status, &body) {
            return Err(err);
        }
        let g: Grant = serde_json::from_value(body).map_err(|e| {
            ProviderError::new(PROVIDER, codes::UNEXPECTED_RESPONSE, format!("token answer not understood: {e}"), true)
        })?;
        Ok(TokenGrant {
            access_token: g.access_token.into(),
            refresh_token: g.refresh_token.into(),
            expires_in: Duration::from_secs(g.expires_in),
            refresh_expires_in: Duration::from_secs(if g.refresh_expires_in == 0 {
                365 * 86_400
            } else {
                g.refresh_expires_in
            }),
            open_id: g.open_id,
            scope: g.scope,
        })
    }

    /// Revokes the access token (and with it the grant) at TikTok.
    pub async fn revoke(&self, access_token: &SecretString) -> Result<(), ProviderError> {
        let res = self
            .http
            .post(format!("{}/v2/oauth/revoke/", self.api_url))
            .form(&[
                ("client_key", self.client_key.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
                ("token", access_token.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        match oauth_error(status, &body) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub async fn user_info(&self, access_token: &SecretString) -> Result<Profile, ProviderError> {
        let res = self
            .http
            .get(format!("{}/v2/user/info/", self.api_url))
            .query(&[("fields", "open_id,union_id,avatar_url,display_name")])
            .bearer_auth(access_token.expose_secret())
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        let data = envelope(res).await?;
        serde_json::from_value(data.get("user").cloned().unwrap_or_default()).map_err(|e| {
            ProviderError::new(PROVIDER, codes::UNEXPECTED_RESPONSE, format!("user info not understood: {e}"), true)
        })
    }

    /// `creator_info/query`: a POST without a body (scope `video.publish`,
    /// 20 calls per minute per token). TikTok may refuse on HTTP 200 with
    /// `spam_risk_too_many_posts` and the like: the envelope decides.
    pub async fn creator_info(&self, access_token: &SecretString) -> Result<CreatorInfo, ProviderError> {
        let res = self
            .http
            .post(format!("{}/v2/post/publish/creator_info/query/", self.api_url))
            .bearer_auth(access_token.expose_secret())
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        CreatorInfo::from_data(envelope(res).await?)
    }

    /// `inbox/video/init` with FILE_UPLOAD and `plan`'s sizes.
    pub async fn init_inbox(&self, access_token: &SecretString, plan: &ChunkPlan) -> Result<Started, ProviderError> {
        let body = json!({ "source_info": source_info(plan) });
        self.init("/v2/post/publish/inbox/video/init/", access_token, &body).await
    }

    /// Starts a Direct Post (`video/init`, scope `video.publish`) with the
    /// approved `post_info`; the upload then goes as for an inbox draft.
    pub async fn init_direct(
        &self,
        access_token: &SecretString,
        plan: &ChunkPlan,
        post_info: &Value,
    ) -> Result<Started, ProviderError> {
        let body = json!({ "post_info": post_info, "source_info": source_info(plan) });
        self.init("/v2/post/publish/video/init/", access_token, &body).await
    }

    /// Starts a photo post (`content/init`): TikTok pulls `urls` (under a URL
    /// prefix verified for the app) itself. `post_info` is None for an inbox
    /// draft (`MEDIA_UPLOAD`), the approved choices for a Direct Post. The
    /// answer has no upload URL: nothing is sent.
    pub async fn init_photos(
        &self,
        access_token: &SecretString,
        urls: &[String],
        post_info: &Value,
        direct: bool,
    ) -> Result<Started, ProviderError> {
        let body = json!({
            "media_type": "PHOTO",
            "post_mode": if direct { "DIRECT_POST" } else { "MEDIA_UPLOAD" },
            "post_info": post_info,
            "source_info": { "source": "PULL_FROM_URL", "photo_images": urls, "photo_cover_index": 0 },
        });
        let data = self.post_json("/v2/post/publish/content/init/", access_token, &body).await?;
        match data.get("publish_id").and_then(Value::as_str) {
            Some(id) => Ok(Started { publish_id: id.to_string(), upload_url: String::new().into() }),
            None => Err(ProviderError::new(
                PROVIDER,
                codes::UNEXPECTED_RESPONSE,
                "content/init answer lacks publish_id",
                true,
            )),
        }
    }

    async fn init(&self, path: &str, access_token: &SecretString, body: &Value) -> Result<Started, ProviderError> {
        let data = self.post_json(path, access_token, body).await?;
        let field = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
        match (field("publish_id"), field("upload_url")) {
            (Some(publish_id), Some(url)) => Ok(Started { publish_id, upload_url: url.into() }),
            _ => Err(ProviderError::new(
                PROVIDER,
                codes::UNEXPECTED_RESPONSE,
                "init answer lacks publish_id/upload_url",
                true,
            )),
        }
    }

    /// PUTs chunk `index` of `plan` to the upload URL, exactly as TikTok gave it.
    pub async fn put_chunk(
        &self,
        upload_url: &SecretString,
        plan: &ChunkPlan,
        index: u64,
        bytes: Vec<u8>,
    ) -> Result<ChunkAnswer, ProviderError> {
        let (first, last) = plan.range(index);
        debug_assert_eq!(bytes.len() as u64, last - first + 1);
        let res = self
            .http
            .put(upload_url.expose_secret())
            .header(CONTENT_TYPE, "video/mp4")
            .header(CONTENT_RANGE, content_range(first, last, plan.video_size))
            .body(bytes)
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        let status = res.status();
        let progress = res.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
        match status {
            StatusCode::PARTIAL_CONTENT => Ok(ChunkAnswer::Accepted),
            StatusCode::CREATED => Ok(ChunkAnswer::Complete),
            StatusCode::RANGE_NOT_SATISFIABLE => {
                Ok(ChunkAnswer::OutOfOrder { received: progress.as_deref().and_then(|p| received_bytes(p, plan)) })
            }
            StatusCode::FORBIDDEN => Ok(ChunkAnswer::Expired),
            s if s.is_server_error() => Err(ProviderError::new(
                PROVIDER,
                codes::UPLOAD_SERVER_ERROR,
                format!("chunk {} of {}: TikTok answered {s}", index + 1, plan.total_chunk_count),
                true,
            )),
            s => Err(ProviderError::new(
                PROVIDER,
                codes::UPLOAD_REFUSED,
                format!("chunk {} of {}: TikTok refused it with {s}", index + 1, plan.total_chunk_count),
                false,
            )),
        }
    }

    pub async fn status(&self, access_token: &SecretString, publish_id: &str) -> Result<PublishStatus, ProviderError> {
        let data = self.status_data(access_token, publish_id).await?;
        let status = data.get("status").and_then(Value::as_str).unwrap_or_default();
        Ok(match status {
            "SEND_TO_USER_INBOX" => PublishStatus::InInbox,
            "PUBLISH_COMPLETE" => PublishStatus::Published { post_ids: post_ids(&data) },
            "FAILED" => PublishStatus::Failed {
                reason: data.get("fail_reason").and_then(Value::as_str).unwrap_or("unknown").to_string(),
            },
            _ => PublishStatus::Uploading { uploaded_bytes: data.get("uploaded_bytes").and_then(Value::as_u64) },
        })
    }
}

impl TikTokApi {
    /// status/fetch's `data` for `publish_id` (read as an upload's progress
    /// by [`TikTokApi::status`], for the public post id by `public_post`).
    pub(super) async fn status_data(
        &self,
        access_token: &SecretString,
        publish_id: &str,
    ) -> Result<Value, ProviderError> {
        self.post_json("/v2/post/publish/status/fetch/", access_token, &json!({ "publish_id": publish_id })).await
    }

    /// POSTs `body` as JSON to the Content Posting API's `path` with the
    /// token, and reads the envelope's `data` (or its mapped error).
    async fn post_json(&self, path: &str, access_token: &SecretString, body: &Value) -> Result<Value, ProviderError> {
        let res = self
            .http
            .post(format!("{}{path}", self.api_url))
            .bearer_auth(access_token.expose_secret())
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        envelope(res).await
    }
}

/// The FILE_UPLOAD `source_info` of `plan`.
fn source_info(plan: &ChunkPlan) -> Value {
    json!({
        "source": "FILE_UPLOAD",
        "video_size": plan.video_size,
        "chunk_size": plan.chunk_size,
        "total_chunk_count": plan.total_chunk_count,
    })
}

/// The public post ids of a status answer: TikTok spells the field
/// `publicaly_available_post_id` (sic); the corrected spelling is read too,
/// in case it is fixed. Ids are int64 numbers or strings; both become text.
pub fn post_ids(data: &Value) -> Vec<String> {
    ["publicaly_available_post_id", "publicly_available_post_id"]
        .iter()
        .filter_map(|k| data.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// `bytes FIRST-LAST/TOTAL`, inclusive, as the media transfer guide writes it.
pub fn content_range(first: u64, last: u64, total: u64) -> String {
    format!("bytes {first}-{last}/{total}")
}

/// How many bytes TikTok holds, from its `Content-Range: bytes 0-N/TOTAL`.
///
/// The guide writes the end as `{UPLOADED_BYTES}`, which reads either as the
/// last byte's index (HTTP's inclusive convention) or as a byte count. Only
/// one reading lands on a chunk boundary, and TikTok only ever holds whole
/// chunks, so that one is taken. `bytes */TOTAL` means nothing yet.
pub fn received_bytes(header: &str, plan: &ChunkPlan) -> Option<u64> {
    let range = header.trim().strip_prefix("bytes ")?;
    let (span, _total) = range.split_once('/')?;
    if span == "*" {
        return Some(0);
    }
    let (_, end) = span.split_once('-')?;
    let end: u64 = end.trim().parse().ok()?;
    let boundary = |n: u64| {
        n == plan.video_size || (n.is_multiple_of(plan.chunk_size) && n / plan.chunk_size < plan.total_chunk_count)
    };
    [end + 1, end].into_iter().find(|&n| boundary(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_on_http_200_are_errors() {
        let body = json!({"error": "invalid_grant", "error_description": "Refresh token is invalid", "log_id": "x"});
        let e = oauth_error(StatusCode::OK, &body).unwrap();
        assert_eq!((e.code.as_str(), e.retryable), ("invalid_grant", false));
        let ok = json!({"access_token": "act.1", "open_id": "o"});
        assert!(oauth_error(StatusCode::OK, &ok).is_none());
        let enveloped = json!({"data": {}, "error": {"code": "ok", "message": ""}});
        assert!(oauth_error(StatusCode::OK, &enveloped).is_none());
        assert!(oauth_error(StatusCode::BAD_GATEWAY, &Value::Null).unwrap().retryable);
    }

    #[test]
    fn api_codes_map_to_retryable_or_not_and_both_param_spellings_match() {
        let e = api_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "", Some("L1"));
        assert!(e.retryable && e.retry_after >= Some(Duration::from_secs(60)), "429 waits at least a minute");
        assert!(e.message.contains("log_id L1"));
        for c in ["invalid_param", "invalid_params"] {
            assert_eq!(api_error(StatusCode::BAD_REQUEST, c, "", None).code, "invalid_param");
        }
        assert!(!api_error(StatusCode::FORBIDDEN, "spam_risk_user_banned_from_posting", "", None).retryable);
        assert!(api_error(StatusCode::INTERNAL_SERVER_ERROR, "weird", "", None).retryable);
        assert!(!api_error(StatusCode::UNAUTHORIZED, "scope_not_authorized", "", None).retryable);
    }

    #[test]
    fn a_creator_info_answer_is_read_with_its_maximum_and_missing_fields_defaulted() {
        // The documented example's `data`.
        let data = json!({
            "creator_avatar_url": "https://lf16-tt4d.tiktokcdn.com/obj/tiktok-open-platform/8d5740ac3844be417beeacd0df75aef1",
            "creator_username": "tiktok",
            "creator_nickname": "TikTok Official",
            "privacy_level_options": ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"],
            "comment_disabled": false,
            "duet_disabled": false,
            "stitch_disabled": true,
            "max_video_post_duration_sec": 300
        });
        let info = CreatorInfo::from_data(data).unwrap();
        assert_eq!(info.creator_username, "tiktok");
        assert_eq!(info.creator_nickname, "TikTok Official");
        assert_eq!(info.privacy_level_options, ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]);
        assert_eq!((info.comment_disabled, info.duet_disabled, info.stitch_disabled), (false, false, true));
        assert_eq!(info.max_video_post_duration_sec, Some(300));

        let sparse = CreatorInfo::from_data(json!({"creator_username": "x", "new_field": 1})).unwrap();
        assert_eq!(sparse.max_video_post_duration_sec, None, "a missing maximum is unknown, not zero");
        assert!(sparse.privacy_level_options.is_empty());

        let wrong = CreatorInfo::from_data(json!({"max_video_post_duration_sec": "sixty"})).unwrap_err();
        assert_eq!((wrong.code.as_str(), wrong.retryable), ("unexpected_response", true));

        // Kept on the account row and read back the same.
        let kept = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<CreatorInfo>(&kept).unwrap(), info);
    }

    #[test]
    fn the_progress_header_is_read_in_whichever_reading_lands_on_a_chunk_boundary() {
        let plan = ChunkPlan::new(50_000_123).unwrap(); // 10,000,000-byte chunks
        // Inclusive last index (HTTP convention): two chunks held.
        assert_eq!(received_bytes("bytes 0-19999999/50000123", &plan), Some(20_000_000));
        // Byte count reading of the same progress.
        assert_eq!(received_bytes("bytes 0-20000000/50000123", &plan), Some(20_000_000));
        assert_eq!(received_bytes("bytes */50000123", &plan), Some(0));
        assert_eq!(received_bytes("bytes 0-50000122/50000123", &plan), Some(50_000_123));
        assert_eq!(received_bytes("bytes 0-12345/50000123", &plan), None, "not a boundary: unknown");
        assert_eq!(received_bytes("garbage", &plan), None);
    }

    #[test]
    fn the_authorize_url_carries_the_hex_challenge_and_comma_scopes() {
        let api = TikTokApi::new(
            reqwest::Client::new(),
            "https://www.tiktok.com/v2/auth/authorize/",
            "https://open.tiktokapis.com",
            "ck",
            SecretString::from("the-client-secret"),
            "user.info.basic,video.upload",
        );
        let url = reqwest::Url::parse(&api.authorize_url("st", "http://127.0.0.1:9/callback/", Some("ab12"))).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "user.info.basic,video.upload");
        assert_eq!(q["code_challenge"], "ab12");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["response_type"], "code");
        assert!(!url.as_str().contains("the-client-secret"), "the client secret never goes to the browser");
    }
}
