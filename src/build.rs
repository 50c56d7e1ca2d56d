//! Running `rewheel build`'s jobs: in dependency order, up to `--jobs` at once, each build
//! dependency built once and reused; a failure fails only what depends on it; a backend that
//! asks for more at build time grows the graph (see `plan`), and its job runs again.

use crate::backend::Backend;
use crate::job::{EnvWheel, Fingerprint, JobError};
use crate::plan::{BOOTSTRAP_STAGES, BuildOptions, Extension, JobKey, Planned, Planner, Source};
use crate::store::{JobRecord, Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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
    /// The failure lies in the job's inputs (an unsafe sdist), not in its build.
    pub input_error: bool,
}

/// A wheel of the run, with the job that made it (environment included), for `check`.
#[derive(Debug, Clone)]
pub struct FinalJob {
    pub spec: crate::job::JobSpec,
    pub filename: String,
    pub sha256: String,
    pub path: PathBuf,
    /// When the job ran, as seconds since the epoch (for attributing embedded times).
    pub window: (i64, i64),
    /// How the job saw its build folder.
    pub build_path: PathBuf,
}

pub struct Summary {
    pub outcomes: Vec<Outcome>,
    pub finals: Vec<FinalJob>,
    /// Bootstrap packages whose stage-2 and stage-3 wheels differ.
    pub no_fixpoint: Vec<String>,
    pub interrupted: bool,
}

impl Summary {
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_err()).count()
    }

    /// Failures whose cause is an input (an unsafe sdist) rather than a build.
    pub fn input_failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.input_error).count()
    }
}

/// Reports progress; the CLI decides how it looks.
pub trait Events: Send + Sync {
    fn started(&self, cell: &str, label: &str);
    fn finished(&self, cell: &str, label: &str, ok: bool, seconds: f64, note: &str);
}

/// What a finished job task hands back to the loop.
struct Finished {
    key: JobKey,
    spec: crate::job::JobSpec,
    dir: PathBuf,
    fingerprint: String,
    fingerprint_sha256: String,
    result: Result<crate::job::JobOutput, JobError>,
    seconds: f64,
    window: (i64, i64),
    build_path: PathBuf,
}

/// The loop's bookkeeping: which jobs exist, which ran, what they gave.
struct Ledger {
    order: Vec<JobKey>,
    jobs: HashMap<JobKey, Planned>,
    built: HashMap<JobKey, Built>,
    failed: HashMap<JobKey, String>,
    started: HashSet<JobKey>,
    outcomes: Vec<Outcome>,
    finals: Vec<FinalJob>,
}

impl Ledger {
    fn label(&self, key: &JobKey) -> String {
        self.jobs[key].spec.label()
    }

    fn fail(
        &mut self,
        key: JobKey,
        why: String,
        events: &dyn Events,
        log: Option<PathBuf>,
        tail: Vec<String>,
        seconds: f64,
    ) {
        let cell = self.jobs[&key].spec.cell.clone();
        let label = self.label(&key);
        events.finished(&cell, &label, false, seconds, &why);
        self.failed.insert(key, why.clone());
        self.outcomes.push(Outcome {
            cell,
            label,
            result: Err(why),
            log,
            log_tail: tail,
            seconds,
            reused: false,
            input_error: false,
        });
    }

    /// The wheels of a job's build environment, now that its dependencies are built.
    fn env_of(&self, planned: &Planned) -> Vec<EnvWheel> {
        planned
            .env
            .iter()
            .map(|s| match s {
                Source::File(w) => w.clone(),
                Source::Job(k) => {
                    let b = &self.built[k];
                    let dep = &self.jobs[k].spec;
                    EnvWheel {
                        name: dep.name.clone(),
                        version: dep.version.clone(),
                        sha256: b.sha256.clone(),
                        path: b.path.clone(),
                        url: None,
                    }
                }
            })
            .collect()
    }

    /// Jobs from a grown graph: the asking job is replaced, new ones are queued.
    fn merge(&mut self, asking: JobKey, planned: Vec<Planned>) {
        for mut p in planned {
            if p.key == asking {
                // Its environment now holds what the hook named; do not ask again.
                p.spec.proceed = true;
                self.jobs.insert(p.key, p);
            } else if !self.jobs.contains_key(&p.key) {
                self.order.push(p.key);
                self.jobs.insert(p.key, p);
            }
        }
        self.started.remove(&asking);
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn execute(
    planner: Arc<Planner>,
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
    let mut ledger = Ledger {
        order: planned.iter().map(|p| p.key).collect(),
        jobs: planned.into_iter().map(|p| (p.key, p)).collect(),
        built: HashMap::new(),
        failed: HashMap::new(),
        started: HashSet::new(),
        outcomes: Vec::new(),
        finals: Vec::new(),
    };
    let mut running: tokio::task::JoinSet<Finished> = tokio::task::JoinSet::new();
    let mut interrupted = *interrupt.borrow();

    while !interrupted {
        // Start what is ready, dependencies first, up to --jobs at once.
        for key in ledger.order.clone() {
            if ledger.started.contains(&key) {
                continue;
            }
            let failed_dep = ledger.jobs[&key]
                .deps()
                .find(|d| ledger.failed.contains_key(d));
            if let Some(dep) = failed_dep {
                ledger.started.insert(key);
                let why = format!("not built: {} failed", ledger.label(&dep));
                ledger.fail(key, why, events.as_ref(), None, Vec::new(), 0.0);
                continue;
            }
            let planned = &ledger.jobs[&key];
            if running.len() >= options.jobs
                || !planned.deps().all(|d| ledger.built.contains_key(&d))
            {
                continue;
            }
            ledger.started.insert(key);
            let mut spec = planned.spec.clone();
            spec.env = ledger.env_of(planned);
            let (dir, root) = backend.job_dir(&spec);
            let (fingerprint, fingerprint_sha256) =
                Fingerprint::of(&spec, backend.runtime(&spec.cell).as_ref(), &root);
            let record_key = (
                spec.cell.clone(),
                spec.name.clone(),
                spec.version.clone(),
                spec.stage,
            );
            if let Some(record) = reusable
                .get(&record_key)
                .filter(|r| r.fingerprint_sha256 == fingerprint_sha256)
                && let (Some(filename), Some(sha)) = (&record.wheel_filename, &record.wheel_sha256)
                && reusable_blob(store, sha)
            {
                let path = store.blob_path(sha);
                if planned.is_final {
                    let bytes = store.read_blob(sha)?;
                    write_output(&options.out_dir, &spec.cell, filename, &bytes)?;
                }
                ledger.built.insert(
                    key,
                    Built {
                        filename: filename.clone(),
                        sha256: sha.clone(),
                        path,
                    },
                );
                if planned.is_final {
                    let now = jiff::Timestamp::now().as_second();
                    ledger.finals.push(FinalJob {
                        spec: spec.clone(),
                        filename: filename.clone(),
                        sha256: sha.clone(),
                        path: store.blob_path(sha),
                        window: (now, now),
                        build_path: root.clone(),
                    });
                }
                events.finished(
                    &spec.cell,
                    &spec.label(),
                    true,
                    0.0,
                    "reused from the interrupted run",
                );
                ledger.outcomes.push(Outcome {
                    cell: spec.cell.clone(),
                    label: spec.label(),
                    result: Ok((filename.clone(), sha.clone())),
                    log: None,
                    log_tail: Vec::new(),
                    seconds: 0.0,
                    reused: true,
                    input_error: false,
                });
                continue;
            }
            events.started(&spec.cell, &spec.label());
            let backend = backend.clone();
            running.spawn(async move {
                let start = Instant::now();
                let began = jiff::Timestamp::now().as_second();
                let result = backend.run(&spec, &dir).await;
                let ended = jiff::Timestamp::now().as_second();
                Finished {
                    key,
                    spec,
                    dir,
                    fingerprint,
                    fingerprint_sha256,
                    result,
                    seconds: start.elapsed().as_secs_f64(),
                    window: (began, ended),
                    build_path: root,
                }
            });
        }
        if running.is_empty() {
            break;
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            _ = interrupt.changed() => {
                interrupted = true;
                running.abort_all();
                while running.join_next().await.is_some() {}
                backend.cleanup().await;
                break;
            }
        };
        let Some(Ok(done)) = joined else {
            continue;
        };
        finish(
            done,
            &mut ledger,
            &planner,
            store,
            run_id,
            options,
            events.as_ref(),
        )
        .await?;
    }

    let mut no_fixpoint = Vec::new();
    for (key, p) in ledger
        .jobs
        .iter()
        .filter(|(k, _)| k.stage == BOOTSTRAP_STAGES)
    {
        let earlier = JobKey {
            stage: BOOTSTRAP_STAGES - 1,
            ..*key
        };
        if let (Some(a), Some(b)) = (ledger.built.get(&earlier), ledger.built.get(key))
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
        outcomes: ledger.outcomes,
        finals: ledger.finals,
        no_fixpoint,
        interrupted,
    })
}

/// Record a finished job: its wheel and log in the store, its row, its outcome; or, when its
/// backend asked for more, grow the graph and queue it again.
async fn finish(
    done: Finished,
    ledger: &mut Ledger,
    planner: &Arc<Planner>,
    store: &Store,
    run_id: &str,
    options: &BuildOptions,
    events: &dyn Events,
) -> Result<(), StoreError> {
    let Finished {
        key,
        spec,
        dir,
        fingerprint,
        fingerprint_sha256,
        result,
        seconds,
        window,
        build_path,
    } = done;
    if let Err(JobError::Needs(requirements)) = &result {
        if key.stage != 0 {
            let why = format!(
                "a bootstrap stage asked for {requirements:?} at build time; pin them in --build-constraints or add them to the bootstrap set"
            );
            ledger.fail(key, why, events, None, Vec::new(), seconds);
            return Ok(());
        }
        events.finished(
            &spec.cell,
            &spec.label(),
            true,
            seconds,
            &format!("its backend asks for {requirements:?}: resolving and building them first"),
        );
        let planner = planner.clone();
        let requirements = requirements.clone();
        let extension = tokio::task::spawn_blocking(move || planner.extend(key, &requirements))
            .await
            .expect("the planner does not panic");
        match extension {
            Ok(Extension::Proceed) => {
                ledger.jobs.get_mut(&key).expect("planned").spec.proceed = true;
                ledger.started.remove(&key);
            }
            Ok(Extension::Replan(planned)) => ledger.merge(key, planned),
            Err(err) => ledger.fail(key, err.to_string(), events, None, Vec::new(), seconds),
        }
        return Ok(());
    }
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
    match result {
        Ok(output) => {
            let bytes = output.wheel;
            let filename = output.wheel_filename;
            let sha = store.put_blob(&bytes)?;
            let log_sha = store.put_blob(&output.log)?;
            record.status = "built".into();
            record.wheel_filename = Some(filename.clone());
            record.wheel_sha256 = Some(sha.clone());
            record.log_sha256 = Some(log_sha.clone());
            if ledger.jobs[&key].is_final {
                write_output(&options.out_dir, &spec.cell, &filename, &bytes)?;
                ledger.finals.push(FinalJob {
                    spec: spec.clone(),
                    filename: filename.clone(),
                    sha256: sha.clone(),
                    path: store.blob_path(&sha),
                    window,
                    build_path,
                });
            }
            // Commit the row only once its files are in place: a kill leaves no dangling row.
            store.record_job(&record)?;
            ledger.built.insert(
                key,
                Built {
                    filename: filename.clone(),
                    sha256: sha.clone(),
                    path: store.blob_path(&sha),
                },
            );
            let _ = std::fs::remove_dir_all(&dir);
            events.finished(&spec.cell, &spec.label(), true, seconds, "");
            ledger.outcomes.push(Outcome {
                cell: spec.cell.clone(),
                label: spec.label(),
                result: Ok((filename, sha)),
                log: Some(store.blob_path(&log_sha)),
                log_tail: Vec::new(),
                seconds,
                reused: false,
                input_error: false,
            });
        }
        Err(err) => {
            let log = err.log().to_vec();
            let log_sha = store.put_blob(&log)?;
            record.status = "failed".into();
            record.error = Some(err.to_string());
            record.log_sha256 = Some(log_sha.clone());
            store.record_job(&record)?;
            let text = String::from_utf8_lossy(&log);
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..]
                .iter()
                .map(|l| l.to_string())
                .collect();
            let input_error = matches!(err, JobError::Input(_));
            let why = match err {
                JobError::Setup(m) => m,
                other => other.to_string(),
            };
            ledger.fail(
                key,
                why,
                events,
                Some(store.blob_path(&log_sha)),
                tail,
                seconds,
            );
            if let Some(last) = ledger.outcomes.last_mut() {
                last.input_error = input_error;
            }
        }
    }
    Ok(())
}

/// A stored wheel may be reused only when its bytes still match its name; a damaged one is
/// built again (and the new build replaces the blob).
fn reusable_blob(store: &Store, sha256: &str) -> bool {
    match store.verify_blob(sha256) {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!("not reusing a stored wheel: {err}");
            eprintln!("warning: not reusing a stored wheel: {err}");
            false
        }
    }
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
