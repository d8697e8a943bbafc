//! The words of the domain: job specs, jobs, states, manifests. No I/O here.

/// Defines an id newtype over a UUIDv7 (so ids sort by creation time) that
/// accepts only what its `new` makes, so an id is safe in paths and object keys.
macro_rules! uuid_v7_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }
            /// Accepts only what `new` makes (any UUID, written hyphenated).
            pub fn parse(raw: &str) -> Option<Self> {
                uuid::Uuid::parse_str(raw).ok().map(|u| Self(u.hyphenated().to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

mod batch;
mod caption_style;
mod direct_post;
mod echo;
mod idea;
mod job;
mod language;
mod media;
mod notify_request;
mod photos;
mod review;
mod script;
mod spec;
mod spec_limits;
mod targets;

pub use batch::*;
pub use caption_style::*;
pub use direct_post::*;
pub use echo::{clip, echo};
pub use idea::*;
pub use job::*;
pub use language::{Language, detect_language};
pub use media::*;
pub use notify_request::*;
pub use photos::*;
pub use review::*;
pub use script::*;
pub use spec::*;
pub use spec_limits::*;
pub use targets::*;
