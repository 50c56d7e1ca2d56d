//! `rewheel rebuild`: reproduce a published wheel from its sdist, recipe inferred.

use super::args::RebuildArgs;
use crate::exit;
use crate::rebuild::{Outcome, RebuildSettings, describe, rebuild};
use anyhow::Context;
use std::path::PathBuf;

pub(crate) fn run(mut args: RebuildArgs) -> anyhow::Result<u8> {
    let mut build = super::settings::build(&args.build)?;
    let scratch = build.store_root.join("rebuild").join(format!(
        "{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    ));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let wheel = obtain(&args.target, &scratch)?;
    // Without a cell, the wheel's own interpreter tag names one (cp311 → 3.11).
    if build.resolve.pythons.is_empty() && build.resolve.matrix.is_none() {
        let tag = wheel
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('-').nth(2))
            .unwrap_or_default()
            .to_string();
        match tag.strip_prefix("cp").filter(|v| v.len() >= 2) {
            Some(v) => build
                .resolve
                .pythons
                .push(format!("{}.{}", &v[..1], &v[1..])),
            None => anyhow::bail!(
                "the wheel's tag `{tag}` names no interpreter\nhint: give --python X.Y or --matrix FILE"
            ),
        }
    }
    args.build.input.specs.clear();
    let settings = RebuildSettings {
        wheel: wheel.clone(),
        build,
        attempts: args.attempts,
        scratch,
    };
    let found = rebuild(&settings)?;
    for reason in crate::rebuild::infer::guess(&found.observed).reasons {
        println!("inferred: {reason}");
    }
    let cutoff = found.exclude_newer.as_ref();
    let (chosen, reproduced) = match (found.reproduced(), found.closest()) {
        (Some(a), _) => {
            println!(
                "reproduced {} bit for bit with recipe: {}",
                wheel.file_name().unwrap_or_default().to_string_lossy(),
                describe(&a.guess, cutoff)
            );
            (Some(a), true)
        }
        (None, Some(a)) => {
            println!(
                "not reproduced in {} attempts; the closest: {}",
                found.attempts.len(),
                describe(&a.guess, cutoff)
            );
            if let Outcome::Differs(pair) = &a.outcome {
                let report = crate::verify::compare::CompareReport {
                    schema_version: crate::verify::compare::SCHEMA_VERSION,
                    a: "published".into(),
                    b: "rebuilt".into(),
                    pairs: vec![(**pair).clone()],
                    only_in_a: Vec::new(),
                    only_in_b: Vec::new(),
                };
                print!("{}", crate::verify::report::text(&report));
            }
            (Some(a), false)
        }
        (None, None) => {
            for (n, a) in found.attempts.iter().enumerate() {
                if let Outcome::Failed(why) = &a.outcome {
                    println!("attempt {}: did not build: {why}", n + 1);
                }
            }
            (None, false)
        }
    };
    if let (Some(file), Some(a)) = (&args.recipe, chosen) {
        let resolved_cell = settings_cell(&settings)?;
        crate::rebuild::recipe_file::write(
            file,
            &found.observed.name,
            &found.observed.version,
            &a.guess,
            &resolved_cell,
            cutoff,
            reproduced,
        )
        .with_context(|| format!("cannot write the recipe to {}", file.display()))?;
        println!("recipe written to {}", file.display());
    }
    Ok(match (chosen, reproduced) {
        (_, true) => exit::SUCCESS,
        (Some(_), false) => exit::NOT_REPRODUCIBLE,
        (None, _) => exit::BUILD_FAILED,
    })
}

/// The cell the rebuild ran in, for the recipe file.
fn settings_cell(settings: &RebuildSettings) -> anyhow::Result<crate::cell::Cell> {
    let resolve = &settings.build.resolve;
    if let Some(matrix) = &resolve.matrix {
        let m = crate::matrix::Matrix::load(matrix)?;
        if let Some(cell) = m.select(resolve.cells.as_deref())?.into_iter().next() {
            return Ok(cell);
        }
    }
    let python = resolve.pythons.first().context("no cell")?;
    Ok(crate::cell::Cell::for_python(python)?)
}

/// The wheel on this host: a file as is, a URL downloaded into `scratch`.
fn obtain(target: &str, scratch: &std::path::Path) -> anyhow::Result<PathBuf> {
    if !(target.starts_with("http://") || target.starts_with("https://")) {
        let path = PathBuf::from(target);
        anyhow::ensure!(path.is_file(), "{target}: no such wheel file");
        return Ok(path);
    }
    let name = target
        .split(['#', '?'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| n.ends_with(".whl") && !n.contains(".."))
        .with_context(|| format!("{target}: the URL does not end in a wheel's filename"))?;
    let response = crate::http::Http::new(4).get(target, "*/*")?;
    let path = scratch.join(name);
    crate::fsutil::write_atomic(&path, &response.body)?;
    Ok(path)
}
