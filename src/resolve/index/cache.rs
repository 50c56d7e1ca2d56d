//! The on-disk cache: index pages by URL, artifacts and metadata by content hash, and whatever
//! derived data other modules choose to keep there (sdist inspections).

use super::file::{IndexError, IndexFile};
use crate::fsutil::{sha256_hex, write_atomic};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How long an index page is trusted without asking again when no `--exclude-newer` pins the
/// view (PyPI's own `Cache-Control: max-age` for simple pages).
pub const PAGE_TTL_SECS: i64 = 600;

pub struct Cache {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
pub struct CachedPage {
    pub fetched_at: Timestamp,
    /// `None` records that the index answered 404.
    pub files: Option<Vec<IndexFile>>,
}

impl CachedPage {
    pub fn into_result(self, url: &str) -> Result<Vec<IndexFile>, IndexError> {
        self.files.ok_or_else(|| {
            crate::http::HttpError::NotFound {
                url: url.to_string(),
            }
            .into()
        })
    }
}

impl Cache {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn page_path(&self, url: &str) -> PathBuf {
        self.root
            // v2: pages keep only the files this host could use (`IndexFile::could_run_here`).
            .join("simple-v2")
            .join(format!("{}.json", &sha256_hex(url.as_bytes())[..32]))
    }

    pub fn page(&self, url: &str) -> Option<CachedPage> {
        let bytes = std::fs::read(self.page_path(url)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn store_page(&self, url: &str, files: Option<&Vec<IndexFile>>) {
        let page = CachedPage {
            fetched_at: Timestamp::now(),
            files: files.cloned(),
        };
        let bytes = serde_json::to_vec(&page).expect("pages serialize");
        // A cache that cannot be written costs speed, not correctness.
        if let Err(err) = write_atomic(&self.page_path(url), &bytes) {
            tracing::warn!("cannot write the index cache: {err}");
        }
    }

    fn artifact_path(&self, file: &IndexFile) -> PathBuf {
        let key = match &file.sha256 {
            Some(sha) => sha.clone(),
            None => format!("url-{}", sha256_hex(file.url.as_bytes())),
        };
        self.root
            .join("artifacts-v1")
            .join(&key[..2])
            .join(&key)
            .join(&file.filename)
    }

    pub fn artifact(&self, file: &IndexFile) -> Option<PathBuf> {
        let path = self.artifact_path(file);
        path.is_file().then_some(path)
    }

    /// Keep a downloaded file, after checking it against the hash the index gave for it.
    pub fn store_artifact(&self, file: &IndexFile, bytes: &[u8]) -> Result<PathBuf, IndexError> {
        if let Some(expected) = &file.sha256 {
            let got = sha256_hex(bytes);
            if &got != expected {
                return Err(IndexError::HashMismatch {
                    filename: file.filename.clone(),
                    expected: expected.clone(),
                    got,
                });
            }
        }
        let path = self.artifact_path(file);
        write_atomic(&path, bytes).map_err(super::file::io_error(&path))?;
        Ok(path)
    }

    fn metadata_path(&self, file: &IndexFile) -> PathBuf {
        let mut path = self.artifact_path(file);
        path.set_extension("whl.metadata");
        path
    }

    pub fn metadata(&self, file: &IndexFile) -> Option<Vec<u8>> {
        std::fs::read(self.metadata_path(file)).ok()
    }

    pub fn store_metadata(&self, file: &IndexFile, bytes: &[u8]) {
        if let Err(err) = write_atomic(&self.metadata_path(file), bytes) {
            tracing::warn!("cannot write the metadata cache: {err}");
        }
    }

    /// A derived record keyed by content hash, e.g. what inspecting an sdist found.
    pub fn derived<T: for<'de> Deserialize<'de>>(&self, kind: &str, key: &str) -> Option<T> {
        let bytes = std::fs::read(self.root.join(kind).join(format!("{key}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn store_derived<T: Serialize>(&self, kind: &str, key: &str, value: &T) {
        let path = self.root.join(kind).join(format!("{key}.json"));
        let bytes = serde_json::to_vec(value).expect("derived records serialize");
        if let Err(err) = write_atomic(&path, &bytes) {
            tracing::warn!("cannot write the cache: {err}");
        }
    }
}
