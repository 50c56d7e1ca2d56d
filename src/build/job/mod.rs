//! One build job: an sdist, the wheels of its build environment and the settings that matter for
//! reproducibility, in; a wheel and a log, out. Backends only differ in where the job runs.

mod folder;
mod output;
mod spec;
pub use folder::*;
pub use output::*;
pub use spec::*;
