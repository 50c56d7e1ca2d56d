//! Stage 1, resolve: from requirements to one build graph per cell. Reads indexes and sdists
//! (never runs them), resolves each build environment with pubgrub, finds and explains cycles.
//!
//! `index` (PEP 691/503 pages, find-links, the cache) → `archive` (hostile sdists, read and
//! unpacked) → `metadata`, `setup_py`, `inspect` (what an sdist needs) → `repository`,
//! `prefetch` (candidates and their needs, memoized) → `provider` (pubgrub) → `closure` (one
//! cell's graph) → `graph` (cycles, order) → `explain` (ways out) → `report`.

pub mod archive;
pub mod closure;
pub mod crates;
pub mod explain;
pub mod graph;
pub mod index;
pub mod inspect;
pub mod metadata;
pub mod prefetch;
pub mod provider;
pub mod report;
pub mod repository;
pub mod session;
pub mod setup_py;

pub use closure::*;
