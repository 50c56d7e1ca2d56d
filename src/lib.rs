//! rewheel: rebuild Python wheels from source across an interpreter × distro matrix and prove
//! whether they are reproducible.
//!
//! Data flows one way: requirements and matrix → `resolve` (index, inspect, one graph per
//! cell, cycles, order) → `build` (plan, jobs on a backend) → `store` (runs, jobs, blobs) →
//! `verify` (check, compare, reports); `ci` splits a build into CI jobs and merges them back,
//! `bisect` drives whole runs to find which upload or bump broke one, and `rebuild` drives them
//! to reproduce a wheel someone else published.

// Vocabulary, at the bottom: names, cells, matrices, requirements files, small helpers.
pub mod beneath;
pub mod cell;
pub mod digest;
pub mod doors;
pub mod exit;
pub mod fsutil;
pub mod http;
pub mod ids;
pub mod matrix;
pub mod names;
pub mod packages;
pub mod progress;
pub mod pylock;
pub mod requirements;
pub mod zipdir;

// The stages, in the order data flows through them.
pub mod bisect;
pub mod build;
pub mod ci;
pub mod rebuild;
pub mod resolve;
pub mod store;
pub mod verify;

// The command line: arguments become settings, then one call into a stage; its errors, sorted
// at the edge into exit codes.
pub mod cli;
pub mod errors;

#[cfg(test)]
mod proptests;
