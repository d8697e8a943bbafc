//! `[captions]`: the caption preset jobs get when they name none, and the
//! safe area captions are kept inside.

use serde::Deserialize;

use super::{Section, SettingsError, check, key, rule};
use crate::domain::Preset;
use crate::media::captions::SafeArea;
use crate::media::ffmpeg::{HEIGHT, WIDTH};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct CaptionSettings {
    /// The preset of jobs whose `caption_style` names none.
    pub default_preset: String,
    /// Pixels of the 1080x1920 frame kept clear at each edge (TikTok's tabs,
    /// caption stack and action column).
    pub safe_top: u32,
    pub safe_bottom: u32,
    pub safe_left: u32,
    pub safe_right: u32,
}

/// The smallest safe area that still holds a caption line, in pixels.
pub const MIN_SAFE_WIDTH: u32 = 400;
pub const MIN_SAFE_HEIGHT: u32 = 300;

impl CaptionSettings {
    pub fn preset(&self) -> Preset {
        Preset::parse(&self.default_preset).unwrap_or(Preset::Classic)
    }

    pub fn safe_area(&self) -> SafeArea {
        SafeArea { top: self.safe_top, bottom: self.safe_bottom, left: self.safe_left, right: self.safe_right }
    }
}

impl Section for CaptionSettings {
    const SECTION: &'static str = "captions";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.default_preset, |v| Preset::parse(v).is_some(), Preset::names())?;
        let edge = |v: &u32, frame: u32| *v <= frame / 2;
        check!(self.safe_top, |v| edge(v, HEIGHT), "0-960 pixels")?;
        check!(self.safe_bottom, |v| edge(v, HEIGHT), "0-960 pixels")?;
        check!(self.safe_left, |v| edge(v, WIDTH), "0-540 pixels")?;
        check!(self.safe_right, |v| edge(v, WIDTH), "0-540 pixels")?;
        let width = WIDTH.saturating_sub(self.safe_left + self.safe_right);
        rule(
            key!(safe_right),
            width >= MIN_SAFE_WIDTH,
            || format!("the safe area is {width} pixels wide ({WIDTH} less safe_left and safe_right)"),
            format!("safe_left + safe_right at most {}", WIDTH - MIN_SAFE_WIDTH),
        )?;
        let height = HEIGHT.saturating_sub(self.safe_top + self.safe_bottom);
        rule(
            key!(safe_bottom),
            height >= MIN_SAFE_HEIGHT,
            || format!("the safe area is {height} pixels high ({HEIGHT} less safe_top and safe_bottom)"),
            format!("safe_top + safe_bottom at most {}", HEIGHT - MIN_SAFE_HEIGHT),
        )
    }
}
