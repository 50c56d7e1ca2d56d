//! What an index lists (one file of a project) and how reading an index fails.

use crate::http::HttpError;
use crate::names::PackageName;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One file an index lists for a project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute `http(s)://` or `file://` URL.
    pub url: String,
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    /// PEP 700 upload time; find-links folders have none.
    pub upload_time: Option<Timestamp>,
    pub yanked: bool,
    /// The index serves this file's METADATA beside it (PEP 658/714).
    pub core_metadata: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("package `{name}` is not on {sources}")]
    UnknownPackage { name: PackageName, sources: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url}: the index page could not be read: {message}")]
    BadPage { url: String, message: String },
    #[error("hash mismatch for {filename}: expected sha256 {expected}, got {got}")]
    HashMismatch {
        filename: String,
        expected: String,
        got: String,
    },
    #[error("{what} is not in the cache and --offline forbids fetching it")]
    Offline { what: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}
