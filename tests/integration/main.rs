//! Integration tests: they drive the real `rewheel` binary on sdists the tests make themselves,
//! served from a temporary find-links folder, so the core suite needs no network.

mod architecture;
mod archive_model;
mod bisect;
mod build;
mod cache;
mod check;
mod ci;
mod ci_hostile;
mod ci_layout;
mod common;
mod compare;
mod contain;
mod docker;
mod errors;
mod faults;
mod hostile;
mod packages;
mod pipx;
mod pypi;
mod rebuild;
mod remedies;
mod resolve;
mod snapshots;
mod streams;
mod variations;
