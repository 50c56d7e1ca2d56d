//! Reading sdists, which are untrusted: every entry is checked before anything is believed.
//!
//! An archive is rejected when an entry escapes its folder (`..`, absolute paths, links that
//! point outside), is a device file or FIFO, or when it expands past a size limit.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes the archive may expand to.
    pub max_unpacked: u64,
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_unpacked: 1 << 30,
            max_entries: 200_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: not a valid sdist archive: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: rejected: entry `{entry}` {reason}", path.display())]
    Unsafe {
        path: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("{}: rejected: expands past the limit of {limit} bytes (a decompression bomb?)", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}: rejected: more than {limit} entries", path.display())]
    TooManyEntries { path: PathBuf, limit: usize },
    #[error("{}: unsupported archive format; sdists are .tar.gz or .zip", path.display())]
    Unsupported { path: PathBuf },
}

/// The small files of an sdist that say how it builds, by path relative to its top folder.
#[derive(Debug, Default)]
pub struct SdistFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl SdistFiles {
    pub fn get(&self, rel: &str) -> Option<&[u8]> {
        self.files.get(rel).map(Vec::as_slice)
    }
}

/// Files worth reading: build configuration and metadata, never code beyond setup.py.
fn wanted(rel: &str) -> bool {
    matches!(
        rel,
        "pyproject.toml" | "PKG-INFO" | "setup.cfg" | "setup.py"
    ) || (rel.matches('/').count() <= 2
        && (rel.ends_with(".egg-info/requires.txt") || rel.ends_with(".egg-info/PKG-INFO")))
}

/// Wanted files larger than this are not configuration; they are skipped, not read.
const MAX_WANTED: u64 = 4 << 20;

pub fn read_sdist(path: &Path, limits: Limits) -> Result<SdistFiles, ArchiveError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let file = std::fs::File::open(path).map_err(|err| ArchiveError::Invalid {
        path: path.to_path_buf(),
        message: err.to_string(),
    })?;
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        read_tar(path, flate2::read::GzDecoder::new(file), limits)
    } else if name.ends_with(".tar") {
        read_tar(path, file, limits)
    } else if name.ends_with(".zip") {
        read_zip(path, file, limits)
    } else {
        Err(ArchiveError::Unsupported {
            path: path.to_path_buf(),
        })
    }
}

struct Checker<'a> {
    path: &'a Path,
    limits: Limits,
    total: u64,
    entries: usize,
    files: SdistFiles,
}

impl<'a> Checker<'a> {
    fn new(path: &'a Path, limits: Limits) -> Self {
        Self {
            path,
            limits,
            total: 0,
            entries: 0,
            files: SdistFiles::default(),
        }
    }

    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Unsafe {
            path: self.path.to_path_buf(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn invalid(&self, message: impl std::fmt::Display) -> ArchiveError {
        ArchiveError::Invalid {
            path: self.path.to_path_buf(),
            message: message.to_string(),
        }
    }

    fn count_entry(&mut self) -> Result<(), ArchiveError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                path: self.path.to_path_buf(),
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    fn add_bytes(&mut self, n: u64) -> Result<(), ArchiveError> {
        self.total = self.total.saturating_add(n);
        if self.total > self.limits.max_unpacked {
            return Err(ArchiveError::TooLarge {
                path: self.path.to_path_buf(),
                limit: self.limits.max_unpacked,
            });
        }
        Ok(())
    }

    /// The entry's normalized path components, or why it may not be unpacked.
    fn check_path(&self, entry: &str) -> Result<Vec<String>, ArchiveError> {
        let mut parts = Vec::new();
        if entry.starts_with('/') || entry.starts_with('\\') || entry.contains(":\\") {
            return Err(self.unsafe_entry(entry, "has an absolute path"));
        }
        for component in Path::new(entry).components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(self.unsafe_entry(entry, "escapes the archive with `..`"));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(self.unsafe_entry(entry, "has an absolute path"));
                }
            }
        }
        Ok(parts)
    }

    /// A link's target must stay inside the archive's folder once resolved from where it sits.
    fn check_link(
        &self,
        entry: &str,
        parts: &[String],
        target: &str,
        hard: bool,
    ) -> Result<(), ArchiveError> {
        if target.starts_with('/') {
            return Err(self.unsafe_entry(entry, format!("links to the absolute path `{target}`")));
        }
        // Symlinks resolve from the link's folder, hard links from the archive root.
        let mut depth: Vec<&str> = if hard {
            Vec::new()
        } else {
            parts[..parts.len().saturating_sub(1)]
                .iter()
                .map(String::as_str)
                .collect()
        };
        for component in Path::new(target).components() {
            match component {
                Component::Normal(p) => depth.push(p.to_str().unwrap_or("?")),
                Component::CurDir => {}
                Component::ParentDir => {
                    if depth.pop().is_none() {
                        return Err(self.unsafe_entry(
                            entry,
                            format!("links outside the archive (`{target}`)"),
                        ));
                    }
                }
                _ => {
                    return Err(self.unsafe_entry(entry, format!("links to `{target}`")));
                }
            }
        }
        Ok(())
    }

    /// Keep a wanted file, by its path below the sdist's top folder.
    fn keep(
        &mut self,
        parts: &[String],
        reader: &mut dyn Read,
        size: u64,
    ) -> Result<(), ArchiveError> {
        let rel = parts[1.min(parts.len())..].join("/");
        if parts.len() < 2 || !wanted(&rel) || size > MAX_WANTED {
            return Ok(());
        }
        let mut buf = Vec::new();
        reader
            .take(MAX_WANTED)
            .read_to_end(&mut buf)
            .map_err(|err| self.invalid(err))?;
        // The first copy wins, as it does for the build backend reading the unpacked tree.
        self.files.files.entry(rel).or_insert(buf);
        Ok(())
    }
}

fn read_tar<R: Read>(path: &Path, reader: R, limits: Limits) -> Result<SdistFiles, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut checker = Checker::new(path, limits);
    let entries = archive.entries().map_err(|err| checker.invalid(err))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| checker.invalid(err))?;
        checker.count_entry()?;
        let name = entry
            .path()
            .map_err(|err| checker.invalid(err))?
            .to_string_lossy()
            .into_owned();
        let parts = checker.check_path(&name)?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {}
            tar::EntryType::Directory => continue,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|err| checker.invalid(err))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                checker.check_link(&name, &parts, &target, kind == tar::EntryType::Link)?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(checker.unsafe_entry(&name, "is a device file"));
            }
            tar::EntryType::Fifo => return Err(checker.unsafe_entry(&name, "is a FIFO")),
            other => {
                return Err(
                    checker.unsafe_entry(&name, format!("has an unsupported type {other:?}"))
                );
            }
        }
        let size = entry.size();
        checker.add_bytes(size)?;
        checker.keep(&parts, &mut entry, size)?;
    }
    Ok(checker.files)
}

fn read_zip(path: &Path, file: std::fs::File, limits: Limits) -> Result<SdistFiles, ArchiveError> {
    let mut checker = Checker::new(path, limits);
    let mut archive = zip::ZipArchive::new(file).map_err(|err| checker.invalid(err))?;
    for index in 0..archive.len() {
        checker.count_entry()?;
        let mut entry = archive
            .by_index(index)
            .map_err(|err| checker.invalid(err))?;
        let name = entry
            .name()
            .map_err(|err| checker.invalid(err))?
            .into_owned();
        let parts = checker.check_path(&name)?;
        let mode = entry.unix_mode().unwrap_or(0);
        match mode & 0o170000 {
            0o020000 | 0o060000 => return Err(checker.unsafe_entry(&name, "is a device file")),
            0o010000 => return Err(checker.unsafe_entry(&name, "is a FIFO")),
            0o140000 => return Err(checker.unsafe_entry(&name, "is a socket")),
            _ => {}
        }
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|err| checker.invalid(err))?;
            checker.check_link(&name, &parts, &target, false)?;
            continue;
        }
        // Declared sizes can lie; count what actually comes out of the decompressor.
        let mut counted = CountingReader::new(&mut entry);
        checker.keep(&parts, &mut counted, 0)?;
        let kept = counted.count;
        let rest = std::io::copy(
            &mut counted.inner.take(limits.max_unpacked + 1),
            &mut std::io::sink(),
        )
        .map_err(|err| checker.invalid(err))?;
        checker.add_bytes(kept + rest)?;
    }
    Ok(checker.files)
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> CountingReader<R> {
    fn new(inner: R) -> Self {
        Self { inner, count: 0 }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
