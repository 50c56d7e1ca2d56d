//! One live process per run: a process that builds a run holds an exclusive `flock` on a file
//! named for the run (`live/<run>.lock` in the store) for as long as it builds, so a second
//! `--resume` of the same run is refused instead of building it twice. The kernel lets the
//! lock go when the process ends, however it ends.

use super::{Store, StoreError};
use crate::ids::RunId;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A run held by this process; dropping it lets the run go.
#[derive(Debug)]
pub struct RunLock {
    /// Open for as long as the run is held: closing it lets the lock go.
    _file: std::fs::File,
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked: whoever opened this file meanwhile finds, once it has
        // the lock, that the name no longer leads to it, and takes the lock again (`take`).
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Store {
    // A run id is a timestamp and a suffix (`RunId`), so it is a plain file name.
    fn lock_path(&self, run: &RunId) -> PathBuf {
        self.root.join("live").join(format!("{run}.lock"))
    }

    /// Hold `run` for this process, or say which process holds it.
    pub fn lock_run(&self, run: &RunId) -> Result<RunLock, StoreError> {
        let path = self.lock_path(run);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("in live/")).map_err(io)?;
        loop {
            let mut file = open_lock(&path, true).map_err(io)?;
            if !try_flock(&file, libc::LOCK_EX).map_err(io)? {
                return Err(StoreError::Busy {
                    run: run.clone(),
                    holder: holder_of(&mut file),
                    path,
                });
            }
            if !still_named(&file, &path) {
                continue;
            }
            file.set_len(0).map_err(io)?;
            write!(file, "{}", std::process::id()).map_err(io)?;
            return Ok(RunLock { _file: file, path });
        }
    }

    /// Which live process holds `run`, if one does.
    pub fn run_holder(&self, run: &RunId) -> Option<String> {
        let path = self.lock_path(run);
        let mut file = open_lock(&path, false).ok()?;
        // A shared lock is refused only while a builder holds the exclusive one.
        match try_flock(&file, libc::LOCK_SH) {
            Ok(false) => Some(holder_of(&mut file)),
            Ok(true) => {
                let _ = try_flock(&file, libc::LOCK_UN);
                None
            }
            Err(_) => None,
        }
    }
}

fn open_lock(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// `flock` without waiting: `false` when another process holds a conflicting lock.
fn try_flock(file: &std::fs::File, operation: libc::c_int) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows.
    if unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(err),
    }
}

/// The file locked is still the one the name leads to (not removed by a holder that ended).
fn still_named(file: &std::fs::File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
        _ => false,
    }
}

/// The holder's process id, as it wrote it in the file.
fn holder_of(file: &mut std::fs::File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(32).read_to_string(&mut text);
    match text.trim().parse::<u32>() {
        Ok(pid) => format!("process {pid}"),
        Err(_) => "another process".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_run_is_refused_with_its_holder_and_free_once_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let run = store.new_run(&[]).unwrap();
        let held = store.lock_run(&run).unwrap();
        // A second open file description conflicts as a second process would.
        let err = store.lock_run(&run).unwrap_err();
        let pid = std::process::id();
        assert!(
            err.to_string()
                .contains(&format!("is being built by process {pid}")),
            "{err}"
        );
        assert_eq!(store.run_holder(&run), Some(format!("process {pid}")));
        drop(held);
        assert_eq!(store.run_holder(&run), None);
        let again = store.lock_run(&run).unwrap();
        drop(again);
        assert!(!dir.path().join("live").join(format!("{run}.lock")).exists());
    }
}
