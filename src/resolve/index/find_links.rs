//! A local folder of distributions, like pip's `--find-links DIR`.

use super::file::{IndexError, IndexFile, io_error};
use crate::names::{PackageName, is_sdist_filename, parse_sdist_filename, parse_wheel_filename};
use std::path::{Path, PathBuf};

pub struct Folder {
    entries: Vec<(String, PathBuf)>,
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
        Ok(Self { entries })
    }

    pub fn files_for(&self, project: &PackageName) -> Vec<IndexFile> {
        self.entries
            .iter()
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
