//! The docker backend: one container per job through the Engine API (no `docker` CLI), no
//! network, a non-root uid, all capabilities dropped, no-new-privileges, memory and pids limits,
//! a read-only root and build environment, a timeout, and the container always removed.

use super::contract::{Backend, Runtime};
use crate::build::images::{DPKG_QUERY_FORMAT, DebPackage, Ensured, Image, installed_packages};
use crate::build::job::{self, JobEnd, JobError, JobSpec};
use crate::cell::CellId;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every container of this process carries this label, so none can be left behind.
pub const LABEL: &str = "rewheel.session";
/// Where a job sees its folder, by default.
pub const DEFAULT_ROOT: &str = "/build";

/// A cell's image as the engine has it.
#[derive(Debug, Clone)]
pub struct CellImage {
    pub reference: String,
    /// The engine's image id.
    pub id: String,
    /// The interpreter's version inside.
    pub python: String,
    /// The interpreter the job runs: `python3`, or a supplied image's path.
    pub interpreter: String,
}

pub struct DockerBackend {
    docker: Docker,
    cells: HashMap<CellId, CellImage>,
    /// Per cell: the Debian packages installed in its image, for provenance.
    packages: HashMap<CellId, Vec<DebPackage>>,
    build_root: PathBuf,
    /// Where the job sees its folder inside the container.
    root: PathBuf,
    session: String,
    pub memory_bytes: i64,
    pub pids: i64,
    /// Numbers each job's host folder, so that two runs on one build path never share one.
    sequence: std::sync::atomic::AtomicU64,
    /// Per image: the other of its dash and bash, copied out of it once (the `bin-sh`
    /// variation binds it over the container's /bin/sh).
    shells: std::sync::Arc<tokio::sync::Mutex<HashMap<String, PathBuf>>>,
}

/// `rewheel images list`: every shipped image and the engine's id for it, if built.
pub fn list_images() -> anyhow::Result<Vec<(Image, Option<String>)>> {
    with_engine(|docker| async move {
        let mut listed = Vec::new();
        for image in Image::all() {
            let id = image.id(&docker).await;
            listed.push((image, id));
        }
        Ok(listed)
    })
}

/// `rewheel images build`: each named image (all for none) built unless the engine has it or
/// `force`; `said` hears each as it is done.
pub fn build_images(
    names: &[String],
    scratch: &Path,
    force: bool,
    mut said: impl FnMut(&Image, &Ensured),
) -> anyhow::Result<()> {
    let images = Image::selected(names)?;
    with_engine(|docker| async move {
        for image in images {
            let ensured = image.ensure(&docker, scratch, force).await?;
            said(&image, &ensured);
        }
        Ok(())
    })
}

/// Run `work` with a connection to the engine, on a runtime of its own.
fn with_engine<T, F, Fut>(work: F) -> anyhow::Result<T>
where
    F: FnOnce(Docker) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    use anyhow::Context;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let docker = DockerBackend::connect()
            .await
            .context("no Docker engine answers")?;
        work(docker).await
    })
}

impl DockerBackend {
    pub async fn connect() -> Result<Docker, bollard::errors::Error> {
        let docker = Docker::connect_with_local_defaults()?;
        let docker = docker.negotiate_version().await?;
        docker.ping().await?;
        Ok(docker)
    }

    pub fn new(
        docker: Docker,
        cells: HashMap<CellId, CellImage>,
        build_root: PathBuf,
        session: String,
    ) -> Self {
        job::sweep_orphan_jobs(&build_root);
        Self {
            docker,
            cells,
            packages: HashMap::new(),
            build_root,
            root: PathBuf::from(DEFAULT_ROOT),
            session,
            memory_bytes: 4 << 30,
            pids: 1024,
            sequence: Default::default(),
            shells: Default::default(),
        }
    }

    /// The same engine and images, another folder on both sides (the build-path variation).
    pub fn with_roots(&self, build_root: PathBuf, root: PathBuf) -> Self {
        job::sweep_orphan_jobs(&build_root);
        Self {
            docker: self.docker.clone(),
            cells: self.cells.clone(),
            packages: self.packages.clone(),
            build_root,
            root,
            session: self.session.clone(),
            memory_bytes: self.memory_bytes,
            pids: self.pids,
            sequence: Default::default(),
            shells: self.shells.clone(),
        }
    }

    /// The same backend, knowing the packages installed in each cell's image.
    pub fn with_packages(mut self, packages: HashMap<CellId, Vec<DebPackage>>) -> Self {
        self.packages = packages;
        self
    }

    /// The other of dash and bash than the image's `/bin/sh`, as a file on the host: the
    /// image's own binary (its libraries are the image's), copied out of a container that
    /// never starts, once per image and process.
    async fn other_shell(&self, image: &str) -> Result<PathBuf, String> {
        let mut shells = self.shells.lock().await;
        if let Some(path) = shells.get(image) {
            return Ok(path.clone());
        }
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["readlink".into(), "-f".into(), "/bin/sh".into()]),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (code, out, _) = run_to_end(
            &self.docker,
            body,
            std::time::Duration::from_secs(60),
            &self.session,
        )
        .await
        .map_err(|e| e.to_string())?;
        let current = String::from_utf8_lossy(&out).trim().to_string();
        let other = match current.rsplit('/').next() {
            Some("dash") if code == 0 => "bash",
            Some("bash") if code == 0 => "dash",
            _ => {
                return Err(format!(
                    "the image's /bin/sh is `{current}`, neither dash nor bash"
                ));
            }
        };
        let mut labels = HashMap::new();
        labels.insert(LABEL.to_string(), self.session.clone());
        let created = self
            .docker
            .create_container(
                None::<CreateContainerOptions>,
                ContainerCreateBody {
                    image: Some(image.to_string()),
                    cmd: Some(vec!["true".into()]),
                    network_disabled: Some(true),
                    labels: Some(labels),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let guard = RemoveOnDrop {
            docker: self.docker.clone(),
            id: Some(created.id.clone()),
        };
        let mut archive = Vec::new();
        let mut stream = self.docker.download_from_container(
            &created.id,
            Some(DownloadFromContainerOptions {
                path: format!("/bin/{other}"),
            }),
        );
        while let Some(chunk) = stream.next().await {
            archive.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
            // A shell is a few MiB: an image that says otherwise is not read to its end.
            if archive.len() > 64 << 20 {
                return Err(format!("/bin/{other} in the image is over 64 MiB"));
            }
        }
        guard.remove().await;
        let mut bytes = None;
        let mut tar = tar::Archive::new(archive.as_slice());
        for entry in tar.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            if entry.header().entry_type().is_file() {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| e.to_string())?;
                bytes = Some(data);
                break;
            }
        }
        let bytes = bytes.ok_or_else(|| format!("the image has no /bin/{other} file"))?;
        let folder = self.build_root.join(".shells");
        std::fs::create_dir_all(&folder).map_err(|e| e.to_string())?;
        let path = folder.join(format!(
            "{}-{other}",
            &crate::fsutil::sha256_hex(image.as_bytes())[..16]
        ));
        crate::fsutil::write_atomic(&path, &bytes).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        shells.insert(image.to_string(), path.clone());
        Ok(path)
    }

    /// A label value no other rewheel process uses.
    pub fn new_session() -> String {
        format!(
            "{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_millisecond()
        )
    }

    /// Remove every container of a session, running or not, and wait until the engine lists
    /// none: a removal already under way (from a cancelled job) answers "in progress" at once.
    pub async fn remove_session(docker: &Docker, session: &str) {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![format!("{LABEL}={session}")]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        for _ in 0..80 {
            let Ok(containers) = docker.list_containers(Some(options.clone())).await else {
                tracing::warn!("cannot list this run's containers to remove them");
                return;
            };
            if containers.is_empty() {
                return;
            }
            tracing::debug!("removing {} leftover containers", containers.len());
            for id in containers.into_iter().filter_map(|c| c.id) {
                force_remove(docker, &id).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        tracing::warn!("containers of session {session} are still there after 20 s");
    }

    /// The interpreter version an image runs and the Debian packages installed in it, asked
    /// of the image itself in one container.
    pub async fn probe_image(
        docker: &Docker,
        image: &str,
        interpreter: &str,
        session: &str,
    ) -> Result<(String, Vec<DebPackage>), String> {
        // The version first, on a line of its own; an image without dpkg lists nothing. The
        // interpreter is a checked plain path (the matrix) or python3.
        let script = format!(
            "{interpreter} -S -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' && {{ dpkg-query -W -f '{DPKG_QUERY_FORMAT}' 2>/dev/null || true; }}"
        );
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["sh".into(), "-c".into(), script]),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let out = run_to_end(docker, body, std::time::Duration::from_secs(60), session)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.1);
        if out.0 != 0 {
            return Err(text.into_owned());
        }
        let (version, listing) = text.split_once('\n').unwrap_or((&text, ""));
        Ok((version.trim().to_string(), installed_packages(listing)))
    }
}

/// Create, start, wait (with a timeout), collect logs, and remove a container, whatever happens.
async fn run_to_end(
    docker: &Docker,
    mut body: ContainerCreateBody,
    timeout: std::time::Duration,
    session: &str,
) -> Result<(i64, Vec<u8>, bool), bollard::errors::Error> {
    let mut labels = HashMap::new();
    labels.insert(LABEL.to_string(), session.to_string());
    body.labels = Some(labels);
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await?;
    let id = created.id;
    let guard = RemoveOnDrop {
        docker: docker.clone(),
        id: Some(id.clone()),
    };
    let result = async {
        docker.start_container(&id, None).await?;
        let mut wait = docker.wait_container(&id, None::<WaitContainerOptions>);
        let (code, timed_out) = match tokio::time::timeout(timeout, wait.next()).await {
            Ok(Some(Ok(status))) => (status.status_code, false),
            // A non-zero exit comes back as an error carrying the code.
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                (code, false)
            }
            Ok(Some(Err(err))) => return Err(err),
            Ok(None) => (-1, false),
            Err(_) => (-1, true),
        };
        let mut logs = docker.logs(
            &id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut text = job::CappedLog::default();
        while let Some(chunk) = logs.next().await {
            text.push(&chunk?.into_bytes());
        }
        Ok((code, text.finish(), timed_out))
    }
    .await;
    guard.remove().await;
    result
}

struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
}

/// Remove a container, running or not; a container already gone is not an error here.
async fn force_remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        // Anonymous volumes (the file-order tmpfs) go with their container.
        v: true,
        ..Default::default()
    };
    let _ = docker.remove_container(id, Some(options)).await;
}

impl RemoveOnDrop {
    async fn remove(mut self) {
        if let Some(id) = self.id.take() {
            force_remove(&self.docker, &id).await;
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        // Cancelled (Ctrl-C, a failing sibling): remove in the background; `cleanup` makes sure.
        if let Some(id) = self.id.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let docker = self.docker.clone();
            handle.spawn(async move { force_remove(&docker, &id).await });
        }
    }
}

impl Backend for DockerBackend {
    /// Each container mounts its sources at `--build-path DIR/<Name-Version>`.
    fn source_parent(&self) -> Option<PathBuf> {
        Some(self.build_root.clone())
    }

    fn runtime(&self, cell: &str) -> Option<Runtime> {
        self.cells.get(cell).map(|image| Runtime {
            backend: "docker",
            // Another interpreter of one image is another runtime (a supplied image's path).
            id: match image.interpreter.as_str() {
                "python3" => image.id.clone(),
                path => format!("{} {path}", image.id),
            },
            interpreter_version: image.python.clone(),
        })
    }

    fn image_packages(&self, cell: &str) -> Vec<DebPackage> {
        self.packages.get(cell).cloned().unwrap_or_default()
    }

    fn job_dir(&self, spec: &JobSpec) -> (PathBuf, PathBuf) {
        // The container sees the same paths whatever the host folder is called: a folder of
        // its own per job, as the local backend has, keeps concurrent runs apart.
        let n = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let host = job::jobs_folder(&self.build_root).join(format!(
            "{}-{n}-{}-{}",
            std::process::id(),
            spec.cell,
            spec.folder_name()
        ));
        (host, self.root.clone())
    }

    fn run_job<'a>(
        &'a self,
        spec: &'a JobSpec,
        dir: &'a Path,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<JobEnd, JobError>> + Send + 'a>>
    {
        Box::pin(async move {
            let CellImage {
                reference: image,
                interpreter,
                ..
            } = self
                .cells
                .get(&spec.cell)
                .ok_or_else(|| JobError::Setup(format!("no image for cell {}", spec.cell)))?;
            let root = self.root.as_path();
            let r = root.display();
            let parent = self.build_root.clone();
            let prepared = job::prepare(spec, dir, root, Some(&parent), job::EnvFill::Unpack)?;
            let (uid, gid) = (spec.settings.uid, spec.settings.gid);
            if spec.settings.aslr_off {
                // The engine's default seccomp profile refuses this personality.
                return Err(JobError::Setup(
                    "the aslr variation needs the local backend\nhint: --vary=-aslr".into(),
                ));
            }
            job::hand_over(dir, uid, gid).map_err(|e| {
                JobError::Setup(format!("handing the build folder to uid {uid}: {e}"))
            })?;
            let sh = match spec.settings.other_sh {
                false => None,
                true => Some(self.other_shell(image).await.map_err(|e| {
                    JobError::Setup(format!(
                        "the bin-sh variation cannot vary /bin/sh in {image}: {e}\nhint: --vary=-bin-sh"
                    ))
                })?),
            };
            let env: Vec<String> = job::environment(spec, root, &prepared)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let frontend = spec.settings.personality(
                [interpreter.as_str(), "-S"]
                    .into_iter()
                    .map(String::from)
                    .chain([
                        format!("{r}/frontend/frontend.py"),
                        format!("{r}/request.json"),
                        format!("{r}/result.json"),
                    ])
                    .collect(),
            );
            let script = format!("umask {:03o} && exec {}", spec.umask(), frontend.join(" "));
            let mut tmpfs = HashMap::new();
            tmpfs.insert("/tmp".to_string(), "rw,size=1g".to_string());
            let env_dir = &spec.settings.env_dir;
            let identity = dir.join(job::IDENTITY);
            let mut binds = vec![
                format!("{}:{r}", dir.display()),
                // The build environment and the frontend are inputs: read-only.
                format!("{}:{r}/{env_dir}:ro", dir.join(env_dir).display()),
                format!("{}:{r}/frontend:ro", dir.join("frontend").display()),
                // The job's own user entries, as the local backend binds them.
                format!("{}:/etc/passwd:ro", identity.join("passwd").display()),
                format!("{}:/etc/group:ro", identity.join("group").display()),
            ];
            if let Some(sh) = &sh {
                // The engine resolves /bin/sh's link inside the image: dash's file is
                // covered, as in the local backend.
                binds.push(format!("{}:/bin/sh:ro", sh.display()));
            }
            let mut mounts = Vec::new();
            if !spec.settings.file_order_reversed {
                // The sources where `tar -xf SDIST -C DIR` puts them, DIR the build path.
                binds.push(format!(
                    "{}:{}",
                    dir.join("src").join(&prepared.source_top).display(),
                    parent.join(&prepared.source_top).display()
                ));
            } else {
                binds.push(format!(
                    "{}:{r}/{}:ro",
                    dir.join("src").display(),
                    job::STAGED_SRC
                ));
                // A tmpfs at `src`, inside the job's bind: the engine mounts plain tmpfs
                // mounts before binds (the bind would hide it), but orders volumes with them,
                // so an anonymous volume backed by tmpfs (removed with the container).
                mounts.push(Mount {
                    target: Some(parent.display().to_string()),
                    typ: Some(MountType::VOLUME),
                    volume_options: Some(MountVolumeOptions {
                        driver_config: Some(MountVolumeOptionsDriverConfig {
                            name: Some("local".into()),
                            options: Some(HashMap::from([
                                ("type".to_string(), "tmpfs".to_string()),
                                ("device".to_string(), "tmpfs".to_string()),
                                ("o".to_string(), "size=2g,mode=1777".to_string()),
                            ])),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            let body = ContainerCreateBody {
                image: Some(image.clone()),
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), script]),
                env: Some(env),
                user: Some(format!("{uid}:{gid}")),
                hostname: Some(spec.settings.hostname.clone()),
                domainname: Some(spec.settings.domainname.clone()).filter(|d| !d.is_empty()),
                working_dir: Some(r.to_string()),
                network_disabled: Some(true),
                host_config: Some(HostConfig {
                    binds: Some(binds),
                    mounts: (!mounts.is_empty()).then_some(mounts),
                    network_mode: Some("none".into()),
                    cap_drop: Some(vec!["ALL".into()]),
                    security_opt: Some(vec!["no-new-privileges".into()]),
                    memory: Some(self.memory_bytes),
                    pids_limit: Some(self.pids),
                    readonly_rootfs: Some(true),
                    tmpfs: Some(tmpfs),
                    cpuset_cpus: spec.settings.cpus.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let (code, log, timed_out) =
                run_to_end(&self.docker, body, spec.timeout, &self.session)
                    .await
                    .map_err(|e| JobError::Setup(format!("the Docker engine: {e}")))?;
            if timed_out {
                return Err(JobError::Timeout(spec.timeout, log));
            }
            job::collect(spec, dir, log, code == 0)
        })
    }

    fn with_build_path(&self, host: PathBuf, inside: PathBuf) -> std::sync::Arc<dyn Backend> {
        std::sync::Arc::new(self.with_roots(host, inside))
    }

    fn cleanup(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(Self::remove_session(&self.docker, &self.session))
    }
}
