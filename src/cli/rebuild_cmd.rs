//! `rewheel rebuild`: reproduce a published wheel from its sdist, recipe inferred.

use super::args::RebuildArgs;
use crate::exit;
use crate::rebuild::report::{Ending, ending, text};
use crate::rebuild::{RebuildSettings, obtain, python_of, rebuild, write_recipe};
use anyhow::Context;

pub(crate) fn run(args: RebuildArgs) -> anyhow::Result<u8> {
    let mut build = super::settings::build(&args.build)?;
    let scratch = build.store_root.join("rebuild").join(format!(
        "{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    ));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let wheel = obtain(&args.target, &scratch)?;
    if build.resolve.pythons.is_empty() && build.resolve.matrix.is_none() {
        build.resolve.pythons.push(python_of(&wheel)?);
    }
    let settings = RebuildSettings {
        wheel: wheel.clone(),
        build,
        attempts: args.attempts,
        scratch,
    };
    let found = rebuild(&settings)?;
    let name = wheel.file_name().unwrap_or_default().to_string_lossy();
    print!("{}", text(&found, &name));
    if let Some(file) = &args.recipe
        && write_recipe(&found, &settings.build, file)?
    {
        println!("recipe written to {}", file.display());
    }
    Ok(match ending(&found) {
        Ending::Reproduced => exit::SUCCESS,
        Ending::Differs => exit::NOT_REPRODUCIBLE,
        Ending::Failed => exit::BUILD_FAILED,
    })
}
