//! What TikTok tells about a post after it went up (spec §1.5 and §3): the
//! Display API's counts of a creator's videos (`video/query`, scope
//! `video.list`) and account (`user/info` with `user.info.stats`), and
//! whether a publish became a public post (status/fetch's
//! `publicaly_available_post_id`, TikTok's spelling).
//!
//! A draft's post id is known only once the creator has posted it publicly
//! and TikTok says so; it is never matched by title or time.

use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{PROVIDER, TikTokApi};
use super::api_errors::envelope;
use crate::error_code as codes;
use crate::providers::ProviderError;
use crate::providers::http::transport_error;

/// The most ids one `video/query` call may carry.
pub const MAX_IDS_PER_QUERY: usize = 20;

/// The fields `video/query` is asked for.
const VIDEO_FIELDS: &str = "id,create_time,view_count,like_count,comment_count,share_count";

/// The fields `user/info` is asked for with `user.info.stats`.
const STATS_FIELDS: &str = "open_id,follower_count,following_count,likes_count,video_count";

/// One video's counts as `video/query` tells them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VideoCounts {
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// When the video went up, seconds since the epoch.
    #[serde(default)]
    pub create_time: Option<i64>,
    #[serde(default)]
    pub view_count: u64,
    #[serde(default)]
    pub like_count: u64,
    #[serde(default)]
    pub comment_count: u64,
    #[serde(default)]
    pub share_count: u64,
}

/// An account's totals as `user/info` tells them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserStats {
    #[serde(default)]
    pub follower_count: u64,
    #[serde(default)]
    pub following_count: u64,
    #[serde(default)]
    pub likes_count: u64,
    #[serde(default)]
    pub video_count: u64,
}

/// Whether a publish is a public post yet, as status/fetch tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicPost {
    /// `PUBLISH_COMPLETE` with a post id: it is public under this id.
    Posted { post_id: String },
    /// Still a draft (or not yet through moderation): no post id yet.
    NotYet,
    /// TikTok gave up on it.
    Failed { reason: String },
}

impl PublicPost {
    /// Reads status/fetch's `data`. The post id list holds int64s or
    /// strings; the first is the post.
    pub fn from_data(data: &Value) -> Self {
        let status = data.get("status").and_then(Value::as_str).unwrap_or_default();
        match (status, super::api::post_ids(data).into_iter().next()) {
            ("PUBLISH_COMPLETE", Some(post_id)) => PublicPost::Posted { post_id },
            ("FAILED", _) => PublicPost::Failed {
                reason: data.get("fail_reason").and_then(Value::as_str).unwrap_or("unknown").to_string(),
            },
            _ => PublicPost::NotYet,
        }
    }
}

impl TikTokApi {
    /// `video/query`: the counts of up to 20 of the token's creator's videos.
    /// Videos that are not the creator's (or no longer public) are left out
    /// of the answer by TikTok.
    pub async fn query_videos(
        &self,
        access_token: &SecretString,
        ids: &[String],
    ) -> Result<Vec<VideoCounts>, ProviderError> {
        debug_assert!(!ids.is_empty() && ids.len() <= MAX_IDS_PER_QUERY);
        let res = self
            .http
            .post(format!("{}/v2/video/query/", self.api_url))
            .query(&[("fields", VIDEO_FIELDS)])
            .bearer_auth(access_token.expose_secret())
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .body(json!({ "filters": { "video_ids": ids } }).to_string())
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        let data = envelope(res).await?;
        videos_from_data(&data)
    }

    /// `user/info` with the `user.info.stats` fields: followers, following,
    /// likes and videos of the token's creator.
    pub async fn user_stats(&self, access_token: &SecretString) -> Result<UserStats, ProviderError> {
        let res = self
            .http
            .get(format!("{}/v2/user/info/", self.api_url))
            .query(&[("fields", STATS_FIELDS)])
            .bearer_auth(access_token.expose_secret())
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        let data = envelope(res).await?;
        serde_json::from_value(data.get("user").cloned().unwrap_or_default()).map_err(|e| unexpected("user stats", e))
    }

    /// status/fetch, read for the public post id.
    pub async fn public_post(
        &self,
        access_token: &SecretString,
        publish_id: &str,
    ) -> Result<PublicPost, ProviderError> {
        Ok(PublicPost::from_data(&self.status_data(access_token, publish_id).await?))
    }
}

/// `data.videos` of a video/query answer.
fn videos_from_data(data: &Value) -> Result<Vec<VideoCounts>, ProviderError> {
    match data.get("videos") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| unexpected("video query", e)),
    }
}

fn unexpected(what: &str, e: serde_json::Error) -> ProviderError {
    ProviderError::new(PROVIDER, codes::UNEXPECTED_RESPONSE, format!("{what} answer not understood: {e}"), true)
}

/// A video id as text, whether TikTok sends it as a string or an int64.
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("a video id, got {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_misspelled_post_id_list_is_read_as_int64_or_string() {
        let posted =
            json!({"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [7_391_234_567_890_123_456u64]});
        assert_eq!(PublicPost::from_data(&posted), PublicPost::Posted { post_id: "7391234567890123456".into() });
        let as_text = json!({"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": ["7391234567890123456"]});
        assert_eq!(PublicPost::from_data(&as_text), PublicPost::Posted { post_id: "7391234567890123456".into() });
        // Complete but not public yet (moderation, or posted privately): no id, no guess.
        let no_id = json!({"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": []});
        assert_eq!(PublicPost::from_data(&no_id), PublicPost::NotYet);
        assert_eq!(PublicPost::from_data(&json!({"status": "SEND_TO_USER_INBOX"})), PublicPost::NotYet);
        assert_eq!(
            PublicPost::from_data(&json!({"status": "FAILED", "fail_reason": "auth_removed"})),
            PublicPost::Failed { reason: "auth_removed".into() }
        );
    }

    #[test]
    fn video_counts_are_read_with_ids_of_either_type_and_missing_counts_as_zero() {
        let data = json!({"videos": [
            {"id": "7001", "create_time": 1_772_366_400, "view_count": 1200, "like_count": 80, "comment_count": 5, "share_count": 2},
            {"id": 7002u64, "view_count": 3},
        ]});
        let videos = videos_from_data(&data).unwrap();
        assert_eq!(videos[0].id, "7001");
        assert_eq!(
            (videos[0].view_count, videos[0].like_count, videos[0].comment_count, videos[0].share_count),
            (1200, 80, 5, 2)
        );
        assert_eq!(videos[0].create_time, Some(1_772_366_400));
        assert_eq!((videos[1].id.as_str(), videos[1].view_count, videos[1].like_count), ("7002", 3, 0));
        assert!(videos_from_data(&json!({})).unwrap().is_empty());
        let wrong = videos_from_data(&json!({"videos": [{"id": true}]})).unwrap_err();
        assert_eq!(wrong.code, codes::UNEXPECTED_RESPONSE);
    }
}
