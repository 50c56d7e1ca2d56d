//! Stage 2, build: from graphs to wheels. `plan` turns each cell's graph into jobs, `job` is
//! one job's folder, settings and fingerprint (with `frontend.py`, the PEP 517 frontend it
//! runs), `backend` runs it (local in bubblewrap, or docker), `executor` runs them all in
//! dependency order into the store, `run` is one whole run from settings to its recorded
//! ending, and `record` the settings document a run is stored with. `interpreter` and
//! `images` find and make what backends run.

pub mod attempt;
pub mod backend;
pub mod diagnose;
pub mod executor;
pub mod images;
pub mod interpreter;
pub mod job;
pub mod patch;
pub mod plan;
pub mod pocket;
pub mod provenance;
pub mod record;
pub mod report;
pub mod run;
pub mod site_cache;
pub mod wheel_install;

pub use executor::*;
