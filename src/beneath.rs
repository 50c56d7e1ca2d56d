//! Reading what rewheel did not write. A folder a job or a CI document controls is opened once
//! as a directory handle; every path read below it is resolved by the kernel relative to that
//! handle, with no link followed at any component and no way out (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`; on kernels without it, one
//! `openat(O_NOFOLLOW)` per component, which promises the same). Only regular files are read,
//! never a FIFO or a device, and never more than the caller's cap.
//!
//! Removing a tree is here too: a job may leave folders nested deeper than any path can name,
//! so removal walks handles, never joined paths, with a bounded number of them open.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// Why a path below a handle was not read.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("`{0}` is not a relative path below the folder")]
    NotBelow(String),
    #[error("`{0}` is or passes through a link")]
    Link(String),
    #[error("`{0}` is not a regular file")]
    NotFile(String),
    #[error("`{path}` is over the limit of {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("`{path}`: {err}")]
    Io { path: String, err: std::io::Error },
}

impl BeneathError {
    /// The file is simply not there (as opposed to refused).
    pub fn is_not_found(&self) -> bool {
        matches!(self, BeneathError::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound)
    }
}

/// A folder opened once; what is read below it stays below it.
#[derive(Debug)]
pub struct Beneath {
    fd: OwnedFd,
    path: PathBuf,
}

fn io_err(path: &Path, err: impl Into<std::io::Error>) -> BeneathError {
    let err = err.into();
    let shown = path.display().to_string();
    match err.raw_os_error() {
        Some(libc::ELOOP) => BeneathError::Link(shown),
        Some(libc::EXDEV) => BeneathError::NotBelow(shown),
        Some(libc::ENOTDIR) => BeneathError::Link(shown),
        _ => BeneathError::Io { path: shown, err },
    }
}

/// A relative path of plain components: no root, no `..`, no `.` games.
fn checked(rel: &Path) -> Result<(), BeneathError> {
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if rel.as_os_str().is_empty() || !plain {
        return Err(BeneathError::NotBelow(rel.display().to_string()));
    }
    Ok(())
}

impl Beneath {
    /// Open `path` as the handle everything is read below. The folder itself must not be a link.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Where the handle was opened (for messages only: nothing is read through it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open `rel` below the handle with `flags`, no link followed at any component.
    fn open_at(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, BeneathError> {
        checked(rel)?;
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        // openat2 refuses a mode unless a file is being created.
        let mode = match flags.contains(OFlags::CREATE) {
            true => Mode::from_raw_mode(0o600),
            false => Mode::empty(),
        };
        match rustix::fs::openat2(
            &self.fd,
            rel,
            flags,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {}
            other => return other.map_err(|e| io_err(rel, e)),
        }
        // No openat2 (old kernel, or a seccomp filter that refuses it): one component at a
        // time, each opened without following a link.
        let mut parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
        let last = parts.pop().expect("checked: not empty");
        let mut dir: Option<OwnedFd> = None;
        for part in parts {
            let at = dir.as_ref().map(|d| d.as_fd()).unwrap_or(self.fd.as_fd());
            let next = rustix::fs::openat(
                at,
                part,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(rel, e))?;
            dir = Some(next);
        }
        let at = dir.as_ref().map(|d| d.as_fd()).unwrap_or(self.fd.as_fd());
        rustix::fs::openat(at, last, flags, mode).map_err(|e| io_err(rel, e))
    }

    /// A folder below this one, as a handle of its own.
    pub fn dir(&self, rel: &Path) -> Result<Beneath, BeneathError> {
        let fd = self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        Ok(Beneath {
            fd,
            path: self.path.join(rel),
        })
    }

    /// A regular file below the handle, opened for reading, with its size.
    pub fn file(&self, rel: &Path) -> Result<(File, u64), BeneathError> {
        let fd = self.open_at(rel, OFlags::RDONLY)?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| io_err(rel, e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(BeneathError::NotFile(rel.display().to_string()));
        }
        // Reads block as usual: O_NONBLOCK only kept a FIFO from stalling the open.
        let file = File::from(fd);
        let _ = rustix::fs::fcntl_setfl(&file, OFlags::empty());
        Ok((file, stat.st_size as u64))
    }

    /// A regular file's bytes, refused when it holds more than `max` (checked on the bytes
    /// read, not only on the size the file claims).
    pub fn read(&self, rel: &Path, max: u64) -> Result<Vec<u8>, BeneathError> {
        let (file, len) = self.file(rel)?;
        let too_large = || BeneathError::TooLarge {
            path: rel.display().to_string(),
            max,
        };
        if len > max {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_err(rel, e))?;
        if bytes.len() as u64 > max {
            return Err(too_large());
        }
        Ok(bytes)
    }

    /// Create (or empty) a regular file below the handle for writing, never through a link:
    /// a file rewheel reads back later by this handle, not by its path.
    pub fn create(&self, rel: &Path) -> Result<File, BeneathError> {
        let fd = self.open_at(rel, OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC)?;
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o644));
        let file = File::from(fd);
        let _ = rustix::fs::fcntl_setfl(&file, OFlags::empty());
        Ok(file)
    }

    /// The names and types of this folder's entries (links are reported as links).
    pub fn entries(&self) -> std::io::Result<Vec<(OsString, FileType)>> {
        list(&self.fd)
    }

    /// Every regular file below the handle, as relative paths, links and special files skipped,
    /// at most `max_files` of them and `max_depth` folders deep (an error past either).
    pub fn files(&self, max_files: usize, max_depth: usize) -> Result<Vec<PathBuf>, BeneathError> {
        let mut found = Vec::new();
        let mut stack = vec![(PathBuf::new(), 0usize)];
        while let Some((rel, depth)) = stack.pop() {
            let here = if rel.as_os_str().is_empty() {
                None
            } else {
                Some(self.dir(&rel)?)
            };
            let entries = here
                .as_ref()
                .unwrap_or(self)
                .entries()
                .map_err(|e| io_err(&rel, e))?;
            for (name, kind) in entries {
                let path = rel.join(&name);
                match kind {
                    FileType::RegularFile => {
                        if found.len() == max_files {
                            return Err(BeneathError::TooLarge {
                                path: format!("{} (files)", self.path.display()),
                                max: max_files as u64,
                            });
                        }
                        found.push(path);
                    }
                    FileType::Directory if depth + 1 < max_depth => stack.push((path, depth + 1)),
                    FileType::Directory => {
                        return Err(BeneathError::TooLarge {
                            path: format!("{} (depth)", path.display()),
                            max: max_depth as u64,
                        });
                    }
                    _ => {}
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// The names and types of a folder's entries, links as links (a second `stat` only where the
/// file system leaves the type unknown).
fn list(dir: &OwnedFd) -> std::io::Result<Vec<(OsString, FileType)>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsString::from(std::ffi::OsStr::from_bytes(name));
        let kind = match entry.file_type() {
            FileType::Unknown => rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|s| FileType::from_raw_mode(s.st_mode))?,
            kind => kind,
        };
        out.push((name, kind));
    }
    Ok(out)
}

/// How deep removal goes holding handles before it cuts a deeper folder off and moves it up to
/// the top (a rename within the tree), so memory and open descriptors stay bounded whatever
/// the depth.
const CUT_DEPTH: usize = 64;

/// Remove `path` and everything below it, links removed and never followed, with no limit on
/// depth. A missing `path` is not an error. Meant for folders nothing else writes any more
/// (a job's, after its last process ended).
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    let top = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut cut = 0u64;
    // Every pass empties the top folder of what it held; folders cut off during a pass go to
    // a folder made for that pass (a name the tree could not have held before: a build may
    // leave `.rewheel-cut-1` itself), taken by the next pass.
    for pass in 0u64.. {
        let before = cut;
        let scratch_name = (0u64..)
            .map(|n| format!(".rewheel-cut-{}-{pass}-{n}", std::process::id()))
            .find(|name| {
                rustix::fs::mkdirat(&top, name.as_str(), Mode::from_raw_mode(0o700)).is_ok()
            })
            .expect("some name is free");
        let scratch = rustix::fs::openat(
            &top,
            scratch_name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let cuts = Cuts {
            to: &scratch,
            skip: &scratch_name,
        };
        empty(&cuts, &top, 0, &mut cut)?;
        drop(scratch);
        if cut == before {
            rustix::fs::unlinkat(&top, scratch_name.as_str(), AtFlags::REMOVEDIR)?;
            break;
        }
    }
    std::fs::remove_dir(path)
}

/// Where a pass of `remove_tree` moves folders it cuts off, and that folder's name in the top
/// folder (not emptied in the pass that fills it).
struct Cuts<'a> {
    to: &'a OwnedFd,
    skip: &'a str,
}

/// Empty the folder `dir` (at `depth` below the top).
fn empty(cuts: &Cuts, dir: &OwnedFd, depth: usize, cut: &mut u64) -> std::io::Result<()> {
    // Writable and searchable first: a build may leave folders mode 000.
    let _ = rustix::fs::fchmod(dir, Mode::from_raw_mode(0o700));
    let names = list(dir)?;
    for (name, kind) in names {
        if depth == 0 && name.as_bytes() == cuts.skip.as_bytes() {
            continue;
        }
        if kind != FileType::Directory {
            rustix::fs::unlinkat(dir, &name, AtFlags::empty())?;
            continue;
        }
        if depth + 1 >= CUT_DEPTH {
            *cut += 1;
            rustix::fs::renameat(dir, &name, cuts.to, cut.to_string().as_str())?;
            continue;
        }
        let child = rustix::fs::openat(
            dir,
            &name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        empty(cuts, &child, depth + 1, cut)?;
        drop(child);
        rustix::fs::unlinkat(dir, &name, AtFlags::REMOVEDIR)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_at_any_depth_are_refused_and_paths_stay_below() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.whl"), b"host").unwrap();
        std::fs::create_dir_all(t.path().join("job/real")).unwrap();
        std::fs::write(t.path().join("job/real/w.whl"), b"ok").unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("job/out")).unwrap();
        std::os::unix::fs::symlink("real/w.whl", t.path().join("job/link.whl")).unwrap();
        let job = Beneath::open(&t.path().join("job")).unwrap();
        assert_eq!(job.read(Path::new("real/w.whl"), 10).unwrap(), b"ok");
        let mut log = job.create(Path::new("real/new.log")).unwrap();
        std::io::Write::write_all(&mut log, b"x").unwrap();
        assert_eq!(job.read(Path::new("real/new.log"), 10).unwrap(), b"x");
        assert!(matches!(
            job.create(Path::new("link.whl")).unwrap_err(),
            BeneathError::Link(_)
        ));
        for rel in ["out/secret.whl", "link.whl"] {
            let err = job.read(Path::new(rel), 10).unwrap_err();
            assert!(matches!(err, BeneathError::Link(_)), "{rel}: {err}");
        }
        for rel in ["../job/real/w.whl", "/etc/passwd", "real/../real/w.whl", ""] {
            let err = job.read(Path::new(rel), 10).unwrap_err();
            assert!(matches!(err, BeneathError::NotBelow(_)), "{rel}: {err}");
        }
        let err = job.read(Path::new("real/w.whl"), 1).unwrap_err();
        assert!(matches!(err, BeneathError::TooLarge { .. }), "{err}");
        let err = job.read(Path::new("real"), 10).unwrap_err();
        assert!(matches!(err, BeneathError::NotFile(_)), "{err}");
        assert!(
            job.read(Path::new("nothing"), 10)
                .unwrap_err()
                .is_not_found()
        );
        // The folder handle itself is never a link either.
        assert!(Beneath::open(&t.path().join("job/out")).is_err());
        assert_eq!(
            job.files(10, 4).unwrap(),
            vec![PathBuf::from("real/new.log"), PathBuf::from("real/w.whl")]
        );
    }

    #[test]
    fn a_fifo_is_not_a_file_and_does_not_block() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("log");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let dir = Beneath::open(t.path()).unwrap();
        let err = dir.read(Path::new("log"), 10).unwrap_err();
        assert!(matches!(err, BeneathError::NotFile(_)), "{err}");
    }

    #[test]
    fn a_tree_deeper_than_any_path_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("job");
        std::fs::create_dir(&root).unwrap();
        // 5,000 levels: far past PATH_MAX and past what a recursion holding one descriptor per
        // level could open. Made through handles, as a build would with mkdirat/chdir.
        let mut fd =
            rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for i in 0..5000 {
            rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
            if i % 100 == 0 {
                rustix::fs::symlinkat("/", &fd, "up").unwrap();
            }
            fd = rustix::fs::openat(&fd, "d", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
                .unwrap();
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o000)).unwrap();
        drop(fd);
        // Names a removal might pick for its own use, taken first.
        std::fs::create_dir_all(root.join(".rewheel-cut-1/x")).unwrap();
        std::fs::create_dir_all(root.join(format!(".rewheel-cut-{}-0-0/y", std::process::id())))
            .unwrap();
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        remove_tree(&root).unwrap();
    }
}
