//! A cell is one interpreter on one platform; resolution evaluates markers against it.

use pep508_rs::pep440_rs::Version;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A cell's identifier, cibuildwheel-style: `cp39-bullseye`, `cp311-bookworm`, or `cp37` for a
/// bare interpreter version given with `--python`. It names folders (`--out DIR/<cell>/`,
/// build folders), so only letters, digits, `.`, `_` and `-`, not starting with `.`: checked
/// when made, also when read back from a CI plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CellId(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "cell id `{0}` must be letters, digits, `.`, `_` or `-`, not starting with `.` (it names folders)"
)]
pub struct BadCellId(pub String);

impl CellId {
    pub fn new(id: impl Into<String>) -> Result<Self, BadCellId> {
        let id = id.into();
        let valid = !id.is_empty()
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Self(id))
        } else {
            Err(BadCellId(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CellId {
    type Error = BadCellId;
    fn try_from(id: String) -> Result<Self, BadCellId> {
        Self::new(id)
    }
}

impl From<CellId> for String {
    fn from(id: CellId) -> String {
        id.0
    }
}

impl std::ops::Deref for CellId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for CellId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for CellId {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl std::fmt::Display for CellId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl PartialEq<str> for CellId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CellId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub id: CellId,
    /// The full interpreter version markers see (`python_full_version`).
    pub python: String,
    /// The build image this cell runs in, when it runs in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// An image the user made and the engine has (`supplied-image`: a manylinux one, say),
    /// used as it is, by reference; the cell's interpreter in it is `interpreter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supplied_image: Option<String>,
    /// The interpreter's path in a supplied image (`/opt/python/cp311-cp311/bin/python`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// The program that repairs each platform wheel after its build, in the job
    /// (`auditwheel`, as a manylinux image's release runs it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<String>,
    /// The image CI jobs of this cell run in, when the matrix names one (`ci-image`).
    #[serde(skip)]
    pub ci_image: Option<String>,
    /// Debian packages this cell's builds need beyond its image (from per-package settings):
    /// the docker backend runs the cell in its image with them added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<String>,
    #[serde(skip)]
    markers: MarkerEnvironment,
    #[serde(skip)]
    full_version: Version,
}

/// A path or program name a job runs: plain characters, so nothing a shell or the engine
/// reads otherwise.
pub fn plain_program(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+'))
}

/// A supplied image's interpreter as a matrix or a CI plan names it: an absolute plain path,
/// no `..`, to a file called `python…`. A plan is read on CI machines, where rewheel runs it
/// to ask its version: it cannot name another program.
pub fn interpreter_path(path: &str) -> bool {
    let p = std::path::Path::new(path);
    path.starts_with('/')
        && plain_program(path)
        && p.components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("python"))
}

/// The CPython minor versions rewheel builds for: the job's frontend needs 3.6 (f-strings),
/// and a version newer than the last listed has markers and tags no index has seen, so a typo
/// like `3.99` would resolve against nothing real.
pub const KNOWN_PYTHONS: &[(u64, u64)] = &[
    (3, 6),
    (3, 7),
    (3, 8),
    (3, 9),
    (3, 10),
    (3, 11),
    (3, 12),
    (3, 13),
    (3, 14),
];

/// The known versions as the error names them.
pub fn known_pythons() -> String {
    let names: Vec<String> = KNOWN_PYTHONS
        .iter()
        .map(|(major, minor)| format!("{major}.{minor}"))
        .collect();
    names.join(", ")
}

#[derive(Debug, thiserror::Error)]
#[error(
    "`{given}` is not a Python version rewheel knows; give one of {} (X.Y, or X.Y.Z for a patch release)",
    known_pythons()
)]
pub struct BadPythonVersion {
    pub given: String,
}

impl Cell {
    /// A cell for a bare interpreter version (`3.7` or `3.7.16`) on Linux x86_64.
    ///
    /// A two-part version is taken as X.Y.0, which is what `python_full_version` markers and
    /// `Requires-Python` see; give the patch release when it matters.
    pub fn for_python(given: &str) -> Result<Self, BadPythonVersion> {
        let bad = || BadPythonVersion {
            given: given.to_string(),
        };
        let version = Version::from_str(given).map_err(|_| bad())?;
        let release = version.release();
        if release.len() < 2 {
            return Err(bad());
        }
        let id = CellId::new(format!("cp{}{}", release[0], release[1])).expect("a plain cell id");
        Self::new(id, given, None)
    }

    pub fn new(id: CellId, python: &str, image: Option<String>) -> Result<Self, BadPythonVersion> {
        let bad = || BadPythonVersion {
            given: python.to_string(),
        };
        let version = Version::from_str(python).map_err(|_| bad())?;
        let release = version.release();
        if version.epoch() != 0
            || !(2..=3).contains(&release.len())
            || !KNOWN_PYTHONS.contains(&(release[0], release[1]))
            || version.any_prerelease()
            || version.is_local()
        {
            return Err(bad());
        }
        let short = format!("{}.{}", release[0], release[1]);
        let full = format!("{short}.{}", release.get(2).copied().unwrap_or(0));
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: "x86_64",
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform: "linux",
        })
        .map_err(|_| bad())?;
        Ok(Self {
            id,
            full_version: Version::from_str(&full).map_err(|_| bad())?,
            python: full,
            image,
            supplied_image: None,
            interpreter: None,
            repair: None,
            ci_image: None,
            system: Vec::new(),
            markers,
        })
    }

    /// Whether the cell runs in an image (shipped or supplied): the docker backend's cells.
    pub fn has_image(&self) -> bool {
        self.image.is_some() || self.supplied_image.is_some()
    }

    pub fn markers(&self) -> &MarkerEnvironment {
        &self.markers
    }

    /// The version `Requires-Python` is checked against.
    pub fn python_version(&self) -> &Version {
        &self.full_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pep508_rs::Requirement;

    #[test]
    fn markers_follow_the_interpreter() {
        let cell = Cell::for_python("3.7").unwrap();
        assert_eq!(cell.id, "cp37");
        assert_eq!(cell.python, "3.7.0");
        let req = Requirement::<pep508_rs::VerbatimUrl>::from_str(
            "importlib-metadata; python_version < \"3.8\" and sys_platform == \"linux\"",
        )
        .unwrap();
        assert!(req.evaluate_markers(cell.markers(), &[]));
        assert!(!req.evaluate_markers(Cell::for_python("3.9").unwrap().markers(), &[]));
    }

    #[test]
    fn only_known_interpreters_make_cells() {
        for known in ["3.6", "3.9.2", "3.14", "3.14.0"] {
            assert!(Cell::for_python(known).is_ok(), "{known}");
        }
        for unknown in [
            "2.5", "2.7", "3.99", "3.15", "4.0", "3", "3.11.2.1", "1!3.11", "3.11rc1",
        ] {
            let err = Cell::for_python(unknown).unwrap_err().to_string();
            assert!(err.contains(&format!("`{unknown}`")), "{err}");
            assert!(
                err.contains("3.6, 3.7, 3.8, 3.9, 3.10, 3.11, 3.12, 3.13, 3.14"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_interpreter_path_names_a_python_and_nothing_else() {
        for good in ["/opt/python/cp311-cp311/bin/python", "/usr/bin/python3.11"] {
            assert!(interpreter_path(good), "{good}");
        }
        for bad in [
            "python3",
            "/bin/sh",
            "/opt/python/../../bin/sh/python",
            "/usr/bin/python3; rm",
            "/usr/bin/python3 -c",
        ] {
            assert!(!interpreter_path(bad), "{bad}");
        }
    }

    #[test]
    fn cell_ids_name_folders_and_nothing_else() {
        assert!(CellId::new("cp311-bookworm").is_ok());
        for bad in ["", ".", "..", ".hidden", "a/b", "cp3 11", "cé"] {
            assert!(CellId::new(bad).is_err(), "{bad}");
        }
        let read: Result<CellId, _> = serde_json::from_str("\"../etc\"");
        assert!(
            read.is_err(),
            "a plan cannot smuggle a path in as a cell id"
        );
        let id: CellId = serde_json::from_str("\"cp39-bullseye\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"cp39-bullseye\"");
    }

    #[test]
    fn rejects_what_is_not_an_interpreter_version() {
        for bad in ["3", "banana", "1!3.7", "1.5"] {
            assert!(Cell::for_python(bad).is_err(), "{bad}");
        }
    }
}
