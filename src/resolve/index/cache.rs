//! The on-disk cache: index pages by URL, artifacts and metadata by content hash, and whatever
//! derived data other modules choose to keep there (sdist inspections).

use super::file::{IndexError, IndexFile};
use crate::digest::Sha256;
use crate::fsutil::{sha256_hex, write_atomic};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How long an index page is trusted without asking again when no `--exclude-newer` pins the
/// view (PyPI's own `Cache-Control: max-age` for simple pages).
pub const PAGE_TTL_SECS: i64 = 600;

/// Artifacts by content: `ARTIFACTS/ab/abcd…/FILENAME`.
const ARTIFACTS: &str = "artifacts-v1";

/// The hash an index lists becomes a path: a sha256 only.
fn checked_sha(file: &IndexFile, sha: &str) -> Result<Sha256, IndexError> {
    Sha256::parse(sha).map_err(|_| IndexError::BadPage {
        url: file.url.clone(),
        message: format!("`{sha}` is not a sha256 for {}", file.filename),
    })
}

/// The filename an index lists becomes a path too: a plain name only.
fn check_filename(file: &IndexFile) -> Result<(), IndexError> {
    let name = &file.filename;
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
        return Err(IndexError::BadPage {
            url: file.url.clone(),
            message: format!("`{name}` is not a plain file name"),
        });
    }
    Ok(())
}

pub struct Cache {
    root: PathBuf,
}

/// Local files adopted into `ARTIFACTS`, by path: the `Stamp` each had when it was read.
const LOCAL_STAMPS: &str = "local-v1";

/// A local file's identity when it was read, and what its bytes hashed to. Writing a file in
/// place or replacing it changes its ctime (which no one but the clock's owner can set back)
/// or its inode, so a file whose stamp is unchanged holds the bytes that were hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    sha256: Option<Sha256>,
}

/// A file changed within this long of being read may change again without its times
/// moving (times are kept to a clock tick, two seconds on some file systems): its stamp is not
/// kept, as git does not trust a "racily clean" entry.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// Replace `path` with `bytes` in one rename, without waiting for the disk.
fn write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|err| err.error)?;
    Ok(())
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            sha256: None,
        }
    }

    /// Whether the file's last change was at least `SETTLED` before `read_at`.
    fn settled(&self, read_at: std::time::SystemTime) -> bool {
        let Ok(since_epoch) = read_at.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let cutoff = since_epoch.saturating_sub(SETTLED).as_nanos() as i128;
        self.mtime_ns.max(self.ctime_ns) < cutoff
    }
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
    size: Option<u64>,
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
                        size: f.size,
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
                            size: f.size,
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
            // v3: in postcard (`StoredPage`); v4: with sizes (PEP 700).
            .join("simple-v4")
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

    /// Where an artifact's bytes are kept: under their own sha256, whatever their source.
    fn content_path(&self, sha256: &Sha256, filename: &str) -> PathBuf {
        self.root
            .join(ARTIFACTS)
            .join(&sha256[..2])
            .join(sha256)
            .join(filename)
    }

    /// Which sha256 a download from `url` had, for files an index lists without a hash.
    fn url_pointer(&self, url: &str) -> PathBuf {
        self.root
            .join(ARTIFACTS)
            .join("by-url")
            .join(sha256_hex(url.as_bytes()))
    }

    /// The cached copy of a file and its sha256, if there is one. A file without a listed hash
    /// is found through what its URL last downloaded to; a local file never is (its folder may
    /// have changed since).
    pub fn artifact(&self, file: &IndexFile) -> Result<Option<(PathBuf, Sha256)>, IndexError> {
        check_filename(file)?;
        let sha256 = match &file.sha256 {
            Some(sha) => checked_sha(file, sha)?,
            None if super::file::local_path(&file.url).is_some() => return Ok(None),
            None => match std::fs::read_to_string(self.url_pointer(&file.url)) {
                Ok(sha) => match Sha256::parse(sha.trim()) {
                    Ok(sha) => sha,
                    Err(_) => return Ok(None),
                },
                Err(_) => return Ok(None),
            },
        };
        let path = self.content_path(&sha256, &file.filename);
        Ok(path.is_file().then_some((path, sha256)))
    }

    /// Where downloads and copies are written before they are known by their hash.
    pub fn scratch_dir(&self) -> PathBuf {
        self.root.join(ARTIFACTS)
    }

    /// Keep bytes written to `tmp` (in `scratch_dir`) under their sha256, after checking it
    /// against the hash the index gave for the file.
    pub fn store_artifact(
        &self,
        file: &IndexFile,
        tmp: tempfile::NamedTempFile,
        sha256: &Sha256,
    ) -> Result<PathBuf, IndexError> {
        check_filename(file)?;
        if let Some(expected) = &file.sha256
            && sha256 != expected.as_str()
        {
            return Err(IndexError::HashMismatch {
                filename: file.filename.clone(),
                expected: expected.clone(),
                got: sha256.to_string(),
            });
        }
        let path = self.content_path(sha256, &file.filename);
        let io = |e| super::file::io_error(&path)(e);
        std::fs::create_dir_all(path.parent().expect("content paths have parents")).map_err(io)?;
        // Temporary files are private (0600); what the cache keeps is readable like any file.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
        tmp.as_file().sync_data().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        if file.sha256.is_none() && super::file::local_path(&file.url).is_none() {
            // Costs a download next time if it cannot be written, nothing more.
            let _ = write_atomic(&self.url_pointer(&file.url), sha256.as_bytes());
        }
        Ok(path)
    }

    /// Where the stamp of a local file is kept: by its path.
    fn stamp_path(&self, source: &Path) -> PathBuf {
        self.root.join(LOCAL_STAMPS).join(format!(
            "{}.json",
            sha256_hex(source.as_os_str().as_encoded_bytes())
        ))
    }

    /// The copy a local file was adopted as, if the file is still the one it was then.
    fn adopted(
        &self,
        file: &IndexFile,
        source: &Path,
        stamp: &Stamp,
    ) -> Result<Option<(PathBuf, Sha256)>, IndexError> {
        let Some(known) = std::fs::read(self.stamp_path(source))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Stamp>(&bytes).ok())
        else {
            return Ok(None);
        };
        let Some(sha256) = known.sha256.clone() else {
            return Ok(None);
        };
        let unchanged = Stamp {
            sha256: None,
            ..known
        } == *stamp;
        if !unchanged {
            return Ok(None);
        }
        let path = self.content_path(&sha256, &file.filename);
        if !path.is_file() {
            return Ok(None);
        }
        if let Some(expected) = &file.sha256
            && sha256 != expected.as_str()
        {
            return Err(IndexError::HashMismatch {
                filename: file.filename.clone(),
                expected: expected.clone(),
                got: sha256.to_string(),
            });
        }
        Ok(Some((path, sha256)))
    }

    /// Copy a local file into the cache, hashing while copying, at most `max` bytes: what is
    /// used afterwards is this copy, whatever happens to the original. A file adopted before
    /// and unchanged since (`Stamp`) is not read again: a warm resolve of a find-links folder
    /// of 5,000 sdists copied, hashed and inspected every one of them, each time.
    pub fn adopt(
        &self,
        file: &IndexFile,
        source: &std::path::Path,
        max: u64,
    ) -> Result<(PathBuf, Sha256), IndexError> {
        self.adopt_reading_at(file, source, max, std::time::SystemTime::now())
    }

    /// `adopt`, with the instant the file is read as `read_at` (a test's clock).
    fn adopt_reading_at(
        &self,
        file: &IndexFile,
        source: &std::path::Path,
        max: u64,
        read_at: std::time::SystemTime,
    ) -> Result<(PathBuf, Sha256), IndexError> {
        use std::io::{Read, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let io = super::file::io_error(source);
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(source)
            .map_err(super::file::io_error(source))?;
        let meta = reader.metadata().map_err(super::file::io_error(source))?;
        if !meta.is_file() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let stamp = Stamp::of(&meta);
        if let Some(found) = self.adopted(file, source, &stamp)? {
            return Ok(found);
        }
        let scratch = self.scratch_dir();
        std::fs::create_dir_all(&scratch).map_err(super::file::io_error(&scratch))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&scratch).map_err(super::file::io_error(&scratch))?;
        let mut hasher = Sha256::hasher();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(super::file::io_error(source)(e)),
            };
            size += n as u64;
            if size > max {
                return Err(IndexError::TooLarge {
                    filename: file.filename.clone(),
                    limit: max,
                });
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(super::file::io_error(&scratch))?;
        }
        let sha256 = Sha256::finish(hasher);
        let path = self.store_artifact(file, tmp, &sha256)?;
        if stamp.settled(read_at) {
            let stamp = Stamp {
                sha256: Some(sha256.clone()),
                ..stamp
            };
            let bytes = serde_json::to_vec(&stamp).expect("stamps serialize");
            // Not synced: a stamp lost or cut short by a crash does not parse, and costs one
            // copy.
            let _ = write_unsynced(&self.stamp_path(source), &bytes);
        }
        Ok((path, sha256))
    }

    fn metadata_path(&self, file: &IndexFile) -> PathBuf {
        let key = match file.sha256.as_deref().map(Sha256::parse) {
            Some(Ok(sha)) => sha.into(),
            _ => format!("url-{}", sha256_hex(file.url.as_bytes())),
        };
        let name = match check_filename(file) {
            Ok(()) => file.filename.clone(),
            Err(_) => sha256_hex(file.filename.as_bytes()).into(),
        };
        let mut path = self
            .root
            .join(ARTIFACTS)
            .join(&key[..2])
            .join(&key)
            .join(name);
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

    /// Not synced, as stamps are not: a record lost or cut short by a crash does not parse
    /// and is derived again, while a sync per sdist was half of a cold resolve's waiting.
    pub fn store_derived<T: Serialize>(&self, kind: &str, key: &str, value: &T) {
        let path = self.root.join(kind).join(format!("{key}.json"));
        let bytes = serde_json::to_vec(value).expect("derived records serialize");
        if let Err(err) = write_unsynced(&path, &bytes) {
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
            size: Some(12),
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
    fn a_local_file_is_copied_once_and_its_copy_outlives_a_change_of_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("cache"));
        let source = dir.path().join("six-1.16.0.tar.gz");
        std::fs::write(&source, b"A").unwrap();
        let listed = IndexFile {
            url: url::Url::from_file_path(&source).unwrap().to_string(),
            sha256: None,
            ..file(None)
        };
        // A local file without a listed hash is never taken from the cache by its name.
        assert!(cache.artifact(&listed).unwrap().is_none());
        let (copy, sha) = cache.adopt(&listed, &source, 10).unwrap();
        assert_eq!(sha, sha256_hex(b"A"));
        std::fs::write(&source, b"B").unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), b"A");
        // Asked for by the hash resolution recorded, the copy answers, not the folder.
        let pinned = IndexFile {
            sha256: Some(sha.to_string()),
            ..listed.clone()
        };
        assert_eq!(cache.artifact(&pinned).unwrap(), Some((copy, sha.clone())));
        let err = cache
            .adopt(
                &IndexFile {
                    sha256: Some(sha.to_string()),
                    ..listed.clone()
                },
                &source,
                10,
            )
            .unwrap_err();
        assert!(matches!(err, IndexError::HashMismatch { .. }), "{err}");
        let err = cache.adopt(&listed, &source, 0).unwrap_err();
        assert!(err.to_string().contains("larger than 0 bytes"), "{err}");
    }

    /// A source file and how the folder lists it.
    fn local(dir: &Path, bytes: &[u8]) -> (PathBuf, IndexFile) {
        let source = dir.join("six-1.16.0.tar.gz");
        std::fs::write(&source, bytes).unwrap();
        let listed = IndexFile {
            url: url::Url::from_file_path(&source).unwrap().to_string(),
            sha256: None,
            ..file(None)
        };
        (source, listed)
    }

    fn later() -> std::time::SystemTime {
        std::time::SystemTime::now() + SETTLED * 2
    }

    #[test]
    fn a_local_file_unchanged_since_it_was_read_is_not_read_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("cache"));
        let (source, listed) = local(dir.path(), b"A");
        let (copy, sha) = cache
            .adopt_reading_at(&listed, &source, 10, later())
            .unwrap();
        let inode = std::fs::metadata(&copy).unwrap().ino();
        let again = cache
            .adopt_reading_at(&listed, &source, 10, later())
            .unwrap();
        assert_eq!(again, (copy.clone(), sha.clone()));
        // Read again, the copy would have been written anew (a new inode) under its hash.
        assert_eq!(std::fs::metadata(&copy).unwrap().ino(), inode);
        // The stamp does not excuse a pin it contradicts.
        let pinned = IndexFile {
            sha256: Some("ab".repeat(32)),
            ..listed.clone()
        };
        let err = cache
            .adopt_reading_at(&pinned, &source, 10, later())
            .unwrap_err();
        assert!(matches!(err, IndexError::HashMismatch { .. }), "{err}");
        // Nor a copy that is gone.
        std::fs::remove_file(&copy).unwrap();
        let back = cache
            .adopt_reading_at(&listed, &source, 10, later())
            .unwrap();
        assert_eq!(back, (copy.clone(), sha));
        assert_eq!(std::fs::read(&copy).unwrap(), b"A");
    }

    #[test]
    fn a_local_file_written_in_place_is_read_again_even_with_its_times_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("cache"));
        let (source, listed) = local(dir.path(), b"A");
        let modified = std::fs::metadata(&source).unwrap().modified().unwrap();
        let (_, first) = cache
            .adopt_reading_at(&listed, &source, 10, later())
            .unwrap();
        // Same size, same inode, same mtime: only the ctime tells.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&source)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, b"B")?;
                f.set_modified(modified)
            })
            .unwrap();
        let (copy, second) = cache
            .adopt_reading_at(&listed, &source, 10, later())
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(second, sha256_hex(b"B"));
        assert_eq!(std::fs::read(copy).unwrap(), b"B");
    }

    #[test]
    fn a_local_file_read_just_after_it_changed_keeps_no_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("cache"));
        let (source, listed) = local(dir.path(), b"A");
        cache.adopt(&listed, &source, 10).unwrap();
        assert!(!cache.stamp_path(&source).exists());
        cache
            .adopt_reading_at(&listed, &source, 10, later())
            .unwrap();
        assert!(cache.stamp_path(&source).exists());
    }

    #[test]
    fn a_listed_hash_or_filename_that_is_a_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        for (sha, name) in [
            ("../../../../tmp/x", "six-1.16.0.tar.gz"),
            ("a", "six-1.16.0.tar.gz"),
            (&"ab".repeat(32)[..], "../six-1.16.0.tar.gz"),
        ] {
            let listed = IndexFile {
                sha256: Some(sha.to_string()),
                filename: name.to_string(),
                ..file(None)
            };
            let err = cache.artifact(&listed).unwrap_err();
            assert!(matches!(err, IndexError::BadPage { .. }), "{err}");
        }
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
