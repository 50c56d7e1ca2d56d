//! Rebuilding a wheel someone else published: read what the wheel says about its build
//! (`infer`), build its sdist with that recipe, compare bit for bit, and search a small,
//! bounded set of recipes around the first guess until one matches or the set is spent. The
//! recipe that matched (or came closest) is written as a matrix file `build`/`check` take.

pub mod attest;
pub mod batch;
pub mod infer;
pub mod listing;
pub mod recipe_file;
pub mod report;
pub mod search;

pub use search::{
    Attempt, Outcome, RebuildSettings, Rebuilt, describe, obtain, obtain_with_source, python_of,
    rebuild, wheels_named_by, write_recipe,
};
