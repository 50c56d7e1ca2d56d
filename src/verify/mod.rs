//! Stage 3, verify: is a wheel reproducible, and if not, why. `check` builds again under
//! `variation`s, `check_run` is the whole `check` stage (first build, second build,
//! remedies, expectations, its outcome), `compare` pairs and hashes two sides, `wheel_diff`
//! explains one pair entry by entry (each zip read once, headers checked, by `wheel_zip`),
//! `expect` checks hashes against a requirements file, `moved` says which input moved between
//! two runs' builds of a wheel, `next` the command lines a check suggests after differences
//! (the remedies, then the check with their settings), `report` renders it all.

pub mod check;
pub mod check_run;
pub mod compare;
pub mod expect;
pub mod moved;
pub mod next;
pub mod remedy;
pub mod report;
pub mod variation;
pub mod wheel_diff;
pub mod wheel_zip;
