//! Rebuilding a wheel someone else published: read what the wheel says about its build
//! (`infer`), build its sdist with that recipe, compare bit for bit, and search a small,
//! bounded set of recipes around the first guess until one matches or the set is spent. The
//! recipe that matched (or came closest) is written as a matrix file `build`/`check` take.

pub mod infer;
pub mod recipe_file;

use crate::build::run::BuildSettings;
use crate::build::run::{self, RunRef, Stage};
use crate::verify::compare::{Clues, PairReport, Side, compare_sides};
use anyhow::{Context, bail};
use infer::{Guess, Observed};
use jiff::Timestamp;
use std::path::{Path, PathBuf};

/// What to rebuild and how hard to try.
pub struct RebuildSettings {
    /// The published wheel, on this host.
    pub wheel: PathBuf,
    /// Index, backend, store and cells as for `build`; specs and requirement files are
    /// replaced by the wheel's own `name==version`.
    pub build: BuildSettings,
    /// Recipes tried at most.
    pub attempts: usize,
    /// Where attempts keep their constraints and wheels.
    pub scratch: PathBuf,
}

/// One recipe tried.
pub struct Attempt {
    pub guess: Guess,
    pub outcome: Outcome,
}

pub enum Outcome {
    Identical,
    /// Built, and differs from the published wheel as the comparison says.
    Differs(Box<PairReport>),
    /// Did not build; why.
    Failed(String),
}

/// What `rebuild` found.
pub struct Rebuilt {
    pub observed: Observed,
    /// The cutoff used for build dependencies not pinned: the wheel's upload time.
    pub exclude_newer: Option<Timestamp>,
    pub attempts: Vec<Attempt>,
}

impl Rebuilt {
    /// The attempt that reproduced the wheel bit for bit.
    pub fn reproduced(&self) -> Option<&Attempt> {
        self.attempts
            .iter()
            .find(|a| matches!(a.outcome, Outcome::Identical))
    }

    /// The attempt with the fewest differences, when none matched.
    pub fn closest(&self) -> Option<&Attempt> {
        self.attempts
            .iter()
            .filter_map(|a| match &a.outcome {
                Outcome::Differs(pair) => Some((distance(pair), a)),
                _ => None,
            })
            .min_by_key(|(d, _)| *d)
            .map(|(_, a)| a)
    }
}

/// How far a rebuild is from the published wheel: content differences outweigh archive ones.
fn distance(pair: &PairReport) -> usize {
    use crate::verify::wheel_diff::Verdict;
    match &pair.verdict {
        Verdict::Identical => 0,
        Verdict::SameContent { archive } => archive.len(),
        Verdict::ContentDiffers {
            added,
            removed,
            changed,
            ..
        } => 100 + 10 * (added.len() + removed.len()) + changed.len(),
    }
}

/// The upload time the index gives for this file, and whether its hash is the index's.
fn upload_time(settings: &BuildSettings, wheel: &Path, name: &str) -> Option<Timestamp> {
    let index = crate::resolve::index::Index::new(settings.resolve.index.config(None)).ok()?;
    let name: crate::names::PackageName = name.parse().ok()?;
    let files = index.project(&name).ok()?;
    let filename = wheel.file_name()?.to_string_lossy().into_owned();
    files
        .iter()
        .find(|f| f.filename == filename)
        .and_then(|f| f.upload_time)
}

/// Build the wheel's sdist with each candidate recipe until one matches.
pub fn rebuild(settings: &RebuildSettings) -> anyhow::Result<Rebuilt> {
    let observed = infer::observe(&settings.wheel)?;
    let first = infer::guess(&observed);
    let exclude_newer = settings
        .build
        .resolve
        .index
        .exclude_newer
        .or_else(|| upload_time(&settings.build, &settings.wheel, &observed.name));
    std::fs::create_dir_all(&settings.scratch)
        .with_context(|| format!("cannot create {}", settings.scratch.display()))?;
    let mut attempts = Vec::new();
    for (n, guess) in infer::candidates(&first, settings.attempts)
        .into_iter()
        .enumerate()
    {
        eprintln!(
            "attempt {}: {}",
            n + 1,
            describe(&guess, exclude_newer.as_ref())
        );
        let outcome = attempt(settings, &observed, &guess, exclude_newer, n)?;
        let done = matches!(outcome, Outcome::Identical);
        attempts.push(Attempt { guess, outcome });
        if done {
            break;
        }
    }
    Ok(Rebuilt {
        observed,
        exclude_newer,
        attempts,
    })
}

/// One line naming a recipe.
pub fn describe(guess: &Guess, exclude_newer: Option<&Timestamp>) -> String {
    let mut parts = Vec::new();
    if !guess.pins.is_empty() {
        parts.push(guess.pins.join(" "));
    }
    parts.push(match guess.source_date_epoch {
        Some(t) => format!("SOURCE_DATE_EPOCH={t}"),
        None => "no SOURCE_DATE_EPOCH".into(),
    });
    parts.push(format!("umask {:03o}", guess.umask));
    if let Some(path) = &guess.build_path {
        parts.push(format!("build path {path}"));
    }
    if let Some(t) = exclude_newer {
        parts.push(format!("build dependencies as of {t}"));
    }
    parts.join(", ")
}

fn attempt(
    settings: &RebuildSettings,
    observed: &Observed,
    guess: &Guess,
    exclude_newer: Option<Timestamp>,
    n: usize,
) -> anyhow::Result<Outcome> {
    let dir = settings.scratch.join(format!("attempt-{}", n + 1));
    std::fs::create_dir_all(&dir)?;
    let mut build = settings.build.clone();
    build.resolve.specs = vec![format!("{}=={}", observed.name, observed.version)];
    build.resolve.requirement_files.clear();
    if !guess.pins.is_empty() {
        let pins = dir.join("constraints.txt");
        std::fs::write(&pins, guess.pins.join("\n") + "\n")?;
        build.resolve.build_constraint_files.push(pins);
    }
    build.resolve.index.exclude_newer = exclude_newer;
    build.options.settings.source_date_epoch = guess.source_date_epoch;
    build.options.settings.umask = guess.umask;
    build.options.out_dir = dir.join("wheels");
    if let Some(path) = &guess.build_path {
        build.backend.build_path = PathBuf::from(path);
    }
    let argv = vec![format!(
        "rebuild {}-{} (attempt {})",
        observed.name,
        observed.version,
        n + 1
    )];
    let built = match run::build(build, RunRef::New(argv), |_| {}) {
        Ok(Stage::Built(built)) => built,
        Ok(Stage::Cycle(_)) => return Ok(Outcome::Failed("a dependency cycle".into())),
        Ok(Stage::Interrupted) => bail!("interrupted"),
        Err(err) => return Ok(Outcome::Failed(crate::exit::describe(&err))),
    };
    built.events.clear();
    let _ = built.finish();
    let wanted: crate::names::PackageName = observed.name.parse()?;
    let Some(ours) =
        built.summary.finals.iter().find(|f| {
            f.spec.name.parse::<crate::names::PackageName>().ok() == Some(wanted.clone())
        })
    else {
        return Ok(Outcome::Failed(format!(
            "{} did not build (see run {})",
            observed.name, built.run_id
        )));
    };
    let single = |label: &str, path: &Path| Side {
        label: label.to_string(),
        wheels: [(
            (
                String::new(),
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            ),
            path.to_path_buf(),
        )]
        .into(),
    };
    let report = compare_sides(
        &single("published", &settings.wheel),
        &single(&format!("rebuilt (run {})", built.run_id), &ours.path),
        &Clues::default(),
    )?;
    let pair = report
        .pairs
        .into_iter()
        .next()
        .context("the comparison named no pair")?;
    Ok(if pair.reproducible() {
        Outcome::Identical
    } else {
        Outcome::Differs(Box::new(pair))
    })
}
