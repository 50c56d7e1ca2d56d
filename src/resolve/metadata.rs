//! Core metadata (PKG-INFO, METADATA) and setuptools' `requires.txt`, read as text, never run.

use pep508_rs::pep440_rs::Version;
use std::str::FromStr;

#[derive(Debug, Default, Clone)]
pub struct CoreMetadata {
    pub metadata_version: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
    pub dynamic: Vec<String>,
}

impl CoreMetadata {
    /// Parse the RFC 822-style header block; the body (the long description) is ignored.
    pub fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let mut meta = CoreMetadata::default();
        let mut last: Option<(String, String)> = None;
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = last.as_mut() {
                    value.push('\n');
                    value.push_str(line.trim());
                }
                continue;
            }
            if let Some(done) = last.take() {
                fields.push(done);
            }
            if let Some((key, value)) = line.split_once(':') {
                last = Some((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        fields.extend(last);
        for (key, value) in fields {
            match key.as_str() {
                "metadata-version" => meta.metadata_version = Some(value),
                "name" => meta.name = Some(value),
                "version" => meta.version = Some(value),
                "requires-dist" => meta.requires_dist.push(value),
                "requires-python" if !value.is_empty() => meta.requires_python = Some(value),
                "dynamic" => meta.dynamic.push(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        meta
    }

    /// From metadata 2.2 on (PEP 643), a field not marked Dynamic in an sdist is what every wheel
    /// built from it will say.
    pub fn requires_dist_is_reliable(&self) -> bool {
        let at_least_2_2 = self
            .metadata_version
            .as_deref()
            .and_then(|v| Version::from_str(v).ok())
            .is_some_and(|v| v >= Version::new([2, 2]));
        at_least_2_2 && !self.dynamic.iter().any(|d| d == "requires-dist")
    }
}

/// Turn setuptools' `requires.txt` (`[extra:marker]` sections) into Requires-Dist strings.
pub fn parse_requires_txt(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut section_marker: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (extra, marker) = match section.split_once(':') {
                Some((extra, marker)) => (extra.trim(), marker.trim()),
                None => (section.trim(), ""),
            };
            section_marker = match (extra.is_empty(), marker.is_empty()) {
                (true, true) => None,
                (true, false) => Some(marker.to_string()),
                (false, true) => Some(format!("extra == \"{extra}\"")),
                (false, false) => Some(format!("({marker}) and extra == \"{extra}\"")),
            };
            continue;
        }
        match &section_marker {
            None => out.push(line.to_string()),
            Some(marker) => out.push(format!("{line} ; {marker}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_txt_sections_become_markers() {
        let reqs = parse_requires_txt(
            b"packaging>=20.0\nsetuptools\n\n[:python_version < \"3.8\"]\nimportlib-metadata\n\n\
              [toml]\ntomli>=1.0.0\n\n[test:python_version>=\"3.7\"]\npytest\n",
        );
        assert_eq!(
            reqs,
            [
                "packaging>=20.0",
                "setuptools",
                "importlib-metadata ; python_version < \"3.8\"",
                "tomli>=1.0.0 ; extra == \"toml\"",
                "pytest ; (python_version>=\"3.7\") and extra == \"test\"",
            ]
        );
    }

    #[test]
    fn pkg_info_reliability_follows_pep_643() {
        let old = CoreMetadata::parse(
            b"Metadata-Version: 2.1\nName: x\nRequires-Dist: six\n\nbody\nRequires-Dist: no",
        );
        assert_eq!(old.requires_dist, ["six"]);
        assert!(!old.requires_dist_is_reliable());
        let new = CoreMetadata::parse(b"Metadata-Version: 2.2\nName: x\nDynamic: Version\n");
        assert!(new.requires_dist_is_reliable());
        let dynamic = CoreMetadata::parse(b"Metadata-Version: 2.3\nDynamic: Requires-Dist\n");
        assert!(!dynamic.requires_dist_is_reliable());
    }
}
