//! `rewheel bisect` over two locks, hermetic: a build tool whose version 2 embeds the build path.

use crate::common::run;
use crate::common::{TINYBUILD, World, host_python, package};
use rewheel::exit::ExitCode;
use std::process::Command;

#[test]
fn a_lock_bisection_names_the_bump_that_broke_reproducibility() {
    let world = World::new();
    let dir = world.path();
    // pathtool is a build backend, built by its own in-tree copy; version 2 leaks the build path.
    let leaky = TINYBUILD.replace(
        "f\"{dist}/__init__.py\": open(\"module.py\", \"rb\").read(),",
        "f\"{dist}/__init__.py\": open(\"module.py\", \"rb\").read() + f\"WHERE = {os.getcwd()!r}\\n\".encode(),",
    );
    assert_ne!(leaky, TINYBUILD, "the fixture must change the backend");
    package("pathtool", "1", &[], &[])
        .file("module.py", TINYBUILD)
        .write(dir);
    package("pathtool", "2", &[], &[])
        .file("module.py", leaky)
        .write(dir);
    for (name, version) in [
        ("xtra", "1"),
        ("xtra", "2"),
        ("yonder", "1"),
        ("yonder", "2"),
    ] {
        package(name, version, &[], &[]).write(dir);
    }
    // app is built by pathtool (not in-tree).
    package("app", "1.0", &["pathtool"], &[])
        .file(
            "pyproject.toml",
            "[build-system]\nrequires = [\"pathtool\"]\nbuild-backend = \"pathtool\"\n",
        )
        .file("needs.txt", "")
        .write(dir);
    let good = dir.join("good.txt");
    let bad = dir.join("bad.txt");
    std::fs::write(&good, "app==1.0\npathtool==1\nxtra==1\nyonder==1\n").unwrap();
    std::fs::write(&bad, "app==1.0\npathtool==2\nxtra==2\nyonder==2\n").unwrap();
    let (python, version) = host_python();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args([
            "bisect",
            "--target",
            "app",
            "--until",
            "reproducible",
            "--python",
            &version,
        ])
        .arg("--good-lock")
        .arg(&good)
        .arg("--bad-lock")
        .arg(&bad)
        .args(["--no-index", "--find-links"])
        .arg(dir)
        .arg("--cache-dir")
        .arg(dir.join(".cache"))
        .args([
            "--",
            "--backend",
            "local",
            "--vary",
            "build-path",
            "--python-path",
        ])
        .arg(python)
        .arg("--store")
        .arg(dir.join(".store"));
    let r = run(command);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("3 candidate changes between the locks"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("first bad change: pathtool pathtool==1 → pathtool==2"),
        "{}",
        r.stdout
    );
    // One probe of the bad lock, then at most ⌈log2 3⌉ = 2.
    let probes = r
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("probe"))
        .count();
    assert!(probes <= 3, "{}", r.stdout);
}
