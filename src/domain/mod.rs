//! The words of the domain: job specs, jobs, states, manifests. No I/O here.

mod job;
mod spec;

pub use job::*;
pub use spec::*;
