//! Resolution of one cell: the target environment, then every build environment, recursively,
//! until every node that must be built from source is known.

use crate::cell::Cell;
use crate::graph::{BuildGraph, Cycle, Edge, EdgeKind};
use crate::names::PackageName;
use crate::provider::{Constraints, Resolution, ResolveError, requirement_range, resolve_env};
use crate::repository::{Dist, RepoError, Repository};
use crate::requirements::Entry;
use pep508_rs::{MarkerTree, Requirement};
use petgraph::graph::NodeIndex;
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
}

pub struct CellGraph {
    pub cell: Cell,
    pub graph: BuildGraph,
    pub dists: HashMap<NodeIndex, Arc<Dist>>,
    pub cycles: Vec<Cycle>,
    /// Distinct build environments resolved (identical requirement sets are resolved once).
    pub build_envs: usize,
    /// What is installed to build each node: its build environment, resolved.
    pub build_env: HashMap<NodeIndex, Vec<NodeIndex>>,
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
    let repo_err = |source: RepoError| CellError::Repo {
        cell: cell.id.clone(),
        source: Box::new(source),
    };
    let roots: Vec<&Entry> = input
        .requirements
        .iter()
        .filter(|e| e.requirement.evaluate_markers(cell.markers(), &[]))
        .collect();
    check_roots_exist(repo, cell, &roots)?;
    let root_reqs: Vec<Requirement> = roots.iter().map(|e| e.requirement.clone()).collect();
    let target_constraints = Constraints::from_requirements(&input.constraints, cell);
    let target = resolve_env(repo, cell, &root_reqs, &target_constraints).map_err(|source| {
        CellError::Resolve {
            cell: cell.id.clone(),
            what: "cannot resolve the requirements".into(),
            source,
        }
    })?;

    let mut state = State {
        repo,
        cell,
        graph: BuildGraph::default(),
        dists: HashMap::new(),
    };
    let mut queue = VecDeque::new();
    for ix in state.add_environment(&target).map_err(repo_err)? {
        state.graph.mark_target(ix);
        queue.push_back(ix);
    }
    for entry in &roots {
        let version = &target.packages[&entry.requirement.name];
        let ix = state
            .graph
            .find(&entry.requirement.name, version)
            .expect("resolved roots are nodes");
        state.graph.mark_root(ix);
        verify_hashes(entry, &state.dists[&ix])?;
    }

    let build_constraints = {
        let mut c = Constraints::from_requirements(&input.build_constraints, cell);
        for (name, range) in extra_build_constraints.iter() {
            c = c.with(name.clone(), range.clone());
        }
        c
    };
    let mut envs: HashMap<Vec<String>, Resolution> = HashMap::new();
    let mut build_env = HashMap::new();
    while let Some(ix) = queue.pop_front() {
        let dist = state.dists[&ix].clone();
        let Some(info) = &dist.sdist else {
            continue; // a binary is installed, not built
        };
        let mut wanted: Vec<(EdgeKind, Requirement, &str)> = Vec::new();
        for (kind, reqs, origin) in [
            (
                EdgeKind::BuildSystem,
                &info.build_requires,
                info.build_requires_source.as_str(),
            ),
            (
                EdgeKind::BuildBackend,
                &info.setup_requires,
                info.setup_requires_source.as_deref().unwrap_or(""),
            ),
        ] {
            for text in reqs {
                let req = Requirement::from_str(text).map_err(|err| {
                    repo_err(RepoError::BadRequirement {
                        name: dist.name.clone(),
                        version: dist.version.clone(),
                        requirement: text.clone(),
                        origin: origin.to_string(),
                        message: err.to_string().lines().next().unwrap_or_default().into(),
                    })
                })?;
                // The same requirement as setup_requires adds nothing to [build-system].
                let repeated = wanted.iter().any(|(_, r, _)| r.name == req.name);
                if req.evaluate_markers(cell.markers(), &[]) && !repeated {
                    wanted.push((kind, req, text));
                }
            }
        }
        let resolve_wanted = |wanted: &[(EdgeKind, Requirement, &str)],
                              envs: &mut HashMap<Vec<String>, Resolution>|
         -> Result<Resolution, CellError> {
            let mut key: Vec<String> = wanted.iter().map(|(_, r, _)| r.to_string()).collect();
            key.sort();
            key.dedup();
            if let Some(env) = envs.get(&key) {
                return Ok(env.clone());
            }
            let reqs: Vec<Requirement> = wanted.iter().map(|(_, r, _)| r.clone()).collect();
            let env = resolve_env(repo, cell, &reqs, &build_constraints).map_err(|source| {
                CellError::Resolve {
                    cell: cell.id.clone(),
                    what: format!(
                        "cannot resolve the build environment of {} {} ({})",
                        dist.name,
                        dist.version,
                        key.join(", ")
                    ),
                    source,
                }
            })?;
            envs.insert(key, env.clone());
            Ok(env)
        };
        let mut env = resolve_wanted(&wanted, &mut envs)?;
        if setuptools_hook_wants_wheel(&dist, info, &env)
            && !wanted.iter().any(|(_, r, _)| r.name.as_ref() == "wheel")
        {
            let wheel = Requirement::from_str("wheel").expect("a valid requirement");
            wanted.push((EdgeKind::BuildBackend, wheel, "wheel"));
            env = resolve_wanted(&wanted, &mut envs)?;
        }
        for new in state.add_environment(&env).map_err(repo_err)? {
            queue.push_back(new);
        }
        let members = env
            .packages
            .iter()
            .map(|(name, version)| state.graph.find(name, version).expect("added above"))
            .collect();
        build_env.insert(ix, members);
        let in_tree = !info.backend_path.is_empty();
        for (kind, req, text) in &wanted {
            // An in-tree backend builds itself: its own name in its requirements is no cycle.
            if in_tree && req.name == dist.name {
                continue;
            }
            let to = state
                .graph
                .find(&req.name, &env.packages[&req.name])
                .expect("resolved");
            state.graph.edge(ix, to, edge_for(*kind, text));
        }
    }
    let cycles = state.graph.cycles(&input.bootstrap);
    Ok(CellGraph {
        cell: cell.clone(),
        graph: state.graph,
        dists: state.dists,
        cycles,
        build_envs: envs.len(),
        build_env,
    })
}

struct State<'a> {
    repo: &'a Repository,
    cell: &'a Cell,
    graph: BuildGraph,
    dists: HashMap<NodeIndex, Arc<Dist>>,
}

impl State<'_> {
    /// Add an environment's packages as nodes with the install edges between them; returns the
    /// nodes seen for the first time.
    fn add_environment(&mut self, env: &Resolution) -> Result<Vec<NodeIndex>, RepoError> {
        let mut new = Vec::new();
        let mut members = Vec::new();
        for (name, version) in &env.packages {
            let (ix, is_new) = self.graph.node(name, version);
            if is_new {
                self.dists
                    .insert(ix, self.repo.dist(name, version, self.cell)?);
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

/// setuptools' `get_requires_for_build_wheel` answers `wheel` before 70.1, whose bdist_wheel
/// it needed; knowing it here puts the edge in the graph before any build runs.
fn setuptools_hook_wants_wheel(
    dist: &Dist,
    info: &crate::inspect::SdistInfo,
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
                cell: cell.id.clone(),
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
                cell: cell.id.clone(),
                requirement: bare.to_string(),
                origin: entry.origin.to_string(),
                newest,
            });
        }
    }
    Ok(())
}

fn verify_hashes(entry: &Entry, dist: &Dist) -> Result<(), CellError> {
    if entry.hashes.is_empty() || entry.hashes.contains(&dist.sha256) {
        return Ok(());
    }
    Err(CellError::HashMismatch {
        origin: entry.origin.to_string(),
        filename: dist.file.filename.clone(),
        expected: entry.hashes.join(" or "),
        got: dist.sha256.clone(),
    })
}
