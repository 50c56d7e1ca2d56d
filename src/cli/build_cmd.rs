//! `rewheel build`: resolve, plan, run the jobs, summarize.

use super::{InputArgs, has_error_cycle, resolve_inputs, resolve_report};
use crate::build::backend::Backend;
use crate::build::job::Settings;
use crate::build::plan::{BuildOptions, Planned, Planner};
use crate::build::{Events, Summary, execute};
use crate::cell::Cell;
use crate::exit;
use crate::store::Store;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args, Clone)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Where jobs run: `local` (host interpreters), `docker` (one container per job), or `auto`.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub(crate) backend: BackendKind,
    /// Jobs at once (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Wheels go to DIR/<cell>/.
    #[arg(long, default_value = "wheelhouse", value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// The run store (SQLite plus content-addressed wheels and logs).
    #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
    /// Continue an interrupted run: its finished jobs are reused, the rest are built.
    #[arg(long, value_name = "RUN")]
    pub(crate) resume: Option<String>,
    /// SOURCE_DATE_EPOCH for every job (unset by default, as for a plain pip build).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) source_date_epoch: Option<u64>,
    /// The umask jobs run with and sources are unpacked with, in octal.
    #[arg(long, default_value = "022", value_parser = parse_umask, value_name = "OCTAL")]
    pub(crate) umask: u32,
    /// Where jobs build (local backend): a fixed path, since C extensions embed it.
    #[arg(long, default_value = crate::build::job::DEFAULT_BUILD_ROOT, value_name = "DIR", value_parser = absolute_path)]
    pub(crate) build_path: PathBuf,
    /// Wheels to start the bootstrap from (stage 0); default: the index's wheels, by hash.
    #[arg(long, value_name = "DIR")]
    pub(crate) seed_wheels: Option<PathBuf>,
    /// Give up on a job after this many seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub(crate) timeout: u64,
    /// An interpreter to use for the local backend (matched to cells by version). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub(crate) python_path: Vec<PathBuf>,
    /// Run exactly one job of a plan (`rewheel plan`), as a CI job does: with --plan and --inputs.
    #[arg(long, value_name = "ID", requires_all = ["plan_file", "inputs"])]
    pub(crate) job: Option<String>,
    /// Compare each built wheel with the sha256 hashes of a requirements file
    /// (`name==ver --hash=sha256:…`, one hash per interpreter allowed); a mismatch exits 1.
    #[arg(long, value_name = "FILE")]
    pub(crate) expect: Option<PathBuf>,
    /// The plan document that --job comes from.
    #[arg(long = "plan", value_name = "FILE")]
    pub(crate) plan_file: Option<PathBuf>,
    /// What earlier jobs left (their wheels and result documents), searched recursively.
    #[arg(long, value_name = "DIR")]
    pub(crate) inputs: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
pub(crate) enum BackendKind {
    Auto,
    Local,
    Docker,
}

/// Jobs run in other folders than rewheel: a relative path is made absolute once, here.
fn absolute_path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("an empty path".into());
    }
    std::path::absolute(s).map_err(|e| format!("`{s}`: {e}"))
}

fn parse_umask(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("`{s}` is not an octal umask like 022"))
}

pub(crate) fn store_dir(explicit: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    explicit
        .cloned()
        .or_else(Store::default_root)
        .context("no place for the run store; give --store DIR")
}

/// A finished first build, with what `check` needs to build again.
pub(crate) struct BuiltRun {
    pub store: Store,
    pub run_id: String,
    pub summary: Summary,
    pub backend: Arc<dyn Backend>,
    pub runtime: tokio::runtime::Runtime,
    pub planner: Arc<Planner>,
    pub options: Arc<BuildOptions>,
    pub interrupt: tokio::sync::watch::Receiver<bool>,
    pub events: Arc<Display>,
    pub args: BuildArgs,
}

pub(crate) enum Stage {
    /// Stopped before or during the build, with this exit code.
    Stopped(u8),
    Built(Box<BuiltRun>),
}

pub(crate) fn run_build(args: BuildArgs, argv: Vec<String>) -> anyhow::Result<u8> {
    if args.job.is_some() {
        return super::job_cmd::run_one(&args);
    }
    let built = match build_run(args, argv)? {
        Stage::Stopped(code) => return Ok(code),
        Stage::Built(built) => built,
    };
    if let Some(code) = built.conclude(true)? {
        return Ok(code);
    }
    if let Some(file) = &built.args.expect
        && !crate::verify::expect::print(&crate::verify::expect::check(
            file,
            &built.summary.finals,
        )?)
    {
        return Ok(exit::NOT_REPRODUCIBLE);
    }
    Ok(exit::SUCCESS)
}

/// The build options the arguments ask for.
pub(crate) fn options_of(
    args: &BuildArgs,
    limits: crate::resolve::archive::Limits,
) -> BuildOptions {
    BuildOptions {
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        out_dir: args.out.clone(),
        settings: Settings {
            source_date_epoch: args.source_date_epoch,
            umask: args.umask,
            ..Settings::default()
        },
        timeout: Duration::from_secs(args.timeout),
        seed_dir: args.seed_wheels.clone(),
        limits,
    }
}

pub(crate) fn print_summary_of(built: &BuiltRun) {
    print_summary(&built.summary, &built.args.out);
}

impl BuildArgs {
    pub(crate) fn build_path_arg(&self) -> &std::path::Path {
        &self.build_path
    }
}

impl BuiltRun {
    pub fn store_root(&self) -> PathBuf {
        store_dir(self.args.store.as_ref()).unwrap_or_else(|_| PathBuf::from("."))
    }
    /// Print the summary and record the run's end; `Some(code)` when the run did not succeed.
    pub fn conclude(&self, print: bool) -> anyhow::Result<Option<u8>> {
        self.events.clear();
        if print {
            print_summary(&self.summary, &self.args.out);
        }
        let status = if self.summary.interrupted {
            crate::store::RunStatus::Interrupted
        } else if self.summary.failures() > 0 {
            crate::store::RunStatus::Failed
        } else {
            crate::store::RunStatus::Built
        };
        self.store.finish_run(&self.run_id, status)?;
        if self.summary.interrupted {
            eprintln!(
                "interrupted: continue with `rewheel build --resume {}`",
                self.run_id
            );
            return Ok(Some(exit::INTERRUPTED));
        }
        if self.summary.input_failures() > 0 {
            return Ok(Some(exit::INPUT));
        }
        Ok((self.summary.failures() > 0).then_some(exit::BUILD_FAILED))
    }
}

/// Resolve, plan and run every job once: `build` itself, and the first build of `check`.
pub(crate) fn build_run(mut args: BuildArgs, argv: Vec<String>) -> anyhow::Result<Stage> {
    let store = Store::open(&store_dir(args.store.as_ref())?)?;
    let run_id = match args.resume.clone() {
        Some(id) => {
            let run = store
                .run(&id)?
                .ok_or_else(|| crate::store::StoreError::NoRun(id.clone()))?;
            // The interrupted run's own arguments decide what is built.
            let parsed = super::Cli::try_parse_from_argv(&run.argv)?;
            let original = match parsed {
                super::Command::Build(original) => original,
                super::Command::Check(check) => check.build,
                _ => bail!("run {id} was not a build"),
            };

            let store_arg = args.store.clone();
            args = original;
            args.store = store_arg;
            id
        }
        None => store.new_run(&argv)?,
    };
    eprintln!("run {run_id}");
    let store_root = store_dir(args.store.as_ref())?;
    let id = run_id.clone();
    run_in(store, run_id, args).inspect_err(|_| {
        // A run that ends in an error (resolution, planning, the engine) says so in the store.
        if let Ok(store) = Store::open(&store_root) {
            let _ = store.finish_run(&id, crate::store::RunStatus::Failed);
        }
    })
}

fn run_in(store: Store, run_id: String, args: BuildArgs) -> anyhow::Result<Stage> {
    let resolved = resolve_inputs(&args.input, true)?;
    if has_error_cycle(&resolved) {
        print!(
            "{}",
            crate::resolve::report::text(&resolve_report(&resolved))
        );
        eprintln!(
            "error: a dependency cycle stops the build before it starts; see the ways out above"
        );
        store.finish_run(&run_id, crate::store::RunStatus::Cycle)?;
        return Ok(Stage::Stopped(exit::CYCLE));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Ctrl-C from here on stops the jobs and removes their containers.
    let (interrupt_tx, interrupt) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = interrupt_tx.send(true);
        }
    });
    let cells: Vec<Cell> = resolved
        .graphs
        .iter()
        .map(|(cg, _)| cg.cell.clone())
        .collect();
    let Some(backend) =
        crate::build::backend::open(&backend_request(&args), &cells, &runtime, interrupt.clone())?
    else {
        store.finish_run(&run_id, crate::store::RunStatus::Interrupted)?;
        eprintln!("interrupted before any job started");
        return Ok(Stage::Stopped(exit::INTERRUPTED));
    };
    let options = options_of(&args, resolved.limits);
    let options = Arc::new(options);
    let graphs: Vec<_> = resolved.graphs.into_iter().map(|(cg, _)| cg).collect();
    // Held here so that the repository (and its blocking HTTP client) is dropped outside the
    // async runtime.
    let planner = Arc::new(Planner::new(
        Arc::new(resolved.repo),
        graphs,
        options.clone(),
    ));
    let planned = planner.plan_all()?;
    let events = Arc::new(Display::new(&planner.cells(), &planned_counts(&planned)));
    let summary = runtime.block_on(execute(
        planner.clone(),
        planned,
        backend.clone(),
        &store,
        &run_id,
        &options,
        events.clone(),
        interrupt.clone(),
    ))?;
    Ok(Stage::Built(Box::new(BuiltRun {
        store,
        run_id,
        summary,
        backend,
        runtime,
        planner,
        options,
        interrupt,
        events,
        args,
    })))
}

fn planned_counts(planned: &[Planned]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for p in planned {
        *counts.entry(p.spec.cell.clone()).or_insert(0) += 1;
    }
    counts
}

/// The backend settings of these arguments, once.
pub(crate) fn backend_request(args: &BuildArgs) -> crate::build::backend::BackendRequest {
    crate::build::backend::BackendRequest {
        kind: match args.backend {
            BackendKind::Auto => crate::build::backend::BackendKind::Auto,
            BackendKind::Local => crate::build::backend::BackendKind::Local,
            BackendKind::Docker => crate::build::backend::BackendKind::Docker,
        },
        build_path: args.build_path.clone(),
        python_paths: args.python_path.clone(),
    }
}

fn print_summary(summary: &Summary, out: &std::path::Path) {
    let mut cells: Vec<&str> = summary.outcomes.iter().map(|o| o.cell.as_str()).collect();
    cells.dedup();
    cells.sort();
    cells.dedup();
    for cell in cells {
        let of_cell: Vec<_> = summary.outcomes.iter().filter(|o| o.cell == cell).collect();
        let ok = of_cell.iter().filter(|o| o.result.is_ok()).count();
        let reused = of_cell.iter().filter(|o| o.reused).count();
        println!(
            "{cell}: {ok} built{}, {} failed → {}",
            if reused > 0 {
                format!(" ({reused} reused)")
            } else {
                String::new()
            },
            of_cell.len() - ok,
            out.join(cell).display()
        );
        for o in &of_cell {
            if let Ok((filename, sha)) = &o.result {
                println!("  ok    {:<40} {filename} sha256:{}", o.label, &sha[..16]);
            }
        }
        for o in &of_cell {
            if let Err(why) = &o.result {
                println!("  FAIL  {:<40} {why}", o.label);
                for line in &o.log_tail {
                    println!("        | {line}");
                }
                if let Some(log) = &o.log {
                    println!("        log: {}", log.display());
                }
            }
        }
    }
    for line in &summary.no_fixpoint {
        println!("bootstrap did not reach a fixpoint: {line}");
    }
}

/// Progress: a bar per cell and a line per running job on a terminal; plain lines otherwise.
pub(crate) struct Display {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    jobs: Mutex<HashMap<(String, String), ProgressBar>>,
}

impl Display {
    fn new(cells: &[String], counts: &HashMap<String, u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                multi: None,
                bars: HashMap::new(),
                jobs: Mutex::default(),
            };
        }
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len}")
            .expect("valid template");
        let bars = cells
            .iter()
            .map(|cell| {
                let bar = multi.add(ProgressBar::new(counts.get(cell).copied().unwrap_or(0)));
                bar.set_style(style.clone());
                bar.set_prefix(cell.clone());
                (cell.clone(), bar)
            })
            .collect();
        Self {
            multi: Some(multi),
            bars,
            jobs: Mutex::default(),
        }
    }

    fn clear(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

impl Events for Display {
    fn started(&self, cell: &str, label: &str) {
        match &self.multi {
            Some(multi) => {
                let spinner = multi.add(ProgressBar::new_spinner());
                spinner.set_style(
                    ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                        .expect("valid template"),
                );
                spinner.set_message(format!("[{cell}] {label}"));
                spinner.enable_steady_tick(Duration::from_millis(120));
                self.jobs
                    .lock()
                    .unwrap()
                    .insert((cell.into(), label.into()), spinner);
            }
            None => eprintln!("[{cell}] building {label}"),
        }
    }

    fn finished(&self, cell: &str, label: &str, ok: bool, seconds: f64, note: &str) {
        let verb = if ok { "built" } else { "FAILED" };
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(": {note}")
        };
        match &self.multi {
            Some(multi) => {
                if let Some(spinner) = self
                    .jobs
                    .lock()
                    .unwrap()
                    .remove(&(cell.into(), label.into()))
                {
                    spinner.finish_and_clear();
                    multi.remove(&spinner);
                }
                if let Some(bar) = self.bars.get(cell) {
                    bar.inc(1);
                }
                let _ = multi.println(format!("[{cell}] {verb} {label} ({seconds:.1} s){note}"));
            }
            None => eprintln!("[{cell}] {verb} {label} ({seconds:.1} s){note}"),
        }
    }
}
