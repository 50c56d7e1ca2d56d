//! The ids rewheel gives runs and CI jobs, checked wherever one is made or read back: both name
//! files (a run's lock and its check folder, a job's result document and log), and both come
//! back from outside (`--resume`, `runs show`, the store, plan and result documents).

use crate::digest::shown;
use serde::{Deserialize, Serialize};

/// A run of the store: the second it started, `20261121-204906`, and `-2`, `-3`… for further
/// runs started in the same second.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "`{}` is not a run id (like 20261121-204906); `rewheel runs list` shows them",
    shown(.0)
)]
pub struct BadRunId(pub String);

/// One job of a CI plan, `cp311-bookworm/six-1.16.0` (`.stage2` for bootstrap stages).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "job id `{}` does not make a plain file name (its files are named by it, `/` as `__`)",
    shown(.0)
)]
pub struct BadJobId(pub String);

fn digits(part: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
}

impl RunId {
    pub fn parse(id: &str) -> Result<Self, BadRunId> {
        let mut parts = id.split('-');
        let valid = parts.next().is_some_and(|day| digits(day, 8..=8))
            && parts.next().is_some_and(|time| digits(time, 6..=6))
            && parts.next().is_none_or(|n| digits(n, 1..=9))
            && parts.next().is_none();
        if valid {
            Ok(Self(id.to_string()))
        } else {
            Err(BadRunId(id.to_string()))
        }
    }

    /// The id of the `n`th run started in the second of `at` (counting from 1).
    pub fn started(at: jiff::Timestamp, n: u32) -> Self {
        let second = at.strftime("%Y%m%d-%H%M%S");
        Self(match n {
            1 => second.to_string(),
            n => format!("{second}-{n}"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl JobId {
    pub fn parse(id: &str) -> Result<Self, BadJobId> {
        let stem = Self::stem_of(id);
        let plain = !stem.is_empty()
            && stem.len() <= 255
            && stem != "."
            && stem != ".."
            && !stem.contains('\0');
        if plain {
            Ok(Self(id.to_string()))
        } else {
            Err(BadJobId(id.to_string()))
        }
    }

    /// `cp311-bookworm/six-1.16.0`, and `.stage2` for the stages of a bootstrap build.
    pub fn of(cell: &str, name: &str, version: &str, stage: u32) -> Result<Self, BadJobId> {
        Self::parse(&match stage {
            0 => format!("{cell}/{name}-{version}"),
            s => format!("{cell}/{name}-{version}.stage{s}"),
        })
    }

    /// The id as the stem of its files' names.
    pub fn file_stem(&self) -> String {
        Self::stem_of(&self.0)
    }

    fn stem_of(id: &str) -> String {
        id.replace('/', "__")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_id {
    ($t:ident, $bad:ident) => {
        impl TryFrom<String> for $t {
            type Error = $bad;
            fn try_from(id: String) -> Result<Self, $bad> {
                Self::parse(&id)
            }
        }

        impl From<$t> for String {
            fn from(id: $t) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $t {
            type Err = $bad;
            fn from_str(id: &str) -> Result<Self, $bad> {
                Self::parse(id)
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::path::Path> for $t {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(&self.0)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(RunId, BadRunId);
string_id!(JobId, BadJobId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_is_the_second_it_started_and_its_count() {
        for good in ["20261121-204906", "20261121-204906-2", "20200101-000000-12"] {
            assert_eq!(RunId::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "x",
            "latest",
            "2026112-204906",
            "20261121-20490",
            "20261121_204906",
            "20261121-204906-",
            "20261121-204906-2-3",
            "20261121-204906-a",
            "../20261121-204906",
            "20261121-204906/..",
            "２0261121-204906",
        ] {
            assert!(RunId::parse(bad).is_err(), "{bad}");
        }
        let at: jiff::Timestamp = "2026-11-21T20:49:06Z".parse().unwrap();
        assert_eq!(RunId::started(at, 1), "20261121-204906");
        assert_eq!(RunId::started(at, 3), "20261121-204906-3");
        assert!(RunId::parse(&RunId::started(at, 3)).is_ok());
    }

    #[test]
    fn a_job_id_makes_a_plain_file_name() {
        let id = JobId::of("cp311", "lib", "2.0", 0).unwrap();
        assert_eq!(id, "cp311/lib-2.0");
        assert_eq!(id.file_stem(), "cp311__lib-2.0");
        assert_eq!(
            JobId::of("cp311-bookworm", "six", "1.16.0", 2).unwrap(),
            "cp311-bookworm/six-1.16.0.stage2"
        );
        for bad in ["", ".", "..", "a\0b", &"x".repeat(256), &"/".repeat(128)] {
            assert!(JobId::parse(bad).is_err(), "{bad:?}");
        }
        // `/` becomes `__`: a slash never reaches a file name, so `../x` names `..__x`.
        assert_eq!(JobId::parse("../x").unwrap().file_stem(), "..__x");
    }

    #[test]
    fn ids_are_plain_strings_in_documents_and_bad_ones_are_refused_by_value() {
        let run: RunId = serde_json::from_str("\"20261121-204906\"").unwrap();
        assert_eq!(serde_json::to_string(&run).unwrap(), "\"20261121-204906\"");
        let err = serde_json::from_str::<RunId>("\"../etc\"").unwrap_err();
        assert!(
            err.to_string().contains("`../etc` is not a run id"),
            "{err}"
        );
        let job: JobId = serde_json::from_str("\"cp311/lib-2.0\"").unwrap();
        assert_eq!(serde_json::to_string(&job).unwrap(), "\"cp311/lib-2.0\"");
        let err = serde_json::from_str::<JobId>("\"..\"").unwrap_err();
        assert!(err.to_string().contains("job id `..`"), "{err}");
    }
}
