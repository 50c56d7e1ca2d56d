//! Where jobs run: `local` (an interpreter on the host) or `docker` (a container per job).

pub mod docker;
pub mod local;
pub mod open;

pub use open::{BackendKind, BackendRequest, OpenError, open};
pub mod sandbox;

use crate::build::job::{JobError, JobOutput, JobSpec};
use std::path::Path;

/// What a backend tells the fingerprint about the runtime of a cell.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub backend: &'static str,
    /// Image id or interpreter path.
    pub id: String,
    pub interpreter_version: String,
}

pub trait Backend: Send + Sync {
    fn runtime(&self, cell: &str) -> Option<Runtime>;
    /// The folder a job runs in on the host, and how the job sees it.
    fn job_dir(&self, spec: &JobSpec) -> (std::path::PathBuf, std::path::PathBuf);
    fn run<'a>(
        &'a self,
        spec: &'a JobSpec,
        dir: &'a Path,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<JobOutput, JobError>> + Send + 'a>>;
    /// The same backend building in another folder: `host` on the host, `inside` as the job
    /// sees it (the build-path variation).
    fn with_build_path(
        &self,
        host: std::path::PathBuf,
        inside: std::path::PathBuf,
    ) -> std::sync::Arc<dyn Backend>;
    /// Remove whatever the jobs of this process left running (after Ctrl-C).
    fn cleanup(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}
