//! Rust crates of an sdist: what its `Cargo.lock` files pin, read without running anything,
//! and fetched before the job (which has no network) into the content-addressed cache, each
//! checked against the checksum its lock file gives.

use crate::digest::Sha256;
use crate::resolve::archive::SdistFiles;
use crate::resolve::index::{Index, IndexError, IndexFile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where crates are downloaded from: `{CRATES_URL}/{name}/{name}-{version}.crate`.
pub const CRATES_URL: &str = "https://static.crates.io/crates";

/// One registry crate pinned by a lock file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CrateRef {
    pub name: String,
    pub version: String,
    /// The lock file's checksum: the sha256 of the `.crate` file.
    pub sha256: Sha256,
}

impl CrateRef {
    pub fn url(&self) -> String {
        format!(
            "{CRATES_URL}/{name}/{name}-{version}.crate",
            name = self.name,
            version = self.version
        )
    }

    /// Fetch (or find in the cache) this crate's archive, verified against its checksum.
    pub fn fetch(&self, index: &Index) -> Result<PathBuf, IndexError> {
        index.fetch(&IndexFile {
            // A crate is a gzipped tar; the name says so to the archive reader.
            filename: format!("{}-{}.crate.tar.gz", self.name, self.version),
            url: self.url(),
            sha256: Some(self.sha256.to_string()),
            requires_python: None,
            upload_time: None,
            yanked: false,
            core_metadata: false,
            size: None,
        })
    }
}

/// A lock file that cannot be read, or a crate in it that cannot be vendored safely.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct LockError {
    pub file: String,
    pub message: String,
}

#[derive(Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
    /// Lock format 1 kept checksums here: `"checksum NAME VERSION (SOURCE)" = "sha"`.
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
}

fn is_crates_io(source: &str) -> bool {
    source == "registry+https://github.com/rust-lang/crates.io-index"
        || source == "sparse+https://index.crates.io/"
}

/// Every registry crate of every `Cargo.lock` in the sdist (a workspace may have several).
/// Sources a job cannot get offline (git, other registries) are warnings: the build will say
/// why it fails, and `resolve` shows the warning first.
pub fn from_lockfiles(
    files: &SdistFiles,
    warnings: &mut Vec<String>,
) -> Result<Vec<CrateRef>, LockError> {
    let mut crates = BTreeSet::new();
    for (path, bytes) in files
        .files
        .iter()
        .filter(|(p, _)| p.as_str() == "Cargo.lock" || p.ends_with("/Cargo.lock"))
    {
        let lock: LockFile =
            toml::from_str(&String::from_utf8_lossy(bytes)).map_err(|err| LockError {
                file: path.clone(),
                message: err.to_string().trim_end().to_string(),
            })?;
        for package in lock.package {
            let Some(source) = &package.source else {
                continue; // a path dependency: in the tree
            };
            if !is_crates_io(source) {
                warnings.push(format!(
                    "{path}: crate {} {} comes from {source}, which a job cannot reach offline",
                    package.name, package.version
                ));
                continue;
            }
            let checksum = package.checksum.clone().or_else(|| {
                lock.metadata
                    .get(&format!(
                        "checksum {} {} ({source})",
                        package.name, package.version
                    ))
                    .cloned()
            });
            let Some(sha256) = checksum.and_then(|c| Sha256::parse(&c.to_ascii_lowercase()).ok())
            else {
                return Err(LockError {
                    file: path.clone(),
                    message: format!(
                        "crate {} {} has no checksum; a crate that cannot be verified is not vendored",
                        package.name, package.version
                    ),
                });
            };
            // Names and versions become paths and URLs: plain ones only.
            let plain = |s: &str| {
                !s.is_empty()
                    && !s.starts_with('.')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
            };
            if !plain(&package.name) || !plain(&package.version) {
                return Err(LockError {
                    file: path.clone(),
                    message: format!(
                        "`{} {}` is not a crate name and version",
                        package.name, package.version
                    ),
                });
            }
            crates.insert(CrateRef {
                name: package.name,
                version: package.version,
                sha256,
            });
        }
    }
    Ok(crates.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(lock: &str) -> SdistFiles {
        let mut files = SdistFiles::default();
        files
            .files
            .insert("rust/Cargo.lock".into(), lock.as_bytes().to_vec());
        files
    }

    #[test]
    fn reads_registry_crates_and_warns_about_git_ones() {
        let sha = "a".repeat(64);
        let lock = format!(
            "version = 3\n[[package]]\nname = \"ext\"\nversion = \"0.1.0\"\n\
             [[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\n\
             source = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{sha}\"\n\
             [[package]]\nname = \"forked\"\nversion = \"0.1.0\"\nsource = \"git+https://example.invalid/x#abc\"\n"
        );
        let mut warnings = Vec::new();
        let crates = from_lockfiles(&files(&lock), &mut warnings).unwrap();
        assert_eq!(crates.len(), 1);
        assert_eq!(crates[0].name, "itoa");
        assert!(crates[0].url().ends_with("/itoa/itoa-1.0.11.crate"));
        assert!(warnings[0].contains("forked"), "{warnings:?}");
    }

    #[test]
    fn a_crate_without_checksum_or_with_a_path_for_a_name_is_refused() {
        let lock = "[[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\n\
                    source = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        let err = from_lockfiles(&files(lock), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("no checksum"), "{err}");
        let lock = format!(
            "[[package]]\nname = \"../../x\"\nversion = \"1\"\n\
             source = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
            "b".repeat(64)
        );
        let err = from_lockfiles(&files(&lock), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("not a crate name"), "{err}");
    }
}
