//! `rewheel rebuild`: reproduce published wheels from their sdists, recipes inferred.

use super::args::RebuildArgs;
use crate::build::plan::Rebuild;
use crate::rebuild::batch::{Batch, html, rebuild_all, report};
use crate::rebuild::report::Ending;
use crate::rebuild::{obtain, wheels_named_by};
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
    // A wheel (file or URL), or a requirements file / lock naming wheels by hash.
    let wheels = if args.target.ends_with(".whl") {
        vec![obtain(&args.target, &scratch)?]
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
    };
    let verdicts = rebuild_all(&batch, |text| print!("{text}"))?;
    if let Some(file) = &args.report {
        let json = serde_json::to_string_pretty(&report(&verdicts)).context("the report")?;
        crate::fsutil::write_atomic(file, json.as_bytes())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    if let Some(file) = &args.html {
        crate::fsutil::write_atomic(file, html(&verdicts).as_bytes())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let endings: Vec<Ending> = verdicts.iter().map(|v| v.ending()).collect();
    Ok(if endings.contains(&Ending::Failed) {
        ExitCode::BuildFailed
    } else if endings.iter().all(|e| *e == Ending::Reproduced) {
        ExitCode::Success
    } else {
        ExitCode::NotReproducible
    })
}
