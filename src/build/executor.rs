//! Running `rewheel build`'s jobs: in dependency order, up to `--jobs` at once, each build
//! dependency built once and reused; a failure fails only what depends on it; a backend that
//! asks for more at build time grows the graph (see `plan`), and its job runs again.

use crate::build::attempt::{Attempt, Attempted, Placement, attempt, needs_message};
use crate::build::backend::Backend;
use crate::build::job::{EnvWheel, JobSpec};
use crate::build::plan::{
    BOOTSTRAP_STAGES, BuildOptions, Extension, JobKey, Planned, Planner, Source,
};
use crate::cell::CellId;
use crate::digest::Sha256;
use crate::ids::RunId;
use crate::store::{JobRecord, Store, StoreError};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A built wheel, kept in the store.
#[derive(Debug, Clone)]
struct Built {
    filename: String,
    sha256: Sha256,
    path: PathBuf,
}

pub struct Outcome {
    pub cell: CellId,
    pub label: String,
    pub result: Result<(String, Sha256), String>,
    pub log: Option<PathBuf>,
    pub log_tail: Vec<String>,
    pub seconds: f64,
    pub reused: bool,
    /// The failure lies in the job's inputs (an unsafe sdist), not in its build.
    pub input_error: bool,
    /// The likely cause of a failure, read from its log, with the setting that fixes it.
    pub hint: Option<String>,
}

/// A wheel of the run, with the job that made it (environment included), for `check`.
#[derive(Debug, Clone)]
pub struct FinalJob {
    pub spec: crate::build::job::JobSpec,
    pub filename: String,
    pub sha256: Sha256,
    pub path: PathBuf,
    /// When the job ran, as seconds since the epoch (for attributing embedded times).
    pub window: (i64, i64),
    /// How long the job took, when it was built (a reused job: when it was first built).
    pub seconds: f64,
    /// How the job saw its build folder.
    pub build_path: PathBuf,
    /// Where the job saw the sdist's top folder unpacked (`--build-path DIR`).
    pub source_parent: PathBuf,
    /// Where the sdist came from, and the job's fingerprint (its inputs), for provenance.
    pub sdist_url: String,
    pub fingerprint: String,
    /// The run whose job this one reused, when it was not built again.
    pub reused_from: Option<RunId>,
    /// The cell's marker environment: a second build weighs what its hook names as the
    /// first did.
    pub markers: Option<Arc<pep508_rs::MarkerEnvironment>>,
}

pub struct Summary {
    pub outcomes: Vec<Outcome>,
    pub finals: Vec<FinalJob>,
    /// Bootstrap packages whose stage-2 and stage-3 wheels differ.
    pub no_fixpoint: Vec<String>,
    pub interrupted: bool,
    /// Jobs that failed because a disk was full: the host's fault, not the build's.
    pub out_of_space: Vec<String>,
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

pub use crate::progress::{Ending, Events, JobEvent};

/// What a finished job task hands back to the loop.
struct Finished {
    key: JobKey,
    spec: JobSpec,
    placement: Placement,
    attempt: Attempt,
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
    /// Bumped whenever the set of jobs or their dependencies changes.
    revision: u64,
    out_of_space: Vec<String>,
    /// Jobs a probing run asked its hook only, or had no need to run at all.
    probed: HashSet<JobKey>,
    /// A plan's run: no wheelhouse is written.
    probing: bool,
    /// Each cell's marker environment, for what a hook names.
    markers: Arc<HashMap<CellId, pep508_rs::MarkerEnvironment>>,
    /// A probing run: whether each job's hook has still to answer.
    unknown: HashMap<JobKey, bool>,
}

impl Ledger {
    fn label(&self, key: &JobKey) -> String {
        self.jobs[key].spec.label()
    }

    /// Whether finishing `key` made a job ready that has not started: after a reuse, that job
    /// may be one to build, and it should not wait for the rest of the reuse bookkeeping.
    fn unblocks(&self, key: JobKey, dependents: &HashMap<JobKey, Vec<JobKey>>) -> bool {
        dependents.get(&key).into_iter().flatten().any(|k| {
            !self.started.contains(k) && self.jobs[k].deps().all(|d| self.built.contains_key(&d))
        })
    }

    /// Whether `key`, once built, makes a job ready that has not started.
    fn readies(&self, key: JobKey, dependents: &HashMap<JobKey, Vec<JobKey>>) -> bool {
        dependents.get(&key).into_iter().flatten().any(|k| {
            !self.started.contains(k)
                && self.jobs[k]
                    .deps()
                    .all(|d| d == key || self.built.contains_key(&d))
        })
    }

    /// Which jobs need each job's wheel in their build environment.
    fn dependents(&self) -> HashMap<JobKey, Vec<JobKey>> {
        let mut dependents: HashMap<JobKey, Vec<JobKey>> = HashMap::new();
        for (key, planned) in &self.jobs {
            for dep in planned.deps() {
                dependents.entry(dep).or_default().push(*key);
            }
        }
        dependents
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
        events.on(JobEvent::Finished {
            cell: &cell,
            label: &label,
            seconds,
            ending: Ending::Failed { why: &why },
        });
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
            hint: None,
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

    /// Every job, the one with the longest chain of work hanging on it (itself included) first;
    /// ties keep the planned order.
    fn by_critical_path(
        &self,
        cost: &HashMap<JobKey, f64>,
        dependents: &HashMap<JobKey, Vec<JobKey>>,
    ) -> Vec<JobKey> {
        fn chain(
            key: JobKey,
            dependents: &HashMap<JobKey, Vec<JobKey>>,
            cost: &HashMap<JobKey, f64>,
            memo: &mut HashMap<JobKey, f64>,
        ) -> f64 {
            if let Some(&c) = memo.get(&key) {
                return c;
            }
            // Marked first: a cycle (which planning rules out) cannot recurse forever.
            memo.insert(key, 0.0);
            let after = dependents
                .get(&key)
                .into_iter()
                .flatten()
                .map(|d| chain(*d, dependents, cost, memo))
                .fold(0.0, f64::max);
            let total = cost.get(&key).copied().unwrap_or(1.0) + after;
            memo.insert(key, total);
            total
        }
        let mut memo = HashMap::new();
        let mut order: Vec<(usize, f64, JobKey)> = self
            .order
            .iter()
            .enumerate()
            .map(|(i, k)| (i, chain(*k, dependents, cost, &mut memo), *k))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        order.into_iter().map(|(_, _, k)| k).collect()
    }

    /// Jobs from a grown graph: the asking job is replaced, new ones are queued (and the
    /// revision moves, so the order is computed again).
    fn merge(&mut self, asking: JobKey, planned: Vec<Planned>) {
        // The planner knows the first build's settings; the jobs of this run keep its own (the
        // varied ones in `check --independent`).
        let settings = self.jobs[&asking].spec.settings.clone();
        for mut p in planned {
            p.spec.settings = settings.clone();
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
        // A job a probe only asked is now in a build environment: it is built after all.
        let needed: Vec<JobKey> = self
            .jobs
            .values()
            .flat_map(|p| p.deps())
            .filter(|d| self.probed.contains(d))
            .collect();
        for key in needed {
            self.probed.remove(&key);
            self.started.remove(&key);
        }
        self.revision += 1;
    }

    /// For a probing run: the jobs whose hooks have never answered (`targets`), and what
    /// must be built to ask them (their build environments, all the way down).
    fn probe_sets(&self, unknown: &HashSet<JobKey>) -> ProbeSets {
        let targets: HashSet<JobKey> = self
            .jobs
            .keys()
            .filter(|k| unknown.contains(k))
            .copied()
            .collect();
        let mut needed = HashSet::new();
        let mut stack: Vec<JobKey> = targets.iter().flat_map(|k| self.jobs[k].deps()).collect();
        while let Some(key) = stack.pop() {
            if needed.insert(key) {
                stack.extend(self.jobs[&key].deps());
            }
        }
        ProbeSets { targets, needed }
    }
}

/// What a probing run does with each job: probe it, build it, or leave it.
struct ProbeSets {
    targets: HashSet<JobKey>,
    needed: HashSet<JobKey>,
}

/// One run's jobs and where they go: the planner (which grows graphs when a hook asks for
/// more), the backend they run on, the store that keeps what they give.
pub struct Executor<'a> {
    pub planner: Arc<Planner>,
    pub backend: Arc<dyn Backend>,
    pub store: &'a Store,
    pub run_id: &'a RunId,
    pub options: &'a BuildOptions,
    pub events: Arc<dyn Events>,
    pub interrupt: tokio::sync::watch::Receiver<bool>,
    /// A plan's run: jobs whose hooks never answered are asked (`JobSpec::probe`), what they
    /// need is built, nothing else runs and no wheelhouse is written.
    pub probe: bool,
}

impl Executor<'_> {
    /// Run `planned` to the end (or to an interrupt): every job built, failed, or failed
    /// because something it needs failed.
    pub async fn run(self, planned: Vec<Planned>) -> Result<Summary, StoreError> {
        execute(self, planned).await
    }
}

/// A ready job, looked up once: its spec with the build environment, folders, fingerprint,
/// and the store's finished job with the same fingerprint, if any.
struct Ready {
    spec: JobSpec,
    placement: Placement,
    found: Option<JobRecord>,
}

async fn execute(executor: Executor<'_>, planned: Vec<Planned>) -> Result<Summary, StoreError> {
    let Executor {
        planner,
        backend,
        store,
        run_id,
        options,
        events,
        mut interrupt,
        probe,
    } = executor;
    let reusable: HashMap<(CellId, String, String, u32), JobRecord> = store
        .jobs(run_id)?
        .into_iter()
        .filter(|j| j.status.is_built())
        .map(|j| {
            (
                (j.cell.clone(), j.name.clone(), j.version.clone(), j.stage),
                j,
            )
        })
        .collect();
    // What a requirement a hook names is weighed against, per cell.
    let markers = Arc::new(planner.markers());
    let mut ledger = Ledger {
        order: planned.iter().map(|p| p.key).collect(),
        jobs: planned.into_iter().map(|p| (p.key, p)).collect(),
        built: HashMap::new(),
        failed: HashMap::new(),
        started: HashSet::new(),
        outcomes: Vec::new(),
        finals: Vec::new(),
        revision: 0,
        out_of_space: Vec::new(),
        probed: HashSet::new(),
        probing: probe,
        markers: markers.clone(),
        unknown: HashMap::new(),
    };
    let mut running: tokio::task::JoinSet<Finished> = tokio::task::JoinSet::new();
    // Which job each task runs: a task that panics hands back only its id.
    let mut tasks: HashMap<tokio::task::Id, JobKey> = HashMap::new();
    let mut interrupted = *interrupt.borrow();
    // A job that built and readies nothing: its slot goes to the next job before its wheel
    // and log are kept (synced to disk), rather than standing idle meanwhile. The jobs
    // started are the same, in the same order: what it readies would otherwise have come
    // first.
    let mut ended: Option<Finished> = None;

    // What earlier runs say each job costs, for putting long chains first.
    let mut cost: HashMap<JobKey, f64> = HashMap::new();
    // The order changes only when the graph grows: computed again then, not on every pass.
    let mut order: (u64, Vec<JobKey>) = (u64::MAX, Vec::new());
    let mut dependents: HashMap<JobKey, Vec<JobKey>> = HashMap::new();
    let mut place: HashMap<JobKey, usize> = HashMap::new();
    // A pass looks only at jobs something happened to, by their place in `order`: `look`
    // holds those not seen since the order was made or since one of their dependencies
    // finished (and reuses waiting for the second pass); `queued`, those ready to build but
    // without a free slot, looked at only while a slot is free. Every pass went through every
    // job once, which made a run's own work grow with the square of its jobs (2 ms a job at
    // 5,000 jobs).
    let mut look: BTreeSet<usize> = BTreeSet::new();
    let mut queued: BTreeSet<usize> = BTreeSet::new();
    // `--jobs` counts CPU slots: a job takes what its package's `cpus` says (one by default).
    let mut slots: HashMap<JobKey, usize> = HashMap::new();
    let mut lookups: HashMap<JobKey, Ready> = HashMap::new();
    // A probing run: what to do with each job.
    let mut probing: Option<ProbeSets> = None;
    let slots_of = |spec: &crate::build::job::JobSpec| {
        spec.recipe.cpus.unwrap_or(1).clamp(1, options.jobs.max(1))
    };
    while !interrupted {
        // Start what is ready, up to --jobs at once: the head of the longest remaining chain
        // first (bootstrap stages and slow C builds early), so the run ends with the last
        // job of the critical path rather than behind it.
        if order.0 != ledger.revision {
            for key in ledger
                .order
                .iter()
                .filter(|k| !cost.contains_key(k))
                .copied()
                .collect::<Vec<_>>()
            {
                let spec = &ledger.jobs[&key].spec;
                let seconds = store.last_seconds(&spec.cell, &spec.name, &spec.version);
                cost.insert(key, seconds.unwrap_or(1.0).max(0.01));
            }
            dependents = ledger.dependents();
            order = (ledger.revision, ledger.by_critical_path(&cost, &dependents));
            place = order.1.iter().enumerate().map(|(i, k)| (*k, i)).collect();
            look = (0..order.1.len()).collect();
            queued.clear();
            if probe {
                for key in ledger.order.clone() {
                    ledger
                        .unknown
                        .entry(key)
                        .or_insert_with(|| planner.hook_unknown(key));
                }
                let unknown = ledger
                    .unknown
                    .iter()
                    .filter(|(_, u)| **u)
                    .map(|(k, _)| *k)
                    .collect();
                probing = Some(ledger.probe_sets(&unknown));
            }
        }
        // Two passes: jobs to build start first, then finished jobs are reused (their blobs
        // hashed, the wheelhouse written) while those builds run; after a one-pin bump the
        // one job to build does not wait behind the bookkeeping of the forty it reuses. A
        // reuse that readies another job goes back to the first pass, so a job to build
        // starts as soon as its own build environment is reused.
        'passes: loop {
            for builds_first in [true, false] {
                // In the order, whichever set holds the next job; a job's dependents come after
                // it, so those it readies or fails are reached in this same pass.
                let mut next = 0;
                loop {
                    let free = running.is_empty() || slots.values().sum::<usize>() < options.jobs;
                    let Some(rank) = look
                        .range(next..)
                        .next()
                        .into_iter()
                        .chain(queued.range(next..).next().filter(|_| free))
                        .min()
                        .copied()
                    else {
                        break;
                    };
                    next = rank + 1;
                    let key = order.1[rank];
                    if ledger.started.contains(&key) {
                        look.remove(&rank);
                        queued.remove(&rank);
                        continue;
                    }
                    let failed_dep = ledger.jobs[&key]
                        .deps()
                        .find(|d| ledger.failed.contains_key(d));
                    if let Some(dep) = failed_dep {
                        ledger.started.insert(key);
                        let why = format!("not built: {} failed", ledger.label(&dep));
                        ledger.fail(key, why, events.as_ref(), None, Vec::new(), 0.0);
                        look.remove(&rank);
                        queued.remove(&rank);
                        look.extend(places(&dependents, &place, key));
                        continue;
                    }
                    let asks_only = match &probing {
                        Some(sets) if sets.needed.contains(&key) => false,
                        Some(sets) if sets.targets.contains(&key) => true,
                        Some(_) => {
                            // Neither asked nor needed: a probing run leaves it.
                            ledger.started.insert(key);
                            ledger.probed.insert(key);
                            look.remove(&rank);
                            continue;
                        }
                        None => false,
                    };
                    let planned = &ledger.jobs[&key];
                    if !planned.deps().all(|d| ledger.built.contains_key(&d)) {
                        // Looked at again when one of them finishes.
                        look.remove(&rank);
                        continue;
                    }
                    // Once a job is ready its inputs are fixed: its fingerprint and the store's
                    // finished job with it are looked up once.
                    if let std::collections::hash_map::Entry::Vacant(slot) = lookups.entry(key) {
                        let mut spec = planned.spec.clone();
                        spec.env = ledger.env_of(planned);
                        spec.probe = asks_only;
                        let placement = Placement::of(backend.as_ref(), &spec);
                        let record_key = (
                            spec.cell.clone(),
                            spec.name.clone(),
                            spec.version.clone(),
                            spec.stage,
                        );
                        // This run's own finished job (a resumed run), else the job cache: the newest
                        // finished job anywhere in the store with the same inputs.
                        let own = reusable
                            .get(&record_key)
                            .filter(|r| r.fingerprint_sha256 == placement.fingerprint_sha256)
                            .cloned();
                        let found = match own {
                            _ if asks_only => None,
                            Some(record) => Some(record),
                            None if options.rebuild.may_reuse(&spec.name) => {
                                store.find_built(&placement.fingerprint_sha256)?
                            }
                            None => None,
                        };
                        slot.insert(Ready {
                            spec,
                            placement,
                            found,
                        });
                    }
                    let hit = lookups[&key].found.is_some();
                    if builds_first && hit {
                        continue;
                    }
                    let needs = slots_of(&planned.spec);
                    let used: usize = slots.values().sum();
                    if !hit && !running.is_empty() && used + needs > options.jobs {
                        look.remove(&rank);
                        queued.insert(rank);
                        continue;
                    }
                    look.remove(&rank);
                    queued.remove(&rank);
                    ledger.started.insert(key);
                    let Ready {
                        spec,
                        placement,
                        found,
                    } = lookups.remove(&key).expect("looked up above");
                    if let Some(record) = found
                        && let Some((filename, sha)) = record.wheel()
                        && let Some(bytes) = reusable_wheel(store, sha, planned.is_final)
                        && record
                            .log_sha256
                            .as_ref()
                            .is_none_or(|log| reusable_blob(store, log))
                    {
                        if record.run_id != *run_id {
                            store.record_job(&record.reused_by(run_id))?;
                        }
                        let from = record.reused_from.as_ref().unwrap_or(&record.run_id);
                        let path = store.blob_path(sha);
                        if let Some(bytes) = bytes.filter(|_| !probe) {
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
                                seconds: record.outcome.seconds,
                                build_path: placement.build_path.clone(),
                                source_parent: placement.source_parent.clone(),
                                sdist_url: planned.sdist_url.clone(),
                                fingerprint: placement.fingerprint.clone(),
                                reused_from: Some(from.clone()),
                                markers: markers.get(&spec.cell).cloned().map(Arc::new),
                            });
                        }
                        events.on(JobEvent::Finished {
                            cell: &spec.cell,
                            label: &spec.label(),
                            seconds: 0.0,
                            ending: Ending::Reused {
                                from: (from != run_id).then_some(from),
                            },
                        });
                        ledger.outcomes.push(Outcome {
                            cell: spec.cell.clone(),
                            label: spec.label(),
                            result: Ok((filename.clone(), sha.clone())),
                            log: None,
                            log_tail: Vec::new(),
                            seconds: 0.0,
                            reused: true,
                            input_error: false,
                            hint: None,
                        });
                        look.extend(places(&dependents, &place, key));
                        if ledger.unblocks(key, &dependents) {
                            continue 'passes;
                        }
                        continue;
                    }
                    events.on(JobEvent::Started {
                        cell: &spec.cell,
                        label: &spec.label(),
                        probe: spec.probe,
                    });
                    slots.insert(key, needs);
                    let backend = backend.clone();
                    let markers = markers.clone();
                    let handle = running.spawn(async move {
                        let attempt =
                            attempt(backend.as_ref(), &spec, &placement, markers.get(&spec.cell))
                                .await;
                        Finished {
                            key,
                            spec,
                            placement,
                            attempt,
                        }
                    });
                    tasks.insert(handle.id(), key);
                }
            }
            // Left behind the cursor only if a job came before one it needs (planning rules
            // that out): not dropped even so.
            if look.is_empty() {
                break;
            }
        }
        if let Some(done) = ended.take() {
            look.extend(places(&dependents, &place, done.key));
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
            continue;
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
        let done = match joined {
            Some(Ok(done)) => done,
            // A job that panicked is a failed job, and its dependents fail with it: never a
            // silent drop that leaves the run "built".
            Some(Err(err)) => {
                let Some(key) = tasks.remove(&err.id()) else {
                    continue;
                };
                slots.remove(&key);
                let why = if err.is_panic() {
                    format!(
                        "rewheel failed while running this job (a bug): {}",
                        panic_message(err.into_panic())
                    )
                } else {
                    "the job was cancelled".to_string()
                };
                ledger.fail(key, why, events.as_ref(), None, Vec::new(), 0.0);
                look.extend(places(&dependents, &place, key));
                continue;
            }
            None => continue,
        };
        slots.remove(&done.key);
        if matches!(done.attempt.attempted, Attempted::Built(_))
            && !ledger.readies(done.key, &dependents)
        {
            ended = Some(done);
            continue;
        }
        look.extend(places(&dependents, &place, done.key));
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
                a.sha256.short(),
                BOOTSTRAP_STAGES,
                b.sha256.short()
            ));
        }
    }
    Ok(Summary {
        outcomes: ledger.outcomes,
        finals: ledger.finals,
        no_fixpoint,
        interrupted,
        out_of_space: ledger.out_of_space,
    })
}

/// Record a finished job: its wheel and log in the store, its row, its outcome; or, when its
/// backend asked for more, grow the graph and queue it again.
async fn finish(
    done: Finished,
    ledger: &mut Ledger,
    planner: &Arc<Planner>,
    store: &Store,
    run_id: &RunId,
    options: &BuildOptions,
    events: &dyn Events,
) -> Result<(), StoreError> {
    let Finished {
        key,
        spec,
        placement,
        attempt,
    } = done;
    let seconds = attempt.seconds;
    match &attempt.attempted {
        Attempted::Needs(requirements) => {
            if key.stage != 0 {
                let why = format!(
                    "{}; a bootstrap stage cannot grow the graph: pin them in --build-constraints or add them to the bootstrap set",
                    needs_message(requirements)
                );
                ledger.fail(key, why, events, None, Vec::new(), seconds);
                return Ok(());
            }
            events.on(JobEvent::Finished {
                cell: &spec.cell,
                label: &spec.label(),
                seconds,
                ending: Ending::Asked { requirements },
            });
            let planner = planner.clone();
            let requirements = requirements.clone();
            let extension = tokio::task::spawn_blocking(move || planner.extend(key, &requirements))
                .await
                .expect("the planner does not panic");
            match extension {
                Ok(Extension::Proceed) => {
                    ledger.jobs.get_mut(&key).expect("planned").spec.proceed = true;
                    ledger.started.remove(&key);
                    // The loop looks again only at jobs whose place in the order is new.
                    ledger.revision += 1;
                }
                Ok(Extension::Replan(planned)) => ledger.merge(key, planned),
                Err(err) => ledger.fail(key, err.to_string(), events, None, Vec::new(), seconds),
            }
        }
        Attempted::Probed(requires) => {
            // A probe builds nothing: what the hook said is learned, and what applies to the
            // cell grows the graph as a build's request would.
            let applicable: Vec<String> = requires
                .iter()
                .filter(|r| {
                    ledger
                        .markers
                        .get(&spec.cell)
                        .is_none_or(|m| crate::build::attempt::applies(m, r))
                })
                .cloned()
                .collect();
            let planner = planner.clone();
            let requires = requires.clone();
            let asked = applicable.clone();
            let extension = tokio::task::spawn_blocking(move || {
                planner.learn(key, &requires);
                match asked.is_empty() {
                    true => Ok(Extension::Proceed),
                    false => planner.extend(key, &asked),
                }
            })
            .await
            .expect("the planner does not panic");
            ledger.unknown.insert(key, false);
            let grew: &[String] = match extension {
                Ok(Extension::Proceed) => &[],
                Ok(Extension::Replan(planned)) => {
                    ledger.merge(key, planned);
                    &applicable
                }
                Err(err) => {
                    ledger.fail(key, err.to_string(), events, None, Vec::new(), seconds);
                    return Ok(());
                }
            };
            ledger.started.insert(key);
            ledger.probed.insert(key);
            events.on(JobEvent::Finished {
                cell: &spec.cell,
                label: &spec.label(),
                seconds,
                ending: Ending::Probed { requirements: grew },
            });
        }
        Attempted::Built(output) => {
            let (bytes, filename) = (&output.wheel, &output.wheel_filename);
            let sha = store.put_blob(bytes)?;
            let log_sha = store.put_blob(&output.log)?;
            planner.learn(key, &output.requires);
            if ledger.jobs[&key].is_final && !ledger.probing {
                write_output(&options.out_dir, &spec.cell, filename, bytes)?;
                ledger.finals.push(FinalJob {
                    spec: spec.clone(),
                    filename: filename.clone(),
                    sha256: sha.clone(),
                    path: store.blob_path(&sha),
                    window: attempt.window,
                    seconds,
                    build_path: placement.build_path.clone(),
                    source_parent: placement.source_parent.clone(),
                    sdist_url: ledger.jobs[&key].sdist_url.clone(),
                    fingerprint: placement.fingerprint.clone(),
                    reused_from: None,
                    markers: ledger.markers.get(&spec.cell).cloned().map(Arc::new),
                });
            }
            // Commit the row only once its files are in place: a kill leaves no dangling row.
            let outcome = attempt.outcome(&spec, &placement, Some(&sha));
            store.record_job(&JobRecord::new(run_id, outcome, Some(log_sha.clone())))?;
            ledger.built.insert(
                key,
                Built {
                    filename: filename.clone(),
                    sha256: sha.clone(),
                    path: store.blob_path(&sha),
                },
            );
            events.on(JobEvent::Finished {
                cell: &spec.cell,
                label: &spec.label(),
                seconds,
                ending: Ending::Built,
            });
            ledger.outcomes.push(Outcome {
                cell: spec.cell.clone(),
                label: spec.label(),
                result: Ok((filename.clone(), sha)),
                log: Some(store.blob_path(&log_sha)),
                log_tail: Vec::new(),
                seconds,
                reused: false,
                input_error: false,
                hint: None,
            });
        }
        Attempted::Failed(failure) => {
            let log_sha = store.put_blob(&failure.log)?;
            let outcome = attempt.outcome(&spec, &placement, None);
            store.record_job(&JobRecord::new(run_id, outcome, Some(log_sha.clone())))?;
            let text = String::from_utf8_lossy(&failure.log);
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..]
                .iter()
                .map(|l| l.to_string())
                .collect();
            if failure.out_of_space {
                ledger.out_of_space.push(failure.message.clone());
            }
            ledger.fail(
                key,
                failure.message.clone(),
                events,
                Some(store.blob_path(&log_sha)),
                tail,
                seconds,
            );
            if let Some(last) = ledger.outcomes.last_mut() {
                last.input_error = failure.input;
            }
        }
    }
    Ok(())
}

/// Where in the order the jobs are that need `key`'s wheel.
fn places<'a>(
    dependents: &'a HashMap<JobKey, Vec<JobKey>>,
    place: &'a HashMap<JobKey, usize>,
    key: JobKey,
) -> impl Iterator<Item = usize> + 'a {
    dependents
        .get(&key)
        .into_iter()
        .flatten()
        .filter_map(|k| place.get(k).copied())
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// A stored wheel may be reused only when its bytes still match its name; a damaged one is
/// built again (and the new build replaces the blob).
fn reusable_blob(store: &Store, sha256: &Sha256) -> bool {
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
    // A wheel already there with these very bytes stays: no write, no sync (warm re-runs).
    // Compared byte for byte: the bytes were checked against their hash already, and a
    // comparison costs a tenth of hashing both again.
    let same = std::fs::symlink_metadata(&path)
        .is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
        && std::fs::read(&path).is_ok_and(|there| there == bytes);
    if same {
        return Ok(());
    }
    crate::fsutil::write_atomic(&path, bytes).map_err(|source| StoreError::Io { path, source })
}

/// A stored wheel to reuse, checked against its name once: its bytes when they go to the
/// wheelhouse (`Some(Some)`), only the check otherwise (`Some(None)`); `None` when damaged.
fn reusable_wheel(store: &Store, sha256: &Sha256, is_final: bool) -> Option<Option<Vec<u8>>> {
    if !is_final {
        return reusable_blob(store, sha256).then_some(None);
    }
    match store.read_blob(sha256) {
        Ok(bytes) => Some(Some(bytes)),
        Err(err) => {
            tracing::warn!("not reusing a stored wheel: {err}");
            eprintln!("warning: not reusing a stored wheel: {err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    //! The executor with a fake backend: what it does with failures, panics, interrupts,
    //! reuse and bootstrap stages, without Python or a sandbox.
    use super::*;
    use crate::build::backend::Runtime;
    use crate::build::job::{JobEnd, JobError, JobOutput, JobSpec};
    use petgraph::graph::NodeIndex;
    use std::sync::Mutex;
    use std::time::Instant;

    /// Builds a tiny zip per job; `boom` panics, `bad` fails, `slow` waits; `stage3` differs.
    struct Fake {
        runs: Mutex<Vec<String>>,
        /// When each job ran, for jobs whose name starts with `timed`.
        spans: Mutex<Vec<(String, Instant, Instant)>>,
    }

    impl Backend for Fake {
        fn runtime(&self, _: &str) -> Option<Runtime> {
            Some(Runtime {
                backend: "fake",
                id: "fake".into(),
                interpreter_version: "3.11.0".into(),
            })
        }
        fn job_dir(&self, spec: &JobSpec) -> (PathBuf, PathBuf) {
            let dir = std::env::temp_dir().join(format!("rewheel-fake-{}", spec.folder_name()));
            (dir.clone(), dir)
        }
        fn run_job<'a>(
            &'a self,
            spec: &'a JobSpec,
            _: &'a Path,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<JobEnd, JobError>> + Send + 'a>,
        > {
            Box::pin(async move {
                self.runs.lock().unwrap().push(spec.label());
                match spec.name.as_str() {
                    "boom" => panic!("the fake backend panics"),
                    "bad" => {
                        return Err(JobError::Failed {
                            message: "it does not build".into(),
                            log: b"log".to_vec(),
                        });
                    }
                    "slow" => tokio::time::sleep(std::time::Duration::from_secs(30)).await,
                    timed if timed.starts_with("timed") => {
                        let start = Instant::now();
                        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                        self.spans
                            .lock()
                            .unwrap()
                            .push((timed.to_string(), start, Instant::now()));
                    }
                    _ => {}
                }
                let mut bytes = std::io::Cursor::new(Vec::new());
                let mut zip = zip::ZipWriter::new(&mut bytes);
                let body = if spec.stage == 3 { "third" } else { "same" };
                zip.start_file("x", zip::write::SimpleFileOptions::default())
                    .unwrap();
                std::io::Write::write_all(&mut zip, body.as_bytes()).unwrap();
                zip.finish().unwrap();
                Ok(JobEnd::Wheel(JobOutput {
                    wheel_filename: format!("{}-{}-py3-none-any.whl", spec.name, spec.version),
                    wheel: bytes.into_inner(),
                    log: Vec::new(),
                    requires: Vec::new(),
                }))
            })
        }
        fn with_build_path(&self, _: PathBuf, _: PathBuf) -> Arc<dyn Backend> {
            unreachable!()
        }
    }

    struct Quiet;
    impl Events for Quiet {
        fn on(&self, _: JobEvent<'_>) {}
    }

    fn job(node: usize, stage: u32, name: &str, deps: &[(usize, u32)]) -> Planned {
        Planned {
            key: JobKey {
                cell: 0,
                node: NodeIndex::new(node),
                stage,
            },
            spec: JobSpec {
                cell: CellId::new("cp311").unwrap(),
                name: name.into(),
                version: "1.0".into(),
                stage,
                sdist: PathBuf::from("/nonexistent.tar.gz"),
                sdist_sha256: Sha256::of(format!("{name}{stage}").as_bytes()),
                backend: "fake".into(),
                backend_path: Vec::new(),
                env: Vec::new(),
                settings: crate::build::job::Settings::default(),
                recipe: Default::default(),
                crates: Vec::new(),
                timeout: std::time::Duration::from_secs(60),
                limits: crate::resolve::archive::Limits::default(),
                proceed: false,
                probe: false,
            },
            sdist_url: String::new(),
            cell: crate::cell::Cell::for_python("3.11").unwrap(),
            env: deps
                .iter()
                .map(|(n, s)| {
                    Source::Job(JobKey {
                        cell: 0,
                        node: NodeIndex::new(*n),
                        stage: *s,
                    })
                })
                .collect(),
            is_final: stage == 0 || stage == BOOTSTRAP_STAGES,
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: Store,
        run: RunId,
        planner: Arc<Planner>,
        options: BuildOptions,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let index = crate::resolve::index::Index::new(crate::resolve::index::IndexConfig {
            index_url: None,
            find_links: Vec::new(),
            cache_dir: dir.path().join("cache"),
            offline: true,
            attempts: 1,
            exclude_newer: None,
            max_page: crate::http::DEFAULT_MAX_PAGE,
            max_download: 1 << 30,
        })
        .unwrap();
        let repo = crate::resolve::repository::Repository::new(
            index,
            crate::resolve::repository::RepoConfig {
                exclude_newer: None,
                limits: crate::resolve::archive::Limits::default(),
                allow_binary: Default::default(),
                provided: Default::default(),
            },
            crate::progress::Progress::hidden(),
        );
        let options = || BuildOptions {
            rebuild: Default::default(),
            jobs: 2,
            out_dir: dir.path().join("out"),
            settings: crate::build::job::Settings::default(),
            timeout: std::time::Duration::from_secs(60),
            seed_dir: None,
            limits: crate::resolve::archive::Limits::default(),
        };
        let planner = Arc::new(Planner::new(
            Arc::new(repo),
            Vec::new(),
            Arc::new(options()),
        ));
        let store = Store::open(&dir.path().join("store")).unwrap();
        let run = store.new_run(&[]).unwrap();
        Setup {
            options: options(),
            _dir: dir,
            store,
            run,
            planner,
        }
    }

    fn go(s: &Setup, fake: Arc<Fake>, jobs: Vec<Planned>, interrupt: bool) -> Summary {
        go_in(s, &s.run, &s.options, fake, jobs, interrupt)
    }

    fn go_in(
        s: &Setup,
        run: &RunId,
        options: &BuildOptions,
        fake: Arc<Fake>,
        jobs: Vec<Planned>,
        interrupt: bool,
    ) -> Summary {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            if interrupt {
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    tx.send(true).unwrap();
                });
            } else {
                std::mem::forget(tx);
            }
            Executor {
                planner: s.planner.clone(),
                backend: fake,
                store: &s.store,
                run_id: run,
                options,
                events: Arc::new(Quiet),
                interrupt: rx,
                probe: false,
            }
            .run(jobs)
            .await
            .unwrap()
        })
    }

    fn fake() -> Arc<Fake> {
        Arc::new(Fake {
            runs: Mutex::default(),
            spans: Mutex::default(),
        })
    }

    fn result_of<'a>(summary: &'a Summary, label: &str) -> &'a Result<(String, Sha256), String> {
        &summary
            .outcomes
            .iter()
            .find(|o| o.label == label)
            .unwrap_or_else(|| panic!("no outcome for {label}"))
            .result
    }

    #[test]
    fn jobs_count_cpu_slots_and_a_wide_job_runs_alone() {
        let s = setup();
        let fake = fake();
        let mut wide = job(0, 0, "timed-wide", &[]);
        wide.spec.recipe.cpus = Some(2);
        let jobs = vec![wide, job(1, 0, "timed-a", &[]), job(2, 0, "timed-b", &[])];
        let summary = go(&s, fake.clone(), jobs, false);
        assert_eq!(summary.failures(), 0);
        let spans = fake.spans.lock().unwrap().clone();
        let span = |n: &str| spans.iter().find(|(l, _, _)| l == n).cloned().unwrap();
        let overlap =
            |a: &(String, Instant, Instant), b: &(String, Instant, Instant)| a.1 < b.2 && b.1 < a.2;
        let (w, a, b) = (span("timed-wide"), span("timed-a"), span("timed-b"));
        assert!(!overlap(&w, &a) && !overlap(&w, &b), "{spans:?}");
        assert!(
            overlap(&a, &b),
            "two one-slot jobs share the two slots: {spans:?}"
        );
    }

    #[test]
    fn a_failure_fails_its_dependents_only() {
        let s = setup();
        let summary = go(
            &s,
            fake(),
            vec![
                job(0, 0, "bad", &[]),
                job(1, 0, "app", &[(0, 0)]),
                job(2, 0, "fine", &[]),
            ],
            false,
        );
        assert!(result_of(&summary, "fine 1.0").is_ok());
        assert_eq!(
            result_of(&summary, "bad 1.0").as_ref().unwrap_err(),
            "it does not build"
        );
        assert!(
            result_of(&summary, "app 1.0")
                .as_ref()
                .unwrap_err()
                .contains("not built: bad 1.0 failed")
        );
        assert_eq!(summary.failures(), 2);
    }

    #[test]
    fn a_panicking_job_is_a_failure_and_its_dependents_fail_too() {
        let s = setup();
        let summary = go(
            &s,
            fake(),
            vec![
                job(0, 0, "boom", &[]),
                job(1, 0, "app", &[(0, 0)]),
                job(2, 0, "fine", &[]),
            ],
            false,
        );
        let err = result_of(&summary, "boom 1.0").as_ref().unwrap_err();
        assert!(err.contains("the fake backend panics"), "{err}");
        assert!(result_of(&summary, "app 1.0").is_err());
        assert!(result_of(&summary, "fine 1.0").is_ok());
        assert_eq!(summary.outcomes.len(), 3, "no job is dropped");
    }

    #[test]
    fn an_interrupt_stops_the_run_and_says_so() {
        let s = setup();
        let summary = go(&s, fake(), vec![job(0, 0, "slow", &[])], true);
        assert!(summary.interrupted);
        assert!(summary.outcomes.is_empty());
    }

    #[test]
    fn a_second_pass_over_the_same_run_reuses_finished_jobs() {
        let s = setup();
        let first = fake();
        go(
            &s,
            first.clone(),
            vec![job(0, 0, "lib", &[]), job(1, 0, "app", &[(0, 0)])],
            false,
        );
        assert_eq!(first.runs.lock().unwrap().len(), 2);
        let second = fake();
        let summary = go(
            &s,
            second.clone(),
            vec![job(0, 0, "lib", &[]), job(1, 0, "app", &[(0, 0)])],
            false,
        );
        assert!(second.runs.lock().unwrap().is_empty(), "{:?}", second.runs);
        assert!(summary.outcomes.iter().all(|o| o.reused));
    }

    fn lib_and_app() -> Vec<Planned> {
        vec![job(0, 0, "lib", &[]), job(1, 0, "app", &[(0, 0)])]
    }

    #[test]
    fn a_second_build_starts_the_longest_first_builds_first() {
        let fake = fake();
        let out = tempfile::tempdir().unwrap();
        let finals: Vec<FinalJob> = [
            ("quick", 0.1),
            ("long", 50.0),
            ("small", 1.0),
            ("middle", 5.0),
        ]
        .iter()
        .enumerate()
        .map(|(i, (name, seconds))| FinalJob {
            spec: job(i, 0, name, &[]).spec,
            filename: format!("{name}-1.0-py3-none-any.whl"),
            sha256: Sha256::of(b""),
            path: PathBuf::new(),
            window: (0, 0),
            seconds: *seconds,
            build_path: PathBuf::new(),
            source_parent: PathBuf::new(),
            sdist_url: String::new(),
            fingerprint: String::new(),
            reused_from: None,
            markers: None,
        })
        .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let rebuilt = runtime.block_on(crate::verify::check::rebuild(
            &finals,
            fake.clone(),
            &crate::build::job::Settings::default(),
            1,
            false,
            out.path().to_path_buf(),
            rx,
        ));
        assert!(rebuilt.iter().all(|r| r.result.is_ok()));
        assert_eq!(
            *fake.runs.lock().unwrap(),
            ["long 1.0", "middle 1.0", "small 1.0", "quick 1.0"]
        );
    }

    #[test]
    fn a_later_run_reuses_what_an_earlier_run_built_and_records_where_from() {
        let s = setup();
        go(&s, fake(), lib_and_app(), false);
        let later = s.store.new_run(&[]).unwrap();
        let second = fake();
        let summary = go_in(&s, &later, &s.options, second.clone(), lib_and_app(), false);
        assert!(second.runs.lock().unwrap().is_empty(), "{:?}", second.runs);
        assert!(
            summary
                .outcomes
                .iter()
                .all(|o| o.reused && o.result.is_ok())
        );
        let rows = s.store.jobs(&later).unwrap();
        assert_eq!(rows.len(), 2, "the later run lists the jobs it reused");
        assert!(
            rows.iter()
                .all(|r| r.reused_from.as_deref() == Some(s.run.as_str()))
        );
        assert!(
            s.options
                .out_dir
                .join("cp311/app-1.0-py3-none-any.whl")
                .is_file(),
            "a reused final wheel is still written out"
        );
    }

    #[test]
    fn rebuild_builds_everything_or_the_named_packages_again() {
        let s = setup();
        go(&s, fake(), lib_and_app(), false);
        let mut options = s.options.clone();
        options.rebuild = crate::build::plan::Rebuild::All;
        let all = fake();
        go_in(
            &s,
            &s.store.new_run(&[]).unwrap(),
            &options,
            all.clone(),
            lib_and_app(),
            false,
        );
        assert_eq!(all.runs.lock().unwrap().len(), 2);
        options.rebuild = crate::build::plan::Rebuild::Packages(
            [<crate::names::PackageName as std::str::FromStr>::from_str("LIB").unwrap()].into(),
        );
        let named = fake();
        let summary = go_in(
            &s,
            &s.store.new_run(&[]).unwrap(),
            &options,
            named.clone(),
            lib_and_app(),
            false,
        );
        // lib is built again; its wheel has the same bytes, so app's inputs are unchanged.
        assert_eq!(*named.runs.lock().unwrap(), vec!["lib 1.0".to_string()]);
        assert!(
            summary
                .outcomes
                .iter()
                .any(|o| o.label == "app 1.0" && o.reused)
        );
    }

    #[test]
    fn a_damaged_cached_wheel_is_built_again_not_reused() {
        let s = setup();
        let first = go(&s, fake(), vec![job(0, 0, "lib", &[])], false);
        let (_, sha) = first.outcomes[0].result.clone().unwrap();
        std::fs::write(s.store.blob_path(&sha), b"changed on disk").unwrap();
        let again = fake();
        let summary = go_in(
            &s,
            &s.store.new_run(&[]).unwrap(),
            &s.options,
            again.clone(),
            vec![job(0, 0, "lib", &[])],
            false,
        );
        assert_eq!(again.runs.lock().unwrap().len(), 1);
        assert!(!summary.outcomes[0].reused);
        assert!(
            s.store.verify_blob(&sha).is_ok(),
            "the rebuild replaced the blob"
        );
    }

    #[test]
    fn the_head_of_the_longest_chain_starts_first() {
        let s = setup();
        let mut options = s.options.clone();
        options.jobs = 1;
        let fake = fake();
        // Planned order puts the loose jobs first; a → b → c is the critical path.
        let jobs = vec![
            job(3, 0, "loose", &[]),
            job(4, 0, "free", &[]),
            job(0, 0, "a", &[]),
            job(1, 0, "b", &[(0, 0)]),
            job(2, 0, "c", &[(1, 0)]),
        ];
        go_in(&s, &s.run, &options, fake.clone(), jobs, false);
        let runs = fake.runs.lock().unwrap().clone();
        assert_eq!(runs[0], "a 1.0", "{runs:?}");
        // b became ready after a and heads a longer chain than the loose jobs.
        assert_eq!(runs[1], "b 1.0", "{runs:?}");
    }

    #[test]
    fn in_a_wide_graph_every_job_ends_and_only_what_needs_a_failure_fails() {
        let s = setup();
        // Each job needs up to two earlier ones; job 40 fails. More jobs are ready than slots,
        // so most wait their turn, and each must still be started, or failed, exactly once.
        let n = 300;
        let mut needs: Vec<Vec<usize>> = Vec::new();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for i in 0..n {
            let count = if i == 0 { 0 } else { next() % 3 };
            needs.push((0..count).map(|_| next() % i).collect());
        }
        let name = |i: usize| {
            if i == 40 {
                "bad".to_string()
            } else {
                format!("p{i}")
            }
        };
        let jobs: Vec<Planned> = (0..n)
            .map(|i| {
                let deps: Vec<(usize, u32)> = needs[i].iter().map(|d| (*d, 0)).collect();
                job(i, 0, &name(i), &deps)
            })
            .collect();
        let mut doomed = vec![false; n];
        doomed[40] = true;
        for i in 0..n {
            doomed[i] = doomed[i] || needs[i].iter().any(|d| doomed[*d]);
        }
        let fake = fake();
        let summary = go(&s, fake.clone(), jobs, false);
        assert_eq!(summary.outcomes.len(), n, "every job ends once");
        for (i, doomed) in doomed.iter().enumerate() {
            let label = format!("{} 1.0", name(i));
            assert_eq!(result_of(&summary, &label).is_err(), *doomed, "{label}");
        }
        let ran = fake.runs.lock().unwrap().len();
        assert_eq!(ran, doomed.iter().filter(|d| !**d).count() + 1);
    }

    #[test]
    fn jobs_a_hook_adds_keep_the_settings_of_their_run() {
        let mut asking = job(0, 0, "late", &[]);
        asking.spec.settings.hostname = "varied".into();
        let mut ledger = Ledger {
            order: vec![asking.key],
            jobs: [(asking.key, asking.clone())].into_iter().collect(),
            built: HashMap::new(),
            failed: HashMap::new(),
            started: [asking.key].into_iter().collect(),
            outcomes: Vec::new(),
            finals: Vec::new(),
            revision: 0,
            out_of_space: Vec::new(),
            probed: HashSet::new(),
            probing: false,
            markers: Arc::new(HashMap::new()),
            unknown: HashMap::new(),
        };
        // What the planner hands back carries the first build's (default) settings.
        ledger.merge(
            asking.key,
            vec![job(0, 0, "late", &[(1, 0)]), job(1, 0, "helper", &[])],
        );
        for p in ledger.jobs.values() {
            assert_eq!(p.spec.settings.hostname, "varied", "{}", p.spec.label());
        }
        assert!(ledger.jobs[&asking.key].spec.proceed);
    }

    #[test]
    fn bootstrap_stages_that_differ_are_reported_as_no_fixpoint() {
        let s = setup();
        let summary = go(
            &s,
            fake(),
            vec![
                job(0, 1, "setuptools", &[]),
                job(0, 2, "setuptools", &[(0, 1)]),
                job(0, 3, "setuptools", &[(0, 2)]),
            ],
            false,
        );
        assert_eq!(summary.failures(), 0);
        assert_eq!(summary.no_fixpoint.len(), 1, "{:?}", summary.no_fixpoint);
        assert!(summary.no_fixpoint[0].contains("stage 2"));
    }
}
