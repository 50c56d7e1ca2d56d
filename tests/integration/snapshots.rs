//! What users read and parse, snapshotted whole: every command's help, a resolution in text and
//! JSON, a check report, and one message of each class of error, each with its exit code and
//! both streams (as uv's `uv_snapshot!` does). Volatile parts are redacted: temporary folders,
//! run ids, times, hashes. `INSTA_UPDATE=always cargo nextest run -E 'test(/snapshots::/)'`
//! writes new snapshots after an intended change; review them with `git diff`.

use crate::common::{RawEntry, Run, World, package, run, write_raw_tar_gz};
use std::process::Command;

/// A run as one text: exit code, then stdout and stderr. Progress lines on stderr come in the
/// order parallel jobs end: sorted, so the snapshot holds what was said, not the race.
fn shown(r: &Run) -> String {
    let mut progress: Vec<&str> = r.stderr.lines().collect();
    if progress.iter().any(|l| l.starts_with("run ")) {
        progress.sort();
    }
    format!(
        "exit code: {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
        r.code,
        r.stdout,
        progress.join("\n")
    )
}

/// Snapshot `r` under `name` with the volatile parts redacted.
macro_rules! rewheel_snapshot {
    ($name:expr, $run:expr) => {{
        let text = shown(&$run);
        insta::with_settings!({
            filters => vec![
                (r"/tmp/\.tmp[A-Za-z0-9]+", "[TEMP]"),
                (r"[^\s'\x22]*/target/tmp/[A-Za-z0-9._-]+", "[TEMP]"),
                (r"\b\d{8}-\d{6}(-\d+)?\b", "[RUN]"),
                (r"\b\d+(\.\d+)? ?(s|ms)\b", "[TIME]"),
                // The cache's folder of a hash is named by its first two digits.
                (r"/[0-9a-f]{2}/[0-9a-f]{64}/", "/[SHA256]/"),
                (r"\b[0-9a-f]{64}\b", "[SHA256]"),
                (r"\b[0-9a-f]{16}\b", "[SHORT]"),
                (r"cp3\d+\b", "[CELL]"),
                (r"\b3\.\d+\.\d+\b", "[PYTHON]"),
                (r"/root/\.pyenv/versions/[^\s'\x22]+", "[INTERPRETER]"),
                // A suggested command line repeats the host's interpreter.
                (r"--python-path /\S+", "--python-path [INTERPRETER]"),
                (r"--python 3\.\d+ --backend local --no-index", "--python [PYTHON] --backend local --no-index"),
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, text);
        });
    }};
}

fn rewheel(args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command.args(args).env_remove("PIP_INDEX_URL");
    run(command)
}

#[test]
fn every_command_teaches_in_its_help() {
    rewheel_snapshot!("help", rewheel(&["--help"]));
    for command in [
        "resolve", "build", "check", "bisect", "rebuild", "plan", "merge", "compare",
    ] {
        rewheel_snapshot!(format!("help-{command}"), rewheel(&[command, "--help"]));
    }
    for (group, sub) in [
        ("runs", "list"),
        ("runs", "show"),
        ("runs", "gc"),
        ("runs", "verify"),
        ("images", "build"),
        ("images", "list"),
    ] {
        rewheel_snapshot!(
            format!("help-{group}-{sub}"),
            rewheel(&[group, sub, "--help"])
        );
    }
    // Every command a user types first shows how it is typed.
    for command in [
        "resolve",
        "build",
        "check",
        "bisect",
        "rebuild",
        "plan",
        "merge",
        "compare",
        "images",
        "runs",
        "completions",
        "man",
    ] {
        let help = rewheel(&[command, "--help"]);
        assert!(
            help.stdout.contains("Examples:\n  rewheel "),
            "{command}: {}",
            help.stdout
        );
    }
}

#[test]
fn a_resolution_in_text_and_json() {
    let world = World::new();
    crate::common::three_package_closure(world.path());
    let (_, python) = crate::common::host_python();
    let resolve = |extra: &[&str]| {
        let mut args = vec!["resolve", "app==1.0", "--python", python.as_str()];
        args.extend_from_slice(extra);
        crate::common::rewheel(world.path(), &args)
    };
    let text = resolve(&[]);
    rewheel_snapshot!("resolve-text", text);
    let json = resolve(&["--format", "json"]);
    rewheel_snapshot!("resolve-json", json);
}

#[test]
fn a_check_report_names_what_differs_and_why() {
    let world = World::new();
    // A file the build writes gets 0666 less the umask, and the backend stores on-disk modes:
    // differs under `umask`.
    package("leaky", "1.0", &[], &[])
        .file("modes.txt", "")
        .file(
            "hook.py",
            "os.remove('module.py')\nopen('module.py', 'w').write('NAME = \"leaky\"\\n')",
        )
        .write(world.path());
    package("steady", "1.0", &[], &[]).write(world.path());
    let r = run(world.command("check", &["leaky==1.0", "steady==1.0", "--vary", "umask"]));
    rewheel_snapshot!("check-umask", r);
}

#[test]
fn each_class_of_error_says_what_and_what_to_do() {
    let world = World::new();
    let requirements = world.path().join("requirements.txt");
    std::fs::write(&requirements, "good==1.0\nbad line ===\n").unwrap();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "error-requirements-line",
            vec!["-r".into(), requirements.display().to_string()],
        ),
        ("error-unknown-package", vec!["nothing-here==1.0".into()]),
        ("error-no-cell", vec![]),
    ];
    let (_, python) = crate::common::host_python();
    for (name, args) in cases {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = if name == "error-no-cell" {
            rewheel(&["resolve", "a==1"])
        } else {
            args.splice(0..0, ["resolve", "--python", python.as_str()]);
            crate::common::rewheel(world.path(), &args)
        };
        rewheel_snapshot!(name, r);
    }
    rewheel_snapshot!("error-usage", rewheel(&["build", "--jobs", "many", "a==1"]));
    rewheel_snapshot!(
        "error-no-run",
        run(world.command("build", &["--resume", "20200101-000000"]))
    );
}

/// Log lines carry colour only for a terminal, or when asked; `--quiet` leaves errors only.
#[test]
fn log_lines_have_no_escape_codes_off_a_terminal_and_quiet_hides_them() {
    let dir = tempfile::tempdir().unwrap();
    let resolve = |extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
        command
            .args([
                "resolve",
                "six",
                "--python",
                "3.9",
                "--no-index",
                "--find-links",
            ])
            .arg(dir.path())
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR");
        crate::common::run(command)
    };
    let plain = resolve(&["-vv"]);
    assert!(
        plain.stderr.contains("DEBUG index page of six"),
        "{}",
        plain.stderr
    );
    assert!(!plain.stderr.contains('\x1b'), "{}", plain.stderr);
    let never = resolve(&["-vv", "--color", "never"]);
    assert!(!never.stderr.contains('\x1b'), "{}", never.stderr);
    let always = resolve(&["-vv", "--color", "always"]);
    assert!(always.stderr.contains("\x1b["), "{}", always.stderr);
    let quiet = resolve(&["--quiet"]);
    let lines: Vec<&str> = quiet.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", quiet.stderr);
    assert!(lines[0].starts_with("error: "), "{}", quiet.stderr);
}

/// Shell completions and the manual page come from the same definitions as `--help`.
#[test]
fn completions_and_man_page_are_made_from_the_command_line() {
    for shell in ["bash", "zsh", "fish"] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
        command.args(["completions", shell]);
        let r = crate::common::run(command);
        assert_eq!(r.code, rewheel::exit::ExitCode::Success, "{}", r.stderr);
        for word in ["rewheel", "resolve", "exclude-newer", "color"] {
            assert!(r.stdout.contains(word), "{shell}: {word}");
        }
    }
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command.arg("man");
    let r = crate::common::run(command);
    assert_eq!(r.code, rewheel::exit::ExitCode::Success, "{}", r.stderr);
    assert!(r.stdout.contains(".TH rewheel 1"), "{}", r.stdout);
    assert!(r.stdout.contains("resolve"), "{}", r.stdout);
}

/// `--quiet` on a build: the run id and the summary, no progress line per job.
#[test]
fn a_quiet_build_prints_no_progress_lines() {
    let world = World::new();
    package("plain", "1.0", &[], &[]).write(world.path());
    let r = world.build(&["plain==1.0", "--quiet"]);
    assert_eq!(r.code, rewheel::exit::ExitCode::Success, "{}", r.stderr);
    assert!(!r.stderr.contains("building plain"), "{}", r.stderr);
    assert!(!r.stderr.contains("built plain"), "{}", r.stderr);
    let loud = world.build(&["plain==1.0", "--rebuild"]);
    assert!(loud.stderr.contains("built plain 1.0"), "{}", loud.stderr);
}

/// `rewheel resolve ARGS` on the world's find-links folder with the host's interpreter as the
/// cell, unless ARGS name cells themselves.
fn resolve_in(world: &World, args: &[&str]) -> Run {
    crate::common::rewheel(world.path(), &[&["resolve"], args].concat())
}

fn write(world: &World, name: &str, text: &str) -> String {
    let path = world.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn input_errors_name_the_file_the_line_and_the_way_out() {
    let world = World::new();
    package("app", "1.0", &[], &[]).write(world.path());
    let (_, python) = crate::common::host_python();
    let python = python.as_str();

    let matrix = write(
        &world,
        "bad-matrix.toml",
        "[cells.bookworm]\npython = \"3.11.2\"\n\n[cells.trixie\npython = \"3.13.5\"\n",
    );
    rewheel_snapshot!(
        "error-matrix-toml",
        resolve_in(&world, &["app==1.0", "--matrix", &matrix])
    );

    let settings = write(
        &world,
        "settings.toml",
        "[packages.app]\nenv = { CFLAGS = \"-O2\" }\nbuild-flavour = \"fast\"\n",
    );
    rewheel_snapshot!(
        "error-settings-file",
        resolve_in(
            &world,
            &["app==1.0", "--python", python, "--settings", &settings]
        )
    );

    let matrix = write(
        &world,
        "matrix.toml",
        "[cells.bookworm]\npython = \"3.11.2\"\n[cells.trixie]\npython = \"3.13.5\"\n",
    );
    rewheel_snapshot!(
        "error-unknown-cells",
        resolve_in(
            &world,
            &["app==1.0", "--matrix", &matrix, "--cells", "{buster,sid}"]
        )
    );

    let pins = write(
        &world,
        "pins.txt",
        &format!("app==1.0 \\\n    --hash=sha256:{}\n", "0".repeat(64)),
    );
    rewheel_snapshot!(
        "error-hash-mismatch",
        resolve_in(&world, &["-r", &pins, "--python", python])
    );

    rewheel_snapshot!(
        "error-runs-show-unknown",
        rewheel(&[
            "runs",
            "show",
            "20200101-000000",
            "--store",
            &world.path().join(".store").display().to_string(),
        ])
    );
}

#[test]
fn an_unsafe_sdist_is_refused_with_the_entry_and_the_rule() {
    let world = World::new();
    let entry = |path: &'static str, data: &[u8]| RawEntry {
        path,
        kind: tar::EntryType::Regular,
        link: None,
        data: data.to_vec(),
    };
    write_raw_tar_gz(
        &world.path().join("evil-1.0.tar.gz"),
        &[
            entry(
                "evil-1.0/PKG-INFO",
                b"Metadata-Version: 2.2\nName: evil\nVersion: 1.0\n",
            ),
            entry("evil-1.0/../../etc/cron.d/evil", b"x"),
        ],
    );
    let (_, python) = crate::common::host_python();
    rewheel_snapshot!(
        "error-unsafe-sdist",
        resolve_in(&world, &["evil==1.0", "--python", &python])
    );
}

#[test]
fn a_cycle_is_explained_with_its_ways_out() {
    let world = World::new();
    crate::common::world(world.path());
    rewheel_snapshot!(
        "error-cycle",
        resolve_in(&world, &["dateapp==1.0", "--python", "3.7"])
    );
}

#[test]
fn a_cell_without_an_interpreter_on_this_host_says_how_to_name_one() {
    // The newest Python rewheel knows, and one this host does not have.
    if crate::common::host_has_python("3.14").is_some() {
        crate::common::skip("this host has Python 3.14, which the test needs missing");
        return;
    }
    let world = World::new();
    package("app", "1.0", &[], &[]).write(world.path());
    let store = world.path().join(".store");
    let build = world.path().join(".build");
    let r = crate::common::rewheel(
        world.path(),
        &[
            "build",
            "app==1.0",
            "--python",
            "3.14",
            "--backend",
            "local",
            "--store",
            store.to_str().unwrap(),
            "--build-path",
            build.to_str().unwrap(),
            "--out",
            world.path().join("out").to_str().unwrap(),
        ],
    );
    rewheel_snapshot!("error-no-interpreter", r);
}

#[test]
fn ci_documents_that_point_outside_are_refused_by_field_and_path() {
    let world = World::new();
    package("lib", "2.0", &[], &[]).write(world.path());
    let plan = world.path().join("plan.json");
    let made = run(world.command("plan", &["lib==2.0", "-o", plan.to_str().unwrap()]));
    assert_eq!(made.code, 0, "{}", made.stderr);
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    doc["jobs"][0]["sdist"]["filename"] = "../escape.tar.gz".into();
    std::fs::write(&plan, doc.to_string()).unwrap();
    let id = doc["jobs"][0]["id"].as_str().unwrap().to_string();
    let (python, _) = crate::common::host_python();
    let mut job = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    job.args(["build", "--plan"])
        .arg(&plan)
        .args(["--job", &id, "--inputs"])
        .arg(world.path().join("inputs"))
        .arg("--out")
        .arg(world.path().join("out"))
        .args(["--backend", "local", "--python-path"])
        .arg(python)
        .arg("--build-path")
        .arg(world.path().join(".build"))
        .env_remove("PIP_INDEX_URL");
    rewheel_snapshot!("error-plan-refused", run(job));

    let results = world.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let result = serde_json::json!({
        "schema_version": 1,
        "job": "cp-x/a-1.0",
        "cell": "cp-x",
        "name": "a",
        "version": "1.0",
        "stage": 0,
        "status": "failed",
        "wheel_filename": null,
        "wheel_sha256": null,
        "fingerprint": "f",
        "seconds": 1.0,
        "error": "failed",
        "log_file": "../outside/a.log",
    });
    std::fs::write(results.join("cp-x__a-1.0.result.json"), result.to_string()).unwrap();
    rewheel_snapshot!(
        "error-merge-refused",
        rewheel(&[
            "merge",
            results.to_str().unwrap(),
            "--store",
            world.path().join("merged").to_str().unwrap(),
        ])
    );
}
