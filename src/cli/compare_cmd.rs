//! `rewheel compare A B` and the report options it shares with `check`.

use super::args::{CompareArgs, ReportArgs, ReportFormat};
use super::settings::store_root as store_dir;
use crate::verify::compare::{Clues, CompareReport, Side, across_cells, compare_sides};
use crate::verify::report as compare_report;
use crate::{errors::Error, exit::ExitCode};
use anyhow::Context;

/// `rewheel compare STATEMENT.intoto.json WHEEL`: is the wheel the statement's subject?
fn verify_statement(statement: &str, wheel: &str) -> Result<ExitCode, Error> {
    let paths = (std::path::Path::new(statement), std::path::Path::new(wheel));
    Ok(
        match crate::build::provenance::verify_files(paths.0, paths.1)? {
            Ok(sha) => {
                println!("{wheel} is the subject of {statement} (sha256 {sha})");
                ExitCode::Success
            }
            Err(why) => {
                println!("{wheel} does not match {statement}: {why}");
                ExitCode::NotReproducible
            }
        },
    )
}

pub(crate) fn emit_report(report: &CompareReport, args: &ReportArgs) -> anyhow::Result<()> {
    match args.format {
        ReportFormat::Text => print!("{}", compare_report::text(report)),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
    }
    if let Some(path) = &args.junit {
        crate::fsutil::write_atomic(path, compare_report::junit(report).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        crate::fsutil::write_atomic(path, compare_report::html(report).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

pub(crate) fn run(args: CompareArgs) -> Result<ExitCode, Error> {
    let store = || store_dir(args.store.as_ref());
    let report = match &args.b {
        None => across_cells(&Side::load_pair(&args.a, &args.a, store)?.0)?,
        Some(b) if args.a.ends_with(".intoto.json") => return verify_statement(&args.a, b),
        Some(b) => {
            let (a, b) = Side::load_pair(&args.a, b, store)?;
            compare_sides(&a, &b, &Clues::default())?
        }
    };
    emit_report(&report, &args.report)?;
    Ok(ExitCode::checked(report.all_reproducible()))
}
