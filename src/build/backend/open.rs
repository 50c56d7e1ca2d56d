//! Choosing and opening the backend for a set of cells: what `build`, `check`, a CI job and a
//! bisection probe all do the same way.

use super::contract::Backend;
use super::docker::DockerBackend;
use super::local::Local;
use crate::build::images::{Image, ImageError};
use crate::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Docker when every cell names an image and an engine answers, else local.
    Auto,
    Local,
    Docker,
}

/// What the caller asks of a backend, as plain settings.
#[derive(Debug, Clone)]
pub struct BackendRequest {
    pub kind: BackendKind,
    /// The fixed build path jobs see.
    pub build_path: PathBuf,
    /// Interpreters to prefer for the local backend.
    pub python_paths: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
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
}

/// Open the backend for `cells`; `None` when `interrupt` fired while the engine was being
/// asked (whatever was started is removed).
pub fn open(
    request: &BackendRequest,
    cells: &[Cell],
    runtime: &tokio::runtime::Runtime,
    mut interrupt: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Arc<dyn Backend>>, OpenError> {
    let has_images = cells.iter().all(|c| c.image.is_some());
    let kind = match request.kind {
        BackendKind::Auto if has_images && runtime.block_on(DockerBackend::connect()).is_ok() => {
            BackendKind::Docker
        }
        BackendKind::Auto => BackendKind::Local,
        other => other,
    };
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
    Ok(Some(Arc::new(Local::new(
        interpreters,
        request.build_path.clone(),
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
    for cell in cells {
        let Some(name) = &cell.image else {
            return Err(OpenError::NoImage(cell.id.to_string()));
        };
        let image = Image::named(name)?;
        let Some(id) = image.id(&docker).await else {
            return Err(OpenError::ImageMissing {
                reference: image.reference(),
                name: name.clone(),
            });
        };
        let python = DockerBackend::probe_python(&docker, &image.reference(), &session)
            .await
            .map_err(|e| OpenError::Probe {
                reference: image.reference(),
                message: e.to_string(),
            })?;
        let want = cell.python_version().release();
        if !python.starts_with(&format!("{}.{}.", want[0], want[1])) {
            return Err(OpenError::WrongPython {
                cell: cell.id.to_string(),
                want: format!("{}.{}", want[0], want[1]),
                reference: image.reference(),
                found: python,
            });
        }
        images.insert(cell.id.clone(), (image.reference(), id, python));
    }
    Ok(Arc::new(DockerBackend::new(
        docker,
        images,
        request.build_path.clone(),
        session,
    )))
}
