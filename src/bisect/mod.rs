//! Bisection: which upload or which pin bump broke a resolution, a build, reproducibility or a
//! hash. `search` is the single-culprit search over an ordered candidate list.

pub mod engine;
pub mod search;

pub use search::*;
