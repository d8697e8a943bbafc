//! `[review]`: the team's review gate, for jobs that do not say.

use serde::Deserialize;

use super::{Section, SettingsError, check};
use crate::domain::Review;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct ReviewSettings {
    /// Where a job that names no `review` of its own stops for a person:
    /// `none`, `script`, `video` or `both`.
    pub default: String,
}

impl ReviewSettings {
    /// `default`, as the option it names (checked at start).
    pub fn default_review(&self) -> Review {
        Review::parse(&self.default).unwrap_or_default()
    }
}

impl Section for ReviewSettings {
    const SECTION: &'static str = "review";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.default, |v| Review::parse(v).is_some(), Review::allowed())
    }
}
