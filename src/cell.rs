//! A cell is one interpreter on one platform; resolution evaluates markers against it.

use pep508_rs::pep440_rs::Version;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use serde::Serialize;
use std::str::FromStr;

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// cibuildwheel-style identifier: `cp39-bullseye`, `cp311-bookworm`, or `cp37` for a bare
    /// interpreter version given with `--python`.
    pub id: String,
    /// The full interpreter version markers see (`python_full_version`).
    pub python: String,
    /// The build image this cell runs in, when it runs in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip)]
    markers: MarkerEnvironment,
    #[serde(skip)]
    full_version: Version,
}

#[derive(Debug, thiserror::Error)]
#[error("`{given}` is not a Python version like 3.9 or 3.11.2")]
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
        if version.epoch() != 0 || !(2..=3).contains(&release.len()) || release[0] < 2 {
            return Err(bad());
        }
        let id = format!("cp{}{}", release[0], release[1]);
        Self::new(id, given, None)
    }

    pub fn new(id: String, python: &str, image: Option<String>) -> Result<Self, BadPythonVersion> {
        let bad = || BadPythonVersion {
            given: python.to_string(),
        };
        let version = Version::from_str(python).map_err(|_| bad())?;
        let release = version.release();
        if release.len() < 2 {
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
            markers,
        })
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
    fn rejects_what_is_not_an_interpreter_version() {
        for bad in ["3", "banana", "1!3.7", "1.5"] {
            assert!(Cell::for_python(bad).is_err(), "{bad}");
        }
    }
}
