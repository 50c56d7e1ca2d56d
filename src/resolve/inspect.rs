//! What an sdist says about how it builds and what it needs, read from its files without running
//! any of its code.

use crate::resolve::archive::SdistFiles;
use crate::resolve::metadata::{CoreMetadata, parse_requires_txt};
use crate::resolve::setup_py::{SetupRequires, setup_requires};
use serde::{Deserialize, Serialize};

/// What PEP 517 prescribes for a project that declares no build system.
pub const FALLBACK_REQUIRES: &[&str] = &["setuptools>=40.8.0", "wheel"];
/// Where the build requirements of an sdist without `[build-system] requires` came from.
pub const FALLBACK_SOURCE: &str = "pep517-fallback";
pub const FALLBACK_BACKEND: &str = "setuptools.build_meta:__legacy__";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SdistInfo {
    /// `[build-system] requires`, or the PEP 517 fallback.
    pub build_requires: Vec<String>,
    pub build_backend: String,
    /// In-tree backend folders (`backend-path`): such a project builds itself.
    pub backend_path: Vec<String>,
    /// Where `build_requires` came from: `pyproject.toml` or `pep517-fallback`.
    pub build_requires_source: String,
    /// setuptools' `setup_requires`, which its backend hook returns at build time.
    pub setup_requires: Vec<String>,
    pub setup_requires_source: Option<String>,
    /// Runtime requirements, when the sdist states them reliably; `None` means ask elsewhere.
    pub requires_dist: Option<Vec<String>>,
    pub requires_dist_source: Option<String>,
    /// PKG-INFO's Requires-Dist even when not reliable: the last resort.
    pub pkg_info_requires_dist: Vec<String>,
    pub requires_python: Option<String>,
    pub warnings: Vec<String>,
    /// Registry crates the sdist's `Cargo.lock` files name, each with its checksum: vendored
    /// into the job, which has no network.
    #[serde(default)]
    pub crates: Vec<crate::resolve::crates::CrateRef>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct InspectError {
    pub file: String,
    pub message: String,
}

pub fn inspect(files: &SdistFiles) -> Result<SdistInfo, InspectError> {
    let mut warnings = Vec::new();
    let pyproject = match files.get("pyproject.toml") {
        Some(bytes) => Some(
            toml::from_str::<toml::Table>(&String::from_utf8_lossy(bytes)).map_err(|err| {
                InspectError {
                    file: "pyproject.toml".into(),
                    message: err.to_string().trim_end().to_string(),
                }
            })?,
        ),
        None => None,
    };
    let build_system = pyproject
        .as_ref()
        .and_then(|t| t.get("build-system"))
        .and_then(|b| b.as_table());
    let (build_requires, build_requires_source) = match build_system.and_then(|b| b.get("requires"))
    {
        Some(value) => (
            string_list(value, "pyproject.toml", "build-system.requires")?,
            "pyproject.toml",
        ),
        None => {
            if build_system.is_some() {
                warnings.push("pyproject.toml has [build-system] without `requires`; using the setuptools fallback".into());
            }
            (
                FALLBACK_REQUIRES.iter().map(|s| s.to_string()).collect(),
                FALLBACK_SOURCE,
            )
        }
    };
    let build_backend = build_system
        .and_then(|b| b.get("build-backend"))
        .and_then(|v| v.as_str())
        .unwrap_or(FALLBACK_BACKEND)
        .to_string();
    let backend_path = match build_system.and_then(|b| b.get("backend-path")) {
        // One folder as a string (flit-core 3.0.0's `backend-path = "."`): pip builds such
        // sdists, its hook caller iterating the string, so "." works there as one entry.
        Some(toml::Value::String(one)) => vec![one.clone()],
        Some(value) => string_list(value, "pyproject.toml", "build-system.backend-path")?,
        None => Vec::new(),
    };
    // PEP 517: backend-path entries are relative to the source tree and must stay inside it.
    for entry in &backend_path {
        let escapes = std::path::Path::new(entry).components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if escapes || entry.contains('\0') {
            return Err(InspectError {
                file: "pyproject.toml".into(),
                message: format!(
                    "build-system.backend-path entry `{entry}` leaves the source tree; PEP 517 requires it to stay inside"
                ),
            });
        }
    }

    let (setup_requires, setup_requires_source) =
        if build_backend.starts_with("setuptools.build_meta") {
            find_setup_requires(files, &mut warnings)
        } else {
            (Vec::new(), None)
        };

    let pkg_info = files
        .get("PKG-INFO")
        .map(CoreMetadata::parse)
        .unwrap_or_default();
    let egg_info_dir = files
        .files
        .keys()
        .filter(|k| k.ends_with(".egg-info/PKG-INFO") || k.ends_with(".egg-info/requires.txt"))
        .map(|k| {
            k.rsplit_once('/')
                .map(|(dir, _)| dir.to_string())
                .unwrap_or_default()
        })
        .min_by_key(|dir| dir.matches('/').count());
    let (requires_dist, requires_dist_source) = if pkg_info.requires_dist_is_reliable() {
        (
            Some(pkg_info.requires_dist.clone()),
            Some("PKG-INFO".to_string()),
        )
    } else if let Some(dir) = egg_info_dir {
        // setuptools leaves requires.txt out when there is nothing to require.
        let path = format!("{dir}/requires.txt");
        let reqs = files.get(&path).map(parse_requires_txt).unwrap_or_default();
        (Some(reqs), Some(path))
    } else {
        (None, None)
    };

    Ok(SdistInfo {
        build_requires,
        build_backend,
        backend_path,
        build_requires_source: build_requires_source.into(),
        setup_requires,
        setup_requires_source,
        requires_dist,
        requires_dist_source,
        pkg_info_requires_dist: pkg_info.requires_dist,
        requires_python: pkg_info.requires_python,
        crates: crate::resolve::crates::from_lockfiles(files, &mut warnings).map_err(|e| {
            InspectError {
                file: e.file,
                message: e.message,
            }
        })?,
        warnings,
    })
}

fn string_list(value: &toml::Value, file: &str, key: &str) -> Result<Vec<String>, InspectError> {
    let bad = || InspectError {
        file: file.into(),
        message: format!("`{key}` must be a list of strings"),
    };
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|v| v.as_str().map(String::from).ok_or_else(bad))
        .collect()
}

fn find_setup_requires(
    files: &SdistFiles,
    warnings: &mut Vec<String>,
) -> (Vec<String>, Option<String>) {
    if let Some(cfg) = files.get("setup.cfg")
        && let Some(value) = ini_value(&String::from_utf8_lossy(cfg), "options", "setup_requires")
    {
        let reqs = value
            .lines()
            .flat_map(|l| l.split(';').next())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        return (reqs, Some("setup.cfg".into()));
    }
    let Some(source) = files.get("setup.py") else {
        return (Vec::new(), None);
    };
    match setup_requires(&String::from_utf8_lossy(source)) {
        Ok(SetupRequires::Literal(reqs)) => (reqs, Some("setup.py".into())),
        Ok(SetupRequires::Absent) => (Vec::new(), None),
        Ok(SetupRequires::NotLiteral) => {
            warnings.push(
                "setup.py computes setup_requires; it will only be known at build time".into(),
            );
            (Vec::new(), None)
        }
        Err(err) => {
            warnings.push(format!(
                "setup.py could not be parsed ({err}); setup_requires unknown"
            ));
            (Vec::new(), None)
        }
    }
}

/// One value of an INI file as Python's configparser reads it: indented lines continue it.
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut in_section = false;
    let mut value: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) || trimmed.is_empty() {
                v.push('\n');
                v.push_str(trimmed);
                continue;
            }
            break;
        }
        if trimmed.starts_with('[') {
            in_section = trimmed.trim_matches(['[', ']']).trim() == section;
            continue;
        }
        if in_section
            && let Some((k, v)) = trimmed.split_once(['=', ':'])
            && k.trim().replace('-', "_") == key
        {
            value = Some(v.trim().to_string());
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdist(files: &[(&str, &str)]) -> SdistFiles {
        let mut s = SdistFiles::default();
        for (k, v) in files {
            s.files.insert(k.to_string(), v.as_bytes().to_vec());
        }
        s
    }

    #[test]
    fn setup_py_only_gets_the_fallback_and_its_setup_requires() {
        let info = inspect(&sdist(&[
            (
                "setup.py",
                "from setuptools import setup\nsetup(setup_requires=['setuptools_scm'])\n",
            ),
            ("PKG-INFO", "Metadata-Version: 2.1\nName: x\n"),
        ]))
        .unwrap();
        assert_eq!(info.build_requires, FALLBACK_REQUIRES);
        assert_eq!(info.build_requires_source, "pep517-fallback");
        assert_eq!(info.setup_requires, ["setuptools_scm"]);
        assert_eq!(info.requires_dist, None);
    }

    #[test]
    fn pyproject_in_tree_backend_and_setup_cfg() {
        let info = inspect(&sdist(&[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"wheel\"]\nbuild-backend = \"setuptools.build_meta\"\nbackend-path = [\".\"]\n",
            ),
            ("setup.cfg", "[metadata]\nname = x\n[options]\nsetup_requires =\n    setuptools_scm>=3\n    six\npackages = x\n"),
            ("x.egg-info/PKG-INFO", "Metadata-Version: 2.1\n"),
        ]))
        .unwrap();
        assert_eq!(info.build_requires, ["wheel"]);
        assert_eq!(info.backend_path, ["."]);
        assert_eq!(info.setup_requires, ["setuptools_scm>=3", "six"]);
        // An egg-info folder without requires.txt means "requires nothing".
        assert_eq!(info.requires_dist, Some(vec![]));
    }

    #[test]
    fn a_backend_path_given_as_one_string_is_one_folder() {
        // flit-core 3.0.0, which ptyprocess 0.7.0 and others were built with.
        let info = inspect(&sdist(&[(
            "pyproject.toml",
            "[build-system]\nrequires = []\nbuild-backend = \"flit_core.build_thyself\"\nbackend-path = \".\"\n",
        )]))
        .unwrap();
        assert_eq!(info.backend_path, ["."]);
        let escaping = inspect(&sdist(&[(
            "pyproject.toml",
            "[build-system]\nrequires = []\nbuild-backend = \"x\"\nbackend-path = \"..\"\n",
        )]));
        assert!(
            escaping.is_err(),
            "a string leaving the tree is refused as a list entry is"
        );
    }

    #[test]
    fn bad_pyproject_is_an_error_naming_the_file() {
        let err = inspect(&sdist(&[("pyproject.toml", "[build-system\n")])).unwrap_err();
        assert!(err.to_string().starts_with("pyproject.toml:"), "{err}");
    }
}
