//! `check` as a stage: its first build (a new run, or a stored check resumed with the settings
//! it was recorded with), that build's ending, provenance, the second build and the comparison
//! (`check`), remedies and expectations, down to a typed outcome and its exit code. The
//! command line turns flags into a `CheckRequest` and prints what comes back.

use super::check::{CheckSettings, check, say_partial_first_build, write_verified};
use super::compare::CompareReport;
use super::expect::{self, Expectation};
use crate::build::plan::Rebuild;
use crate::build::record::{Begin, BuildRequest, ResumeError, RunSettings, Stored, anchor};
use crate::build::run::{self, BuiltRun, Ending, RunRef, Stage};
use crate::exit::{self, ExitCode};
use crate::ids::RunId;
use crate::store::RunStatus;
use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;

/// A `check` as it was asked.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// The first build; with `--independent`, one that takes nothing from other runs.
    pub first: BuildRequest,
    pub check: CheckSettings,
}

/// How a check ended.
pub enum CheckOutcome {
    /// The first build stopped before any job: a cycle, or a terminating signal.
    NotStarted(Stage),
    /// The first build ended, as `Ending` says, with no wheel to check.
    FirstBuild(Box<BuiltRun>, Ending),
    /// A terminating signal stopped the second builds: the run, recorded interrupted.
    Interrupted(RunId),
    Checked(Box<Verdict>),
}

/// What a check that built both sides found.
pub struct Verdict {
    pub run_id: RunId,
    pub report: CompareReport,
    /// How many verified remedies were written where, or why they could not be: the report
    /// is said either way.
    pub remedies: Option<anyhow::Result<(usize, PathBuf)>>,
    /// Some wheel did not build on both sides, which proves nothing about reproducibility.
    pub unbuilt: bool,
    /// What `--expect` found, when every wheel built on both sides.
    pub expectations: Option<Vec<Expectation>>,
    pub code: ExitCode,
}

/// Check a new request, or resume a stored check: its first build takes over the jobs the
/// run finished, and the second side is built again, so the report is the one an
/// uninterrupted check gives.
pub fn run(
    begin: Begin<CheckRequest>,
    on_run: impl FnOnce(&RunId),
) -> anyhow::Result<CheckOutcome> {
    // The command line the next step is made from: as given, or as the run was recorded.
    let argv: Vec<String>;
    let (request, run_ref) = match begin {
        Begin::New {
            argv: given,
            mut request,
        } => {
            argv = given.clone();
            if request.check.independent {
                request.first.build.options.rebuild = Rebuild::All;
            }
            let mut check = request.check.clone();
            check.remedies_file.iter_mut().for_each(anchor);
            let settings = RunSettings::Check {
                first: request.first.clone(),
                check: serde_json::to_value(check).expect("settings are plain data"),
            };
            let document = settings.document();
            (
                request,
                RunRef::New {
                    argv: given,
                    document,
                },
            )
        }
        Begin::Resume {
            store_root,
            id,
            outputs,
        } => {
            let stored = Stored::read(&store_root, &id)?;
            let (mut first, check) = match &stored.settings {
                RunSettings::Check { first, check } => (
                    first.clone(),
                    CheckSettings::deserialize(check).map_err(|e| stored.unreadable(e))?,
                ),
                RunSettings::Build(_) => {
                    let (was, wanted) = ("build", "check");
                    return Err(ResumeError::OtherCommand { id, was, wanted }.into());
                }
                RunSettings::SecondSide { of } => {
                    let of = of.clone();
                    return Err(ResumeError::SecondSide { id, of }.into());
                }
            };
            first.outputs = first.outputs.replaced_by(outputs);
            argv = stored.argv.clone();
            (CheckRequest { first, check }, RunRef::Resume(id))
        }
    };
    // Read before any build: a wrong file is said now, not after an hour of building.
    if let Some(file) = &request.first.outputs.expect {
        expect::check(file, &[])?;
    }
    let built = match run::build(request.first.build.clone(), run_ref, on_run)? {
        Stage::Built(built) => built,
        stopped => return Ok(CheckOutcome::NotStarted(stopped)),
    };
    exit::keep_until_exit(built.planner.clone());
    // A wheel that failed to build does not hide the others: they are checked, and the exit
    // code still says the build failed.
    let first_failed = match built.finish()? {
        Ending::Built => false,
        Ending::BuildFailed if !built.summary.finals.is_empty() => {
            say_partial_first_build(&built);
            true
        }
        ending => return Ok(CheckOutcome::FirstBuild(built, ending)),
    };
    if let Some(dir) = &request.first.outputs.provenance {
        eprintln!("{}", crate::build::provenance::write_for(&built, dir)?);
    }
    let checked = check(&built, &request.check)?;
    if *built.interrupt.borrow() {
        // The run's status says the check is unfinished: `runs list` shows it to resume.
        built
            .store
            .finish_run(&built.run_id, RunStatus::Interrupted)?;
        return Ok(CheckOutcome::Interrupted(built.run_id.clone()));
    }
    let remedies = request.check.remedies_file.as_ref().map(|file| {
        write_verified(&checked.report, file, &built.run_id)
            .map(|n| (n, file.clone()))
            .with_context(|| format!("cannot write remedies to {}", file.display()))
    });
    let mut report = checked.report;
    report.next = super::next::next_step(&report, &request.check, &argv);
    let unbuilt = first_failed || checked.second_failures > 0;
    let expectations = match &request.first.outputs.expect {
        Some(file) if !unbuilt => Some(expect::check(file, &built.summary.finals)?),
        _ => None,
    };
    let expected = expectations
        .iter()
        .flatten()
        .all(|e| e.status != expect::MISMATCH);
    let code = if unbuilt {
        ExitCode::BuildFailed
    } else if report.all_reproducible() && expected {
        ExitCode::Success
    } else {
        ExitCode::NotReproducible
    };
    Ok(CheckOutcome::Checked(Box::new(Verdict {
        run_id: built.run_id.clone(),
        report,
        remedies,
        unbuilt,
        expectations,
        code,
    })))
}
