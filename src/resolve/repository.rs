//! What the resolver asks of the world: which versions of a project exist (as the index stood at
//! `--exclude-newer`), and what a given version needs, read from its sdist or its wheel metadata.

use crate::cell::Cell;
use crate::digest::Sha256;
use crate::names::{PackageName, parse_sdist_filename, parse_wheel_filename};
use crate::progress::Progress;
use crate::resolve::archive::{self, Limits};
use crate::resolve::index::{Index, IndexError, IndexFile};
use crate::resolve::inspect::{InspectError, SdistInfo, inspect};
use crate::resolve::metadata::CoreMetadata;
use jiff::Timestamp;
use pep508_rs::Requirement;
use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// One version of a project and the files that carry it.
#[derive(Debug)]
pub struct Candidate {
    pub version: Version,
    pub sdist: Option<IndexFile>,
    pub wheels: Vec<IndexFile>,
    pub yanked: bool,
    pub requires_python: Option<VersionSpecifiers>,
    /// When its first file reached the index, if the index says.
    pub uploaded: Option<Timestamp>,
}

impl Candidate {
    pub fn fits_python(&self, cell: &Cell) -> bool {
        self.requires_python
            .as_ref()
            .is_none_or(|spec| spec.contains(cell.python_version()))
    }

    /// A wheel this cell could install, for packages allowed as binaries.
    pub fn wheel_for(&self, cell: &Cell) -> Option<&IndexFile> {
        let release = cell.python_version().release();
        let cp = format!("cp{}{}", release[0], release[1]);
        let py = format!("py{}", release[0]);
        self.wheels.iter().find(|w| {
            let stem = w.filename.trim_end_matches(".whl");
            let tags: Vec<&str> = stem.rsplitn(4, '-').collect();
            let [platform, abi, python, ..] = tags[..] else {
                return false;
            };
            let python_ok = python
                .split('.')
                .any(|t| t == py || t == cp || t == "py2.py3");
            let abi_ok = abi == "none" || abi.split('.').any(|a| a == cp || a == "abi3");
            let platform_ok = platform == "any"
                || platform
                    .split('.')
                    .any(|p| p.ends_with("linux_x86_64") || p.starts_with("manylinux"));
            python_ok && abi_ok && platform_ok
        })
    }
}

/// A chosen version with what it says about itself.
#[derive(Debug)]
pub struct Dist {
    pub name: PackageName,
    pub version: Version,
    /// The file the facts were read from: the sdist, or a wheel for `--allow-binary`.
    pub file: IndexFile,
    /// Of rewheel's copy of an sdist; of a binary wheel, what the index lists, if it is a
    /// sha256; none for what the image provides.
    pub sha256: Option<Sha256>,
    pub binary: bool,
    /// Build facts; `None` for binaries, which are not built.
    pub sdist: Option<SdistInfo>,
    pub requires_dist: Vec<Requirement>,
    /// The same requirements as written, for reports: markers read as their authors wrote them.
    pub requires_dist_text: Vec<String>,
    pub requires_python: Option<VersionSpecifiers>,
    /// Where `requires_dist` came from, for `--why` and the JSON report.
    pub requires_source: String,
    /// Satisfied by the image's own tool (`[provided]`): neither built nor installed.
    pub provided: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("{name} {version}: {source}")]
    Inspect {
        name: PackageName,
        version: Version,
        source: InspectError,
    },
    #[error("{name} {version}: requirement `{requirement}` in {origin} is invalid: {message}")]
    BadRequirement {
        name: PackageName,
        version: Version,
        requirement: String,
        origin: String,
        message: String,
    },
    #[error(
        "{name} {version} has no sdist on the index; allow its wheel with --allow-binary {name}"
    )]
    NoSdist { name: PackageName, version: Version },
    #[error("{name} {version} has no wheel for this interpreter to take instead of building it")]
    NoWheel { name: PackageName, version: Version },
    #[error("{}: cannot read wheel metadata: {message}", file)]
    BadWheel { file: String, message: String },
}

pub struct RepoConfig {
    pub exclude_newer: Option<Timestamp>,
    pub limits: Limits,
    pub allow_binary: HashSet<PackageName>,
    /// Requirements the image satisfies with its own tool, at this version.
    pub provided: HashMap<PackageName, Version>,
}

pub struct Repository {
    pub index: Index,
    pub config: RepoConfig,
    progress: Progress,
    candidates: Mutex<HashMap<PackageName, Arc<Vec<Candidate>>>>,
    dists: Mutex<HashMap<(PackageName, Version), Arc<Dist>>>,
}

/// Bumped whenever `SdistInfo` or how it is derived changes, so old cache entries are not read.
const INSPECT_CACHE: &str = "inspect-v3";

impl Repository {
    pub fn new(index: Index, config: RepoConfig, progress: Progress) -> Self {
        Self {
            index,
            config,
            progress,
            candidates: Mutex::default(),
            dists: Mutex::default(),
        }
    }

    pub fn is_binary(&self, name: &PackageName) -> bool {
        self.config.allow_binary.contains(name)
    }

    pub fn is_provided(&self, name: &PackageName) -> bool {
        self.config.provided.contains_key(name)
    }

    /// Versions of a project, newest first, as the index stood at `--exclude-newer`.
    pub fn candidates(&self, name: &PackageName) -> Result<Arc<Vec<Candidate>>, RepoError> {
        if let Some(c) = self.candidates.lock().unwrap().get(name) {
            return Ok(c.clone());
        }
        if let Some(version) = self.config.provided.get(name) {
            // One version, the image's; the index is not asked.
            return Ok(Arc::new(vec![Candidate {
                version: version.clone(),
                sdist: None,
                wheels: Vec::new(),
                yanked: false,
                requires_python: None,
                uploaded: None,
            }]));
        }
        self.progress.message(format!("index page of {name}"));
        let files = self.index.project(name)?;
        let mut by_version: BTreeMap<Version, Candidate> = BTreeMap::new();
        for file in files.iter() {
            if let (Some(cutoff), Some(uploaded)) = (self.config.exclude_newer, file.upload_time)
                && uploaded > cutoff
            {
                continue;
            }
            let (version, is_sdist) =
                if let Some(sdist) = parse_sdist_filename(&file.filename, name) {
                    (sdist.version, true)
                } else if let Some((_, version)) = parse_wheel_filename(&file.filename) {
                    (version, false)
                } else {
                    continue;
                };
            let candidate = by_version
                .entry(version.clone())
                .or_insert_with(|| Candidate {
                    version,
                    sdist: None,
                    wheels: Vec::new(),
                    yanked: true,
                    requires_python: None,
                    uploaded: None,
                });
            candidate.yanked &= file.yanked;
            candidate.uploaded = match (candidate.uploaded, file.upload_time) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if candidate.requires_python.is_none() {
                candidate.requires_python = file
                    .requires_python
                    .as_deref()
                    .and_then(|s| VersionSpecifiers::from_str(s).ok());
            }
            if is_sdist {
                // Prefer .tar.gz when both it and a .zip are there, as pip does.
                if candidate.sdist.is_none() || file.filename.ends_with(".tar.gz") {
                    candidate.sdist = Some(file.clone());
                }
            } else {
                candidate.wheels.push(file.clone());
            }
        }
        let list: Arc<Vec<Candidate>> = Arc::new(by_version.into_values().rev().collect());
        self.candidates
            .lock()
            .unwrap()
            .insert(name.clone(), list.clone());
        Ok(list)
    }

    /// The facts of one version: fetched, checked and inspected once per process, and once
    /// per sdist hash on disk.
    pub fn dist(
        &self,
        name: &PackageName,
        version: &Version,
        cell: &Cell,
    ) -> Result<Arc<Dist>, RepoError> {
        let key = (name.clone(), version.clone());
        if let Some(dist) = self.dists.lock().unwrap().get(&key) {
            return Ok(dist.clone());
        }
        let candidates = self.candidates(name)?;
        let candidate = candidates
            .iter()
            .find(|c| &c.version == version)
            .expect("the resolver only asks for listed versions");
        let dist = if self.is_provided(name) {
            Dist {
                name: name.clone(),
                version: version.clone(),
                file: IndexFile {
                    filename: format!("{name}-{version} (provided by the image)"),
                    url: String::new(),
                    ..Default::default()
                },
                sha256: None,
                binary: false,
                sdist: None,
                requires_dist: Vec::new(),
                requires_dist_text: Vec::new(),
                requires_python: None,
                requires_source: "provided by the image".into(),
                provided: true,
            }
        } else if self.is_binary(name) {
            self.binary_dist(name, candidate, cell)?
        } else {
            self.sdist_dist(name, candidate)?
        };
        let dist = Arc::new(dist);
        self.dists.lock().unwrap().insert(key, dist.clone());
        Ok(dist)
    }

    fn sdist_dist(&self, name: &PackageName, candidate: &Candidate) -> Result<Dist, RepoError> {
        let version = &candidate.version;
        let file = candidate.sdist.clone().ok_or_else(|| RepoError::NoSdist {
            name: name.clone(),
            version: version.clone(),
        })?;
        let listed = file
            .sha256
            .as_deref()
            .and_then(|sha| Sha256::parse(sha).ok());
        let (sha256, info) = match listed.and_then(|sha| {
            self.index
                .cache()
                .derived::<SdistInfo>(INSPECT_CACHE, &sha)
                .map(|info| (sha, info))
        }) {
            Some(hit) => hit,
            None => {
                self.progress.message(format!("fetching {}", file.filename));
                // rewheel's own copy, hashed (and checked) as it was written: the job reads
                // it, not the source, so what is built is what this hash names.
                let (path, sha256) = self.index.fetch_hashed(&file)?;
                // A file listed without a hash (a find-links folder) is known by it only now.
                match self
                    .index
                    .cache()
                    .derived::<SdistInfo>(INSPECT_CACHE, &sha256)
                {
                    Some(info) => (sha256, info),
                    None => {
                        let files = archive::read_sdist(&path, self.config.limits)?;
                        let info = inspect(&files).map_err(|source| RepoError::Inspect {
                            name: name.clone(),
                            version: version.clone(),
                            source,
                        })?;
                        for warning in &info.warnings {
                            tracing::warn!("{name} {version}: {warning}");
                        }
                        self.index
                            .cache()
                            .store_derived(INSPECT_CACHE, &sha256, &info);
                        (sha256, info)
                    }
                }
            }
        };
        let (requires, source) = match &info.requires_dist {
            Some(reqs) => (
                reqs.clone(),
                info.requires_dist_source.clone().unwrap_or_default(),
            ),
            None => match self.wheel_metadata(candidate)? {
                Some(meta) => (
                    meta.requires_dist,
                    "the index's wheel metadata (PEP 658, or its pure wheel's METADATA)"
                        .to_string(),
                ),
                None => (
                    info.pkg_info_requires_dist.clone(),
                    "PKG-INFO (unreliable)".to_string(),
                ),
            },
        };
        let requires_python = info
            .requires_python
            .as_deref()
            .and_then(|s| VersionSpecifiers::from_str(s).ok())
            .or_else(|| candidate.requires_python.clone());
        Ok(Dist {
            name: name.clone(),
            version: version.clone(),
            requires_dist: parse_requirements(name, version, &requires, &source)?,
            requires_dist_text: requires,
            requires_source: source,
            requires_python,
            file,
            sha256: Some(sha256),
            binary: false,
            sdist: Some(info),
            provided: false,
        })
    }

    /// Metadata of any wheel of this version that the index serves beside it (PEP 658), else
    /// the METADATA inside its pure wheel: an index that never backfilled PEP 658 for old
    /// uploads (flit-core 3.0.0, whose sdist's PKG-INFO 1.1 names no `pytoml`) still has the
    /// wheel, whose metadata the backend wrote. Any failure leaves the sdist's PKG-INFO.
    fn wheel_metadata(&self, candidate: &Candidate) -> Result<Option<CoreMetadata>, RepoError> {
        for wheel in candidate.wheels.iter().filter(|w| w.core_metadata) {
            if let Some(bytes) = self.index.core_metadata(wheel)? {
                return Ok(Some(CoreMetadata::parse(&bytes)));
            }
        }
        let pure = candidate
            .wheels
            .iter()
            .find(|w| w.filename.ends_with("-none-any.whl"));
        Ok(pure
            .and_then(|wheel| self.index.fetch(wheel).ok())
            .and_then(|path| metadata_in_wheel(&path))
            .map(|bytes| CoreMetadata::parse(&bytes)))
    }

    fn binary_dist(
        &self,
        name: &PackageName,
        candidate: &Candidate,
        cell: &Cell,
    ) -> Result<Dist, RepoError> {
        let version = &candidate.version;
        let wheel = candidate
            .wheel_for(cell)
            .ok_or_else(|| RepoError::NoWheel {
                name: name.clone(),
                version: version.clone(),
            })?;
        let meta = match self.index.core_metadata(wheel)? {
            Some(bytes) => CoreMetadata::parse(&bytes),
            None => {
                self.progress
                    .message(format!("fetching {}", wheel.filename));
                let path = self.index.fetch(wheel)?;
                CoreMetadata::parse(&read_wheel_metadata(&path, &wheel.filename)?)
            }
        };
        let source = "wheel METADATA".to_string();
        Ok(Dist {
            name: name.clone(),
            version: version.clone(),
            requires_dist: parse_requirements(name, version, &meta.requires_dist, &source)?,
            requires_dist_text: meta.requires_dist,
            requires_source: source,
            requires_python: meta
                .requires_python
                .as_deref()
                .and_then(|s| VersionSpecifiers::from_str(s).ok()),
            sha256: wheel
                .sha256
                .as_deref()
                .and_then(|sha| Sha256::parse(sha).ok()),
            file: wheel.clone(),
            binary: true,
            sdist: None,
            provided: false,
        })
    }
}

fn parse_requirements(
    name: &PackageName,
    version: &Version,
    reqs: &[String],
    origin: &str,
) -> Result<Vec<Requirement>, RepoError> {
    reqs.iter()
        .map(|r| {
            crate::names::parse_requirement(r).map_err(|err| RepoError::BadRequirement {
                name: name.clone(),
                version: version.clone(),
                requirement: r.clone(),
                origin: origin.to_string(),
                message: err
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
}

fn read_wheel_metadata(path: &std::path::Path, filename: &str) -> Result<Vec<u8>, RepoError> {
    use std::io::Read;
    let bad = |message: String| RepoError::BadWheel {
        file: filename.to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let entry_name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)
        .map(|n| n.into_owned())
        .ok_or_else(|| bad("no .dist-info/METADATA".into()))?;
    let mut entry = zip.by_name(&entry_name).map_err(|e| bad(e.to_string()))?;
    let mut bytes = Vec::new();
    (&mut entry)
        .take(16 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    Ok(bytes)
}

/// The `*.dist-info/METADATA` of a wheel on this host, at most 4 MiB of it (a hostile wheel's
/// entry may claim any size).
fn metadata_in_wheel(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).ok()?).ok()?;
    let name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| {
            n.split_once(".dist-info/METADATA")
                .is_some_and(|(top, rest)| rest.is_empty() && !top.contains('/'))
        })?
        .to_string();
    let mut bytes = Vec::new();
    zip.by_name(&name)
        .ok()?
        .take(4 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}
