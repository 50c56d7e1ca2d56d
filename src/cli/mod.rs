//! The command line: argument parsing, turning arguments into inputs, and exit codes. The work
//! itself lives in the library modules.

mod bisect_cmd;
mod build_cmd;
mod check_cmd;
mod compare_cmd;
mod images_cmd;
mod job_cmd;
mod runs_cmd;

use crate::cell::Cell;
use crate::exit;
use crate::matrix::Matrix;
use crate::names::PackageName;
use crate::progress::Progress;
use crate::requirements::Requirements;
use crate::resolve::archive::Limits;
use crate::resolve::explain::ways_out;
use crate::resolve::graph::CycleKind;
use crate::resolve::index::{Index, IndexConfig};
use crate::resolve::provider::Constraints;
use crate::resolve::report::{self, ResolveReport, SCHEMA_VERSION};
use crate::resolve::repository::{RepoConfig, Repository};
use crate::resolve::{CellGraph, ResolveInput, resolve_cell};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

/// The archive limits the index flags set, for every command that reads sdists.
pub(crate) fn limits_of(index: &IndexArgs) -> Limits {
    Limits {
        max_unpacked: index.max_sdist_size,
        ..Limits::default()
    }
}

pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

#[derive(Parser)]
#[command(
    name = "rewheel",
    version,
    about = "Rebuild Python wheels from source across an interpreter × distro matrix, and prove whether they are reproducible.",
    after_help = exit::TABLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve the build-dependency graph of each cell, find and explain cycles, print the build order.
    ///
    /// Every sdist is fetched and read (never run) to learn its [build-system] requires, its
    /// setup_requires and its runtime requirements; each build environment is resolved on its own
    /// with markers evaluated for the cell, recursively, until every package that must be built
    /// from source is known.
    ///
    /// Examples:
    ///   rewheel resolve python-dateutil==2.8.2 --python 3.7 --exclude-newer 2022-07-15
    ///   rewheel resolve -r requirements.txt --matrix matrices/debian.toml --cells 'cp3{9,11}-*'
    ///   rewheel resolve -r lock.txt --python 3.11 --why setuptools-scm
    #[command(after_help = exit::TABLE, verbatim_doc_comment)]
    Resolve(ResolveArgs),
    /// Build every wheel of each cell from source, each in an isolated job, in dependency order.
    ///
    /// Resolves as `resolve` does, then runs one job per (package, version, cell), many at once;
    /// every build dependency is built once and installed (unpacked) into the build environments
    /// that need it. Cycles of the bootstrap set (setuptools, wheel, flit-core) are built in three
    /// stages from a seed; stage 2 and 3 must give the same wheels.
    ///
    /// Examples:
    ///   rewheel build python-dateutil==2.8.2 --python 3.11 --backend local
    ///   rewheel build -r lock.txt --matrix matrices/debian.toml --cells 'cp3{9,11}-*'
    ///   rewheel build --resume 20261121-204906
    #[command(after_help = exit::TABLE, verbatim_doc_comment)]
    Build(build_cmd::BuildArgs),
    /// Build every wheel twice, the second time under variations, and explain every difference.
    ///
    /// The second build reuses the first build's build-dependency wheels (`--independent`
    /// rebuilds the whole closure), so a difference belongs to the package itself. Each
    /// differing entry is searched for the values the variations set (build paths, hostnames,
    /// times in the build window, locale names); `--find-culprit` rebuilds with one variation at
    /// a time for the rest. Exit 0 when every wheel is reproducible, 1 when not.
    ///
    /// Examples:
    ///   rewheel check -r lock.txt --python 3.11 --source-date-epoch 1700000000
    ///   rewheel check -r lock.txt --matrix matrices/debian.toml --vary build-path,umask --html report.html
    #[command(after_help = exit::TABLE, verbatim_doc_comment)]
    Check(check_cmd::CheckArgs),
    /// Find which upload (between two dates) or which bump (between two locks) broke a
    /// resolution, a build, reproducibility, or an expected hash.
    ///
    /// Examples:
    ///   rewheel bisect --target python-dateutil==2.8.2 --python 3.7 --until resolves \
    ///       --good-date 2022-06-01 --bad-date 2022-07-15
    ///   rewheel bisect --target app --good-lock old.txt --bad-lock new.txt --python 3.11 \
    ///       --until reproducible -- --backend local --vary build-path
    #[command(after_help = exit::TABLE, verbatim_doc_comment)]
    Bisect(bisect_cmd::BisectArgs),
    /// One CI job per wheel and cell: the plan as JSON, GitHub Actions matrices by level, or a
    /// GitLab child pipeline with `needs:` edges. Each job runs with `rewheel build --plan FILE
    /// --job ID --inputs DIR --out DIR`; `rewheel merge` joins the results into one run.
    #[command(after_help = exit::TABLE)]
    Plan(job_cmd::PlanArgs),
    /// Join CI job results (`*.result.json` and their wheels) into one run of the store.
    #[command(after_help = exit::TABLE)]
    Merge(job_cmd::MergeArgs),
    /// Compare two runs, two folders of wheels, or two wheels, entry by entry.
    #[command(after_help = exit::TABLE)]
    Compare(compare_cmd::CompareArgs),
    /// Build images without a registry (debootstrap + import), and list them.
    #[command(subcommand)]
    Images(images_cmd::ImagesCommand),
    /// The run store: `runs list`, `runs show RUN`, `runs verify` (check every blob against its hash).
    #[command(subcommand)]
    Runs(runs_cmd::RunsCommand),
}

impl Cli {
    /// Parse a stored command line (for `--resume`).
    fn try_parse_from_argv(argv: &[String]) -> anyhow::Result<Command> {
        Ok(Cli::try_parse_from(argv)
            .map_err(|e| anyhow::anyhow!("the stored command line no longer parses: {e}"))?
            .command)
    }
}

#[derive(Args)]
struct ResolveArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Explain why a package is in each cell's graph: the chain of edges from a root.
    #[arg(long, value_name = "NAME")]
    why: Option<String>,
    /// Write the report to FILE (atomically) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Do not look for ways out of cycles (each is checked by resolving again, which fetches
    /// older sdists).
    #[arg(long)]
    no_explain: bool,
}

/// What to resolve, for which cells, from where: shared by every command that resolves.
#[derive(Args, Clone)]
struct InputArgs {
    /// Requirements like `python-dateutil==2.8.2`.
    specs: Vec<String>,
    /// pip requirements file (pins, markers, --hash, -r/-c includes). Repeatable.
    #[arg(short = 'r', long = "requirement", value_name = "FILE")]
    requirement_files: Vec<PathBuf>,
    /// Constraints for the requested packages (pip's -c). Repeatable.
    #[arg(short = 'c', long = "constraint", value_name = "FILE")]
    constraint_files: Vec<PathBuf>,
    /// Pins that apply to every build environment, like uv's --build-constraint. Repeatable.
    #[arg(
        long = "build-constraints",
        alias = "build-constraint",
        value_name = "FILE"
    )]
    build_constraints: Vec<PathBuf>,
    #[command(flatten)]
    cells: CellArgs,
    #[command(flatten)]
    index: IndexArgs,
    /// Take this package as a wheel from the index instead of building it (breaks cycles).
    #[arg(long = "allow-binary", value_name = "NAME")]
    allow_binary: Vec<String>,
    /// The bootstrap set: cycles among only these are built in stages, not errors.
    #[arg(long, value_name = "NAME", num_args = 1.., default_values = ["setuptools", "wheel", "flit-core"])]
    bootstrap: Vec<String>,
}

#[derive(Args, Clone)]
struct CellArgs {
    /// A bare interpreter version to resolve for (cell `cpXY`), e.g. 3.7 or 3.11.2. Repeatable.
    #[arg(long, value_name = "X.Y")]
    python: Vec<String>,
    /// A matrix file naming cells (and optionally requirements and an index).
    #[arg(long, value_name = "FILE")]
    matrix: Option<PathBuf>,
    /// Select cells of the matrix by glob, e.g. 'cp3{9,11}-*'.
    #[arg(long, value_name = "GLOB", requires = "matrix")]
    cells: Option<String>,
}

#[derive(Args, Clone)]
pub(crate) struct IndexArgs {
    /// The simple-API index (PEP 691 JSON, PEP 503 HTML).
    #[arg(long, short = 'i', env = "PIP_INDEX_URL", value_name = "URL")]
    pub(crate) index_url: Option<String>,
    /// A local folder of sdists (and wheels) to use beside the index. Repeatable.
    #[arg(long, short = 'f', value_name = "DIR")]
    pub(crate) find_links: Vec<PathBuf>,
    /// Use no index, only --find-links folders.
    #[arg(long)]
    pub(crate) no_index: bool,
    /// Where index pages, sdists and their inspections are cached.
    #[arg(long, env = "REWHEEL_CACHE_DIR", value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Use only what is in the cache; fetch nothing.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Resolve as the index stood at this instant (RFC 3339, or a date meaning its midnight UTC),
    /// from upload times.
    #[arg(long, value_name = "DATE", value_parser = parse_instant)]
    pub(crate) exclude_newer: Option<Timestamp>,
    /// Attempts per HTTP request before giving up (with exponential backoff).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) retries: u32,
    /// Reject sdists that expand past this many bytes.
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES")]
    pub(crate) max_sdist_size: u64,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Text,
    Json,
    Dot,
}

pub(crate) fn parse_instant(s: &str) -> Result<Timestamp, String> {
    if let Ok(ts) = Timestamp::from_str(s) {
        return Ok(ts);
    }
    jiff::civil::Date::from_str(s)
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp())
        .map_err(|_| format!("`{s}` is neither an RFC 3339 instant (2022-07-15T00:00:00Z) nor a date (2022-07-15)"))
}

/// Run the command line; returns the process exit code.
pub fn main() -> u8 {
    let argv: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Resolve(args) => run_resolve(args),
        Command::Build(args) => build_cmd::run_build(args, argv),
        Command::Check(args) => check_cmd::run(args, argv),
        Command::Compare(args) => compare_cmd::run(args),
        Command::Bisect(args) => bisect_cmd::run(args),
        Command::Plan(args) => job_cmd::plan(args),
        Command::Merge(args) => job_cmd::merge(args, argv),
        Command::Runs(command) => runs_cmd::run(command),
        Command::Images(command) => images_cmd::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            exit::of_error(&err)
        }
    }
}

/// The error and its causes, each said once: our errors already include their cause in their
/// message, while context added at the edge does not.
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

fn names(list: &[String], flag: &str) -> anyhow::Result<HashSet<PackageName>> {
    list.iter()
        .map(|n| {
            PackageName::from_str(n).with_context(|| format!("{flag} {n}: not a package name"))
        })
        .collect()
}

/// Everything resolution produced, for the commands that go on from it.
pub(crate) struct Resolved {
    pub repo: Repository,
    pub graphs: Vec<(CellGraph, Vec<Vec<crate::resolve::explain::WayOut>>)>,
    pub exclude_newer: Option<Timestamp>,
    pub bootstrap: Vec<String>,
    pub limits: Limits,
}

fn resolve_inputs(args: &InputArgs, explain: bool) -> anyhow::Result<Resolved> {
    let matrix = args.cells.matrix.as_deref().map(Matrix::load).transpose()?;
    let mut cells: Vec<Cell> = Vec::new();
    for python in &args.cells.python {
        cells.push(Cell::for_python(python)?);
    }
    if let Some(matrix) = &matrix {
        cells.extend(matrix.select(args.cells.cells.as_deref())?);
    }
    if cells.is_empty() {
        bail!("no cell to resolve for\nhint: give --python X.Y or --matrix FILE");
    }

    let mut reqs = Requirements::default();
    for spec in &args.specs {
        reqs.add_arg(spec)?;
    }
    let matrix_reqs = matrix
        .as_ref()
        .map(|m| m.requirements.clone())
        .unwrap_or_default();
    for file in args.requirement_files.iter().chain(&matrix_reqs) {
        reqs.read_file(file)?;
    }
    for file in &args.constraint_files {
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
    for file in args.build_constraints.iter().chain(&matrix_build) {
        build.read_constraints_file(file)?;
    }

    let index_url = args
        .index
        .index_url
        .clone()
        .or_else(|| reqs.index_url.clone())
        .or_else(|| matrix.as_ref().and_then(|m| m.index_url.clone()));
    let mut config = index_config(&args.index, index_url, args.index.exclude_newer)?;
    config.find_links.extend(reqs.find_links.iter().cloned());
    let index = Index::new(config)?;
    let progress = Progress::stderr(true);
    let limits = limits_of(&args.index);
    let repo = Repository::new(
        index,
        RepoConfig {
            exclude_newer: args.index.exclude_newer,
            limits,
            allow_binary: names(&args.allow_binary, "--allow-binary")?,
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
        bootstrap: names(&args.bootstrap, "--bootstrap")?,
    };

    // Cells are independent; the repository's caches are shared between them.
    type CellResult = anyhow::Result<(CellGraph, Vec<Vec<crate::resolve::explain::WayOut>>)>;
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
        exclude_newer: args.index.exclude_newer,
        bootstrap: args.bootstrap.clone(),
        limits,
    })
}

/// The index, cache and retry settings the flags ask for; `index_url` is the first of the
/// flag, a requirements file's and a matrix file's, and the default index after those.
pub(crate) fn index_config(
    index: &IndexArgs,
    index_url: Option<String>,
    exclude_newer: Option<Timestamp>,
) -> anyhow::Result<IndexConfig> {
    Ok(IndexConfig {
        index_url: (!index.no_index).then(|| {
            index_url
                .or_else(|| index.index_url.clone())
                .unwrap_or_else(|| DEFAULT_INDEX.to_string())
        }),
        find_links: index.find_links.clone(),
        cache_dir: index
            .cache_dir
            .clone()
            .or_else(|| dirs::cache_dir().map(|d| d.join("rewheel")))
            .context("no cache directory; give --cache-dir")?,
        offline: index.offline,
        attempts: index.retries,
        exclude_newer,
    })
}

pub(crate) fn resolve_report(resolved: &Resolved) -> ResolveReport {
    ResolveReport {
        schema_version: SCHEMA_VERSION,
        tool: format!("rewheel {}", env!("CARGO_PKG_VERSION")),
        exclude_newer: resolved.exclude_newer.map(|t| t.to_string()),
        bootstrap: resolved.bootstrap.clone(),
        cells: resolved
            .graphs
            .iter()
            .map(|(cg, ways)| report::cell_report(cg, ways))
            .collect(),
    }
}

pub(crate) fn has_error_cycle(resolved: &Resolved) -> bool {
    resolved
        .graphs
        .iter()
        .any(|(cg, _)| cg.cycles.iter().any(|c| c.kind == CycleKind::Error))
}

fn run_resolve(args: ResolveArgs) -> anyhow::Result<u8> {
    let resolved = resolve_inputs(&args.input, !args.no_explain)?;
    if let Some(name) = &args.why {
        let name = PackageName::from_str(name)
            .with_context(|| format!("--why {name}: not a package name"))?;
        return print_why(&resolved.graphs, &name, args.output.as_deref());
    }
    let report = resolve_report(&resolved);
    let text = match args.format {
        Format::Text => report::text(&report),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Dot => report::dot(&report),
    };
    emit(&text, args.output.as_deref())?;
    Ok(if has_error_cycle(&resolved) {
        exit::CYCLE
    } else {
        exit::SUCCESS
    })
}

fn print_why(
    graphs: &[(CellGraph, Vec<Vec<crate::resolve::explain::WayOut>>)],
    name: &PackageName,
    output: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    let mut text = String::new();
    let mut found = false;
    for (cg, _) in graphs {
        let paths = cg.graph.why(name);
        if paths.is_empty() {
            text.push_str(&format!(
                "{}: {name} is not in this cell's graph\n",
                cg.cell.id
            ));
        }
        for (node, path) in paths {
            found = true;
            let start = path.first().map(|&e| cg.graph.source(e)).unwrap_or(node);
            let what = if path.is_empty() {
                " (asked for directly)"
            } else {
                ""
            };
            text.push_str(&format!(
                "{}: {}{what}\n",
                cg.cell.id,
                cg.graph.render_chain(start, &path)
            ));
        }
    }
    emit(&text, output)?;
    if !found {
        bail!("{name} is in no cell's graph");
    }
    Ok(exit::SUCCESS)
}

pub(crate) fn emit(text: &str, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    match output {
        Some(path) => crate::fsutil::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display())),
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = stdout.write_all(text.as_bytes());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
