//! `[media]`: the programs that render, and what a render looks like.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Section, SettingsError, check};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub espeak: PathBuf,
    pub scratch_dir: String,
    pub render_timeout_secs: u64,
    pub preset: String,
    pub crf: u8,
    /// x264 options applied over `preset` (`key=value:key=value`), from
    /// [`X264_PARAM_KEYS`] only: how hard x264 analyses each frame, never
    /// what the stream is made of (GOPs, threads, rate control), which a
    /// segmented render's join depends on.
    pub x264_params: String,
    pub fonts_dir: PathBuf,
    pub caption_font: String,
    pub caption_size: u32,
    pub music_dir: String,
    /// Threads one ffmpeg render may use for encoding and for filtering (each
    /// input's decoder runs on one thread of its own); 0 sets it for the
    /// machine ([`crate::media::Budget::from_settings`]).
    pub ffmpeg_threads: u32,
    /// Videos at least this many seconds long (joined by cuts) are rendered
    /// in segments that any render worker may take, then joined; shorter
    /// ones in one pass. 0: always one pass. One ffmpeg per video leaves a
    /// long video's wall time to one worker however many there are.
    pub segment_min_seconds: u32,
    /// About how long each segment of a segmented render is (segments end at
    /// clip boundaries): short enough to spread over the workers, long
    /// enough that starting ffmpeg and joining stay a small share.
    pub segment_seconds: u32,
    /// Videos at least this many seconds long (joined by cuts, with two or
    /// more clips) whose render has two or more threads are rendered on this
    /// machine as that many single-threaded ffmpeg runs side by side, each
    /// a run of whole clips, beside one for the audio, then joined without
    /// re-encoding; shorter ones in one ffmpeg run. 0: always one run.
    /// ffmpeg 5.1 decodes, filters and encodes the audio on one main thread,
    /// so one run leaves part of the second core idle; two single-threaded
    /// runs keep both busy (README, "Split across the cores").
    pub split_min_seconds: u32,
}

/// The x264 presets we accept; slower ones than `slow` make no sense for drafts.
const PRESETS: &[&str] = &["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"];

/// The x264 options `media.x264_params` may set: analysis effort only.
pub const X264_PARAM_KEYS: &[&str] = &[
    "subme",
    "partitions",
    "me",
    "merange",
    "trellis",
    "8x8dct",
    "weightp",
    "rc-lookahead",
    "aq-mode",
    "aq-strength",
    "mixed-refs",
    "fast-pskip",
    "psy-rd",
    "ref",
    "bframes",
    "b-adapt",
    "direct",
];

/// Whether `params` is empty or `key=value` pairs joined by `:`, each key
/// one of [`X264_PARAM_KEYS`] and each value plain (letters, digits, `.,+-`).
fn x264_params_ok(params: &str) -> bool {
    params.is_empty()
        || params.split(':').all(|pair| {
            pair.split_once('=').is_some_and(|(key, value)| {
                X264_PARAM_KEYS.contains(&key)
                    && !value.is_empty()
                    && value.chars().all(|c| c.is_ascii_alphanumeric() || ".,+-".contains(c))
            })
        })
}

impl MediaSettings {
    /// `render_timeout_secs`: a render taking longer is killed.
    pub fn render_timeout(&self) -> Duration {
        Duration::from_secs(self.render_timeout_secs)
    }
}

impl Section for MediaSettings {
    const SECTION: &'static str = "media";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.preset, |v| PRESETS.contains(&v.as_str()), PRESETS.join(", "))?;
        check!(self.crf, |v| *v <= 51, "0-51")?;
        check!(
            self.x264_params,
            |v| x264_params_ok(v),
            format!("empty, or key=value pairs joined by ':' with keys from {}", X264_PARAM_KEYS.join(", "))
        )?;
        check!(self.render_timeout_secs, |v| (10..=86_400).contains(v), "10-86400")?;
        check!(self.caption_size, |v| (12..=300).contains(v), "12-300")?;
        check!(self.caption_font, |v| !v.is_empty() && !v.contains([',', '\n']), "a font family name without commas",)?;
        check!(self.ffmpeg_threads, |v| *v <= 64, "0 (set for the machine) or 1-64")?;
        check!(self.segment_min_seconds, |v| *v <= 3_600, "0 (never) to 3600")?;
        check!(self.segment_seconds, |v| (5..=600).contains(v), "5-600")?;
        check!(self.split_min_seconds, |v| *v <= 3_600, "0 (never) to 3600")
    }
}

#[cfg(test)]
mod tests {
    use super::x264_params_ok;

    #[test]
    fn x264_params_set_analysis_effort_and_nothing_else() {
        for ok in ["", "subme=1", "subme=1:partitions=i8x8", "partitions=i8x8,i4x4:psy-rd=1.0,0.0"] {
            assert!(x264_params_ok(ok), "{ok:?}");
        }
        for bad in ["keyint=600", "open-gop=1", "threads=8", "subme", "subme=", "subme=1:", "subme=1 -y", "subme=$(x)"]
        {
            assert!(!x264_params_ok(bad), "{bad:?}");
        }
    }
}
