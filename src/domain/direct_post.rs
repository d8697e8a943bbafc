//! Direct Post: a video published on the creator's TikTok profile instead of
//! waiting in their inbox as a draft. Opt-in twice (the account allows it,
//! the job asks for it) and never without a person: a job that asks stops at
//! the video review, and only an approval that carries the person's own
//! choices ([`DirectPostRequest`]), checked against what TikTok says the
//! creator may choose ([`CreatorChoices`]), lets it go on. The checks follow
//! TikTok's content-sharing guidelines point by point (see
//! `docs/tiktok-direct-post.md`): who can see it is chosen with no default,
//! interactions are off unless the person turns them on (and stay off when
//! the creator disabled them), commercial content is disclosed as "Your
//! brand" or "Branded content" (never private), and the person confirms
//! TikTok's Music Usage Confirmation. Pure rules; no I/O here.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use crate::error_code as codes;

/// Where a job's video goes at TikTok.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostMode {
    /// A draft in the creator's inbox; the creator posts it from the app (the default).
    #[default]
    Inbox,
    /// Published on the creator's profile once a person approved it with
    /// their choices in the review gate.
    Direct,
}

impl PostMode {
    pub const ALL: [PostMode; 2] = [PostMode::Inbox, PostMode::Direct];

    pub fn as_str(self) -> &'static str {
        match self {
            PostMode::Inbox => "inbox",
            PostMode::Direct => "direct",
        }
    }

    pub fn parse(raw: &str) -> Option<PostMode> {
        PostMode::ALL.into_iter().find(|m| m.as_str() == raw)
    }
}

impl fmt::Display for PostMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TikTok's `privacy_level` for a post that only the creator sees.
pub const SELF_ONLY: &str = "SELF_ONLY";

/// The longest caption TikTok takes for a video, in UTF-16 code units.
pub const MAX_TITLE_UTF16: usize = 2200;

/// What the person posting chose, as the approval sends it. Everything is
/// off (or unset) unless they turned it on: there is no default privacy
/// level, interactions start disallowed, and no commercial disclosure is
/// assumed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectPostRequest {
    /// Who can see the post: one of the creator's `privacy_level_options`
    /// (`GET /v1/jobs/{id}/creator`). Required; there is no default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "PUBLIC_TO_EVERYONE")]
    pub privacy_level: Option<String>,
    /// The post's caption (at most 2200 UTF-16 units). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Let viewers comment. Off unless chosen; refused when the creator turned comments off.
    #[serde(default)]
    pub allow_comment: bool,
    /// Let viewers Duet. Off unless chosen; refused when the creator turned Duet off.
    #[serde(default)]
    pub allow_duet: bool,
    /// Let viewers Stitch. Off unless chosen; refused when the creator turned Stitch off.
    #[serde(default)]
    pub allow_stitch: bool,
    /// The post promotes a brand, product or service; then say which below.
    #[serde(default)]
    pub disclose_commercial: bool,
    /// "Your brand": it promotes the creator or their own business
    /// (TikTok labels it "Promotional content").
    #[serde(default)]
    pub your_brand: bool,
    /// "Branded content": it promotes a third party (TikTok labels it "Paid
    /// partnership"); such a post cannot be private.
    #[serde(default)]
    pub branded_content: bool,
    /// Label the post as AI-generated content.
    #[serde(default)]
    pub is_aigc: bool,
    /// The person read and agreed to TikTok's Music Usage Confirmation (and,
    /// for branded content, its Branded Content Policy). Required.
    #[serde(default)]
    pub music_confirmed: bool,
}

/// What TikTok lets this creator choose (from creator_info/query).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreatorChoices {
    pub privacy_level_options: Vec<String>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
}

/// An approved Direct Post: the choices, checked, and who made them. Kept in
/// the manifest; the publish stage sends exactly this as `post_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DirectPost {
    pub privacy_level: String,
    #[serde(default)]
    pub title: String,
    pub disable_comment: bool,
    pub disable_duet: bool,
    pub disable_stitch: bool,
    /// "Your brand" (TikTok's `brand_organic_toggle`).
    pub brand_organic_toggle: bool,
    /// "Branded content" (TikTok's `brand_content_toggle`).
    pub brand_content_toggle: bool,
    pub is_aigc: bool,
    /// Who approved the post with these choices, and when.
    pub approved_by: String,
    pub approved_at: DateTime<Utc>,
}

impl DirectPost {
    /// TikTok's `post_info` for `video/init`.
    pub fn post_info(&self) -> serde_json::Value {
        serde_json::json!({
            "privacy_level": self.privacy_level,
            "title": self.title,
            "disable_comment": self.disable_comment,
            "disable_duet": self.disable_duet,
            "disable_stitch": self.disable_stitch,
            "brand_content_toggle": self.brand_content_toggle,
            "brand_organic_toggle": self.brand_organic_toggle,
            "is_aigc": self.is_aigc,
        })
    }
}

impl DirectPostRequest {
    /// Checks the person's choices against what the creator may choose;
    /// every problem is named by its field (`direct_post.<field>`).
    pub fn check(&self, creator: &CreatorChoices, by: &str, at: DateTime<Utc>) -> Result<DirectPost, Vec<FieldError>> {
        let mut errors = Vec::new();
        let field = |f: &str| format!("direct_post.{f}");
        let options = creator.privacy_level_options.join(", ");
        match self.privacy_level.as_deref() {
            None | Some("") => errors.push(FieldError::new(
                &field("privacy_level"),
                codes::PRIVACY_LEVEL_REQUIRED,
                format!("choose who can see the post, one of: {options} (there is no default)"),
            )),
            Some(level) if !creator.privacy_level_options.iter().any(|o| o == level) => errors.push(FieldError::new(
                &field("privacy_level"),
                codes::PRIVACY_LEVEL_OPTION_MISMATCH,
                format!("`{}` is not one of this creator's options: {options}", super::echo(level)),
            )),
            Some(_) => {}
        }
        for (wanted, disabled, name, what) in [
            (self.allow_comment, creator.comment_disabled, "allow_comment", "comments"),
            (self.allow_duet, creator.duet_disabled, "allow_duet", "Duet"),
            (self.allow_stitch, creator.stitch_disabled, "allow_stitch", "Stitch"),
        ] {
            if wanted && disabled {
                errors.push(FieldError::new(
                    &field(name),
                    codes::INTERACTION_DISABLED_BY_CREATOR,
                    format!("the creator turned {what} off in TikTok's settings; leave {name} off"),
                ));
            }
        }
        if self.disclose_commercial && !self.your_brand && !self.branded_content {
            errors.push(FieldError::new(
                &field("disclose_commercial"),
                codes::COMMERCIAL_CONTENT_UNSPECIFIED,
                "say whether the post promotes your brand, branded content (a third party), or both",
            ));
        }
        if (self.your_brand || self.branded_content) && !self.disclose_commercial {
            errors.push(FieldError::new(
                &field("disclose_commercial"),
                codes::COMMERCIAL_CONTENT_UNSPECIFIED,
                "turn on disclose_commercial to mark the post as your brand or branded content",
            ));
        }
        if self.branded_content && self.privacy_level.as_deref() == Some(SELF_ONLY) {
            errors.push(FieldError::new(
                &field("privacy_level"),
                codes::BRANDED_CONTENT_PRIVATE,
                "branded content visibility cannot be set to private (SELF_ONLY); choose another audience",
            ));
        }
        if !self.music_confirmed {
            errors.push(FieldError::new(
                &field("music_confirmed"),
                codes::MUSIC_CONFIRMATION_REQUIRED,
                if self.branded_content {
                    "the person posting must agree to TikTok's Branded Content Policy and Music Usage Confirmation"
                } else {
                    "the person posting must agree to TikTok's Music Usage Confirmation"
                },
            ));
        }
        let title = self.title.clone().unwrap_or_default().replace("\r\n", "\n").trim().to_string();
        let units = title.encode_utf16().count();
        if units > MAX_TITLE_UTF16 {
            errors.push(FieldError::new(
                &field("title"),
                codes::TITLE_TOO_LONG,
                format!("the caption is {units} UTF-16 units long; TikTok takes at most {MAX_TITLE_UTF16}"),
            ));
        } else if let Some(c) = title.chars().find(|c| c.is_control() && *c != '\n') {
            errors.push(FieldError::new(
                &field("title"),
                codes::CONTROL_CHARACTER,
                format!("the caption holds the control character U+{:04X}", u32::from(c)),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(DirectPost {
            privacy_level: self.privacy_level.clone().unwrap_or_default(),
            title,
            disable_comment: !self.allow_comment,
            disable_duet: !self.allow_duet,
            disable_stitch: !self.allow_stitch,
            brand_organic_toggle: self.disclose_commercial && self.your_brand,
            brand_content_toggle: self.disclose_commercial && self.branded_content,
            is_aigc: self.is_aigc,
            approved_by: by.to_string(),
            approved_at: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creator() -> CreatorChoices {
        CreatorChoices {
            privacy_level_options: vec!["PUBLIC_TO_EVERYONE".into(), "MUTUAL_FOLLOW_FRIENDS".into(), SELF_ONLY.into()],
            comment_disabled: false,
            duet_disabled: true,
            stitch_disabled: false,
        }
    }

    fn codes_of(r: Result<DirectPost, Vec<FieldError>>) -> Vec<(String, String)> {
        r.unwrap_err().into_iter().map(|e| (e.field, e.code)).collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn nothing_chosen_is_refused_for_the_privacy_level_and_the_music_confirmation() {
        let got = codes_of(DirectPostRequest::default().check(&creator(), "k", now()));
        assert_eq!(
            got,
            [
                ("direct_post.privacy_level".into(), "privacy_level_required".into()),
                ("direct_post.music_confirmed".into(), "music_confirmation_required".into()),
            ]
        );
    }

    #[test]
    fn a_choice_becomes_post_info_with_interactions_off_unless_turned_on() {
        let req = DirectPostRequest {
            privacy_level: Some("MUTUAL_FOLLOW_FRIENDS".into()),
            title: Some("  Hello #clipforge \r\n ".into()),
            allow_comment: true,
            music_confirmed: true,
            is_aigc: true,
            ..Default::default()
        };
        let post = req.check(&creator(), "key-1", now()).unwrap();
        assert_eq!(
            post.post_info(),
            serde_json::json!({
                "privacy_level": "MUTUAL_FOLLOW_FRIENDS", "title": "Hello #clipforge",
                "disable_comment": false, "disable_duet": true, "disable_stitch": true,
                "brand_content_toggle": false, "brand_organic_toggle": false, "is_aigc": true,
            })
        );
        assert_eq!((post.approved_by.as_str(), post.approved_at), ("key-1", now()));
    }

    #[test]
    fn the_creators_options_and_disabled_interactions_bind() {
        let req = DirectPostRequest {
            privacy_level: Some("FOLLOWER_OF_CREATOR".into()),
            allow_duet: true,
            music_confirmed: true,
            ..Default::default()
        };
        assert_eq!(
            codes_of(req.check(&creator(), "k", now())),
            [
                ("direct_post.privacy_level".into(), "privacy_level_option_mismatch".into()),
                ("direct_post.allow_duet".into(), "interaction_disabled_by_creator".into()),
            ]
        );
    }

    #[test]
    fn branded_content_is_never_private_and_a_disclosure_names_what_it_promotes() {
        let branded = DirectPostRequest {
            privacy_level: Some(SELF_ONLY.into()),
            disclose_commercial: true,
            branded_content: true,
            music_confirmed: true,
            ..Default::default()
        };
        assert_eq!(
            codes_of(branded.check(&creator(), "k", now())),
            [("direct_post.privacy_level".into(), "branded_content_private".into())]
        );
        let public = DirectPostRequest { privacy_level: Some("PUBLIC_TO_EVERYONE".into()), ..branded.clone() };
        let post = public.check(&creator(), "k", now()).unwrap();
        assert!(post.brand_content_toggle && !post.brand_organic_toggle);
        let unnamed = DirectPostRequest { branded_content: false, ..public.clone() };
        assert_eq!(codes_of(unnamed.check(&creator(), "k", now()))[0].1, "commercial_content_unspecified");
        let undisclosed = DirectPostRequest { disclose_commercial: false, ..public };
        assert_eq!(codes_of(undisclosed.check(&creator(), "k", now()))[0].1, "commercial_content_unspecified");
        let own = DirectPostRequest {
            privacy_level: Some(SELF_ONLY.into()),
            disclose_commercial: true,
            your_brand: true,
            music_confirmed: true,
            ..Default::default()
        };
        assert!(own.check(&creator(), "k", now()).unwrap().brand_organic_toggle, "your brand may be private");
    }

    #[test]
    fn the_caption_is_counted_in_utf16_units() {
        let ok = |title: String| DirectPostRequest {
            privacy_level: Some(SELF_ONLY.into()),
            music_confirmed: true,
            title: Some(title),
            ..Default::default()
        };
        assert!(ok("a".repeat(2200)).check(&creator(), "k", now()).is_ok());
        // An emoji is two UTF-16 units: 1101 of them are 2202.
        assert_eq!(codes_of(ok("😀".repeat(1101)).check(&creator(), "k", now()))[0].1, "title_too_long");
        assert_eq!(codes_of(ok("a\u{7}b".into()).check(&creator(), "k", now()))[0].1, "control_character");
    }

    #[test]
    fn post_modes_round_trip() {
        for m in PostMode::ALL {
            assert_eq!(PostMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(PostMode::parse("publish"), None);
        assert_eq!(PostMode::default(), PostMode::Inbox);
    }
}
