//! The team's own media, checked before anything is stored: what the first
//! bytes say the file is (never the name or the `Content-Type` it came
//! with), then what ffprobe finds in it, against `[uploads]`' limits.
//!
//! Both steps are pure over their inputs (bytes, an ffprobe report), so each
//! refusal is unit-tested; the API runs ffprobe between them.

use crate::domain::MediaKind;

use super::ffprobe::MediaReport;

/// What the content's first bytes say a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub family: Family,
    pub content_type: &'static str,
    pub ext: &'static str,
}

/// The groups a sniffed file falls into; ffprobe settles the kind within one
/// (an MP4 may hold only audio).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Image,
    /// A container that may hold video, audio or both (MP4, MOV, WebM).
    Container,
    Audio,
}

/// The file type of `head` (at least the first 16 bytes of a file), or None
/// when it is none of the formats we take.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    let at = |i: usize, magic: &[u8]| head.len() >= i + magic.len() && &head[i..i + magic.len()] == magic;
    let s = |family, content_type, ext| Some(Sniffed { family, content_type, ext });
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return s(Family::Image, "image/png", "png");
    }
    if at(0, b"\xff\xd8\xff") {
        return s(Family::Image, "image/jpeg", "jpg");
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return s(Family::Image, "image/webp", "webp");
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return s(Family::Audio, "audio/wav", "wav");
    }
    if at(4, b"ftyp") {
        if at(8, b"M4A ") {
            return s(Family::Container, "audio/mp4", "m4a");
        }
        if at(8, b"qt  ") {
            return s(Family::Container, "video/quicktime", "mov");
        }
        return s(Family::Container, "video/mp4", "mp4");
    }
    if at(0, b"\x1a\x45\xdf\xa3") {
        return s(Family::Container, "video/webm", "webm");
    }
    if at(0, b"OggS") {
        return s(Family::Audio, "audio/ogg", "ogg");
    }
    if at(0, b"fLaC") {
        return s(Family::Audio, "audio/flac", "flac");
    }
    // An ID3 tag, or an MPEG audio frame's sync word (11 bits set).
    if at(0, b"ID3") || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0) {
        return s(Family::Audio, "audio/mpeg", "mp3");
    }
    None
}

/// What one item may be (`[uploads]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimits {
    pub max_secs: u32,
    pub max_dimension: u32,
}

/// What a checked item is.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaFacts {
    pub kind: MediaKind,
    pub content_type: &'static str,
    pub ext: &'static str,
    pub duration_s: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// Why a sniffed and probed file is not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MediaRefusal {
    /// ffprobe found no stream of the kind its content claims.
    #[error("{0}")]
    Unreadable(String),
    /// Longer or larger than `[uploads]` allows.
    #[error("{0}")]
    OverLimits(String),
}

/// Decides what a file is from its sniffed type and ffprobe's report.
pub fn check(sniffed: Sniffed, report: &MediaReport, limits: MediaLimits) -> Result<MediaFacts, MediaRefusal> {
    let picture = report.video.as_ref().filter(|v| v.width > 0 && v.height > 0);
    let duration = (report.duration_s > 0.0).then_some(report.duration_s);
    let (kind, content_type, ext) = match sniffed.family {
        Family::Image => match picture {
            Some(_) => (MediaKind::Image, sniffed.content_type, sniffed.ext),
            None => {
                return Err(MediaRefusal::Unreadable(format!(
                    "the file starts like {} but holds no picture ffprobe can read",
                    sniffed.content_type
                )));
            }
        },
        // A container with a picture that runs is a clip; one with only sound is audio.
        Family::Container => match (picture, &report.audio) {
            (Some(_), _) if duration.is_some() => (MediaKind::Video, sniffed.content_type, sniffed.ext),
            (_, Some(_)) if duration.is_some() => {
                let (ct, ext) = if sniffed.ext == "webm" { ("audio/webm", "webm") } else { ("audio/mp4", "m4a") };
                (MediaKind::Audio, ct, ext)
            }
            _ => {
                return Err(MediaRefusal::Unreadable(format!(
                    "the file starts like {} but holds no video or audio that plays",
                    sniffed.content_type
                )));
            }
        },
        Family::Audio => match (&report.audio, duration) {
            (Some(_), Some(_)) => (MediaKind::Audio, sniffed.content_type, sniffed.ext),
            _ => {
                return Err(MediaRefusal::Unreadable(format!(
                    "the file starts like {} but holds no audio that plays",
                    sniffed.content_type
                )));
            }
        },
    };
    let (width, height) = match (kind, picture) {
        (MediaKind::Image | MediaKind::Video, Some(v)) => (Some(v.width), Some(v.height)),
        _ => (None, None),
    };
    if let (Some(w), Some(h)) = (width, height)
        && (w > limits.max_dimension || h > limits.max_dimension)
    {
        return Err(MediaRefusal::OverLimits(format!(
            "the picture is {w}x{h}; at most {} pixels each way are allowed (uploads.max_dimension)",
            limits.max_dimension
        )));
    }
    let duration_s = if kind == MediaKind::Image { None } else { duration };
    if let Some(d) = duration_s
        && d > f64::from(limits.max_secs)
    {
        return Err(MediaRefusal::OverLimits(format!(
            "the {} runs {d:.1} s; at most {} s are allowed (uploads.max_secs)",
            kind.as_str(),
            limits.max_secs
        )));
    }
    Ok(MediaFacts { kind, content_type, ext, duration_s, width, height })
}

/// A label for an item: the caller's `name` when it is printable and short,
/// else what it is.
pub fn label(name: Option<&str>, kind: MediaKind) -> String {
    match name.map(str::trim) {
        Some(n) if !n.is_empty() && n.chars().count() <= 120 && !n.chars().any(char::is_control) => n.to_string(),
        _ => kind.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ffprobe::{AudioStream, VideoStream};
    use super::*;

    const LIMITS: MediaLimits = MediaLimits { max_secs: 600, max_dimension: 8192 };

    fn report(duration_s: f64, video: Option<(u32, u32)>, audio: bool) -> MediaReport {
        MediaReport {
            duration_s,
            bytes: Some(1000),
            video: video.map(|(width, height)| VideoStream {
                codec: "h264".into(),
                width,
                height,
                pix_fmt: "yuv420p".into(),
                fps: 30.0,
            }),
            audio: audio.then(|| AudioStream { codec: "aac".into(), sample_rate: 44_100 }),
        }
    }

    #[test]
    fn the_first_bytes_say_what_a_file_is() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some("image/png")),
            (b"\xff\xd8\xff\xe0\0\x10JFIF\0", Some("image/jpeg")),
            (b"RIFF\x24\0\0\0WEBPVP8 ", Some("image/webp")),
            (b"RIFF\x24\0\0\0WAVEfmt ", Some("audio/wav")),
            (b"\0\0\0\x20ftypisom\0\0\x02\0", Some("video/mp4")),
            (b"\0\0\0\x14ftypqt  \0\0\0\0", Some("video/quicktime")),
            (b"\0\0\0\x20ftypM4A \0\0\0\0", Some("audio/mp4")),
            (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", Some("video/webm")),
            (b"OggS\0\x02\0\0\0\0\0\0", Some("audio/ogg")),
            (b"fLaC\0\0\0\x22", Some("audio/flac")),
            (b"ID3\x04\0\0\0\0\0\0", Some("audio/mpeg")),
            (b"\xff\xfb\x90\x64\0\0", Some("audio/mpeg")),
            (b"<!DOCTYPE html><html>", None),
            (b"%PDF-1.7\n", None),
            (b"PK\x03\x04zip", None),
            (b"", None),
        ];
        for (head, want) in cases {
            assert_eq!(sniff(head).map(|s| s.content_type), *want, "{head:?}");
        }
    }

    #[test]
    fn a_container_is_a_clip_when_its_picture_runs_and_audio_when_it_only_sounds() {
        let mp4 = sniff(b"\0\0\0\x20ftypisom").unwrap();
        let clip = check(mp4, &report(4.0, Some((1920, 1080)), true), LIMITS).unwrap();
        assert_eq!(
            (clip.kind, clip.width, clip.height, clip.duration_s),
            (MediaKind::Video, Some(1920), Some(1080), Some(4.0))
        );
        let voice = check(mp4, &report(30.0, None, true), LIMITS).unwrap();
        assert_eq!((voice.kind, voice.content_type, voice.ext), (MediaKind::Audio, "audio/mp4", "m4a"));
        assert!(matches!(check(mp4, &report(0.0, None, false), LIMITS), Err(MediaRefusal::Unreadable(_))));
    }

    #[test]
    fn an_image_has_a_size_and_no_duration() {
        let png = sniff(b"\x89PNG\r\n\x1a\n").unwrap();
        let still = check(png, &report(0.04, Some((1080, 1920)), false), LIMITS).unwrap();
        assert_eq!((still.kind, still.duration_s, still.width), (MediaKind::Image, None, Some(1080)));
        let broken = check(png, &report(0.0, None, false), LIMITS).unwrap_err();
        assert!(broken.to_string().contains("no picture"), "{broken}");
    }

    #[test]
    fn limits_refuse_long_and_huge_items_naming_the_setting() {
        let mp4 = sniff(b"\0\0\0\x20ftypisom").unwrap();
        let long = check(mp4, &report(601.0, Some((640, 360)), true), LIMITS).unwrap_err();
        assert!(matches!(&long, MediaRefusal::OverLimits(m) if m.contains("uploads.max_secs")), "{long}");
        let png = sniff(b"\x89PNG\r\n\x1a\n").unwrap();
        let huge = check(png, &report(0.0, Some((9000, 100)), false), LIMITS).unwrap_err();
        assert!(matches!(&huge, MediaRefusal::OverLimits(m) if m.contains("9000x100")), "{huge}");
    }

    #[test]
    fn audio_must_hold_sound() {
        let wav = sniff(b"RIFF\0\0\0\0WAVE").unwrap();
        assert_eq!(check(wav, &report(3.0, None, true), LIMITS).unwrap().kind, MediaKind::Audio);
        assert!(check(wav, &report(3.0, None, false), LIMITS).is_err());
    }

    #[test]
    fn labels_are_short_and_printable() {
        assert_eq!(label(Some(" beach.png "), MediaKind::Image), "beach.png");
        assert_eq!(label(Some("a\u{7}b"), MediaKind::Image), "image");
        assert_eq!(label(None, MediaKind::Audio), "audio");
    }
}
