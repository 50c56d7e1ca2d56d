//! One build run from plain settings, start to end: a run in the store (new or resumed),
//! resolution, the backend, the plan, the executor, and the run's recorded ending. `build`
//! and the first side of `check` are this; what each prints is the command line's business.

use super::backend::{self, Backend, BackendRequest};
use super::executor::{Executor, Summary};
use super::plan::{BuildOptions, Planned, Planner};
use crate::exit::ExitCode;
use crate::ids::RunId;
use crate::progress::JobDisplay;
use crate::resolve::report::ResolveReport;
use crate::resolve::session::{ResolveSettings, resolve};
use crate::store::lock::RunLock;
use crate::store::{RunStatus, Store, StoreError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a build run needs, decided once at the edge, and kept with the run
/// (`record`) for `--resume`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuildSettings {
    pub resolve: ResolveSettings,
    pub backend: BackendRequest,
    pub options: BuildOptions,
    /// Not kept: a resumed run uses the store it is found in.
    #[serde(skip)]
    pub store_root: PathBuf,
}

/// Which run of the store this is.
pub enum RunRef {
    /// A new run, recorded with the command line that asked for it (for people) and its
    /// settings document (`record`), which `--resume` reads back.
    New { argv: Vec<String>, document: String },
    /// An interrupted run continued: its finished jobs are reused.
    Resume(RunId),
}

/// How a build run stopped before building anything.
pub enum Stage {
    /// A cycle no bootstrap resolves: the report says where and the ways out.
    Cycle(Box<ResolveReport>),
    /// A terminating signal during resolution or while the backend was being opened.
    Interrupted,
    Built(Box<BuiltRun>),
}

/// How a finished run ended, as the store records it and the exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Built,
    Interrupted,
    /// A job's input was refused (an unsafe sdist): the input's fault, not a build's.
    InputRefused,
    /// A job failed because a disk was full: the host's fault (`Summary::out_of_space`).
    OutOfSpace,
    BuildFailed,
}

impl Ending {
    /// The exit code a run that ended so gives.
    pub fn code(self) -> ExitCode {
        match self {
            Ending::Built => ExitCode::Success,
            Ending::Interrupted => ExitCode::Interrupted,
            Ending::InputRefused => ExitCode::Input,
            Ending::OutOfSpace => ExitCode::Environment,
            Ending::BuildFailed => ExitCode::BuildFailed,
        }
    }
}

/// A finished build, with what `check` needs to build again.
pub struct BuiltRun {
    pub store: Store,
    pub run_id: RunId,
    /// This process builds the run until the run is dropped (or the process ends).
    _lock: RunLock,
    unfinished: Unfinished,
    pub summary: Summary,
    pub backend: Arc<dyn Backend>,
    pub runtime: tokio::runtime::Runtime,
    pub planner: Arc<Planner>,
    pub options: Arc<BuildOptions>,
    pub interrupt: tokio::sync::watch::Receiver<bool>,
    pub events: Arc<JobDisplay>,
    pub settings: BuildSettings,
}

impl BuiltRun {
    /// Record the run's end in the store (and clear the progress display).
    pub fn finish(&self) -> Result<Ending, StoreError> {
        self.events.clear();
        let (status, ending) = if self.summary.interrupted {
            (RunStatus::Interrupted, Ending::Interrupted)
        } else if !self.summary.out_of_space.is_empty() {
            (RunStatus::Failed, Ending::OutOfSpace)
        } else if self.summary.input_failures() > 0 {
            (RunStatus::Failed, Ending::InputRefused)
        } else if self.summary.failures() > 0 {
            (RunStatus::Failed, Ending::BuildFailed)
        } else {
            (RunStatus::Built, Ending::Built)
        };
        self.store.finish_run(&self.run_id, status)?;
        self.unfinished
            .recorded
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(ending)
    }

    /// Another pass of jobs on this run's runtime, backend and display: `check`'s second
    /// build.
    pub fn execute(
        &self,
        planned: Vec<Planned>,
        backend: Arc<dyn Backend>,
        run_id: &RunId,
        options: &BuildOptions,
    ) -> Result<Summary, StoreError> {
        self.runtime.block_on(
            Executor {
                planner: self.planner.clone(),
                backend,
                store: &self.store,
                run_id,
                options,
                events: self.events.clone(),
                interrupt: self.interrupt.clone(),
                probe: false,
            }
            .run(planned),
        )
    }
}

/// Resolve, plan and run every job once; `on_run` hears the run id as soon as it exists.
pub fn build(
    settings: BuildSettings,
    run: RunRef,
    on_run: impl FnOnce(&RunId),
) -> anyhow::Result<Stage> {
    let store = Store::open(&settings.store_root)?;
    let new = matches!(run, RunRef::New { .. });
    let run_id = match run {
        RunRef::Resume(id) => id,
        RunRef::New { argv, document } => store.new_run_with(&argv, Some(&document))?,
    };
    // Before anything is done to the run: a run another process builds is refused untouched.
    let lock = store.lock_run(&run_id)?;
    on_run(&run_id);
    let unfinished = Unfinished::new(&settings.store_root, &run_id);
    let store_root = settings.store_root.clone();
    let id = run_id.clone();
    let mut resolved = false;
    let stage = build_in(store, run_id, lock, settings, unfinished, &mut resolved);
    stage.inspect_err(|_| {
        let Ok(store) = Store::open(&store_root) else {
            return;
        };
        // A new run whose resolution failed (an unknown interpreter, a bad pin, an index that
        // does not have it) built nothing and has nothing to resume: it is not kept, so `runs
        // list` shows only runs that did work. Any later error (the engine, the disk) says so
        // in the store.
        if new && !resolved && store.drop_empty_run(&id).unwrap_or(false) {
            return;
        }
        let _ = store.finish_run(&id, RunStatus::Failed);
    })
}

/// Records its run interrupted when dropped by a panic: a display that meets a closed stderr
/// (EPIPE) panics, and a run left "running" could never be told from one still building.
/// Interrupted, it resumes like one stopped by Ctrl-C. A run that ends normally is recorded by
/// whoever ends it, and this does nothing.
pub struct Unfinished {
    store_root: PathBuf,
    run_id: RunId,
    recorded: std::sync::atomic::AtomicBool,
}

impl Unfinished {
    fn new(store_root: &std::path::Path, run_id: &RunId) -> Self {
        Self {
            store_root: store_root.to_path_buf(),
            run_id: run_id.clone(),
            recorded: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if std::thread::panicking()
            && !self.recorded.load(std::sync::atomic::Ordering::SeqCst)
            && let Ok(store) = Store::open(&self.store_root)
        {
            let _ = store.finish_run(&self.run_id, RunStatus::Interrupted);
        }
    }
}

/// A watch that turns true on the first terminating signal (SIGINT, SIGTERM, SIGHUP): every
/// one of them stops the jobs, removes their containers and records the run interrupted, as
/// Ctrl-C does. Later signals are swallowed while that cleanup runs.
fn on_termination(
    runtime: &tokio::runtime::Runtime,
) -> std::io::Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let _context = runtime.enter();
    let mut signals = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ]
    .into_iter()
    .map(signal)
    .collect::<std::io::Result<Vec<_>>>()?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        let any = futures_util::future::select_all(signals.iter_mut().map(|s| Box::pin(s.recv())));
        any.await;
        let _ = tx.send(true);
        // The sender stays: a dropped one would read as another interrupt to its receivers.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

/// Resolution on a thread of its own, so that a terminating signal ends the run at once rather
/// than after the last index page; `None` when a signal came first.
fn resolve_or_interrupt(
    settings: &ResolveSettings,
    runtime: &tokio::runtime::Runtime,
    mut interrupt: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<crate::resolve::session::Resolved>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let settings = settings.clone();
    std::thread::spawn(move || {
        let _ = tx.send(resolve(&settings, true));
    });
    runtime.block_on(async move {
        tokio::select! {
            resolved = rx => match resolved {
                Ok(resolved) => resolved.map(Some),
                Err(_) => anyhow::bail!("resolution ended without an answer (a bug)"),
            },
            _ = interrupt.wait_for(|stop| *stop) => Ok(None),
        }
    })
}

fn build_in(
    store: Store,
    run_id: RunId,
    lock: RunLock,
    settings: BuildSettings,
    unfinished: Unfinished,
    resolved_once: &mut bool,
) -> anyhow::Result<Stage> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // A terminating signal from here on stops the jobs and removes their containers.
    let interrupt = on_termination(&runtime)?;
    let Some(resolved) = resolve_or_interrupt(&settings.resolve, &runtime, interrupt.clone())?
    else {
        store.finish_run(&run_id, RunStatus::Interrupted)?;
        return Ok(Stage::Interrupted);
    };
    *resolved_once = true;
    if resolved.has_error_cycle() {
        store.finish_run(&run_id, RunStatus::Cycle)?;
        return Ok(Stage::Cycle(Box::new(resolved.report())));
    }
    let Some(backend) = backend::open(
        &settings.backend,
        &resolved.cells(),
        &runtime,
        interrupt.clone(),
    )?
    else {
        store.finish_run(&run_id, RunStatus::Interrupted)?;
        return Ok(Stage::Interrupted);
    };
    let options = Arc::new(settings.options.clone());
    let cells = resolved.cells();
    let (repo, graphs) = resolved.into_parts();
    // Held here so that the repository (and its blocking HTTP client) is dropped outside the
    // async runtime.
    let planner = Arc::new(Planner::new(Arc::new(repo), graphs, options.clone()));
    let planned = planner.plan_all()?;
    let events = Arc::new(JobDisplay::new(&planner.cells(), &planned_counts(&planned)));
    let mut summary = runtime.block_on(
        Executor {
            planner: planner.clone(),
            backend: backend.clone(),
            store: &store,
            run_id: &run_id,
            options: &options,
            events: events.clone(),
            interrupt: interrupt.clone(),
            probe: false,
        }
        .run(planned),
    )?;
    crate::build::diagnose::annotate(
        &mut summary,
        &cells,
        &settings.resolve.index.cache_dir,
        settings.resolve.index.offline,
    );
    Ok(Stage::Built(Box::new(BuiltRun {
        store,
        run_id,
        _lock: lock,
        unfinished,
        summary,
        backend,
        runtime,
        planner,
        options,
        interrupt,
        events,
        settings,
    })))
}

fn planned_counts(planned: &[Planned]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for p in planned {
        *counts.entry(p.spec.cell.to_string()).or_insert(0) += 1;
    }
    counts
}

/// The plan of a build without running it: `rewheel plan`. `Err` holds the report of a cycle.
///
/// A plan's jobs run elsewhere, each on its own: one whose backend names a requirement at
/// build time that the plan does not hold cannot be helped there. So the hooks this cache has
/// never heard from are asked first, on the backend (`probe`), and the plan is made from the
/// grown graphs. A plan whose hooks are all known runs nothing.
pub fn plan(
    settings: &BuildSettings,
    argv: &[String],
) -> anyhow::Result<Result<Vec<Planned>, Box<ResolveReport>>> {
    let resolved = resolve(&settings.resolve, true)?;
    if resolved.has_error_cycle() {
        return Ok(Err(Box::new(resolved.report())));
    }
    let cells = resolved.cells();
    let (repo, graphs) = resolved.into_parts();
    let planner = Arc::new(Planner::new(
        Arc::new(repo),
        graphs,
        Arc::new(settings.options.clone()),
    ));
    let planned = planner.plan_all()?;
    if planned.iter().any(|p| planner.hook_unknown(p.key)) {
        probe(settings, argv, &planner, &cells, planned)?;
        return Ok(Ok(planner.plan_all()?));
    }
    Ok(Ok(planned))
}

/// Ask every hook the cache does not know, building what they need on the backend (a run of
/// the store, so a later `build` reuses those jobs). Where the backend cannot run, the plan
/// is made without: a warning says which jobs may then fail.
fn probe(
    settings: &BuildSettings,
    argv: &[String],
    planner: &Arc<Planner>,
    cells: &[crate::cell::Cell],
    planned: Vec<Planned>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let interrupt = on_termination(&runtime)?;
    let backend = match backend::open(&settings.backend, cells, &runtime, interrupt.clone()) {
        Ok(Some(backend)) => backend,
        Ok(None) => return Err(crate::exit::Interrupted.into()),
        Err(err) => {
            eprintln!(
                "warning: the plan's build hooks were not asked ({err}): a job whose backend names requirements at build time will fail in CI\nhint: make the plan where its cells can build, or after a `rewheel build` with the same --cache-dir"
            );
            return Ok(());
        }
    };
    let store = Store::open(&settings.store_root)?;
    let run_id = store.new_run(argv)?;
    let _lock = store.lock_run(&run_id)?;
    let events = Arc::new(JobDisplay::new(&planner.cells(), &planned_counts(&planned)));
    let summary = runtime.block_on(
        Executor {
            planner: planner.clone(),
            backend,
            store: &store,
            run_id: &run_id,
            options: &settings.options,
            events: events.clone(),
            interrupt,
            probe: true,
        }
        .run(planned),
    )?;
    events.clear();
    let status = match (summary.interrupted, summary.failures()) {
        (true, _) => RunStatus::Interrupted,
        (false, 0) => RunStatus::Built,
        (false, _) => RunStatus::Failed,
    };
    store.finish_run(&run_id, status)?;
    if summary.interrupted {
        return Err(crate::exit::Interrupted.into());
    }
    for outcome in &summary.outcomes {
        if let Err(why) = &outcome.result {
            eprintln!(
                "warning: [{}] {}: {why}; the plan may miss what its backend names at build time",
                outcome.cell, outcome.label
            );
        }
    }
    Ok(())
}
