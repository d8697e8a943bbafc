//! The words of the domain: job specs, jobs, states, manifests. No I/O here.

mod batch;
mod caption_style;
mod echo;
mod job;
mod language;
mod media;
mod notify_request;
mod review;
mod script;
mod spec;
mod spec_limits;

pub use batch::*;
pub use caption_style::*;
pub use echo::{clip, echo};
pub use job::*;
pub use language::{Language, detect_language};
pub use media::*;
pub use notify_request::*;
pub use review::*;
pub use script::*;
pub use spec::*;
pub use spec_limits::*;
