//! Planning `rewheel build`: one job per node to build (three per member of a bootstrap cycle),
//! each with the wheels of its build environment named by where they come from.
//!
//! Planning fetches (sdists, seed and binary wheels) through the repository, so it is
//! synchronous; the executor calls it from a blocking task when a backend's hook extends the
//! graph at build time.

use crate::build::job::{EnvWheel, JobSpec, Settings};
use crate::cell::CellId;
use crate::digest::Sha256;
use crate::names::parse_wheel_filename;
use crate::resolve::archive::Limits;
use crate::resolve::graph::CycleKind;
use crate::resolve::repository::{RepoError, Repository};
use crate::resolve::{CellError, CellGraph};
use petgraph::graph::NodeIndex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BOOTSTRAP_STAGES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    pub cell: usize,
    pub node: NodeIndex,
    /// 0: an ordinary build; 1..=3: the stages of a bootstrap build.
    pub stage: u32,
}

/// Where one wheel of a build environment comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Job(JobKey),
    /// A wheel not built here: a seed for the bootstrap, or `--allow-binary`.
    File(EnvWheel),
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub key: JobKey,
    pub spec: JobSpec,
    /// Where the sdist comes from, for CI jobs that fetch their own inputs.
    pub sdist_url: String,
    /// The cell (interpreter version, image), for CI jobs.
    pub cell: crate::cell::Cell,
    pub env: Vec<Source>,
    /// Stage 0 and the last bootstrap stage are the wheels of the run; earlier stages are
    /// scaffolding.
    pub is_final: bool,
}

impl Planned {
    pub fn deps(&self) -> impl Iterator<Item = JobKey> + '_ {
        self.env.iter().filter_map(|s| match s {
            Source::Job(k) => Some(*k),
            Source::File(_) => None,
        })
    }
}

/// Which finished jobs of the store a run may take over instead of building them again. A
/// resumed run always takes over its own.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rebuild {
    /// Reuse any finished job whose fingerprint matches (the job cache).
    #[default]
    Nothing,
    /// Build everything again.
    All,
    /// Build these packages again; reuse the rest.
    Packages(std::collections::HashSet<crate::names::PackageName>),
}

impl Rebuild {
    /// May a finished job of package `name` from another run stand in for this one?
    pub fn may_reuse(&self, name: &str) -> bool {
        match self {
            Rebuild::Nothing => true,
            Rebuild::All => false,
            Rebuild::Packages(names) => {
                <crate::names::PackageName as std::str::FromStr>::from_str(name)
                    .is_ok_and(|n| !names.contains(&n))
            }
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuildOptions {
    pub jobs: usize,
    pub rebuild: Rebuild,
    pub out_dir: PathBuf,
    pub settings: Settings,
    pub timeout: Duration,
    pub seed_dir: Option<PathBuf>,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{cell}: {source}")]
    Repo {
        cell: String,
        #[source]
        source: Box<RepoError>,
    },
    #[error(transparent)]
    Cell(#[from] CellError),
    #[error(
        "{cell}: no seed wheel for {name} to start the bootstrap from\nhint: put one in --seed-wheels DIR"
    )]
    NoSeed { cell: String, name: String },
    #[error("{0}")]
    Cycle(String),
}

/// What the executor is told after a backend asked for more at build time.
pub enum Extension {
    /// Nothing missing for this cell after all (markers): build with what is installed.
    Proceed,
    /// The job again, with its larger environment, and the jobs of the nodes it brought.
    Replan(Vec<Planned>),
}

pub struct Planner {
    repo: Arc<Repository>,
    graphs: Mutex<Vec<CellGraph>>,
    options: Arc<BuildOptions>,
    wheels: Mutex<HashMap<(usize, NodeIndex, bool), EnvWheel>>,
}

impl Planner {
    pub fn new(repo: Arc<Repository>, graphs: Vec<CellGraph>, options: Arc<BuildOptions>) -> Self {
        Self {
            repo,
            graphs: Mutex::new(graphs),
            options,
            wheels: Mutex::default(),
        }
    }

    pub fn cells(&self) -> Vec<String> {
        self.graphs
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.cell.id.to_string())
            .collect()
    }

    /// Each cell's marker environment: what a requirement a hook names is weighed against.
    pub fn markers(&self) -> HashMap<CellId, pep508_rs::MarkerEnvironment> {
        self.graphs
            .lock()
            .unwrap()
            .iter()
            .map(|g| (g.cell.id.clone(), g.cell.markers().clone()))
            .collect()
    }

    /// Every job of every cell, in dependency order.
    pub fn plan_all(&self) -> Result<Vec<Planned>, PlanError> {
        self.plan_all_with(&self.options.settings)
    }

    /// The same, with other settings (the second build of `check --independent`).
    pub fn plan_all_with(&self, settings: &Settings) -> Result<Vec<Planned>, PlanError> {
        let graphs = self.graphs.lock().unwrap();
        let mut planned = Vec::new();
        for (c, cg) in graphs.iter().enumerate() {
            for (node, _) in cg.graph.order() {
                let mut jobs = self.plan_node(c, cg, node)?;
                for job in &mut jobs {
                    job.spec.settings = settings.clone();
                }
                planned.extend(jobs);
            }
        }
        Ok(planned)
    }

    /// Remember everything a job's hook answered (a build's or a probe's), so that later
    /// resolutions, and plans made from them, know it before any job runs.
    pub fn learn(&self, key: JobKey, requires: &[String]) {
        let graphs = self.graphs.lock().unwrap();
        if let Some(cg) = graphs.get(key.cell)
            && let Some(dist) = cg.dists.get(&key.node)
        {
            crate::resolve::learn_requirements(&self.repo, dist, &cg.cell, requires);
        }
    }

    /// Whether the job's hook has never answered on its interpreter: a plan probes it.
    pub fn hook_unknown(&self, key: JobKey) -> bool {
        let graphs = self.graphs.lock().unwrap();
        graphs.get(key.cell).is_some_and(|cg| {
            cg.dists
                .get(&key.node)
                .is_some_and(|dist| !crate::resolve::hook_known(&self.repo, dist, &cg.cell))
        })
    }

    /// A backend's hook named `requirements` beyond the job's environment: grow the graph.
    pub fn extend(&self, key: JobKey, requirements: &[String]) -> Result<Extension, PlanError> {
        let mut graphs = self.graphs.lock().unwrap();
        let cg = &mut graphs[key.cell];
        crate::resolve::learn_requirements(
            &self.repo,
            &cg.dists[&key.node],
            &cg.cell,
            requirements,
        );
        let Some(new) = cg.extend(&self.repo, key.node, requirements)? else {
            return Ok(Extension::Proceed);
        };
        if let Some(cycle) = cg
            .cycles
            .iter()
            .find(|c| c.members.contains(&key.node) || c.members.iter().any(|m| new.contains(m)))
        {
            let steps: Vec<_> = cycle
                .entry_path
                .iter()
                .chain(&cycle.loop_edges)
                .copied()
                .collect();
            let start = steps
                .first()
                .map(|&e| cg.graph.source(e))
                .unwrap_or(cycle.members[0]);
            return Err(PlanError::Cycle(format!(
                "what the backend asked for at build time closes a cycle: {}",
                cg.graph.render_chain(start, &steps)
            )));
        }
        let cg = &graphs[key.cell];
        let mut planned = Vec::new();
        let order: Vec<NodeIndex> = cg.graph.order().into_iter().map(|(n, _)| n).collect();
        for node in order
            .into_iter()
            .filter(|n| new.contains(n) || *n == key.node)
        {
            planned.extend(self.plan_node(key.cell, cg, node)?);
        }
        Ok(Extension::Replan(planned))
    }

    fn plan_node(
        &self,
        c: usize,
        cg: &CellGraph,
        node: NodeIndex,
    ) -> Result<Vec<Planned>, PlanError> {
        let repo_err = |source: RepoError| PlanError::Repo {
            cell: cg.cell.id.to_string(),
            source: Box::new(source),
        };
        let dist = &cg.dists[&node];
        // An sdist is known by the hash of rewheel's copy; what has none is not built.
        let (Some(info), Some(sdist_sha256)) = (&dist.sdist, &dist.sha256) else {
            return Ok(Vec::new());
        };
        let cycle_of = |n: NodeIndex| {
            cg.cycles
                .iter()
                .position(|cy| cy.kind == CycleKind::Bootstrap && cy.members.contains(&n))
        };
        // The copy whose hash resolution recorded, never the source again: a find-links file
        // replaced since is a hash mismatch, not another package under this one's hash.
        let sdist = self
            .repo
            .index
            .fetch(&crate::resolve::index::IndexFile {
                sha256: Some(sdist_sha256.to_string()),
                ..dist.file.clone()
            })
            .map_err(|e| repo_err(e.into()))?;
        let mut crates = Vec::new();
        for krate in &info.crates {
            match krate.fetch(&self.repo.index) {
                Ok(path) => crates.push(crate::build::job::VendoredCrate {
                    krate: krate.clone(),
                    path,
                }),
                // A lock of test data can name crates that were never published: the build
                // says so if it needs one (cargo, offline, names it).
                Err(crate::resolve::index::IndexError::Http(
                    crate::http::HttpError::NotFound { url },
                )) => tracing::warn!(
                    "{} {}: crate {} {} is not on the registry ({url}); not vendored",
                    dist.name,
                    dist.version,
                    krate.name,
                    krate.version
                ),
                Err(e) => return Err(repo_err(e.into())),
            }
        }
        let stages: Vec<u32> = if cycle_of(node).is_some() {
            (1..=BOOTSTRAP_STAGES).collect()
        } else {
            vec![0]
        };
        let mut recipe = cg
            .packages
            .get(&dist.name)
            .map(|c| crate::build::job::Recipe::of(&c))
            .unwrap_or_default();
        // The release a published-backend pin names builds itself.
        if let Some(config) = cg.packages.get(&dist.name) {
            recipe.backend = config.backend_for(&dist.version).map(str::to_string);
        }
        // What the cell's image carries for this node anyway (a Rust toolchain): a CI job
        // installs the recipe's system packages, so they are named here too.
        for implied in cg.implied_system(node) {
            if !recipe.system.contains(&implied) {
                recipe.system.push(implied);
                recipe.system.sort();
            }
        }
        let mut planned = Vec::new();
        for stage in stages {
            let mut env = Vec::new();
            let mut provided = Vec::new();
            for &member in cg.build_env.get(&node).into_iter().flatten() {
                let dist = &cg.dists[&member];
                if dist.provided {
                    // The image's tool stands in: nothing to install but a record of it.
                    provided.push(format!("{}=={}", dist.name, dist.version));
                    continue;
                }
                let same_cycle = cycle_of(member).is_some() && cycle_of(member) == cycle_of(node);
                let source = if cg.dists[&member].binary {
                    Source::File(self.wheel(c, cg, member, false)?)
                } else if same_cycle && stage == 1 {
                    Source::File(self.wheel(c, cg, member, true)?)
                } else if same_cycle {
                    Source::Job(JobKey {
                        cell: c,
                        node: member,
                        stage: stage - 1,
                    })
                } else if member == node {
                    continue; // an in-tree backend: the source tree itself provides it
                } else if cycle_of(member).is_some() {
                    Source::Job(JobKey {
                        cell: c,
                        node: member,
                        stage: BOOTSTRAP_STAGES,
                    })
                } else {
                    Source::Job(JobKey {
                        cell: c,
                        node: member,
                        stage: 0,
                    })
                };
                env.push(source);
            }
            planned.push(Planned {
                key: JobKey {
                    cell: c,
                    node,
                    stage,
                },
                sdist_url: dist.file.url.clone(),
                cell: cg.cell.clone(),
                spec: JobSpec {
                    cell: cg.cell.id.clone(),
                    name: dist.name.to_string(),
                    version: dist.version.to_string(),
                    stage,
                    sdist: sdist.clone(),
                    sdist_sha256: sdist_sha256.clone(),
                    backend: info.build_backend.clone(),
                    // A published release of the backend replaces the in-tree one.
                    backend_path: if recipe.backend.is_some() {
                        Vec::new()
                    } else {
                        info.backend_path.clone()
                    },
                    env: Vec::new(),
                    settings: self.options.settings.clone(),
                    recipe: crate::build::job::Recipe {
                        provided: provided.clone(),
                        repair: cg.cell.repair.clone(),
                        ..recipe.clone()
                    },
                    crates: crates.clone(),
                    timeout: self.options.timeout,
                    limits: self.options.limits,
                    proceed: false,
                    probe: false,
                },
                env,
                is_final: stage == 0 || stage == BOOTSTRAP_STAGES,
            });
        }
        Ok(planned)
    }

    /// A wheel not built here, fetched once: the index's wheel for `--allow-binary`, or a seed.
    fn wheel(
        &self,
        c: usize,
        cg: &CellGraph,
        node: NodeIndex,
        seed: bool,
    ) -> Result<EnvWheel, PlanError> {
        if let Some(w) = self.wheels.lock().unwrap().get(&(c, node, seed)) {
            return Ok(w.clone());
        }
        let wheel = if seed {
            seed_wheel(&self.repo, cg, node, self.options.seed_dir.as_deref())?
        } else {
            let fetched = self
                .repo
                .index
                .fetch_hashed(&cg.dists[&node].file)
                .map_err(|e| PlanError::Repo {
                    cell: cg.cell.id.to_string(),
                    source: Box::new(e.into()),
                })?;
            let mut found = env_wheel(cg, node, fetched);
            found.url = Some(cg.dists[&node].file.url.clone());
            found
        };
        self.wheels
            .lock()
            .unwrap()
            .insert((c, node, seed), wheel.clone());
        Ok(wheel)
    }
}

/// `fetched`: a copy in the cache and the sha256 of its bytes, taken while they were copied.
fn env_wheel(cg: &CellGraph, node: NodeIndex, fetched: (PathBuf, Sha256)) -> EnvWheel {
    labelled_wheel(
        cg.graph.graph[node].name.as_ref(),
        &cg.graph.graph[node].version.to_string(),
        fetched,
    )
}

/// A wheel for a build environment, labelled with the version its filename says: a seed of
/// another version than the node's must not be recorded (fingerprint, CI plan) as the node's.
fn labelled_wheel(name: &str, node_version: &str, (path, sha256): (PathBuf, Sha256)) -> EnvWheel {
    let version = path
        .file_name()
        .and_then(|f| parse_wheel_filename(&f.to_string_lossy()))
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| node_version.to_string());
    EnvWheel {
        name: name.to_string(),
        version,
        sha256,
        path,
        url: None,
    }
}

/// Stage 0 of a bootstrap: a wheel that is not built here. `--seed-wheels DIR` first (same
/// version preferred), else the index's wheel of the same version, checked against its hash.
fn seed_wheel(
    repo: &Repository,
    cg: &CellGraph,
    node: NodeIndex,
    seed_dir: Option<&Path>,
) -> Result<EnvWheel, PlanError> {
    let name = &cg.graph.graph[node].name;
    let version = &cg.graph.graph[node].version;
    let no_seed = || PlanError::NoSeed {
        cell: cg.cell.id.to_string(),
        name: name.to_string(),
    };
    let repo_err = |source: RepoError| PlanError::Repo {
        cell: cg.cell.id.to_string(),
        source: Box::new(source),
    };
    if let Some(dir) = seed_dir {
        let mut found: Vec<(bool, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|_| no_seed())?
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let (n, v) = parse_wheel_filename(&file)?;
                (&n == name).then(|| (&v == version, e.path()))
            })
            .collect();
        found.sort();
        if let Some((_, path)) = found.pop() {
            // Copied into the cache like any other input: the folder may change during the run.
            let file = crate::resolve::index::IndexFile {
                filename: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                url: std::path::absolute(&path)
                    .ok()
                    .and_then(|p| url::Url::from_file_path(p).ok())
                    .map(String::from)
                    .unwrap_or_default(),
                ..Default::default()
            };
            let fetched = repo
                .index
                .cache()
                .adopt(&file, &path, crate::build::job::MAX_WHEEL)
                .map_err(|e| repo_err(e.into()))?;
            return Ok(env_wheel(cg, node, fetched));
        }
    }
    let candidates = repo.candidates(name).map_err(repo_err)?;
    let wheel = candidates
        .iter()
        .find(|c| &c.version == version)
        .and_then(|c| c.wheel_for(&cg.cell))
        .or_else(|| candidates.iter().find_map(|c| c.wheel_for(&cg.cell)))
        .ok_or_else(no_seed)?;
    let fetched = repo
        .index
        .fetch_hashed(wheel)
        .map_err(|e| repo_err(e.into()))?;
    let mut found = env_wheel(cg, node, fetched);
    found.url = Some(wheel.url.clone());
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_seed_of_another_version_is_labelled_with_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("setuptools-69.0.0-py3-none-any.whl");
        std::fs::write(&path, b"zip").unwrap();
        let sha = crate::digest::Sha256::of(b"zip");
        let wheel = super::labelled_wheel("setuptools", "70.0", (path, sha));
        assert_eq!(wheel.version, "69.0.0");
    }
}
