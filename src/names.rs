//! Package names and distribution filenames: the vocabulary every other module speaks.

pub use pep508_rs::PackageName;
use pep508_rs::pep440_rs::Version;
use std::str::FromStr;

/// The archive formats an sdist may come in; anything else on an index is a wheel or an egg.
const SDIST_SUFFIXES: &[&str] = &[".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar"];

/// What an sdist filename says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdistFilename {
    pub name: PackageName,
    pub version: Version,
}

/// Parse `python-dateutil-2.8.2.tar.gz` knowing the project is `python-dateutil`.
///
/// Legacy sdists put unnormalized names with dashes before the version, so the split point is
/// found by trying each dash whose left side normalizes to the project's name.
pub fn parse_sdist_filename(filename: &str, project: &PackageName) -> Option<SdistFilename> {
    let stem = SDIST_SUFFIXES
        .iter()
        .find_map(|suffix| strip_suffix_ignore_case(filename, suffix))?;
    for (at, _) in stem.match_indices('-') {
        let (left, right) = (&stem[..at], &stem[at + 1..]);
        let Ok(name) = PackageName::from_str(left) else {
            continue;
        };
        if &name != project {
            continue;
        }
        if let Ok(version) = Version::from_str(right) {
            return Some(SdistFilename { name, version });
        }
    }
    None
}

/// Parse a wheel filename (`name-version(-build)?-py-abi-plat.whl`) into name and version.
pub fn parse_wheel_filename(filename: &str) -> Option<(PackageName, Version)> {
    let stem = strip_suffix_ignore_case(filename, ".whl")?;
    let mut parts = stem.split('-');
    let name = PackageName::from_str(parts.next()?).ok()?;
    let version = Version::from_str(parts.next()?).ok()?;
    Some((name, version))
}

/// Parse a PEP 508 requirement. pep508_rs 0.9 panics on a name or an extra that ends in `-`,
/// `.` or `_` (`foo-=1`, `foo[h-]`, found by the property tests), so both are checked first:
/// untrusted metadata must get an error, not a crash.
pub fn parse_requirement(text: &str) -> Result<pep508_rs::Requirement, String> {
    // The parser's cursor also slices markers by bytes where it counted characters, so any
    // non-ASCII text can crash it (`h;""<''¡`, found by the long property run). Requirements
    // are ASCII by PEP 508's grammar in all but exotic URLs and marker values: refuse the rest.
    if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "the non-ASCII character `{c}` (U+{:04X}); requirements are ASCII",
            c as u32
        ));
    }
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let trimmed = text.trim_start();
    let name_end = trimmed.find(|c: char| !is_name(c)).unwrap_or(trimmed.len());
    let name = &trimmed[..name_end];
    if !name.is_empty() {
        PackageName::from_str(name).map_err(|err| err.to_string())?;
    }
    if let Some(extras) = trimmed[name_end..].trim_start().strip_prefix('[') {
        let extras = extras.split(']').next().unwrap_or_default();
        for extra in extras.split(',') {
            let extra = extra.trim_start();
            let run = &extra[..extra.find(|c: char| !is_name(c)).unwrap_or(extra.len())];
            if !run.is_empty() {
                pep508_rs::ExtraName::from_str(run).map_err(|err| err.to_string())?;
            }
        }
    }
    // Only the message: the error's own Display slices its input by bytes as if by characters
    // and panics on non-ASCII text (also found by the property tests).
    pep508_rs::Requirement::from_str(text).map_err(|err| err.message.to_string())
}

pub fn is_sdist_filename(filename: &str) -> bool {
    SDIST_SUFFIXES
        .iter()
        .any(|suffix| strip_suffix_ignore_case(filename, suffix).is_some())
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> PackageName {
        PackageName::from_str(s).unwrap()
    }

    #[test]
    fn names_that_would_crash_the_pep508_parser_are_errors() {
        for text in [
            "foo-=1",
            "h.=a",
            "x_>=2",
            "a-",
            "foo[h-]",
            "foo [ok, h-]>=1",
            "h[a \u{a1}",
            "h;\"\"<''\u{a1}\t",
        ] {
            assert!(parse_requirement(text).is_err(), "{text}");
        }
        assert!(parse_requirement("foo-bar>=1; python_version < '3.8'").is_ok());
    }

    #[test]
    fn legacy_dashed_names_split_at_the_version() {
        let parsed = parse_sdist_filename("python-dateutil-2.8.2.tar.gz", &name("python_dateutil"));
        assert_eq!(parsed.unwrap().version.to_string(), "2.8.2");
        let parsed = parse_sdist_filename("setuptools_scm-7.0.5.tar.gz", &name("setuptools-scm"));
        assert_eq!(parsed.unwrap().version.to_string(), "7.0.5");
        let parsed = parse_sdist_filename("Foo-Bar-1.0rc1.ZIP", &name("foo-bar"));
        assert_eq!(parsed.unwrap().version.to_string(), "1.0rc1");
    }

    #[test]
    fn other_projects_and_wheels_are_not_sdists_of_this_project() {
        assert!(parse_sdist_filename("six-1.16.0.tar.gz", &name("dateutil")).is_none());
        assert!(parse_sdist_filename("six-1.16.0-py2.py3-none-any.whl", &name("six")).is_none());
        let (n, v) = parse_wheel_filename("six-1.16.0-py2.py3-none-any.whl").unwrap();
        assert_eq!(
            (n.to_string(), v.to_string()),
            ("six".into(), "1.16.0".into())
        );
    }
}
