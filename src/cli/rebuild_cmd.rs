//! `rewheel rebuild`: reproduce published wheels from their sdists, recipes inferred.

use super::args::RebuildArgs;
use crate::build::plan::Rebuild;
use crate::rebuild::attest::check;
use crate::rebuild::batch::{Batch, rebuild_all, write_reports};
use crate::rebuild::report::exit_code;
use crate::rebuild::{obtain_with_source, wheels_named_by};
use crate::{errors::Error, exit::ExitCode};
use anyhow::Context;

pub(crate) fn run(args: RebuildArgs) -> Result<ExitCode, Error> {
    let build = super::settings::build(&args.build)?;
    let scratch = build.store_root.join("rebuild").join(format!(
        "{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    ));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    // A statement someone published: its recipe built once, its verdict checked.
    if args.target.ends_with(".json") {
        let checked = check(std::path::Path::new(&args.target), &build, &scratch)?;
        print!("{}", checked.text());
        return Ok(exit_code(&[checked.ending()]));
    }
    // A wheel (file or URL), or a requirements file / lock naming wheels by hash.
    let wheels = if args.target.ends_with(".whl") {
        vec![obtain_with_source(&args.target, &scratch)?]
    } else {
        wheels_named_by(std::path::Path::new(&args.target), &build)?
    };
    let batch = Batch {
        wheels: &wheels,
        build: &build,
        attempts: args.attempts,
        scratch: &scratch,
        recipe: args.recipe.as_deref(),
        parallel: args.parallel,
        again: !matches!(build.options.rebuild, Rebuild::Nothing),
        attest: args.attest.as_deref(),
    };
    let verdicts = rebuild_all(&batch, |text| print!("{text}"))?;
    write_reports(&verdicts, args.report.as_deref(), args.html.as_deref())?;
    let endings: Vec<_> = verdicts.iter().map(|v| v.ending()).collect();
    Ok(exit_code(&endings))
}
