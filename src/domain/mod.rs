//! The words of the domain: job specs, jobs, states, manifests. No I/O here.

mod batch;
mod echo;
mod job;
mod spec;

pub use batch::*;
pub use echo::{clip, echo};
pub use job::*;
pub use spec::*;
