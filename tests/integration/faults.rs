//! Faults of the host, not of the input: a store that cannot be read, a signal, a second
//! process on the same run, a full disk. Each ends loudly (its message and exit code) and harms
//! nothing else: the store file is left as it was, the run is recorded, the disk is freed.

use crate::common::{Run, World, package, run, skip};
use rewheel::exit::ExitCode;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn assert_fails(r: &Run, code: ExitCode, needles: &[&str]) {
    assert_eq!(r.code, code, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    for needle in needles {
        assert!(
            r.stderr.contains(needle),
            "expected `{needle}` in:\n{}",
            r.stderr
        );
    }
}

fn runs(store: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command.arg("runs").args(args).arg("--store").arg(store);
    run(command)
}

/// Every file below `dir` with its bytes: what "left as it was" compares.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// A rewheel-shaped SQLite file that is some other program's database.
fn foreign_database(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
}

/// How a test damages a store's database file.
type Damage = fn(&Path);

#[test]
fn a_store_that_cannot_be_read_is_refused_and_left_as_it_is() {
    let cases: [(&str, Damage, &str); 3] = [
        (
            "empty",
            |p| std::fs::write(p, b"").unwrap(),
            "it is empty (0 bytes)",
        ),
        (
            "garbage",
            |p| std::fs::write(p, vec![0x5a; 8192]).unwrap(),
            "it cannot be read as a database",
        ),
        (
            "foreign",
            foreign_database,
            "it is a database, but not a rewheel store",
        ),
    ];
    for (case, make, why) in cases {
        let world = World::new();
        package("plain", "1.0", &[], &[]).write(world.path());
        let store = world.path().join(".store");
        std::fs::create_dir_all(store.join("blobs/ab")).unwrap();
        std::fs::write(store.join("blobs/ab/sentinel"), b"a blob of an earlier run").unwrap();
        make(&store.join("runs.sqlite3"));
        let before = snapshot(&store);
        let hint = "hint: restore it from a backup, or move it away";
        for args in [&["verify"][..], &["list"][..]] {
            let r = runs(&store, args);
            assert_fails(&r, ExitCode::Environment, &[why, hint, "runs.sqlite3"]);
            assert!(!r.stdout.contains("consistent"), "{case}: {}", r.stdout);
        }
        let r = world.build(&["plain==1.0"]);
        assert_fails(&r, ExitCode::Environment, &[why, hint]);
        assert!(world.wheels().is_empty(), "{case}: {:?}", world.wheels());
        assert_eq!(snapshot(&store), before, "{case}: the store was changed");
    }
}

#[test]
fn a_store_that_does_not_exist_yet_is_created() {
    let world = World::new();
    package("plain", "1.0", &[], &[]).write(world.path());
    let r = world.build(&["plain==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let list = runs(&world.path().join(".store"), &["list"]);
    assert_eq!(list.code, ExitCode::Success, "{}", list.stderr);
    assert!(list.stdout.contains("built"), "{}", list.stdout);
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .count()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `slow 1.0`, whose build waits in a child process that names `marker`.
fn slow_package(world: &World, marker: &str) {
    package("slow", "1.0", &[], &[])
        .file(
            "hook.py",
            format!(
                "import subprocess, sys\n\
                 subprocess.run([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'])\n"
            ),
        )
        .write(world.path());
}

/// `rewheel build slow==1.0`, once its job is running.
fn start_slow_build(world: &World, marker: &str) -> Child {
    let child = world
        .command("build", &["slow==1.0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the slow job to start", || processes_with(marker) > 0);
    child
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// The one run of a store, as `runs list` prints it.
fn only_run(store: &Path) -> (String, String) {
    let list = runs(store, &["list"]);
    assert_eq!(list.code, ExitCode::Success, "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "{}", list.stdout);
    let mut fields = lines[0].split_whitespace();
    (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().to_string(),
    )
}

#[test]
fn every_terminating_signal_marks_the_run_interrupted() {
    for (case, sig) in [
        ("sigterm", libc::SIGTERM),
        ("sighup", libc::SIGHUP),
        ("sigint", libc::SIGINT),
    ] {
        let world = World::new();
        let marker = format!("rewheel-faults-{case}-{}", std::process::id());
        slow_package(&world, &marker);
        let child = start_slow_build(&world, &marker);
        signal(&child, sig);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(ExitCode::Interrupted.into()),
            "{case}: {stderr}"
        );
        assert!(stderr.contains("--resume"), "{case}: {stderr}");
        wait_for(&format!("the job to end after {case}"), || {
            processes_with(&marker) == 0
        });
        let store = world.path().join(".store");
        let (id, status) = only_run(&store);
        assert_eq!(status, "interrupted", "{case}");
        let show = runs(&store, &["show", &id]);
        assert!(
            show.stdout.contains(&format!("run {id} (interrupted)")),
            "{case}: {}",
            show.stdout
        );
        // Nothing is left running, and nothing is stranded for `runs verify` to find.
        let verify = runs(&store, &["verify"]);
        assert_eq!(
            verify.code,
            ExitCode::Success,
            "{case}: {}{}",
            verify.stdout,
            verify.stderr
        );
    }
}

#[test]
fn a_signal_during_resolution_marks_the_run_interrupted_at_once() {
    let world = World::new();
    // An index that takes the connection and never answers: resolution waits on it.
    let index = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/simple/", index.local_addr().unwrap());
    let (asked, asked_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in index.incoming().flatten() {
            held.push(stream);
            let _ = asked.send(());
        }
    });
    let store = world.path().join(".store");
    let (_, python) = crate::common::host_python();
    let child = Command::new(env!("CARGO_BIN_EXE_rewheel"))
        .args([
            "build",
            "plain==1.0",
            "--python",
            &python,
            "--backend",
            "local",
        ])
        .args(["--index-url", &url, "--store"])
        .arg(&store)
        .arg("--cache-dir")
        .arg(world.path().join(".cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    asked_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("resolution asks the index");
    signal(&child, libc::SIGTERM);
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
    assert_eq!(
        output.status.code(),
        Some(ExitCode::Interrupted.into()),
        "{stderr}"
    );
    assert!(
        stderr.contains("interrupted before any job started"),
        "{stderr}"
    );
    assert_eq!(only_run(&store).1, "interrupted");
}

#[test]
fn a_run_another_process_builds_cannot_be_resumed() {
    let world = World::new();
    let marker = format!("rewheel-faults-resume-{}", std::process::id());
    slow_package(&world, &marker);
    let child = start_slow_build(&world, &marker);
    let store = world.path().join(".store");
    let (id, status) = only_run(&store);
    assert_eq!(status, "running");
    // The live run is no problem of the store's.
    let verify = runs(&store, &["verify"]);
    assert_eq!(
        verify.code,
        ExitCode::Success,
        "{}{}",
        verify.stdout,
        verify.stderr
    );
    let mut resume = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    resume
        .args(["build", "--resume", &id, "--store"])
        .arg(&store);
    let r = run(resume);
    assert_fails(
        &r,
        ExitCode::Input,
        &[&format!(
            "run {id} is being built by process {}",
            child.id()
        )],
    );
    // The refusal touched neither the run nor its build.
    assert_eq!(only_run(&store).1, "running");
    assert_eq!(processes_with(&marker), 1, "the first build still runs");
    signal(&child, libc::SIGTERM);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(ExitCode::Interrupted.into()));
    assert_eq!(only_run(&store).1, "interrupted");
    assert!(
        !store.join("live").join(format!("{id}.lock")).exists(),
        "the lock is let go with the run"
    );
}

/// A small tmpfs at `at`, unmounted when dropped.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Self {
            at: at.to_path_buf(),
        })
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.at)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

#[test]
fn a_full_disk_is_named_and_freed_and_the_next_build_works() {
    let world = World::new();
    // The world's build folder is the small disk.
    let Some(disk) = SmallDisk::mount(&world.path().join(".build"), "20m") else {
        skip("mounting a tmpfs needs root");
        return;
    };
    std::fs::write(disk.at.join("sentinel"), b"not the job's").unwrap();
    package("filler", "1.0", &[], &[])
        .file("hook.py", "open('big', 'wb').write(b'x' * (64 << 20))\n")
        .write(world.path());
    package("plain", "1.0", &[], &[]).write(world.path());
    let r = world.build(&["filler==1.0"]);
    assert_fails(
        &r,
        ExitCode::Environment,
        &[
            "no space left on device (ENOSPC)",
            &format!("the file system mounted at {}", disk.at.display()),
            "the job's folder was removed",
            "hint: free space there",
        ],
    );
    assert!(
        disk.free() > 15 << 20,
        "what the job wrote is freed: {} bytes free",
        disk.free()
    );
    assert_eq!(
        std::fs::read(disk.at.join("sentinel")).unwrap(),
        b"not the job's"
    );
    let store = world.path().join(".store");
    let (id, status) = only_run(&store);
    assert_eq!(status, "failed");
    let show = runs(&store, &["show", &id]);
    assert!(show.stdout.contains("ENOSPC"), "{}", show.stdout);
    let next = world.build(&["plain==1.0"]);
    assert_eq!(
        next.code,
        ExitCode::Success,
        "{}{}",
        next.stdout,
        next.stderr
    );
    drop(disk);
}

#[test]
fn a_full_store_is_named_and_the_store_still_reads() {
    let world = World::new();
    let Some(disk) = SmallDisk::mount(&world.path().join(".store"), "2m") else {
        skip("mounting a tmpfs needs root");
        return;
    };
    // A wheel of 6 MB (stored, not compressed) where 2 MB are free.
    package("bigwheel", "1.0", &[], &[])
        .file(
            "hook.py",
            "open('module.py', 'w').write('X = %r\\n' % os.urandom(3 << 20).hex())\n",
        )
        .write(world.path());
    let r = world.build(&["bigwheel==1.0"]);
    assert_fails(
        &r,
        ExitCode::Environment,
        &[
            &format!("run store {}", disk.at.display()),
            "No space left on device",
        ],
    );
    assert!(world.wheels().is_empty(), "{:?}", world.wheels());
    // Half a blob is not left behind, and the store still answers.
    assert!(disk.free() > 1 << 20, "{} bytes free", disk.free());
    assert_eq!(only_run(&disk.at).1, "failed");
    drop(disk);
}

#[test]
fn a_wheel_entry_that_cannot_be_installed_is_named_with_its_wheel() {
    let world = World::new();
    let wheel = world.path().join("clash-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    // `clash` is a file, then a folder: the second entry cannot be made (`File exists`).
    for (name, body) in [
        ("clash", "a file\n"),
        ("clash/inner.py", "X = 1\n"),
        (
            "clash-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: clash\nVersion: 1.0\n",
        ),
    ] {
        zip.start_file(name, options).unwrap();
        std::io::Write::write_all(&mut zip, body.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    let bytes = std::fs::read(&wheel).unwrap();
    package("needsclash", "1.0", &["clash"], &[])
        .file("needs.txt", "")
        .write(world.path());
    let r = world.build(&["needsclash==1.0", "--allow-binary", "clash"]);
    assert_fails(
        &r,
        ExitCode::BuildFailed,
        &[
            "clash-1.0-py3-none-any.whl",
            "entry `clash/inner.py`",
            "File exists",
        ],
    );
    assert_eq!(
        std::fs::read(&wheel).unwrap(),
        bytes,
        "the wheel is left as it was"
    );
    assert!(world.wheels().is_empty(), "{:?}", world.wheels());
}

/// A run refused for its input built nothing and has nothing to resume: `runs list` does not
/// show it. A run that did work and then met bad input (a resumed one) is kept.
#[test]
fn an_input_error_leaves_no_run_in_the_store() {
    let world = World::new();
    package("plain", "1.0", &[], &[]).write(world.path());
    let store = world.path().join(".store");
    for args in [&["plain==9.9"][..], &["no-such-thing"][..]] {
        let r = world.build(args);
        assert_eq!(r.code, ExitCode::Input, "{args:?}: {}", r.stderr);
    }
    let mut unknown = world.command("build", &["plain==1.0"]);
    unknown.args(["--python", "3.99"]);
    let r = run(unknown);
    assert_eq!(r.code, ExitCode::Input, "{}", r.stderr);
    let list = runs(&store, &["list"]);
    assert_eq!(list.code, ExitCode::Success, "{}", list.stderr);
    assert_eq!(
        list.stdout.lines().count(),
        1,
        "only real runs: {}",
        list.stdout
    );
    let built = world.build(&["plain==1.0"]);
    assert_eq!(built.code, ExitCode::Success, "{}", built.stderr);
    assert_eq!(only_run(&store).1, "built");
}

/// `rewheel build … 2>&1 | head -1`: the reader goes away while jobs run. The build is not left
/// "running" in the store, and `runs verify` finds nothing stranded.
#[test]
fn a_build_whose_reader_went_away_ends_recorded() {
    use std::io::BufRead;
    let world = World::new();
    package("dozy", "1.0", &[], &[])
        .file("hook.py", "import time\ntime.sleep(2)\n")
        .write(world.path());
    let mut child = world
        .command("build", &["dozy==1.0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("run "), "{first}");
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_ne!(
        status.code(),
        Some(0),
        "nothing could be printed: {status:?}"
    );
    let store = world.path().join(".store");
    let (_, recorded) = only_run(&store);
    assert_eq!(recorded, "interrupted");
    let verify = runs(&store, &["verify"]);
    assert_eq!(verify.code, ExitCode::Success, "{}", verify.stdout);
}

/// A run killed without warning is stranded: `runs verify` names it and the command that
/// continues it.
#[test]
fn runs_verify_names_the_run_to_resume() {
    let world = World::new();
    let marker = format!("rewheel-faults-stranded-{}", std::process::id());
    slow_package(&world, &marker);
    let mut child = start_slow_build(&world, &marker);
    child.kill().unwrap();
    child.wait().unwrap();
    let store = world.path().join(".store");
    let (id, status) = only_run(&store);
    assert_eq!(status, "running");
    let verify = runs(&store, &["verify"]);
    // The job's own processes outlive a SIGKILL of rewheel; they are this test's to end.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        {
            // SAFETY: a process this test's build started, found by its unique marker.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    assert_ne!(verify.code, ExitCode::Success, "{}", verify.stdout);
    assert!(
        verify.stdout.contains(&format!(
            "run {id}: marked running, but no rewheel is finishing it (killed?); `rewheel build --resume {id}` continues it"
        )),
        "{}",
        verify.stdout
    );
}
