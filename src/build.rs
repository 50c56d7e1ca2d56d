//! `rewheel build`: plan one job per (cell, package, version) from the resolved graphs, then run
//! them in dependency order, many at once, each build dependency built once and reused.
//!
//! Planning is synchronous (it fetches sdists and seed wheels through the repository);
//! execution is async and talks only to the backend and the store.

use crate::archive::Limits;
use crate::backend::Backend;
use crate::fsutil::sha256_hex;
use crate::graph::CycleKind;
use crate::job::{EnvWheel, Fingerprint, JobError, JobSpec, Settings};
use crate::names::parse_wheel_filename;
use crate::repository::{RepoError, Repository};
use crate::resolve::CellGraph;
use crate::store::{JobRecord, Store, StoreError};
use petgraph::graph::NodeIndex;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    pub cell: usize,
    pub node: NodeIndex,
    /// 0: an ordinary build; 1..=3: the stages of a bootstrap build.
    pub stage: u32,
}

/// Where one wheel of a build environment comes from.
#[derive(Debug, Clone)]
enum Source {
    Job(JobKey),
    /// A wheel not built here: a seed for the bootstrap, or `--allow-binary`.
    File(EnvWheel),
}

pub struct Planned {
    key: JobKey,
    spec: JobSpec,
    env: Vec<Source>,
    /// Stage 0 and the last bootstrap stage are the wheels of the run; earlier stages are
    /// scaffolding.
    is_final: bool,
}

impl Planned {
    pub fn cell(&self) -> &str {
        &self.spec.cell
    }

    fn deps(&self) -> impl Iterator<Item = JobKey> + '_ {
        self.env.iter().filter_map(|s| match s {
            Source::Job(k) => Some(*k),
            Source::File(_) => None,
        })
    }
}

pub struct BuildOptions {
    pub jobs: usize,
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
    #[error(
        "{cell}: no seed wheel for {name} to start the bootstrap from\nhint: put one in --seed-wheels DIR"
    )]
    NoSeed { cell: String, name: String },
}

pub const BOOTSTRAP_STAGES: u32 = 3;

/// One job per node to build (three per bootstrap-cycle member), in dependency order.
pub fn plan(
    repo: &Repository,
    graphs: &[CellGraph],
    options: &BuildOptions,
) -> Result<Vec<Planned>, PlanError> {
    let mut planned = Vec::new();
    for (c, cg) in graphs.iter().enumerate() {
        let cell = &cg.cell;
        let repo_err = |source: RepoError| PlanError::Repo {
            cell: cell.id.clone(),
            source: Box::new(source),
        };
        let mut cycle_of: HashMap<NodeIndex, usize> = HashMap::new();
        for (i, cycle) in cg.cycles.iter().enumerate() {
            if cycle.kind == CycleKind::Bootstrap {
                for &n in &cycle.members {
                    cycle_of.insert(n, i);
                }
            }
        }
        let mut files: HashMap<NodeIndex, EnvWheel> = HashMap::new();
        let mut seeds: HashMap<NodeIndex, EnvWheel> = HashMap::new();
        for (node, _) in cg.graph.order() {
            let dist = &cg.dists[&node];
            let Some(info) = &dist.sdist else { continue };
            let sdist = repo
                .index
                .fetch(&dist.file)
                .map_err(|e| repo_err(e.into()))?;
            let stages: Vec<u32> = if cycle_of.contains_key(&node) {
                (1..=BOOTSTRAP_STAGES).collect()
            } else {
                vec![0]
            };
            for &stage in &stages {
                let mut env = Vec::new();
                for &member in cg.build_env.get(&node).into_iter().flatten() {
                    let same_cycle = cycle_of.contains_key(&member)
                        && cycle_of.get(&member) == cycle_of.get(&node);
                    let source = if cg.dists[&member].binary {
                        let wheel = match files.entry(member) {
                            Entry::Occupied(e) => e.into_mut(),
                            Entry::Vacant(e) => {
                                e.insert(binary_wheel(repo, cg, member).map_err(repo_err)?)
                            }
                        };
                        Source::File(wheel.clone())
                    } else if same_cycle && stage == 1 {
                        let wheel = match seeds.entry(member) {
                            Entry::Occupied(e) => e.into_mut(),
                            Entry::Vacant(e) => {
                                e.insert(seed_wheel(repo, cg, member, options.seed_dir.as_deref())?)
                            }
                        };
                        Source::File(wheel.clone())
                    } else if same_cycle {
                        Source::Job(JobKey {
                            cell: c,
                            node: member,
                            stage: stage - 1,
                        })
                    } else if member == node {
                        // An in-tree backend: the source tree itself provides it.
                        continue;
                    } else if cycle_of.contains_key(&member) {
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
                    spec: JobSpec {
                        cell: cell.id.clone(),
                        name: dist.name.to_string(),
                        version: dist.version.to_string(),
                        stage,
                        sdist: sdist.clone(),
                        sdist_sha256: dist.sha256.clone(),
                        backend: info.build_backend.clone(),
                        backend_path: info.backend_path.clone(),
                        env: Vec::new(),
                        settings: options.settings.clone(),
                        timeout: options.timeout,
                        limits: options.limits,
                    },
                    env,
                    is_final: stage == 0 || stage == BOOTSTRAP_STAGES,
                });
            }
        }
    }
    Ok(planned)
}

fn env_wheel(cg: &CellGraph, node: NodeIndex, path: PathBuf) -> Result<EnvWheel, RepoError> {
    let bytes = std::fs::read(&path).map_err(|e| RepoError::BadWheel {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(EnvWheel {
        name: cg.graph.graph[node].name.to_string(),
        version: cg.graph.graph[node].version.to_string(),
        sha256: sha256_hex(&bytes),
        path,
    })
}

fn binary_wheel(repo: &Repository, cg: &CellGraph, node: NodeIndex) -> Result<EnvWheel, RepoError> {
    let dist = &cg.dists[&node];
    let path = repo.index.fetch(&dist.file)?;
    env_wheel(cg, node, path)
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
        cell: cg.cell.id.clone(),
        name: name.to_string(),
    };
    let repo_err = |source: RepoError| PlanError::Repo {
        cell: cg.cell.id.clone(),
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
            return env_wheel(cg, node, path).map_err(repo_err);
        }
    }
    let candidates = repo.candidates(name).map_err(repo_err)?;
    let wheel = candidates
        .iter()
        .find(|c| &c.version == version)
        .and_then(|c| c.wheel_for(&cg.cell))
        .or_else(|| candidates.iter().find_map(|c| c.wheel_for(&cg.cell)))
        .ok_or_else(no_seed)?;
    let path = repo.index.fetch(wheel).map_err(|e| repo_err(e.into()))?;
    env_wheel(cg, node, path).map_err(repo_err)
}

/// A built wheel, kept in the store.
#[derive(Debug, Clone)]
struct Built {
    filename: String,
    sha256: String,
    path: PathBuf,
}

pub struct Outcome {
    pub cell: String,
    pub label: String,
    pub result: Result<(String, String), String>,
    pub log: Option<PathBuf>,
    pub log_tail: Vec<String>,
    pub seconds: f64,
    pub reused: bool,
}

pub struct Summary {
    pub outcomes: Vec<Outcome>,
    /// Bootstrap packages whose stage-2 and stage-3 wheels differ.
    pub no_fixpoint: Vec<String>,
    pub interrupted: bool,
}

impl Summary {
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_err()).count()
    }
}

/// Reports progress; the CLI decides how it looks.
pub trait Events: Send + Sync {
    fn started(&self, cell: &str, label: &str);
    fn finished(&self, cell: &str, label: &str, ok: bool, seconds: f64, note: &str);
}

pub async fn execute(
    planned: Vec<Planned>,
    backend: Arc<dyn Backend>,
    store: &Store,
    run_id: &str,
    options: &BuildOptions,
    events: Arc<dyn Events>,
    mut interrupt: tokio::sync::watch::Receiver<bool>,
) -> Result<Summary, StoreError> {
    let reusable: HashMap<(String, String, String, u32), JobRecord> = store
        .jobs(run_id)?
        .into_iter()
        .filter(|j| j.status == "built")
        .map(|j| {
            (
                (j.cell.clone(), j.name.clone(), j.version.clone(), j.stage),
                j,
            )
        })
        .collect();
    let mut built: HashMap<JobKey, Built> = HashMap::new();
    let mut failed: HashMap<JobKey, String> = HashMap::new();
    let mut started: HashSet<JobKey> = HashSet::new();
    let mut outcomes = Vec::new();
    let mut running = tokio::task::JoinSet::new();
    let labels: HashMap<JobKey, String> = planned.iter().map(|p| (p.key, p.spec.label())).collect();
    let by_key: HashMap<JobKey, &Planned> = planned.iter().map(|p| (p.key, p)).collect();
    let mut interrupted = *interrupt.borrow();

    loop {
        // Start what is ready, in plan order (dependencies first), up to --jobs at once.
        for p in &planned {
            if started.contains(&p.key) {
                continue;
            }
            if let Some(dep) = p.deps().find(|d| failed.contains_key(d)) {
                started.insert(p.key);
                let why = format!("not built: {} failed", labels[&dep]);
                failed.insert(p.key, why.clone());
                events.finished(&p.spec.cell, &labels[&p.key], false, 0.0, &why);
                outcomes.push(Outcome {
                    cell: p.spec.cell.clone(),
                    label: labels[&p.key].clone(),
                    result: Err(why),
                    log: None,
                    log_tail: Vec::new(),
                    seconds: 0.0,
                    reused: false,
                });
                continue;
            }
            if running.len() >= options.jobs || !p.deps().all(|d| built.contains_key(&d)) {
                continue;
            }
            started.insert(p.key);
            let mut spec = p.spec.clone();
            spec.env = p
                .env
                .iter()
                .map(|s| match s {
                    Source::File(w) => w.clone(),
                    Source::Job(k) => {
                        let b = &built[k];
                        let dep = &by_key[k].spec;
                        EnvWheel {
                            name: dep.name.clone(),
                            version: dep.version.clone(),
                            sha256: b.sha256.clone(),
                            path: b.path.clone(),
                        }
                    }
                })
                .collect();
            let (dir, root) = backend.job_dir(&spec);
            let runtime = backend.runtime(&spec.cell);
            let (runtime_id, interpreter) = runtime
                .as_ref()
                .map(|r| (r.id.clone(), r.interpreter_version.clone()))
                .unwrap_or_default();
            let fingerprint = serde_json::to_string(&Fingerprint {
                backend: runtime.as_ref().map(|r| r.backend).unwrap_or("none"),
                runtime: &runtime_id,
                interpreter_version: &interpreter,
                sdist_sha256: &spec.sdist_sha256,
                build_backend: &spec.backend,
                build_env: &spec.env,
                settings: &spec.settings,
                build_path: root.display().to_string(),
            })
            .expect("fingerprints serialize");
            let fingerprint_sha256 = sha256_hex(fingerprint.as_bytes());
            let key = (
                spec.cell.clone(),
                spec.name.clone(),
                spec.version.clone(),
                spec.stage,
            );
            if let Some(record) = reusable
                .get(&key)
                .filter(|r| r.fingerprint_sha256 == fingerprint_sha256)
                && let (Some(filename), Some(sha)) = (&record.wheel_filename, &record.wheel_sha256)
                && store.blob_path(sha).is_file()
            {
                built.insert(
                    p.key,
                    Built {
                        filename: filename.clone(),
                        sha256: sha.clone(),
                        path: store.blob_path(sha),
                    },
                );
                if p.is_final {
                    let bytes =
                        std::fs::read(store.blob_path(sha)).map_err(|source| StoreError::Io {
                            path: store.blob_path(sha),
                            source,
                        })?;
                    write_output(&options.out_dir, &spec.cell, filename, &bytes)?;
                }
                events.finished(
                    &spec.cell,
                    &labels[&p.key],
                    true,
                    0.0,
                    "reused from the interrupted run",
                );
                outcomes.push(Outcome {
                    cell: spec.cell.clone(),
                    label: labels[&p.key].clone(),
                    result: Ok((filename.clone(), sha.clone())),
                    log: None,
                    log_tail: Vec::new(),
                    seconds: 0.0,
                    reused: true,
                });
                continue;
            }
            events.started(&spec.cell, &labels[&p.key]);
            let backend = backend.clone();
            let job_key = p.key;
            running.spawn(async move {
                let start = Instant::now();
                let result = backend.run(&spec, &dir).await;
                (
                    job_key,
                    spec,
                    dir,
                    fingerprint,
                    fingerprint_sha256,
                    result,
                    start.elapsed().as_secs_f64(),
                )
            });
        }
        if running.is_empty() {
            break;
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            _ = interrupt.changed(), if !interrupted => {
                interrupted = true;
                running.abort_all();
                while running.join_next().await.is_some() {}
                backend.cleanup().await;
                break;
            }
        };
        let Some(Ok((key, spec, dir, fingerprint, fingerprint_sha256, result, seconds))) = joined
        else {
            continue;
        };
        let mut record = JobRecord {
            run_id: run_id.to_string(),
            cell: spec.cell.clone(),
            name: spec.name.clone(),
            version: spec.version.clone(),
            stage: spec.stage,
            status: String::new(),
            wheel_filename: None,
            wheel_sha256: None,
            log_sha256: None,
            fingerprint,
            fingerprint_sha256,
            error: None,
            seconds,
        };
        let outcome = match result {
            Ok(output) => {
                let bytes = std::fs::read(&output.wheel).unwrap_or_default();
                let filename = output
                    .wheel
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let sha = store.put_blob(&bytes)?;
                record.log_sha256 = Some(store.put_blob(&output.log)?);
                record.status = "built".into();
                record.wheel_filename = Some(filename.clone());
                record.wheel_sha256 = Some(sha.clone());
                let names: HashSet<String> = spec.env.iter().map(|w| normalize(&w.name)).collect();
                let missing: Vec<&String> = output
                    .requires
                    .iter()
                    .filter(|r| !names.contains(&normalize(requirement_name(r))))
                    .collect();
                let note = if missing.is_empty() {
                    String::new()
                } else {
                    format!("its backend also asked for {missing:?}, which were not installed")
                };
                built.insert(
                    key,
                    Built {
                        filename: filename.clone(),
                        sha256: sha.clone(),
                        path: store.blob_path(&sha),
                    },
                );
                if by_key[&key].is_final {
                    write_output(&options.out_dir, &spec.cell, &filename, &bytes)?;
                }
                let _ = std::fs::remove_dir_all(&dir);
                events.finished(&spec.cell, &labels[&key], true, seconds, &note);
                Outcome {
                    cell: spec.cell.clone(),
                    label: labels[&key].clone(),
                    result: Ok((filename, sha)),
                    log: Some(store.blob_path(record.log_sha256.as_deref().unwrap_or_default())),
                    log_tail: Vec::new(),
                    seconds,
                    reused: false,
                }
            }
            Err(err) => {
                let log = err.log().to_vec();
                let log_sha = store.put_blob(&log)?;
                record.status = "failed".into();
                record.error = Some(err.to_string());
                record.log_sha256 = Some(log_sha.clone());
                failed.insert(key, err.to_string());
                events.finished(&spec.cell, &labels[&key], false, seconds, &err.to_string());
                let text = String::from_utf8_lossy(&log);
                let lines: Vec<&str> = text.lines().collect();
                Outcome {
                    cell: spec.cell.clone(),
                    label: labels[&key].clone(),
                    result: Err(match err {
                        JobError::Setup(m) => m,
                        other => other.to_string(),
                    }),
                    log: Some(store.blob_path(&log_sha)),
                    log_tail: lines[lines.len().saturating_sub(15)..]
                        .iter()
                        .map(|l| l.to_string())
                        .collect(),
                    seconds,
                    reused: false,
                }
            }
        };
        store.record_job(&record)?;
        outcomes.push(outcome);
    }

    let mut no_fixpoint = Vec::new();
    for p in planned.iter().filter(|p| p.key.stage == BOOTSTRAP_STAGES) {
        let earlier = JobKey {
            stage: BOOTSTRAP_STAGES - 1,
            ..p.key
        };
        if let (Some(a), Some(b)) = (built.get(&earlier), built.get(&p.key))
            && a.sha256 != b.sha256
        {
            no_fixpoint.push(format!(
                "{}: {} stage {} {} ≠ stage {} {}",
                p.spec.cell,
                b.filename,
                BOOTSTRAP_STAGES - 1,
                &a.sha256[..12],
                BOOTSTRAP_STAGES,
                &b.sha256[..12]
            ));
        }
    }
    Ok(Summary {
        outcomes,
        no_fixpoint,
        interrupted,
    })
}

/// A wheel of the run into `--out DIR/<cell>/`.
fn write_output(
    out_dir: &Path,
    cell: &str,
    filename: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let path = out_dir.join(cell).join(filename);
    crate::fsutil::write_atomic(&path, bytes).map_err(|source| StoreError::Io { path, source })
}

fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn requirement_name(req: &str) -> &str {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(req.len());
    &req[..end]
}
