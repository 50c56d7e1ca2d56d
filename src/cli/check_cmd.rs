//! `rewheel check`: build everything, build it again under variations, compare, explain.

use super::args::CheckArgs;
use super::build_cmd::{conclude, print_summary, start};
use super::compare_cmd::emit_report;
use crate::exit;
use crate::verify::check::{CheckSettings, check};
use anyhow::Context;

impl CheckArgs {
    /// The first build: it may reuse finished jobs, unless both sides must be independent.
    pub(crate) fn first_side(&self) -> super::args::BuildArgs {
        let mut build = self.build.clone();
        if self.independent {
            build.rebuild = Some(vec![":all:".into()]);
        }
        build
    }
}

pub(crate) fn run(args: CheckArgs, argv: Vec<String>) -> anyhow::Result<u8> {
    let settings = CheckSettings {
        vary: args.vary.0.clone(),
        independent: args.independent,
        find_culprit: args.find_culprit,
        remedies: args.remedies.is_some(),
    };
    let built = match start(args.first_side(), argv)? {
        Ok(built) => built,
        Err(code) => return Ok(code),
    };
    crate::exit::keep_until_exit(built.planner.clone());
    // A wheel that failed to build does not hide the others: they are checked, and the exit
    // code still says the build failed.
    let first_failed = match conclude(&built)? {
        None => false,
        Some(exit::BUILD_FAILED) if !built.summary.finals.is_empty() => {
            crate::verify::check::say_partial_first_build(&built);
            true
        }
        Some(code) => {
            print_summary(&built.summary, &built.settings.options.out_dir);
            eprintln!("error: the first build did not succeed; nothing to check");
            return Ok(code);
        }
    };
    super::build_cmd::write_provenance(&built, args.build.provenance.as_deref())?;
    let checked = check(&built, &settings)?;
    if *built.interrupt.borrow() {
        eprintln!("interrupted: the second builds stopped and their containers were removed");
        return Ok(exit::INTERRUPTED);
    }
    emit_report(&checked.report, &args.report)?;
    if let Some(file) = args.remedies.as_ref().filter(|f| !f.as_os_str().is_empty()) {
        let n = crate::verify::check::write_verified(&checked.report, file, &built.run_id)
            .with_context(|| format!("cannot write remedies to {}", file.display()))?;
        eprintln!(
            "{n} verified remedies written to {} (use with --settings)",
            file.display()
        );
    }
    // A wheel that did not build on both sides proves nothing about reproducibility.
    if first_failed || checked.second_failures > 0 {
        eprintln!("error: not every wheel built on both sides; see the failures above");
        return Ok(exit::BUILD_FAILED);
    }
    let mut ok = checked.report.all_reproducible();
    if let Some(file) = &args.build.expect {
        ok &= crate::verify::expect::print(&crate::verify::expect::check(
            file,
            &built.summary.finals,
        )?);
    }
    Ok(if ok {
        exit::SUCCESS
    } else {
        exit::NOT_REPRODUCIBLE
    })
}
