//! The folders CI hands rewheel (the results `merge` joins, the `--inputs` of one job) and the
//! files its documents name in them. CI documents and the files beside them travel through
//! artifacts and caches, written where untrusted builds ran: each folder named on the command
//! line is opened once, and every file below it is found and read through that handle
//! (`crate::beneath`), no link followed, only regular files, never more than a cap.

use super::plan_doc::{DocError, PlanDoc};
use crate::beneath::{Beneath, BeneathError};
use crate::build::job::{MAX_LOG, MAX_WHEEL};
use crate::digest::Sha256;
use anyhow::{Context, bail};
use sha2::Digest;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The largest plan read: it carries every job's settings and its patches' text.
pub const MAX_PLAN: u64 = 64 << 20;
/// The largest result document read (rewheel writes a few KiB).
pub const MAX_RESULT: u64 = 16 << 20;
/// The largest log read beside a result: what a job keeps, and the line saying what was cut.
pub const MAX_LOG_FILE: u64 = MAX_LOG + 4096;
/// The largest archive taken from the inputs (sdist, wheel, crate): the store holds wheels
/// whole, and no sdist or crate worth building comes near it.
pub const MAX_ARCHIVE: u64 = MAX_WHEEL;
/// How many files, and how many folders deep, a folder CI hands over is walked.
pub const MAX_FILES: usize = 100_000;
pub const MAX_DEPTH: usize = 32;

/// What to do about a file below `--inputs` that is not read.
pub const INPUTS_HINT: &str = "--inputs holds what earlier jobs wrote, as plain files below it: copy them there rather than linking them";

/// One folder named on the command line, opened, with the regular files below it.
struct Root {
    dir: Beneath,
    files: Vec<PathBuf>,
}

/// The folders CI handed over.
pub struct Folders {
    roots: Vec<Root>,
}

/// A file found below one of the folders.
pub struct Found<'a> {
    dir: &'a Beneath,
    rel: PathBuf,
}

impl Folders {
    /// Open each of `paths`: a folder, or a single file (then its folder is opened and only it
    /// is listed). The paths themselves are the operator's (links in them are followed once,
    /// here); nothing below them is. A missing path is empty when `missing_ok`.
    pub fn open(paths: &[PathBuf], missing_ok: bool) -> anyhow::Result<Folders> {
        let mut roots = Vec::new();
        for path in paths {
            let real = match std::fs::canonicalize(path) {
                Ok(real) => real,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound && missing_ok => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot open {}", path.display()));
                }
            };
            roots.push(Root::open(&real).with_context(|| format!("{}", path.display()))?);
        }
        Ok(Folders { roots })
    }

    /// Every regular file found, folder by folder.
    pub fn files(&self) -> impl Iterator<Item = Found<'_>> {
        self.roots.iter().flat_map(|root| {
            root.files.iter().map(move |rel| Found {
                dir: &root.dir,
                rel: rel.clone(),
            })
        })
    }

    /// The files named `name`, wherever they are below the folders.
    pub fn named(&self, name: &str) -> impl Iterator<Item = Found<'_>> {
        let name = name.to_owned();
        self.files().filter(move |f| f.name() == OsStr::new(&name))
    }
}

impl Root {
    fn open(real: &Path) -> anyhow::Result<Root> {
        if !real.is_dir() {
            let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
                bail!("not a folder or a file");
            };
            return Ok(Root {
                dir: Beneath::open(parent)?,
                files: vec![PathBuf::from(name)],
            });
        }
        let dir = Beneath::open(real)?;
        let files = dir.files(MAX_FILES, MAX_DEPTH).map_err(|err| DocError {
            doc: real.display().to_string(),
            what: match err {
                BeneathError::TooLarge { .. } => format!(
                    "holds more than {MAX_FILES} files or folders more than {MAX_DEPTH} deep ({err})"
                ),
                err => format!("cannot be walked: {err}"),
            },
            hint: "give the folder CI saved the jobs' files in, not one above it",
        })?;
        Ok(Root { dir, files })
    }
}

impl<'a> Found<'a> {
    /// Where the file is, for messages.
    pub fn shown(&self) -> PathBuf {
        self.dir.path().join(&self.rel)
    }

    pub fn name(&self) -> &OsStr {
        self.rel.file_name().unwrap_or_default()
    }

    /// Its bytes, refused past `max`.
    pub fn read(&self, max: u64) -> Result<Vec<u8>, BeneathError> {
        self.dir.read(&self.rel, max)
    }

    /// Opened for reading, refused past `max`.
    pub fn open(&self, max: u64) -> Result<File, BeneathError> {
        let (file, len) = self.dir.file(&self.rel)?;
        if len > max {
            return Err(BeneathError::TooLarge {
                path: self.rel.display().to_string(),
                max,
            });
        }
        Ok(file)
    }

    /// The file at `rel` (a path a document beside gave, already checked plain), in the
    /// same folder as this one.
    pub fn beside(&self, rel: &str) -> Found<'a> {
        let folder = self.rel.parent().unwrap_or(Path::new(""));
        Found {
            dir: self.dir,
            rel: folder.join(rel),
        }
    }
}

/// `err` about `field` of the document `doc` (or about the file itself when `field` is empty).
pub fn refused(doc: &Path, field: &str, err: BeneathError, hint: &'static str) -> DocError {
    DocError {
        doc: doc.display().to_string(),
        what: match field {
            "" => err.to_string(),
            field => format!("{field} {err}"),
        },
        hint,
    }
}

/// A file the command line names (a plan): a regular file within `max`. Links in its path
/// are the operator's and are followed; what it holds is checked by the caller.
/// The same, as UTF-8 text.
pub fn read_given_text(path: &Path, max: u64) -> anyhow::Result<String> {
    let bytes = read_given(path, max)?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))
}

pub fn read_given(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    let real =
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
        bail!("cannot read {}: not a file", path.display());
    };
    let dir = Beneath::open(parent).with_context(|| format!("cannot read {}", path.display()))?;
    dir.read(Path::new(name), max).map_err(|err| {
        DocError {
            doc: path.display().to_string(),
            what: err.to_string(),
            hint: "give the plan `rewheel plan` wrote, as a file",
        }
        .into()
    })
}

/// The plan at `path`, read within its cap, every file it names checked.
pub fn plan(path: &Path) -> anyhow::Result<PlanDoc> {
    PlanDoc::parse(&read_given(path, MAX_PLAN)?, path)
}

/// A file a plan locates by absolute path (a `file://` URL from the planning machine's
/// `--find-links`), opened as a regular file: it is a location like any URL, and what it
/// holds is checked by hash, but a FIFO or a device is never read.
pub fn open_located(path: &Path, max: u64) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file.metadata()?;
    let why = if !meta.file_type().is_file() {
        "is not a regular file".to_string()
    } else if meta.len() > max {
        format!("is over the limit of {max} bytes")
    } else {
        return Ok(file);
    };
    bail!("{} {why}\nhint: {LOCATED_HINT}", path.display())
}

/// What to do about a `file://` location a plan gives that is not read.
const LOCATED_HINT: &str = "a plan locates a file by `file://` URL only where `rewheel plan` found it: put the file itself under --inputs";

/// Copy what `from` yields into `to`, hashing on the way, and keep it only if its sha256 is
/// `sha256`: the job then reads rewheel's own copy, the bytes that were checked. Past `max`
/// bytes it is an error (the size a file claimed may not be the size it has).
pub fn copy_checked(from: File, max: u64, sha256: &Sha256, to: &Path) -> anyhow::Result<bool> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut hasher = Sha256::hasher();
    let mut reader = from.take(max + 1);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max {
            bail!("{} grew past the limit of {max} bytes", to.display());
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])?;
    }
    if Sha256::finish(hasher) != *sha256 {
        return Ok(false);
    }
    tmp.persist(to).map_err(|err| err.error)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_kept_only_when_its_hash_is_the_one_named_and_never_past_its_cap() {
        let t = tempfile::tempdir().unwrap();
        let from = t.path().join("from");
        std::fs::write(&from, b"bytes").unwrap();
        let to = t.path().join("to");
        let open = || File::open(&from).unwrap();
        let other = crate::fsutil::sha256_hex(b"other bytes");
        assert!(!copy_checked(open(), 10, &other, &to).unwrap());
        assert!(!to.exists());
        let sha = crate::fsutil::sha256_hex(b"bytes");
        assert!(copy_checked(open(), 10, &sha, &to).unwrap());
        assert_eq!(std::fs::read(&to).unwrap(), b"bytes");
        // A file that grew after its size was checked is cut at the cap, not read on.
        let err = copy_checked(open(), 4, &sha, &t.path().join("cut")).unwrap_err();
        assert!(
            err.to_string().contains("past the limit of 4 bytes"),
            "{err}"
        );
        assert!(!t.path().join("cut").exists());
    }

    #[test]
    fn folders_list_plain_files_only_and_a_missing_one_is_empty_when_allowed() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.whl"), b"host").unwrap();
        let root = t.path().join("inputs");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/x.whl"), b"ok").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.whl"), root.join("y.whl")).unwrap();
        let folders = Folders::open(&[root.clone(), t.path().join("none")], true).unwrap();
        let found: Vec<PathBuf> = folders.files().map(|f| f.shown()).collect();
        assert_eq!(found, vec![root.canonicalize().unwrap().join("a/x.whl")]);
        assert_eq!(
            folders.named("x.whl").next().unwrap().read(2).unwrap(),
            b"ok"
        );
        assert!(Folders::open(&[t.path().join("none")], false).is_err());
        // A single file named on the command line is its own listing.
        let one = Folders::open(&[root.join("a/x.whl")], false).unwrap();
        assert_eq!(one.files().count(), 1);
    }

    #[test]
    fn a_located_file_is_read_only_when_regular() {
        let err = open_located(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(err.to_string().contains("is not a regular file"), "{err}");
    }
}
