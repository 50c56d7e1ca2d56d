//! Bad input: one clear line naming the place, exit 2, nothing half-written. Hostile sdists are
//! rejected with the reason.

use crate::common::{RawEntry, Sdist, rewheel, run, world, write_raw_tar_gz};
use rewheel::exit::ExitCode;
use std::path::Path;

fn assert_input_error(run: &crate::common::Run, needle: &str) {
    assert_eq!(
        run.code,
        ExitCode::Input,
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains(needle),
        "expected `{needle}` in: {}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "nothing is printed on error: {}",
        run.stdout
    );
}

#[test]
fn malformed_requirements_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    let lock = dir.path().join("lock.txt");
    std::fs::write(&lock, "dateapp==1.0\n# fine\nsixish = = 1\n").unwrap();
    let out = dir.path().join("out.json");
    let r = rewheel(
        dir.path(),
        &[
            "resolve",
            "-r",
            lock.to_str().unwrap(),
            "--python",
            "3.9",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_input_error(
        &r,
        &format!("{}:3: invalid requirement `sixish = = 1`", lock.display()),
    );
    assert!(!out.exists(), "no report is written when the run fails");
}

#[test]
fn an_interpreter_rewheel_does_not_know_is_refused_with_those_it_does() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    for (command, python) in [("resolve", "2.5"), ("resolve", "3.99"), ("build", "3.99")] {
        let r = rewheel(dir.path(), &[command, "dateapp==1.0", "--python", python]);
        assert_input_error(
            &r,
            &format!(
                "`{python}` is not a Python version rewheel knows; give one of 3.6, 3.7, 3.8, \
                 3.9, 3.10, 3.11, 3.12, 3.13, 3.14"
            ),
        );
    }
}

#[test]
fn unknown_package() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    let r = rewheel(
        dir.path(),
        &["resolve", "no-such-thing==1.0", "--python", "3.9"],
    );
    assert_input_error(&r, "package `no-such-thing` is not on find-links");
}

#[test]
fn version_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    let r = rewheel(dir.path(), &["resolve", "dateapp==9.9", "--python", "3.9"]);
    assert_input_error(
        &r,
        "no version of `dateapp==9.9` (command line) is on the index; the newest with an sdist is 1.0",
    );
}

#[test]
fn hash_mismatch_says_expected_and_got() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    let lock = dir.path().join("lock.txt");
    let wrong = "0".repeat(64);
    std::fs::write(&lock, format!("dateapp==1.0 \\\n  --hash=sha256:{wrong}\n")).unwrap();
    let r = rewheel(
        dir.path(),
        &["resolve", "-r", lock.to_str().unwrap(), "--python", "3.9"],
    );
    assert_input_error(
        &r,
        &format!(
            "{}:1: hash mismatch for dateapp-1.0.tar.gz: expected sha256 {wrong}, got ",
            lock.display()
        ),
    );
    // And the right hash passes.
    let digest = sha256_file(&dir.path().join("dateapp-1.0.tar.gz"));
    std::fs::write(&lock, format!("dateapp==1.0 --hash=sha256:{digest}\n")).unwrap();
    let r = rewheel(
        dir.path(),
        &["resolve", "-r", lock.to_str().unwrap(), "--python", "3.9"],
    );
    assert_eq!(r.code, ExitCode::Success, "{}", r.stderr);
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn an_sdist_that_is_not_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken-1.0.tar.gz"), b"this is not gzip").unwrap();
    let r = rewheel(dir.path(), &["resolve", "broken==1.0", "--python", "3.9"]);
    assert_input_error(&r, "broken-1.0.tar.gz: not a valid sdist archive");
}

#[test]
fn an_unreachable_index_is_retried_then_named() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command.args([
        "resolve",
        "six==1.16.0",
        "--python",
        "3.9",
        "--index-url",
        "http://127.0.0.1:9/simple",
        "--retries",
        "2",
        "--cache-dir",
    ]);
    command.arg(dir.path());
    let r = run(command);
    assert_input_error(
        &r,
        "http://127.0.0.1:9/simple/six/: unreachable after 2 attempts",
    );
}

fn hostile(entries: &[RawEntry], needle: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    write_raw_tar_gz(&dir.path().join("evil-1.0.tar.gz"), entries);
    let mut args = vec!["resolve", "evil==1.0", "--python", "3.9"];
    args.extend_from_slice(extra);
    let r = rewheel(dir.path(), &args);
    assert_input_error(&r, needle);
}

fn file<'a>(path: &'a str) -> RawEntry<'a> {
    RawEntry {
        path,
        kind: tar::EntryType::Regular,
        link: None,
        data: b"x".to_vec(),
    }
}

fn pkg_info() -> RawEntry<'static> {
    RawEntry {
        path: "evil-1.0/PKG-INFO",
        kind: tar::EntryType::Regular,
        link: None,
        data: b"Metadata-Version: 2.2\nName: evil\nVersion: 1.0\n".to_vec(),
    }
}

#[test]
fn hostile_sdists_are_rejected_with_the_reason() {
    hostile(
        &[pkg_info(), file("evil-1.0/../../etc/passwd")],
        "entry `evil-1.0/../../etc/passwd` escapes the archive with `..`",
        &[],
    );
    hostile(
        &[pkg_info(), file("/etc/cron.d/evil")],
        "entry `/etc/cron.d/evil` has an absolute path",
        &[],
    );
    let link = |kind, target| RawEntry {
        path: "evil-1.0/link",
        kind,
        link: Some(target),
        data: Vec::new(),
    };
    hostile(
        &[
            pkg_info(),
            link(tar::EntryType::Symlink, "../../../etc/shadow"),
        ],
        "entry `evil-1.0/link` links outside the archive",
        &[],
    );
    hostile(
        &[pkg_info(), link(tar::EntryType::Symlink, "/etc/shadow")],
        "links to the absolute path `/etc/shadow`",
        &[],
    );
    hostile(
        &[pkg_info(), link(tar::EntryType::Link, "../outside")],
        "hard-links to `../outside`, which is not a regular file of this archive",
        &[],
    );
    let device = RawEntry {
        path: "evil-1.0/dev",
        kind: tar::EntryType::Char,
        link: None,
        data: Vec::new(),
    };
    hostile(
        &[pkg_info(), device],
        "entry `evil-1.0/dev` is a device file",
        &[],
    );
    let fifo = RawEntry {
        path: "evil-1.0/pipe",
        kind: tar::EntryType::Fifo,
        link: None,
        data: Vec::new(),
    };
    hostile(&[pkg_info(), fifo], "is a FIFO", &[]);
}

#[test]
fn a_decompression_bomb_is_rejected_at_the_size_limit() {
    // 8 MiB of zeros compresses to a few kilobytes; the limit here is 1 MiB.
    let bomb = RawEntry {
        path: "evil-1.0/zeros.bin",
        kind: tar::EntryType::Regular,
        link: None,
        data: vec![0; 8 << 20],
    };
    hostile(
        &[pkg_info(), bomb],
        "expands past the limit of 1048576 bytes",
        &["--max-sdist-size", "1048576"],
    );
}

#[test]
fn links_inside_the_archive_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    Sdist::new("fine", "1.0")
        .pkg_info("2.2", &[])
        .write(dir.path());
    write_raw_tar_gz(
        &dir.path().join("linky-1.0.tar.gz"),
        &[
            RawEntry {
                path: "linky-1.0/PKG-INFO",
                kind: tar::EntryType::Regular,
                link: None,
                data: b"Metadata-Version: 2.2\nName: linky\nVersion: 1.0\nRequires-Dist: fine\n"
                    .to_vec(),
            },
            RawEntry {
                path: "linky-1.0/docs/readme",
                kind: tar::EntryType::Symlink,
                link: Some("../PKG-INFO"),
                data: Vec::new(),
            },
        ],
    );
    Sdist::new("setuptools", "70.0")
        .pyproject(&[], "setuptools.build_meta", Some("."))
        .pkg_info("2.2", &[])
        .write(dir.path());
    Sdist::new("wheel", "0.37")
        .pyproject(&[], "flit_core.buildapi", Some("."))
        .pkg_info("2.2", &[])
        .write(dir.path());
    let r = rewheel(dir.path(), &["resolve", "linky==1.0", "--python", "3.9"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("fine 1.0"), "{}", r.stdout);
}

#[test]
fn rebuild_with_a_space_is_explained_since_it_means_every_job() {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    // Refused later for the interpreter: the warning comes first, from the arguments alone.
    let r = rewheel(
        dir.path(),
        &[
            "build",
            "dateapp==1.0",
            "--rebuild",
            "dateapp",
            "--python",
            "3.99",
        ],
    );
    assert!(
        r.stderr.contains(
            "`--rebuild dateapp` rebuilds every job and builds `dateapp`; to rebuild only it, write `--rebuild=dateapp`"
        ),
        "{}",
        r.stderr
    );
    let r = rewheel(
        dir.path(),
        &[
            "build",
            "dateapp==1.0",
            "--rebuild=dateapp",
            "--python",
            "3.99",
        ],
    );
    assert!(!r.stderr.contains("rebuilds every job"), "{}", r.stderr);
}
