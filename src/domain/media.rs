//! The team's own media: images, clips and audio kept under `media/` in the
//! object store, and how a job names them — for the whole video, pinned to
//! one sentence, or as a finished voice-over.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use crate::error_code as codes;

uuid_v7_id! {
    /// The id of one media item.
    MediaId
}

/// What a media item is, as its content (not its name) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A still image, shown with slow motion (Ken Burns) for its stretch.
    Image,
    /// A video clip, played (looped when shorter than its stretch).
    Video,
    /// Music or a finished voice-over.
    Audio,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }

    /// Whether it can be shown on screen (footage), rather than heard.
    pub fn is_visual(self) -> bool {
        matches!(self, Self::Image | Self::Video)
    }
}

impl std::str::FromStr for MediaKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "image" => Ok(Self::Image),
            "video" => Ok(Self::Video),
            "audio" => Ok(Self::Audio),
            other => Err(format!("unknown media kind `{other}`")),
        }
    }
}

/// The team's media a job uses, as submitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobMediaRequest {
    /// Images or clips (media ids) shown across the whole video, one per
    /// sentence in turn, instead of matched footage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub footage: Vec<String>,
    /// Images or clips pinned to single sentences; these win over `footage`
    /// and over matched footage for their sentence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<MediaPinRequest>,
    /// An audio item that is the narration: the narrator is not called, the
    /// script's words are timed across it (needs `script`, not `topic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voiceover: Option<String>,
}

/// One sentence's own picture, as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaPinRequest {
    /// The sentence, counted from 1 as the script reads.
    pub sentence: u32,
    /// The media id of an image or clip.
    pub media: String,
}

/// One sentence's own picture.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPin {
    /// The sentence, counted from 1.
    pub sentence: u32,
    pub media: MediaId,
}

/// The team's media a job uses, checked for shape (that each item exists and
/// is of the right kind is checked against the record store on submission).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMedia {
    pub footage: Vec<MediaId>,
    pub pins: Vec<MediaPin>,
    pub voiceover: Option<MediaId>,
}

/// What a media reference is used for, which decides the kinds it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaRole {
    Footage,
    Voiceover,
}

impl MediaRole {
    /// Whether an item of `kind` can play this role.
    pub fn accepts(self, kind: MediaKind) -> bool {
        match self {
            Self::Footage => kind.is_visual(),
            Self::Voiceover => kind == MediaKind::Audio,
        }
    }

    /// What this role takes, for messages.
    pub fn wants(self) -> &'static str {
        match self {
            Self::Footage => "an image or a video clip",
            Self::Voiceover => "an audio file",
        }
    }
}

/// Most items in `media.footage`, and most pins.
pub const MAX_JOB_MEDIA: usize = 50;

impl JobMedia {
    /// Checks ids, sentence numbers and counts; every problem at once.
    pub fn parse(req: &JobMediaRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut id = |field: String, raw: &str| match MediaId::parse(raw) {
            Some(id) => Some(id),
            None => {
                errors.push(FieldError::new(
                    &field,
                    codes::MEDIA_INVALID,
                    format!("{field}: `{}` is not a media id (POST /v1/media answers one)", super::echo(raw)),
                ));
                None
            }
        };
        let footage: Vec<MediaId> =
            req.footage.iter().enumerate().filter_map(|(i, raw)| id(format!("media.footage[{i}]"), raw)).collect();
        let mut pins = Vec::new();
        for (i, pin) in req.pins.iter().enumerate() {
            if let Some(media) = id(format!("media.pins[{i}].media"), &pin.media) {
                pins.push(MediaPin { sentence: pin.sentence, media });
            }
        }
        let voiceover = req.voiceover.as_deref().and_then(|raw| id("media.voiceover".into(), raw));
        if req.footage.len() > MAX_JOB_MEDIA {
            errors.push(FieldError::new(
                "media.footage",
                codes::MEDIA_INVALID,
                format!("{} items in media.footage; at most {MAX_JOB_MEDIA}", req.footage.len()),
            ));
        }
        if req.pins.len() > MAX_JOB_MEDIA {
            errors.push(FieldError::new(
                "media.pins",
                codes::MEDIA_INVALID,
                format!("{} pins; at most {MAX_JOB_MEDIA}", req.pins.len()),
            ));
        }
        for (i, pin) in req.pins.iter().enumerate() {
            if pin.sentence == 0 {
                errors.push(FieldError::new(
                    &format!("media.pins[{i}].sentence"),
                    codes::MEDIA_INVALID,
                    "sentences are counted from 1",
                ));
            } else if req.pins[..i].iter().any(|p| p.sentence == pin.sentence) {
                errors.push(FieldError::new(
                    &format!("media.pins[{i}].sentence"),
                    codes::MEDIA_INVALID,
                    format!("sentence {} is pinned twice", pin.sentence),
                ));
            }
        }
        if errors.is_empty() { Ok(Self { footage, pins, voiceover }) } else { Err(errors) }
    }

    /// The wire form, as stored and shown.
    pub fn to_request(&self) -> JobMediaRequest {
        JobMediaRequest {
            footage: self.footage.iter().map(|m| m.to_string()).collect(),
            pins: self
                .pins
                .iter()
                .map(|p| MediaPinRequest { sentence: p.sentence, media: p.media.to_string() })
                .collect(),
            voiceover: self.voiceover.as_ref().map(MediaId::to_string),
        }
    }

    /// Every item named, with the field that names it and its role.
    pub fn references(&self) -> Vec<(String, &MediaId, MediaRole)> {
        let mut refs: Vec<(String, &MediaId, MediaRole)> = Vec::new();
        for (i, m) in self.footage.iter().enumerate() {
            refs.push((format!("media.footage[{i}]"), m, MediaRole::Footage));
        }
        for (i, p) in self.pins.iter().enumerate() {
            refs.push((format!("media.pins[{i}].media"), &p.media, MediaRole::Footage));
        }
        if let Some(v) = &self.voiceover {
            refs.push(("media.voiceover".into(), v, MediaRole::Voiceover));
        }
        refs
    }

    /// The media pinned to sentence `index` (counted from 0), if any.
    pub fn pinned(&self, index: usize) -> Option<&MediaId> {
        self.pins.iter().find(|p| p.sentence as usize == index + 1).map(|p| &p.media)
    }
}

/// The object key of a media item's file.
pub fn media_key(id: &MediaId, ext: &str) -> String {
    format!("media/{id}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> String {
        MediaId::new().to_string()
    }

    #[test]
    fn a_well_formed_request_parses_and_round_trips() {
        let req = JobMediaRequest {
            footage: vec![id()],
            pins: vec![MediaPinRequest { sentence: 2, media: id() }],
            voiceover: Some(id()),
        };
        let media = JobMedia::parse(&req).unwrap();
        assert_eq!(media.to_request(), req);
        assert_eq!(media.pinned(1), Some(&media.pins[0].media));
        assert_eq!(media.pinned(0), None);
        let roles: Vec<_> = media.references().into_iter().map(|(f, _, r)| (f, r)).collect();
        assert_eq!(
            roles,
            [
                ("media.footage[0]".to_string(), MediaRole::Footage),
                ("media.pins[0].media".to_string(), MediaRole::Footage),
                ("media.voiceover".to_string(), MediaRole::Voiceover),
            ]
        );
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let good = id();
        let req = JobMediaRequest {
            footage: vec!["../../etc/passwd".into()],
            pins: vec![
                MediaPinRequest { sentence: 0, media: good.clone() },
                MediaPinRequest { sentence: 3, media: good.clone() },
                MediaPinRequest { sentence: 3, media: good },
            ],
            voiceover: Some("x".into()),
        };
        let errors = JobMedia::parse(&req).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["media.footage[0]", "media.voiceover", "media.pins[0].sentence", "media.pins[2].sentence"]);
        assert!(errors.iter().all(|e| e.code == "media_invalid"));
        assert!(errors[0].message.contains("not a media id"), "{}", errors[0].message);
    }

    #[test]
    fn roles_take_the_kinds_they_can_use() {
        assert!(MediaRole::Footage.accepts(MediaKind::Image) && MediaRole::Footage.accepts(MediaKind::Video));
        assert!(!MediaRole::Footage.accepts(MediaKind::Audio));
        assert!(MediaRole::Voiceover.accepts(MediaKind::Audio) && !MediaRole::Voiceover.accepts(MediaKind::Video));
    }
}
