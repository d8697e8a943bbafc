//! Publish targets beyond TikTok: a job may name a YouTube channel and an
//! Instagram account as well as (or instead of) its TikTok `account`. Each
//! target has its own upload, its own exactly-one record and its own result.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use crate::error_code as codes;

/// A platform a video can be published to besides TikTok's `account`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// The job's `account`; never in `targets`.
    Tiktok,
    Youtube,
    Instagram,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Tiktok, Platform::Youtube, Platform::Instagram];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Tiktok => "tiktok",
            Platform::Youtube => "youtube",
            Platform::Instagram => "instagram",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Platform::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One target as submitted: `{"platform": "youtube", "account": "<id>"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetRequest {
    /// `youtube` or `instagram` (TikTok is the job's `account`).
    pub platform: String,
    /// The connected account's id, as `GET /v1/accounts` lists it.
    pub account: String,
}

/// A validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub platform: Platform,
    pub account: String,
}

/// The targets of a request, or the problems with them: a known platform,
/// a safe account id, and at most one target per platform.
pub fn parse_targets(raw: &[TargetRequest]) -> Result<Vec<Target>, Vec<FieldError>> {
    let mut targets: Vec<Target> = Vec::new();
    let mut errors = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let Some(platform) = Platform::parse(&t.platform).filter(|p| *p != Platform::Tiktok) else {
            errors.push(FieldError::new(
                &format!("targets[{i}].platform"),
                codes::TARGET_INVALID,
                format!(
                    "platform `{}` is not `youtube` or `instagram` (a TikTok account goes in `account`)",
                    super::echo(&t.platform)
                ),
            ));
            continue;
        };
        if !super::spec::is_safe_name(&t.account, 64) {
            errors.push(FieldError::new(
                &format!("targets[{i}].account"),
                codes::ACCOUNT_INVALID,
                "account must be an account id (letters, digits, '-', '_', '.')",
            ));
            continue;
        }
        if targets.iter().any(|seen| seen.platform == platform) {
            errors.push(FieldError::new(
                &format!("targets[{i}].platform"),
                codes::TARGET_INVALID,
                format!("{platform} is named twice; a job publishes once per platform"),
            ));
            continue;
        }
        targets.push(Target { platform, account: t.account.clone() });
    }
    if errors.is_empty() { Ok(targets) } else { Err(errors) }
}

/// What a job's upload to one target came to, kept in the manifest and
/// shown by the API and the studio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TargetResult {
    pub platform: Platform,
    pub account: String,
    /// `published` once the platform has it; until then `uploading`.
    pub state: String,
    /// The platform's id of the video or reel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Where people see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// TikTok: the public post's id, once TikTok gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(platform: &str, account: &str) -> TargetRequest {
        TargetRequest { platform: platform.into(), account: account.into() }
    }

    #[test]
    fn each_platform_once_with_a_safe_account() {
        let ok = parse_targets(&[req("youtube", "a-1"), req("instagram", "b.2")]).unwrap();
        assert_eq!(ok.iter().map(|t| t.platform).collect::<Vec<_>>(), [Platform::Youtube, Platform::Instagram]);
        let bad =
            parse_targets(&[req("tiktok", "a"), req("youtube", "x y"), req("instagram", "c"), req("instagram", "d")])
                .unwrap_err();
        let fields: Vec<_> = bad.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("targets[0].platform", "target_invalid"),
                ("targets[1].account", "account_invalid"),
                ("targets[3].platform", "target_invalid"),
            ]
        );
    }
}
