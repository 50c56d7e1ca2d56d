//! Installing a wheel into a build environment: a wheel is a zip, so installing is unpacking
//! into a site directory (the frontend's `site.addsitedir` then processes `.pth` files).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{}: cannot install: {message}", wheel.display())]
pub struct InstallError {
    pub wheel: PathBuf,
    pub message: String,
}

/// Where a wheel's `.data/scripts` go below the site directory; the frontend puts them on the
/// job's PATH (maturin's wheel is its binary, shipped as a script, and its backend runs it).
pub const SCRIPTS: &str = ".scripts";

/// Unpack `wheel` into `site`. `.data/purelib` and `.data/platlib` go to the site root and
/// `.data/scripts` to `SCRIPTS`; headers and data files are not needed to build and are left
/// out.
pub fn install_wheel(wheel: &Path, site: &Path) -> Result<(), InstallError> {
    let file = std::fs::File::open(wheel).map_err(|e| InstallError {
        wheel: wheel.to_path_buf(),
        message: e.to_string(),
    })?;
    install_wheel_file(file, wheel, site)
}

/// The same from a file already open (and its hash checked): `wheel` only names it.
/// What one build-environment wheel may unpack to: far above any real toolchain wheel.
const MAX_UNPACKED: u64 = 8 << 30;

pub fn install_wheel_file(
    file: std::fs::File,
    wheel: &Path,
    site: &Path,
) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |message: String| InstallError {
        wheel: wheel.to_path_buf(),
        message,
    };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| fail(e.to_string()))?;
    // Entries that share their bytes make a small wheel inflate to any size (an overlapping
    // zip bomb), and the site cache keeps what is unpacked: refused, as is a total past the cap.
    let mut spans = Vec::with_capacity(zip.len());
    let mut total = 0u64;
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index).map_err(|e| fail(e.to_string()))?;
        let start = entry.header_start();
        let end = entry
            .data_start()
            .unwrap_or(start)
            .saturating_add(entry.compressed_size());
        spans.push((start, end));
        total = total.saturating_add(entry.size());
    }
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(fail(
            "two entries share their bytes (overlapping entries)".into(),
        ));
    }
    if total > MAX_UNPACKED {
        return Err(fail(format!(
            "it unpacks to {total} bytes, over the {MAX_UNPACKED} a build environment takes"
        )));
    }
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).map_err(|e| fail(e.to_string()))?;
        let name = entry.name().map_err(|e| fail(e.to_string()))?.into_owned();
        if entry.is_dir() {
            continue;
        }
        let Some(rel) = target_path(&name) else {
            continue;
        };
        if Path::new(&rel)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(fail(format!("entry `{name}` escapes the install folder")));
        }
        // Every failure from here names the entry: `File exists` alone says not which of a
        // wheel's thousands of entries collided (a file where another entry needs a folder).
        let at = |what: &str, path: &Path, e: std::io::Error| {
            fail(format!("entry `{name}`: {what} {}: {e}", path.display()))
        };
        let path = site.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| at("creating", parent, e))?;
        }
        let mut out = std::fs::File::create(&path).map_err(|e| at("creating", &path, e))?;
        let mut limited = (&mut entry).take(1 << 30);
        std::io::copy(&mut limited, &mut out).map_err(|e| at("writing", &path, e))?;
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let mode = if executable { 0o755 } else { 0o644 };
        out.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| at("setting the mode of", &path, e))?;
    }
    Ok(())
}

/// Where an entry goes below the site directory, or `None` to leave it out.
fn target_path(name: &str) -> Option<String> {
    let Some((first, rest)) = name.split_once('/') else {
        return Some(name.to_string()); // a top-level module such as six.py
    };
    if !first.ends_with(".data") {
        return Some(name.to_string());
    }
    let (scheme, rest) = rest.split_once('/')?;
    match scheme {
        "purelib" | "platlib" => Some(rest.to_string()),
        "scripts" => Some(format!("{SCRIPTS}/{rest}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_that_cannot_be_installed_is_named_with_its_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("clash-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        // `clash` a file, then a folder: the second entry cannot be made.
        for name in ["clash", "clash/inner.py"] {
            zip.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
        }
        zip.finish().unwrap();
        let site = dir.path().join("site");
        let err = install_wheel(&wheel, &site).unwrap_err().to_string();
        assert!(err.contains("clash-1.0-py3-none-any.whl"), "{err}");
        assert!(err.contains("entry `clash/inner.py`"), "{err}");
        assert!(err.contains("File exists"), "{err}");
    }

    #[test]
    fn data_schemes_map_to_the_site_root() {
        assert_eq!(target_path("six.py").as_deref(), Some("six.py"));
        assert_eq!(
            target_path("pkg/__init__.py").as_deref(),
            Some("pkg/__init__.py")
        );
        assert_eq!(
            target_path("x-1.data/purelib/x/a.py").as_deref(),
            Some("x/a.py")
        );
        assert_eq!(
            target_path("x-1.data/scripts/tool").as_deref(),
            Some(".scripts/tool")
        );
        assert_eq!(target_path("x-1.data/headers/x.h"), None);
    }
}
