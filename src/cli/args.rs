//! Every flag of every command, as clap sees it (the "low" arguments). `settings` turns them
//! into library settings; the `*_cmd` modules call the library and print.

use crate::bisect::engine::{Until, parse_until};
use crate::exit;
use crate::verify::variation::{Variation, parse_set};
use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "rewheel",
    version,
    about = "Rebuild Python wheels from source across an interpreter × distro matrix, and prove whether they are reproducible.",
    after_help = exit::table()
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// No progress lines and no log lines below errors: only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Colour in log lines: `auto` when stderr is a terminal and NO_COLOR is unset.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto, value_name = "WHEN")]
    pub(crate) color: Color,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    #[command(after_help = exit::table(), verbatim_doc_comment)]
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
    #[command(after_help = exit::table(), verbatim_doc_comment)]
    Build(BuildArgs),
    /// Build every wheel twice, the second time under variations, and explain every difference.
    ///
    /// The second build reuses the first build's build-dependency wheels (`--independent`
    /// rebuilds the whole closure), so a difference belongs to the package itself. Each
    /// differing entry is searched for the values the variations set (build paths, hostnames,
    /// times in the build window, locale names); `--find-culprit` rebuilds with one variation at
    /// a time for the rest. Exit 0 when every wheel is reproducible, 1 when not, 3 when a
    /// wheel failed to build (the wheels that built are checked all the same).
    ///
    /// Examples:
    ///   rewheel check -r lock.txt --python 3.11 --source-date-epoch 1700000000
    ///   rewheel check -r lock.txt --matrix matrices/debian.toml --vary build-path,umask --html report.html
    ///   rewheel check --resume 20261121-204906
    #[command(after_help = exit::table(), verbatim_doc_comment)]
    Check(CheckArgs),
    /// Find which upload (between two dates) or which bump (between two locks) broke a
    /// resolution, a build, reproducibility, or an expected hash.
    ///
    /// Examples:
    ///   rewheel bisect --target python-dateutil==2.8.2 --python 3.7 --until resolves \
    ///       --good-date 2022-06-01 --bad-date 2022-07-15
    ///   rewheel bisect --target app --good-lock old.txt --bad-lock new.txt --python 3.11 \
    ///       --until reproducible -- --backend local --vary build-path
    #[command(after_help = exit::table(), verbatim_doc_comment)]
    Bisect(BisectArgs),
    /// Rebuild a wheel someone else published from its sdist, bit for bit, inferring the recipe.
    ///
    /// Reads the wheel (never runs it): `Generator:` pins the backend or `wheel`, equal entry
    /// times give a SOURCE_DATE_EPOCH, permission bits a umask, and compiled extensions their
    /// build folder (--build-path) and compiler (the Debian suite). Build dependencies are taken
    /// as of the wheel's upload time when the index gives one. A small, bounded search around
    /// the guess follows if the first try differs. Prints "reproduced with recipe R" or the
    /// closest attempt with its differences, and writes the recipe as a matrix file.
    ///
    /// Examples:
    ///   rewheel rebuild six-1.16.0-py2.py3-none-any.whl --python 3.11 --backend local
    ///   rewheel rebuild https://files.example/markupsafe-2.1.3-cp311-...whl --matrix matrices/debian.toml
    #[command(after_help = exit::table(), verbatim_doc_comment)]
    Rebuild(RebuildArgs),
    /// One CI job per wheel and cell: the plan as JSON, GitHub Actions matrices, or a GitLab pipeline.
    ///
    /// The plan as JSON, GitHub Actions matrices by level, or a GitLab child pipeline with
    /// `needs:` edges. Each job runs with `rewheel build --plan FILE --job ID --inputs DIR
    /// --out DIR`; `rewheel merge` joins the results into one run.
    ///
    /// Examples:
    ///   rewheel plan -r lock.txt --matrix matrices/debian.toml -o plan.json
    ///   rewheel plan -r lock.txt --python 3.11 --emit gitlab -o child.yml
    #[command(after_help = exit::table(), verbatim_doc_comment)]
    Plan(PlanArgs),
    /// Join CI job results (`*.result.json` and their wheels) into one run of the store.
    ///
    /// Examples:
    ///   rewheel merge --plan plan.json results/
    #[command(after_help = exit::table(), verbatim_doc_comment)]
    Merge(MergeArgs),
    /// Compare two runs, two folders of wheels, or two wheels, entry by entry.
    ///
    /// Examples:
    ///   rewheel compare 20261121-204906 20261122-090112
    ///   rewheel compare 20261121-204906 --across-cells
    ///   rewheel compare wheelhouse-a/ wheelhouse-b/
    ///   rewheel compare six-1.16.0-py2.py3-none-any.whl other/six-1.16.0-py2.py3-none-any.whl
    #[command(after_help = exit::table(), verbatim_doc_comment)]
    Compare(CompareArgs),
    /// Build images without a registry (mmdebstrap or debootstrap, then import), and list them.
    ///
    /// Examples:
    ///   rewheel images build bookworm bullseye
    ///   rewheel images list
    #[command(subcommand, verbatim_doc_comment)]
    Images(ImagesCommand),
    /// The run store: `runs list`, `runs show RUN`, `runs verify` (check every blob against its hash).
    ///
    /// Examples:
    ///   rewheel runs list
    ///   rewheel runs show 20261121-204906 --json
    ///   rewheel runs verify
    #[command(subcommand, verbatim_doc_comment)]
    Runs(RunsCommand),
    /// Print a shell completion script for SHELL.
    ///
    /// Examples:
    ///   rewheel completions bash > ~/.local/share/bash-completion/completions/rewheel
    ///   rewheel completions zsh > ~/.zfunc/_rewheel
    #[command(verbatim_doc_comment)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), made from these definitions.
    ///
    /// Examples:
    ///   rewheel man > ~/.local/share/man/man1/rewheel.1
    #[command(verbatim_doc_comment)]
    Man,
}

#[derive(Args)]
pub(crate) struct ResolveArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Explain why a package is in each cell's graph: the chain of edges from a root.
    #[arg(long, value_name = "NAME")]
    pub(crate) why: Option<String>,
    /// Write the report to FILE (atomically) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Do not look for ways out of cycles (each is checked by resolving again, which fetches
    /// older sdists).
    #[arg(long)]
    pub(crate) no_explain: bool,
}

/// What to resolve, for which cells, from where: shared by every command that resolves.
#[derive(Args, Clone)]
pub(crate) struct InputArgs {
    /// Requirements like `python-dateutil==2.8.2`.
    pub(crate) specs: Vec<String>,
    /// pip requirements file (pins, markers, --hash, -r/-c includes). Repeatable.
    #[arg(short = 'r', long = "requirement", value_name = "FILE")]
    pub(crate) requirement_files: Vec<PathBuf>,
    /// Constraints for the requested packages (pip's -c). Repeatable.
    #[arg(short = 'c', long = "constraint", value_name = "FILE")]
    pub(crate) constraint_files: Vec<PathBuf>,
    /// Pins that apply to every build environment, like uv's --build-constraint. Repeatable.
    #[arg(
        long = "build-constraints",
        alias = "build-constraint",
        value_name = "FILE"
    )]
    pub(crate) build_constraints: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) cells: CellArgs,
    #[command(flatten)]
    pub(crate) index: IndexArgs,
    /// Take this package as a wheel from the index instead of building it (breaks cycles).
    #[arg(long = "allow-binary", value_name = "NAME")]
    pub(crate) allow_binary: Vec<String>,
    /// Per-package build settings: a TOML file of `[packages.NAME]` tables (system packages,
    /// env, config-settings, build-requires, patches, allow-binary), as a matrix file may also
    /// hold. Repeatable; one package in two files is an error.
    #[arg(long = "settings", value_name = "FILE")]
    pub(crate) settings_files: Vec<PathBuf>,
    /// Build the named packages and their build environments only, not their runtime
    /// dependencies (pip's --no-deps): what a wheel's bytes depend on, and nothing more.
    #[arg(long = "no-deps")]
    pub(crate) no_deps: bool,
    /// The bootstrap set: cycles among only these are built in stages, not errors.
    #[arg(long, value_name = "NAME", num_args = 1.., default_values = ["setuptools", "wheel", "flit-core"])]
    pub(crate) bootstrap: Vec<String>,
}

#[derive(Args, Clone)]
pub(crate) struct CellArgs {
    /// A bare interpreter version to resolve for (cell `cpXY`), e.g. 3.7 or 3.11.2. Repeatable.
    #[arg(long, value_name = "X.Y")]
    pub(crate) python: Vec<String>,
    /// A matrix file naming cells (and optionally requirements and an index).
    #[arg(long, value_name = "FILE")]
    pub(crate) matrix: Option<PathBuf>,
    /// Select cells of the matrix by glob, e.g. 'cp3{9,11}-*'.
    #[arg(long, value_name = "GLOB", requires = "matrix")]
    pub(crate) cells: Option<String>,
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
    #[arg(long, value_name = "DATE", value_parser = crate::resolve::index::parse_instant)]
    pub(crate) exclude_newer: Option<Timestamp>,
    /// Attempts per HTTP request before giving up (with exponential backoff).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) retries: u32,
    /// Reject sdists that expand past this many bytes.
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES")]
    pub(crate) max_sdist_size: u64,
    /// Reject index pages larger than this many bytes (after decompression); downloads are
    /// capped by the size the index lists, else by --max-sdist-size.
    #[arg(long, default_value_t = crate::http::DEFAULT_MAX_PAGE, value_name = "BYTES")]
    pub(crate) max_page_size: u64,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub(crate) enum Format {
    Text,
    Json,
    Dot,
    /// One cell's build closure as a pip requirements file (pins, hashes, `# via`).
    Requirements,
}

#[derive(Args, Clone)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Where jobs run: `local` (host interpreters), `docker` (one container per job), or `auto`.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub(crate) backend: BackendKind,
    /// CPU slots (default: the number of cores): jobs run at once while their slots fit, each
    /// taking its package's `cpus` setting (one by default).
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Wheels go to DIR/<cell>/.
    #[arg(long, default_value = "wheelhouse", value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// The run store (SQLite plus content-addressed wheels and logs).
    #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
    /// Continue an interrupted run with its own settings: finished jobs are reused, the rest
    /// built (a check's second side is built again). Of other flags only --store, --expect,
    /// --provenance and report flags apply.
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
    /// Build again instead of reusing finished jobs from the store: `--rebuild` for every
    /// job, `--rebuild=NAME,…` for those packages. By default a job whose inputs (sdist, build
    /// environment, interpreter or image, settings, build path) match a finished job of any
    /// earlier run reuses its wheel, after checking its hash.
    #[arg(long, value_name = "NAMES", num_args = 0..=1, require_equals = true, value_delimiter = ',', default_missing_value = ":all:")]
    pub(crate) rebuild: Option<Vec<String>>,
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
    /// Write an in-toto statement with a SLSA v1 provenance predicate for every wheel
    /// (DIR/<cell>/<wheel>.intoto.json), each cell's sha256sums.txt (what `sha256sum -c`
    /// reads) and a PEP 751 lock of its wheels (DIR/<cell>/pylock.<cell>.toml); `rewheel
    /// compare STATEMENT WHEEL` checks a wheel against its statement.
    #[arg(long, value_name = "DIR")]
    pub(crate) provenance: Option<PathBuf>,
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

#[derive(Args, Clone)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) build: BuildArgs,
    /// What the second build varies: names to vary only those, `-name` to leave one out
    /// (`--vary build-path,umask`, or `--vary=-time` with the `=`). Default: all of
    /// build-path (sources and build environment), build-env-path (the build environment
    /// only), time, umask, timezone, locale (LANG, LC_ALL and LANGUAGE), hostname, domain,
    /// uid, user (name, GECOS field, login shell), hash-seed, env, num-cpus, home, exec-path
    /// (PATH's folders in reverse order), kernel, aslr, file-order, bin-sh (dash or bash),
    /// nice.
    #[arg(long, default_value = "all", value_parser = parse_vary, value_name = "LIST", allow_hyphen_values = true)]
    pub(crate) vary: VarySet,
    /// Rebuild the whole closure the second time, not just each wheel with the first build's
    /// build dependencies.
    #[arg(long)]
    pub(crate) independent: bool,
    /// For differences no variation value explains, rebuild with one variation at a time and
    /// name those that reproduce it.
    #[arg(long)]
    pub(crate) find_culprit: bool,
    /// For each differing wheel, try the standard remedy of each attributed cause (a fixed
    /// umask, -ffile-prefix-map, SOURCE_DATE_EPOCH, a pinned PYTHONHASHSEED/TZ/LC_ALL), verify
    /// it by building both sides again with it, and report it in the wheel's row. With
    /// `--remedies=FILE`, write the verified ones there as per-package settings (`--settings`).
    /// Without it, a differing row names the remedy it would try, and the report ends with the
    /// command lines to run next.
    #[arg(long, num_args = 0..=1, require_equals = true, value_name = "FILE", default_missing_value = "")]
    pub(crate) remedies: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) report: ReportArgs,
}

/// The variations of the second build, as `--vary` named them.
#[derive(Clone, Debug)]
pub(crate) struct VarySet(pub(crate) Vec<Variation>);

fn parse_vary(s: &str) -> Result<VarySet, String> {
    parse_set(s).map(VarySet)
}

#[derive(Args)]
pub(crate) struct RebuildArgs {
    /// The published wheel: a file, an http(s) URL, or a requirements file (or pylock.toml)
    /// naming wheels by `--hash=sha256:`, each then found on the index and rebuilt.
    pub(crate) target: String,
    #[command(flatten)]
    pub(crate) build: BuildArgs,
    /// Recipes tried at most (the guess first).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub(crate) attempts: usize,
    /// Write the recipe that matched (or came closest) as a matrix file (with its requirements
    /// and constraints files beside it).
    #[arg(long, value_name = "FILE")]
    pub(crate) recipe: Option<PathBuf>,
    /// Wheels of a batch rebuilt at once (they share the slots of -j). A wheel an earlier
    /// batch on this store has a verdict for is not rebuilt unless --rebuild is given.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) parallel: usize,
    /// Write the batch's report as JSON: every wheel's verdict, recipe and cause, and the
    /// rates bit for bit and equal after normalising entry times, by backend and by year.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Write the batch's report as one HTML page.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,
    /// Write each rebuilt wheel's in-toto statement in DIR (`<wheel>.rebuild.intoto.json`):
    /// the published wheel, the sdist, the build environment and image by digest, the recipe
    /// and the verdict. Anyone checks one with `rewheel rebuild STATEMENT`.
    #[arg(long, value_name = "DIR")]
    pub(crate) attest: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) build: BuildArgs,
    /// `json`: the plan itself; `gitlab`: a child pipeline with `needs:` edges; `github-workflow`:
    /// a complete GitHub Actions workflow; `github`: only the matrices, one per level.
    #[arg(long, value_enum, default_value_t = Emit::Json)]
    pub(crate) emit: Emit,
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Compare with a committed FILE instead of writing: exit 1 when the lock has moved on.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub(crate) check: Option<PathBuf>,
    /// A CI job's image, with {cell}, {python}, {python_short} and {suite} filled in (default:
    /// python:{python_short}-{suite}). It must hold the cell's Python, a C compiler, rewheel.
    #[arg(long, value_name = "TEMPLATE")]
    pub(crate) ci_image: Option<String>,
    /// A shell line that installs rewheel in each CI job, before it builds. Repeatable.
    #[arg(long, value_name = "COMMAND")]
    pub(crate) ci_setup: Vec<String>,
    /// GitLab: the parent pipeline's job that keeps plan.json as an artifact.
    #[arg(long, default_value = "rewheel-plan", value_name = "NAME")]
    pub(crate) ci_plan_job: String,
    /// GitHub: where the workflow is committed (its plan job checks it is current).
    #[arg(
        long,
        default_value = ".github/workflows/rewheel.yml",
        value_name = "PATH"
    )]
    pub(crate) ci_workflow_path: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Emit {
    Json,
    Github,
    GithubWorkflow,
    Gitlab,
}

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// Result documents (`*.result.json`) or folders holding them and their wheels.
    #[arg(required = true)]
    pub(crate) results: Vec<PathBuf>,
    /// The plan the results come from: every job must be there, once.
    #[arg(long = "plan", value_name = "FILE")]
    pub(crate) plan_file: Option<PathBuf>,
    #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct CompareArgs {
    /// A run id in the store, a folder of wheels (DIR/<cell>/*.whl or DIR/*.whl), or a wheel.
    pub(crate) a: String,
    /// The same, for the other side.
    #[arg(required_unless_present = "across_cells")]
    pub(crate) b: Option<String>,
    /// Compare the pure wheels (`*-none-any.whl`) of one run between its cells: each cell's
    /// wheel with the first cell's, and what moved between their builds (the interpreter,
    /// the image…). A pure wheel should come out the same everywhere.
    ///
    ///   rewheel compare 20261206-041750 --across-cells
    #[arg(long, conflicts_with = "b")]
    pub(crate) across_cells: bool,
    #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) report: ReportArgs,
}

#[derive(Args, Clone)]
pub(crate) struct ReportArgs {
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Also write JUnit XML (one test case per wheel and cell) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write one self-contained HTML page with the summary and every diff to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub(crate) enum ReportFormat {
    Text,
    Json,
}

#[derive(Args)]
pub(crate) struct BisectArgs {
    /// What to watch: `name==version` (dates) or a package name in both locks (locks).
    #[arg(long)]
    pub(crate) target: String,
    /// The last instant known good (RFC 3339 or a date).
    #[arg(long, value_parser = crate::resolve::index::parse_instant, requires = "bad_date", conflicts_with = "good_lock")]
    pub(crate) good_date: Option<Timestamp>,
    /// The first instant known bad.
    #[arg(long, value_parser = crate::resolve::index::parse_instant, requires = "good_date")]
    pub(crate) bad_date: Option<Timestamp>,
    /// A lock (pip requirements with pins) known good.
    #[arg(long, requires = "bad_lock")]
    pub(crate) good_lock: Option<PathBuf>,
    /// A lock known bad.
    #[arg(long, requires = "good_lock")]
    pub(crate) bad_lock: Option<PathBuf>,
    /// What "bad" means: `resolves` (a cycle), `builds` (a failed build), `reproducible`
    /// (a wheel that is not), or `matches=SHA256` (the target's wheel hashes otherwise).
    #[arg(long, value_parser = parse_until)]
    pub(crate) until: Until,
    /// A cell of --matrix; without a matrix, `cpXY` (or `cpXY-anything`) means Python X.Y.
    #[arg(long)]
    pub(crate) cell: Option<String>,
    #[arg(long)]
    pub(crate) matrix: Option<PathBuf>,
    /// A bare interpreter version instead of a cell (enough for `--until resolves`).
    #[arg(long, value_name = "X.Y")]
    pub(crate) python: Option<String>,
    /// The index flags `resolve` takes (each probe sets its own --exclude-newer).
    #[command(flatten)]
    pub(crate) index: IndexArgs,
    /// Where the bisection's record is kept (the run store).
    #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
    /// List the candidates and stop.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Arguments passed to every probe (e.g. `-- --backend local --vary build-path`).
    #[arg(last = true)]
    pub(crate) probe_args: Vec<String>,
}

#[derive(Subcommand)]
pub(crate) enum RunsCommand {
    /// Every run in the store, oldest first.
    List {
        #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
    },
    /// One run's jobs: status, wheel, hash, time, and the fingerprint of their inputs.
    Show {
        run: String,
        #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print the run as JSON (`schema_version` 1).
        #[arg(long)]
        json: bool,
    },
    /// Remove old runs and every wheel and log no remaining run needs (the job cache shrinks
    /// with them). Runs still running are kept, and so is any blob written in the last hour.
    ///
    /// Examples:
    ///   rewheel runs gc --keep 10
    ///   rewheel runs gc --older-than 30d --dry-run
    #[command(verbatim_doc_comment)]
    Gc {
        #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Keep the newest N runs.
        #[arg(
            long,
            value_name = "N",
            required_unless_present = "older_than",
            conflicts_with = "older_than"
        )]
        keep: Option<usize>,
        /// Remove runs started longer ago than this (`30d`, `12h`, `2w`).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<std::time::Duration>,
        /// Say what would go, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print what was removed as JSON (`schema_version` 1).
        #[arg(long)]
        json: bool,
    },
    /// Check the store (fsck): every job's wheel and log blob is there and still hashes to its
    /// name, and no run is left marked running. Exit 0 when clean, 1 when something is wrong.
    Verify {
        #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print the findings as JSON (`schema_version` 1).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum ImagesCommand {
    /// Make images in the local engine from Debian's archive (no registry needed): the suite
    /// with python3 and a C toolchain, by mmdebstrap (no root needed; the same package set
    /// gives the same layer digest, printed) or else debootstrap, then imported. An image
    /// whose recipe digest is already in the engine is kept.
    Build {
        /// bullseye, bookworm, trixie, forky (default: all).
        names: Vec<String>,
        /// Where the root filesystems are made (about 400 MB each, removed after import).
        #[arg(long, default_value = crate::build::images::SCRATCH, value_name = "DIR")]
        scratch: PathBuf,
        /// Build again even when the engine has the image.
        #[arg(long)]
        force: bool,
    },
    /// The images rewheel knows, their recipe digests, and whether the engine has them.
    List,
}

/// `30d`, `12h`, `90m`, `2w`: an age for `runs gc --older-than`.
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("`{s}` is not an age like 30d, 12h, 90m or 2w");
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    Ok(std::time::Duration::from_secs(n * seconds))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_help_of_vary_names_every_variation() {
        use clap::CommandFactory;
        let mut command = super::Cli::command();
        let check = command.find_subcommand_mut("check").expect("check exists");
        let help = check.render_long_help().to_string();
        let words: Vec<&str> = help
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .collect();
        for v in crate::verify::variation::ALL {
            assert!(words.contains(&v.name()), "`{v}` is not in:\n{help}");
        }
    }
}
