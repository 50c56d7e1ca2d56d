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

/// Read the files that describe the build, checking every entry of the archive.
pub fn read_sdist(path: &Path, limits: Limits) -> Result<SdistFiles, ArchiveError> {
    let mut sink = Keep::default();
    walk(path, limits, &mut sink)?;
    Ok(sink.0)
}

/// Unpack an sdist below `dest` as pip does: modes masked by `umask`, file times those of the
/// unpacking (pip writes each file anew; some sdists carry 1970 times that zip cannot store).
/// Returns the sdist's top folder.
pub fn extract_sdist(
    path: &Path,
    dest: &Path,
    limits: Limits,
    umask: u32,
) -> Result<PathBuf, ArchiveError> {
    let mut sink = Extract {
        dest: dest.to_path_buf(),
        umask,
        top: None,
    };
    walk(path, limits, &mut sink)?;
    Ok(dest.join(sink.top.unwrap_or_default()))
}

/// What to do with each checked entry.
trait Sink {
    fn dir(&mut self, parts: &[String], mode: u32) -> std::io::Result<()>;
    fn file(&mut self, parts: &[String], reader: &mut dyn Read, mode: u32) -> std::io::Result<()>;
    fn link(&mut self, parts: &[String], target: &str, hard: bool) -> std::io::Result<()>;
}

#[derive(Default)]
struct Keep(SdistFiles);

impl Sink for Keep {
    fn dir(&mut self, _: &[String], _: u32) -> std::io::Result<()> {
        Ok(())
    }

    fn file(&mut self, parts: &[String], reader: &mut dyn Read, _: u32) -> std::io::Result<()> {
        let rel = parts[1.min(parts.len())..].join("/");
        if parts.len() < 2 || !wanted(&rel) {
            return Ok(());
        }
        let mut buf = Vec::new();
        reader.take(MAX_WANTED + 1).read_to_end(&mut buf)?;
        // A later copy of the same path overwrites the earlier one when unpacked, so it is the
        // one the backend will read: what we inspect must agree with what gets built.
        if buf.len() as u64 <= MAX_WANTED {
            self.0.files.insert(rel, buf);
        } else {
            self.0.files.remove(&rel);
        }
        Ok(())
    }

    fn link(&mut self, _: &[String], _: &str, _: bool) -> std::io::Result<()> {
        Ok(())
    }
}

struct Extract {
    dest: PathBuf,
    umask: u32,
    top: Option<String>,
}

impl Extract {
    fn path(&mut self, parts: &[String]) -> PathBuf {
        if self.top.is_none() {
            self.top = parts.first().cloned();
        }
        let mut path = self.dest.clone();
        path.extend(parts);
        path
    }
}

impl Sink for Extract {
    fn dir(&mut self, parts: &[String], mode: u32) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(parts);
        std::fs::create_dir_all(&path)?;
        std::fs::set_permissions(
            &path,
            std::fs::Permissions::from_mode((mode | 0o700) & 0o777 & !self.umask),
        )
    }

    fn file(&mut self, parts: &[String], reader: &mut dyn Read, mode: u32) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(parts);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&path)?;
        std::io::copy(reader, &mut file)?;
        let mode = if mode & 0o777 == 0 {
            0o644
        } else {
            mode & 0o777
        };
        file.set_permissions(std::fs::Permissions::from_mode(
            (mode | 0o600) & !self.umask,
        ))
    }

    fn link(&mut self, parts: &[String], target: &str, hard: bool) -> std::io::Result<()> {
        let path = self.path(parts);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if hard {
            // Checked to stay inside; a copy avoids linking to anything outside `dest`.
            std::fs::copy(self.dest.join(target), &path).map(|_| ())
        } else {
            std::os::unix::fs::symlink(target, &path)
        }
    }
}

fn walk(path: &Path, limits: Limits, sink: &mut dyn Sink) -> Result<(), ArchiveError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let file = std::fs::File::open(path).map_err(|err| ArchiveError::Invalid {
        path: path.to_path_buf(),
        message: err.to_string(),
    })?;
    let mut checker = Checker::new(path, limits);
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        walk_tar(&mut checker, flate2::read::GzDecoder::new(file), sink)
    } else if name.ends_with(".tar") {
        walk_tar(&mut checker, file, sink)
    } else if name.ends_with(".zip") {
        walk_zip(&mut checker, file, sink)
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
}

impl<'a> Checker<'a> {
    fn new(path: &'a Path, limits: Limits) -> Self {
        Self {
            path,
            limits,
            total: 0,
            entries: 0,
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

    fn too_large(&self) -> ArchiveError {
        ArchiveError::TooLarge {
            path: self.path.to_path_buf(),
            limit: self.limits.max_unpacked,
        }
    }

    /// An I/O error from the sink: the size limit tripping, or the archive or disk failing.
    fn sink_error(&self, err: std::io::Error) -> ArchiveError {
        if err.kind() == std::io::ErrorKind::FileTooLarge {
            self.too_large()
        } else {
            self.invalid(err)
        }
    }
}

fn walk_tar<R: Read>(
    checker: &mut Checker,
    reader: R,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(reader);
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
        if parts.is_empty() {
            continue;
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644);
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {}
            tar::EntryType::Directory => {
                sink.dir(&parts, mode).map_err(|e| checker.sink_error(e))?;
                continue;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|err| checker.invalid(err))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let hard = kind == tar::EntryType::Link;
                checker.check_link(&name, &parts, &target, hard)?;
                sink.link(&parts, &target, hard)
                    .map_err(|e| checker.sink_error(e))?;
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
        // A tar entry holds exactly its declared size, so the limit can be checked up front.
        checker.add_bytes(entry.size())?;
        sink.file(&parts, &mut entry, mode)
            .map_err(|e| checker.sink_error(e))?;
    }
    Ok(())
}

fn walk_zip(
    checker: &mut Checker,
    file: std::fs::File,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
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
        if parts.is_empty() {
            continue;
        }
        let mode = entry.unix_mode().unwrap_or(0);
        match mode & 0o170000 {
            0o020000 | 0o060000 => return Err(checker.unsafe_entry(&name, "is a device file")),
            0o010000 => return Err(checker.unsafe_entry(&name, "is a FIFO")),
            0o140000 => return Err(checker.unsafe_entry(&name, "is a socket")),
            _ => {}
        }
        if entry.is_dir() {
            sink.dir(&parts, mode).map_err(|e| checker.sink_error(e))?;
            continue;
        }
        if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|err| checker.invalid(err))?;
            checker.check_link(&name, &parts, &target, false)?;
            sink.link(&parts, &target, false)
                .map_err(|e| checker.sink_error(e))?;
            continue;
        }
        // Declared sizes can lie; count what actually comes out of the decompressor.
        let mut limited = Limited {
            inner: &mut entry,
            remaining: checker.limits.max_unpacked.saturating_sub(checker.total),
            read: 0,
        };
        sink.file(&parts, &mut limited, mode)
            .map_err(|e| checker.sink_error(e))?;
        std::io::copy(&mut limited, &mut std::io::sink()).map_err(|e| checker.sink_error(e))?;
        let read = limited.read;
        checker.add_bytes(read)?;
    }
    Ok(())
}

/// A reader that fails once more than `remaining` bytes come out of it.
struct Limited<R> {
    inner: R,
    remaining: u64,
    read: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.remaining {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "size limit",
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_copy_of_a_file_is_the_one_read_as_it_is_the_one_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twice-1.0.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        for text in [
            "[build-system]\nrequires = [\"first\"]\n",
            "[build-system]\nrequires = [\"second\"]\n",
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "twice-1.0/pyproject.toml", text.as_bytes())
                .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        let read = read_sdist(&path, Limits::default()).unwrap();
        assert!(String::from_utf8_lossy(read.get("pyproject.toml").unwrap()).contains("second"));
        let top = extract_sdist(&path, &dir.path().join("out"), Limits::default(), 0o022).unwrap();
        assert!(
            std::fs::read_to_string(top.join("pyproject.toml"))
                .unwrap()
                .contains("second")
        );
    }
}
