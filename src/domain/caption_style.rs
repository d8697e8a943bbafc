//! Caption styles: the named presets a job can pick and the overrides it may
//! give on top of one, checked once like every other field of a spec.
//!
//! This is what a user asks for; [`crate::media::captions::CaptionStyle`] is
//! what the render draws once a preset, the overrides, the team's font and
//! the safe area are put together.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use crate::error_code as codes;

/// A job's caption look as submitted: a preset, and any of its settings
/// changed. Every field is optional; what is left out comes from the preset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptionStyleRequest {
    /// `classic`, `highlight`, `boxed`, `minimal` or `karaoke`
    /// (`GET /v1/styles` lists them). Default: `captions.default_preset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "highlight")]
    pub preset: Option<String>,
    /// A font family name; fonts fontconfig does not have fall back per character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub font: Option<String>,
    /// Text size in pixels of the 1920-pixel-high frame, 24-200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Colour of the words, `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "#FFFFFF")]
    pub primary_colour: Option<String>,
    /// Colour of the word being spoken (`highlight`) or of the fill (`karaoke`), `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlight_colour: Option<String>,
    /// Colour of the outline around the letters, `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outline_colour: Option<String>,
    /// Outline width in pixels, 0-16 (with `box`, the box's padding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outline: Option<u32>,
    /// Drop shadow distance in pixels, 0-16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<u32>,
    /// Draw an opaque box behind each line.
    #[serde(default, rename = "box", skip_serializing_if = "Option::is_none")]
    pub boxed: Option<bool>,
    /// Colour of the box, `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_colour: Option<String>,
    /// Where in the safe area: `bottom`, `middle` or `top`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Most words on one line, 1-10 (lines also wrap to the safe area's width).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words_per_line: Option<u32>,
    /// Most lines on screen at once, 1-4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lines: Option<u32>,
    /// Show the words in capitals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uppercase: Option<bool>,
    /// How the footage clips are joined: `cut`, `crossfade`, `slide` or `zoom`
    /// (0.4 s each, inside the narration's length). Default: the preset's (`cut` for all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "crossfade")]
    pub transition: Option<String>,
}

/// A colour as `#RRGGBB` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Reads `#RRGGBB` (either case).
    pub fn parse(raw: &str) -> Option<Self> {
        let hex = raw.strip_prefix('#')?;
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        Some(Self(byte(0)?, byte(2)?, byte(4)?))
    }

    /// `#RRGGBB`, upper case.
    pub fn hex(self) -> String {
        format!("#{:02X}{:02X}{:02X}", self.0, self.1, self.2)
    }
}

/// Where captions sit inside the safe area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    Bottom,
    Middle,
    Top,
}

impl Position {
    pub const ALL: [Position; 3] = [Position::Bottom, Position::Middle, Position::Top];

    pub fn as_str(self) -> &'static str {
        match self {
            Position::Bottom => "bottom",
            Position::Middle => "middle",
            Position::Top => "top",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

/// What happens to the word being spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Every word looks the same.
    None,
    /// The word being spoken takes the highlight colour and grows a little.
    Highlight,
    /// Each word fills with the highlight colour from left to right while it is spoken (`\kf`).
    Karaoke,
}

/// How consecutive footage clips are joined. It belongs to the style because
/// it is part of a video's look, picked with the captions (issue 14, part 5);
/// the render turns it into ffmpeg's `concat` or `xfade` ([`crate::media::motion`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// One clip ends, the next begins: no overlap.
    #[default]
    Cut,
    /// The outgoing clip fades into the incoming one.
    Crossfade,
    /// The incoming clip pushes the outgoing one out to the left.
    Slide,
    /// The outgoing clip zooms in and gives way to the incoming one.
    Zoom,
}

impl Transition {
    pub const ALL: [Transition; 4] = [Transition::Cut, Transition::Crossfade, Transition::Slide, Transition::Zoom];

    /// The name a job gives as `caption_style.transition`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cut => "cut",
            Self::Crossfade => "crossfade",
            Self::Slide => "slide",
            Self::Zoom => "zoom",
        }
    }

    /// Parses the field's value; `None` for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The names, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Transition::name).join(", ")
    }
}

/// A named caption look. Sizes are relative to `media.caption_size` so a
/// team that wants bigger captions says so once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Classic,
    Highlight,
    Boxed,
    Minimal,
    Karaoke,
}

/// A preset's settings, as `GET /v1/styles` lists them (before the team's font is applied).
#[derive(Debug, Clone, PartialEq)]
pub struct PresetLook {
    pub description: &'static str,
    /// Size as a percentage of `media.caption_size`.
    pub size_percent: u32,
    pub bold: bool,
    pub primary: Rgb,
    pub highlight: Rgb,
    pub outline_colour: Rgb,
    pub outline: u32,
    pub shadow: u32,
    pub boxed: bool,
    pub box_colour: Rgb,
    pub position: Position,
    pub words_per_line: u32,
    pub max_lines: u32,
    pub uppercase: bool,
    pub effect: Effect,
    /// How the preset joins clips, unless the job says otherwise.
    pub transition: Transition,
}

impl Preset {
    pub const ALL: [Preset; 5] = [Preset::Classic, Preset::Highlight, Preset::Boxed, Preset::Minimal, Preset::Karaoke];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Classic => "classic",
            Preset::Highlight => "highlight",
            Preset::Boxed => "boxed",
            Preset::Minimal => "minimal",
            Preset::Karaoke => "karaoke",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == raw)
    }

    /// The names, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Preset::name).join(", ")
    }

    pub fn look(self) -> PresetLook {
        const WHITE: Rgb = Rgb(0xFF, 0xFF, 0xFF);
        const BLACK: Rgb = Rgb(0, 0, 0);
        let classic = PresetLook {
            description: "White bold words with a black outline, three at a time, at the bottom of the safe area.",
            size_percent: 100,
            bold: true,
            primary: WHITE,
            highlight: Rgb(0xFF, 0xD4, 0x00),
            outline_colour: BLACK,
            outline: 6,
            shadow: 2,
            boxed: false,
            box_colour: BLACK,
            position: Position::Bottom,
            words_per_line: 3,
            max_lines: 1,
            uppercase: false,
            effect: Effect::None,
            // Cut for every preset: jobs from before transitions render as they did.
            transition: Transition::Cut,
        };
        match self {
            Preset::Classic => classic,
            Preset::Highlight => PresetLook {
                description: "Big bold words, up to two lines; the word being spoken turns yellow and grows.",
                size_percent: 110,
                outline: 7,
                words_per_line: 3,
                max_lines: 2,
                position: Position::Middle,
                effect: Effect::Highlight,
                ..classic
            },
            Preset::Boxed => PresetLook {
                description: "White words on an opaque dark box behind each line.",
                size_percent: 85,
                outline: 16,
                shadow: 0,
                boxed: true,
                box_colour: Rgb(0x10, 0x10, 0x18),
                words_per_line: 4,
                max_lines: 2,
                ..classic
            },
            Preset::Minimal => PresetLook {
                description: "Small regular-weight words with a thin outline, a short phrase at a time.",
                size_percent: 70,
                bold: false,
                outline: 2,
                shadow: 0,
                words_per_line: 5,
                max_lines: 2,
                ..classic
            },
            Preset::Karaoke => PresetLook {
                description: "A phrase at a time; each word fills with cyan from left to right as it is spoken.",
                size_percent: 100,
                highlight: Rgb(0x3C, 0xE0, 0xFF),
                words_per_line: 4,
                max_lines: 2,
                effect: Effect::Karaoke,
                ..classic
            },
        }
    }
}

/// A checked caption style choice: a preset (None: the team default) and overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptionChoice {
    pub preset: Option<Preset>,
    pub font: Option<String>,
    pub size: Option<u32>,
    pub primary: Option<Rgb>,
    pub highlight: Option<Rgb>,
    pub outline_colour: Option<Rgb>,
    pub outline: Option<u32>,
    pub shadow: Option<u32>,
    pub boxed: Option<bool>,
    pub box_colour: Option<Rgb>,
    pub position: Option<Position>,
    pub words_per_line: Option<u32>,
    pub max_lines: Option<u32>,
    pub uppercase: Option<bool>,
    pub transition: Option<Transition>,
}

pub const CAPTION_SIZES: std::ops::RangeInclusive<u32> = 24..=200;
pub const CAPTION_OUTLINES: std::ops::RangeInclusive<u32> = 0..=16;
pub const CAPTION_WORDS_PER_LINE: std::ops::RangeInclusive<u32> = 1..=10;
pub const CAPTION_MAX_LINES: std::ops::RangeInclusive<u32> = 1..=4;
const MAX_FONT_CHARS: usize = 64;

/// Whether `name` can be a font family name in an ASS style line and an `\fn`
/// tag: letters (any script), digits, spaces, `-`, `_`, `.`; 1-64 characters.
pub fn is_font_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=MAX_FONT_CHARS).contains(&n)
        && name.trim() == name
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
}

impl CaptionChoice {
    /// Checks every field of `req`; problems name `caption_style.<field>`.
    pub fn parse(req: &CaptionStyleRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let field = |name: &str| format!("caption_style.{name}");
        let preset = match req.preset.as_deref() {
            None => None,
            Some(raw) => match Preset::parse(raw) {
                Some(p) => Some(p),
                None => {
                    errors.push(FieldError::new(
                        &field("preset"),
                        codes::CAPTION_PRESET_UNKNOWN,
                        format!(
                            "caption_style.preset `{}` is not a preset; one of {}",
                            super::echo(raw),
                            Preset::names()
                        ),
                    ));
                    None
                }
            },
        };
        if let Some(font) = &req.font
            && !is_font_name(font)
        {
            errors.push(FieldError::new(
                &field("font"),
                codes::CAPTION_FONT_INVALID,
                format!(
                    "caption_style.font `{}` is not a font family name (1-{MAX_FONT_CHARS} letters, digits, spaces, \
                     '-', '_', '.')",
                    super::echo(font)
                ),
            ));
        }
        let mut colour = |name: &str, value: &Option<String>| -> Option<Rgb> {
            let raw = value.as_deref()?;
            let parsed = Rgb::parse(raw);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    &field(name),
                    codes::CAPTION_COLOUR_INVALID,
                    format!("caption_style.{name} `{}` is not a colour; give it as #RRGGBB", super::echo(raw)),
                ));
            }
            parsed
        };
        let primary = colour("primary_colour", &req.primary_colour);
        let highlight = colour("highlight_colour", &req.highlight_colour);
        let outline_colour = colour("outline_colour", &req.outline_colour);
        let box_colour = colour("box_colour", &req.box_colour);
        let mut ranged = |name: &str, value: Option<u32>, range: std::ops::RangeInclusive<u32>, unit: &str| {
            if let Some(v) = value
                && !range.contains(&v)
            {
                errors.push(FieldError::new(
                    &field(name),
                    codes::CAPTION_VALUE_OUT_OF_RANGE,
                    format!("caption_style.{name} is {v}; allowed {}-{}{unit}", range.start(), range.end()),
                ));
            }
        };
        ranged("size", req.size, CAPTION_SIZES, " pixels");
        ranged("outline", req.outline, CAPTION_OUTLINES, " pixels");
        ranged("shadow", req.shadow, CAPTION_OUTLINES, " pixels");
        ranged("words_per_line", req.words_per_line, CAPTION_WORDS_PER_LINE, "");
        ranged("max_lines", req.max_lines, CAPTION_MAX_LINES, "");
        let position = match req.position.as_deref() {
            None => None,
            Some(raw) => {
                let p = Position::parse(raw);
                if p.is_none() {
                    errors.push(FieldError::new(
                        &field("position"),
                        codes::CAPTION_POSITION_INVALID,
                        format!(
                            "caption_style.position `{}` is not a position; one of bottom, middle, top",
                            super::echo(raw)
                        ),
                    ));
                }
                p
            }
        };
        let transition = match req.transition.as_deref() {
            None => None,
            Some(raw) => {
                let t = Transition::parse(raw);
                if t.is_none() {
                    errors.push(FieldError::new(
                        &field("transition"),
                        codes::CAPTION_TRANSITION_INVALID,
                        format!(
                            "caption_style.transition `{}` is not a transition; one of {}",
                            super::echo(raw),
                            Transition::names()
                        ),
                    ));
                }
                t
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            preset,
            font: req.font.clone(),
            size: req.size,
            primary,
            highlight,
            outline_colour,
            outline: req.outline,
            shadow: req.shadow,
            boxed: req.boxed,
            box_colour,
            position,
            words_per_line: req.words_per_line,
            max_lines: req.max_lines,
            uppercase: req.uppercase,
            transition,
        })
    }

    /// The wire form, as stored with the job.
    pub fn to_request(&self) -> CaptionStyleRequest {
        let hex = |c: Option<Rgb>| c.map(Rgb::hex);
        CaptionStyleRequest {
            preset: self.preset.map(|p| p.name().to_string()),
            font: self.font.clone(),
            size: self.size,
            primary_colour: hex(self.primary),
            highlight_colour: hex(self.highlight),
            outline_colour: hex(self.outline_colour),
            outline: self.outline,
            shadow: self.shadow,
            boxed: self.boxed,
            box_colour: hex(self.box_colour),
            position: self.position.map(|p| p.as_str().to_string()),
            words_per_line: self.words_per_line,
            max_lines: self.max_lines,
            uppercase: self.uppercase,
            transition: self.transition.map(|t| t.name().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(json: &str) -> Vec<(String, String)> {
        let req: CaptionStyleRequest = serde_json::from_str(json).unwrap();
        CaptionChoice::parse(&req).unwrap_err().into_iter().map(|e| (e.field, e.code)).collect()
    }

    #[test]
    fn every_bad_field_is_named_with_its_own_code() {
        let got = problems(
            r##"{"preset":"neon","font":"Evil,Font","size":10,"primary_colour":"white","highlight_colour":"#12345",
                "outline_colour":"#GGGGGG","outline":17,"shadow":99,"box_colour":"#0000001","position":"left",
                "words_per_line":0,"max_lines":5,"transition":"wipe"}"##,
        );
        let want = [
            ("preset", "caption_preset_unknown"),
            ("font", "caption_font_invalid"),
            ("primary_colour", "caption_colour_invalid"),
            ("highlight_colour", "caption_colour_invalid"),
            ("outline_colour", "caption_colour_invalid"),
            ("box_colour", "caption_colour_invalid"),
            ("size", "caption_value_out_of_range"),
            ("outline", "caption_value_out_of_range"),
            ("shadow", "caption_value_out_of_range"),
            ("words_per_line", "caption_value_out_of_range"),
            ("max_lines", "caption_value_out_of_range"),
            ("position", "caption_position_invalid"),
            ("transition", "caption_transition_invalid"),
        ];
        let want: Vec<(String, String)> =
            want.iter().map(|(f, c)| (format!("caption_style.{f}"), c.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn messages_say_what_is_allowed() {
        let req = CaptionStyleRequest { preset: Some("neon".into()), size: Some(500), ..Default::default() };
        let err = CaptionChoice::parse(&req).unwrap_err();
        assert!(err[0].message.contains("classic, highlight, boxed, minimal, karaoke"), "{}", err[0].message);
        assert!(err[1].message.contains("is 500; allowed 24-200 pixels"), "{}", err[1].message);
        let req = CaptionStyleRequest { transition: Some("wipe".into()), ..Default::default() };
        let err = CaptionChoice::parse(&req).unwrap_err();
        assert_eq!(
            err[0].message,
            "caption_style.transition `wipe` is not a transition; one of cut, crossfade, slide, zoom"
        );
    }

    #[test]
    fn a_full_choice_round_trips_through_its_wire_form() {
        let req: CaptionStyleRequest = serde_json::from_str(
            r##"{"preset":"boxed","font":"Noto Sans CJK JP","size":90,"primary_colour":"#ffeeaa","box":true,
                "box_colour":"#101010","position":"top","words_per_line":2,"max_lines":3,"uppercase":true,
                "transition":"slide"}"##,
        )
        .unwrap();
        let choice = CaptionChoice::parse(&req).unwrap();
        assert_eq!(choice.preset, Some(Preset::Boxed));
        assert_eq!(choice.primary, Some(Rgb(0xFF, 0xEE, 0xAA)));
        assert_eq!(choice.transition, Some(Transition::Slide));
        let back = choice.to_request();
        assert_eq!(back.primary_colour.as_deref(), Some("#FFEEAA"), "colours are stored in one spelling");
        assert_eq!(CaptionChoice::parse(&back).unwrap(), choice);
        assert!(serde_json::to_string(&back).unwrap().contains(r#""box":true"#));
    }

    #[test]
    fn unknown_fields_and_odd_font_names_are_refused() {
        assert!(serde_json::from_str::<CaptionStyleRequest>(r#"{"colour":"red"}"#).is_err());
        for bad in ["", " Lead", "a{b}", "x\\fn", "Font,Bold", &"x".repeat(65)] {
            assert!(!is_font_name(bad), "{bad:?}");
        }
        for good in ["DejaVu Sans", "Noto Sans CJK JP", "Noto_Sans-Bold.2", "ヒラギノ角ゴ"] {
            assert!(is_font_name(good), "{good:?}");
        }
    }

    #[test]
    fn presets_have_distinct_names_and_looks() {
        for p in Preset::ALL {
            assert_eq!(Preset::parse(p.name()), Some(p));
        }
        assert_eq!(Preset::Highlight.look().effect, Effect::Highlight);
        assert_eq!(Preset::Karaoke.look().effect, Effect::Karaoke);
        assert!(Preset::Boxed.look().boxed);
        assert!(Preset::Minimal.look().outline < Preset::Classic.look().outline);
        assert!(Preset::ALL.iter().all(|p| p.look().transition == Transition::Cut), "presets keep today's cuts");
    }
}
