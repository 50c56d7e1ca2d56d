//! Comparing two sets of wheels (two runs, two folders, or two wheels) by cell and filename:
//! raw and stabilized hashes, a verdict per wheel, and, when the variations of the second build
//! are known, which of them leaked into each difference.

use crate::digest::Sha256;
use crate::ids::RunId;
use crate::store::{Store, StoreError};
use crate::verify::variation::Variation;
use crate::verify::wheel_diff::{self, ArchiveAspect, Verdict, Wheel};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bumped on breaking changes to the JSON report; see CHANGELOG.md.
pub const SCHEMA_VERSION: u32 = 1;

/// Wheels by (cell, filename); a folder without cell subfolders has the cell "".
#[derive(Debug, Default)]
pub struct Side {
    pub label: String,
    pub wheels: BTreeMap<(String, String), PathBuf>,
    /// The wheels that are blobs of the run store, with the sha256 their bytes must have: it
    /// is checked on the bytes compared, through the handle they are read by.
    pub blobs: BTreeMap<(String, String), Sha256>,
    /// For a run of the store: the fingerprint each wheel's job was recorded with (its inputs),
    /// so that two runs' wheels can be told apart by what moved.
    pub fingerprints: BTreeMap<(String, String), String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("`{0}` is neither a run in the store, a folder of wheels, nor a wheel")]
    Unknown(String),
    /// Not `transparent`: the store's error must stay in the chain, where it decides the exit
    /// code (a damaged blob is the environment's fault, not the input's).
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Side {
    /// Both sides of `compare A B`. Files and folders are read without the store: it is
    /// opened (never created) only when a side is neither, from the folder `store_root` gives.
    pub fn load_pair(
        a: &str,
        b: &str,
        store_root: impl FnOnce() -> anyhow::Result<PathBuf>,
    ) -> anyhow::Result<(Side, Side)> {
        let missing = [a, b].into_iter().find(|s| !Path::new(s).exists());
        let store = match missing {
            None => None,
            Some(spec) => {
                let dir = store_root()?;
                if !dir.join("runs.sqlite3").is_file() {
                    anyhow::bail!(
                        "`{spec}` is neither a file, a folder nor a run: there is no run store at {}",
                        dir.display()
                    );
                }
                Some(Store::open(&dir)?)
            }
        };
        Ok((
            Side::load(a, store.as_ref())?,
            Side::load(b, store.as_ref())?,
        ))
    }

    /// A run id in the store, a folder (`DIR/<cell>/*.whl` or `DIR/*.whl`), or one wheel.
    pub fn load(spec: &str, store: Option<&Store>) -> Result<Self, CompareError> {
        let path = Path::new(spec);
        let io = |source| CompareError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut side = Side {
            label: spec.to_string(),
            ..Side::default()
        };
        if path.is_file() && spec.ends_with(".whl") {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            side.wheels
                .insert((String::new(), name), path.to_path_buf());
            return Ok(side);
        }
        if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(io)?.flatten() {
                let p = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if p.is_dir() {
                    for inner in std::fs::read_dir(&p).map_err(io)?.flatten() {
                        let file = inner.file_name().to_string_lossy().into_owned();
                        if file.ends_with(".whl") {
                            side.wheels.insert((name.clone(), file), inner.path());
                        }
                    }
                } else if name.ends_with(".whl") {
                    side.wheels.insert((String::new(), name), p);
                }
            }
            return Ok(side);
        }
        // What is not a run id names no run: it is neither of the three.
        if let Some(store) = store
            && let Ok(run) = RunId::parse(spec)
            && store.run(&run)?.is_some()
        {
            let jobs = store.jobs(&run)?;
            let last_stage = |cell: &str, name: &str| {
                jobs.iter()
                    .filter(|j| j.cell == cell && j.name == name)
                    .map(|j| j.stage)
                    .max()
                    .unwrap_or(0)
            };
            for job in &jobs {
                if job.stage != last_stage(&job.cell, &job.name) {
                    continue;
                }
                if let Some((file, sha)) = job.wheel() {
                    // A run's wheels are compared as recorded, or not at all: checked when
                    // read (`compare_sides`), not here, so no change slips in between.
                    let key = (job.cell.to_string(), file.clone());
                    side.wheels.insert(key.clone(), store.blob_path(sha));
                    side.blobs.insert(key.clone(), sha.clone());
                    side.fingerprints.insert(key, job.fingerprint.clone());
                }
            }
            return Ok(side);
        }
        Err(CompareError::Unknown(spec.to_string()))
    }
}

/// A variation and the value it had on side A and on side B.
pub type Clue = (Variation, String, String);

/// What the variations of the second build set, per side, to look for in differing entries.
#[derive(Debug, Clone, Default)]
pub struct Clues {
    /// (variation, value on side A, value on side B)
    pub values: Vec<Clue>,
    /// When each side's job ran, seconds since the epoch, per (cell, filename).
    pub windows: BTreeMap<(String, String), [(i64, i64); 2]>,
    /// Whether SOURCE_DATE_EPOCH pinned the time (then archive times cannot come from the clock).
    pub source_date_epoch: bool,
    /// Values that differ per wheel, like each job's build folder.
    pub per_wheel: BTreeMap<(String, String), Vec<Clue>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attribution {
    /// The entry, or "(archive)" for archive-level differences.
    pub entry: String,
    /// The variation that explains it, when one was found.
    pub variation: Option<Variation>,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    pub cell: String,
    pub wheel: String,
    /// The other side's filename, when two single wheels with different names are compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b_wheel: Option<String>,
    pub a_sha256: Sha256,
    pub b_sha256: Sha256,
    pub a_stabilized_sha256: Option<Sha256>,
    pub b_stabilized_sha256: Option<Sha256>,
    /// What had to be normalized for the stabilized hashes to agree (empty when they do not,
    /// or when the raw hashes already do).
    pub normalizations: Vec<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub attribution: Vec<Attribution>,
    /// What remedy verification found (`check --remedies`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<crate::verify::remedy::RemedyReport>,
    /// A `check` without `--remedies`: what they would try for this wheel, or that nothing
    /// would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy_hint: Option<crate::verify::remedy::RemedyHint>,
    /// Two runs of the store: whether the two jobs had the same inputs (their fingerprints),
    /// and, when not, which moved. Same inputs and different bytes: not reproducible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_inputs: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved_inputs: Vec<crate::verify::moved::MovedInput>,
}

impl PairReport {
    pub fn reproducible(&self) -> bool {
        matches!(self.verdict, Verdict::Identical)
    }

    /// The variations its differences are attributed to, each once, in a stable order.
    pub fn causes(&self) -> Vec<Variation> {
        let mut causes: Vec<Variation> = self
            .attribution
            .iter()
            .filter_map(|a| a.variation)
            .collect();
        causes.sort();
        causes.dedup();
        causes
    }
}

#[derive(Debug, Serialize)]
pub struct CompareReport {
    pub schema_version: u32,
    pub a: String,
    pub b: String,
    pub pairs: Vec<PairReport>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    /// Jobs that did not build on one side of a `check`, so nothing of theirs was compared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedBuild>,
    /// From `check`, when wheels differ: what to run next (the remedies, then the check
    /// with the settings they write), or why nothing rewheel knows would help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<crate::verify::remedy::NextStep>,
}

/// A job of `check` that failed, on the first side or the second.
#[derive(Debug, Serialize)]
pub struct FailedBuild {
    pub cell: String,
    /// `name version`, and its bootstrap stage when it has one.
    pub job: String,
    /// `first` or `second`.
    pub side: &'static str,
    pub error: String,
}

impl CompareReport {
    pub fn all_reproducible(&self) -> bool {
        self.pairs.iter().all(PairReport::reproducible)
            && self.only_in_a.is_empty()
            && self.only_in_b.is_empty()
    }
}

pub fn compare_sides(a: &Side, b: &Side, clues: &Clues) -> Result<CompareReport, CompareError> {
    // Two single wheels are compared whatever their names.
    let mut b_name = None;
    // Each wheel with the sha256 its bytes must have when it is a blob of the store.
    let wheel =
        |side: &Side, k: &(String, String), p: &PathBuf| (p.clone(), side.blobs.get(k).cloned());
    let pairs: Vec<((String, String), Sourced, Sourced)> =
        if a.wheels.len() == 1 && b.wheels.len() == 1 && a.wheels.keys().all(|(c, _)| c.is_empty())
        {
            let (ka, pa) = a.wheels.iter().next().expect("one");
            let (kb, pb) = b.wheels.iter().next().expect("one");
            if ka.1 != kb.1 {
                b_name = Some(kb.1.clone());
            }
            vec![(ka.clone(), wheel(a, ka, pa), wheel(b, kb, pb))]
        } else {
            a.wheels
                .iter()
                .filter_map(|(k, pa)| {
                    b.wheels
                        .get(k)
                        .map(|pb| (k.clone(), wheel(a, k, pa), wheel(b, k, pb)))
                })
                .collect()
        };
    let label = |(c, f): &(String, String)| {
        if c.is_empty() {
            f.clone()
        } else {
            format!("{c}/{f}")
        }
    };
    let paired = |side: &Side, k: &(String, String)| {
        pairs.iter().any(|(key, (pa, _), (pb, _))| {
            key == k || side.wheels.get(k).is_some_and(|p| p == pa || p == pb)
        })
    };
    let only_in_a = a
        .wheels
        .keys()
        .filter(|k| !b.wheels.contains_key(*k) && !paired(a, k))
        .map(label)
        .collect();
    let only_in_b = b
        .wheels
        .keys()
        .filter(|k| !a.wheels.contains_key(*k) && !paired(b, k))
        .map(label)
        .collect();
    // Hash everything on every core; open the zips only where the hashes differ.
    let reports: Result<Vec<PairReport>, CompareError> = pairs
        .par_iter()
        .map(|(key, (pa, ea), (pb, eb))| {
            let ((fa, ha), (fb, hb)) = (open_hashed(pa, ea)?, open_hashed(pb, eb)?);
            let mut report = PairReport {
                cell: key.0.clone(),
                wheel: key.1.clone(),
                b_wheel: b_name.clone(),
                a_sha256: ha.clone(),
                b_sha256: hb.clone(),
                a_stabilized_sha256: None,
                b_stabilized_sha256: None,
                normalizations: Vec::new(),
                verdict: Verdict::Identical,
                attribution: Vec::new(),
                remedy: None,
                remedy_hint: None,
                same_inputs: None,
                moved_inputs: Vec::new(),
            };
            if let (Some(fa), Some(fb)) = (a.fingerprints.get(key), b.fingerprints.get(key))
                && let Some(moved) = crate::verify::moved::moved_inputs(fa, fb)
            {
                report.same_inputs = Some(moved.is_empty());
                report.moved_inputs = moved;
            }
            if ha == hb {
                return Ok(report);
            }
            let unreadable = |e: wheel_diff::WheelError| CompareError::Io {
                path: PathBuf::from(&e.path),
                source: std::io::Error::other(e.message),
            };
            let (wa, wb) = (
                Wheel::from_file(fa, pa, ha).map_err(unreadable)?,
                Wheel::from_file(fb, pb, hb).map_err(unreadable)?,
            );
            let (sa, sb) = (wa.stabilized_sha256(), wb.stabilized_sha256());
            report.verdict = wheel_diff::compare(&wa, &wb);
            if sa == sb {
                report.normalizations = normalizations(&report.verdict);
            }
            report.a_stabilized_sha256 = Some(sa);
            report.b_stabilized_sha256 = Some(sb);
            let mut values = clues.per_wheel.get(key).cloned().unwrap_or_default();
            values.extend(clues.values.iter().cloned());
            report.attribution = attribute(
                &report.verdict,
                (&wa, &wb),
                (&a.label, &b.label),
                &values,
                clues.source_date_epoch,
                clues.windows.get(key),
            );
            Ok(report)
        })
        .collect();
    Ok(CompareReport {
        schema_version: SCHEMA_VERSION,
        a: a.label.clone(),
        b: b.label.clone(),
        pairs: reports?,
        only_in_a,
        only_in_b,
        failed: Vec::new(),
        next: None,
    })
}

/// One run's pure wheels (`*-none-any.whl`) compared between its cells: each other cell's
/// wheel with the first cell's, as `A vs B` pairs, with what moved between their jobs. A pure
/// wheel that differs between cells leaks its build's interpreter or system into its bytes.
pub fn across_cells(side: &Side) -> Result<CompareReport, CompareError> {
    let mut cells_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (cell, file) in side.wheels.keys() {
        if !cell.is_empty() && file.ends_with("-none-any.whl") {
            cells_of.entry(file).or_default().push(cell);
        }
    }
    fn pick<T: Clone>(
        map: &BTreeMap<(String, String), T>,
        key: &(String, String),
        plain: &(String, String),
    ) -> BTreeMap<(String, String), T> {
        map.get(key)
            .map(|v| [(plain.clone(), v.clone())].into())
            .unwrap_or_default()
    }
    let one = |cell: &str, file: &str| {
        let key = (cell.to_string(), file.to_string());
        let plain = (String::new(), file.to_string());
        Side {
            label: cell.to_string(),
            wheels: [(plain.clone(), side.wheels[&key].clone())].into(),
            blobs: pick(&side.blobs, &key, &plain),
            fingerprints: pick(&side.fingerprints, &key, &plain),
        }
    };
    let mut pairs = Vec::new();
    for (file, cells) in &cells_of {
        let Some((first, others)) = cells.split_first() else {
            continue;
        };
        for other in others {
            let report = compare_sides(&one(first, file), &one(other, file), &Clues::default())?;
            pairs.extend(report.pairs.into_iter().map(|mut pair| {
                pair.cell = format!("{first} vs {other}");
                pair
            }));
        }
    }
    Ok(CompareReport {
        schema_version: SCHEMA_VERSION,
        a: format!("{} (each pure wheel's first cell)", side.label),
        b: format!("{} (its other cells)", side.label),
        pairs,
        only_in_a: Vec::new(),
        only_in_b: Vec::new(),
        failed: Vec::new(),
        next: None,
    })
}

/// A wheel's path, and the sha256 it must have when it is a blob of the store.
type Sourced = (PathBuf, Option<Sha256>);

/// A wheel opened once and hashed through its handle; a store blob's hash must be its name.
fn open_hashed(
    path: &Path,
    blob: &Option<Sha256>,
) -> Result<(std::fs::File, Sha256), CompareError> {
    let io = |source| match blob {
        Some(_) => CompareError::Store(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
        None => CompareError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let sha = crate::fsutil::sha256_reader(&file).map_err(io)?;
    if let Some(expected) = blob
        && *expected != sha
    {
        return Err(CompareError::Store(StoreError::Corrupt {
            path: path.to_path_buf(),
            actual: sha,
        }));
    }
    Ok((file, sha))
}

fn normalizations(verdict: &Verdict) -> Vec<String> {
    let mut out = Vec::new();
    let (archive, record) = match verdict {
        Verdict::Identical => return out,
        Verdict::SameContent { archive } => (archive.clone(), false),
        Verdict::ContentDiffers {
            archive, changed, ..
        } => (
            archive.clone(),
            changed
                .iter()
                .any(|c| c.follows_other_changes || c.entry.ends_with("RECORD")),
        ),
    };
    out.extend(archive.iter().map(|a| a.describe().to_string()));
    if record {
        out.push("RECORD regenerated".into());
    }
    out
}

fn attribute(
    verdict: &Verdict,
    (a, b): (&Wheel, &Wheel),
    labels: (&str, &str),
    values: &[Clue],
    source_date_epoch: bool,
    window: Option<&[(i64, i64); 2]>,
) -> Vec<Attribution> {
    let mut out = Vec::new();
    let (archive, changed): (&[ArchiveAspect], Vec<&str>) = match verdict {
        Verdict::Identical => return out,
        Verdict::SameContent { archive } => (archive, Vec::new()),
        Verdict::ContentDiffers {
            archive,
            changed,
            added,
            removed,
            anomalies,
        } => {
            for anomaly in anomalies {
                let label = if anomaly.side == "a" {
                    labels.0
                } else {
                    labels.1
                };
                out.push(Attribution {
                    entry: anomaly.entry.clone(),
                    variation: None,
                    evidence: format!("in {label}: {}", anomaly.reason),
                });
            }
            let mut entries: Vec<&str> = changed
                .iter()
                .filter(|c| !c.follows_other_changes)
                .map(|c| c.entry.as_str())
                .collect();
            entries.extend(added.iter().chain(removed).map(String::as_str));
            (archive, entries)
        }
    };
    for aspect in archive {
        let (variation, evidence) = match aspect {
            ArchiveAspect::EntryTimestamps if !source_date_epoch => (
                Some(Variation::Time),
                "zip entry timestamps follow the clock (SOURCE_DATE_EPOCH is not set)".to_string(),
            ),
            ArchiveAspect::EntryTimestamps => (
                None,
                "zip entry timestamps differ although SOURCE_DATE_EPOCH is set".into(),
            ),
            ArchiveAspect::Permissions => (
                Some(Variation::Umask),
                "entry permissions differ: the backend stored on-disk modes, which the umask sets"
                    .into(),
            ),
            ArchiveAspect::EntryOrder => (
                Some(Variation::FileOrder),
                "entry order differs: the backend wrote entries in directory listing order".into(),
            ),
            ArchiveAspect::Compression => (None, "compression methods differ".into()),
            ArchiveAspect::ExtraFields => (None, "zip extra fields differ".into()),
            ArchiveAspect::Comments => (None, "zip comments differ".into()),
            ArchiveAspect::HeaderFields => (None, header_fields_evidence(a.made_on(), b.made_on())),
            ArchiveAspect::ZipLayout => (
                None,
                "the entries, their names, content and headers are the same: the bytes between or around them, or how their data was compressed, differ".into(),
            ),
        };
        out.push(Attribution {
            entry: "(archive)".into(),
            variation,
            evidence,
        });
    }
    for entry in changed {
        let (da, db) = wheel_diff::entry_pair(a, b, entry);
        let text_a = String::from_utf8_lossy(da.as_deref().unwrap_or_default());
        let text_b = String::from_utf8_lossy(db.as_deref().unwrap_or_default());
        let mut found = None;
        if entry.ends_with(".dist-info/RECORD") && same_lines(&text_a, &text_b) {
            found = Some((
                Variation::FileOrder,
                "the same lines in another order: RECORD follows directory listing order (file-order)"
                    .to_string(),
            ));
        }
        for (variation, va, vb) in values {
            if found.is_some() {
                break;
            }
            if !va.is_empty() && text_a.contains(va.as_str()) {
                found = Some((
                    *variation,
                    format!("contains {} `{va}` ({variation})", describe(*variation)),
                ));
            } else if !vb.is_empty() && text_b.contains(vb.as_str()) {
                found = Some((
                    *variation,
                    format!("contains {} `{vb}` ({variation})", describe(*variation)),
                ));
            }
            if found.is_some() {
                break;
            }
        }
        if found.is_none()
            && let Some(path) = one_sided_build_dir(&text_a, &text_b)
                .or_else(|| one_sided_build_dir(&text_b, &text_a))
        {
            found = Some((
                Variation::BuildPath,
                format!("contains what looks like a build folder `{path}` (build-path)"),
            ));
        }
        if found.is_none()
            && let Some([wa, wb]) = window
            && let Some(stamp) =
                time_in_window(&text_a, *wa).or_else(|| time_in_window(&text_b, *wb))
        {
            found = Some((
                Variation::Time,
                format!("contains `{stamp}`, a time during its build (time)"),
            ));
        }
        if found.is_none() && only_line_endings_differ(&text_a, &text_b) {
            out.push(Attribution {
                entry: entry.to_string(),
                variation: None,
                evidence: "the same text with other line endings (CRLF on one side): written on Windows, where Python writes text files with \\r\\n; no variation of a Linux build gives it".into(),
            });
            continue;
        }
        out.push(match found {
            Some((variation, evidence)) => Attribution {
                entry: entry.to_string(),
                variation: Some(variation),
                evidence,
            },
            None => Attribution {
                entry: entry.to_string(),
                variation: None,
                evidence: "no value of a variation found in it; --find-culprit rebuilds with one variation at a time".into(),
            },
        });
    }
    out
}

/// What differing zip header fields say of where each side was made.
fn header_fields_evidence(a: Option<u8>, b: Option<u8>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a != b && (a == 0 || b == 0) => format!(
            "zip header fields differ: \"version made by\" names MS-DOS (0) on one side and system {} on the other: made on Windows, where Python's zipfile writes 0; no variation of a Linux build gives it",
            a.max(b)
        ),
        _ => "zip header fields differ (versions, flags or attributes)".into(),
    }
}

/// CRLF on one side and LF on the other, and nothing else: a text file written on Windows.
fn only_line_endings_differ(a: &str, b: &str) -> bool {
    a != b && a.replace("\r\n", "\n") == b.replace("\r\n", "\n")
}

fn same_lines(a: &str, b: &str) -> bool {
    let mut a: Vec<&str> = a.lines().collect();
    let mut b: Vec<&str> = b.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

fn describe(v: Variation) -> &'static str {
    match v {
        Variation::BuildPath => "the build path",
        Variation::Hostname => "the hostname",
        Variation::Locale => "the locale",
        Variation::Timezone => "the timezone",
        Variation::Env => "a noise variable",
        Variation::Home => "the home folder",
        Variation::ExecPath => "the first PATH folder",
        Variation::Kernel => "the kernel release",
        Variation::User => "the build user's name",
        Variation::BuildEnvPath => "the build environment's folder",
        _ => "a value",
    }
}

/// Build folders that tools pick at random or by default, worth naming even when the two
/// sides' folders are unknown (comparing with wheels built by pip, say).
const BUILD_DIR_PREFIXES: &[&str] = &[
    "/tmp/pip-wheel-",
    "/tmp/pip-install-",
    "/tmp/pip-req-build-",
    "/tmp/build-via-sdist-",
    crate::build::job::DEFAULT_BUILD_ROOT_SLASH,
];

/// A build folder in one side's text that the other does not name: a build folder both sides
/// name alike did not make them differ (the difference is elsewhere, a hash seed, say).
fn one_sided_build_dir(of: &str, other: &str) -> Option<String> {
    build_dir_in(of).filter(|p| !other.contains(p.as_str()))
}

fn build_dir_in(text: &str) -> Option<String> {
    BUILD_DIR_PREFIXES.iter().find_map(|prefix| {
        let at = text.find(prefix)?;
        let rest = &text[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
            .unwrap_or(rest.len());
        Some(rest[..end].to_string())
    })
}

/// A Unix time or an ISO date-time in the text that falls inside the build's window.
fn time_in_window(text: &str, (start, end): (i64, i64)) -> Option<String> {
    let (lo, hi) = (start - 5, end + 5);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
            let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            let digits = &text[i..i + run];
            if run == 10
                && let Ok(secs) = digits.parse::<i64>()
                && (lo..=hi).contains(&secs)
            {
                return Some(digits.to_string());
            }
            // `get`: a binary entry decoded lossily has multi-byte characters anywhere.
            if run == 4
                && let Some(candidate) = text.get(i..i + 19)
                && let Ok(dt) = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", candidate)
                    .or_else(|_| jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%M:%S", candidate))
                // Local times may be in any zone up to 14 hours off.
                && let Ok(ts) = dt
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .map(|z| z.timestamp().as_second())
                && (lo - 14 * 3600..=hi + 14 * 3600).contains(&ts)
            {
                return Some(candidate.to_string());
            }
            i += run;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_next_to_a_multibyte_character_is_no_panic() {
        // A binary entry decoded lossily: `2024` then U+FFFD inside the next 19 bytes.
        let text = format!("x2024-01-01 00:00:{}rest", '\u{FFFD}');
        assert_eq!(time_in_window(&text, (0, 1)), None);
    }

    #[test]
    fn a_zip_made_on_windows_is_named() {
        assert!(header_fields_evidence(Some(0), Some(3)).contains("made on Windows"));
        assert!(!header_fields_evidence(Some(3), Some(3)).contains("Windows"));
        assert!(!header_fields_evidence(None, Some(3)).contains("Windows"));
    }

    #[test]
    fn crlf_against_lf_is_named_as_line_endings() {
        let windows = "# file generated by setuptools_scm\r\n__version__ = '0.9.0'\r\n";
        let linux = "# file generated by setuptools_scm\n__version__ = '0.9.0'\n";
        assert!(only_line_endings_differ(windows, linux));
        assert!(!only_line_endings_differ(linux, linux));
        assert!(!only_line_endings_differ(windows, "__version__ = '1.0'\n"));
    }

    #[test]
    fn a_build_folder_both_sides_name_is_no_cause() {
        let a = "x /tmp/rewheel-build/cython-3.3.0/Code.c y";
        assert_eq!(super::one_sided_build_dir(a, a), None);
        let b = "x /tmp/rewheel-build-varied/cython-3.3.0/Code.c y";
        assert!(super::one_sided_build_dir(a, b).is_some());
    }

    #[test]
    fn random_build_folders_are_recognised() {
        assert_eq!(
            build_dir_in("\0\0/tmp/pip-wheel-vrq5418g/markupsafe_0b\0rest").as_deref(),
            Some("/tmp/pip-wheel-vrq5418g/markupsafe_0b")
        );
        assert_eq!(build_dir_in("nothing here"), None);
    }

    #[test]
    fn times_inside_the_build_window_are_found() {
        let now = 1_795_000_000;
        assert_eq!(
            time_in_window("built = 1795000002.25\n", (now, now + 3)).as_deref(),
            Some("1795000002")
        );
        assert_eq!(time_in_window("x = 1234567890", (now, now + 3)), None);
        let iso = jiff::Timestamp::from_second(now)
            .unwrap()
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string();
        assert_eq!(
            time_in_window(&format!("stamp: {iso}"), (now, now)).as_deref(),
            Some(iso.as_str())
        );
    }
}
