//! What is shown of performance: posts grouped by what their jobs asked for,
//! and the plain words a job says about what is (not) measured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::records::{LatestSample, TrackedPost};

/// What `GET /v1/performance` groups posts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The job's `topic` (jobs that gave their own script share one group).
    Topic,
    /// The caption preset the job asked for.
    Style,
    /// The voice the job asked for.
    Voice,
    /// The TikTok account it went to.
    Account,
}

impl GroupBy {
    pub const ALL: [GroupBy; 4] = [GroupBy::Topic, GroupBy::Style, GroupBy::Voice, GroupBy::Account];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Topic => "topic",
            GroupBy::Style => "style",
            GroupBy::Voice => "voice",
            GroupBy::Account => "account",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The values allowed, for error messages: `topic, style, voice, account`.
    pub fn allowed() -> String {
        Self::ALL.map(GroupBy::as_str).join(", ")
    }
}

/// The group a job without a topic (its own script) falls in.
pub const OWN_SCRIPT: &str = "(own script)";
/// The group of jobs that named no caption preset or voice: the team default.
pub const TEAM_DEFAULT: &str = "(team default)";

/// One group's posts and their counts, each post counted by its latest sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupTotals {
    /// The topic, caption preset, voice or account id.
    pub group: String,
    pub posts: u32,
    pub views: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
}

/// The group of one post's job: read from its stored request, leniently
/// (a request written by another version still falls in a group).
fn group_of(row: &LatestSample, by: GroupBy) -> String {
    let spec: Value = serde_json::from_str(&row.spec).unwrap_or_default();
    let text = |v: &Value| v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    match by {
        GroupBy::Topic => text(&spec["topic"]).unwrap_or_else(|| OWN_SCRIPT.to_string()),
        GroupBy::Style => text(&spec["caption_style"]["preset"]).unwrap_or_else(|| TEAM_DEFAULT.to_string()),
        GroupBy::Voice => text(&spec["voice"]).unwrap_or_else(|| TEAM_DEFAULT.to_string()),
        GroupBy::Account => row.account_id.clone(),
    }
}

/// Posts grouped by `by`, most viewed group first (then by name).
pub fn group(rows: &[LatestSample], by: GroupBy) -> Vec<GroupTotals> {
    let mut groups: BTreeMap<String, GroupTotals> = BTreeMap::new();
    for row in rows {
        let name = group_of(row, by);
        let g = groups.entry(name.clone()).or_insert_with(|| GroupTotals {
            group: name,
            posts: 0,
            views: 0,
            likes: 0,
            comments: 0,
            shares: 0,
        });
        g.posts += 1;
        g.views = g.views.saturating_add(row.sample.views);
        g.likes = g.likes.saturating_add(row.sample.likes);
        g.comments = g.comments.saturating_add(row.sample.comments);
        g.shares = g.shares.saturating_add(row.sample.shares);
    }
    let mut out: Vec<GroupTotals> = groups.into_values().collect();
    out.sort_by(|a, b| b.views.cmp(&a.views).then_with(|| a.group.cmp(&b.group)));
    out
}

/// What a job with a TikTok draft says about its measuring, in plain words;
/// None when samples are being taken as planned.
pub fn note(post: Option<&TrackedPost>, post_id: Option<&str>, can_list_videos: bool) -> Option<String> {
    if let Some(ended) = post.and_then(|p| p.ended.clone()) {
        return Some(ended);
    }
    if post_id.is_none() {
        return Some(
            "TikTok tells a draft's post id only after the creator posts it publicly; nothing is measured until then"
                .to_string(),
        );
    }
    if !can_list_videos {
        return Some(
            "the account's grant lacks video.list: connect it again allowing video.list to measure its posts"
                .to_string(),
        );
    }
    match post {
        None => Some("measuring starts at the collector's next pass".to_string()),
        Some(p) if p.next_due_at.is_none() => Some("the schedule has ended; no more samples are taken".to_string()),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobId;
    use crate::store::records::Sample;
    use chrono::Utc;

    fn row(spec: Value, account: &str, views: u64) -> LatestSample {
        LatestSample {
            job_id: JobId::new(),
            account_id: account.into(),
            spec: spec.to_string(),
            sample: Sample {
                post_id: "1".into(),
                sampled_at: Utc::now(),
                views,
                likes: views / 10,
                comments: 1,
                shares: 0,
            },
        }
    }

    #[test]
    fn posts_are_grouped_by_what_their_jobs_asked_for() {
        let rows = [
            row(
                serde_json::json!({"topic": "Tides", "voice": "en-us", "caption_style": {"preset": "boxed"}}),
                "a",
                100,
            ),
            row(serde_json::json!({"topic": "Tides", "voice": "en-gb"}), "b", 50),
            row(serde_json::json!({"script": "Own words."}), "a", 7),
        ];
        let by_topic = group(&rows, GroupBy::Topic);
        assert_eq!(
            by_topic.iter().map(|g| (g.group.as_str(), g.posts, g.views)).collect::<Vec<_>>(),
            [("Tides", 2, 150), (OWN_SCRIPT, 1, 7)]
        );
        assert_eq!(by_topic[0].likes, 15);
        let by_style = group(&rows, GroupBy::Style);
        assert_eq!(
            by_style.iter().map(|g| (g.group.as_str(), g.posts)).collect::<Vec<_>>(),
            [("boxed", 1), (TEAM_DEFAULT, 2)]
        );
        let by_voice = group(&rows, GroupBy::Voice);
        assert_eq!(by_voice.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(), ["en-us", "en-gb", TEAM_DEFAULT]);
        let by_account = group(&rows, GroupBy::Account);
        assert_eq!(by_account.iter().map(|g| (g.group.as_str(), g.views)).collect::<Vec<_>>(), [("a", 107), ("b", 50)]);
        assert!(group(&[], GroupBy::Topic).is_empty());
    }

    #[test]
    fn group_by_parses_only_its_four_names() {
        for g in GroupBy::ALL {
            assert_eq!(GroupBy::parse(g.as_str()), Some(g));
        }
        assert_eq!(GroupBy::parse("Topic"), None);
        assert_eq!(GroupBy::allowed(), "topic, style, voice, account");
    }

    #[test]
    fn a_draft_without_a_post_id_says_so_plainly() {
        let n = note(None, None, true).unwrap();
        assert!(n.contains("only after the creator posts it publicly") && n.contains("nothing is measured"), "{n}");
        assert!(note(None, Some("7"), false).unwrap().contains("video.list"));
    }
}
