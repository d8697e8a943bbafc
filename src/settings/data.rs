//! `[data]` and `[records]`: the embedded mode's folder and where job records live.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Section, SettingsError, check};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub dir: PathBuf,
}

impl Section for DataSettings {
    const SECTION: &'static str = "data";
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct RecordsSettings {
    pub url: String,
}

impl Section for RecordsSettings {
    const SECTION: &'static str = "records";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(
            self.url,
            |v| v.is_empty() || ["sqlite:", "postgres://", "postgresql://"].iter().any(|p| v.starts_with(p)),
            "empty (embedded), sqlite://PATH or postgres://USER@HOST:PORT/DB",
        )
    }
}
