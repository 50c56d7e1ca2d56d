//! `rewheel build`: resolve, plan, run the jobs, summarize.

use super::args::{BuildArgs, Cli, Command};
use crate::build::run::{self, BuiltRun, Ending, RunRef, Stage};
use crate::build::{Summary, report};
use crate::exit;
use crate::store::Store;
use anyhow::bail;
use std::path::Path;

pub(crate) fn run_build(args: BuildArgs, argv: Vec<String>) -> anyhow::Result<u8> {
    let expect = args.expect.clone();
    let provenance = args.provenance.clone();
    let built = match start(args, argv)? {
        Ok(built) => built,
        Err(code) => return Ok(code),
    };
    crate::exit::keep_until_exit(built.planner.clone());
    built.events.clear();
    print_summary(&built.summary, &built.settings.options.out_dir);
    write_provenance(&built, provenance.as_deref())?;
    if let Some(code) = conclude(&built)? {
        return Ok(code);
    }
    if let Some(file) = &expect
        && !crate::verify::expect::print(&crate::verify::expect::check(
            file,
            &built.summary.finals,
        )?)
    {
        return Ok(exit::NOT_REPRODUCIBLE);
    }
    Ok(exit::SUCCESS)
}

/// Resolve, plan and run every job once (`build`, and the first side of `check`); a resumed
/// run takes its own stored arguments. `Err` is the exit code of a run that stopped early.
pub(crate) fn start(
    args: BuildArgs,
    argv: Vec<String>,
) -> anyhow::Result<Result<Box<BuiltRun>, u8>> {
    let (settings, run) = match &args.resume {
        Some(id) => {
            let store = Store::open(&super::settings::store_root(args.store.as_ref())?)?;
            let stored = store
                .run(id)?
                .ok_or_else(|| crate::store::StoreError::NoRun(id.clone()))?;
            // The interrupted run's own arguments decide what is built.
            let mut original = match Cli::try_parse_from_argv(&stored.argv)? {
                Command::Build(original) => original,
                Command::Check(check) => check.first_side(),
                _ => bail!("run {id} was not a build"),
            };
            original.store = args.store.clone();
            (
                super::settings::build(&original)?,
                RunRef::Resume(id.clone()),
            )
        }
        None => (super::settings::build(&args)?, RunRef::New(argv)),
    };
    match run::build(settings, run, |id| eprintln!("run {id}"))? {
        Stage::Built(built) => Ok(Ok(built)),
        Stage::Cycle(report) => {
            print!("{}", crate::resolve::report::text(&report));
            eprintln!(
                "error: a dependency cycle stops the build before it starts; see the ways out above"
            );
            Ok(Err(exit::CYCLE))
        }
        Stage::Interrupted => {
            eprintln!("interrupted before any job started");
            Ok(Err(exit::INTERRUPTED))
        }
    }
}

/// The run's statements and checksums, when `--provenance DIR` asks for them.
pub(crate) fn write_provenance(built: &BuiltRun, dir: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = dir {
        eprintln!("{}", crate::build::provenance::write_for(built, dir)?);
    }
    Ok(())
}

/// Record the run's end; `Some(code)` when it did not succeed.
pub(crate) fn conclude(built: &BuiltRun) -> anyhow::Result<Option<u8>> {
    Ok(match built.finish()? {
        Ending::Built => None,
        Ending::Interrupted => {
            eprintln!(
                "interrupted: continue with `rewheel build --resume {}`",
                built.run_id
            );
            Some(exit::INTERRUPTED)
        }
        Ending::InputRefused => Some(exit::INPUT),
        Ending::OutOfSpace => {
            eprint!("{}", report::out_of_space(&built.summary, &built.run_id));
            Some(exit::ENVIRONMENT)
        }
        Ending::BuildFailed => Some(exit::BUILD_FAILED),
    })
}

pub(crate) fn print_summary(summary: &Summary, out: &Path) {
    print!("{}", report::text(summary, out));
}
