//! `rewheel rebuild`: reproduce published wheels from their sdists, recipes inferred.

use super::args::RebuildArgs;
use crate::rebuild::batch::rebuild_all;
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
    let endings = rebuild_all(
        &wheels,
        &build,
        args.attempts,
        &scratch,
        args.recipe.as_deref(),
        |text| print!("{text}"),
    )?;
    Ok(if endings.contains(&Ending::Failed) {
        ExitCode::BuildFailed
    } else if endings.iter().all(|e| *e == Ending::Reproduced) {
        ExitCode::Success
    } else {
        ExitCode::NotReproducible
    })
}
