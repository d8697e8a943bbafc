//! The words of the domain: job specs, jobs, states, manifests. No I/O here.

mod batch;
mod echo;
mod job;
mod script;
mod spec;
mod spec_limits;

pub use batch::*;
pub use echo::{clip, echo};
pub use job::*;
pub use script::*;
pub use spec::*;
pub use spec_limits::*;
