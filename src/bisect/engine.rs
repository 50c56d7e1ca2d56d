//! The bisection engine: probes (each a real run of rewheel itself, remembered for the rest of
//! the search), and the searches over upload dates and over lock differences. It prints what it
//! tries as it goes; the command line turns arguments into `Settings` and keeps the record.

use super::search::{first_bad, probe_bound};
use crate::digest::Sha256;
use crate::exit::ExitCode;
use crate::names::{PackageName, parse_sdist_filename};
use crate::requirements::Requirements;
use crate::resolve::index::{Index, IndexConfig};
use crate::resolve::session::IndexSettings;
use anyhow::{Context, bail};
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// A bisection, as plain settings: arguments become these once, at the edge.
pub struct Settings {
    /// `name==version` (dates) or a package name in both locks (locks).
    pub target: String,
    pub until: Until,
    /// `--python`/`--matrix`/`--cells` arguments every probe gets.
    pub cell_args: Vec<String>,
    /// The index arguments every probe gets (each probe adds its own `--exclude-newer`).
    pub index_args: Vec<String>,
    /// The index itself, for listing uploads between the dates.
    pub index: IndexConfig,
    /// Passed through to every probe (`-- --backend local …`).
    pub probe_args: Vec<String>,
    /// List the candidates and stop.
    pub dry_run: bool,
    /// The run store every build probe shares, so that a probe reuses every job an earlier
    /// probe (or an earlier run) finished with the same inputs.
    pub store: PathBuf,
}

/// The `--matrix`/`--cells`/`--python` arguments that select the bisected cell in every probe.
pub fn probe_cell_args(
    matrix: Option<&Path>,
    cell: Option<&str>,
    python: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(matrix) = matrix {
        out.extend(["--matrix".into(), matrix.display().to_string()]);
        if let Some(cell) = cell {
            out.extend(["--cells".into(), cell.to_string()]);
        }
    } else if let Some(python) = cell.and_then(python_of_cell) {
        out.extend(["--python".into(), python]);
    }
    if let Some(python) = python {
        out.extend(["--python".into(), python.to_string()]);
    }
    out
}

/// The index arguments every probe gets (each probe adds its own `--exclude-newer`).
pub fn probe_index_args(index: &IndexSettings) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(url) = &index.index_url {
        out.extend(["--index-url".into(), url.clone()]);
    }
    for dir in &index.find_links {
        out.extend(["--find-links".into(), dir.display().to_string()]);
    }
    if index.no_index {
        out.push("--no-index".into());
    }
    if index.offline {
        out.push("--offline".into());
    }
    out.extend(["--cache-dir".into(), index.cache_dir.display().to_string()]);
    out.extend(["--retries".into(), index.attempts.to_string()]);
    out.extend([
        "--max-sdist-size".into(),
        index.limits.max_unpacked.to_string(),
    ]);
    out
}

#[derive(Clone, Debug)]
pub enum Until {
    Resolves,
    Builds,
    Reproducible,
    Matches(Sha256),
}

pub fn parse_until(s: &str) -> Result<Until, String> {
    match s {
        "resolves" => Ok(Until::Resolves),
        "builds" => Ok(Until::Builds),
        "reproducible" => Ok(Until::Reproducible),
        _ => match s
            .strip_prefix("matches=")
            .map(|sha| Sha256::parse(&sha.to_ascii_lowercase()))
        {
            Some(Ok(sha)) => Ok(Until::Matches(sha)),
            _ => Err(format!(
                "`{s}`: use resolves, builds, reproducible or matches=SHA256"
            )),
        },
    }
}

/// One state of the world to probe.
#[derive(Clone)]
pub struct Probe {
    label: String,
    exclude_newer: Option<Timestamp>,
    /// Pins applied to the target and to every build environment.
    pins: Option<Vec<String>>,
}

pub struct Prober<'a> {
    settings: &'a Settings,
    work: PathBuf,
    count: usize,
    seen: HashMap<String, (bool, String)>,
    /// Every probe in the order it ran, for the record kept in the store.
    log: Vec<(String, bool)>,
}

impl<'a> Prober<'a> {
    pub fn new(settings: &'a Settings, work: PathBuf) -> Self {
        Self {
            settings,
            work,
            count: 0,
            seen: HashMap::new(),
            log: Vec::new(),
        }
    }

    /// Every probe in the order it ran: its state and whether it was bad.
    pub fn log(&self) -> &[(String, bool)] {
        &self.log
    }

    /// Run one probe; returns whether it is bad, and its output (JSON for resolutions).
    fn run(&mut self, probe: &Probe, target: &str) -> anyhow::Result<(bool, String)> {
        if let Some(hit) = self.seen.get(&probe.label) {
            return Ok(hit.clone());
        }
        self.count += 1;
        let exe = std::env::current_exe().context("cannot find the rewheel binary")?;
        let mut command = Command::new(exe);
        let command_name = match self.settings.until {
            Until::Resolves => "resolve",
            Until::Builds | Until::Matches(_) => "build",
            Until::Reproducible => "check",
        };
        command
            .arg(command_name)
            .arg(target)
            .args(self.settings.cell_args.clone())
            .args(self.settings.index_args.clone());
        if let Some(ts) = probe.exclude_newer {
            command.arg("--exclude-newer").arg(ts.to_string());
        }
        if let Some(pins) = &probe.pins {
            let file = self.work.join(format!("pins-{}.txt", self.count));
            std::fs::write(&file, pins.join("\n") + "\n")?;
            command
                .arg("--build-constraints")
                .arg(&file)
                .arg("-c")
                .arg(&file);
        }
        let out_dir = self.work.join(format!("probe-{}", self.count));
        match self.settings.until {
            Until::Resolves => {
                command.args(["--format", "json", "--no-explain"]);
            }
            _ => {
                // A store named after `--` (for the probes alone) wins over the bisection's.
                let own_store = self
                    .settings
                    .probe_args
                    .iter()
                    .any(|a| a == "--store" || a.starts_with("--store="));
                if !own_store {
                    command.arg("--store").arg(&self.settings.store);
                }
                command
                    .arg("--out")
                    .arg(&out_dir)
                    .arg("--build-path")
                    .arg(self.work.join("build"));
            }
        }
        command.args(&self.settings.probe_args);
        let output = command.output().context("cannot run a probe")?;
        let code = output
            .status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(u8::MAX);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let bad = match (&self.settings.until, ExitCode::from_code(code)) {
            (Until::Resolves, Some(ExitCode::Success)) => false,
            (Until::Resolves, Some(ExitCode::Cycle)) => true,
            (Until::Builds, Some(ExitCode::Success)) => false,
            (Until::Builds, Some(ExitCode::BuildFailed | ExitCode::Cycle)) => true,
            (Until::Reproducible, Some(ExitCode::Success)) => false,
            (Until::Reproducible, Some(ExitCode::NotReproducible)) => true,
            (Until::Matches(want), Some(ExitCode::Success)) => {
                !wheel_hashes(&out_dir, target).iter().any(|h| h == want)
            }
            (Until::Matches(_), Some(ExitCode::BuildFailed | ExitCode::Cycle)) => true,
            _ => {
                // The probe's own error line (clap ends with a `--help` tip, not the error).
                let stderr = String::from_utf8_lossy(&output.stderr);
                let why = stderr
                    .lines()
                    .find(|l| l.starts_with("error"))
                    .or_else(|| stderr.lines().last())
                    .unwrap_or_default();
                bail!(
                    "probe {} failed (exit {code}): {why}\nhint: arguments after `--` go to every probe; the bisection already passes its own --cache-dir, --store, --out and --build-path",
                    probe.label
                )
            }
        };
        println!(
            "  probe {:>2}: {:<60} {}",
            self.count,
            probe.label,
            if bad { "bad" } else { "good" }
        );
        self.seen.insert(probe.label.clone(), (bad, stdout.clone()));
        self.log.push((probe.label.clone(), bad));
        Ok((bad, stdout))
    }
}

/// `cp37` or `cp311-bookworm` → `3.7` or `3.11`.
pub fn python_of_cell(id: &str) -> Option<String> {
    let digits = id.strip_prefix("cp")?.split('-').next()?;
    if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}.{}", &digits[..1], &digits[1..]))
}

/// sha256 of the target's wheels in a probe's output folder.
fn wheel_hashes(out: &Path, target: &str) -> Vec<Sha256> {
    let name = target
        .split(['=', '<', '>', '!', '~', ' '])
        .next()
        .unwrap_or(target)
        .to_ascii_lowercase()
        .replace('-', "_");
    let mut hashes = Vec::new();
    for cell in std::fs::read_dir(out).into_iter().flatten().flatten() {
        for wheel in std::fs::read_dir(cell.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let file = wheel.file_name().to_string_lossy().to_ascii_lowercase();
            if file.starts_with(&format!("{name}-"))
                && let Ok(h) = crate::fsutil::sha256_file(&wheel.path())
            {
                hashes.push(h);
            }
        }
    }
    hashes
}

/// An upload between the two dates, a candidate point.
struct Upload {
    time: Timestamp,
    name: PackageName,
    version: String,
}

pub fn bisect_dates(
    settings: &Settings,
    good: Timestamp,
    bad: Timestamp,
    prober: &mut Prober,
) -> anyhow::Result<String> {
    if good >= bad {
        bail!("--good-date must come before --bad-date");
    }
    // The bad state's graph holds the culprit: its packages' uploads are the candidates, and
    // this one resolution also confirms that the bad date is bad.
    let bad_probe = Probe {
        label: format!("as of {bad}"),
        exclude_newer: Some(bad),
        pins: None,
    };
    let names = match settings.until {
        Until::Resolves => {
            let (is_bad, json) = prober.run(&bad_probe, &settings.target)?;
            if !is_bad {
                bail!(
                    "{} is not bad as of {bad}; nothing to bisect",
                    settings.target
                );
            }
            graph_names(&json)
        }
        _ => {
            let (_, json) = resolve_json(settings, prober, bad)?;
            graph_names(&json)
        }
    };
    let index = Index::new(IndexConfig {
        exclude_newer: Some(bad),
        ..settings.index.clone()
    })?;
    let mut uploads = Vec::new();
    for name in &names {
        for file in index.project(name)?.iter() {
            let (Some(time), Some(sdist)) =
                (file.upload_time, parse_sdist_filename(&file.filename, name))
            else {
                continue;
            };
            if time > good && time <= bad {
                uploads.push(Upload {
                    time,
                    name: name.clone(),
                    version: sdist.version.to_string(),
                });
            }
        }
    }
    uploads.sort_by_key(|u| u.time);
    let mut instants: Vec<Timestamp> = uploads.iter().map(|u| u.time).collect();
    instants.dedup();
    println!(
        "{} candidate points: uploads of {} packages of the bad graph between {good} and {bad}; at most {} more probes",
        instants.len(),
        names.len(),
        probe_bound(instants.len())
    );
    if settings.dry_run {
        for u in &uploads {
            println!("  {}  {} {}", u.time, u.name, u.version);
        }
        return Ok("dry run".into());
    }
    if !matches!(settings.until, Until::Resolves) {
        let (is_bad, _) = prober.run(&bad_probe, &settings.target)?;
        if !is_bad {
            bail!(
                "{} is not bad as of {bad}; nothing to bisect",
                settings.target
            );
        }
    }
    let probe_at = |i: usize| Probe {
        label: format!("as of {}", instants[i]),
        exclude_newer: Some(instants[i]),
        pins: None,
    };
    let found = first_bad(instants.len(), |i| {
        prober.run(&probe_at(i), &settings.target).map(|r| r.0)
    })?;
    let Some(i) = found else {
        bail!("no upload between the two dates changes anything");
    };
    let probes = prober.count;
    println!();
    let mut answer = Vec::new();
    for u in uploads.iter().filter(|u| u.time == instants[i]) {
        let line = format!(
            "first bad upload: {} {} (sdist uploaded {})",
            u.name, u.version, u.time
        );
        println!("{line}");
        answer.push(line);
    }
    // What changed in the graph at that point.
    let before = if i == 0 { good } else { instants[i - 1] };
    let (_, after_json) = resolve_json(settings, prober, instants[i])?;
    let (_, before_json) = resolve_json(settings, prober, before)?;
    print_graph_change(&before_json, &after_json);
    println!(
        "probes: {probes} (bound ⌈log2 {}⌉ + 1 = {}); {} resolutions in all, with those describing the change",
        instants.len(),
        probe_bound(instants.len()) + 1,
        prober.count
    );
    Ok(answer.join("; "))
}

/// The resolution of the target as of an instant, as JSON (cached with the probes when the
/// predicate is itself a resolution).
fn resolve_json(
    settings: &Settings,
    prober: &mut Prober,
    at: Timestamp,
) -> anyhow::Result<(bool, String)> {
    if matches!(settings.until, Until::Resolves) {
        return prober.run(
            &Probe {
                label: format!("as of {at}"),
                exclude_newer: Some(at),
                pins: None,
            },
            &settings.target,
        );
    }
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .arg("resolve")
        .arg(&settings.target)
        .args(prober.settings.cell_args.clone())
        .args(prober.settings.index_args.clone())
        .args([
            "--exclude-newer",
            &at.to_string(),
            "--format",
            "json",
            "--no-explain",
        ])
        .output()?;
    Ok((
        out.status.code() == Some(ExitCode::Cycle.into()),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn graph_names(json: &str) -> BTreeSet<PackageName> {
    nodes(json)
        .keys()
        .filter_map(|name| PackageName::from_str(name).ok())
        .collect()
}

/// name → version of every node of a `resolve --format json` report.
fn nodes(json: &str) -> BTreeMap<String, String> {
    let doc: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    doc["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["nodes"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| {
            Some((
                n["name"].as_str()?.to_string(),
                n["version"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn print_graph_change(before: &str, after: &str) {
    let (b, a) = (nodes(before), nodes(after));
    println!("what changed in the graph:");
    for (name, version) in &a {
        match b.get(name) {
            None => println!("  + {name} {version}"),
            Some(old) if old != version => println!("  ~ {name} {old} → {version}"),
            _ => {}
        }
    }
    for (name, version) in &b {
        if !a.contains_key(name) {
            println!("  - {name} {version}");
        }
    }
    let doc: serde_json::Value = serde_json::from_str(after).unwrap_or_default();
    for cell in doc["cells"].as_array().into_iter().flatten() {
        for cycle in cell["cycles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["kind"] == "error")
        {
            println!("  cycle: {}", cycle["chain"].as_str().unwrap_or_default());
        }
    }
}

/// Pins of a lock, by package name, as written.
fn lock_pins(path: &Path) -> anyhow::Result<BTreeMap<PackageName, String>> {
    let mut reqs = Requirements::default();
    reqs.read_file(path)?;
    Ok(reqs
        .requirements
        .into_iter()
        .map(|e| {
            let mut bare = e.requirement.clone();
            bare.marker = pep508_rs::MarkerTree::TRUE;
            (e.requirement.name, bare.to_string())
        })
        .collect())
}

pub fn bisect_locks(
    settings: &Settings,
    good: &Path,
    bad: &Path,
    prober: &mut Prober,
) -> anyhow::Result<String> {
    let (a, b) = (lock_pins(good)?, lock_pins(bad)?);
    let target_name = PackageName::from_str(&settings.target)
        .context("--target: a package name in both locks")?;
    let target = b
        .get(&target_name)
        .or_else(|| a.get(&target_name))
        .cloned()
        .with_context(|| format!("{target_name} is in neither lock"))?;
    // The candidate changes: every pin that differs, in name order.
    let changes: Vec<(PackageName, Option<String>, Option<String>)> = a
        .keys()
        .chain(b.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| (n.clone(), a.get(n).cloned(), b.get(n).cloned()))
        .collect();
    println!(
        "{} candidate changes between the locks; at most {} more probes",
        changes.len(),
        probe_bound(changes.len())
    );
    for (name, from, to) in &changes {
        println!(
            "  {name}: {} → {}",
            from.as_deref().unwrap_or("(absent)"),
            to.as_deref().unwrap_or("(absent)")
        );
    }
    if settings.dry_run {
        return Ok("dry run".into());
    }
    // The state with the first `k` changes applied to the good lock.
    let state = |k: usize| -> Vec<String> {
        let mut pins = a.clone();
        for (name, _, to) in &changes[..k] {
            match to {
                Some(pin) => pins.insert(name.clone(), pin.clone()),
                None => pins.remove(name),
            };
        }
        pins.into_values().collect()
    };
    let probe = |k: usize| Probe {
        label: if k == changes.len() {
            "the bad lock".into()
        } else {
            format!("good lock + changes 1..={k}")
        },
        exclude_newer: None,
        pins: Some(state(k)),
    };
    let (is_bad, _) = prober.run(&probe(changes.len()), &target)?;
    if !is_bad {
        bail!("{target} is not bad with the bad lock; nothing to bisect");
    }
    let found = first_bad(changes.len(), |i| {
        prober.run(&probe(i + 1), &target).map(|r| r.0)
    })?;
    let Some(i) = found else {
        bail!("the locks do not differ")
    };
    let (name, from, to) = &changes[i];
    let answer = format!(
        "first bad change: {name} {} → {}",
        from.as_deref().unwrap_or("(absent)"),
        to.as_deref().unwrap_or("(absent)")
    );
    println!();
    println!("{answer}");
    println!(
        "probes: {} (bound ⌈log2 {}⌉ + 1 = {})",
        prober.count,
        changes.len(),
        probe_bound(changes.len()) + 1
    );
    Ok(answer)
}
