//! Reading and unpacking sdists, which are hostile data until proven otherwise.
//!
//! One walker checks every entry for both uses (`read_sdist` for `resolve`, `extract_sdist` for
//! a job), and both read the one model of the tree it builds, so what is inspected is what gets
//! built: `resolve` takes the build's files from the model (a hard link is the file it copies,
//! a replaced file is gone), the job unpacks into the top folder the model names. The model
//! holds directories, files and links, one node per path component, and refuses an entry that
//! would be written through a link, that replaces a directory, that lies outside the sdist's one
//! top folder or whose path is longer than pip could unpack; every link is resolved against it,
//! following the links it passes as the kernel would, and must land inside the folder.
//! Unpacking then goes through a directory handle (`cap-std`, `openat2(RESOLVE_BENEATH)` where
//! the kernel has it), so even a bug in the model cannot make a write land outside: two locks,
//! not one.
//!
//! Hard links are copies of a regular file the same archive already wrote, never of whatever is
//! on disk under that name. Sizes count what comes out: file bytes, copies, and for tars the raw
//! stream, so GNU long names and pax headers (which the tar reader holds in memory) are bounded.

use cap_std::fs::{Dir, OpenOptions, PermissionsExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use tree::{Id, Node, ROOT, Tree};

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
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
    #[error("{}: rejected: `{entry}` is over {limit} bytes, too large for a file that describes the build", path.display())]
    ConfigTooLarge {
        path: PathBuf,
        entry: String,
        limit: u64,
    },
    #[error("{}: rejected: tar headers of more than {limit} bytes before one entry (long names or pax records)", path.display())]
    HugeHeaders { path: PathBuf, limit: u64 },
    #[error("{}: rejected: more than {limit} entries", path.display())]
    TooManyEntries { path: PathBuf, limit: usize },
    #[error("{}: unsupported archive format; sdists are .tar.gz or .zip", path.display())]
    Unsupported { path: PathBuf },
    /// Writing the unpacked tree failed for a reason of the host (disk full, permissions).
    #[error("unpacking {} into {}: {source}", path.display(), dest.display())]
    Write {
        path: PathBuf,
        dest: PathBuf,
        source: std::io::Error,
    },
}

impl ArchiveError {
    /// True when the archive itself is at fault (hostile or broken), not the host.
    pub fn is_input(&self) -> bool {
        !matches!(self, ArchiveError::Write { .. })
    }
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

/// Files worth reading: build configuration and metadata, never code beyond setup.py and the
/// build hooks pdm-backend and hatchling load by default (what environment they read).
fn wanted(rel: &str) -> bool {
    matches!(
        rel,
        "pyproject.toml" | "PKG-INFO" | "setup.cfg" | "setup.py" | "pdm_build.py" | "hatch_build.py"
    ) || (rel.matches('/').count() <= 2
        && (rel.ends_with(".egg-info/requires.txt") || rel.ends_with(".egg-info/PKG-INFO")))
        // Rust extensions: the crates a job needs, vendored before it runs.
        // (`src/rust/Cargo.lock` at most: deeper ones are test data, as meson's `test cases/`).
        || (rel.matches('/').count() <= 2 && (rel == "Cargo.lock" || rel.ends_with("/Cargo.lock")))
}

/// A file that describes the build and is larger than this is refused, by `resolve` and by the
/// job alike: skipping it would make the two disagree about how the package builds.
pub const MAX_WANTED: u64 = 4 << 20;

/// Bytes of tar headers (long names, pax records) allowed before one entry's data.
const MAX_HEADERS: u64 = 1 << 20;

/// Links followed while resolving one link target, as the kernel's limit.
const MAX_HOPS: u32 = 40;

/// The longest path an entry may have, and the longest link target: pip unpacks with Python's
/// tarfile and zipfile, whose calls Linux refuses for a path of PATH_MAX (4096 bytes, the final
/// NUL included) or more, so no sdist pip can unpack has a longer one.
pub const MAX_PATH_BYTES: usize = 4095;

/// The longest name of one component (NAME_MAX), refused by the kernel as well.
pub const MAX_NAME_BYTES: usize = 255;

/// The most components in an entry's path. Real sdists stay under 30; pip would go on to about
/// 2,000 (what fits in PATH_MAX), but no build needs that and every tool that walks the
/// unpacked tree, in rewheel or in the job, pays for the depth.
pub const MAX_PATH_DEPTH: usize = 256;

/// An entry's name as shown in a message: a hostile name can be a megabyte long.
fn shown(name: &str) -> String {
    const KEEP: usize = 120;
    if name.len() <= KEEP + 40 {
        return name.to_string();
    }
    let mut end = KEEP;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &name[..end], name.len())
}

/// Read the files that describe the build from the model of the tree the archive makes, the
/// one the job unpacks: checking every entry of the archive.
pub fn read_sdist(path: &Path, limits: Limits) -> Result<SdistFiles, ArchiveError> {
    let file = open(path)?;
    let mut keep = Keep::default();
    let model = walk(path, &file, limits, &mut keep)?;
    let wanted = model.build_files();
    let missing: BTreeSet<usize> = wanted
        .iter()
        .map(|(_, origin)| *origin)
        .filter(|origin| !keep.bytes.contains_key(origin))
        .collect();
    if !missing.is_empty() {
        // A hard link made a build file of an entry whose bytes went by under another name:
        // read the archive again, through the same handle, for those entries only.
        let mut again = Keep {
            want: missing,
            ..Keep::default()
        };
        let second = walk(path, &file, limits, &mut again)?;
        if second.build_files() != wanted {
            return Err(ArchiveError::Invalid {
                path: path.to_path_buf(),
                message: "changed while it was read".into(),
            });
        }
        keep.bytes.extend(again.bytes);
    }
    let mut files = BTreeMap::new();
    for (rel, origin) in wanted {
        let bytes = keep
            .bytes
            .get(&origin)
            .ok_or_else(|| ArchiveError::Invalid {
                path: path.to_path_buf(),
                message: format!("`{rel}` could not be read again"),
            })?;
        files.insert(rel, bytes.clone());
    }
    Ok(SdistFiles { files })
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
    extract_sdist_file(open(path)?, path, dest, limits, umask)
}

/// The same from a file already open (and checked): `path` only names it and says its format.
pub fn extract_sdist_file(
    file: std::fs::File,
    path: &Path,
    dest: &Path,
    limits: Limits,
    umask: u32,
) -> Result<PathBuf, ArchiveError> {
    let write_error = |source| ArchiveError::Write {
        path: path.to_path_buf(),
        dest: dest.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dest).map_err(write_error)?;
    let dir = Dir::open_ambient_dir(dest, cap_std::ambient_authority()).map_err(write_error)?;
    let mut sink = Extract { dir, umask };
    let model = walk(path, &file, limits, &mut sink)?;
    Ok(dest.join(model.top))
}

/// The time and permission bits each regular file of an sdist carries, by its path in the
/// archive (top folder included), as `python -m build` unpacks them (tarfile sets the bits):
/// for rebuilding wheels whose entries took their times and modes from the sources. Only
/// headers are read; at most `limits.max_entries` of them.
pub fn entry_times(path: &Path, limits: Limits) -> Result<Vec<(String, u64, u32)>, ArchiveError> {
    entry_times_file(open(path)?, path, limits)
}

/// The same from a file already open: `path` only names it and says its format.
pub fn entry_times_file(
    file: std::fs::File,
    path: &Path,
    limits: Limits,
) -> Result<Vec<(String, u64, u32)>, ArchiveError> {
    let invalid = |message: String| ArchiveError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut times = Vec::new();
    if name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(file).map_err(|e| invalid(e.to_string()))?;
        for i in 0..zip.len().min(limits.max_entries) {
            let entry = zip.by_index_raw(i).map_err(|e| invalid(e.to_string()))?;
            if entry.is_file()
                && let (Ok(name), Some(t)) = (entry.name(), entry.last_modified())
                && let Some(t) = crate::fsutil::zip_epoch(t)
            {
                let mode = entry.unix_mode().unwrap_or(0o644) & 0o777;
                times.push((name.to_string(), t, mode));
            }
        }
        return Ok(times);
    }
    let reader: Box<dyn Read> = if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive
        .entries()
        .map_err(|e| invalid(e.to_string()))?
        .take(limits.max_entries)
    {
        let mut entry = entry.map_err(|e| invalid(e.to_string()))?;
        // A pax record holds the exact time (`1712796645.6`); the header field may be rounded.
        let pax = entry.pax_extensions().ok().flatten().and_then(|exts| {
            exts.flatten()
                .find(|e| e.key() == Ok("mtime"))
                .and_then(|e| e.value().ok()?.split('.').next()?.parse::<u64>().ok())
        });
        let header = entry.header();
        if header.entry_type().is_file()
            && let (Ok(path), Some(mtime)) = (entry.path(), pax.or(header.mtime().ok()))
        {
            let mode = header.mode().unwrap_or(0o644) & 0o777;
            times.push((path.to_string_lossy().into_owned(), mtime, mode));
        }
    }
    Ok(times)
}

/// What to do with each checked entry. `parts` never hold `..`, never pass through a link, and
/// whatever was at `parts` before (a file or a link) has been removed with `remove`.
trait Sink {
    fn dir(&mut self, parts: &[String], mode: u32) -> std::io::Result<()>;
    /// The data of entry number `origin`.
    fn file(
        &mut self,
        parts: &[String],
        reader: &mut dyn Read,
        mode: u32,
        origin: usize,
    ) -> std::io::Result<()>;
    fn symlink(&mut self, parts: &[String], target: &str) -> std::io::Result<()>;
    /// A copy of `source`, a regular file this archive wrote.
    fn copy(&mut self, parts: &[String], source: &[String], mode: u32) -> std::io::Result<()>;
    /// `was`, the model's node at `parts`, is replaced.
    fn remove(&mut self, parts: &[String], was: &Node) -> std::io::Result<()>;
}

/// Keeps the bytes of entries that may describe the build, by entry number; which of them do
/// is for the model to say once the tree is complete.
#[derive(Default)]
struct Keep {
    bytes: HashMap<usize, Vec<u8>>,
    /// Entries to keep whatever their path.
    want: BTreeSet<usize>,
}

impl Sink for Keep {
    fn dir(&mut self, _: &[String], _: u32) -> std::io::Result<()> {
        Ok(())
    }

    fn file(
        &mut self,
        parts: &[String],
        reader: &mut dyn Read,
        _: u32,
        origin: usize,
    ) -> std::io::Result<()> {
        if wanted_parts(parts) || self.want.contains(&origin) {
            let mut buf = Vec::new();
            Read::take(&mut *reader, MAX_WANTED + 1).read_to_end(&mut buf)?;
            self.bytes.insert(origin, buf);
        }
        std::io::copy(reader, &mut std::io::sink())?;
        Ok(())
    }

    fn symlink(&mut self, _: &[String], _: &str) -> std::io::Result<()> {
        Ok(())
    }

    fn copy(&mut self, _: &[String], _: &[String], _: u32) -> std::io::Result<()> {
        Ok(())
    }

    fn remove(&mut self, _: &[String], was: &Node) -> std::io::Result<()> {
        // Bounds what many copies of one name keep; should a hard link still hold these bytes,
        // `read_sdist` reads them again.
        if let Node::File { origin, .. } = was
            && !self.want.contains(origin)
        {
            self.bytes.remove(origin);
        }
        Ok(())
    }
}

/// Unpacks through a directory handle: every path is resolved beneath it by cap-std.
struct Extract {
    dir: Dir,
    umask: u32,
}

impl Extract {
    fn rel(parts: &[String]) -> PathBuf {
        parts.iter().collect()
    }

    fn parent(&mut self, parts: &[String]) -> std::io::Result<PathBuf> {
        let rel = Self::rel(parts);
        if parts.len() > 1 {
            self.dir
                .create_dir_all(rel.parent().expect("has a parent"))?;
        }
        Ok(rel)
    }

    fn file_mode(&self, mode: u32) -> u32 {
        let mode = if mode & 0o777 == 0 {
            0o644
        } else {
            mode & 0o777
        };
        (mode | 0o600) & !self.umask
    }
}

impl Sink for Extract {
    fn dir(&mut self, parts: &[String], mode: u32) -> std::io::Result<()> {
        let rel = Self::rel(parts);
        self.dir.create_dir_all(&rel)?;
        self.dir.set_permissions(
            &rel,
            cap_std::fs::Permissions::from_mode((mode | 0o700) & 0o777 & !self.umask),
        )
    }

    fn file(
        &mut self,
        parts: &[String],
        reader: &mut dyn Read,
        mode: u32,
        _: usize,
    ) -> std::io::Result<()> {
        let rel = self.parent(parts)?;
        // create_new: never open through whatever might sit at the name.
        let mut file = self
            .dir
            .open_with(&rel, OpenOptions::new().write(true).create_new(true))?
            .into_std();
        std::io::copy(reader, &mut file)?;
        file.flush()?;
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(self.file_mode(mode)))
    }

    fn symlink(&mut self, parts: &[String], target: &str) -> std::io::Result<()> {
        let rel = self.parent(parts)?;
        self.dir.symlink(target, &rel)
    }

    fn copy(&mut self, parts: &[String], source: &[String], mode: u32) -> std::io::Result<()> {
        let from = Self::rel(source);
        let mut reader = self
            .dir
            .open_with(&from, OpenOptions::new().read(true))?
            .into_std();
        self.file(parts, &mut reader, mode, 0)
    }

    fn remove(&mut self, parts: &[String], _: &Node) -> std::io::Result<()> {
        self.dir.remove_file(Self::rel(parts))
    }
}

fn open(path: &Path) -> Result<std::fs::File, ArchiveError> {
    std::fs::File::open(path).map_err(|err| ArchiveError::Invalid {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

/// The tree an archive makes, once every entry is checked: what both readers agree on.
struct Model {
    tree: Tree,
    /// The sdist's one top folder, which pip builds in.
    top: String,
}

impl Model {
    /// The files that describe the build, by path below the top folder, with the entry whose
    /// bytes each holds.
    fn build_files(&self) -> Vec<(String, usize)> {
        let mut files = Vec::new();
        let Some(top) = self.tree.child(ROOT, &self.top) else {
            return files;
        };
        // `wanted` looks no deeper than three components.
        let _ = self.tree.visit(top, 3, |names, _, node| {
            if let Node::File { origin, .. } = node {
                let rel = names.join("/");
                if wanted(&rel) {
                    files.push((rel, *origin));
                }
            }
            Ok(())
        });
        files
    }
}

/// Check every entry of the archive at `path`, read through `file` from its start, and hand
/// each to `sink`; the model of the tree it makes.
fn walk(
    path: &Path,
    file: &std::fs::File,
    limits: Limits,
    sink: &mut dyn Sink,
) -> Result<Model, ArchiveError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut checker = Checker::new(path, limits);
    let mut file = file.try_clone().map_err(|err| checker.invalid(err))?;
    file.rewind().map_err(|err| checker.invalid(err))?;
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        walk_tar(&mut checker, flate2::read::GzDecoder::new(file), sink)?;
    } else if name.ends_with(".tar") {
        walk_tar(&mut checker, file, sink)?;
    } else if name.ends_with(".zip") {
        walk_zip(&mut checker, file, sink)?;
    } else {
        return Err(ArchiveError::Unsupported {
            path: path.to_path_buf(),
        });
    }
    checker.check_all_links()?;
    checker.finish()
}

/// Every check, and the model of the tree the archive makes.
struct Checker<'a> {
    path: &'a Path,
    limits: Limits,
    /// Bytes written: file contents and copies.
    total: u64,
    entries: usize,
    tree: Tree,
    /// The first component of the first entry placed: every other entry must share it.
    top: Option<String>,
    /// Symbolic links placed: most sdists have none, and then nothing needs checking again.
    links: usize,
}

/// How a write through the sink failed.
enum Failure {
    Archive(ArchiveError),
    Io(std::io::Error),
}

impl From<ArchiveError> for Failure {
    fn from(err: ArchiveError) -> Self {
        Failure::Archive(err)
    }
}

/// Where link resolution stands: the nodes from the root's child down, `None` below a name
/// the archive has not made.
type Position = Vec<Option<Id>>;

impl<'a> Checker<'a> {
    fn new(path: &'a Path, limits: Limits) -> Self {
        Self {
            path,
            limits,
            total: 0,
            entries: 0,
            tree: Tree::new(),
            top: None,
            links: 0,
        }
    }

    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Unsafe {
            path: self.path.to_path_buf(),
            entry: shown(entry),
            reason: reason.into(),
        }
    }

    fn invalid(&self, message: impl std::fmt::Display) -> ArchiveError {
        ArchiveError::Invalid {
            path: self.path.to_path_buf(),
            message: message.to_string(),
        }
    }

    fn too_large(&self) -> ArchiveError {
        ArchiveError::TooLarge {
            path: self.path.to_path_buf(),
            limit: self.limits.max_unpacked,
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

    /// The entry's normalized path components, or why it may not be unpacked.
    fn check_path(&self, entry: &str) -> Result<Vec<String>, ArchiveError> {
        if entry.starts_with('/') || entry.starts_with('\\') || entry.contains(":\\") {
            return Err(self.unsafe_entry(entry, "has an absolute path"));
        }
        // Measured before anything is made of it: the name alone can be a megabyte.
        let depth = entry
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .count();
        if entry.len() > MAX_PATH_BYTES || depth > MAX_PATH_DEPTH {
            return Err(self.unsafe_entry(
                entry,
                format!(
                    "has a path of {} bytes in {depth} components, longer than pip could unpack; the limit is {MAX_PATH_BYTES} bytes and {MAX_PATH_DEPTH} components",
                    entry.len()
                ),
            ));
        }
        let mut parts = Vec::new();
        for component in Path::new(entry).components() {
            match component {
                Component::Normal(part) => {
                    let part = part.to_string_lossy().into_owned();
                    if part.len() > MAX_NAME_BYTES {
                        return Err(self.unsafe_entry(
                            entry,
                            format!(
                                "has a name of {} bytes; the limit is {MAX_NAME_BYTES} (NAME_MAX)",
                                part.len()
                            ),
                        ));
                    }
                    parts.push(part);
                }
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

    /// Entries are written where they say, never through a link an earlier entry made.
    fn check_parents(&self, entry: &str, parts: &[String]) -> Result<(), ArchiveError> {
        let mut at = ROOT;
        for (end, part) in parts[..parts.len().saturating_sub(1)].iter().enumerate() {
            let Some(id) = self.tree.child(at, part) else {
                return Ok(());
            };
            match self.tree.node(id) {
                Node::Link { .. } => {
                    return Err(self.unsafe_entry(
                        entry,
                        format!(
                            "would be written through the link `{}`",
                            shown(&parts[..=end].join("/"))
                        ),
                    ));
                }
                Node::File { .. } => {
                    return Err(self.unsafe_entry(
                        entry,
                        format!(
                            "is below `{}`, which is a file",
                            shown(&parts[..=end].join("/"))
                        ),
                    ));
                }
                Node::Dir => at = id,
            }
        }
        Ok(())
    }

    /// pip builds in the archive's one top folder only when every entry is inside it (its
    /// `has_leading_dir`); otherwise it builds from the archive's root, a tree no sdist has
    /// (the format is one `{name}-{version}` folder) and where a second folder's
    /// `pyproject.toml` could name the backend. Such an archive is refused, by both readers.
    fn check_top(&mut self, entry: &str, parts: &[String]) -> Result<(), ArchiveError> {
        match &self.top {
            None => {
                self.top = Some(parts[0].clone());
                Ok(())
            }
            Some(top) if *top == parts[0] => Ok(()),
            Some(top) => Err(self.unsafe_entry(
                entry,
                format!(
                    "is outside the top folder `{}`; an sdist holds all its files in one folder (pip would build from the archive's root instead)",
                    shown(top)
                ),
            )),
        }
    }

    /// The model, once every entry is in: its top must be a folder.
    fn finish(self) -> Result<Model, ArchiveError> {
        match (self.tree.single_top(), &self.top) {
            (Some((name, id)), Some(top)) if name == top => match self.tree.node(id) {
                Node::Dir => Ok(Model {
                    top: top.clone(),
                    tree: self.tree,
                }),
                _ => Err(self.unsafe_entry(
                    top,
                    "is alone at the archive's root and not a folder; an sdist holds all its files in one folder",
                )),
            },
            _ => Err(self.invalid("it holds no files")),
        }
    }

    /// Check an entry about to be placed at `parts` and record it; returns what was there (a
    /// file or a link) and must be removed first.
    fn place(
        &mut self,
        entry: &str,
        parts: &[String],
        node: Node,
    ) -> Result<Option<Node>, ArchiveError> {
        self.check_top(entry, parts)?;
        self.check_parents(entry, parts)?;
        if !matches!(node, Node::Dir) && wanted_parts(parts) {
            match &node {
                Node::Link { .. } => {
                    return Err(self.unsafe_entry(
                        entry,
                        "is a link; the files that describe a build must be regular files",
                    ));
                }
                Node::File { size, .. } if *size > MAX_WANTED => {
                    return Err(ArchiveError::ConfigTooLarge {
                        path: self.path.to_path_buf(),
                        entry: shown(entry),
                        limit: MAX_WANTED,
                    });
                }
                _ => {}
            }
        }
        let (last, folders) = parts.split_last().expect("a placed entry has a name");
        let at = folders
            .iter()
            .fold(ROOT, |at, part| self.tree.dir(at, part));
        let was = self
            .tree
            .child(at, last)
            .map(|id| self.tree.node(id).clone());
        match (&was, &node) {
            (Some(Node::Dir), Node::Dir) => return Ok(None),
            (Some(Node::Dir), _) => {
                return Err(self.unsafe_entry(entry, "replaces a directory"));
            }
            _ => {}
        }
        self.tree.set(at, last, node);
        Ok(was)
    }

    /// `place`, then clear whatever the sink has at `parts` (a file or a link it replaces).
    fn place_and_clear(
        &mut self,
        sink: &mut dyn Sink,
        entry: &str,
        parts: &[String],
        node: Node,
    ) -> Result<(), Failure> {
        if let Some(was) = self.place(entry, parts, node)? {
            sink.remove(parts, &was).map_err(Failure::Io)?;
        }
        Ok(())
    }

    /// Resolve `target` from the folder `from` in the model, following links as the kernel
    /// would (a `..` after a link leaves the link's target, not the link's folder).
    fn resolve(
        &self,
        from: &[Option<Id>],
        target: &str,
        hops: &mut u32,
    ) -> Result<Position, String> {
        if target.starts_with('/') {
            return Err(format!("links to the absolute path `{}`", shown(target)));
        }
        let mut at = from.to_vec();
        for component in Path::new(target).components() {
            match component {
                Component::Normal(part) => {
                    let here = if at.is_empty() {
                        Some(ROOT)
                    } else {
                        at[at.len() - 1]
                    };
                    let next = here.and_then(|id| self.tree.child(id, &part.to_string_lossy()));
                    at.push(next);
                    if let Some(Node::Link { target: link }) = next.map(|id| self.tree.node(id)) {
                        *hops += 1;
                        if *hops > MAX_HOPS {
                            return Err(format!("links in a loop (`{}`)", shown(target)));
                        }
                        let folder = &at[..at.len() - 1];
                        at = self.resolve(folder, link, hops)?;
                    }
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    if at.pop().is_none() {
                        return Err(format!("links outside the archive (`{}`)", shown(target)));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!("links to the absolute path `{}`", shown(target)));
                }
            }
        }
        Ok(at)
    }

    fn check_symlink(
        &self,
        entry: &str,
        from: &[Option<Id>],
        target: &str,
    ) -> Result<(), ArchiveError> {
        self.resolve(from, target, &mut 0)
            .map(|_| ())
            .map_err(|reason| self.unsafe_entry(entry, reason))
    }

    /// Once the tree is complete, every link must still land inside: a link checked when it
    /// was written can be redirected by links written after it.
    fn check_all_links(&self) -> Result<(), ArchiveError> {
        if self.links == 0 {
            return Ok(());
        }
        let mut found = None;
        let _ = self.tree.visit(ROOT, usize::MAX, |names, ids, node| {
            if let Node::Link { target } = node {
                let from: Position = ids[..ids.len() - 1].iter().map(|id| Some(*id)).collect();
                if let Err(err) = self.check_symlink(&names.join("/"), &from, target) {
                    found = Some(err);
                    return Err(String::new());
                }
            }
            Ok(())
        });
        found.map_or(Ok(()), Err)
    }

    /// A hard link names, from the archive's root, a regular file this archive already wrote.
    fn hardlink_source(
        &self,
        entry: &str,
        target: &str,
    ) -> Result<(Vec<String>, Node), ArchiveError> {
        let not_a_file = || {
            self.unsafe_entry(
                entry,
                format!(
                    "hard-links to `{}`, which is not a regular file of this archive",
                    shown(target)
                ),
            )
        };
        let parts = self.check_path(target).map_err(|_| not_a_file())?;
        self.check_parents(target, &parts)
            .map_err(|_| not_a_file())?;
        match self.tree.get(&parts) {
            Some(node @ Node::File { .. }) => Ok((parts, node.clone())),
            _ => Err(not_a_file()),
        }
    }

    fn add_bytes(&mut self, n: u64) -> Result<(), ArchiveError> {
        self.total = self.total.saturating_add(n);
        if self.total > self.limits.max_unpacked {
            return Err(self.too_large());
        }
        Ok(())
    }

    /// Place and write a regular file from `reader`, counting what really comes out of it.
    fn write_file(
        &mut self,
        sink: &mut dyn Sink,
        entry: &str,
        parts: &[String],
        declared: u64,
        mode: u32,
        reader: &mut dyn Read,
    ) -> Result<(), Failure> {
        let origin = self.entries;
        let node = Node::File {
            size: declared,
            mode,
            origin,
        };
        self.place_and_clear(sink, entry, parts, node)?;
        let config = wanted_parts(parts);
        let budget = self.limits.max_unpacked.saturating_sub(self.total);
        let mut limited = Limited {
            inner: reader,
            remaining: if config {
                budget.min(MAX_WANTED)
            } else {
                budget
            },
            read: 0,
        };
        let result = sink.file(parts, &mut limited, mode, origin);
        let read = limited.read;
        match result {
            Err(err) if err.kind() == std::io::ErrorKind::FileTooLarge => {
                if config && read > MAX_WANTED {
                    return Err(Failure::Archive(ArchiveError::ConfigTooLarge {
                        path: self.path.to_path_buf(),
                        entry: shown(entry),
                        limit: MAX_WANTED,
                    }));
                }
                return Err(Failure::Archive(self.too_large()));
            }
            Err(err) => return Err(Failure::Io(err)),
            Ok(()) => {}
        }
        // A zip's declared size can lie; the model keeps what was really written.
        let (last, folders) = parts.split_last().expect("a placed entry has a name");
        let at = self.tree.find(folders).expect("placed above");
        self.tree.set(
            at,
            last,
            Node::File {
                size: read,
                mode,
                origin,
            },
        );
        self.add_bytes(read)?;
        Ok(())
    }

    fn write_dir(
        &mut self,
        sink: &mut dyn Sink,
        entry: &str,
        parts: &[String],
        mode: u32,
    ) -> Result<(), Failure> {
        self.place_and_clear(sink, entry, parts, Node::Dir)?;
        sink.dir(parts, mode).map_err(Failure::Io)
    }

    fn write_symlink(
        &mut self,
        sink: &mut dyn Sink,
        entry: &str,
        parts: &[String],
        target: &str,
    ) -> Result<(), Failure> {
        if target.is_empty() {
            return Err(self
                .unsafe_entry(entry, "is a link with an empty target")
                .into());
        }
        if target.len() > MAX_PATH_BYTES {
            return Err(self
                .unsafe_entry(
                    entry,
                    format!(
                        "is a link to a path of {} bytes; the limit is {MAX_PATH_BYTES}",
                        target.len()
                    ),
                )
                .into());
        }
        let node = Node::Link {
            target: target.to_string(),
        };
        self.place_and_clear(sink, entry, parts, node)?;
        self.links += 1;
        // Any refusal aborts the whole archive, so checking after the model has the link is
        // enough (it needs the link in the model to resolve loops through itself).
        let from = self.tree.chain(&parts[..parts.len() - 1]);
        self.check_symlink(entry, &from, target)?;
        sink.symlink(parts, target).map_err(Failure::Io)
    }

    fn write_hardlink(
        &mut self,
        sink: &mut dyn Sink,
        entry: &str,
        parts: &[String],
        target: &str,
    ) -> Result<(), Failure> {
        let (source, node) = self.hardlink_source(entry, target)?;
        let Node::File { size, mode, .. } = node else {
            unreachable!("hardlink_source gives files")
        };
        if source == parts {
            return Ok(());
        }
        self.add_bytes(size)?;
        self.place_and_clear(sink, entry, parts, node)?;
        sink.copy(parts, &source, mode).map_err(Failure::Io)
    }

    fn failure(&self, failure: Failure) -> ArchiveError {
        match failure {
            Failure::Archive(err) => err,
            Failure::Io(err) if err.kind() == std::io::ErrorKind::FileTooLarge => self.too_large(),
            Failure::Io(err) => self.invalid(err),
        }
    }
}

fn wanted_parts(parts: &[String]) -> bool {
    parts.len() >= 2 && parts.len() <= 4 && wanted(&parts[1..].join("/"))
}

/// Counts the raw tar stream (headers included) and refuses to run far past the current
/// entry's data: the tar reader keeps long names and pax records in memory.
struct Metered<R> {
    inner: R,
    state: Rc<std::cell::Cell<MeterState>>,
}

#[derive(Clone, Copy, Default)]
struct MeterState {
    position: u64,
    /// Reading past this means headers beyond `MAX_HEADERS`.
    allowed_until: u64,
    total_limit: u64,
    tripped: Option<Trip>,
}

#[derive(Clone, Copy)]
enum Trip {
    Total,
    Headers,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.state.get();
        state.position += n as u64;
        let trip = if state.position > state.total_limit {
            Some(Trip::Total)
        } else if state.position > state.allowed_until {
            Some(Trip::Headers)
        } else {
            None
        };
        if trip.is_some() {
            state.tripped = trip;
        }
        self.state.set(state);
        if trip.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "size limit",
            ));
        }
        Ok(n)
    }
}

fn walk_tar<R: Read>(
    checker: &mut Checker,
    reader: R,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let state = Rc::new(std::cell::Cell::new(MeterState {
        allowed_until: MAX_HEADERS,
        total_limit: checker.limits.max_unpacked,
        ..MeterState::default()
    }));
    let metered = Metered {
        inner: reader,
        state: state.clone(),
    };
    let tripped = |checker: &Checker, other: ArchiveError| match state.get().tripped {
        Some(Trip::Total) => checker.too_large(),
        Some(Trip::Headers) => ArchiveError::HugeHeaders {
            path: checker.path.to_path_buf(),
            limit: MAX_HEADERS,
        },
        None => other,
    };
    let mut archive = tar::Archive::new(metered);
    let entries = archive
        .entries()
        .map_err(|err| tripped(checker, checker.invalid(err)))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| tripped(checker, checker.invalid(err)))?;
        let mut now = state.get();
        now.allowed_until = now
            .position
            .saturating_add(entry.size().div_ceil(512) * 512)
            .saturating_add(MAX_HEADERS);
        state.set(now);
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
        let result = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                checker.write_file(sink, &name, &parts, size, mode, &mut entry)
            }
            tar::EntryType::Directory => checker.write_dir(sink, &name, &parts, mode),
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|err| checker.invalid(err))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if kind == tar::EntryType::Link {
                    checker.write_hardlink(sink, &name, &parts, &target)
                } else {
                    checker.write_symlink(sink, &name, &parts, &target)
                }
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                Err(checker.unsafe_entry(&name, "is a device file").into())
            }
            tar::EntryType::Fifo => Err(checker.unsafe_entry(&name, "is a FIFO").into()),
            other => Err(checker
                .unsafe_entry(&name, format!("has an unsupported type {other:?}"))
                .into()),
        };
        result.map_err(|failure| {
            let err = checker.failure(failure);
            tripped(checker, err)
        })?;
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
        let result = if entry.is_dir() {
            checker.write_dir(sink, &name, &parts, mode)
        } else if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry)
                .take(MAX_PATH_BYTES as u64 + 1)
                .read_to_string(&mut target)
                .map_err(|err| checker.invalid(err))?;
            checker.write_symlink(sink, &name, &parts, &target)
        } else {
            let declared = entry.size();
            checker.write_file(sink, &name, &parts, declared, mode, &mut entry)
        };
        result.map_err(|failure| checker.failure(failure))?;
    }
    Ok(())
}

/// A reader that fails once more than `remaining` bytes come out of it.
struct Limited<'r> {
    inner: &'r mut dyn Read,
    remaining: u64,
    read: u64,
}

impl Read for Limited<'_> {
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
mod tests;

mod tree;
