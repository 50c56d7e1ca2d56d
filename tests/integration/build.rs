//! `rewheel build` on the local backend, end to end, with sdists whose in-tree backend (a few
//! lines of Python) builds real wheels: the interpreter is the host's.

use crate::common::{World, package, run};
use rewheel::exit::ExitCode;
use std::path::Path;
use std::process::Command;

#[test]
fn builds_the_closure_in_order_and_installs_build_dependencies() {
    let world = World::new();
    package("helper", "1.0", &[], &[]).write(world.path());
    package("lib", "2.0", &[], &[]).write(world.path());
    // app's backend imports `helper` and `lib` (lib comes along as helper's runtime dependency).
    package("helper", "1.0", &[], &["lib"]).write(world.path());
    package("app", "1.0", &["helper"], &["lib"])
        .file("needs.txt", "helper\nlib")
        .write(world.path());
    let r = world.build(&["app==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        world.wheels(),
        [
            "app-1.0-py3-none-any.whl",
            "helper-1.0-py3-none-any.whl",
            "lib-2.0-py3-none-any.whl"
        ]
    );
    let order: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("] built "))
        .collect();
    let at = |name: &str| {
        order
            .iter()
            .position(|l| l.contains(&format!("built {name} ")))
            .unwrap()
    };
    assert!(
        at("helper") < at("app") && at("lib") < at("app"),
        "{order:?}"
    );
}

#[test]
fn a_failing_sdist_fails_its_dependents_only() {
    let world = World::new();
    package("broken", "1.0", &[], &[])
        .file("hook.py", "raise RuntimeError('this sdist does not build')")
        .write(world.path());
    package("needs-broken", "1.0", &["broken"], &[]).write(world.path());
    package("fine", "1.0", &[], &[]).write(world.path());
    let r = world.build(&["needs-broken==1.0", "fine==1.0"]);
    assert_eq!(r.code, ExitCode::BuildFailed, "{}{}", r.stdout, r.stderr);
    assert_eq!(world.wheels(), ["fine-1.0-py3-none-any.whl"]);
    assert!(r.stdout.contains("FAIL  broken 1.0"), "{}", r.stdout);
    assert!(
        r.stdout.contains("RuntimeError: this sdist does not build"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("FAIL  needs-broken 1.0")
            && r.stdout.contains("not built: broken 1.0 failed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("log: "),
        "the summary names the log: {}",
        r.stdout
    );
}

#[test]
fn a_build_that_opens_a_connection_reaches_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let world = World::new();
    package("nosy", "1.0", &[], &[])
        .file(
            "hook.py",
            format!(
                "import socket\ns = socket.socket()\ns.settimeout(3)\n\
                 try:\n    s.connect(('127.0.0.1', {port}))\nexcept OSError as e:\n    print('network blocked:', e)\n\
                 else:\n    raise SystemExit('the build reached the network')\n"
            ),
        )
        .write(world.path());
    let r = world.build(&["nosy==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        listener.accept().is_err(),
        "nothing connected to the listener"
    );
    // The hook did run and saw the connection fail: its output is in the job's log.
    let db = rusqlite::Connection::open(world.path().join(".store/runs.sqlite3")).unwrap();
    let log: String = db
        .query_row(
            "SELECT log_sha256 FROM jobs WHERE name = 'nosy'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let text =
        std::fs::read_to_string(world.path().join(".store/blobs").join(&log[..2]).join(&log))
            .unwrap();
    assert!(text.contains("network blocked:"), "{text}");
}

#[test]
fn resume_reuses_finished_jobs() {
    let world = World::new();
    package("lib", "2.0", &[], &[]).write(world.path());
    package("app", "1.0", &["lib"], &[]).write(world.path());
    let first = world.build(&["app==1.0"]);
    assert_eq!(first.code, ExitCode::Success, "{}", first.stderr);
    let run_id = first
        .stderr
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("run ")
        .to_string();
    // Simulate a run killed after lib: forget app's job, keep lib's.
    let db = rusqlite::Connection::open(world.path().join(".store/runs.sqlite3")).unwrap();
    db.execute("DELETE FROM jobs WHERE name = 'app'", [])
        .unwrap();
    drop(db);
    std::fs::remove_dir_all(world.path().join("wheelhouse")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["build", "--resume", &run_id, "--store"])
        .arg(world.path().join(".store"));
    let again = run(command);
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
    assert!(
        again.stdout.contains("2 built (1 reused)"),
        "{}",
        again.stdout
    );
    assert!(
        again.stderr.contains("built lib 2.0 (0.0 s): reused"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("built app 1.0"), "{}", again.stderr);
    assert_eq!(
        world.wheels(),
        ["app-1.0-py3-none-any.whl", "lib-2.0-py3-none-any.whl"]
    );
}

/// `--resume` reads the run's stored settings, not its command line: the run continues from
/// another folder, with the files its relative paths named, though its command line no longer
/// parses.
#[test]
fn a_build_resumes_from_its_stored_settings_not_its_command_line() {
    let world = World::new();
    package("lib", "2.0", &[], &[]).write(world.path());
    package("app", "1.0", &["lib"], &[]).write(world.path());
    std::fs::write(world.path().join("wanted.txt"), "app==1.0\n").unwrap();
    let mut command = world.command_out("build", &["-r", "wanted.txt"], Path::new("out"));
    command.current_dir(world.path());
    let first = run(command);
    assert_eq!(first.code, ExitCode::Success, "{}", first.stderr);
    let run_id = first.stderr.lines().next().unwrap()["run ".len()..].to_string();
    let db = rusqlite::Connection::open(world.path().join(".store/runs.sqlite3")).unwrap();
    db.execute("DELETE FROM jobs WHERE name = 'app'", [])
        .unwrap();
    db.execute(
        "UPDATE runs SET argv = '[\"rewheel\",\"build\",\"--a-flag-long-gone\"]'",
        [],
    )
    .unwrap();
    drop(db);
    std::fs::remove_dir_all(world.path().join("out")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["build", "--resume", &run_id, "--store"])
        .arg(world.path().join(".store"))
        .current_dir(elsewhere.path());
    let again = run(command);
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
    assert!(
        again
            .stderr
            .contains("built lib 2.0 (0.0 s): reused from the interrupted run"),
        "{}",
        again.stderr
    );
    let cell = std::fs::read_dir(world.path().join("out"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(cell.join("app-1.0-py3-none-any.whl").is_file());
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn requirements_a_backend_names_at_build_time_are_built_first() {
    let world = World::new();
    package("helper", "1.0", &[], &[]).write(world.path());
    package("late", "1.0", &[], &[])
        .file("dynamic.txt", "helper")
        .file("needs.txt", "helper")
        .write(world.path());
    let r = world.build(&["late==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("its backend asks for [\"helper\"]"),
        "{}",
        r.stderr
    );
    assert_eq!(
        world.wheels(),
        ["helper-1.0-py3-none-any.whl", "late-1.0-py3-none-any.whl"]
    );
}

#[test]
fn what_a_hook_names_for_other_interpreters_or_extras_is_weighed_before_the_job_stops() {
    let world = World::new();
    // flit-core building idna names `ruff >= 0.6.2 ; extra == "all"` and the like.
    package("marked", "1.0", &[], &[])
        .file(
            "dynamic.txt",
            "ruff>=0.6.2;extra==\"all\"\nmissing;python_version<\"3\"\nalso-missing;(os_name==\"nt\")",
        )
        .write(world.path());
    let r = world.build(&["marked==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    // Built in one go: the job did not stop to ask, nor run twice.
    assert!(!r.stderr.contains("asks for"), "{}", r.stderr);
    assert_eq!(world.wheels(), ["marked-1.0-py3-none-any.whl"]);
}

#[test]
fn a_run_killed_with_sigkill_resumes_without_redoing_finished_jobs() {
    let world = World::new();
    package("quick", "1.0", &[], &[]).write(world.path());
    package("sleepy", "1.0", &["quick"], &[])
        .file("hook.py", "import time\ntime.sleep(30)\n")
        .write(world.path());
    let store = world.path().join(".store");
    let mut child = world
        .command("build", &["sleepy==1.0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until quick's job is committed, then kill without warning.
    let db = store.join("runs.sqlite3");
    let start = std::time::Instant::now();
    loop {
        let done = rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM jobs WHERE name = 'quick' AND status = 'built'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .unwrap_or(0);
        if done == 1 {
            break;
        }
        assert!(start.elapsed().as_secs() < 60, "quick was never built");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "the store survives SIGKILL");
    let run_id: String = conn
        .query_row("SELECT id FROM runs", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    // The resumed run reuses quick; sleepy's hook is replaced so that it finishes quickly.
    package("sleepy", "1.0", &["quick"], &[]).write(world.path());
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["build", "--resume", &run_id, "--store"])
        .arg(&store);
    let again = run(command);
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
    assert!(
        again.stderr.contains("built quick 1.0 (0.0 s): reused"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("built sleepy 1.0"),
        "{}",
        again.stderr
    );
}

#[test]
fn build_expect_reports_matches_and_mismatches() {
    let world = World::new();
    package("lib", "2.0", &[], &[]).write(world.path());
    let first = world.build(&["lib==2.0", "--source-date-epoch", "1700000000"]);
    assert_eq!(first.code, ExitCode::Success, "{}", first.stderr);
    let wheel = world
        .path()
        .join("wheelhouse")
        .read_dir()
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("lib-2.0-py3-none-any.whl");
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&wheel).unwrap()));
    let expect = world.path().join("expect.txt");
    std::fs::write(
        &expect,
        format!(
            "lib==2.0 --hash=sha256:{} --hash=sha256:{digest}\n",
            "f".repeat(64)
        ),
    )
    .unwrap();
    let again = world.build(&[
        "lib==2.0",
        "--source-date-epoch",
        "1700000000",
        "--expect",
        expect.to_str().unwrap(),
    ]);
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
    assert!(again.stdout.contains("expect ok"), "{}", again.stdout);
    std::fs::write(
        &expect,
        format!("lib==2.0 --hash=sha256:{}\n", "f".repeat(64)),
    )
    .unwrap();
    let wrong = world.build(&[
        "lib==2.0",
        "--source-date-epoch",
        "1700000000",
        "--expect",
        expect.to_str().unwrap(),
    ]);
    assert_eq!(
        wrong.code,
        ExitCode::NotReproducible,
        "{}{}",
        wrong.stdout,
        wrong.stderr
    );
    assert!(wrong.stdout.contains("expect MISMATCH"), "{}", wrong.stdout);
}

#[test]
fn provenance_names_every_input_and_checks_against_the_wheel() {
    let world = World::new();
    package("helper", "1.0", &[], &[]).write(world.path());
    package("app", "1.0", &["helper"], &[]).write(world.path());
    let attest = world.path().join("attest");
    let r = world.build(&["app==1.0", "--provenance", attest.to_str().unwrap()]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = std::fs::read_dir(world.path().join("wheelhouse"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let wheel = world
        .path()
        .join("wheelhouse")
        .join(&cell)
        .join("app-1.0-py3-none-any.whl");
    let statement = attest
        .join(&cell)
        .join("app-1.0-py3-none-any.whl.intoto.json");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&statement).unwrap()).unwrap();
    assert_eq!(doc["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(doc["predicateType"], "https://slsa.dev/provenance/v1");
    let deps = doc["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert!(
        deps[0]["uri"].as_str().unwrap().ends_with("app-1.0.tar.gz"),
        "{deps:?}"
    );
    assert!(
        deps.iter()
            .any(|d| d["name"] == "helper==1.0" && d["digest"]["sha256"].is_string()),
        "the build environment by digest: {deps:?}"
    );
    assert_eq!(
        doc["predicate"]["runDetails"]["builder"]["id"],
        "urn:rewheel:builder:local"
    );

    // The checksums are what `sha256sum -c` reads, next to the wheels.
    let sums = std::fs::read_to_string(attest.join(&cell).join("sha256sums.txt")).unwrap();
    assert_eq!(sums.lines().count(), 2, "{sums}");
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg(attest.join(&cell).join("sha256sums.txt"))
        .current_dir(world.path().join("wheelhouse").join(&cell))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // compare checks a wheel against its statement.
    let compare = |w: &std::path::Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        c.arg("compare").arg(&statement).arg(w);
        run(c)
    };
    let ok = compare(&wheel);
    assert_eq!(ok.code, ExitCode::Success, "{}{}", ok.stdout, ok.stderr);
    let other = world
        .path()
        .join("wheelhouse")
        .join(&cell)
        .join("helper-1.0-py3-none-any.whl");
    let bad = compare(&other);
    assert_eq!(
        bad.code,
        ExitCode::NotReproducible,
        "{}{}",
        bad.stdout,
        bad.stderr
    );
    assert!(
        bad.stdout.contains("no subject has sha256"),
        "{}",
        bad.stdout
    );
}

#[test]
fn a_pylock_is_written_per_cell_and_read_back_as_requirements_and_expectations() {
    let world = World::new();
    package("helper", "1.0", &[], &[]).write(world.path());
    package("app", "1.0", &["helper"], &[]).write(world.path());
    let attest = world.path().join("attest");
    let r = world.build(&["app==1.0", "--provenance", attest.to_str().unwrap()]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = std::fs::read_dir(&attest)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let lock = attest.join(&cell).join(format!("pylock.{cell}.toml"));
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(text.starts_with("lock-version = \"1.0\""), "{text}");
    assert!(
        text.contains(&format!(
            "path = \"../../wheelhouse/{cell}/app-1.0-py3-none-any.whl\""
        )),
        "{text}"
    );
    // The lock as requirements (-r) and as the hashes the wheels must have (--expect).
    let lock = lock.to_str().unwrap();
    let again = world.build(&["-r", lock, "--expect", lock]);
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
    assert!(
        again
            .stdout
            .contains(&format!("expect ok        {cell}/app-1.0-py3-none-any.whl")),
        "{}",
        again.stdout
    );
    // A lock whose sdist hash is not the index's file stops resolution.
    let wrong = world.path().join("pylock.toml");
    std::fs::write(
        &wrong,
        format!(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"app\"\nversion = \"1.0\"\nsdist = {{ name = \"app-1.0.tar.gz\", hashes = {{ sha256 = \"{}\" }} }}\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let bad = world.build(&["-r", wrong.to_str().unwrap()]);
    assert_eq!(bad.code, ExitCode::Input, "{}{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("hash mismatch"), "{}", bad.stderr);
}
