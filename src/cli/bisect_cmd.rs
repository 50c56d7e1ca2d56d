//! `rewheel bisect`: which upload (between two dates) or which bump (between two locks) broke a
//! resolution, a build, reproducibility, or an expected hash. Every probe is a real run of
//! rewheel itself, printed as it is tried and remembered for the rest of the bisection.

use super::args::BisectArgs;
use crate::bisect::engine::{
    Prober, Settings, Until, bisect_dates, bisect_locks, probe_cell_args, probe_index_args,
    python_of_cell,
};
use crate::bisect::record::keep;
use crate::errors::{Error, usage};
use crate::exit::ExitCode;

pub(crate) fn run(args: BisectArgs) -> Result<ExitCode, Error> {
    if args.index.exclude_newer.is_some() {
        usage!("--exclude-newer is what bisect varies; give --good-date and --bad-date instead");
    }
    if args.python.is_none() && args.cell.is_none() {
        usage!("name the cell: --python X.Y, --cell cpXY, or --cell ID with --matrix FILE");
    }
    if let (Some(cell), None) = (&args.cell, &args.matrix)
        && python_of_cell(cell).is_none()
    {
        usage!("--cell {cell}: without --matrix, a cell is named cpXY (e.g. cp37)");
    }
    if args.python.is_some()
        && !matches!(args.until, Until::Resolves)
        && args.matrix.is_none()
        && !args.probe_args.iter().any(|a| a == "--backend")
    {
        eprintln!("note: building for a bare --python uses the host's interpreter (local backend)");
    }
    let index = super::settings::index(&args.index)?;
    let store_root = super::settings::store_root(args.store.as_ref())?;
    let settings = Settings {
        target: args.target.clone(),
        until: args.until.clone(),
        cell_args: probe_cell_args(
            args.matrix.as_deref(),
            args.cell.as_deref(),
            args.python.as_deref(),
        ),
        index_args: probe_index_args(&index),
        index: index.config(None),
        probe_args: args.probe_args.clone(),
        dry_run: args.dry_run,
        store: store_root.clone(),
    };
    let work = tempfile::tempdir()?;
    let mut prober = Prober::new(&settings, work.path().to_path_buf());
    let outcome = match (
        &args.good_date,
        &args.bad_date,
        &args.good_lock,
        &args.bad_lock,
    ) {
        (Some(good), Some(bad), _, _) => bisect_dates(&settings, *good, *bad, &mut prober),
        (_, _, Some(good), Some(bad)) => bisect_locks(&settings, good, bad, &mut prober),
        _ => usage!("give --good-date and --bad-date, or --good-lock and --bad-lock"),
    };
    let good = args
        .good_date
        .map(|d| d.to_string())
        .or_else(|| args.good_lock.as_ref().map(|p| p.display().to_string()));
    let bad = args
        .bad_date
        .map(|d| d.to_string())
        .or_else(|| args.bad_lock.as_ref().map(|p| p.display().to_string()));
    if let Some(path) = keep(&store_root, &settings, (good, bad), prober.log(), &outcome) {
        println!("kept in {}", path.display());
    }
    outcome.map(|_| ExitCode::Success).map_err(Error::from)
}
