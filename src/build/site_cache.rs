//! Build-environment wheels unpacked once and shared by hard links. Unzipping setuptools into
//! every job's `env/` cost tens of milliseconds, and every job's interpreter then compiled the
//! modules it imported, a tenth of a second more: on a lock of setuptools projects, seconds of
//! CPU that uv does not pay twice either. A wheel is unpacked once per build root, into a tree
//! named by its sha256; from its second use on, a second tree adds the bytecode the job's
//! interpreter compiles once (`compileall`, confined like a job). A job's `env/` is then a tree
//! of links, made in milliseconds.
//!
//! Links share the cached files' inodes, so the cache is only as safe as the jobs' view of it:
//! a backend links only when the job sees `env/` read-only (bubblewrap's `--ro-bind`), and the
//! cached files are read-only besides. A tree is complete once renamed into place; a crash
//! leaves a `.tmp-*` folder and no tree.

use crate::build::wheel_install::install_wheel_file;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Compiles the bytecode of a tree in place; `Err` leaves the tree without it.
pub type Compile<'a> = &'a (dyn Fn(&Path) -> Result<(), String> + Sync);

/// The unpacked wheels of one build root (`ROOT/.sites`).
pub struct SiteCache {
    root: PathBuf,
    /// One lock per tree, so jobs that start together unpack a wheel once.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Uses of each wheel by each interpreter in this run: bytecode from the second on, and
    /// never again once compiling it failed (`u32::MAX`).
    uses: Mutex<HashMap<String, u32>>,
    sequence: std::sync::atomic::AtomicU64,
}

impl SiteCache {
    pub fn new(root: PathBuf) -> Self {
        // A process that died while filling a tree left its `.tmp-PID-N`; one still running
        // is filling it now.
        crate::fsutil::sweep_orphans(&root, |name| {
            name.strip_prefix(".tmp-").and_then(|r| r.split('-').next())
        });
        Self {
            root,
            locks: Mutex::default(),
            uses: Mutex::default(),
            sequence: Default::default(),
        }
    }

    /// Put the wheel whose verified hash is `sha256` into `site`: links to its cached tree, with
    /// bytecode for the interpreter `tag` names when `compile` is given and the wheel was used
    /// before (here or in an earlier run).
    /// `file` is the wheel open, its hash checked; `wheel` only names it.
    pub fn install(
        &self,
        wheel: &Path,
        file: &std::fs::File,
        sha256: &crate::digest::Sha256,
        site: &Path,
        compile: Option<(&str, Compile)>,
    ) -> Result<(), String> {
        let plain = self.tree(sha256, |tmp| {
            let file = file.try_clone().map_err(|e| e.to_string())?;
            install_wheel_file(file, wheel, tmp).map_err(|e| e.to_string())
        })?;
        let mut tree = plain.clone();
        if let Some((tag, compile)) = compile {
            let key = format!("{sha256}.{tag}");
            let uses = {
                let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
                let n = uses.entry(key.clone()).or_default();
                *n = n.saturating_add(1);
                *n
            };
            if uses != u32::MAX && (uses > 1 || self.root.join(&key).is_dir()) {
                // Bytecode is a speed-up, never a condition: a tree it failed on is still
                // a tree.
                match self.tree(&key, |tmp| {
                    link_tree(&plain, tmp).map_err(|e| e.to_string())?;
                    compile(tmp)
                }) {
                    Ok(compiled) => tree = compiled,
                    Err(err) => {
                        tracing::debug!("no bytecode for {}: {err}", wheel.display());
                        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
                        uses.insert(key, u32::MAX);
                    }
                }
            }
        }
        link_tree(&tree, site).map_err(|e| format!("linking {}: {e}", tree.display()))
    }

    /// The tree named `key`, made by `fill` (into an empty folder) if it is not there yet.
    fn tree(
        &self,
        key: &str,
        fill: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<PathBuf, String> {
        let path = self.root.join(key);
        if path.is_dir() {
            return Ok(path);
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(key.to_string()).or_default().clone()
        };
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        if path.is_dir() {
            return Ok(path);
        }
        let n = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.root.join(format!(".tmp-{}-{n}", std::process::id()));
        let made = std::fs::create_dir_all(&tmp)
            .map_err(|e| format!("creating {}: {e}", tmp.display()))
            .and_then(|()| fill(&tmp))
            .and_then(|()| read_only(&tmp).map_err(|e| e.to_string()));
        if let Err(err) = made {
            let _ = crate::beneath::remove_tree(&tmp);
            return Err(err);
        }
        // Another process may have made the same tree meanwhile: either is the same bytes.
        if let Err(err) = std::fs::rename(&tmp, &path) {
            let _ = crate::beneath::remove_tree(&tmp);
            if !path.is_dir() {
                return Err(format!("keeping {}: {err}", path.display()));
            }
        }
        Ok(path)
    }
}

/// Every file of `tree` linked at the same place below `site` (a copy where links cannot
/// cross file systems). A file another wheel put there first is replaced, as unpacking did.
pub fn link_tree(tree: &Path, site: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(site)?;
    for entry in std::fs::read_dir(tree)? {
        let entry = entry?;
        let (from, to) = (entry.path(), site.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_tree(&from, &to)?;
        } else if kind.is_file() {
            if std::fs::symlink_metadata(&to).is_ok() {
                std::fs::remove_file(&to)?;
            }
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to)?;
            }
        }
    }
    Ok(())
}

/// Files read-only (executables stay executable); folders stay writable by their owner, so
/// that removing a tree needs no chmod.
fn read_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            read_only(&entry.path())?;
        } else {
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o555
            } else {
                0o444
            };
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    /// The name the demo wheel's tree is cached under (the hash is not checked here).
    fn key() -> crate::digest::Sha256 {
        crate::digest::Sha256::of(b"demo wheel")
    }

    fn wheel(dir: &Path) -> PathBuf {
        let path = dir.join("demo-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("demo/__init__.py", options).unwrap();
        zip.write_all(b"X = 1\n").unwrap();
        zip.start_file(
            "demo-1.0.data/scripts/demo",
            options.unix_permissions(0o755),
        )
        .unwrap();
        zip.write_all(b"#!/bin/sh\n").unwrap();
        zip.finish().unwrap();
        path
    }

    #[test]
    fn a_wheel_is_unpacked_once_and_linked_into_every_site() {
        let dir = tempfile::tempdir().unwrap();
        let whl = wheel(dir.path());
        let cache = SiteCache::new(dir.path().join(".sites"));
        let (a, b) = (dir.path().join("a/env"), dir.path().join("b/env"));
        cache
            .install(&whl, &std::fs::File::open(&whl).unwrap(), &key(), &a, None)
            .unwrap();
        // The wheel is gone and the handle reads nothing: the second site can only come
        // from the tree.
        std::fs::remove_file(&whl).unwrap();
        cache
            .install(&whl, &tempfile::tempfile().unwrap(), &key(), &b, None)
            .unwrap();
        let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
        assert_eq!(
            ino(a.join("demo/__init__.py")),
            ino(b.join("demo/__init__.py"))
        );
        let meta = std::fs::metadata(b.join(".scripts/demo")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o555);
        let meta = std::fs::metadata(b.join("demo/__init__.py")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o444);
        // Removing a site leaves the tree.
        std::fs::remove_dir_all(dir.path().join("a")).unwrap();
        let tree = dir.path().join(".sites").join(key());
        assert!(tree.join("demo/__init__.py").is_file());
    }

    #[test]
    fn bytecode_comes_from_the_second_use_and_a_failed_compile_costs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let whl = wheel(dir.path());
        let cache = SiteCache::new(dir.path().join(".sites"));
        let calls = std::sync::atomic::AtomicU32::new(0);
        let compile = |tree: &Path| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::fs::create_dir(tree.join("demo/__pycache__")).unwrap();
            std::fs::write(tree.join("demo/__pycache__/__init__.pyc"), "pyc").unwrap();
            Ok(())
        };
        let site = |n: &str| dir.path().join(n);
        cache
            .install(
                &whl,
                &std::fs::File::open(&whl).unwrap(),
                &key(),
                &site("1"),
                Some(("py", &compile)),
            )
            .unwrap();
        assert!(!site("1/demo/__pycache__").exists());
        cache
            .install(
                &whl,
                &std::fs::File::open(&whl).unwrap(),
                &key(),
                &site("2"),
                Some(("py", &compile)),
            )
            .unwrap();
        cache
            .install(
                &whl,
                &std::fs::File::open(&whl).unwrap(),
                &key(),
                &site("3"),
                Some(("py", &compile)),
            )
            .unwrap();
        assert!(site("2/demo/__pycache__/__init__.pyc").is_file());
        assert!(site("3/demo/__pycache__/__init__.pyc").is_file());
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A later run finds the compiled tree on its first use.
        let again = SiteCache::new(dir.path().join(".sites"));
        again
            .install(
                &whl,
                &std::fs::File::open(&whl).unwrap(),
                &key(),
                &site("4"),
                Some(("py", &compile)),
            )
            .unwrap();
        assert!(site("4/demo/__pycache__/__init__.pyc").is_file());
        // Another interpreter whose compiler fails still gets the plain tree, and is not
        // asked again.
        let failures = std::sync::atomic::AtomicU32::new(0);
        let broken = |_: &Path| {
            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err("no".to_string())
        };
        for n in ["5", "6", "7"] {
            again
                .install(
                    &whl,
                    &std::fs::File::open(&whl).unwrap(),
                    &key(),
                    &site(n),
                    Some(("other", &broken)),
                )
                .unwrap();
            assert!(site(n).join("demo/__init__.py").is_file());
        }
        assert_eq!(failures.load(std::sync::atomic::Ordering::Relaxed), 1);
        let leftovers = std::fs::read_dir(dir.path().join(".sites"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn what_a_dead_process_left_half_made_is_removed_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(".sites");
        // No process has a pid above the kernel's maximum (4194304).
        let dead = root.join(".tmp-99999999-0");
        let live = root.join(format!(".tmp-{}-7", std::process::id()));
        for d in [&dead, &live] {
            std::fs::create_dir_all(d.join("pkg")).unwrap();
        }
        SiteCache::new(root);
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
