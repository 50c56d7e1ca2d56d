//! The local backend: the cell's interpreter on the host, confined by `sandbox` (bubblewrap
//! where present), a fresh folder per job, an allow-listed environment, resource limits.

use super::contract::{Backend, Runtime};
use super::sandbox::{self, Confinement, Isolation, ResourceLimits};
use crate::build::interpreter::Interpreter;
use crate::build::job::{self, JobEnd, JobError, JobSpec};
use crate::build::site_cache::SiteCache;
use crate::cell::CellId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

/// The site cache of a build root, where jobs cannot write what it shares.
fn sites(build_root: &Path, isolation: Isolation) -> Option<SiteCache> {
    (isolation == Isolation::Bwrap).then(|| SiteCache::new(build_root.join(".sites")))
}

/// `python -m compileall` over a site-cache tree, confined like a job: the tree's modules
/// come from sdists. Exit 1 (a module that does not compile, such as a test fixture) still
/// leaves the bytecode of the rest.
fn compile_bytecode(python: &Path, tree: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let command = [python.display().to_string()]
        .into_iter()
        .chain(["-I", "-m", "compileall", "-q", "."].map(String::from))
        .collect::<Vec<_>>();
    let argv = sandbox::wrap(&Confinement::plain(tree, python, uid, gid), &command)?;
    let mut command = std::process::Command::new(&argv[0]);
    // SAFETY: prctl, setrlimit and in_child touch only the child's own state. The modules
    // compiled come from sdists: the compiler gets a job's limits, and dies with rewheel.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            crate::doors::in_child()?;
            sandbox::apply_limits(ResourceLimits::default())
        });
    }
    let mut child = command
        .args(&argv[1..])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", argv[0]))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if matches!(status.code(), Some(0 | 1)) => return Ok(()),
            Some(status) => return Err(format!("compileall ended with {status}")),
            None if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("compileall took over 120 s".into());
            }
            None => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
}

pub struct Local {
    /// Interpreter per cell id.
    interpreters: HashMap<CellId, Interpreter>,
    /// The fixed build path: jobs see `<root>/<cell>/<name>-<version>`, so that paths embedded
    /// by builds repeat across runs.
    build_root: PathBuf,
    isolation: Isolation,
    limits: ResourceLimits,
    /// Build-environment wheels unpacked once (`<root>/.sites`), for jobs that see their
    /// `env/` read-only: in bubblewrap only.
    sites: Option<SiteCache>,
    /// Numbers the host folders of this process's jobs.
    sequence: AtomicU64,
}

impl Local {
    pub fn new(
        interpreters: HashMap<CellId, Interpreter>,
        build_root: PathBuf,
        isolation: Isolation,
    ) -> Self {
        if isolation == Isolation::Bwrap {
            tracing::info!("local jobs are confined by {}", isolation.describe());
        } else {
            tracing::warn!("local jobs are confined by {}", isolation.describe());
        }
        job::sweep_orphan_jobs(&build_root);
        Self {
            interpreters,
            sites: sites(&build_root, isolation),
            build_root,
            isolation,
            limits: ResourceLimits::default(),
            sequence: AtomicU64::new(0),
        }
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Where a job sees its folder: the fixed build path.
    fn fixed_dir(&self, spec: &JobSpec) -> PathBuf {
        self.build_root.join(&spec.cell).join(spec.folder_name())
    }

    /// The job's folder on the host and as the job sees it.
    fn paths(&self, spec: &JobSpec, host: &Path) -> (PathBuf, PathBuf) {
        match self.isolation {
            Isolation::Bwrap => (host.to_path_buf(), self.fixed_dir(spec)),
            _ => (host.to_path_buf(), host.to_path_buf()),
        }
    }
}

impl Backend for Local {
    fn with_build_path(&self, host: PathBuf, _inside: PathBuf) -> std::sync::Arc<dyn Backend> {
        job::sweep_orphan_jobs(&host);
        std::sync::Arc::new(Self {
            interpreters: self.interpreters.clone(),
            sites: sites(&host, self.isolation),
            build_root: host,
            isolation: self.isolation,
            limits: self.limits,
            sequence: AtomicU64::new(0),
        })
    }

    /// In bubblewrap each job mounts its sources at `--build-path DIR/<Name-Version>` in its
    /// own mount namespace, so jobs that share the path never see each other's; without it,
    /// jobs build in their own folders under DIR.
    fn source_parent(&self) -> Option<PathBuf> {
        (self.isolation == Isolation::Bwrap).then(|| self.build_root.clone())
    }

    fn replaces_system_files(&self) -> bool {
        self.isolation == Isolation::Bwrap
    }

    fn runtime(&self, cell: &str) -> Option<Runtime> {
        self.interpreters.get(cell).map(|i| Runtime {
            backend: "local",
            id: i.path.display().to_string(),
            interpreter_version: i.version.clone(),
        })
    }

    fn job_dir(&self, spec: &JobSpec) -> (PathBuf, PathBuf) {
        let inside = self.fixed_dir(spec);
        if self.isolation != Isolation::Bwrap {
            return (inside.clone(), inside);
        }
        // Each job gets a folder of its own, mounted at the fixed path only inside its sandbox:
        // two runs building the same package at once cannot touch each other's files.
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let host = job::jobs_folder(&self.build_root).join(format!(
            "{}-{n}-{}-{}",
            std::process::id(),
            spec.cell,
            spec.folder_name()
        ));
        (host, inside)
    }

    fn run_job<'a>(
        &'a self,
        spec: &'a JobSpec,
        dir: &'a Path,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<JobEnd, JobError>> + Send + 'a>>
    {
        Box::pin(async move {
            let interpreter = self
                .interpreters
                .get(&spec.cell)
                .ok_or_else(|| JobError::Setup(format!("no interpreter for cell {}", spec.cell)))?;
            let (_, inside) = self.paths(spec, dir);
            let parent = self.source_parent();
            // Bytecode is per interpreter: named by its version and where it is.
            let tag = format!(
                "{}-{}",
                interpreter.version,
                &crate::fsutil::sha256_hex(interpreter.path.as_os_str().as_encoded_bytes())[..12]
            );
            let compile = |tree: &Path| {
                compile_bytecode(
                    &interpreter.path,
                    tree,
                    spec.settings.uid,
                    spec.settings.gid,
                )
            };
            let fill = match &self.sites {
                Some(cache) => job::EnvFill::Link {
                    cache,
                    compile: Some((tag.as_str(), &compile)),
                },
                None => job::EnvFill::Unpack,
            };
            if spec.settings.file_order_reversed && self.isolation != Isolation::Bwrap {
                return Err(JobError::Setup(
                    "the file-order variation needs bubblewrap (a mount namespace for the tmpfs)\nhint: apt-get install bubblewrap, or --vary=-file-order".into(),
                ));
            }
            let bwrap = self.isolation == Isolation::Bwrap;
            let sh = match spec.settings.other_sh {
                false => None,
                true if !bwrap => {
                    return Err(JobError::Setup(
                        "the bin-sh variation needs bubblewrap (a mount namespace to bind the other shell)\nhint: apt-get install bubblewrap, or --vary=-bin-sh".into(),
                    ));
                }
                true => Some(sandbox::other_shell().map_err(|e| {
                    JobError::Setup(format!(
                        "the bin-sh variation cannot vary /bin/sh here: {e}\nhint: --vary=-bin-sh"
                    ))
                })?),
            };
            if spec.settings.faketime.is_some() && !Path::new(job::LIBFAKETIME).is_file() {
                return Err(JobError::Setup(format!(
                    "the time variation needs libfaketime ({} is missing)\nhint: apt-get install libfaketime, or --vary=-time",
                    job::LIBFAKETIME
                )));
            }
            // bubblewrap's read-only bind of `/` remounts every mount below it; one that goes
            // away meanwhile (a container's overlay ending) fails the setup with EINVAL before
            // anything of the job ran. That is the host moving, not the build: try again, in a
            // folder prepared anew, since the message is only text a build could also print and
            // its folder could hold anything a first attempt left (links where binds go).
            let mut attempt = 0;
            let (status, log_file, folder) = loop {
                attempt += 1;
                let prepared = job::prepare(spec, dir, &inside, parent.as_deref(), fill)?;
                let source = parent.as_ref().map(|p| {
                    (
                        dir.join("src").join(&prepared.source_top),
                        p.join(&prepared.source_top),
                    )
                });
                if self.isolation == Isolation::Bwrap {
                    // Mount points must exist where the host view is read-only.
                    let mut points = vec![inside.clone()];
                    points.extend(source.as_ref().map(|(_, at)| at.clone()));
                    for point in points {
                        std::fs::create_dir_all(&point).map_err(|e| {
                            JobError::Setup(format!("creating {}: {e}", point.display()))
                        })?;
                    }
                }
                let folder = crate::beneath::Beneath::open(dir)
                    .map_err(|e| JobError::Setup(format!("opening {}: {e}", dir.display())))?;
                let frontend = spec.settings.personality(vec![
                    interpreter.path.display().to_string(),
                    "-S".into(),
                    inside.join("frontend/frontend.py").display().to_string(),
                    inside.join("request.json").display().to_string(),
                    inside.join("result.json").display().to_string(),
                ]);
                let env = job::environment(spec, &inside, &prepared);
                let identity = dir.join(job::IDENTITY);
                let argv = sandbox::wrap(
                    &Confinement {
                        isolation: self.isolation,
                        host_dir: dir,
                        inside_dir: &inside,
                        interpreter: &interpreter.path,
                        hostname: &spec.settings.hostname,
                        uid: spec.settings.uid,
                        gid: spec.settings.gid,
                        reorder_sources: spec.settings.file_order_reversed,
                        source: source.as_ref().map(|(h, i)| (h.as_path(), i.as_path())),
                        env: &env,
                        env_dir: &spec.settings.env_dir,
                        identity: bwrap.then_some(identity.as_path()),
                        sh: sh.as_deref(),
                    },
                    &frontend,
                )
                .map_err(JobError::Setup)?;
                // Read back by this handle, never by its path: the job may replace the path.
                let log_file = folder
                    .create(Path::new("build.log"))
                    .map_err(|e| JobError::Setup(e.to_string()))?;
                let clone = || {
                    log_file
                        .try_clone()
                        .map_err(|e| JobError::Setup(e.to_string()))
                };
                let (log, log_err) = (clone()?, clone()?);
                let mut command = tokio::process::Command::new(&argv[0]);
                // The job's environment goes into the sandbox (`wrap`); what starts it on the
                // host gets none of it: a plan's PATH or LD_PRELOAD must not choose or load
                // the host's programs.
                command
                    .args(&argv[1..])
                    .current_dir(dir)
                    .env_clear()
                    .env("PATH", job::JOB_PATH)
                    .stdin(Stdio::null())
                    .stdout(log)
                    .stderr(log_err)
                    .kill_on_drop(true);
                let umask = spec.umask();
                let limits = self.limits;
                let bare = self.isolation != Isolation::Bwrap;
                // SAFETY: umask, prctl and setrlimit are async-signal-safe and touch only the
                // child's own state.
                unsafe {
                    command.pre_exec(move || {
                        libc::umask(umask as libc::mode_t);
                        // If rewheel is killed (even with SIGKILL), the sandbox dies with it, and
                        // with the sandbox's first process every process of the job.
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        crate::doors::in_child()?;
                        if bare {
                            // What bubblewrap does for its jobs: a session of their own (no
                            // terminal to push input into) and no privilege gained by exec.
                            libc::setsid();
                            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                        }
                        sandbox::apply_limits(limits)
                    });
                }
                let mut child = command
                    .spawn()
                    .map_err(|e| JobError::Setup(format!("starting {}: {e}", argv[0])))?;
                let status = match tokio::time::timeout(spec.timeout, child.wait()).await {
                    Ok(status) => status.map_err(|e| JobError::Setup(e.to_string()))?,
                    Err(_) => {
                        let _ = child.kill().await;
                        return Err(JobError::Timeout(spec.timeout, job::read_log(&log_file)));
                    }
                };
                let raced = !status.success()
                    && self.isolation == Isolation::Bwrap
                    && setup_raced(&job::read_log(&log_file));
                if !raced || attempt == 3 {
                    break (status, log_file, folder);
                }
                tracing::warn!(
                    "bubblewrap's setup raced a mount going away; starting the job again"
                );
            };
            drop(folder);
            let log = job::read_log(&log_file);
            job::collect(spec, dir, log, status.success())
        })
    }
}

/// bubblewrap failed to set the sandbox up because a mount under `/` changed while it
/// remounted them read-only (its own message, before anything of the job ran).
fn setup_raced(log: &[u8]) -> bool {
    let lines = log.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    lines == 1 && log.starts_with(b"bwrap: Can't bind mount /oldroot/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_sandbox_setup_race_is_retried() {
        let raced = b"bwrap: Can't bind mount /oldroot/ on /newroot/: Unable to apply mount flags: remount \"/newroot/var/lib/docker/fuse-overlayfs/c86c/merged\": Invalid argument\n";
        assert!(super::setup_raced(raced));
        assert!(!super::setup_raced(
            b"Traceback (most recent call last):\nbwrap: Can't bind mount /oldroot/\n"
        ));
        assert!(!super::setup_raced(
            b"bwrap: Can't bind mount /oldroot/ on /newroot/\nerror: the build ran and failed\n"
        ));
    }
}
