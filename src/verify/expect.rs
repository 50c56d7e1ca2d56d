//! `--expect FILE`: do the built wheels hash as a requirements file says (`name==ver
//! --hash=sha256:…`, one hash per interpreter allowed)? How teams check that a rebuild matches
//! the wheels they signed.

use crate::build::FinalJob;
use crate::digest::Sha256;
use crate::names::PackageName;
use crate::requirements::Requirements;
use serde::Serialize;
use std::str::FromStr;

/// The status of a wheel whose hash is none of those listed: the one that fails.
pub const MISMATCH: &str = "mismatch";

#[derive(Debug, Serialize)]
pub struct Expectation {
    pub cell: String,
    pub wheel: String,
    pub sha256: Sha256,
    /// `match`, `mismatch`, or `not-listed` (no line with hashes for this name and version).
    pub status: &'static str,
    pub expected: Vec<Sha256>,
}

pub fn check(
    file: &std::path::Path,
    finals: &[FinalJob],
) -> Result<Vec<Expectation>, crate::requirements::RequirementsError> {
    let reqs = Requirements::read_wheel_hashes(file)?;
    let mut out = Vec::new();
    for f in finals {
        let Ok(name) = PackageName::from_str(&f.spec.name) else {
            continue;
        };
        let entry = reqs.requirements.iter().find(|e| {
            e.requirement.name == name
                && !e.hashes.is_empty()
                && e.requirement
                    .version_or_url
                    .as_ref()
                    .is_some_and(|v| match v {
                        pep508_rs::VersionOrUrl::VersionSpecifier(spec) => {
                            spec.iter().any(|s| {
                                s.version().to_string() == f.spec.version
                                    || s.contains(&f.spec.version.parse().unwrap_or_else(|_| {
                                        pep508_rs::pep440_rs::Version::new([0])
                                    }))
                            })
                        }
                        pep508_rs::VersionOrUrl::Url(_) => false,
                    })
        });
        let (status, expected) = match entry {
            None => ("not-listed", Vec::new()),
            Some(e) if e.hashes.contains(&f.sha256) => ("match", e.hashes.clone()),
            Some(e) => (MISMATCH, e.hashes.clone()),
        };
        out.push(Expectation {
            cell: f.spec.cell.to_string(),
            wheel: f.filename.clone(),
            sha256: f.sha256.clone(),
            status,
            expected,
        });
    }
    Ok(out)
}

pub fn print(expectations: &[Expectation]) -> bool {
    let mut ok = true;
    for e in expectations {
        match e.status {
            "match" => println!("  expect ok        {}/{}", e.cell, e.wheel),
            MISMATCH => {
                ok = false;
                println!(
                    "  expect MISMATCH  {}/{}: sha256 {} is none of {}",
                    e.cell,
                    e.wheel,
                    e.sha256,
                    e.expected.join(", ")
                );
            }
            _ => println!("  expect (none)    {}/{}: no hash listed", e.cell, e.wheel),
        }
    }
    ok
}
