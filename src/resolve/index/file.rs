//! What an index lists (one file of a project) and how reading an index fails.

use crate::http::HttpError;
use crate::names::PackageName;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One file an index lists for a project.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute `http(s)://` or `file://` URL.
    pub url: String,
    /// As the index lists it: a claim, made a `Sha256` only where it is used, so a malformed
    /// hash refuses that file when it is fetched, not the whole listing.
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    /// PEP 700 upload time; find-links folders have none.
    pub upload_time: Option<Timestamp>,
    pub yanked: bool,
    /// The index serves this file's METADATA beside it (PEP 658/714).
    pub core_metadata: bool,
    /// The size in bytes the index lists (PEP 700): a download is never larger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl IndexFile {
    /// Whether this file could ever be used on this host: sdists, and wheels for any platform
    /// or for Linux on this machine's architecture. Cells run here (docker on the same
    /// architecture), so macOS, Windows and other architectures' wheels are dead weight: on a
    /// project like Cython they are most of the page, and a warm run reads every page.
    pub fn could_run_here(&self) -> bool {
        let Some(stem) = self.filename.strip_suffix(".whl") else {
            return true;
        };
        let platforms = stem.rsplit('-').next().unwrap_or_default();
        let arch = std::env::consts::ARCH;
        platforms.split('.').any(|p| {
            p == "any"
                || ((p.starts_with("linux_")
                    || p.starts_with("manylinux")
                    || p.starts_with("musllinux"))
                    && p.ends_with(arch))
        })
    }
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
    #[error(
        "{filename}: rejected: larger than {limit} bytes\nhint: --max-sdist-size BYTES raises the limit"
    )]
    TooLarge { filename: String, limit: u64 },
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

/// The file a `file://` URL names (find-links folders, plan locations).
pub(crate) fn local_path(url: &str) -> Option<PathBuf> {
    url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
}

#[cfg(test)]
mod tests {
    use super::IndexFile;

    fn file(name: &str) -> IndexFile {
        IndexFile {
            filename: name.into(),
            url: format!("https://example.invalid/{name}"),
            ..Default::default()
        }
    }

    #[test]
    fn pages_keep_what_this_host_could_use() {
        let arch = std::env::consts::ARCH;
        for kept in [
            "cython-3.0.0.tar.gz".to_string(),
            "six-1.16.0-py2.py3-none-any.whl".into(),
            format!("cython-3.0.0-cp311-cp311-manylinux_2_17_{arch}.manylinux2014_{arch}.whl"),
            format!("x-1-cp311-cp311-linux_{arch}.whl"),
        ] {
            assert!(file(&kept).could_run_here(), "{kept}");
        }
        for dropped in [
            "cython-3.0.0-cp311-cp311-win_amd64.whl",
            "cython-3.0.0-cp311-cp311-macosx_10_9_x86_64.whl",
            "cython-3.0.0-cp311-cp311-manylinux_2_17_s390x.whl",
        ] {
            assert!(!file(dropped).could_run_here(), "{dropped}");
        }
    }
}
