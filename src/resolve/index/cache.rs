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

/// A page as the cache keeps it: postcard, not JSON. A warm run reads every page of its
/// closure (5 MB for a 40-pin lock), and parsing JSON was half of a warm resolve; length-
/// prefixed strings and times as integers read several times faster.
#[derive(Serialize, Deserialize)]
struct StoredPage {
    fetched_at_ns: i128,
    files: Option<Vec<StoredFile>>,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    filename: String,
    url: String,
    sha256: Option<String>,
    requires_python: Option<String>,
    upload_time_ns: Option<i128>,
    yanked: bool,
    core_metadata: bool,
}

impl StoredPage {
    fn from_page(fetched_at: Timestamp, files: Option<&Vec<IndexFile>>) -> Self {
        Self {
            fetched_at_ns: fetched_at.as_nanosecond(),
            files: files.map(|files| {
                files
                    .iter()
                    .map(|f| StoredFile {
                        filename: f.filename.clone(),
                        url: f.url.clone(),
                        sha256: f.sha256.clone(),
                        requires_python: f.requires_python.clone(),
                        upload_time_ns: f.upload_time.map(|t| t.as_nanosecond()),
                        yanked: f.yanked,
                        core_metadata: f.core_metadata,
                    })
                    .collect()
            }),
        }
    }

    /// `None` when a time is out of range: the record is damaged, and the page is fetched again.
    fn into_page(self) -> Option<CachedPage> {
        let time = |ns: i128| Timestamp::from_nanosecond(ns).ok();
        let files = match self.files {
            None => None,
            Some(files) => Some(
                files
                    .into_iter()
                    .map(|f| {
                        Some(IndexFile {
                            upload_time: match f.upload_time_ns {
                                Some(ns) => Some(time(ns)?),
                                None => None,
                            },
                            filename: f.filename,
                            url: f.url,
                            sha256: f.sha256,
                            requires_python: f.requires_python,
                            yanked: f.yanked,
                            core_metadata: f.core_metadata,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
        };
        Some(CachedPage {
            fetched_at: time(self.fetched_at_ns)?,
            files,
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
            // v2: pages keep only the files this host could use (`IndexFile::could_run_here`);
            // v3: in postcard (`StoredPage`).
            .join("simple-v3")
            .join(format!("{}.bin", &sha256_hex(url.as_bytes())[..32]))
    }

    pub fn page(&self, url: &str) -> Option<CachedPage> {
        let bytes = std::fs::read(self.page_path(url)).ok()?;
        postcard::from_bytes::<StoredPage>(&bytes).ok()?.into_page()
    }

    pub fn store_page(&self, url: &str, files: Option<&Vec<IndexFile>>) {
        let page = StoredPage::from_page(Timestamp::now(), files);
        let bytes = postcard::to_stdvec(&page).expect("pages serialize");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(upload: Option<&str>) -> IndexFile {
        IndexFile {
            filename: "six-1.16.0.tar.gz".into(),
            url: "https://example.org/packages/six-1.16.0.tar.gz".into(),
            sha256: Some("ab".repeat(32)),
            requires_python: Some(">=2.7, !=3.0.*".into()),
            upload_time: upload.map(|t| t.parse().unwrap()),
            yanked: false,
            core_metadata: true,
        }
    }

    #[test]
    fn pages_come_back_as_stored_to_the_nanosecond_and_404s_stay_404s() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let files = vec![file(Some("2021-05-05T14:18:18.379123456Z")), file(None)];
        cache.store_page("https://example.org/simple/six/", Some(&files));
        let page = cache.page("https://example.org/simple/six/").unwrap();
        assert!(page.fetched_at <= Timestamp::now());
        assert_eq!(page.files.as_ref(), Some(&files));

        cache.store_page("https://example.org/simple/nothing/", None);
        let gone = cache.page("https://example.org/simple/nothing/").unwrap();
        assert!(gone.into_result("u").is_err());
    }

    #[test]
    fn a_damaged_page_is_a_miss_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let url = "https://example.org/simple/six/";
        cache.store_page(url, Some(&vec![file(None)]));
        let path = cache.page_path(url);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(cache.page(url).is_none());
        std::fs::write(&path, b"{\"files\": []}").unwrap();
        assert!(cache.page(url).is_none());
    }
}
