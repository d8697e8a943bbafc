//! Photo posts: a job may make a carousel of stills instead of a video, one
//! per sentence of its script, each a frame of the footage (or the team's
//! image) shown at that sentence with the sentence drawn on. TikTok pulls
//! them from a URL prefix the operator verified (`tiktok.photo_url_prefix`).
//! Pure rules; the render and the upload are elsewhere.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FootagePick, SentenceTiming};

/// What a job makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// A 1080x1920 MP4 with narration (the default).
    #[default]
    Video,
    /// A carousel of 1080x1920 JPEG stills with the sentences drawn on.
    Photos,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 2] = [OutputFormat::Video, OutputFormat::Photos];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Video => "video",
            OutputFormat::Photos => "photos",
        }
    }

    pub fn parse(raw: &str) -> Option<OutputFormat> {
        OutputFormat::ALL.into_iter().find(|f| f.as_str() == raw)
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TikTok takes at most this many images in one photo post.
pub const MAX_PHOTOS: usize = 35;

/// The longest photo-post title TikTok takes, in UTF-16 code units.
pub const MAX_PHOTO_TITLE_UTF16: usize = 90;

/// Where one photo's picture comes from: a footage pick and the moment in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotoShot {
    /// Index into the footage picks.
    pub pick: usize,
    /// Seconds into that clip (0 for a still).
    pub offset_s: f64,
}

/// One shot per sentence: the pick on screen at the sentence's midpoint, and
/// how far into it that is. None when there is no footage.
pub fn photo_shots(sentences: &[SentenceTiming], footage: &[FootagePick]) -> Option<Vec<PhotoShot>> {
    if footage.is_empty() {
        return None;
    }
    Some(
        sentences
            .iter()
            .map(|s| {
                let mid = (s.start_s + s.end_s) / 2.0;
                let pick = footage.iter().rposition(|p| p.at_s <= mid).unwrap_or(0);
                let p = &footage[pick];
                let offset_s = if p.still { 0.0 } else { (mid - p.at_s).clamp(0.0, (p.duration_s - 0.05).max(0.0)) };
                PhotoShot { pick, offset_s }
            })
            .collect(),
    )
}

/// `title` cut to TikTok's photo-title limit, on a character boundary.
pub fn photo_title(title: &str) -> String {
    let mut units = 0;
    title
        .chars()
        .take_while(|c| {
            units += c.len_utf16();
            units <= MAX_PHOTO_TITLE_UTF16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(start_s: f64, end_s: f64) -> SentenceTiming {
        SentenceTiming { text: "s".into(), start_s, end_s }
    }

    fn pick(at_s: f64, duration_s: f64, still: bool) -> FootagePick {
        FootagePick { key: format!("k{at_s}"), source: "t".into(), at_s, duration_s, credit: None, still }
    }

    #[test]
    fn each_sentence_shows_the_pick_on_screen_at_its_midpoint() {
        let sentences = [sentence(0.0, 2.0), sentence(2.0, 5.0), sentence(5.0, 9.0)];
        let footage = [pick(0.0, 4.0, false), pick(4.0, 3.0, true), pick(7.0, 2.0, false)];
        let shots = photo_shots(&sentences, &footage).unwrap();
        assert_eq!(
            shots,
            [
                PhotoShot { pick: 0, offset_s: 1.0 },
                PhotoShot { pick: 0, offset_s: 3.5 },
                PhotoShot { pick: 2, offset_s: 0.0 },
            ]
        );
        let on_still = photo_shots(&[sentence(4.0, 6.0)], &footage).unwrap();
        assert_eq!(on_still, [PhotoShot { pick: 1, offset_s: 0.0 }], "a still is read from its start");
        assert_eq!(photo_shots(&sentences, &[]), None);
    }

    #[test]
    fn a_shot_never_reads_past_its_clip() {
        let shots = photo_shots(&[sentence(0.0, 20.0)], &[pick(0.0, 3.0, false)]).unwrap();
        assert!((shots[0].offset_s - 2.95).abs() < 1e-9, "{shots:?}");
    }

    #[test]
    fn titles_are_cut_to_90_utf16_units() {
        assert_eq!(photo_title("short"), "short");
        assert_eq!(photo_title(&"a".repeat(100)).len(), 90);
        let emoji = photo_title(&"😀".repeat(50));
        assert_eq!(emoji.encode_utf16().count(), 90, "45 emoji of two units each");
        assert_eq!(OutputFormat::parse("photos"), Some(OutputFormat::Photos));
        assert_eq!(OutputFormat::parse("gif"), None);
    }
}
