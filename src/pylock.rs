//! PEP 751 lock files (`pylock.toml`, `pylock.NAME.toml`): read wherever a requirements file
//! is (`-r`: each package pinned, its sdist hash checked; `--expect`: its wheel hashes are what
//! the built wheels must hash to), and written for what a run built, one per cell.

use crate::digest::Sha256;
use serde::Deserialize;
use std::fmt::Write;
use std::path::Path;

/// Is this file name a PEP 751 lock (`pylock.toml` or `pylock.<name>.toml`)?
pub fn is_pylock(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name == "pylock.toml" || (name.starts_with("pylock.") && name.ends_with(".toml"))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct LockFile {
    lock_version: String,
    #[serde(default)]
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    sdist: Option<Artifact>,
    #[serde(default)]
    wheels: Vec<Artifact>,
}

#[derive(Deserialize)]
struct Artifact {
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
}

/// One locked package: its pin, its sdist's sha256, its wheels' sha256s.
#[derive(Debug, Clone, PartialEq)]
pub struct Locked {
    pub name: String,
    pub version: String,
    pub sdist_sha256: Option<Sha256>,
    pub wheel_sha256: Vec<Sha256>,
}

#[derive(Debug, thiserror::Error)]
pub enum PylockError {
    #[error("{}: {message}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}

/// The packages of a lock file. Packages without a version (a VCS or directory source) cannot
/// be pinned from an index and are refused.
pub fn read(path: &Path, text: &str) -> Result<Vec<Locked>, PylockError> {
    let invalid = |message: String| PylockError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let lock: LockFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if !lock.lock_version.starts_with("1.") {
        return Err(invalid(format!(
            "lock-version {} is not one this rewheel reads (1.x)",
            lock.lock_version
        )));
    }
    lock.packages
        .into_iter()
        .map(|p| {
            let version = p.version.ok_or_else(|| {
                invalid(format!(
                    "package {} has no version: only index packages can be rebuilt from a lock",
                    p.name
                ))
            })?;
            let sha = |a: &Artifact| {
                a.hashes
                    .get("sha256")
                    .map(|h| Sha256::parse(&h.to_ascii_lowercase()))
                    .transpose()
                    .map_err(|err| invalid(format!("package {}: {err}", p.name)))
            };
            Ok(Locked {
                sdist_sha256: p.sdist.as_ref().map(sha).transpose()?.flatten(),
                wheel_sha256: p
                    .wheels
                    .iter()
                    .filter_map(|w| sha(w).transpose())
                    .collect::<Result<_, _>>()?,
                name: p.name,
                version,
            })
        })
        .collect()
}

/// A built wheel, for a lock file of what a run built.
pub struct BuiltWheel<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub filename: &'a str,
    /// The wheel's path relative to the lock file.
    pub path: &'a str,
    pub sha256: &'a Sha256,
    pub size: u64,
}

/// A lock file of one cell's wheels (PEP 751 1.0): each package with its one wheel, by path.
pub fn write(wheels: &[BuiltWheel], python: Option<&str>) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut text = "lock-version = \"1.0\"\ncreated-by = \"rewheel\"\n".to_string();
    if let Some(python) = python {
        let _ = writeln!(text, "requires-python = {}", q(&format!("=={python}")));
    }
    let mut sorted: Vec<&BuiltWheel> = wheels.iter().collect();
    sorted.sort_by(|a, b| (a.name, a.version).cmp(&(b.name, b.version)));
    for w in sorted {
        let _ = write!(
            text,
            "\n[[packages]]\nname = {}\nversion = {}\n\n[[packages.wheels]]\nname = {}\npath = {}\nsize = {}\nhashes = {{ sha256 = {} }}\n",
            q(w.name),
            q(w.version),
            q(w.filename),
            q(w.path),
            w.size,
            q(w.sha256)
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_lock_reads_back() {
        let sha = Sha256::of(b"six");
        let text = write(
            &[BuiltWheel {
                name: "six",
                version: "1.16.0",
                filename: "six-1.16.0-py2.py3-none-any.whl",
                path: "cp311/six-1.16.0-py2.py3-none-any.whl",
                sha256: &sha,
                size: 11,
            }],
            Some("3.11.2"),
        );
        let locked = read(Path::new("pylock.cp311.toml"), &text).unwrap();
        assert_eq!(locked[0].name, "six");
        assert_eq!(locked[0].wheel_sha256, [sha]);
        assert!(is_pylock(Path::new("x/pylock.cp311.toml")));
        assert!(is_pylock(Path::new("pylock.toml")));
        assert!(!is_pylock(Path::new("lock.toml")));
    }

    #[test]
    fn unreadable_locks_say_why() {
        let err = read(Path::new("pylock.toml"), "lock-version = \"2.0\"\n").unwrap_err();
        assert!(err.to_string().contains("lock-version 2.0"), "{err}");
        let err = read(
            Path::new("pylock.toml"),
            "lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("has no version"), "{err}");
    }
}
