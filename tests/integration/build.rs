//! `rewheel build` on the local backend, end to end, with sdists whose in-tree backend (a few
//! lines of Python) builds real wheels: the interpreter is the host's.

use crate::fixtures::{Run, Sdist, run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PEP 517 backend in one file: imports what `needs.txt` names (so a missing build
/// dependency fails the build), runs `hook.py` if present, writes a wheel with fixed times.
pub const TINYBUILD: &str = r#"
import importlib, os, zipfile, hashlib, base64

def _meta():
    name, version = open("NAME").read().split()
    return name, version

def get_requires_for_build_wheel(config_settings=None):
    # What the backend decides at build time, as hatchling's own in-tree hook does.
    return open("dynamic.txt").read().split() if os.path.exists("dynamic.txt") else []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = _meta()
    for module in open("needs.txt").read().split():
        importlib.import_module(module)
    if os.path.exists("hook.py"):
        exec(open("hook.py").read())
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": open("module.py", "rb").read(),
        f"{info}/METADATA": open("PKG-INFO", "rb").read(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tinybuild\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = f"{dist}-{version}-py3-none-any.whl"
    import time
    # Two ways real backends leak the environment into the archive, switched on by a file.
    stamp = time.localtime()[:6] if os.path.exists("clock_times.txt") else (1980, 1, 1, 0, 0, 0)
    mode = os.stat("module.py").st_mode & 0o777 if os.path.exists("modes.txt") else 0o644
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        for path, data in files.items():
            entry = zipfile.ZipInfo(path, date_time=stamp)
            entry.external_attr = mode << 16
            z.writestr(entry, data)
    return filename
"#;

pub fn package<'a>(
    name: &'a str,
    version: &'a str,
    build_requires: &[&str],
    runtime: &[&str],
) -> Sdist<'a> {
    let needs: Vec<String> = build_requires.iter().map(|r| r.replace('-', "_")).collect();
    Sdist::new(name, version)
        .pyproject(build_requires, "tinybuild", Some("."))
        .pkg_info("2.2", runtime)
        .file("tinybuild.py", TINYBUILD)
        .file("NAME", format!("{name} {version}"))
        .file("needs.txt", needs.join("\n"))
        .file("module.py", format!("NAME = {name:?}\n"))
}

/// The host's real interpreter (not a shim), and its X.Y.
/// The real interpreter for X.Y on this host, if there is one, found as rewheel finds it.
pub fn host_has_python(version: &str) -> Option<PathBuf> {
    let (major, minor) = version.split_once('.')?;
    rewheel::build::interpreter::find(major.parse().ok()?, minor.parse().ok()?, &[]).map(|i| i.path)
}

pub fn host_python() -> (PathBuf, String) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    (
        PathBuf::from(lines.next().unwrap()),
        lines.next().unwrap().to_string(),
    )
}

pub struct World {
    dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rewheel SUB ARGS` on the local backend, with this world's find-links folder, cache,
    /// store, wheelhouse and build folder, and the host's interpreter as the cell.
    pub fn command(&self, sub: &str, args: &[&str]) -> Command {
        self.command_out(sub, args, &self.path().join("wheelhouse"))
    }

    /// The same, with the wheels going to `out`.
    pub fn command_out(&self, sub: &str, args: &[&str], out: &Path) -> Command {
        let (python, version) = host_python();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        command
            .arg(sub)
            .args(args)
            .args([
                "--python",
                &version,
                "--backend",
                "local",
                "--no-index",
                "--find-links",
            ])
            .arg(self.path())
            .arg("--python-path")
            .arg(python)
            .arg("--cache-dir")
            .arg(self.path().join(".cache"))
            .arg("--store")
            .arg(self.path().join(".store"))
            .arg("--out")
            .arg(out)
            .arg("--build-path")
            .arg(self.path().join(".build"))
            .env_remove("PIP_INDEX_URL");
        command
    }

    pub fn build(&self, args: &[&str]) -> Run {
        run(self.command("build", args))
    }

    pub fn wheels(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path().join("wheelhouse"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|cell| std::fs::read_dir(cell.path()).unwrap().flatten())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

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
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
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
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
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
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
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
    assert_eq!(first.code, 0, "{}", first.stderr);
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
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
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

#[test]
fn requirements_a_backend_names_at_build_time_are_built_first() {
    let world = World::new();
    package("helper", "1.0", &[], &[]).write(world.path());
    package("late", "1.0", &[], &[])
        .file("dynamic.txt", "helper")
        .file("needs.txt", "helper")
        .write(world.path());
    let r = world.build(&["late==1.0"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
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
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
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
    assert_eq!(first.code, 0, "{}", first.stderr);
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
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
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
    assert_eq!(wrong.code, 1, "{}{}", wrong.stdout, wrong.stderr);
    assert!(wrong.stdout.contains("expect MISMATCH"), "{}", wrong.stdout);
}
