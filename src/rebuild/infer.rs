//! What a published wheel says about how it was built: its `WHEEL` generator (→ a pin of the
//! backend or of `wheel`), its entry times (→ a `SOURCE_DATE_EPOCH`), its permission bits (→ a
//! umask), and for binaries the source paths and compiler its `.so` files embed (→ a build
//! path and a Debian suite). Read as untrusted data: only parsed, never run.

use serde::Serialize;
use std::io::Read;
use std::path::Path;

/// The first second a zip entry can hold (1980-01-01 UTC): what backends that ignore the
/// clock write, and where `wheel` clamps `SOURCE_DATE_EPOCH`.
pub const ZIP_EPOCH: u64 = 315_532_800;

/// libfaketime's absolute, frozen form of a time, in the job's time zone (which it reads it in).
pub fn frozen(t: u64, zone: Option<&str>) -> String {
    let tz = zone
        .and_then(|z| jiff::tz::TimeZone::posix(z).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::from_second(t as i64)
        .map(|ts| ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// What was read from the wheel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub name: String,
    pub version: String,
    /// METADATA's `Name:` as written (`typer-slim`), which a build switch may have chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dist_name: Option<String>,
    /// `Generator:` of the WHEEL file, as written.
    pub generator: Option<String>,
    /// All entries carry this one time (seconds since the epoch, read as UTC).
    pub common_time: Option<u64>,
    /// The latest entry time: when the wheel was written, for a build without
    /// SOURCE_DATE_EPOCH (its metadata files carry the clock).
    pub latest_time: Option<u64>,
    /// Distinct permission bits of regular files.
    pub modes: Vec<u32>,
    /// Has compiled extensions (`.so`).
    pub binary: bool,
    /// `GCC: (Debian 12.2.0-14) 12.2.0`-style notes found in the extensions.
    pub compilers: Vec<String>,
    /// Folders the extensions embed that end in the sdist's top folder.
    pub source_paths: Vec<String>,
    /// The filename's platform tags (`manylinux_2_17_x86_64.manylinux2014_x86_64`).
    pub platform: String,
    /// The filename's Python tags (`py2.py3`).
    pub python_tag: String,
    /// Libraries auditwheel copied into the wheel (`numpy.libs/libgfortran-….so`).
    pub vendored_libs: Vec<String>,
}

impl Observed {
    /// The wheel was made portable after its build: a manylinux or musllinux tag, which
    /// auditwheel's repair step gives (with any outside library copied into `NAME.libs/`).
    pub fn repaired(&self) -> Option<String> {
        let tag = self
            .platform
            .split('.')
            .find(|t| t.starts_with("manylinux") || t.starts_with("musllinux"))?;
        let libs = match self.vendored_libs.len() {
            0 => String::new(),
            n => format!(
                " and {n} vendored librar{} in {}",
                if n == 1 { "y" } else { "ies" },
                self.vendored_libs[0]
                    .split_once('/')
                    .map_or("", |(folder, _)| folder)
            ),
        };
        // The image's own compiler, which tells its generation (manylinux2014's devtoolset,
        // manylinux_2_28's gcc-toolset: `(Red Hat 12.2.1-7)`).
        let compiler = self
            .compilers
            .iter()
            .find(|c| suite_of_gcc(c).is_none())
            .map(|c| format!(" (its compiler: `{c}`)"))
            .unwrap_or_default();
        Some(format!(
            "the tag {tag}{libs}: built in a manylinux (or musllinux) image{compiler}, then repaired by auditwheel, which rewrote the wheel; a rebuild runs in that image, named as a matrix cell's `supplied-image` (with its `interpreter`), with `repair = \"auditwheel\"`: in a Debian cell the closest it gets is the unrepaired linux wheel"
        ))
    }
}

/// The first guess at how the wheel was built; the search varies it. A rebuild statement
/// carries the one that matched, which a verifier builds again.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Guess {
    /// Build-environment pins (`wheel==0.36.2`), from the generator.
    pub pins: Vec<String>,
    pub source_date_epoch: Option<u64>,
    pub umask: u32,
    /// Unpack keeping the sdist's file times (entries took their times from the sources).
    pub sdist_times: bool,
    /// A clock frozen at this time (libfaketime): the metadata files' time of a wheel built
    /// without SOURCE_DATE_EPOCH.
    pub frozen_clock: Option<u64>,
    /// The builder's time zone (a POSIX `TZ` rule), for backends that store local times.
    pub timezone: Option<String>,
    /// The folder the sdist was unpacked in (`--build-path`), from embedded paths.
    pub build_path: Option<String>,
    /// The Debian suite whose compiler matches the embedded one.
    pub suite: Option<String>,
    /// Build dependencies taken this many months before the upload: a maintainer's toolchain
    /// is older than the index on the day (setuptools' metadata changes with its version).
    #[serde(default)]
    pub deps_months_earlier: u32,
    /// The pins stand in for the sdist's own build requirements, as when a maintainer built
    /// with the backend's command line (`flit build` 3.8) though the sdist names `flit-core<3`:
    /// they are the package's shared build environment.
    #[serde(default)]
    pub pins_over_sdist: bool,
    /// Built by running `setup.py bdist_wheel` with these options, as pip did before PEP 517
    /// and maintainers by hand (`--universal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_py: Option<Vec<String>>,
    /// Set in the build's environment: a switch a build hook reads to choose which of the
    /// project's distributions it makes (`TIANGOLO_BUILD_PACKAGE = "typer-slim"`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
    /// Folders list in ext4's hash order under this seed (`ext4:UUID`): the publisher's
    /// filesystem's order, which a backend zipping what it finds in that order leaked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_order: Option<String>,
    /// The interpreter (`3.6`) of the wheel's day, instead of the cell's, for a wheel older
    /// than the cell's Python whose build fails there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// Why each value was chosen, for the report.
    pub reasons: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{path}: not a wheel: {message}")]
    NotAWheel { path: String, message: String },
}

/// The pin of the wheel's own package among the recipe's, when a self-hosting backend's wheel
/// was made by another release of itself (poetry-core 1.9.0 says `Generator: poetry-core
/// 1.8.1`): the job builds with that release instead of the in-tree backend.
pub fn own_backend<'a>(guess: &'a Guess, name: &str) -> Option<&'a str> {
    use std::str::FromStr;
    let own = crate::names::PackageName::from_str(name).ok()?;
    guess.pins.iter().map(String::as_str).find(|pin| {
        pin.split_once("==")
            .and_then(|(n, _)| crate::names::PackageName::from_str(n).ok())
            .is_some_and(|n| n == own)
    })
}

/// The backend package a `Generator:` names, and its version.
pub fn generator_pin(generator: &str) -> Option<String> {
    let text = generator.trim();
    let split = text.find([' ', '('])?;
    let (tool, rest) = text.split_at(split);
    let version: String = rest
        .trim_start_matches([' ', '('])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '-'))
        .collect();
    if version.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    // What writes the archive, by the name it signs with: `wheel`'s bdist_wheel, flit's core.
    let package = match tool.to_ascii_lowercase().as_str() {
        "bdist_wheel" => "wheel".to_string(),
        "flit" => "flit-core".to_string(),
        // poetry-core signs its wheels `poetry X` up to 1.0.x (rsa 4.9 says `poetry 1.0.7`).
        "poetry" => "poetry-core".to_string(),
        other => other.replace('_', "-"),
    };
    Some(format!("{package}=={version}"))
}

/// The Debian suite whose default GCC has this major version.
pub fn suite_of_gcc(comment: &str) -> Option<&'static str> {
    // `GCC: (Debian 10.2.1-6) 10.2.1 20210110`: the packaged version names the compiler.
    let packaged = comment.split("(Debian ").nth(1)?;
    match packaged.split('.').next()? {
        "10" => Some("bullseye"),
        "12" => Some("bookworm"),
        "14" => Some("trixie"),
        "15" => Some("forky"),
        _ => None,
    }
}

/// Printable runs of path characters in `bytes` that end in `/<top>` where top names the
/// package and version (`/tmp/build/MarkupSafe-2.1.3`): the folder the sdist was unpacked in.
fn embedded_folders(bytes: &[u8], name: &str, version: &str) -> Vec<String> {
    use std::str::FromStr;
    let normalize = |n: &str| crate::names::PackageName::from_str(n).ok();
    let wanted = normalize(name);
    let needle = format!("-{version}");
    let path_char = |b: u8| b.is_ascii_alphanumeric() || b"._/+-".contains(&b);
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], needle.as_bytes()).map(|i| i + from) {
        let end = at + needle.len();
        from = end;
        // The folder name must end here (a `/`, or the end of the string).
        if bytes.get(end).is_some_and(|&b| b != b'/' && path_char(b)) {
            continue;
        }
        let mut start = at;
        while start > 0 && path_char(bytes[start - 1]) {
            start -= 1;
        }
        let Ok(run) = std::str::from_utf8(&bytes[start..end]) else {
            continue;
        };
        let Some((parent, top)) = run.rsplit_once('/') else {
            continue;
        };
        let top_name = &top[..top.len() - needle.len()];
        if parent.starts_with('/') && wanted.is_some() && normalize(top_name) == wanted {
            found.push(parent.to_string());
        }
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Read what the wheel says about its build.
pub fn observe(path: &Path) -> Result<Observed, InferError> {
    let bad = |message: String| InferError::NotAWheel {
        path: path.display().to_string(),
        message,
    };
    let filename = path.file_name().unwrap_or_default().to_string_lossy();
    let (name, version) = crate::names::parse_wheel_filename(&filename)
        .ok_or_else(|| bad("the filename is not NAME-VERSION-PY-ABI-PLATFORM.whl".into()))?;
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    // NAME-VERSION[-BUILD]-PY-ABI-PLATFORM, read from its end.
    let tags: Vec<&str> = filename.trim_end_matches(".whl").rsplit('-').collect();
    let mut observed = Observed {
        name: name.to_string(),
        version: version.to_string(),
        platform: tags.first().copied().unwrap_or_default().to_string(),
        python_tag: tags.get(2).copied().unwrap_or_default().to_string(),
        ..Observed::default()
    };
    let mut times = std::collections::BTreeSet::new();
    let mut modes = std::collections::BTreeSet::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        if let Some(t) = entry.last_modified().and_then(crate::fsutil::zip_epoch) {
            times.insert(t);
        }
        if let Some(mode) = entry.unix_mode().filter(|m| m & 0o777 != 0) {
            modes.insert(mode & 0o777);
        }
        let entry_name = entry.name().map(|n| n.to_string()).unwrap_or_default();
        if entry_name
            .split_once('/')
            .is_some_and(|(top, _)| top.ends_with(".libs"))
        {
            observed.vendored_libs.push(entry_name.clone());
        }
        // Bounded reads: a hostile wheel cannot make this hold more than 256 MiB of one entry.
        let limit = 256 << 20;
        if entry_name.ends_with(".dist-info/WHEEL") {
            let mut text = String::new();
            let _ = (&mut entry).take(1 << 20).read_to_string(&mut text);
            observed.generator = text
                .lines()
                .find_map(|l| l.strip_prefix("Generator:"))
                .map(|g| g.trim().to_string());
        } else if entry_name.ends_with(".dist-info/METADATA") {
            let mut text = String::new();
            let _ = (&mut entry).take(1 << 20).read_to_string(&mut text);
            observed.dist_name = text
                .lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix("Name:"))
                .map(|n| n.trim().to_string());
        } else if entry_name.ends_with(".so") || entry_name.contains(".so.") {
            observed.binary = true;
            let mut bytes = Vec::new();
            let _ = (&mut entry).take(limit).read_to_end(&mut bytes);
            let mut from = 0;
            while let Some(at) = find(&bytes[from..], b"GCC: (").map(|i| i + from) {
                let end = bytes[at..]
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(bytes.len(), |n| at + n);
                let note = String::from_utf8_lossy(&bytes[at..end]).into_owned();
                if !observed.compilers.contains(&note) {
                    observed.compilers.push(note);
                }
                from = end;
            }
            for folder in embedded_folders(&bytes, &observed.name, &observed.version) {
                if !observed.source_paths.contains(&folder) {
                    observed.source_paths.push(folder);
                }
            }
        }
    }
    observed.latest_time = times.iter().next_back().copied();
    if times.len() == 1 {
        observed.common_time = times.into_iter().next();
    }
    observed.modes = modes.into_iter().collect();
    Ok(observed)
}

/// The first guess from what was observed.
pub fn guess(observed: &Observed) -> Guess {
    let mut reasons = Vec::new();
    let pins: Vec<String> = observed
        .generator
        .as_deref()
        .and_then(generator_pin)
        .into_iter()
        .collect();
    if let (Some(generator), Some(pin)) = (&observed.generator, pins.first()) {
        reasons.push(format!("WHEEL says `Generator: {generator}` → {pin}"));
    }
    let source_date_epoch = match observed.common_time {
        Some(t) if t > ZIP_EPOCH => {
            reasons.push(format!(
                "every entry has the time {t}: SOURCE_DATE_EPOCH={t}"
            ));
            Some(t)
        }
        Some(_) => {
            reasons.push(
                "every entry has 1980-01-01: a backend that ignores the clock, or an early SOURCE_DATE_EPOCH"
                    .into(),
            );
            Some(ZIP_EPOCH)
        }
        None => {
            reasons.push(
                "entry times differ: built without SOURCE_DATE_EPOCH, from file times: the sdist's, kept on unpacking"
                    .into(),
            );
            None
        }
    };
    let sdist_times = observed.common_time.is_none();
    let frozen_clock = if sdist_times {
        observed.latest_time
    } else {
        None
    };
    if let Some(t) = frozen_clock {
        reasons.push(format!(
            "the latest entry time {t} is when it was written: a clock frozen there"
        ));
    }
    let group_writable = observed.modes.iter().any(|m| m & 0o020 != 0);
    let umask = if group_writable { 0o002 } else { 0o022 };
    if !observed.modes.is_empty() {
        reasons.push(format!(
            "file modes {}: umask {umask:03o}",
            observed
                .modes
                .iter()
                .map(|m| format!("{m:03o}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // A path read out of someone else's wheel becomes a folder rewheel creates and builds
    // in: taken only below /tmp (where pip and `build` put their trees), plain, else said only.
    let first = observed.source_paths.first().cloned();
    let plain = |path: &str| {
        path.strip_prefix("/tmp/").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..")
        })
    };
    let build_path = first.clone().filter(|path| plain(path));
    match (&first, &build_path) {
        (Some(path), Some(_)) => reasons.push(format!(
            "the extensions embed {path}/…: --build-path {path}"
        )),
        (Some(path), None) => reasons.push(format!(
            "the extensions embed {path}/…, outside /tmp: not used as the build path (give --build-path {path} to try it)"
        )),
        _ => {}
    }
    let suite = observed
        .compilers
        .iter()
        .find_map(|c| suite_of_gcc(c))
        .map(String::from);
    if let (Some(suite), Some(compiler)) = (&suite, observed.compilers.first()) {
        reasons.push(format!("the extensions say `{compiler}`: Debian {suite}"));
    }
    if let Some(repaired) = observed.repaired() {
        reasons.push(repaired);
    }
    Guess {
        pins,
        source_date_epoch,
        umask,
        sdist_times,
        frozen_clock,
        timezone: None,
        build_path,
        suite,
        deps_months_earlier: 0,
        pins_over_sdist: false,
        setup_py: None,
        env: Default::default(),
        listing_order: None,
        python: None,
        reasons,
    }
}

/// How far back the search takes build dependencies, step by step, when only metadata
/// differs.
pub const EARLIER_DEPS: &[u32] = &[6, 12, 24, 36];

/// The next step back for build dependencies after `guess`'s, if any.
pub fn earlier_deps(guess: &Guess) -> Option<Guess> {
    let next = EARLIER_DEPS
        .iter()
        .find(|m| **m > guess.deps_months_earlier)?;
    Some(Guess {
        deps_months_earlier: *next,
        ..guess.clone()
    })
}

/// A small, bounded set of recipes around the guess, the guess first: the other umask, and
/// with or without `SOURCE_DATE_EPOCH`, at most `limit` of them.
pub fn candidates(first: &Guess, limit: usize) -> Vec<Guess> {
    let mut out = vec![first.clone()];
    let other_umask = if first.umask == 0o022 { 0o002 } else { 0o022 };
    let epochs = match first.source_date_epoch {
        Some(t) => vec![Some(t), None],
        None => vec![None, Some(ZIP_EPOCH)],
    };
    for umask in [first.umask, other_umask] {
        for epoch in &epochs {
            let g = Guess {
                umask,
                source_date_epoch: *epoch,
                ..first.clone()
            };
            if !out.contains(&g) {
                out.push(g);
            }
        }
    }
    // File times without the frozen clock (a backend with fixed metadata times, like flit's).
    if first.frozen_clock.is_some() {
        let g = Guess {
            frozen_clock: None,
            ..first.clone()
        };
        out.insert(1, g);
    }
    // Without the generator pin last: the newest backend may write the same bytes.
    if !first.pins.is_empty() {
        out.push(Guess {
            pins: Vec::new(),
            ..first.clone()
        });
    }
    out.truncate(limit.max(1));
    out
}

/// The recipes around `best`, the attempt closest so far, most promising first: what its
/// archive differences point at (file modes: the other umask; entry times: the clock and
/// `SOURCE_DATE_EPOCH`), then the rest of [`candidates`] around it. What the search found on
/// the way (an older toolchain, a time zone) stays while another dimension is tried: a wheel
/// may need two findings at once (requests 2.31.0: setuptools of two years before *and* the
/// other umask).
pub fn neighbours(
    best: &Guess,
    archive: &[crate::verify::wheel_diff::ArchiveAspect],
) -> Vec<Guess> {
    use crate::verify::wheel_diff::ArchiveAspect;
    let mut around: Vec<Guess> = candidates(best, usize::MAX)
        .into_iter()
        .filter(|g| g != best)
        .collect();
    let points_at = |g: &Guess| {
        let modes = g.umask != best.umask && archive.contains(&ArchiveAspect::Permissions);
        let times = (g.frozen_clock != best.frozen_clock
            || g.source_date_epoch != best.source_date_epoch)
            && archive.contains(&ArchiveAspect::EntryTimestamps);
        modes || times
    };
    // Stable: within each group, `candidates`' own order.
    around.sort_by_key(|g| !points_at(g));
    around
}

/// The settings of the toolchain a `setup.py` recipe runs: setuptools and wheel installed
/// from the index's wheels, as pip installed them then. Older than 40.8, setuptools has no
/// PEP 517 hooks to build itself with; its wheels are then inputs of the rebuild, by digest.
pub fn legacy_toolchain(guess: &Guess) -> &'static str {
    if guess.setup_py.is_some() {
        "\n[packages.setuptools]\nallow-binary = true\n\n[packages.wheel]\nallow-binary = true\n"
    } else {
        ""
    }
}

/// A wheel tagged for Python 2 and 3 at once (`py2.py3`) while the rebuild is tagged for one:
/// the maintainer gave bdist_wheel `--universal` on the command line, which the sdist does not
/// say. The recipe runs `setup.py bdist_wheel --universal` as they did.
pub fn universal_by_hand(observed: &Observed, rebuilt: &Path, guess: &Guess) -> Option<Guess> {
    let published: std::collections::BTreeSet<&str> = observed.python_tag.split('.').collect();
    let universal = published == ["py2", "py3"].into();
    let options = guess.setup_py.clone().unwrap_or_default();
    if !universal || options.iter().any(|o| o == "--universal") {
        return None;
    }
    // The rebuilt wheel's own tags, from its WHEEL file (its path is a blob's, by hash).
    let file = std::fs::File::open(rebuilt).ok()?;
    let mut zip = zip::ZipArchive::new(file).ok()?;
    let name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with(".dist-info/WHEEL"))?
        .to_string();
    let mut text = String::new();
    zip.by_name(&name)
        .ok()?
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    let tagged: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Tag:"))
        .filter_map(|t| t.trim().split('-').next())
        .collect();
    (tagged != published).then(|| Guess {
        setup_py: Some(
            options
                .into_iter()
                .chain(["--universal".to_string()])
                .collect(),
        ),
        ..guess.clone()
    })
}

/// The build hooks a backend loads from an sdist's top folder by default, and setup.py.
pub const BUILD_SCRIPTS: &[&str] = &["pdm_build.py", "hatch_build.py", "setup.py"];

/// Variables the build reads that rewheel sets or varies itself, or that every program reads:
/// none of them is a project's switch.
const NOT_SWITCHES: &[&str] = &[
    "SOURCE_DATE_EPOCH",
    "TZ",
    "LANG",
    "LANGUAGE",
    "HOME",
    "PATH",
    "USER",
    "TMPDIR",
    "PWD",
    "CC",
    "CXX",
    "CFLAGS",
    "CXXFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "PYTHONPATH",
    "PYTHONHASHSEED",
];

/// The environment variables a build script reads by name (`os.getenv("X")`,
/// `os.environ.get("X")`, `os.environ["X"]`), in the order they first appear: a project
/// that publishes several distributions from one tree picks one by such a switch.
pub fn build_switches(script: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for opener in ["getenv(", "environ.get(", "environ["] {
        let mut rest = script;
        while let Some(at) = rest.find(opener) {
            rest = &rest[at + opener.len()..];
            let quoted = rest.trim_start();
            let Some(quote) = quoted.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
                continue;
            };
            let Some(end) = quoted[1..].find(quote) else {
                continue;
            };
            let name = &quoted[1..1 + end];
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !name.starts_with("LC_")
                && !NOT_SWITCHES.contains(&name);
            if plain && !found.iter().any(|f| f == name) {
                found.push(name.to_string());
            }
        }
    }
    found
}

/// The same recipe with a build switch set to the distribution the published wheel is
/// (METADATA's `Name:`): what a maintainer set to publish that one of the project's wheels.
pub fn switched(guess: &Guess, observed: &Observed, switch: &str, script: &str) -> Option<Guess> {
    // A name as PEP 508 spells one: the value goes into the recipe and the job's environment.
    let value = observed.dist_name.as_ref().filter(|n| {
        n.parse::<crate::names::PackageName>().is_ok()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    })?;
    if guess.env.contains_key(switch) {
        return None;
    }
    let mut next = guess.clone();
    next.env.insert(switch.to_string(), value.clone());
    next.reasons.push(format!(
        "{script} reads {switch}, and the closest attempt's content differs: {switch}={value}, the distribution published"
    ));
    Some(next)
}

/// The published order of a metadata folder's files (RECORD, written last, aside), when it is
/// not the rebuilt one: the order the publisher's filesystem listed the folder in, which a
/// backend copying it with `glob` (poetry-core) keeps. The next recipe lists folders in
/// ext4's hash order under a seed that gives it.
pub fn listed_as_published(published: &Path, rebuilt: &Path, guess: &Guess) -> Option<Guess> {
    if guess.listing_order.is_some() {
        return None;
    }
    // Each wheel's file entries in archive order, read once for both orders tried.
    let entries = |path: &Path| -> Option<Vec<String>> {
        let zip = zip::ZipArchive::new(std::fs::File::open(path).ok()?).ok()?;
        Some(
            zip.file_names()
                .filter_map(Result::ok)
                .filter(|n| !n.ends_with('/'))
                .map(String::from)
                .collect(),
        )
    };
    let (published, rebuilt) = (entries(published)?, entries(rebuilt)?);
    if let Some(sorted) = sorted_as_hfs(&published, &rebuilt, guess) {
        return Some(sorted);
    }
    let metadata = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter_map(|n| n.split_once(".dist-info/").map(|(_, f)| f.to_string()))
            .filter(|f| !f.is_empty() && !f.contains('/') && f != "RECORD")
            .collect()
    };
    let (wanted, ours) = (metadata(&published), metadata(&rebuilt));
    let mut same_names = wanted.clone();
    let mut rebuilt_names = ours.clone();
    same_names.sort();
    rebuilt_names.sort();
    // Three names at least: two are in one of two orders, which says little of a filesystem.
    if wanted.len() < 3 || wanted == ours || same_names != rebuilt_names {
        return None;
    }
    let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let seed = crate::rebuild::listing::seed_for(&names)?;
    let mut next = guess.clone();
    next.reasons.push(format!(
        "the metadata files are in the order {}, neither written nor sorted: the publisher's filesystem listed them so; ext4 lists a folder in that order under the hash seed {seed}",
        names.join(", ")
    ));
    next.listing_order = Some(seed);
    Some(next)
}

/// Every folder of the published wheel lists its files sorted without case, which the rebuilt
/// one does not: macOS's HFS+ lists folders so, and the backend zipped in listing order
/// (wheel 0.29 walks its build tree with `os.walk`). Its metadata folder is left aside: the
/// backend writes some of those files last whatever the order.
fn sorted_as_hfs(published: &[String], rebuilt: &[String], guess: &Guess) -> Option<Guess> {
    let outside_metadata = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| !n.contains(".dist-info/"))
            .cloned()
            .collect()
    };
    let (wanted, ours) = (outside_metadata(published), outside_metadata(rebuilt));
    let mut folders: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for name in &wanted {
        let (folder, file) = name.rsplit_once('/').unwrap_or(("", name));
        folders.entry(folder).or_default().push(file);
    }
    let sorted = |files: &Vec<&str>| {
        files
            .windows(2)
            .all(|w| w[0].to_lowercase() <= w[1].to_lowercase())
    };
    // Three files in a folder at least, or a sorted order says little.
    let telling = folders.values().filter(|f| f.len() >= 3).count();
    if telling == 0 || !folders.values().all(sorted) || wanted == ours {
        return None;
    }
    let mut next = guess.clone();
    next.reasons.push(
        "the entries are sorted without case in every folder, and this backend zips in listing order: macOS's HFS+ lists folders so".into(),
    );
    next.listing_order = Some(crate::rebuild::listing::HFS.into());
    Some(next)
}

/// When each CPython minor version was released: the interpreter of a wheel's day.
const PYTHON_RELEASES: &[((u64, u64), &str)] = &[
    ((3, 6), "2016-12-23"),
    ((3, 7), "2018-06-27"),
    ((3, 8), "2019-10-14"),
    ((3, 9), "2020-10-05"),
    ((3, 10), "2021-10-04"),
    ((3, 11), "2022-10-24"),
    ((3, 12), "2023-10-02"),
    ((3, 13), "2024-10-07"),
    ((3, 14), "2025-10-07"),
];

/// The newest CPython released before `uploaded` and older than the cell's `current` that
/// `available` says this host has: a build that fails on today's interpreter (setuptools 36
/// on 3.11: `collections.MutableMapping`) ran on that one.
pub fn python_of_its_day(
    uploaded: jiff::Timestamp,
    current: (u64, u64),
    available: impl Fn(u64, u64) -> bool,
) -> Option<String> {
    let day = uploaded.strftime("%Y-%m-%d").to_string();
    PYTHON_RELEASES
        .iter()
        .rev()
        .filter(|(version, released)| *version < current && **released <= *day)
        .find(|((major, minor), _)| available(*major, *minor))
        .map(|((major, minor), _)| format!("{major}.{minor}"))
}

/// For entries both wheels have: the rebuilt entry's time (built in UTC, so an instant) and the
/// published one's less it, in seconds:
/// what a backend storing local times leaks of its builder's time zone.
pub fn time_offsets(published: &Path, rebuilt: &Path) -> Vec<(i64, i64)> {
    let times = |path: &Path| -> std::collections::BTreeMap<String, u64> {
        let Ok(file) = std::fs::File::open(path) else {
            return Default::default();
        };
        let Ok(mut zip) = zip::ZipArchive::new(file) else {
            return Default::default();
        };
        (0..zip.len())
            .filter_map(|i| {
                let entry = zip.by_index_raw(i).ok()?;
                Some((
                    entry.name().ok()?.to_string(),
                    crate::fsutil::zip_epoch(entry.last_modified()?)?,
                ))
            })
            .collect()
    };
    let (a, b) = (times(published), times(rebuilt));
    let mut offsets: Vec<(i64, i64)> = a
        .iter()
        .filter_map(|(name, &t)| {
            let ours = *b.get(name)? as i64;
            Some((ours, t as i64 - ours))
        })
        .collect();
    offsets.sort();
    offsets.dedup();
    offsets
}

/// The time zone that explains the offsets between a wheel built in TZ=UTC and the published
/// one: a fixed offset, or a summer/winter rule of the common zones, as a POSIX `TZ` rule
/// (which the C library reads without a zone database). Each offset is weighed at its entry's
/// instant (the rebuilt entry's time, UTC), so five hours behind in December is New York's
/// winter, not Chicago's summer.
pub fn zone_for(entries: &[(i64, i64)]) -> Option<String> {
    // Zip times step by 2 s, so an offset may miss the half hour by that much.
    let snapped: Vec<(i64, i64)> = entries
        .iter()
        .map(|&(at, o)| {
            let near = (o + 900).div_euclid(1800) * 1800;
            ((o - near).abs() <= 2).then_some((at, near))
        })
        .collect::<Option<Vec<_>>>()?;
    // Entries with fixed times (flit's metadata) agree whatever the zone: no evidence.
    let evidence: Vec<(i64, i64)> = snapped.into_iter().filter(|(_, o)| *o != 0).collect();
    if evidence.is_empty() {
        return None;
    }
    let fits = |rule: &str| {
        let Ok(tz) = jiff::tz::TimeZone::posix(rule) else {
            return false;
        };
        evidence.iter().all(|&(at, o)| {
            jiff::Timestamp::from_second(at)
                .is_ok_and(|ts| i64::from(tz.to_offset(ts).seconds()) == o)
        })
    };
    let known = [
        "PST8PDT,M3.2.0,M11.1.0",
        "MST7MDT,M3.2.0,M11.1.0",
        "CST6CDT,M3.2.0,M11.1.0",
        "EST5EDT,M3.2.0,M11.1.0",
        "GMT0BST,M3.5.0/1,M10.5.0",
        "CET-1CEST,M3.5.0,M10.5.0/3",
        "EET-2EEST,M3.5.0/3,M10.5.0/4",
    ];
    if let Some(rule) = known.iter().find(|rule| fits(rule)) {
        return Some(rule.to_string());
    }
    let one = evidence[0].1;
    if evidence.iter().all(|(_, o)| *o == one) {
        // POSIX counts west positive: UTC+5:30 is `REW-5:30`.
        let (h, m) = (one.abs() / 3600, one.abs() % 3600 / 60);
        let sign = if one > 0 { "-" } else { "" };
        return Some(match m {
            0 => format!("REW{sign}{h}"),
            m => format!("REW{sign}{h}:{m:02}"),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_name_the_builders_zone_by_the_season_of_each_entry() {
        let h = 3600;
        // 2023-01-15 and 2023-07-15, noon UTC.
        let (winter, summer) = (1_673_784_000, 1_689_422_400);
        let pacific = Some("PST8PDT,M3.2.0,M11.1.0");
        assert_eq!(
            zone_for(&[(winter, -8 * h), (summer, -7 * h)]).as_deref(),
            pacific
        );
        assert_eq!(zone_for(&[(summer, -7 * h)]).as_deref(), pacific);
        assert_eq!(
            zone_for(&[(winter, -7 * h)]).as_deref(),
            Some("MST7MDT,M3.2.0,M11.1.0")
        );
        // pathspec 0.12.1: five hours behind in December is New York's winter.
        assert_eq!(
            zone_for(&[(1_702_247_204, -5 * h)]).as_deref(),
            Some("EST5EDT,M3.2.0,M11.1.0")
        );
        assert_eq!(zone_for(&[(winter, 19800)]).as_deref(), Some("REW-5:30"));
        assert_eq!(zone_for(&[(winter, 0)]), None);
        assert_eq!(
            zone_for(&[(winter, -8 * h), (winter, 0), (summer, -7 * h)]).as_deref(),
            pacific
        );
        assert_eq!(zone_for(&[(winter, 1234)]), None);
        assert_eq!(
            zone_for(&[
                (winter, -8 * h),
                (summer, -7 * h - 2),
                (summer, -7 * h),
                (summer, 0)
            ])
            .as_deref(),
            pacific
        );
        // Offsets no one rule gives at those instants.
        assert_eq!(zone_for(&[(winter, -7 * h), (winter, -8 * h)]), None);
    }

    #[test]
    fn generators_name_the_package_to_pin() {
        assert_eq!(
            generator_pin("bdist_wheel (0.36.2)").as_deref(),
            Some("wheel==0.36.2")
        );
        assert_eq!(
            generator_pin("setuptools (75.1.0)").as_deref(),
            Some("setuptools==75.1.0")
        );
        assert_eq!(
            generator_pin("poetry 1.0.7").as_deref(),
            Some("poetry-core==1.0.7")
        );
        assert_eq!(
            generator_pin("hatchling 1.18.0").as_deref(),
            Some("hatchling==1.18.0")
        );
        assert_eq!(
            generator_pin("flit 3.9.0").as_deref(),
            Some("flit-core==3.9.0")
        );
        assert_eq!(
            generator_pin("poetry-core 1.7.0").as_deref(),
            Some("poetry-core==1.7.0")
        );
        assert_eq!(generator_pin("mystery"), None);
    }

    #[test]
    fn compilers_name_their_suite_and_paths_their_folder() {
        assert_eq!(
            suite_of_gcc("GCC: (Debian 12.2.0-14) 12.2.0"),
            Some("bookworm")
        );
        assert_eq!(
            suite_of_gcc("GCC: (Debian 10.2.1-6) 10.2.1 20210110"),
            Some("bullseye")
        );
        assert_eq!(suite_of_gcc("GCC: (GNU) 13.1.0"), None);
        let blob = b"\0/tmp/build/MarkupSafe-2.1.3/src/x.c\0/tmp/build/MarkupSafe-2.1.3\0/other/six-2.1.3\0";
        assert_eq!(
            embedded_folders(blob, "markupsafe", "2.1.3"),
            ["/tmp/build", "/tmp/build"]
        );
    }

    #[test]
    fn a_wheel_auditwheel_repaired_is_said_to_need_its_image_and_repair() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, entries: &[&str]| {
            let path = dir.path().join(name);
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
            for entry in entries {
                zip.start_file(*entry, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(b"\x7fELF\0GCC: (GNU) 10.2.1 20210130 (Red Hat 10.2.1-11)\0")
                    .unwrap();
            }
            zip.finish().unwrap();
            path
        };
        let repaired = write(
            "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            &["fast/_speed.so", "fast.libs/libz-a1b2c3.so.1.2.13"],
        );
        let observed = observe(&repaired).unwrap();
        let said = observed.repaired().expect("a manylinux wheel");
        assert!(said.contains("the tag manylinux_2_17_x86_64"), "{said}");
        assert!(said.contains("1 vendored library in fast.libs"), "{said}");
        assert!(said.contains("(Red Hat 10.2.1-11)"), "{said}");
        assert!(said.contains("supplied-image"), "{said}");
        assert!(guess(&observed).reasons.contains(&said));
        let plain = write("fast-1.0-cp311-cp311-linux_x86_64.whl", &["fast/_speed.so"]);
        assert_eq!(observe(&plain).unwrap().repaired(), None);
    }

    #[test]
    fn the_search_is_bounded_and_starts_with_the_guess() {
        let g = Guess {
            pins: vec!["wheel==0.36.2".into()],
            source_date_epoch: Some(1_600_000_000),
            umask: 0o022,
            sdist_times: false,
            frozen_clock: None,
            timezone: None,
            build_path: None,
            suite: None,
            deps_months_earlier: 0,
            pins_over_sdist: false,
            setup_py: None,
            env: Default::default(),
            listing_order: None,
            python: None,
            reasons: Vec::new(),
        };
        let all = candidates(&g, 10);
        assert_eq!(all[0], g);
        assert_eq!(all.len(), 5);
        assert_eq!(candidates(&g, 2).len(), 2);
    }

    #[test]
    fn the_interpreter_of_a_wheels_day_is_the_newest_released_before_it_that_is_here() {
        let june_2017: jiff::Timestamp = "2017-06-08T14:34:35Z".parse().unwrap();
        let all = |_: u64, _: u64| true;
        assert_eq!(
            python_of_its_day(june_2017, (3, 11), all).as_deref(),
            Some("3.6")
        );
        let late_2020: jiff::Timestamp = "2020-11-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            python_of_its_day(late_2020, (3, 11), all).as_deref(),
            Some("3.9")
        );
        // Only older interpreters than the cell's, and only those this host has.
        assert_eq!(
            python_of_its_day(late_2020, (3, 8), all).as_deref(),
            Some("3.7")
        );
        let no_39 = |_: u64, minor: u64| minor != 9;
        assert_eq!(
            python_of_its_day(late_2020, (3, 11), no_39).as_deref(),
            Some("3.8")
        );
        let before_36: jiff::Timestamp = "2015-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(python_of_its_day(before_36, (3, 11), all), None);
    }

    #[test]
    fn a_build_hooks_switches_are_the_variables_it_reads_by_name() {
        let hook = r#"import os
TIANGOLO_BUILD_PACKAGE = os.getenv("TIANGOLO_BUILD_PACKAGE", "typer")
debug = os.environ.get('SOURCE_DATE_EPOCH')
flavour = os.environ[ "FLAVOUR" ]
again = os.getenv("TIANGOLO_BUILD_PACKAGE")
lower = os.getenv(name)
"#;
        assert_eq!(build_switches(hook), ["TIANGOLO_BUILD_PACKAGE", "FLAVOUR"]);
        let observed = Observed {
            dist_name: Some("typer-slim".into()),
            ..Observed::default()
        };
        let g = guess(&observed);
        let next = switched(&g, &observed, "TIANGOLO_BUILD_PACKAGE", "pdm_build.py").unwrap();
        assert_eq!(next.env["TIANGOLO_BUILD_PACKAGE"], "typer-slim");
        assert!(switched(&next, &observed, "TIANGOLO_BUILD_PACKAGE", "pdm_build.py").is_none());
    }

    #[test]
    fn the_closest_attempt_keeps_its_findings_and_varies_what_still_differs() {
        use crate::verify::wheel_diff::ArchiveAspect;
        let older = Guess {
            pins: vec!["wheel==0.40.0".into(), "setuptools==57.0.0".into()],
            source_date_epoch: None,
            umask: 0o002,
            sdist_times: true,
            frozen_clock: Some(1_684_768_334),
            timezone: None,
            build_path: None,
            suite: None,
            deps_months_earlier: 24,
            pins_over_sdist: false,
            setup_py: None,
            env: Default::default(),
            listing_order: None,
            python: None,
            reasons: Vec::new(),
        };
        // Only the modes differ: the other umask comes first, with the older toolchain kept.
        let next = neighbours(&older, &[ArchiveAspect::Permissions]);
        assert_eq!(next[0].umask, 0o022);
        assert_eq!(next[0].pins, older.pins);
        assert_eq!(next[0].deps_months_earlier, 24);
        assert_eq!(next[0].frozen_clock, older.frozen_clock);
        assert!(!next.contains(&older));
        // Only the times differ: a clock or epoch variant first, the umask kept.
        let next = neighbours(&older, &[ArchiveAspect::EntryTimestamps]);
        assert_eq!(next[0].umask, 0o002);
        assert!(
            next[0].frozen_clock != older.frozen_clock
                || next[0].source_date_epoch != older.source_date_epoch
        );
    }
}
