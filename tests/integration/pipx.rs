//! rewheel as Python packagers install it (issue 26 §4): a wheel holding the binary, made by
//! `maturin build --locked` from pyproject.toml, installed with `pipx install` from the file.
//! Gated on maturin and pipx (`.ci/run` puts them in its venv from PyPI); without them it prints
//! why it skipped.

use crate::common::{run, skip, world};
use std::path::PathBuf;
use std::process::Command;

/// A tool from `REWHEEL_<NAME>` (what `.ci/run` exports), else from PATH.
fn tool(name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(format!("REWHEEL_{}", name.to_uppercase())) {
        return Some(PathBuf::from(path));
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (found.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

#[test]
fn the_wheel_maturin_builds_installs_with_pipx_and_runs() {
    let (Some(maturin), Some(pipx)) = (tool("maturin"), tool("pipx")) else {
        skip("maturin or pipx is not installed; .ci/run installs both from PyPI");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wheels = dir.path().join("dist");
    // A target folder of its own: in the test build's, maturin's build (without the
    // dev-dependencies' features) replaced the binary the other tests were running, mid-run.
    // The dev profile: a release build from nothing would take most of this suite's time.
    let mut build = Command::new(&maturin);
    build
        .args(["build", "--locked", "--profile", "dev", "--out"])
        .arg(&wheels)
        .env(
            "CARGO_TARGET_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipx-target"),
        )
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let built = run(build);
    assert_eq!(built.code, 0, "{}{}", built.stdout, built.stderr);
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("maturin wrote a wheel");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("rewheel-0.1.0-py3-none-"), "{name}");

    let bin = dir.path().join("bin");
    let mut install = Command::new(&pipx);
    install
        .arg("install")
        .arg(&wheel)
        .env("PIPX_HOME", dir.path().join("pipx"))
        .env("PIPX_BIN_DIR", &bin)
        .env("PIPX_MAN_DIR", dir.path().join("man"));
    let installed = run(install);
    assert_eq!(
        installed.code, 0,
        "{}{}",
        installed.stdout, installed.stderr
    );

    let mut version = Command::new(bin.join("rewheel"));
    version.arg("--version");
    let r = run(version);
    assert_eq!(r.stdout.trim(), "rewheel 0.1.0", "{}", r.stderr);

    // The installed copy does real work: the fixture world's resolution, offline.
    let fixtures = dir.path().join("links");
    std::fs::create_dir_all(&fixtures).unwrap();
    world(&fixtures);
    let mut resolve = Command::new(bin.join("rewheel"));
    resolve
        .args(["resolve", "dateapp==1.0", "--python", "3.9", "--no-index"])
        .arg("--find-links")
        .arg(&fixtures)
        .arg("--cache-dir")
        .arg(fixtures.join(".cache"))
        .env_remove("PIP_INDEX_URL");
    let r = run(resolve);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("dateapp"), "{}", r.stdout);
}
