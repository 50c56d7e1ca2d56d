//! Patches from a package's settings, applied to its unpacked source before the build, as
//! `patch -p1` would: paths relative to the sdist's top folder after one leading component.
//!
//! The tree is the sdist's, so hostile: every file is reached through a directory handle
//! (cap-std), never by a joined path, and a patch that names `..` or an absolute path, or whose
//! target is a link out of the tree, is refused.

use crate::packages::Patch;
use cap_std::fs::{Dir, OpenOptions};
use diffy::patch_set::{FileOperation, ParseOptions, PatchKind, PatchSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Apply `patch` to the tree at `top`; the error is the message a packager needs.
pub fn apply(top: &Path, patch: &Patch) -> Result<(), String> {
    let fail = |what: String| format!("patch {}: {what}", patch.name);
    let dir = Dir::open_ambient_dir(top, cap_std::ambient_authority())
        .map_err(|e| fail(format!("cannot open the source tree: {e}")))?;
    let mut files = 0;
    for file in PatchSet::parse(&patch.text, ParseOptions::unidiff()) {
        let file = file.map_err(|e| fail(format!("does not parse as a unified diff: {e}")))?;
        let PatchKind::Text(text) = file.patch() else {
            return Err(fail("binary patches are not supported".into()));
        };
        match file.operation().strip_prefix(1) {
            FileOperation::Modify { modified, .. } => {
                let rel = plain(&modified).map_err(&fail)?;
                let original = read(&dir, &rel).map_err(|e| fail(format!("{modified}: {e}")))?;
                let new = diffy::apply(&original, text).map_err(|e| {
                    fail(format!(
                        "{modified}: does not apply ({e}); is it for this version?"
                    ))
                })?;
                write(&dir, &rel, &new, false).map_err(|e| fail(format!("{modified}: {e}")))?;
            }
            FileOperation::Create(path) => {
                let rel = plain(&path).map_err(&fail)?;
                let new = diffy::apply("", text)
                    .map_err(|e| fail(format!("{path}: does not apply ({e})")))?;
                write(&dir, &rel, &new, true).map_err(|e| fail(format!("{path}: {e}")))?;
            }
            FileOperation::Delete(path) => {
                let rel = plain(&path).map_err(&fail)?;
                dir.remove_file(&rel)
                    .map_err(|e| fail(format!("{path}: cannot delete: {e}")))?;
            }
            _ => return Err(fail("renames and copies are not supported".into())),
        }
        files += 1;
    }
    if files == 0 {
        return Err(fail("holds no file changes".into()));
    }
    Ok(())
}

/// A path below the tree: relative, no `..`.
fn plain(path: &str) -> Result<PathBuf, String> {
    let rel = PathBuf::from(path);
    let ok = rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok && !path.is_empty() {
        Ok(rel)
    } else {
        Err(format!("`{path}` is not a path inside the source tree"))
    }
}

fn read(dir: &Dir, rel: &Path) -> Result<String, String> {
    let mut text = String::new();
    dir.open_with(rel, OpenOptions::new().read(true))
        .map_err(|e| format!("cannot open: {e}"))?
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read as text: {e}"))?;
    Ok(text)
}

fn write(dir: &Dir, rel: &Path, text: &str, new: bool) -> Result<(), String> {
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir.create_dir_all(parent)
            .map_err(|e| format!("cannot create its folder: {e}"))?;
    }
    let mut options = OpenOptions::new();
    options.write(true);
    if new {
        options.create_new(true);
    } else {
        options.truncate(true);
    }
    dir.open_with(rel, &options)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(text: &str) -> Patch {
        Patch {
            name: "t.patch".into(),
            sha256: crate::digest::Sha256::of(text.as_bytes()),
            text: text.into(),
        }
    }

    #[test]
    fn modifies_and_creates_files_below_the_top() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\ntwo\n").unwrap();
        apply(
            dir.path(),
            &patch(
                "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n\
                 --- /dev/null\n+++ b/sub/new.txt\n@@ -0,0 +1 @@\n+hello\n",
            ),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
            "one\nthree\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/new.txt")).unwrap(),
            "hello\n"
        );
    }

    #[test]
    fn refuses_paths_and_links_that_leave_the_tree() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), "keep\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), dir.path().join("link")).unwrap();
        let e = apply(
            dir.path(),
            &patch("--- a/../victim\n+++ b/../victim\n@@ -1 +1 @@\n-keep\n+gone\n"),
        )
        .unwrap_err();
        assert!(e.contains("not a path inside"), "{e}");
        let e = apply(
            dir.path(),
            &patch("--- a/link\n+++ b/link\n@@ -1 +1 @@\n-keep\n+gone\n"),
        )
        .unwrap_err();
        assert!(e.contains("link"), "{e}");
        assert_eq!(
            std::fs::read_to_string(outside.path().join("victim")).unwrap(),
            "keep\n"
        );
        let e = apply(dir.path(), &patch("not a diff\n")).unwrap_err();
        assert!(e.contains("t.patch"), "{e}");
    }
}
