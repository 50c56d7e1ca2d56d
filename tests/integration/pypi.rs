//! The real 2022 case against PyPI. These need the network: each checks that the index answers
//! first and, when it does not, prints why it skips.

use crate::common::{Run, run};
use rewheel::exit::ExitCode;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const INDEX_HOST: &str = "pypi.org:443";

fn index_unreachable() -> Option<String> {
    let addrs = match INDEX_HOST.to_socket_addrs() {
        Ok(addrs) => addrs.collect::<Vec<_>>(),
        Err(err) => return Some(format!("cannot resolve {INDEX_HOST}: {err}")),
    };
    for addr in &addrs {
        if TcpStream::connect_timeout(addr, Duration::from_secs(5)).is_ok() {
            return None;
        }
    }
    Some(format!("cannot connect to {INDEX_HOST}"))
}

macro_rules! require_index {
    () => {
        if let Some(reason) = index_unreachable() {
            crate::common::skip(&format!("the package index is unreachable ({reason})"));
            return;
        }
    };
}

/// Shared cache between the PyPI tests: the sdists are the same.
fn resolve(python: &str, extra: &[&str]) -> Run {
    let cache = std::env::temp_dir().join("rewheel-test-pypi-cache");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["resolve", "python-dateutil==2.8.2", "--python", python])
        .args(["--exclude-newer", "2022-07-15T00:00:00Z", "--cache-dir"])
        .arg(cache)
        .args(extra)
        .env_remove("PIP_INDEX_URL");
    run(command)
}

#[test]
fn dateutil_on_python_37_in_july_2022_has_the_scm_cycle() {
    require_index!();
    let r = resolve("3.7", &["--format", "json"]);
    assert_eq!(r.code, ExitCode::Cycle, "{}{}", r.stdout, r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let cycle = doc["cells"][0]["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "error")
        .expect("an error cycle");
    let members: Vec<&str> = cycle["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(members.contains(&"setuptools-scm==7.0.5"), "{members:?}");
    assert!(
        members.contains(&"importlib-metadata==4.12.0"),
        "{members:?}"
    );
    let closing = cycle["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["from"] == "setuptools-scm==7.0.5" && s["to"] == "importlib-metadata==4.12.0")
        .expect("the edge that closes the cycle");
    assert_eq!(closing["kind"], "install");
    assert_eq!(closing["marker"], "python_version < \"3.8\"");
    let chain = cycle["chain"].as_str().unwrap();
    assert!(
        chain.starts_with("python-dateutil 2.8.2 —build-system (setuptools_scm"),
        "{chain}"
    );
}

#[test]
fn dateutil_on_python_39_in_july_2022_resolves() {
    require_index!();
    let r = resolve("3.9", &[]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let line = |name: &str| {
        r.stdout
            .lines()
            .position(|l| l.contains(&format!("] {name} ")))
            .unwrap()
    };
    assert!(
        line("setuptools-scm") < line("python-dateutil"),
        "{}",
        r.stdout
    );
}

/// `rewheel build` of python-dateutil's whole closure from source, as PyPI stood on 15 July
/// 2022 (setuptools 63 and wheel 0.37 bootstrap each other in three stages).
fn build_dateutil(extra: &[&str], out: &std::path::Path) -> Run {
    let cache = std::env::temp_dir().join("rewheel-test-pypi-cache");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args([
            "build",
            "python-dateutil==2.8.2",
            "--exclude-newer",
            "2022-07-15T00:00:00Z",
        ])
        .args(["--source-date-epoch", "1657843200", "--cache-dir"])
        .arg(cache)
        .arg("--store")
        .arg(out.join("store"))
        .arg("--out")
        .arg(out.join("wheelhouse"))
        .arg("--build-path")
        .arg(out.join("build"))
        .args(extra)
        .env_remove("PIP_INDEX_URL");
    run(command)
}

fn assert_closure_built(r: &Run, cell: &str) {
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    for name in [
        "setuptools 63.2.0",
        "wheel 0.37.1",
        "setuptools-scm 7.0.5",
        "packaging 21.3",
        "six 1.16.0",
        "python-dateutil 2.8.2",
    ] {
        assert!(
            r.stdout.contains(&format!("ok    {name}")),
            "{cell}: {name} missing in\n{}",
            r.stdout
        );
    }
    assert!(
        !r.stdout.contains("did not reach a fixpoint"),
        "{}",
        r.stdout
    );
}

#[test]
fn dateutil_closure_builds_from_source_on_the_host() {
    require_index!();
    let dir = tempfile::tempdir().unwrap();
    let r = build_dateutil(&["--python", "3.11", "--backend", "local"], dir.path());
    assert_closure_built(&r, "cp311");
    // The wheel installs (unpacks) and imports with the host interpreter.
    let wheels: Vec<String> = std::fs::read_dir(dir.path().join("wheelhouse/cp311"))
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .collect();
    let check = std::process::Command::new("python3.11")
        .args([
            "-S",
            "-c",
            "import dateutil.parser as p; print(p.parse('2022-07-15T01:02:03Z').year)",
        ])
        .env("PYTHONPATH", wheels.join(":"))
        .output();
    if let Ok(check) = check {
        assert_eq!(
            String::from_utf8_lossy(&check.stdout).trim(),
            "2022",
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn dateutil_closure_builds_in_debian_images() {
    require_index!();
    let images = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"))
        .args(["images", "list"])
        .output();
    let list = images
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for image in ["bullseye", "bookworm"] {
        if !list
            .lines()
            .any(|l| l.starts_with(image) && !l.contains("not built"))
        {
            let reason = format!(
                "image {image} is not built, or no Docker engine answers (rewheel images build {image})"
            );
            crate::common::skip(&reason);
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let matrix = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("matrices/debian.toml");
    let r = build_dateutil(
        &[
            "--matrix",
            matrix.to_str().unwrap(),
            "--cells",
            "cp3{9,11}-*",
            "--backend",
            "docker",
        ],
        dir.path(),
    );
    assert_closure_built(&r, "debian");
    for (cell, image) in [
        ("cp39-bullseye", "bullseye"),
        ("cp311-bookworm", "bookworm"),
    ] {
        let wheels = dir.path().join("wheelhouse").join(cell);
        let paths: Vec<String> = std::fs::read_dir(&wheels)
            .unwrap()
            .flatten()
            .map(|e| format!("/wheels/{}", e.file_name().to_string_lossy()))
            .collect();
        let reference = list
            .lines()
            .find(|l| l.starts_with(image))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .to_string();
        // Install (a wheel is a zip: unpack it into a site folder; the image has no pip), then import.
        let script = format!(
            "python3 -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(\"/tmp/site\") for w in sys.argv[1:]]' {} && \
             PYTHONPATH=/tmp/site python3 -c 'import dateutil.parser as p; print(p.parse(\"2022-07-15\").year)'",
            paths.join(" ")
        );
        let out = std::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{}:/wheels:ro", wheels.display()))
            .args([&reference, "sh", "-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "2022",
            "{cell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A real lock of pure-Python packages with its build toolchain pinned.
fn real_lock(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let lock = dir.join("lock.txt");
    std::fs::write(
        &lock,
        "six==1.16.0\npython-dateutil==2.8.2\nidna==3.7\npackaging==24.0\n",
    )
    .unwrap();
    let constraints = dir.join("build-constraints.txt");
    std::fs::write(
        &constraints,
        "setuptools==69.5.1\nwheel==0.43.0\nflit-core==3.9.0\nsetuptools-scm==8.0.4\npackaging==24.0\n\
         typing-extensions==4.11.0\ntomli==2.0.1\n",
    )
    .unwrap();
    (lock, constraints)
}

fn check_real(dir: &std::path::Path, extra: &[&str]) -> Run {
    let (lock, constraints) = real_lock(dir);
    let cache = std::env::temp_dir().join("rewheel-test-pypi-cache");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .arg("check")
        .arg("-r")
        .arg(&lock)
        .arg("--build-constraints")
        .arg(&constraints)
        .args([
            "--python",
            "3.9",
            "--python",
            "3.11",
            "--backend",
            "local",
            "--cache-dir",
        ])
        .arg(cache)
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--out")
        .arg(dir.join("wheelhouse"))
        .arg("--build-path")
        .arg(dir.join("build"))
        .args(extra)
        .env_remove("PIP_INDEX_URL");
    run(command)
}

#[test]
fn a_pinned_real_lock_is_reproducible_across_runs_and_cells() {
    require_index!();
    if crate::common::host_has_python("3.9").is_none() {
        crate::common::skip("no Python 3.9 on this host for the second cell");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Every variation but the umask: setuptools' wheels store on-disk modes (see the next test).
    let r = check_real(
        dir.path(),
        &["--source-date-epoch", "1700000000", "--vary=-umask"],
    );
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("cp39: 10 of 10 reproducible"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("cp311: 9 of 9 reproducible"),
        "{}",
        r.stdout
    );
    // Across cells: the same bytes from Python 3.9 and 3.11.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .arg("compare")
        .arg(dir.path().join("wheelhouse/cp39"))
        .arg(dir.path().join("wheelhouse/cp311"));
    let across = run(command);
    assert!(
        across.stdout.contains("wheels: 9 of 9 reproducible"),
        "{}",
        across.stdout
    );
    assert!(
        across.stdout.contains("only in") && across.stdout.contains("tomli"),
        "{}",
        across.stdout
    );
}

#[test]
fn without_source_date_epoch_the_report_says_entry_timestamps_differ() {
    require_index!();
    if crate::common::host_has_python("3.9").is_none() {
        crate::common::skip("no Python 3.9 on this host for the second cell");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = check_real(dir.path(), &["--vary", "time"]);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("python_dateutil-2.8.2-py2.py3-none-any.whl         same content, different archive (entry timestamps)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("zip entry timestamps follow the clock (SOURCE_DATE_EPOCH is not set)"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_date_bisection_names_the_setuptools_scm_upload_that_made_the_cycle() {
    require_index!();
    let cache = std::env::temp_dir().join("rewheel-test-pypi-cache");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args([
            "bisect",
            "--target",
            "python-dateutil==2.8.2",
            "--cell",
            "cp37",
            "--until",
            "resolves",
        ])
        .args([
            "--good-date",
            "2022-06-01",
            "--bad-date",
            "2022-07-15",
            "--cache-dir",
        ])
        .arg(cache)
        .env_remove("PIP_INDEX_URL");
    let r = run(command);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let first = r
        .stdout
        .lines()
        .find(|l| l.starts_with("first bad upload:"))
        .unwrap_or_default();
    assert!(
        first.starts_with("first bad upload: setuptools-scm 7.0."),
        "{}",
        r.stdout
    );
    assert!(first.contains("(sdist uploaded 2022-06-"), "{}", r.stdout);
    assert!(r.stdout.contains("+ importlib-metadata"), "{}", r.stdout);
    // ⌈log2 N⌉ + 1 resolutions at most for the bisection itself.
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("probes: "))
        .unwrap();
    let probes: u32 = line["probes: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let bound: u32 = line
        .split("= ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(probes <= bound, "{line}");
}

/// A lock whose wheels were built on different days: each package's `build-date` gives its
/// build environment the toolchain of its day, in one resolution (issue 27 §2).
#[test]
fn each_package_builds_with_the_toolchain_of_its_own_day() {
    require_index!();
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("dates.toml");
    std::fs::write(
        &settings,
        "[packages.six]\nbuild-date = \"2020-06-01\"\n\n[packages.idna]\nbuild-date = \"2023-06-01\"\n",
    )
    .unwrap();
    let cache = std::env::temp_dir().join("rewheel-test-pypi-cache");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["resolve", "six==1.16.0", "idna==2.10", "--no-deps"])
        .args([
            "--python",
            "3.11",
            "--exclude-newer",
            "2026-10-01",
            "--format",
            "json",
        ])
        .arg("--settings")
        .arg(&settings)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("PIP_INDEX_URL");
    let r = run(command);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let cell = &doc["cells"][0];
    let nodes = cell["nodes"].as_array().unwrap();
    let version_of = |id: &serde_json::Value| {
        nodes
            .iter()
            .find(|n| &n["id"] == id)
            .map(|n| (n["name"].as_str().unwrap(), n["version"].as_str().unwrap()))
            .unwrap()
    };
    // The setuptools each package's build environment holds.
    let setuptools_of = |package: &str| {
        let node = nodes.iter().find(|n| n["name"] == package).unwrap();
        cell["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["from"] == node["id"])
            .map(|e| version_of(&e["to"]))
            .find(|(name, _)| *name == "setuptools")
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("no setuptools in {package}'s build environment"))
    };
    assert_eq!(setuptools_of("six"), "47.1.1");
    assert_eq!(setuptools_of("idna"), "67.8.0");
}
