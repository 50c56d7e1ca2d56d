//! One resolution from plain settings: cells from `--python`/matrix, requirements and
//! constraints from their files, the index from the flags, a requirements file or the matrix
//! (in that order), then every cell resolved on its own thread over one shared repository.

use super::archive::Limits;
use super::explain::{WayOut, ways_out};
use super::graph::CycleKind;
use super::index::{Index, IndexConfig};
use super::provider::Constraints;
use super::report::{self, ResolveReport, SCHEMA_VERSION};
use super::repository::{RepoConfig, Repository};
use super::{CellGraph, ResolveInput, resolve_cell};
use crate::cell::Cell;
use crate::matrix::Matrix;
use crate::names::PackageName;
use crate::packages::PackageSettings;
use crate::progress::Progress;
use crate::requirements::Requirements;
use anyhow::bail;
use jiff::Timestamp;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// Where packages come from and how they are read: the index flags, as plain values.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IndexSettings {
    /// The index the flags (or `PIP_INDEX_URL`) named; a requirements file's or the matrix's
    /// comes after it, the default index last.
    pub index_url: Option<String>,
    pub no_index: bool,
    pub find_links: Vec<PathBuf>,
    pub cache_dir: PathBuf,
    pub offline: bool,
    pub attempts: u32,
    pub exclude_newer: Option<Timestamp>,
    pub limits: Limits,
    /// The most an index page may be, decoded (`--max-page-size`).
    pub max_page: u64,
}

impl IndexSettings {
    /// The index configuration, `fallback` being the first of a requirements file's and the
    /// matrix's index URL.
    pub fn config(&self, fallback: Option<String>) -> IndexConfig {
        IndexConfig {
            index_url: (!self.no_index).then(|| {
                self.index_url
                    .clone()
                    .or(fallback)
                    .unwrap_or_else(|| DEFAULT_INDEX.to_string())
            }),
            find_links: self.find_links.clone(),
            cache_dir: self.cache_dir.clone(),
            offline: self.offline,
            attempts: self.attempts,
            exclude_newer: self.exclude_newer,
            max_page: self.max_page,
            max_download: self.limits.max_unpacked,
        }
    }
}

/// What to resolve, for which cells, from where.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ResolveSettings {
    pub specs: Vec<String>,
    pub requirement_files: Vec<PathBuf>,
    pub constraint_files: Vec<PathBuf>,
    pub build_constraint_files: Vec<PathBuf>,
    /// Bare interpreter versions (`--python`), each a cell `cpXY`.
    pub pythons: Vec<String>,
    pub matrix: Option<PathBuf>,
    /// A glob over the matrix's cell ids.
    pub cells: Option<String>,
    pub index: IndexSettings,
    pub allow_binary: HashSet<PackageName>,
    /// The bootstrap set as given (the report repeats it) and as names.
    pub bootstrap: Vec<(String, PackageName)>,
    /// Per-package build settings files (`--settings`); the matrix may hold more.
    pub settings_files: Vec<PathBuf>,
    /// The named packages without their runtime dependencies (pip's --no-deps); their build
    /// environments are resolved whole.
    #[serde(default)]
    pub no_deps: bool,
}

/// Everything resolution produced, for the stages that go on from it.
pub struct Resolved {
    pub repo: Repository,
    pub graphs: Vec<(CellGraph, Vec<Vec<WayOut>>)>,
    pub exclude_newer: Option<Timestamp>,
    pub bootstrap: Vec<String>,
    pub limits: Limits,
    pub packages: Arc<PackageSettings>,
}

impl Resolved {
    pub fn report(&self) -> ResolveReport {
        ResolveReport {
            schema_version: SCHEMA_VERSION,
            tool: format!("rewheel {}", env!("CARGO_PKG_VERSION")),
            exclude_newer: self.exclude_newer.map(|t| t.to_string()),
            bootstrap: self.bootstrap.clone(),
            cells: self
                .graphs
                .iter()
                .map(|(cg, ways)| report::cell_report(cg, ways))
                .collect(),
        }
    }

    /// A cycle that no bootstrap resolves stops everything after resolution.
    pub fn has_error_cycle(&self) -> bool {
        self.graphs
            .iter()
            .any(|(cg, _)| cg.cycles.iter().any(|c| c.kind == CycleKind::Error))
    }

    /// The cells, each with the system packages its builds need.
    pub fn cells(&self) -> Vec<Cell> {
        self.graphs
            .iter()
            .map(|(cg, _)| cg.cell_with_system())
            .collect()
    }

    /// The graphs alone, for planning; the repository goes with them.
    pub fn into_parts(self) -> (Repository, Vec<CellGraph>) {
        (
            self.repo,
            self.graphs.into_iter().map(|(cg, _)| cg).collect(),
        )
    }
}

/// Resolve every cell; `explain` looks for verified ways out of each cycle (which fetches
/// older sdists).
pub fn resolve(settings: &ResolveSettings, explain: bool) -> anyhow::Result<Resolved> {
    let matrix = settings.matrix.as_deref().map(Matrix::load).transpose()?;
    let mut cells: Vec<Cell> = Vec::new();
    for python in &settings.pythons {
        cells.push(Cell::for_python(python)?);
    }
    if let Some(matrix) = &matrix {
        cells.extend(matrix.select(settings.cells.as_deref())?);
    }
    if cells.is_empty() {
        bail!("no cell to resolve for\nhint: give --python X.Y or --matrix FILE");
    }

    let mut packages = PackageSettings::default();
    for file in &settings.settings_files {
        packages.merge(PackageSettings::load(file)?)?;
    }
    if let Some(matrix) = &matrix {
        packages.merge(matrix.packages.clone())?;
    }
    packages.underlay(PackageSettings::shipped());
    let packages = Arc::new(packages);

    let mut reqs = Requirements::default();
    for spec in &settings.specs {
        reqs.add_arg(spec)?;
    }
    let matrix_reqs = matrix
        .as_ref()
        .map(|m| m.requirements.clone())
        .unwrap_or_default();
    for file in settings.requirement_files.iter().chain(&matrix_reqs) {
        reqs.read_file(file)?;
    }
    for file in &settings.constraint_files {
        reqs.read_constraints_file(file)?;
    }
    if reqs.requirements.is_empty() {
        bail!("nothing to resolve\nhint: name requirements (`six==1.16.0`) or give -r FILE");
    }
    let mut build = Requirements::default();
    let matrix_build = matrix
        .as_ref()
        .map(|m| m.build_constraints.clone())
        .unwrap_or_default();
    for file in settings.build_constraint_files.iter().chain(&matrix_build) {
        build.read_constraints_file(file)?;
    }

    let fallback_url = reqs
        .index_url
        .clone()
        .or_else(|| matrix.as_ref().and_then(|m| m.index_url.clone()));
    let mut config = settings.index.config(fallback_url);
    config.find_links.extend(reqs.find_links.iter().cloned());
    let index = Index::new(config)?;
    let progress = Progress::stderr(true);
    let limits = settings.index.limits;
    let repo = Repository::new(
        index,
        RepoConfig {
            exclude_newer: settings.index.exclude_newer,
            limits,
            allow_binary: settings
                .allow_binary
                .iter()
                .chain(packages.allow_binary())
                .cloned()
                .collect(),
            provided: packages
                .provided()
                .iter()
                .map(|(name, p)| (name.clone(), p.version.clone()))
                .collect(),
        },
        progress.clone(),
    );
    let input = ResolveInput {
        requirements: reqs.requirements,
        constraints: reqs
            .constraints
            .into_iter()
            .map(|e| e.requirement)
            .collect(),
        build_constraints: build
            .constraints
            .into_iter()
            .chain(build.requirements)
            .map(|e| e.requirement)
            .collect(),
        bootstrap: settings.bootstrap.iter().map(|(_, n)| n.clone()).collect(),
        packages: packages.clone(),
        no_deps: settings.no_deps,
    };

    // Cells are independent; the repository's caches are shared between them.
    type CellResult = anyhow::Result<(CellGraph, Vec<Vec<WayOut>>)>;
    let results: Vec<CellResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = cells
            .iter()
            .map(|cell| {
                let (repo, input) = (&repo, &input);
                scope.spawn(move || {
                    let cg = resolve_cell(repo, cell, input, &Constraints::default())?;
                    let ways = (0..cg.cycles.len())
                        .map(|i| {
                            if explain && cg.cycles[i].kind == CycleKind::Error {
                                ways_out(repo, input, &cg, i)
                            } else {
                                Vec::new()
                            }
                        })
                        .collect();
                    Ok((cg, ways))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a resolver thread panicked"))
            .collect()
    });
    progress.finish();
    let mut graphs = Vec::new();
    for result in results {
        graphs.push(result?);
    }
    Ok(Resolved {
        repo,
        graphs,
        exclude_newer: settings.index.exclude_newer,
        bootstrap: settings.bootstrap.iter().map(|(s, _)| s.clone()).collect(),
        limits,
        packages,
    })
}
