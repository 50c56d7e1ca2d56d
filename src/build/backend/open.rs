//! Choosing and opening the backend for a set of cells: what `build`, `check`, a CI job and a
//! bisection probe all do the same way.

use super::contract::Backend;
use super::docker::CellImage;
use super::docker::DockerBackend;
use super::local::Local;
use crate::build::images::{Image, ImageError};
use crate::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Docker when every cell names an image and an engine answers, else local.
    Auto,
    Local,
    Docker,
}

/// What the caller asks of a backend, as plain settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackendRequest {
    pub kind: BackendKind,
    /// The fixed build path jobs see.
    pub build_path: PathBuf,
    /// Interpreters to prefer for the local backend.
    pub python_paths: Vec<PathBuf>,
    /// Where derived images (a base plus system packages) are debootstrapped.
    pub image_scratch: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the build path {path} cannot be used: {why}\nhint: remove it if it is a leftover, or give --build-path a folder of your own"
    )]
    BuildRoot { path: String, why: String },
    #[error(
        "the docker backend needs a Docker engine, and none answers ({0})\nhint: use --backend local"
    )]
    NoEngine(bollard::errors::Error),
    #[error("cell {0} names no image; the docker backend needs one (see matrices/debian.toml)")]
    NoImage(String),
    #[error("image {reference} is not in the engine\nhint: rewheel images build {name}")]
    ImageMissing { reference: String, name: String },
    #[error("cannot run python3 in {reference}: {message}")]
    Probe { reference: String, message: String },
    #[error(
        "cell {cell}'s supplied image {reference} is not in the engine\nhint: build or load it first (docker build -t {reference} …, docker load); rewheel makes only its shipped images"
    )]
    SuppliedMissing { cell: String, reference: String },
    #[error(
        "cell {cell} runs in a supplied image, but the packages' settings add system packages to it: {packages}\nhint: install them in the image, which rewheel does not make"
    )]
    SuppliedSystem { cell: String, packages: String },
    #[error(
        "cell {0} runs in a supplied image, which only the docker backend runs\nhint: --backend docker (or auto, with an engine answering)"
    )]
    SuppliedLocal(String),
    #[error("cell {cell} wants Python {want} but image {reference} has {found}")]
    WrongPython {
        cell: String,
        want: String,
        reference: String,
        found: String,
    },
    #[error(
        "no interpreter on this host for {0}\nhint: install it, or name one with --python-path"
    )]
    NoInterpreter(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(
        "the packages' settings name system packages this host lacks: {0}\nhint: apt-get install {0}, or use --backend docker, whose images get them"
    )]
    HostLacks(String),
    #[error(
        "cannot ask dpkg which system packages this host has ({0})\nhint: use --backend docker"
    )]
    NoDpkg(String),
}

/// Which of `packages` the host has not installed, as dpkg sees it.
fn host_lacks(packages: &[String]) -> Result<Vec<String>, OpenError> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let output = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${db:Status-Status}\n"])
        .args(packages)
        .output()
        .map_err(|e| OpenError::NoDpkg(e.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let installed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| *status == "installed")
        .map(|(p, _)| p.split(':').next().unwrap_or(p))
        .collect();
    Ok(packages
        .iter()
        .filter(|p| !installed.contains(&p.as_str()))
        .cloned()
        .collect())
}

/// Build a derived image (base recipe plus system packages) and say so on stderr.
async fn derive(
    docker: &bollard::Docker,
    image: &Image,
    scratch: &std::path::Path,
) -> Result<String, OpenError> {
    std::fs::create_dir_all(scratch).map_err(ImageError::Io)?;
    let log = scratch.join(format!("{}-{}.log", image.name, image.digest));
    eprintln!(
        "{}: building {} with {} (once; log: {})",
        image.reference(),
        image.name,
        image.extra.join(" "),
        log.display()
    );
    Ok(image.build(docker, scratch, &log).await?)
}

/// Open the backend for `cells`; `None` when `interrupt` fired while the engine was being
/// asked (whatever was started is removed).
/// The build path is a fixed folder (builds embed it), by default under `/tmp`, where anyone
/// can create it first: as a link to a folder of theirs, or a folder they own, they would
/// receive every job's sources and could change them between jobs. It must be a real folder
/// of rewheel's own user that nobody else can write.
pub fn claim_build_root(path: &std::path::Path) -> Result<(), OpenError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let refuse = |why: String| OpenError::BuildRoot {
        path: path.display().to_string(),
        why,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| refuse(e.to_string()))?;
    }
    match std::fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(refuse(e.to_string())),
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| refuse(e.to_string()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a link".into()));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a folder".into()));
    }
    if meta.uid() != me {
        return Err(refuse(format!(
            "it belongs to uid {}, not to rewheel's uid {me}",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "others can write it (mode {:o})",
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

pub fn open(
    request: &BackendRequest,
    cells: &[Cell],
    runtime: &tokio::runtime::Runtime,
    mut interrupt: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Arc<dyn Backend>>, OpenError> {
    claim_build_root(&request.build_path)?;
    let has_images = cells.iter().all(|c| c.has_image());
    let kind = match request.kind {
        BackendKind::Auto => {
            let (kind, why) = if !has_images {
                (BackendKind::Local, "a cell names no image")
            } else if runtime.block_on(DockerBackend::connect()).is_ok() {
                (
                    BackendKind::Docker,
                    "every cell names an image and an engine answers",
                )
            } else {
                (BackendKind::Local, "no Docker engine answers")
            };
            // Where a build ran decides what its wheels can be compared with: say it.
            crate::progress::note(format_args!(
                "backend: {} ({why})",
                if kind == BackendKind::Docker {
                    "docker"
                } else {
                    "local"
                }
            ));
            kind
        }
        other => other,
    };
    if kind != BackendKind::Docker
        && let Some(cell) = cells.iter().find(|c| c.supplied_image.is_some())
    {
        return Err(OpenError::SuppliedLocal(cell.id.to_string()));
    }
    if kind == BackendKind::Docker {
        let session = DockerBackend::new_session();
        return runtime.block_on(async {
            tokio::select! {
                backend = docker(request, cells, session.clone()) => backend.map(Some),
                _ = interrupt.changed() => {
                    if let Ok(docker) = DockerBackend::connect().await {
                        DockerBackend::remove_session(&docker, &session).await;
                    }
                    Ok(None)
                }
            }
        });
    }
    // Starting bwrap to see that it works, and each interpreter to ask its version, are two
    // process starts every local run pays, warm ones included: side by side, not in turn.
    let isolation = std::thread::spawn(super::sandbox::Isolation::probe);
    let mut interpreters = HashMap::new();
    let mut missing = Vec::new();
    for cell in cells {
        let release = cell.python_version().release();
        match crate::build::interpreter::find(release[0], release[1], &request.python_paths) {
            Some(found) => {
                interpreters.insert(cell.id.clone(), found);
            }
            None => missing.push(format!("{} (python{}.{})", cell.id, release[0], release[1])),
        }
    }
    if !missing.is_empty() {
        return Err(OpenError::NoInterpreter(missing.join(", ")));
    }
    // The host's own version stands in for a pocket's one (`cargo/backports`).
    let mut wanted: Vec<String> = cells
        .iter()
        .flat_map(|c| c.system.iter())
        .map(|p| crate::build::pocket::Pocket::split(p).0.to_string())
        .collect();
    wanted.sort();
    wanted.dedup();
    let absent = host_lacks(&wanted)?;
    if !absent.is_empty() {
        return Err(OpenError::HostLacks(absent.join(" ")));
    }
    let isolation = isolation.join().expect("the sandbox probe does not panic");
    Ok(Some(Arc::new(Local::new(
        interpreters,
        request.build_path.clone(),
        isolation,
    ))))
}

async fn docker(
    request: &BackendRequest,
    cells: &[Cell],
    session: String,
) -> Result<Arc<dyn Backend>, OpenError> {
    let docker = DockerBackend::connect()
        .await
        .map_err(OpenError::NoEngine)?;
    let mut images = HashMap::new();
    let mut packages = HashMap::new();
    for cell in cells {
        if let Some(reference) = &cell.supplied_image {
            let runtime = supplied(&docker, cell, reference, &session).await?;
            packages.insert(cell.id.clone(), runtime.1);
            images.insert(cell.id.clone(), runtime.0);
            continue;
        }
        let Some(name) = &cell.image else {
            return Err(OpenError::NoImage(cell.id.to_string()));
        };
        let image = Image::named(name)?.with_packages(&cell.system);
        let id = match image.id(&docker).await {
            Some(id) => id,
            None if image.extra.is_empty() => {
                return Err(OpenError::ImageMissing {
                    reference: image.reference(),
                    name: name.clone(),
                });
            }
            // The base image plus what the packages' settings name: made here, once, offline
            // as the base was, since no command could name it ahead of the resolution.
            None => derive(&docker, &image, &request.image_scratch).await?,
        };
        let (runtime, installed) = probed(
            &docker,
            cell,
            image.reference(),
            id,
            "python3".into(),
            &session,
        )
        .await?;
        images.insert(cell.id.clone(), runtime);
        packages.insert(cell.id.clone(), installed);
    }
    Ok(Arc::new(
        DockerBackend::new(docker, images, request.build_path.clone(), session)
            .with_packages(packages),
    ))
}

/// A cell's supplied image: used as the engine has it (rewheel cannot make it, so none is
/// derived with system packages), its interpreter where the matrix says.
async fn supplied(
    docker: &bollard::Docker,
    cell: &Cell,
    reference: &str,
    session: &str,
) -> Result<(CellImage, Vec<crate::build::images::DebPackage>), OpenError> {
    if !cell.system.is_empty() {
        return Err(OpenError::SuppliedSystem {
            cell: cell.id.to_string(),
            packages: cell.system.join(" "),
        });
    }
    let id = docker
        .inspect_image(reference)
        .await
        .ok()
        .and_then(|i| i.id)
        .ok_or_else(|| OpenError::SuppliedMissing {
            cell: cell.id.to_string(),
            reference: reference.to_string(),
        })?;
    let interpreter = cell.interpreter.clone().unwrap_or_else(|| "python3".into());
    probed(
        docker,
        cell,
        reference.to_string(),
        id,
        interpreter,
        session,
    )
    .await
}

/// A cell's image asked for its interpreter's version (which must be the cell's) and its
/// Debian packages, in one container.
async fn probed(
    docker: &bollard::Docker,
    cell: &Cell,
    reference: String,
    id: String,
    interpreter: String,
    session: &str,
) -> Result<(CellImage, Vec<crate::build::images::DebPackage>), OpenError> {
    let shown = match interpreter.as_str() {
        "python3" => reference.clone(),
        path => format!("{reference} ({path})"),
    };
    let (python, installed) = DockerBackend::probe_image(docker, &reference, &interpreter, session)
        .await
        .map_err(|e| OpenError::Probe {
            reference: shown.clone(),
            message: e.to_string(),
        })?;
    let want = cell.python_version().release();
    if !python.starts_with(&format!("{}.{}.", want[0], want[1])) {
        return Err(OpenError::WrongPython {
            cell: cell.id.to_string(),
            want: format!("{}.{}", want[0], want[1]),
            reference: shown,
            found: python,
        });
    }
    let image = CellImage {
        reference,
        id,
        python,
        interpreter,
    };
    Ok((image, installed))
}
