//! Bisection: which upload or which pin bump broke a resolution, a build, reproducibility or a
//! hash. `search` is the single-culprit search over an ordered candidate list, `engine` runs
//! the probes and the date and lock searches, `record` keeps each bisection in the store.

pub mod engine;
pub mod record;
pub mod search;

pub use search::*;
