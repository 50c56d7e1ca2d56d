//! Package indexes: the PEP 691/503 simple API over HTTP and local find-links folders, with an
//! on-disk cache that `--offline` can run from.

mod cache;
mod file;
mod find_links;
pub(crate) mod simple;
pub(crate) use file::local_path;

use crate::digest::Sha256;
use crate::http::{Cap, Http, HttpError};
use crate::names::PackageName;
use jiff::Timestamp;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use cache::Cache;
pub use file::{IndexError, IndexFile};

#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// The simple API root; `None` with `--no-index`.
    pub index_url: Option<String>,
    pub find_links: Vec<PathBuf>,
    pub cache_dir: PathBuf,
    pub offline: bool,
    pub attempts: u32,
    /// Pages fetched after this instant list every file uploaded before it, so they never go
    /// stale for a resolution pinned to it.
    pub exclude_newer: Option<Timestamp>,
    /// The most an index page may be, decoded (`--max-page-size`).
    pub max_page: u64,
    /// The most a downloaded or copied file may be when the index gives no size for it.
    pub max_download: u64,
}

pub struct Index {
    config: IndexConfig,
    http: Http,
    cache: Cache,
    pages: Mutex<HashMap<PackageName, Arc<Vec<IndexFile>>>>,
    find_links: Vec<find_links::Folder>,
}

impl Index {
    pub fn new(config: IndexConfig) -> Result<Self, IndexError> {
        let find_links = config
            .find_links
            .iter()
            .map(|dir| find_links::Folder::scan(dir))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            http: Http::new(config.attempts),
            cache: Cache::new(&config.cache_dir),
            config,
            pages: Mutex::default(),
            find_links,
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Every file listed for a project, across find-links folders and the index.
    pub fn project(&self, name: &PackageName) -> Result<Arc<Vec<IndexFile>>, IndexError> {
        if let Some(files) = self.pages.lock().unwrap().get(name) {
            return Ok(files.clone());
        }
        let mut files: Vec<IndexFile> = self
            .find_links
            .iter()
            .flat_map(|folder| folder.files_for(name))
            .collect();
        if let Some(index_url) = &self.config.index_url {
            match self.simple_page(index_url, name) {
                Ok(page) => files.extend(page),
                // A package only in a find-links folder is fine.
                Err(IndexError::Http(HttpError::NotFound { .. })) if !files.is_empty() => {}
                Err(IndexError::Http(HttpError::NotFound { .. })) => {}
                Err(err) => return Err(err),
            }
        }
        if files.is_empty() {
            return Err(IndexError::UnknownPackage {
                name: name.clone(),
                sources: self.describe_sources(),
            });
        }
        let files = Arc::new(files);
        self.pages
            .lock()
            .unwrap()
            .insert(name.clone(), files.clone());
        Ok(files)
    }

    fn describe_sources(&self) -> String {
        let mut parts: Vec<String> = self
            .config
            .find_links
            .iter()
            .map(|p| format!("find-links {}", p.display()))
            .collect();
        if let Some(url) = &self.config.index_url {
            parts.push(format!("the index {url}"));
        }
        if parts.is_empty() {
            "any index (--no-index without --find-links)".into()
        } else {
            parts.join(" or ")
        }
    }

    fn simple_page(
        &self,
        index_url: &str,
        name: &PackageName,
    ) -> Result<Vec<IndexFile>, IndexError> {
        let url = format!("{}/{}/", index_url.trim_end_matches('/'), name);
        if let Some(cached) = self.cache.page(&url) {
            let fresh = match self.config.exclude_newer {
                Some(cutoff) => cached.fetched_at > cutoff,
                None => false,
            } || cached.fetched_at
                > Timestamp::now() - jiff::SignedDuration::from_secs(cache::PAGE_TTL_SECS);
            if fresh || self.config.offline {
                return cached.into_result(&url);
            }
        } else if self.config.offline {
            return Err(IndexError::Offline {
                what: format!("the index page {url}"),
            });
        }
        let response = match self
            .http
            .get(&url, simple::ACCEPT, Cap::page(self.config.max_page))
        {
            Ok(response) => response,
            Err(HttpError::NotFound { url }) => {
                self.cache.store_page(&url, None);
                return Err(HttpError::NotFound { url }.into());
            }
            Err(err) => return Err(err.into()),
        };
        let mut files = simple::parse(&response)?;
        files.retain(IndexFile::could_run_here);
        self.cache.store_page(&url, Some(&files));
        Ok(files)
    }

    /// A local path holding the file's bytes: rewheel's own copy in the cache, whatever the
    /// source (an index, a find-links folder), verified against the listed hash.
    pub fn fetch(&self, file: &IndexFile) -> Result<PathBuf, IndexError> {
        self.fetch_hashed(file).map(|(path, _)| path)
    }

    /// The same, with the sha256 of the copy's bytes, computed while they were written.
    pub fn fetch_hashed(&self, file: &IndexFile) -> Result<(PathBuf, Sha256), IndexError> {
        if let Some(found) = self.cache.artifact(file)? {
            return Ok(found);
        }
        if let Some(path) = local_path(&file.url) {
            // Copied, not used in place: the folder may change while the run goes on.
            return self.cache.adopt(file, &path, self.config.max_download);
        }
        if self.config.offline {
            return Err(IndexError::Offline {
                what: file.filename.clone(),
            });
        }
        let cap = match file.size {
            Some(size) if size <= self.config.max_download => Cap {
                bytes: size,
                hint: "the index lists the file with a smaller size; the server sent more",
            },
            _ => Cap {
                bytes: self.config.max_download,
                hint: "--max-sdist-size BYTES raises the limit",
            },
        };
        let download = self
            .http
            .download(&file.url, &self.cache.scratch_dir(), cap)?;
        let path = self
            .cache
            .store_artifact(file, download.file, &download.sha256)?;
        Ok((path, download.sha256))
    }

    /// The core metadata the index serves beside a file (PEP 658), if it does.
    pub fn core_metadata(&self, file: &IndexFile) -> Result<Option<Vec<u8>>, IndexError> {
        if !file.core_metadata {
            return Ok(None);
        }
        let url = format!(
            "{}.metadata",
            file.url.split('#').next().unwrap_or(&file.url)
        );
        if let Some(bytes) = self.cache.metadata(file) {
            return Ok(Some(bytes));
        }
        if self.config.offline {
            return Err(IndexError::Offline { what: url });
        }
        let response = self
            .http
            .get(&url, "*/*", Cap::page(self.config.max_page))?;
        self.cache.store_metadata(file, &response.body);
        Ok(Some(response.body))
    }
}

/// An instant as users write one: RFC 3339 (`2022-07-15T00:00:00Z`), or a date meaning its
/// midnight UTC (`2022-07-15`).
pub fn parse_instant(s: &str) -> Result<jiff::Timestamp, String> {
    use std::str::FromStr;
    if let Ok(ts) = jiff::Timestamp::from_str(s) {
        return Ok(ts);
    }
    jiff::civil::Date::from_str(s)
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp())
        .map_err(|_| {
            format!(
                "`{s}` is neither an RFC 3339 instant (2022-07-15T00:00:00Z) nor a date (2022-07-15)"
            )
        })
}
