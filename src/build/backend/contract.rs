//! What every backend does: run one job in a folder and say what it runs on.

pub use crate::build::job::Runtime;
use crate::build::job::{JobEnd, JobError, JobSpec};
use std::path::Path;

pub trait Backend: Send + Sync {
    fn runtime(&self, cell: &str) -> Option<Runtime>;
    /// The folder a job runs in on the host, and how the job sees it.
    fn job_dir(&self, spec: &JobSpec) -> (std::path::PathBuf, std::path::PathBuf);
    /// Where a job sees the sdist's top folder unpacked (`DIR` of `--build-path DIR`, as
    /// `tar -xf SDIST -C DIR` would): the same in both backends; `None` when the backend can
    /// only build in the job's own folder.
    fn source_parent(&self) -> Option<std::path::PathBuf> {
        None
    }
    /// The Debian packages installed in the image a cell's jobs run in (as `dpkg-query` in
    /// that image listed them), for provenance; empty where jobs run on the host.
    fn image_packages(&self, _cell: &str) -> Vec<crate::build::images::DebPackage> {
        Vec::new()
    }
    fn run_job<'a>(
        &'a self,
        spec: &'a JobSpec,
        dir: &'a Path,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<JobEnd, JobError>> + Send + 'a>>;
    /// The same backend building in another folder: `host` on the host, `inside` as the job
    /// sees it (the build-path variation).
    fn with_build_path(
        &self,
        host: std::path::PathBuf,
        inside: std::path::PathBuf,
    ) -> std::sync::Arc<dyn Backend>;
    /// Whether a job's view of the world's own files (`/etc/passwd`, `/bin/sh`) can be
    /// replaced: a mount namespace or a container. Without one the host's are what it sees.
    fn replaces_system_files(&self) -> bool {
        true
    }
    /// Remove whatever the jobs of this process left running (after Ctrl-C).
    fn cleanup(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}
