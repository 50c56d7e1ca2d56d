//! `rewheel check`: the check stage (`verify::check_run`), new or resumed, and what it found.

use super::args::CheckArgs;
use super::build_cmd::{ended, print_summary, said};
use super::compare_cmd::emit_report;
use super::settings::begin;
use crate::verify::check_run::{self, CheckOutcome};
use crate::{errors::Error, exit::ExitCode};

pub(crate) fn run(args: CheckArgs, argv: Vec<String>) -> Result<ExitCode, Error> {
    let begin = begin(&args.build, argv, || super::settings::check(&args))?;
    Ok(match check_run::run(begin, |id| eprintln!("run {id}"))? {
        CheckOutcome::NotStarted(stage) => said(stage),
        CheckOutcome::FirstBuild(built, ending) => {
            let code = ended(&built, ending, "check");
            print_summary(&built.summary, &built.settings.options.out_dir);
            eprintln!("error: the first build did not succeed; nothing to check");
            code
        }
        CheckOutcome::Interrupted(run_id) => {
            eprintln!(
                "interrupted: the second builds stopped and their containers were removed; continue with `rewheel check --resume {run_id}`"
            );
            ExitCode::Interrupted
        }
        CheckOutcome::Checked(verdict) => {
            emit_report(&verdict.report, &args.report)?;
            if let Some(written) = verdict.remedies {
                let (n, file) = written?;
                let file = file.display();
                eprintln!("{n} verified remedies written to {file} (use with --settings)");
            }
            if verdict.unbuilt {
                eprintln!("error: not every wheel built on both sides; see the failures above");
            }
            if let Some(expectations) = &verdict.expectations {
                crate::verify::expect::print(expectations);
            }
            verdict.code
        }
    })
}
