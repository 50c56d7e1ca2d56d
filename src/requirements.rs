//! pip requirements files: `==` pins, markers, `--hash`, `-r`/`-c` includes, comments and
//! backslash continuations. Every error names the file and line it came from.

use crate::digest::Sha256;
use pep508_rs::{Requirement, VersionOrUrl};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a requirement was written, for error messages and `--why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    CommandLine,
    File { path: PathBuf, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::CommandLine => write!(f, "command line"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub requirement: Requirement,
    /// The sha256 digests that the artifact must match (pip's hash-checking mode).
    pub hashes: Vec<Sha256>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub requirements: Vec<Entry>,
    pub constraints: Vec<Entry>,
    /// `--index-url` given inside a file; the command line wins over it.
    pub index_url: Option<String>,
    pub find_links: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequirementsError {
    #[error(transparent)]
    Pylock(#[from] crate::pylock::PylockError),
    #[error("{}: cannot read requirements file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Line { origin: Origin, message: String },
}

/// Lock files of tens of thousands of hashed pins stay far below this; `/dev/zero` does not.
const MAX_REQUIREMENTS_FILE: u64 = 64 << 20;

fn read_capped(path: &Path) -> std::io::Result<String> {
    crate::fsutil::read_text_capped(path, MAX_REQUIREMENTS_FILE, "requirements file")
}

impl Requirements {
    /// Read a requirements file and everything it includes.
    pub fn read_file(&mut self, path: &Path) -> Result<(), RequirementsError> {
        let mut seen = HashSet::new();
        self.read_file_as(path, false, &mut seen)
    }

    pub fn read_constraints_file(&mut self, path: &Path) -> Result<(), RequirementsError> {
        let mut seen = HashSet::new();
        self.read_file_as(path, true, &mut seen)
    }

    /// A PEP 751 lock: each package pinned, its sdist's hash (when the lock has one) checked
    /// as `--hash` would be.
    fn read_pylock(
        &mut self,
        path: &Path,
        text: &str,
        as_constraints: bool,
    ) -> Result<(), RequirementsError> {
        for locked in crate::pylock::read(path, text)? {
            let line = text
                .lines()
                .position(|l| l.trim() == format!("name = \"{}\"", locked.name))
                .map_or(0, |n| n + 1);
            let entry = parse_requirement(
                &format!("{}=={}", locked.name, locked.version),
                locked.sdist_sha256.into_iter().collect(),
                Origin::File {
                    path: path.to_path_buf(),
                    line,
                },
            )?;
            if as_constraints {
                self.constraints.push(entry);
            } else {
                self.requirements.push(entry);
            }
        }
        Ok(())
    }

    /// The hashes wheels must have: a requirements file's `--hash` values, or a PEP 751
    /// lock's wheel hashes (for `--expect` and `rebuild FILE`).
    pub fn read_wheel_hashes(path: &Path) -> Result<Self, RequirementsError> {
        let mut reqs = Self::default();
        if !crate::pylock::is_pylock(path) {
            reqs.read_file(path)?;
            return Ok(reqs);
        }
        let text = read_capped(path).map_err(|source| RequirementsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        for locked in crate::pylock::read(path, &text)? {
            reqs.add_arg(&format!("{}=={}", locked.name, locked.version))?;
            if let Some(last) = reqs.requirements.last_mut() {
                last.hashes = locked.wheel_sha256;
            }
        }
        Ok(reqs)
    }

    /// A requirement given as a command-line argument, like `python-dateutil==2.8.2`.
    pub fn add_arg(&mut self, spec: &str) -> Result<(), RequirementsError> {
        let entry = parse_requirement(spec, Vec::new(), Origin::CommandLine)?;
        self.requirements.push(entry);
        Ok(())
    }

    fn read_file_as(
        &mut self,
        path: &Path,
        as_constraints: bool,
        seen: &mut HashSet<PathBuf>,
    ) -> Result<(), RequirementsError> {
        let text = read_capped(path).map_err(|source| RequirementsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if crate::pylock::is_pylock(path) {
            return self.read_pylock(path, &text, as_constraints);
        }
        // An include cycle (a.txt -r b.txt -r a.txt) would otherwise recurse forever.
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if !seen.insert(key) {
            return Ok(());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for (line_no, line) in logical_lines(&text) {
            let origin = Origin::File {
                path: path.to_path_buf(),
                line: line_no,
            };
            self.parse_line(&line, origin, base, as_constraints, seen)?;
        }
        Ok(())
    }

    fn parse_line(
        &mut self,
        line: &str,
        origin: Origin,
        base: &Path,
        as_constraints: bool,
        seen: &mut HashSet<PathBuf>,
    ) -> Result<(), RequirementsError> {
        let line = strip_comment(line).trim();
        if line.is_empty() {
            return Ok(());
        }
        let fail = |message: String| RequirementsError::Line {
            origin: origin.clone(),
            message,
        };
        if line.starts_with('-') {
            let (option, value) = split_option(line);
            let value = value.ok_or_else(|| fail(format!("option `{option}` needs a value")));
            return match option {
                "-r" | "--requirement" => {
                    self.read_file_as(&base.join(value?), as_constraints, seen)
                }
                "-c" | "--constraint" => self.read_file_as(&base.join(value?), true, seen),
                "-i" | "--index-url" => {
                    self.index_url = Some(value?.to_string());
                    Ok(())
                }
                "-f" | "--find-links" => {
                    self.find_links.push(base.join(value?));
                    Ok(())
                }
                // Options that change nothing for a from-source rebuild.
                "--require-hashes" | "--no-binary" | "--only-binary" | "--pre"
                | "--prefer-binary" | "--trusted-host" | "--extra-index-url" => {
                    tracing::warn!("{origin}: `{option}` is ignored by rewheel");
                    Ok(())
                }
                "-e" | "--editable" => Err(fail(
                    "editable requirements cannot be rebuilt from an index; pin `name==version` instead"
                        .into(),
                )),
                _ => Err(fail(format!("unknown option `{option}`"))),
            };
        }
        let (spec, hashes) = split_hashes(line).map_err(fail)?;
        let entry = parse_requirement(spec, hashes, origin)?;
        if as_constraints {
            self.constraints.push(entry);
        } else {
            self.requirements.push(entry);
        }
        Ok(())
    }
}

fn parse_requirement(
    spec: &str,
    hashes: Vec<Sha256>,
    origin: Origin,
) -> Result<Entry, RequirementsError> {
    let requirement =
        crate::names::parse_requirement(spec.trim()).map_err(|err| RequirementsError::Line {
            origin: origin.clone(),
            message: format!(
                "invalid requirement `{}`: {}",
                spec.trim(),
                first_line(&err.to_string())
            ),
        })?;
    if let Some(VersionOrUrl::Url(url)) = &requirement.version_or_url {
        return Err(RequirementsError::Line {
            origin,
            message: format!(
                "`{}` points at a URL ({url}); rewheel rebuilds from an index, so pin `name==version`",
                requirement.name
            ),
        });
    }
    Ok(Entry {
        requirement,
        hashes,
        origin,
    })
}

/// Join backslash continuations, keeping the number of the line each logical line starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let (start, mut buf) = current.take().unwrap_or((index + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(head) => {
                buf.push_str(head);
                buf.push(' ');
                current = Some((start, buf));
            }
            None => {
                buf.push_str(raw);
                out.push((start, buf));
            }
        }
    }
    if let Some(last) = current {
        out.push(last);
    }
    out
}

/// pip treats `#` as a comment only at the start or after whitespace (URLs keep their fragments).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn split_option(line: &str) -> (&str, Option<&str>) {
    // Split on characters, not bytes: the line may hold any Unicode (found by property tests).
    let (option, rest) = match line
        .char_indices()
        .find(|(_, c)| *c == '=' || c.is_whitespace())
    {
        Some((at, c)) => (&line[..at], line[at + c.len_utf8()..].trim()),
        None => (line, ""),
    };
    // `-rfile.txt` is valid pip syntax too.
    if option.len() > 2 && !option.starts_with("--") && option.is_char_boundary(2) {
        return (&option[..2], Some(line[2..].trim()));
    }
    (option, (!rest.is_empty()).then_some(rest))
}

/// Split `pkg==1.0 --hash=sha256:abc --hash sha256:def` into the spec and its digests.
fn split_hashes(line: &str) -> Result<(&str, Vec<Sha256>), String> {
    let Some(at) = line.find(" --") else {
        return Ok((line, Vec::new()));
    };
    let (spec, options) = line.split_at(at);
    let mut hashes = Vec::new();
    let mut words = options.split_whitespace().peekable();
    while let Some(word) = words.next() {
        let value = match word.strip_prefix("--hash") {
            Some("") => words.next().ok_or("`--hash` needs a value")?,
            Some(rest) if rest.starts_with('=') => &rest[1..],
            _ => return Err(format!("unsupported per-requirement option `{word}`")),
        };
        let Some((algo, digest)) = value.split_once(':') else {
            return Err(format!("hash `{value}` is not of the form sha256:HEX"));
        };
        if algo != "sha256" {
            return Err(format!(
                "hash algorithm `{algo}` is not supported; use sha256"
            ));
        }
        let Ok(digest) = Sha256::parse(&digest.to_ascii_lowercase()) else {
            return Err(format!("`{digest}` is not a sha256 digest (64 hex digits)"));
        };
        hashes.push(digest);
    }
    Ok((spec, hashes))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        path
    }

    #[test]
    fn reads_pins_hashes_markers_includes_and_continuations() {
        let dir = tempfile::tempdir().unwrap();
        let digest = "a".repeat(64);
        write(
            dir.path(),
            "c.txt",
            "setuptools-scm==6.4.2  # pin the build tool\n",
        );
        let main = write(
            dir.path(),
            "lock.txt",
            &format!(
                "# a lock\n-c c.txt\npython-dateutil==2.8.2 \\\n    --hash=sha256:{digest}\n\
                 importlib-metadata==4.12.0 ; python_version < \"3.8\"\n\n-r more.txt\n"
            ),
        );
        write(dir.path(), "more.txt", "six==1.16.0\n");
        let mut reqs = Requirements::default();
        reqs.read_file(&main).unwrap();
        let names: Vec<_> = reqs
            .requirements
            .iter()
            .map(|e| e.requirement.name.to_string())
            .collect();
        assert_eq!(names, ["python-dateutil", "importlib-metadata", "six"]);
        assert_eq!(reqs.requirements[0].hashes, [digest.as_str()]);
        assert_eq!(
            reqs.requirements[0].origin,
            Origin::File {
                path: main.clone(),
                line: 3
            }
        );
        assert!(!reqs.requirements[1].requirement.marker.is_true());
        assert_eq!(
            reqs.constraints[0].requirement.name.to_string(),
            "setuptools-scm"
        );
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bad.txt", "six==1.16.0\n\nfoo===>1\n");
        let err = Requirements::default()
            .read_file(&path)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{}:3: invalid requirement", path.display())),
            "{err}"
        );
    }

    #[test]
    fn bad_hashes_and_options_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "h.txt", "six==1.16.0 --hash=md5:abcd\n");
        let err = Requirements::default()
            .read_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(":1: hash algorithm `md5`"), "{err}");
        let path = write(dir.path(), "o.txt", "--frobnicate\n");
        let err = Requirements::default()
            .read_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown option `--frobnicate`"), "{err}");
    }

    #[test]
    fn comments_only_after_whitespace() {
        assert_eq!(strip_comment("a==1 # c"), "a==1 ");
        assert_eq!(strip_comment("http://x/y#egg=z"), "http://x/y#egg=z");
    }
}
