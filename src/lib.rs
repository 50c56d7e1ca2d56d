//! rewheel: rebuild Python wheels from source across an interpreter × distro matrix and prove
//! whether they are reproducible.
//!
//! Data flows one way: requirements and matrix → index → inspect → resolve (per cell) → graph →
//! cycles and order → report.

pub mod archive;
pub mod backend;
pub mod bisect;
pub mod build;
pub mod cell;
pub mod check;
pub mod ci_plan;
pub mod cli;
pub mod compare;
pub mod compare_report;
pub mod exit;
pub mod expect;
pub mod explain;
pub mod fsutil;
pub mod graph;
pub mod http;
pub mod images;
pub mod index;
pub mod inspect;
pub mod interpreter;
pub mod job;
pub mod matrix;
pub mod metadata;
pub mod names;
pub mod plan;
pub mod prefetch;
pub mod progress;
#[cfg(test)]
mod proptests;
pub mod provider;
pub mod report;
pub mod repository;
pub mod requirements;
pub mod resolve;
pub mod setup_py;
pub mod store;
pub mod variation;
pub mod wheel_diff;
pub mod wheel_install;
