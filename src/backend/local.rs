//! The local backend: the cell's interpreter on the host, a fresh folder per job, an allow-listed
//! environment, and no network where the kernel gives the job a namespace of its own.

use super::{Backend, Runtime};
use crate::interpreter::Interpreter;
use crate::job::{self, JobError, JobOutput, JobSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub struct Local {
    /// Interpreter per cell id.
    interpreters: HashMap<String, Interpreter>,
    /// Fixed per (cell, package) so that paths embedded by builds repeat across runs.
    build_root: PathBuf,
    /// `unshare -rn` works here: jobs get an empty network namespace.
    isolate_network: bool,
}

impl Local {
    pub fn new(interpreters: HashMap<String, Interpreter>, build_root: PathBuf) -> Self {
        let isolate_network = std::process::Command::new("unshare")
            .args(["-rn", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !isolate_network {
            tracing::warn!(
                "this kernel does not let rewheel give jobs a network namespace (`unshare -rn` failed); \
                 local builds can reach the network"
            );
        }
        Self {
            interpreters,
            build_root,
            isolate_network,
        }
    }
}

impl Backend for Local {
    fn with_build_path(&self, host: PathBuf, _inside: PathBuf) -> std::sync::Arc<dyn Backend> {
        std::sync::Arc::new(Self {
            interpreters: self.interpreters.clone(),
            build_root: host,
            isolate_network: self.isolate_network,
        })
    }

    fn runtime(&self, cell: &str) -> Option<Runtime> {
        self.interpreters.get(cell).map(|i| Runtime {
            backend: "local",
            id: i.path.display().to_string(),
            interpreter_version: i.version.clone(),
        })
    }

    fn job_dir(&self, spec: &JobSpec) -> (PathBuf, PathBuf) {
        let leaf = spec.folder_name();
        let dir = self.build_root.join(&spec.cell).join(leaf);
        (dir.clone(), dir)
    }

    fn run<'a>(
        &'a self,
        spec: &'a JobSpec,
        dir: &'a Path,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<JobOutput, JobError>> + Send + 'a>>
    {
        Box::pin(async move {
            let interpreter = self
                .interpreters
                .get(&spec.cell)
                .ok_or_else(|| JobError::Setup(format!("no interpreter for cell {}", spec.cell)))?;
            job::prepare(spec, dir, dir)?;
            let log_path = dir.join("build.log");
            let log =
                std::fs::File::create(&log_path).map_err(|e| JobError::Setup(e.to_string()))?;
            let log_err = log
                .try_clone()
                .map_err(|e| JobError::Setup(e.to_string()))?;
            let mut command = if self.isolate_network {
                // A network namespace with nothing in it, and a UTS namespace for the hostname.
                let mut c = tokio::process::Command::new("unshare");
                c.args(["-rnu", "/bin/sh", "-c", "hostname \"$0\" && exec \"$@\""])
                    .arg(&spec.settings.hostname)
                    .arg(&interpreter.path);
                c
            } else {
                tokio::process::Command::new(&interpreter.path)
            };
            command
                .arg("-S")
                .arg(dir.join("frontend/frontend.py"))
                .arg(dir.join("request.json"))
                .arg(dir.join("result.json"))
                .current_dir(dir)
                .env_clear()
                .envs(job::environment(&spec.settings, dir))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .kill_on_drop(true);
            let umask = spec.settings.umask;
            // SAFETY: umask and prctl are async-signal-safe and touch only the child's own state.
            unsafe {
                command.pre_exec(move || {
                    libc::umask(umask as libc::mode_t);
                    // If rewheel is killed (even with SIGKILL), the build dies with it instead
                    // of writing on into a folder a resumed run is about to reuse.
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = command.spawn().map_err(|e| {
                JobError::Setup(format!("starting {}: {e}", interpreter.path.display()))
            })?;
            let status = match tokio::time::timeout(spec.timeout, child.wait()).await {
                Ok(status) => status.map_err(|e| JobError::Setup(e.to_string()))?,
                Err(_) => {
                    let _ = child.kill().await;
                    return Err(JobError::Timeout(
                        spec.timeout,
                        std::fs::read(&log_path).unwrap_or_default(),
                    ));
                }
            };
            let log = std::fs::read(&log_path).unwrap_or_default();
            job::collect(dir, log, status.success())
        })
    }
}
