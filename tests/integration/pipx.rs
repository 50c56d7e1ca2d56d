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

/// rewheel rebuilds its own wheel from its own sdist (which carries Cargo.lock) in the default
/// trixie cell, twice, and gets the same bytes: the crates vendored by hash, the suite's Rust
/// from its backports pocket, maturin built from source. Opt-in (`REWHEEL_SELF_REBUILD=1`):
/// it compiles maturin and rewheel in release, about half an hour on 2 cores.
#[test]
fn rewheel_rebuilds_its_own_wheel_from_its_sdist_bit_for_bit() {
    if std::env::var_os("REWHEEL_SELF_REBUILD").is_none() {
        skip(
            "REWHEEL_SELF_REBUILD is not set: it builds maturin and rewheel from source twice (about 30 minutes on 2 cores)",
        );
        return;
    }
    let Some(maturin) = tool("maturin") else {
        skip("maturin is not installed; .ci/run installs it from PyPI");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    let mut sdist = Command::new(&maturin);
    sdist
        .args(["sdist", "--out"])
        .arg(&dist)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let made = run(sdist);
    assert_eq!(made.code, 0, "{}{}", made.stdout, made.stderr);
    let debian = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("matrices/debian.toml");
    let build = |out: &str, again: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        command
            .args(["build", &format!("rewheel=={}", env!("CARGO_PKG_VERSION"))])
            .arg("--find-links")
            .arg(&dist)
            .arg("--matrix")
            .arg(&debian)
            .args(["--cells", "cp313-trixie", "--backend", "docker"])
            // As every rebuilder gives it: mimalloc's C code stamps `__DATE__` and `__TIME__`
            // into the binary, which GCC takes from SOURCE_DATE_EPOCH when it is set.
            .args(["--source-date-epoch", "1700000000", "--store"])
            .arg(dir.path().join("store"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .arg("--out")
            .arg(dir.path().join(out));
        if again {
            command.arg("--rebuild=rewheel");
        }
        let r = run(command);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let cell = dir.path().join(out).join("cp313-trixie");
        let wheel = std::fs::read_dir(&cell)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("rewheel-"))
            })
            .expect("rewheel's wheel");
        std::fs::read(wheel).unwrap()
    };
    let first = build("first", false);
    let second = build("second", true);
    assert!(
        first == second,
        "rewheel's wheel differs between two builds"
    );
}
