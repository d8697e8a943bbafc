//! The creator check before render: how long a video the creator may post,
//! from TikTok's `creator_info/query`, asked at most once per
//! `tiktok.creator_info_ttl_secs` per account and within
//! `tiktok.creator_info_per_minute` (TikTok: 20), and whether a narration
//! fits it. Direct Post will ask the same answer for its privacy options and
//! disabled interactions.

use super::*;
use crate::providers::tiktok::api::CreatorInfo;

/// Whether a video as long as its narration can be posted by the creator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PostLength {
    /// At most the creator's maximum.
    Fits,
    /// Over it: rendering would make a video this creator cannot post.
    TooLong { duration_s: f64, max_s: u32 },
    /// The maximum is not known (the account did not grant `video.publish`,
    /// or TikTok could not be asked): nothing to hold the job to.
    Unknown,
}

/// The narration's `duration_s` against the creator's maximum, if known. A
/// narration of exactly the maximum fits.
pub fn post_length(duration_s: f64, max_s: Option<u32>) -> PostLength {
    match max_s {
        Some(max_s) if duration_s > f64::from(max_s) => PostLength::TooLong { duration_s, max_s },
        Some(_) => PostLength::Fits,
        None => PostLength::Unknown,
    }
}

/// Whether an answer fetched `at` is still reused at `now`: younger than
/// `ttl` (a zero ttl asks every time).
fn is_recent(at: DateTime<Utc>, now: DateTime<Utc>, ttl: Duration) -> bool {
    now - at < chrono::Duration::from_std(ttl).unwrap_or_default()
}

/// Whether the granted scopes (comma-separated, as TikTok listed them) allow
/// creator_info/query. An empty list is not known to lack it, so it is asked.
fn may_ask(scopes: &str) -> bool {
    scopes.trim().is_empty() || scopes.split(',').any(|s| s.trim() == "video.publish")
}

impl InboxUploader {
    /// What TikTok says about `account`'s creator: the answer kept on the
    /// account while younger than `creator_info_ttl`, otherwise asked (one of
    /// the account's per-minute slots; a refused token is refreshed once) and
    /// kept. `Ok(None)` when the account did not grant `video.publish` (the
    /// grant says so, or TikTok answers `scope_not_authorized`): the limit is
    /// unknown, which is no failure for an inbox draft. Limits and a grant
    /// TikTok no longer takes become [`UploadError::Wait`].
    pub async fn creator_info(&self, account: &str) -> Result<Option<CreatorInfo>, UploadError> {
        let acct = self.accounts.load(account).await?;
        if !may_ask(&acct.scopes) {
            return Ok(None);
        }
        if let Some((info, at)) = self.accounts.kept_creator_info(&acct.id).await?
            && is_recent(at, Utc::now(), self.limits.creator_info_ttl)
        {
            return Ok(Some(info));
        }
        self.slot(&format!("tiktok:creator_info:{}", acct.id), self.limits.creator_info_per_minute).await?;
        let api = &self.accounts.api;
        match self.with_token(&acct, |token| async move { api.creator_info(&token).await }).await {
            Ok(info) => {
                info!(account = %acct.id, max_s = ?info.max_video_post_duration_sec, "creator info asked of TikTok");
                if let Err(e) = self.accounts.keep_creator_info(&acct.id, &info, Utc::now()).await {
                    warn!(account = %acct.id, error = %e.message, "could not keep the creator info; asked again next time");
                }
                Ok(Some(info))
            }
            Err(e) if e.code == codes::SCOPE_NOT_AUTHORIZED => {
                info!(account = %acct.id, "the account's token lacks video.publish; the creator's maximum is unknown");
                Ok(None)
            }
            Err(e) => Err(self.classify(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narration_over_the_creators_maximum_is_too_long_and_exactly_it_fits() {
        assert_eq!(post_length(90.4, Some(60)), PostLength::TooLong { duration_s: 90.4, max_s: 60 });
        assert_eq!(post_length(60.01, Some(60)), PostLength::TooLong { duration_s: 60.01, max_s: 60 });
        assert_eq!(post_length(60.0, Some(60)), PostLength::Fits);
        assert_eq!(post_length(12.5, Some(600)), PostLength::Fits);
        assert_eq!(post_length(9_999.0, None), PostLength::Unknown, "no known maximum holds nothing back");
    }

    #[test]
    fn a_kept_answer_is_reused_only_while_younger_than_the_ttl() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let after = |s: i64| at + chrono::Duration::seconds(s);
        let ttl = Duration::from_secs(300);
        assert!(is_recent(at, after(0), ttl));
        assert!(is_recent(at, after(299), ttl));
        assert!(!is_recent(at, after(300), ttl), "at the ttl it is asked again");
        assert!(!is_recent(at, after(0), Duration::ZERO), "a zero ttl asks every time");
    }

    #[test]
    fn only_a_grant_with_video_publish_or_an_unknown_one_is_asked() {
        assert!(may_ask("user.info.basic,video.upload,video.publish"));
        assert!(may_ask(" video.publish "));
        assert!(may_ask(""), "unknown scopes: TikTok decides");
        assert!(!may_ask("user.info.basic,video.upload"));
    }
}
