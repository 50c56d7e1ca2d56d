//! A local folder of distributions, like pip's `--find-links DIR`.

use super::file::{IndexError, IndexFile, io_error};
use crate::names::{PackageName, is_sdist_filename, parse_sdist_filename, parse_wheel_filename};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub struct Folder {
    entries: Vec<(String, PathBuf)>,
    /// The entries that could be each project's, by every name their filename could start
    /// with. Each project of a resolution asks once: scanning the whole folder each time made
    /// a folder of 5,000 sdists cost 25 million filename parses, a second of every resolve.
    by_name: HashMap<PackageName, Vec<usize>>,
}

/// Every project a distribution's filename could name: an sdist's project may itself hold
/// `-` (`foo-bar-1.0.tar.gz`), so each cut before a `-` is one. Too many is harmless, since
/// `files_for` parses each filename against the project asked for.
fn candidate_names(filename: &str) -> impl Iterator<Item = PackageName> + '_ {
    filename
        .match_indices('-')
        .filter_map(|(at, _)| PackageName::from_str(&filename[..at]).ok())
}

impl Folder {
    pub fn scan(dir: &Path) -> Result<Self, IndexError> {
        let read = std::fs::read_dir(dir).map_err(io_error(dir))?;
        let mut entries = Vec::new();
        for entry in read {
            let entry = entry.map_err(io_error(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_file() && (is_sdist_filename(&name) || name.ends_with(".whl")) {
                let path = std::path::absolute(entry.path()).map_err(io_error(dir))?;
                entries.push((name, path));
            }
        }
        entries.sort();
        let mut by_name: HashMap<PackageName, Vec<usize>> = HashMap::new();
        for (i, (name, _)) in entries.iter().enumerate() {
            for project in candidate_names(name) {
                let of_project = by_name.entry(project).or_default();
                // `a-a-1.0.tar.gz` is one file, whichever cut named it.
                if of_project.last() != Some(&i) {
                    of_project.push(i);
                }
            }
        }
        Ok(Self { entries, by_name })
    }

    pub fn files_for(&self, project: &PackageName) -> Vec<IndexFile> {
        self.by_name
            .get(project)
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i])
            .filter(|(name, _)| {
                parse_sdist_filename(name, project).is_some()
                    || parse_wheel_filename(name).is_some_and(|(n, _)| &n == project)
            })
            .map(|(name, path)| IndexFile {
                filename: name.clone(),
                url: url::Url::from_file_path(path)
                    .expect("scanned paths are absolute")
                    .to_string(),
                ..Default::default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(folder: &Folder, project: &str) -> Vec<String> {
        folder
            .files_for(&PackageName::from_str(project).unwrap())
            .into_iter()
            .map(|f| f.filename)
            .collect()
    }

    #[test]
    fn each_project_gets_its_files_and_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "foo-1.0.tar.gz",
            "foo-bar-2.0.tar.gz",
            "Foo_Bar-2.1.zip",
            "foo_bar-2.0-py3-none-any.whl",
            "foo-1.0-py3-none-any.whl",
            "a-a-1.0.tar.gz",
            "a-1.0.tar.gz",
            "notes-about-foo.txt",
        ] {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        let folder = Folder::scan(dir.path()).unwrap();
        assert_eq!(
            names(&folder, "foo"),
            ["foo-1.0-py3-none-any.whl", "foo-1.0.tar.gz"]
        );
        assert_eq!(
            names(&folder, "foo.bar"),
            [
                "Foo_Bar-2.1.zip",
                "foo-bar-2.0.tar.gz",
                "foo_bar-2.0-py3-none-any.whl"
            ]
        );
        assert_eq!(names(&folder, "a-a"), ["a-a-1.0.tar.gz"]);
        assert_eq!(names(&folder, "a"), ["a-1.0.tar.gz"]);
        assert!(names(&folder, "notes").is_empty());
        assert!(names(&folder, "bar").is_empty());
    }
}
