//! `rewheel build`: resolve, plan, run the jobs (a new run, or a stored one resumed), summarize.

use super::args::BuildArgs;
use super::settings::{begin, build_request};
use crate::build::record::start;
use crate::build::run::{BuiltRun, Ending, Stage};
use crate::build::{Summary, report};
use crate::errors::Error;
use crate::exit::{self, ExitCode};
use crate::verify::expect;
use std::path::Path;

pub(crate) fn run_build(args: BuildArgs, argv: Vec<String>) -> Result<ExitCode, Error> {
    let begin = begin(&args, argv, || build_request(&args))?;
    let (request, built) = match start(begin, |id| eprintln!("run {id}"))? {
        (request, Stage::Built(built)) => (request, built),
        (_, stopped) => return Ok(said(stopped)),
    };
    exit::keep_until_exit(built.planner.clone());
    built.events.clear();
    print_summary(&built.summary, &built.settings.options.out_dir);
    if let Some(dir) = &request.outputs.provenance {
        eprintln!("{}", crate::build::provenance::write_for(&built, dir)?);
    }
    let ending = built.finish()?;
    if ending != Ending::Built {
        return Ok(ended(&built, ending, "build"));
    }
    if let Some(file) = &request.outputs.expect
        && !expect::print(&expect::check(file, &built.summary.finals)?)
    {
        return Ok(ExitCode::NotReproducible);
    }
    Ok(ExitCode::Success)
}

/// A run that stopped before any job, said; its exit code.
pub(crate) fn said(stage: Stage) -> ExitCode {
    match stage {
        Stage::Cycle(report) => {
            print!("{}", crate::resolve::report::text(&report));
            eprintln!(
                "error: a dependency cycle stops the build before it starts; see the ways out above"
            );
            ExitCode::Cycle
        }
        Stage::Interrupted => {
            eprintln!("interrupted before any job started");
            ExitCode::Interrupted
        }
        Stage::Built(_) => unreachable!("a run that built is not stopped"),
    }
}

/// A run that did not end built, said; its exit code. `command` resumes it.
pub(crate) fn ended(built: &BuiltRun, ending: Ending, command: &str) -> ExitCode {
    match ending {
        Ending::Interrupted => eprintln!(
            "interrupted: continue with `rewheel {command} --resume {}`",
            built.run_id
        ),
        Ending::OutOfSpace => eprint!("{}", report::out_of_space(&built.summary, &built.run_id)),
        _ => {}
    }
    ending.code()
}

pub(crate) fn print_summary(summary: &Summary, out: &Path) {
    print!("{}", report::text(summary, out));
}
