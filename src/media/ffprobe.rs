//! ffprobe, parsed from its JSON output into what we check a render against.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::process::{self, Invocation, ProcessError};

/// Why a file could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("ffprobe printed something that is not its JSON report: {0}")]
    Parse(#[from] serde_json::Error),
}

/// The facts of a media file that a user of clipforge cares about.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaReport {
    pub duration_s: f64,
    pub bytes: Option<u64>,
    pub video: Option<VideoStream>,
    pub audio: Option<AudioStream>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoStream {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub pix_fmt: String,
    /// Average frame rate, frames per second.
    pub fps: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioStream {
    pub codec: String,
    pub sample_rate: u32,
}

#[derive(Deserialize)]
struct RawReport {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: RawFormat,
}

#[derive(Deserialize)]
struct RawStream {
    codec_type: String,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    avg_frame_rate: Option<String>,
    sample_rate: Option<String>,
}

#[derive(Deserialize)]
struct RawFormat {
    duration: Option<String>,
    size: Option<String>,
}

/// Parses `ffprobe -print_format json -show_format -show_streams` output.
pub fn parse_report(json: &[u8]) -> Result<MediaReport, serde_json::Error> {
    let raw: RawReport = serde_json::from_slice(json)?;
    let video = raw.streams.iter().find(|s| s.codec_type == "video").map(|s| VideoStream {
        codec: s.codec_name.clone().unwrap_or_default(),
        width: s.width.unwrap_or(0),
        height: s.height.unwrap_or(0),
        pix_fmt: s.pix_fmt.clone().unwrap_or_default(),
        fps: s.avg_frame_rate.as_deref().map(parse_rate).unwrap_or(0.0),
    });
    let audio = raw.streams.iter().find(|s| s.codec_type == "audio").map(|s| AudioStream {
        codec: s.codec_name.clone().unwrap_or_default(),
        sample_rate: s.sample_rate.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0),
    });
    Ok(MediaReport {
        duration_s: raw.format.duration.as_deref().and_then(|d| d.parse().ok()).unwrap_or(0.0),
        bytes: raw.format.size.as_deref().and_then(|s| s.parse().ok()),
        video,
        audio,
    })
}

/// "30/1" → 30.0, "30000/1001" → 29.97, "0/0" → 0.0.
fn parse_rate(rate: &str) -> f64 {
    match rate.split_once('/') {
        Some((n, d)) => match (n.parse::<f64>(), d.parse::<f64>()) {
            (Ok(n), Ok(d)) if d > 0.0 => n / d,
            _ => 0.0,
        },
        None => rate.parse().unwrap_or(0.0),
    }
}

/// The ffprobe arguments for a full JSON report of `input`.
pub fn probe_args(input: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        ["-v", "error", "-print_format", "json", "-show_format", "-show_streams"].map(Into::into).to_vec();
    args.push(input.into());
    args
}

/// Runs ffprobe on `input`.
pub async fn probe(ffprobe: &Path, input: &Path) -> Result<MediaReport, ProbeError> {
    let inv = Invocation::new(PathBuf::from(ffprobe), probe_args(input), Duration::from_secs(60));
    let out = process::run(&inv).await?;
    Ok(parse_report(&out.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_committed_real_output_of_a_render() {
        let report = parse_report(include_bytes!("../../tests/fixtures/ffprobe-1080x1920-h264-aac.json")).unwrap();
        let v = report.video.unwrap();
        assert_eq!((v.codec.as_str(), v.width, v.height, v.pix_fmt.as_str()), ("h264", 1080, 1920, "yuv420p"));
        assert_eq!(v.fps, 30.0);
        assert_eq!(report.audio.unwrap().codec, "aac");
        assert_eq!(report.duration_s, 2.0);
        assert!(report.bytes.unwrap() > 0);
    }

    #[test]
    fn an_image_has_video_and_no_audio() {
        let report = parse_report(include_bytes!("../../tests/fixtures/ffprobe-png.json")).unwrap();
        assert_eq!(report.video.unwrap().codec, "png");
        assert!(report.audio.is_none());
    }

    #[test]
    fn frame_rates_parse_as_fractions() {
        assert_eq!(parse_rate("30/1"), 30.0);
        assert!((parse_rate("30000/1001") - 29.97).abs() < 0.01);
        assert_eq!(parse_rate("0/0"), 0.0);
    }
}
