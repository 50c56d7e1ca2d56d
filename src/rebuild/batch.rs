//! Several published wheels rebuilt one after another (`rebuild FILE` with a requirements file
//! or lock naming them by hash), each with its own search, report and recipe file.

use crate::build::run::BuildSettings;
use crate::rebuild::report::{Ending, ending, text};
use crate::rebuild::search::{RebuildSettings, python_of, rebuild, write_recipe};
use std::path::{Path, PathBuf};

/// Rebuild each wheel; `print` hears each report as it is ready. `recipe` names the first
/// wheel's recipe file, the next ones get `FILE.2.toml`, `FILE.3.toml`, …
pub fn rebuild_all(
    wheels: &[PathBuf],
    build: &BuildSettings,
    attempts: usize,
    scratch: &Path,
    recipe: Option<&Path>,
    mut print: impl FnMut(&str),
) -> anyhow::Result<Vec<Ending>> {
    let mut endings = Vec::new();
    for (n, wheel) in wheels.iter().enumerate() {
        let mut build = build.clone();
        if build.resolve.pythons.is_empty() && build.resolve.matrix.is_none() {
            build.resolve.pythons.push(python_of(wheel)?);
        }
        let settings = RebuildSettings {
            wheel: wheel.clone(),
            build,
            attempts,
            scratch: scratch.join(n.to_string()),
        };
        let found = rebuild(&settings)?;
        let name = wheel.file_name().unwrap_or_default().to_string_lossy();
        let mut out = text(&found, &name);
        if let Some(file) = recipe {
            let file = match n {
                0 => file.to_path_buf(),
                n => file.with_extension(format!("{}.toml", n + 1)),
            };
            if write_recipe(&found, &settings.build, &file)? {
                out.push_str(&format!("recipe written to {}\n", file.display()));
            }
        }
        print(&out);
        endings.push(ending(&found));
    }
    if endings.len() > 1 {
        let reproduced = endings.iter().filter(|e| **e == Ending::Reproduced).count();
        print(&format!(
            "{reproduced} of {} wheels reproduced bit for bit\n",
            endings.len()
        ));
    }
    Ok(endings)
}
