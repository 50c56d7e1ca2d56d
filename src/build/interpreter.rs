//! Finding a CPython interpreter on the host for a cell (local backend).

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct Interpreter {
    pub path: PathBuf,
    /// `sys.version_info` as X.Y.Z.
    pub version: String,
}

/// The first working `pythonX.Y`: explicit paths, then pyenv's versions, then PATH (skipping
/// pyenv's shims, which may point elsewhere), then the system's.
pub fn find(major: u64, minor: u64, explicit: &[PathBuf]) -> Option<Interpreter> {
    let exe = format!("python{major}.{minor}");
    let mut candidates: Vec<PathBuf> = explicit.to_vec();
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".pyenv")));
    if let Some(home) = pyenv
        && let Ok(entries) = std::fs::read_dir(home.join("versions"))
    {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        versions.sort();
        versions.reverse();
        candidates.extend(versions.into_iter().map(|v| v.join("bin").join(&exe)));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(
            std::env::split_paths(&path)
                .filter(|dir| !dir.to_string_lossy().contains("shims"))
                .map(|dir| dir.join(&exe)),
        );
    }
    candidates.push(Path::new("/usr/bin").join(&exe));
    candidates
        .into_iter()
        .filter(|p| p.is_file())
        .find_map(|p| probe(&p).filter(|i| i.version.starts_with(&format!("{major}.{minor}."))))
}

pub fn probe(path: &Path) -> Option<Interpreter> {
    let out = Command::new(path)
        .args([
            "-S",
            "-c",
            "import sys; print('%d.%d.%d' % sys.version_info[:3])",
        ])
        .env_clear()
        .output()
        .ok()?;
    out.status.success().then(|| Interpreter {
        path: path.to_path_buf(),
        version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    })
}
