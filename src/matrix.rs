//! Matrix files (`matrices/*.toml`): the cells to work on and the inputs they share.

use crate::cell::{Cell, CellId};
use globset::GlobBuilder;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MatrixFile {
    #[serde(default)]
    description: Option<String>,
    /// Requirements files, relative to the matrix file.
    #[serde(default)]
    requirements: Vec<PathBuf>,
    #[serde(default)]
    build_constraints: Vec<PathBuf>,
    #[serde(default)]
    index_url: Option<String>,
    cells: BTreeMap<String, CellSpec>,
    /// Per-package build settings, as a `--settings` file has them.
    #[serde(default)]
    packages: BTreeMap<String, crate::packages::PackageSpec>,
    /// Requirements the images satisfy with their own tools.
    #[serde(default)]
    provided: BTreeMap<String, crate::packages::ProvidedSpec>,
    #[serde(default)]
    defaults: crate::packages::DefaultsSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CellSpec {
    /// Full interpreter version of the cell (what the image's python3 reports).
    python: String,
    #[serde(default)]
    image: Option<String>,
    /// The image this cell's CI jobs run in (emitted GitLab and GitHub files).
    #[serde(default)]
    ci_image: Option<String>,
    /// An image the engine has that the user made (a manylinux one), instead of `image`.
    #[serde(default)]
    supplied_image: Option<String>,
    /// The interpreter's path in the supplied image.
    #[serde(default)]
    interpreter: Option<String>,
    /// The program that repairs platform wheels after the build (`auditwheel`).
    #[serde(default)]
    repair: Option<String>,
}

#[derive(Debug)]
pub struct Matrix {
    pub path: PathBuf,
    pub description: Option<String>,
    pub requirements: Vec<PathBuf>,
    pub build_constraints: Vec<PathBuf>,
    pub index_url: Option<String>,
    pub cells: Vec<Cell>,
    pub packages: crate::packages::PackageSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("{}: cannot read matrix file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), message.trim_end())]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Packages(#[from] crate::packages::PackagesError),
    #[error("`--cells {glob}` is not a valid pattern: {message}")]
    BadGlob { glob: String, message: String },
    #[error("`--cells {glob}` matches no cell of {}; it has: {available}", path.display())]
    NoMatch {
        glob: String,
        path: PathBuf,
        available: String,
    },
}

/// A matrix of hundreds of cells is a few KiB; `--matrix /dev/zero` is not a matrix.
const MAX_MATRIX_FILE: u64 = 16 << 20;

impl Matrix {
    pub fn load(path: &Path) -> Result<Self, MatrixError> {
        let text = crate::fsutil::read_text_capped(path, MAX_MATRIX_FILE, "matrix file").map_err(
            |source| MatrixError::Read {
                path: path.to_path_buf(),
                source,
            },
        )?;
        let invalid = |message: String| MatrixError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // toml's message carries line and column and shows the offending line.
        let file: MatrixFile = toml::from_str(&text).map_err(|err| invalid(err.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut cells = Vec::new();
        for (id, spec) in file.cells {
            // Cell ids become folder names (`--out DIR/<cell>/`, build folders): plain names only.
            let cell_id = CellId::new(id.clone()).map_err(|err| invalid(err.to_string()))?;
            if spec.image.is_some() && spec.supplied_image.is_some() {
                return Err(invalid(format!(
                    "cells.{id}: give `image` (a shipped recipe) or `supplied-image` (one the engine has), not both"
                )));
            }
            if spec.interpreter.is_some() && spec.supplied_image.is_none() {
                return Err(invalid(format!(
                    "cells.{id}.interpreter: only a supplied image's interpreter is named; a shipped image runs its python3"
                )));
            }
            if let Some(path) = &spec.interpreter
                && !crate::cell::interpreter_path(path)
            {
                return Err(invalid(format!(
                    "cells.{id}.interpreter: `{path}` is not an interpreter's absolute path of plain characters (`/opt/python/cp311-cp311/bin/python`)"
                )));
            }
            if let Some(repair) = &spec.repair
                && !crate::cell::plain_program(repair)
            {
                return Err(invalid(format!(
                    "cells.{id}.repair: `{repair}` is not a program name or path of plain characters\nhint: repair = \"auditwheel\""
                )));
            }
            let mut cell = Cell::new(cell_id, &spec.python, spec.image)
                .map_err(|err| invalid(format!("cells.{id}.python: {err}")))?;
            cell.ci_image = spec.ci_image;
            cell.supplied_image = spec.supplied_image;
            cell.interpreter = spec.interpreter;
            cell.repair = spec.repair;
            cells.push(cell);
        }
        Ok(Self {
            path: path.to_path_buf(),
            description: file.description,
            requirements: file.requirements.iter().map(|p| base.join(p)).collect(),
            build_constraints: file
                .build_constraints
                .iter()
                .map(|p| base.join(p))
                .collect(),
            index_url: file.index_url,
            cells,
            packages: crate::packages::PackageSettings::from_specs(
                path,
                file.packages,
                file.provided,
                file.defaults,
            )?,
        })
    }

    /// Cells whose id matches a glob like `cp3{9,11}-*`; all cells without a glob.
    pub fn select(&self, glob: Option<&str>) -> Result<Vec<Cell>, MatrixError> {
        let Some(glob) = glob else {
            return Ok(self.cells.clone());
        };
        let matcher = GlobBuilder::new(glob)
            .literal_separator(false)
            .build()
            .map_err(|err| MatrixError::BadGlob {
                glob: glob.to_string(),
                message: err.kind().to_string(),
            })?
            .compile_matcher();
        let chosen: Vec<Cell> = self
            .cells
            .iter()
            .filter(|cell| matcher.is_match(&cell.id))
            .cloned()
            .collect();
        if chosen.is_empty() {
            return Err(MatrixError::NoMatch {
                glob: glob.to_string(),
                path: self.path.clone(),
                available: self
                    .cells
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_ids_that_would_leave_a_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[cells.\"../../escaped\"]\npython = \"3.11\"\n").unwrap();
        let err = Matrix::load(&path).unwrap_err().to_string();
        assert!(err.contains("cell id `../../escaped`"), "{err}");
        let valid = |id: &str| CellId::new(id).is_ok();
        assert!(valid("cp311-bookworm") && !valid("..") && !valid("a/b"));
    }

    fn load(text: &str) -> Result<Matrix, MatrixError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, text).unwrap();
        Matrix::load(&path)
    }

    #[test]
    fn a_supplied_image_names_its_interpreter_and_repair_step() {
        let m = load(
            "[cells.cp311-manylinux]\npython = \"3.11.9\"\nsupplied-image = \"stand-in/manylinux:1\"\n\
             interpreter = \"/opt/python/cp311-cp311/bin/python\"\nrepair = \"auditwheel\"\n",
        )
        .unwrap();
        let cell = &m.cells[0];
        assert!(cell.has_image() && cell.image.is_none());
        assert_eq!(cell.supplied_image.as_deref(), Some("stand-in/manylinux:1"));
        assert_eq!(cell.repair.as_deref(), Some("auditwheel"));
        for (text, says) in [
            (
                "image = \"bookworm\"\nsupplied-image = \"x:1\"\n",
                "not both",
            ),
            (
                "image = \"bookworm\"\ninterpreter = \"/usr/bin/python3\"\n",
                "only a supplied",
            ),
            (
                "supplied-image = \"x:1\"\ninterpreter = \"python; rm -rf /\"\n",
                "absolute path",
            ),
            (
                "supplied-image = \"x:1\"\nrepair = \"auditwheel && curl\"\n",
                "plain characters",
            ),
        ] {
            let err = load(&format!("[cells.c]\npython = \"3.11\"\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn selects_cells_by_brace_glob() {
        let m = load(
            "[cells.cp39-bullseye]\npython = \"3.9.2\"\n[cells.cp311-bookworm]\npython = \"3.11.2\"\n\
             [cells.cp313-trixie]\npython = \"3.13.5\"\n",
        )
        .unwrap();
        let ids: Vec<_> = m
            .select(Some("cp3{9,11}-*"))
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["cp311-bookworm", "cp39-bullseye"]);
        assert!(matches!(
            m.select(Some("pp*")),
            Err(MatrixError::NoMatch { .. })
        ));
    }

    #[test]
    fn unknown_keys_name_line_and_column() {
        let err = load("[cells.cp39-bullseye]\npython = \"3.9.2\"\npyhton = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3, column 1"), "{err}");
        assert!(err.contains("pyhton"), "{err}");
    }
}
