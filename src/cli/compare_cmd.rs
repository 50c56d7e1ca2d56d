//! `rewheel compare A B` and the report options it shares with `check`.

use super::args::{CompareArgs, ReportArgs, ReportFormat};
use super::settings::store_root as store_dir;
use crate::exit;
use crate::store::Store;
use crate::verify::compare::{Clues, CompareReport, Side, compare_sides};
use crate::verify::report as compare_report;
use anyhow::Context;

/// `rewheel compare STATEMENT.intoto.json WHEEL`: is the wheel the statement's subject?
fn verify_statement(statement: &str, wheel: &str) -> anyhow::Result<u8> {
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(statement).with_context(|| format!("cannot read {statement}"))?,
    )
    .with_context(|| format!("{statement}: not JSON"))?;
    let path = std::path::Path::new(wheel);
    let sha = crate::fsutil::sha256_file(path).with_context(|| format!("cannot read {wheel}"))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    match crate::build::provenance::verify(&doc, &name, &sha) {
        Ok(()) => {
            println!("{wheel} is the subject of {statement} (sha256 {sha})");
            Ok(exit::SUCCESS)
        }
        Err(why) => {
            println!("{wheel} does not match {statement}: {why}");
            Ok(exit::NOT_REPRODUCIBLE)
        }
    }
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

pub(crate) fn run(args: CompareArgs) -> anyhow::Result<u8> {
    if args.a.ends_with(".intoto.json") {
        return verify_statement(&args.a, &args.b);
    }
    // Files and folders are compared without the store: it is neither created nor opened.
    let needs_store = [&args.a, &args.b]
        .iter()
        .any(|s| !std::path::Path::new(s).exists());
    let store = if needs_store {
        let dir = store_dir(args.store.as_ref())?;
        if !dir.join("runs.sqlite3").is_file() {
            anyhow::bail!(
                "`{}` is neither a file, a folder nor a run: there is no run store at {}",
                [&args.a, &args.b]
                    .into_iter()
                    .find(|s| !std::path::Path::new(s).exists())
                    .expect("one is missing"),
                dir.display()
            );
        }
        Some(Store::open(&dir)?)
    } else {
        None
    };
    let a = Side::load(&args.a, store.as_ref())?;
    let b = Side::load(&args.b, store.as_ref())?;
    let report = compare_sides(&a, &b, &Clues::default())?;
    emit_report(&report, &args.report)?;
    Ok(if report.all_reproducible() {
        exit::SUCCESS
    } else {
        exit::NOT_REPRODUCIBLE
    })
}
