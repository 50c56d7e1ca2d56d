//! The search: each candidate recipe is a build run of the wheel's sdist, compared bit for
//! bit with the published wheel; the builder's time zone is tried when times are off by hours.

use crate::build::record::{BuildRequest, Outputs, RunSettings};
use crate::build::run::BuildSettings;
use crate::build::run::{self, RunRef, Stage};
use crate::digest::Sha256;
use crate::rebuild::infer::{self, Guess, Observed, frozen};
use crate::rebuild::recipe_file;
use crate::verify::compare::{Clues, PairReport, Side, compare_sides};
use anyhow::{Context, bail};
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
    /// Jobs of the attempt's build: the wheel and its build environment's closure (its runtime
    /// dependencies are not inputs of its bytes, so they are not built).
    pub jobs: usize,
    /// The job that made the wheel, for a statement of the rebuild.
    pub made: Option<Made>,
}

/// The job that made an attempt's wheel, its run, and its image's Debian packages.
pub struct Made {
    pub job: crate::build::executor::FinalJob,
    pub run_id: crate::ids::RunId,
    pub packages: Vec<crate::build::images::DebPackage>,
}

/// What one attempt gave.
struct Tried {
    outcome: Outcome,
    rebuilt: Option<PathBuf>,
    jobs: usize,
    made: Option<Made>,
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

/// Whether the entries that differ in content are all the backend's metadata files (RECORD
/// follows them).
fn only_metadata_differs(pair: &PairReport) -> bool {
    use crate::verify::wheel_diff::Verdict;
    let Verdict::ContentDiffers {
        added,
        removed,
        changed,
        ..
    } = &pair.verdict
    else {
        return false;
    };
    let metadata = |e: &str| {
        e.split_once(".dist-info/")
            .is_some_and(|(_, f)| matches!(f, "METADATA" | "WHEEL" | "RECORD" | "entry_points.txt"))
    };
    !changed.is_empty()
        && changed.iter().all(|c| metadata(&c.entry))
        && added.iter().chain(removed).all(|e| metadata(e))
}

/// The cutoff for build dependencies: when the wheel was uploaded, or its sdist if that came
/// later (an sdist uploaded seconds after its wheel must stay within reach).
fn upload_time(settings: &BuildSettings, wheel: &Path, observed: &Observed) -> Option<Timestamp> {
    let index = crate::resolve::index::Index::new(settings.resolve.index.config(None)).ok()?;
    let name: crate::names::PackageName = observed.name.parse().ok()?;
    let files = index.project(&name).ok()?;
    let filename = wheel.file_name()?.to_string_lossy().into_owned();
    let wheel_time = files
        .iter()
        .find(|f| f.filename == filename)
        .and_then(|f| f.upload_time)?;
    let sdist_time = files
        .iter()
        .filter(|f| {
            crate::names::parse_sdist_filename(&f.filename, &name)
                .is_some_and(|s| s.version.to_string() == observed.version)
        })
        .filter_map(|f| f.upload_time)
        .max();
    Some(sdist_time.map_or(wheel_time, |s| s.max(wheel_time)))
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
        .or_else(|| upload_time(&settings.build, &settings.wheel, &observed));
    std::fs::create_dir_all(&settings.scratch)
        .with_context(|| format!("cannot create {}", settings.scratch.display()))?;
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut queue: std::collections::VecDeque<Guess> =
        infer::candidates(&first, settings.attempts).into();
    let mut n = 0;
    let mut best: Option<usize> = None;
    let mut switches: Option<Vec<(&str, String)>> = None;
    while let Some(guess) = queue.pop_front() {
        if n >= settings.attempts.max(1) {
            break;
        }
        eprintln!(
            "attempt {}: {}",
            n + 1,
            describe(&guess, exclude_newer.as_ref())
        );
        let Tried {
            outcome,
            rebuilt,
            jobs,
            made,
        } = attempt(settings, &observed, &guess, exclude_newer, n)?;
        n += 1;
        let done = matches!(outcome, Outcome::Identical);
        // Closer than every attempt before: what is left to find is around this one.
        if let Outcome::Differs(pair) = &outcome
            && best.is_none_or(|d| distance(pair) < d)
        {
            best = Some(distance(pair));
            for next in infer::neighbours(&guess, pair.verdict.archive())
                .into_iter()
                .rev()
            {
                next_up(&mut queue, &attempts, next, true);
            }
        }
        // Times off by whole hours: the builder's time zone leaked; try it next.
        if let (Outcome::Differs(_), Some(rebuilt), None) = (&outcome, &rebuilt, &guess.timezone)
            && let Some(zone) = infer::zone_for(&infer::time_offsets(&settings.wheel, rebuilt))
        {
            let zoned = Guess {
                timezone: Some(zone),
                ..guess.clone()
            };
            next_up(&mut queue, &attempts, zoned, false);
        }
        // The generator's pin conflicts with the sdist's own range: the maintainer built with
        // the backend's command line; its pins stand in for the sdist's requirements next.
        if let Outcome::Failed(why) = &outcome
            && why.contains("conflicts with the constraint")
            && !guess.pins.is_empty()
            && !guess.pins_over_sdist
        {
            let over = Guess {
                pins_over_sdist: true,
                ..guess.clone()
            };
            next_up(&mut queue, &attempts, over, false);
        }
        // The build failed on the cell's interpreter, newer than the wheel: the maintainer's
        // was of the wheel's day (setuptools 36 cannot run on 3.10 and later). Only for a bare
        // `--python` cell: a matrix's cell is the user's choice.
        if let Outcome::Failed(why) = &outcome
            && why.contains("did not build")
            && guess.python.is_none()
            && let Some(older) = of_its_day(&settings.build, exclude_newer)
        {
            let mut next = guess.clone();
            next.reasons.push(format!(
                "the build failed on the cell's Python, newer than the wheel: Python {older}, the newest released before its upload"
            ));
            next.python = Some(older);
            next_up(&mut queue, &attempts, next, false);
        }
        // setuptools older than 40.8 has no PEP 517 hooks: the maintainer ran setup.py, as
        // pip then did; so does the next attempt.
        if let Outcome::Failed(why) = &outcome
            && why.contains("setuptools>=40.8.0")
            && guess.setup_py.is_none()
        {
            let legacy = Guess {
                setup_py: Some(Vec::new()),
                ..guess.clone()
            };
            next_up(&mut queue, &attempts, legacy, false);
        }
        // Tagged py2.py3 by hand (`setup.py bdist_wheel --universal`): that explains the
        // WHEEL file, so it comes before an older toolchain.
        let universal = match (&outcome, &rebuilt) {
            (Outcome::Differs(_), Some(rebuilt)) => {
                infer::universal_by_hand(&observed, rebuilt, &guess)
            }
            _ => None,
        };
        // Only the metadata the backend writes differs: the maintainer's backend was older
        // than the index's on the day. An older setuptools next, its release before that
        // date (what wrote the metadata), the rest of the toolchain as of the day: a cutoff
        // for all would lose the pins newer than it.
        if let Outcome::Differs(pair) = &outcome
            && universal.is_none()
            && only_metadata_differs(pair)
            && let Some(mut older) = infer::earlier_deps(&guess)
            && let Some(t) = exclude_newer
            && let Some(version) = release_before(
                &settings.build,
                "setuptools",
                earlier(t, older.deps_months_earlier),
            )
        {
            older.pins.retain(|p| !p.starts_with("setuptools=="));
            older.pins.push(format!("setuptools=={version}"));
            next_up(&mut queue, &attempts, older, false);
        }
        if let Some(universal) = universal {
            next_up(&mut queue, &attempts, universal, true);
        }
        // The metadata files' order is the publisher's filesystem's: list folders so next.
        if let (Outcome::Differs(pair), Some(rebuilt)) = (&outcome, &rebuilt)
            && pair
                .verdict
                .archive()
                .contains(&crate::verify::wheel_diff::ArchiveAspect::EntryOrder)
            && let Some(listed) = infer::listed_as_published(&settings.wheel, rebuilt, &guess)
        {
            next_up(&mut queue, &attempts, listed, true);
        }
        // Only metadata differs and a build script of the sdist reads a variable by name:
        // one tree publishing several distributions (typer and typer-slim) picks one by such
        // a switch. Set to the distribution published, each goes first, once.
        if let Outcome::Differs(pair) = &outcome
            && only_metadata_differs(pair)
            && guess.env.is_empty()
        {
            let switches =
                switches.get_or_insert_with(|| sdist_switches(&settings.build, &observed));
            for (script, switch) in switches.iter().rev() {
                if let Some(next) = infer::switched(&guess, &observed, switch, script) {
                    next_up(&mut queue, &attempts, next, true);
                }
            }
        }
        attempts.push(Attempt {
            guess,
            outcome,
            jobs,
            made,
        });
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

/// The variables the sdist's build scripts read by name (`infer::build_switches`), with the
/// script that reads each; the sdist is the index's, as the attempts built it.
fn sdist_switches(settings: &BuildSettings, observed: &Observed) -> Vec<(&'static str, String)> {
    let found = || -> Option<Vec<(&'static str, String)>> {
        let index = crate::resolve::index::Index::new(settings.resolve.index.config(None)).ok()?;
        let name: crate::names::PackageName = observed.name.parse().ok()?;
        let files = index.project(&name).ok()?;
        let sdist = files.iter().find(|f| {
            crate::names::parse_sdist_filename(&f.filename, &name)
                .is_some_and(|s| s.version.to_string() == observed.version)
        })?;
        let path = index.fetch(sdist).ok()?;
        let read =
            crate::resolve::archive::read_sdist(&path, crate::resolve::archive::Limits::default())
                .ok()?;
        let mut switches = Vec::new();
        for script in infer::BUILD_SCRIPTS {
            let Some(bytes) = read.get(script) else {
                continue;
            };
            for switch in infer::build_switches(&String::from_utf8_lossy(bytes)) {
                switches.push((*script, switch));
            }
        }
        // A handful at most: each is a build.
        switches.truncate(3);
        Some(switches)
    };
    found().unwrap_or_default()
}

/// The interpreter of the wheel's day this host has, older than the bare `--python` cell's.
fn of_its_day(settings: &BuildSettings, uploaded: Option<Timestamp>) -> Option<String> {
    let resolve = &settings.resolve;
    if resolve.matrix.is_some() {
        return None;
    }
    let current = crate::cell::Cell::for_python(resolve.pythons.first()?).ok()?;
    let release = current.python_version().release();
    infer::python_of_its_day(uploaded?, (release[0], release[1]), |major, minor| {
        crate::build::interpreter::find(major, minor, &settings.backend.python_paths).is_some()
    })
}

/// Try `guess` next, unless an attempt already did; `ahead` moves it to the front even when
/// it is queued already (what the closest attempt points at), else a queued one keeps its
/// place.
fn next_up(
    queue: &mut std::collections::VecDeque<Guess>,
    tried: &[Attempt],
    guess: Guess,
    ahead: bool,
) {
    if tried.iter().any(|a| a.guess == guess) || (!ahead && queue.contains(&guess)) {
        return;
    }
    queue.retain(|q| q != &guess);
    queue.push_front(guess);
}

/// The published wheel on this host, and where it came from as a statement names it for
/// someone else: the URL, or this host's absolute path.
pub fn obtain_with_source(target: &str, scratch: &Path) -> anyhow::Result<(PathBuf, String)> {
    let source = if target.contains("://") {
        target.to_string()
    } else {
        std::path::absolute(target).map_or_else(|_| target.to_string(), |p| p.display().to_string())
    };
    Ok((obtain(target, scratch)?, source))
}

/// The published wheel on this host: a file as is, a URL downloaded into `scratch`.
pub fn obtain(target: &str, scratch: &Path) -> anyhow::Result<PathBuf> {
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
    let download =
        crate::http::Http::new(4).download(target, scratch, crate::http::Cap::download())?;
    let path = scratch.join(name);
    download
        .file
        .persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The wheels a requirements file (or PEP 751 lock) names by hash: for each pinned package
/// with `--hash` values, the index's wheel files whose sha256 is one of them, fetched and
/// checked, each with the URL it came from. What `rebuild FILE` rebuilds.
pub fn wheels_named_by(
    file: &Path,
    build: &BuildSettings,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let reqs = crate::requirements::Requirements::read_wheel_hashes(file)?;
    let index =
        crate::resolve::index::Index::new(build.resolve.index.config(reqs.index_url.clone()))?;
    let mut wheels = Vec::new();
    for entry in reqs.requirements.iter().filter(|e| !e.hashes.is_empty()) {
        let files = index.project(&entry.requirement.name)?;
        let named: Vec<_> = files
            .iter()
            .filter(|f| {
                // A find-links folder lists no hashes: its files are hashed here.
                let listed = f.sha256.as_deref().and_then(|sha| Sha256::parse(sha).ok());
                let sha = listed.or_else(|| {
                    crate::resolve::index::local_path(&f.url)
                        .and_then(|p| crate::fsutil::sha256_file(&p).ok())
                });
                f.filename.ends_with(".whl") && sha.is_some_and(|h| entry.hashes.contains(&h))
            })
            .collect();
        if named.is_empty() {
            eprintln!(
                "{}: no wheel on the index has one of its hashes ({})",
                entry.requirement, entry.origin
            );
        }
        for f in named {
            wheels.push((index.fetch(f)?, f.url.clone()));
        }
    }
    anyhow::ensure!(
        !wheels.is_empty(),
        "{} names no wheel by hash\nhint: pin each package with --hash=sha256:… of the published wheel",
        file.display()
    );
    Ok(wheels)
}

/// The interpreter a wheel's tag names (`cp311` → `3.11`), for a rebuild given no cell.
pub fn python_of(wheel: &Path) -> anyhow::Result<String> {
    let tag = wheel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit('-').nth(2))
        .unwrap_or_default();
    match tag.strip_prefix("cp").filter(|v| v.len() >= 2) {
        Some(v) => Ok(format!("{}.{}", &v[..1], &v[1..])),
        None => bail!(
            "the wheel's tag `{tag}` names no interpreter\nhint: give --python X.Y or --matrix FILE"
        ),
    }
}

/// The cell a rebuild ran in, for its recipe file.
pub fn cell_of(build: &BuildSettings) -> anyhow::Result<crate::cell::Cell> {
    let resolve = &build.resolve;
    if let Some(matrix) = &resolve.matrix {
        let m = crate::matrix::Matrix::load(matrix)?;
        if let Some(cell) = m.select(resolve.cells.as_deref())?.into_iter().next() {
            return Ok(cell);
        }
    }
    let python = resolve.pythons.first().context("no cell")?;
    Ok(crate::cell::Cell::for_python(python)?)
}

/// Write the recipe that matched, or came closest, as a matrix file; false when no attempt
/// built.
pub fn write_recipe(found: &Rebuilt, build: &BuildSettings, file: &Path) -> anyhow::Result<bool> {
    let Some(a) = found.reproduced().or_else(|| found.closest()) else {
        return Ok(false);
    };
    // The shared build environment the run's settings gave the wheel's package, if any.
    let mut settings = crate::packages::PackageSettings::default();
    for path in &build.resolve.settings_files {
        settings.merge(crate::packages::PackageSettings::load(path)?)?;
    }
    let name: crate::names::PackageName = found.observed.name.parse()?;
    let shared = settings
        .get(&name)
        .map(|c| c.shared_env_for(&name).to_vec())
        .unwrap_or_default();
    recipe_file::write(
        file,
        (&found.observed.name, &found.observed.version),
        &a.guess,
        &match &a.guess.python {
            Some(python) => crate::cell::Cell::for_python(python)?,
            None => cell_of(build)?,
        },
        found.exclude_newer.as_ref(),
        found.reproduced().is_some(),
        &shared,
    )
    .with_context(|| format!("cannot write the recipe to {}", file.display()))?;
    Ok(true)
}

/// One line naming a recipe.
pub fn describe(guess: &Guess, exclude_newer: Option<&Timestamp>) -> String {
    let mut parts = Vec::new();
    if !guess.pins.is_empty() {
        parts.push(guess.pins.join(" "));
    }
    if guess.pins_over_sdist {
        parts.push("over the sdist's own build requirements".into());
    }
    if let Some(options) = &guess.setup_py {
        parts.push(
            format!("setup.py bdist_wheel {}", options.join(" "))
                .trim_end()
                .to_string(),
        );
    }
    parts.push(match guess.source_date_epoch {
        Some(t) => format!("SOURCE_DATE_EPOCH={t}"),
        None => "no SOURCE_DATE_EPOCH".into(),
    });
    parts.push(format!("umask {:03o}", guess.umask));
    if guess.sdist_times {
        parts.push("the sdist's file times".into());
    }
    if let Some(zone) = &guess.timezone {
        parts.push(format!("TZ={zone}"));
    }
    for (switch, value) in &guess.env {
        parts.push(format!("{switch}={value}"));
    }
    if let Some(order) = &guess.listing_order {
        parts.push(format!("folders listed in the order of {order}"));
    }
    if let Some(python) = &guess.python {
        parts.push(format!("Python {python}"));
    }
    if let Some(t) = guess.frozen_clock {
        parts.push(format!(
            "clock frozen at {}",
            frozen(t, guess.timezone.as_deref())
        ));
    }
    if let Some(path) = &guess.build_path {
        parts.push(format!("build path {path}"));
    }
    if let Some(t) = exclude_newer {
        parts.push(format!("build dependencies as of {t}"));
        if guess.deps_months_earlier > 0 {
            parts.push(format!(
                "setuptools as of {} months before",
                guess.deps_months_earlier
            ));
        }
    }
    parts.join(", ")
}

/// The newest final release of `name` the index had before `when`.
fn release_before(settings: &BuildSettings, name: &str, when: Timestamp) -> Option<String> {
    let index = crate::resolve::index::Index::new(settings.resolve.index.config(None)).ok()?;
    let name: crate::names::PackageName = name.parse().ok()?;
    index
        .project(&name)
        .ok()?
        .iter()
        .filter(|f| f.upload_time.is_some_and(|t| t < when) && !f.yanked)
        .filter_map(|f| {
            crate::names::parse_wheel_filename(&f.filename)
                .map(|(_, v)| v)
                .or_else(|| {
                    crate::names::parse_sdist_filename(&f.filename, &name).map(|s| s.version)
                })
        })
        .filter(|v| !v.any_prerelease())
        .max()
        .map(|v| v.to_string())
}

fn failed(why: String, jobs: usize) -> Tried {
    Tried {
        outcome: Outcome::Failed(why),
        rebuilt: None,
        jobs,
        made: None,
    }
}

/// One recipe, as a rebuild statement names it: built once and compared, no search.
pub fn rebuild_with(
    settings: &RebuildSettings,
    guess: Guess,
    exclude_newer: Option<Timestamp>,
) -> anyhow::Result<Rebuilt> {
    let observed = infer::observe(&settings.wheel)?;
    std::fs::create_dir_all(&settings.scratch)
        .with_context(|| format!("cannot create {}", settings.scratch.display()))?;
    let tried = attempt(settings, &observed, &guess, exclude_newer, 0)?;
    Ok(Rebuilt {
        observed,
        exclude_newer,
        attempts: vec![Attempt {
            guess,
            outcome: tried.outcome,
            jobs: tried.jobs,
            made: tried.made,
        }],
    })
}

/// `t` less `months` (of 30 days).
fn earlier(t: Timestamp, months: u32) -> Timestamp {
    t.checked_sub(jiff::SignedDuration::from_hours(
        24 * 30 * i64::from(months),
    ))
    .unwrap_or(t)
}

fn attempt(
    settings: &RebuildSettings,
    observed: &Observed,
    guess: &Guess,
    exclude_newer: Option<Timestamp>,
    n: usize,
) -> anyhow::Result<Tried> {
    let dir = settings.scratch.join(format!("attempt-{}", n + 1));
    std::fs::create_dir_all(&dir)?;
    let mut build = settings.build.clone();
    build.resolve.specs = vec![format!("{}=={}", observed.name, observed.version)];
    build.resolve.requirement_files.clear();
    build.resolve.no_deps = true;
    if !guess.pins.is_empty() {
        let pins = dir.join("constraints.txt");
        std::fs::write(&pins, guess.pins.join("\n") + "\n")?;
        build.resolve.build_constraint_files.push(pins);
    }
    build.resolve.index.exclude_newer = exclude_newer;
    if let Some(python) = &guess.python {
        build.resolve.pythons = vec![python.clone()];
    }
    build.options.settings.source_date_epoch = guess.source_date_epoch;
    build.options.settings.umask = guess.umask;
    build.options.settings.faketime = guess
        .frozen_clock
        .map(|t| frozen(t, guess.timezone.as_deref()));
    if let Some(zone) = &guess.timezone {
        build.options.settings.timezone = zone.clone();
    }
    build.options.out_dir = dir.join("wheels");
    if let Some(path) = &guess.build_path {
        build.backend.build_path = PathBuf::from(path);
    }
    // Per-package settings of the wheel's own package: the build tools keep theirs. Made as a
    // TOML table, not text: a statement's recipe is someone else's, and no value of it may
    // become another key (the loader then checks each value, as for any settings file).
    let strings =
        |items: &[String]| toml::Value::Array(items.iter().cloned().map(Into::into).collect());
    let mut own = toml::Table::new();
    if guess.sdist_times {
        own.insert("sdist-times".into(), true.into());
    }
    if let Some(pin) = infer::own_backend(guess, &observed.name) {
        own.insert("backend".into(), pin.into());
    }
    if guess.pins_over_sdist {
        own.insert("shared-env".into(), strings(&guess.pins));
    }
    if let Some(options) = &guess.setup_py {
        own.insert("setup-py".into(), strings(options));
    }
    if let Some(order) = &guess.listing_order {
        own.insert("listing-order".into(), order.clone().into());
    }
    if !guess.env.is_empty() {
        let env: toml::Table = guess
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        own.insert("env".into(), env.into());
    }
    let mut text = String::new();
    if !own.is_empty() {
        let packages = toml::Table::from_iter([(observed.name.clone(), own.into())]);
        let doc = toml::Table::from_iter([("packages".to_string(), packages.into())]);
        text.push_str(&toml::to_string(&doc)?);
    }
    text.push_str(infer::legacy_toolchain(guess));
    if !text.is_empty() {
        let file = dir.join("settings.toml");
        std::fs::write(&file, text)?;
        build.resolve.settings_files.push(file);
    }
    let argv = vec![format!(
        "rebuild {}-{} (attempt {})",
        observed.name,
        observed.version,
        n + 1
    )];
    // Recorded as a build of its own: an attempt resumes with `build --resume`.
    let document = RunSettings::Build(BuildRequest {
        build: build.clone(),
        outputs: Outputs::default(),
    })
    .document();
    let built = match run::build(build, RunRef::New { argv, document }, |_| {}) {
        Ok(Stage::Built(built)) => built,
        Ok(Stage::Cycle(_)) => return Ok(failed("a dependency cycle".into(), 0)),
        Ok(Stage::Interrupted) => return Err(crate::exit::Interrupted.into()),
        Err(err) => return Ok(failed(crate::exit::describe(&err), 0)),
    };
    built.events.clear();
    let jobs = built.summary.outcomes.len();
    let _ = built.finish();
    // The signal that stopped this attempt stops the search too.
    if built.summary.interrupted {
        return Err(crate::exit::Interrupted.into());
    }
    let wanted: crate::names::PackageName = observed.name.parse()?;
    // By version too: a self-hosting backend rebuilt with an older release of itself builds
    // that release first.
    let Some(ours) = built.summary.finals.iter().find(|f| {
        f.spec.name.parse::<crate::names::PackageName>().ok() == Some(wanted.clone())
            && f.spec.version == observed.version
    }) else {
        return Ok(failed(
            format!("{} did not build (see run {})", observed.name, built.run_id),
            jobs,
        ));
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
        ..Side::default()
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
    let outcome = if pair.reproducible() {
        Outcome::Identical
    } else {
        Outcome::Differs(Box::new(pair))
    };
    Ok(Tried {
        outcome,
        rebuilt: Some(ours.path.clone()),
        jobs,
        made: Some(Made {
            job: ours.clone(),
            run_id: built.run_id.clone(),
            packages: built.backend.image_packages(&ours.spec.cell.to_string()),
        }),
    })
}
