//! The hostile corpus: one attack per class of issue 8, each asserting the refusal, its message,
//! and that a sentinel folder outside the job is untouched. Archives are made by hand (tar and
//! zip), backends are a few lines of Python that misbehave on purpose.

use crate::common::{RawEntry, Run, run, skip, write_raw_tar_gz};
use crate::common::{World, package};
use rewheel::exit::ExitCode;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A folder outside every job whose content must not change. It lives under the target
/// folder (not /tmp), where a sandboxed job sees a read-only host.
pub(crate) struct Sentinel {
    dir: tempfile::TempDir,
}

impl Sentinel {
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sentinel-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        std::fs::write(dir.path().join("canary"), b"untouched").unwrap();
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn assert_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["canary"], "something was written beside the canary");
        assert_eq!(
            std::fs::read(self.path().join("canary")).unwrap(),
            b"untouched"
        );
    }
}

/// The files of a well-formed tinybuild package as raw entries, to which an attack is added.
pub(crate) fn entries_of(name: &str, version: &str, hook: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut sdist = package(name, version, &[], &[]);
    if let Some(hook) = hook {
        sdist = sdist.file("hook.py", hook);
    }
    let top = format!("{name}-{version}");
    sdist
        .files
        .iter()
        .map(|(rel, text)| (format!("{top}/{rel}"), text.clone().into_bytes()))
        .collect()
}

pub(crate) fn write_tar(dir: &Path, name: &str, files: &[(String, Vec<u8>)], attack: &[RawEntry]) {
    let mut entries: Vec<RawEntry> = files
        .iter()
        .map(|(path, data)| RawEntry {
            path,
            kind: tar::EntryType::Regular,
            link: None,
            data: data.clone(),
        })
        .collect();
    for a in attack {
        entries.push(RawEntry {
            path: a.path,
            kind: a.kind,
            link: a.link,
            data: a.data.clone(),
        });
    }
    write_raw_tar_gz(&dir.join(format!("{name}-1.0.tar.gz")), &entries);
}

fn symlink<'a>(path: &'a str, target: &'a str) -> RawEntry<'a> {
    RawEntry {
        path,
        kind: tar::EntryType::Symlink,
        link: Some(target),
        data: Vec::new(),
    }
}

pub(crate) fn resolve(world: &World, spec: &str) -> Run {
    let (_, version) = crate::common::host_python();
    crate::common::rewheel(world.path(), &["resolve", spec, "--python", &version])
}

fn runs_verify(world: &World) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["runs", "verify", "--store"])
        .arg(world.path().join(".store"));
    run(command)
}

pub(crate) fn assert_refused(r: &Run, code: ExitCode, needle: &str) {
    assert_eq!(r.code, code, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains(needle), "expected `{needle}` in:\n{all}");
}

/// `evil-1.0/x -> .` then `x/x/…/y -> ../..…`: each looks inside; y is the host's root.
fn chain(depth: usize) -> (String, String) {
    let deep = vec!["x"; depth].join("/");
    (format!("evil-1.0/{deep}/y"), vec![".."; depth].join("/"))
}

#[test]
fn a_chain_of_links_cannot_write_outside_in_resolve_or_build() {
    let world = World::new();
    let sentinel = Sentinel::new();
    let (y, up) = chain(20);
    let escape = format!("evil-1.0/y{}/pwned", sentinel.path().display());
    let files = entries_of("evil", "1.0", None);
    write_tar(
        world.path(),
        "evil",
        &files,
        &[
            symlink("evil-1.0/x", "."),
            symlink(&y, &up),
            RawEntry {
                path: &escape,
                kind: tar::EntryType::Regular,
                link: None,
                data: b"owned".to_vec(),
            },
        ],
    );
    let r = world.build(&["evil==1.0"]);
    assert_refused(
        &r,
        ExitCode::Input,
        "would be written through the link `evil-1.0/x`",
    );
    let r = resolve(&world, "evil==1.0");
    assert_refused(
        &r,
        ExitCode::Input,
        "would be written through the link `evil-1.0/x`",
    );
    sentinel.assert_untouched();
    assert!(world.wheels().is_empty());
}

#[test]
fn a_zip_chain_of_links_is_refused_as_well() {
    let world = World::new();
    let sentinel = Sentinel::new();
    let path = world.path().join("evil-1.0.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in entries_of("evil", "1.0", None) {
        zip.start_file(name, options).unwrap();
        zip.write_all(&data).unwrap();
    }
    zip.add_symlink("evil-1.0/x", ".", options).unwrap();
    let (y, up) = chain(20);
    zip.add_symlink(y, up, options).unwrap();
    zip.start_file(
        format!("evil-1.0/y{}/pwned", sentinel.path().display()),
        options,
    )
    .unwrap();
    zip.write_all(b"owned").unwrap();
    zip.finish().unwrap();
    let r = world.build(&["evil==1.0"]);
    assert_refused(
        &r,
        ExitCode::Input,
        "would be written through the link `evil-1.0/x`",
    );
    sentinel.assert_untouched();
}

#[test]
fn a_hard_link_cannot_copy_a_host_file_into_the_wheel() {
    let world = World::new();
    let files = entries_of("evil", "1.0", None);
    write_tar(
        world.path(),
        "evil",
        &files,
        &[
            symlink("evil-1.0/x", "."),
            RawEntry {
                path: "evil-1.0/module.py",
                kind: tar::EntryType::Link,
                link: Some("evil-1.0/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/../../etc/hostname"),
                data: Vec::new(),
            },
        ],
    );
    let r = world.build(&["evil==1.0"]);
    assert_refused(
        &r,
        ExitCode::Input,
        "which is not a regular file of this archive",
    );
    assert!(world.wheels().is_empty());
}

#[test]
fn build_configuration_that_is_a_link_or_too_large_is_refused_never_replaced_by_a_fallback() {
    let world = World::new();
    let mut files = entries_of("linked", "1.0", None);
    files.retain(|(p, _)| !p.ends_with("pyproject.toml"));
    files.push((
        "linked-1.0/other.toml".into(),
        b"[build-system]\nrequires = []\nbuild-backend = \"tinybuild\"\nbackend-path = [\".\"]\n"
            .to_vec(),
    ));
    write_tar(
        world.path(),
        "linked",
        &files,
        &[symlink("linked-1.0/pyproject.toml", "other.toml")],
    );
    let r = resolve(&world, "linked==1.0");
    assert_refused(
        &r,
        ExitCode::Input,
        "is a link; the files that describe a build must be regular files",
    );

    let mut files = entries_of("huge", "1.0", None);
    for (path, data) in &mut files {
        if path.ends_with("pyproject.toml") {
            data.extend(std::iter::repeat_n(b'#', 5 << 20));
        }
    }
    write_tar(world.path(), "huge", &files, &[]);
    let r = world.build(&["huge==1.0"]);
    assert_refused(
        &r,
        ExitCode::Input,
        "too large for a file that describes the build",
    );
}

#[test]
fn a_backend_path_outside_the_source_tree_is_refused() {
    let world = World::new();
    package("wander", "1.0", &[], &[])
        .file(
            "pyproject.toml",
            "[build-system]\nrequires = []\nbuild-backend = \"tinybuild\"\nbackend-path = [\"../..\"]\n",
        )
        .write(world.path());
    let r = world.build(&["wander==1.0"]);
    assert_refused(
        &r,
        ExitCode::Input,
        "backend-path entry `../..` leaves the source tree",
    );
}

#[test]
fn long_name_headers_count_and_memory_stays_small() {
    let world = World::new();
    let path = world.path().join("bomb-1.0.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    // A GNU long-name record of 256 MiB: well under a megabyte compressed.
    for i in 0..1 {
        let mut header = tar::Header::new_gnu();
        let long = vec![b'a'; 256 << 20];
        header.set_size(long.len() as u64);
        header.set_entry_type(tar::EntryType::GNULongName);
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        header.set_cksum();
        tar.append(&header, long.as_slice()).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_path(format!("bomb-1.0/f{i}")).unwrap();
        header.set_cksum();
        tar.append(&header, &b"x"[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 4 << 20);
    let r = resolve(&world, "bomb==1.0");
    assert_refused(
        &r,
        ExitCode::Input,
        "tar headers of more than 1048576 bytes",
    );
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let peak_mib = usage.ru_maxrss / 1024;
    assert!(peak_mib < 512, "rewheel peaked at {peak_mib} MiB");
}

/// A backend whose `build_wheel` hands back something that is not its wheel.
fn lying_backend(world: &World, name: &str, body: &str) {
    let backend = format!(
        "import os\n\ndef get_requires_for_build_wheel(config_settings=None):\n    return []\n\n\
         def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n{body}\n"
    );
    package(name, "1.0", &[], &[])
        .file("tinybuild.py", backend)
        .write(world.path());
}

#[test]
fn a_wheel_that_is_a_link_a_non_zip_or_misnamed_is_refused() {
    let world = World::new();
    lying_backend(
        &world,
        "linky",
        "    name = 'linky-1.0-py3-none-any.whl'\n    os.symlink('/etc/hostname', os.path.join(wheel_directory, name))\n    return name",
    );
    let r = world.build(&["linky==1.0"]);
    assert_refused(
        &r,
        ExitCode::BuildFailed,
        "it is a link, or lies behind one, not a file",
    );
    lying_backend(
        &world,
        "notzip",
        "    name = 'notzip-1.0-py3-none-any.whl'\n    open(os.path.join(wheel_directory, name), 'w').write('abc')\n    return name",
    );
    let r = world.build(&["notzip==1.0"]);
    assert_refused(&r, ExitCode::BuildFailed, "it is not a zip archive");
    lying_backend(
        &world,
        "misnamed",
        "    import zipfile\n    name = 'other-2.0-py3-none-any.whl'\n    zipfile.ZipFile(os.path.join(wheel_directory, name), 'w').close()\n    return name",
    );
    let r = world.build(&["misnamed==1.0"]);
    assert_refused(
        &r,
        ExitCode::BuildFailed,
        "it names other 2.0, but this job builds misnamed 1.0",
    );
    lying_backend(&world, "escaper", "    return '../request.json'");
    let r = world.build(&["escaper==1.0"]);
    assert_refused(
        &r,
        ExitCode::BuildFailed,
        "not a file name in the output folder",
    );
    assert!(world.wheels().is_empty(), "{:?}", world.wheels());
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A package whose build leaves a daemon behind (its own session), then sleeps `linger` s.
fn daemon_package(world: &World, marker: &str, linger: u32) {
    package("daemonic", "1.0", &[], &[])
        .file(
            "hook.py",
            format!(
                "import subprocess, sys, time\n\
                 subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'], start_new_session=True)\n\
                 time.sleep({linger})\n"
            ),
        )
        .write(world.path());
}

fn unique_marker(case: &str) -> String {
    format!("rewheel-daemon-{case}-{}", std::process::id())
}

#[test]
fn a_daemon_started_by_a_build_ends_with_the_job() {
    let world = World::new();
    let marker = unique_marker("exit");
    daemon_package(&world, &marker, 1);
    let r = world.build(&["daemonic==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    wait_for("the daemon to end", || processes_with(&marker).is_empty());
}

#[test]
fn a_daemon_ends_when_the_job_times_out() {
    let world = World::new();
    let marker = unique_marker("timeout");
    daemon_package(&world, &marker, 120);
    let r = world.build(&["daemonic==1.0", "--timeout", "3"]);
    assert_refused(&r, ExitCode::BuildFailed, "timed out");
    wait_for("the daemon to end", || processes_with(&marker).is_empty());
}

#[test]
fn a_daemon_ends_when_rewheel_is_interrupted_or_killed() {
    for (case, signal) in [("sigint", libc::SIGINT), ("sigkill", libc::SIGKILL)] {
        let world = World::new();
        let marker = unique_marker(case);
        daemon_package(&world, &marker, 120);
        let mut child = world
            .command("build", &["daemonic==1.0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the daemon to start", || {
            !processes_with(&marker).is_empty()
        });
        // SAFETY: kill sends a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert!(!status.success(), "{case}: {status:?}");
        wait_for(&format!("the daemon to end after {case}"), || {
            processes_with(&marker).is_empty()
        });
    }
}

#[test]
fn an_interrupt_during_the_second_build_of_check_stops_it() {
    let world = World::new();
    let marker = unique_marker("check-second");
    // Quick on the first side (hash seed 0); on the second, whose seed differs, it waits in a
    // child process that names the marker, so the test sees the second build running.
    package("slowsecond", "1.0", &[], &[])
        .file(
            "hook.py",
            format!(
                "import subprocess, sys\n\
                 if os.environ.get('PYTHONHASHSEED') != '0':\n\
                 \x20   subprocess.run([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'])\n"
            ),
        )
        .write(world.path());
    let child = world
        .command("check", &["slowsecond==1.0", "--vary", "hash-seed"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the second build to start", || {
        !processes_with(&marker).is_empty()
    });
    // SAFETY: kill sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(ExitCode::Interrupted.into()),
        "{stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    wait_for("the second build's process to end", || {
        processes_with(&marker).is_empty()
    });
}

pub(crate) fn have_bwrap() -> bool {
    Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_local_job_cannot_write_the_host_reach_docker_or_run_as_root() {
    if !have_bwrap() {
        skip("bubblewrap (bwrap) is not installed; .ci/run installs it");
        return;
    }
    let world = World::new();
    let sentinel = Sentinel::new();
    let probe = format!(
        r#"
import os, socket
seen = []
for path in [{sentinel:?} + "/pwned", os.path.expanduser("~root") + "/.rewheel-probe", "/etc/rewheel-probe"]:
    try:
        open(path, "w").write("escaped")
        seen.append("wrote " + path)
    except OSError as e:
        seen.append("denied " + path)
for sock in ["/var/run/docker.sock", "/run/docker.sock"]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sock)
        seen.append("reached " + sock)
    except OSError:
        seen.append("unreachable " + sock)
seen.append("uid %d" % os.getuid())
open("module.py", "w").write("SEEN = %r\n" % seen)
"#,
        sentinel = sentinel.path().display().to_string()
    );
    package("nosy", "1.0", &[], &[])
        .file("hook.py", probe)
        .write(world.path());
    let r = world.build(&["nosy==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    sentinel.assert_untouched();
    let wheel = world
        .path()
        .join("wheelhouse")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("nosy-1.0-py3-none-any.whl");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    let mut seen = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("nosy/__init__.py").unwrap(), &mut seen)
        .unwrap();
    assert!(seen.contains("denied /etc/rewheel-probe"), "{seen}");
    assert!(
        seen.contains(&format!("denied {}/pwned", sentinel.path().display())),
        "{seen}"
    );
    assert!(!seen.contains("reached"), "{seen}");
    assert!(seen.contains("uid 1000"), "{seen}");
    assert!(!Path::new("/etc/rewheel-probe").exists());
    assert!(!Path::new("/root/.rewheel-probe").exists());
}

#[test]
fn a_flood_of_output_keeps_only_the_head_and_tail_of_the_log() {
    let world = World::new();
    package("chatty", "1.0", &[], &[])
        .file(
            "hook.py",
            "import sys\nfor i in range(200000):\n    print('line %06d ' % i + 'x' * 40)\nraise SystemExit('the end of a long log')\n",
        )
        .write(world.path());
    let r = world.build(&["chatty==1.0"]);
    assert_eq!(r.code, ExitCode::BuildFailed, "{}{}", r.stdout, r.stderr);
    let log = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("log: "))
        .map(PathBuf::from)
        .expect("the summary names the log");
    let text =
        std::fs::read_to_string(world.path().join(&log).canonicalize().unwrap_or(log)).unwrap();
    assert!(text.len() <= (4 << 20) + 200, "{} bytes kept", text.len());
    assert!(text.contains("bytes of this log were cut"));
    assert!(text.contains("line 000000") && text.contains("the end of a long log"));
}

fn run_id(r: &Run) -> String {
    r.stderr
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .expect("the run id is printed")
        .to_string()
}

#[test]
fn a_changed_blob_in_the_store_is_never_served() {
    let world = World::new();
    package("solid", "1.0", &[], &[]).write(world.path());
    let first = world.build(&["solid==1.0"]);
    assert_eq!(
        first.code,
        ExitCode::Success,
        "{}{}",
        first.stdout,
        first.stderr
    );
    let wheel = world.path().join("wheelhouse");
    let out = std::fs::read_dir(&wheel)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(out.join("solid-1.0-py3-none-any.whl")).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&good));
    let blob = world.path().join(".store/blobs").join(&sha[..2]).join(&sha);
    std::fs::write(&blob, b"corrupt").unwrap();

    let verify = runs_verify(&world);
    assert_refused(
        &verify,
        ExitCode::NotReproducible,
        "does not match its name",
    );

    let id = run_id(&first);
    let resumed = world.build(&["--resume", &id]);
    assert_eq!(
        resumed.code,
        ExitCode::Success,
        "{}{}",
        resumed.stdout,
        resumed.stderr
    );
    assert!(
        resumed.stderr.contains("not reusing a stored wheel"),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        std::fs::read(out.join("solid-1.0-py3-none-any.whl")).unwrap(),
        good,
        "--out holds the good wheel"
    );
    assert_eq!(std::fs::read(&blob).unwrap(), good, "the blob was replaced");
    let verify = runs_verify(&world);
    assert_eq!(
        verify.code,
        ExitCode::Success,
        "{}{}",
        verify.stdout,
        verify.stderr
    );
}

#[test]
fn two_builds_at_once_on_one_store_and_build_path_both_succeed() {
    let world = World::new();
    package("slow", "1.0", &[], &[])
        .file("hook.py", "import time\ntime.sleep(2)\n")
        .write(world.path());
    let spawn = || {
        world
            .command("build", &["slow==1.0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let id = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("run ").map(String::from))
            .unwrap()
    };
    assert_ne!(id(&a), id(&b));
}

#[test]
fn a_pathological_setup_py_is_a_warning_not_a_crash() {
    let world = World::new();
    let nested = format!("x = {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let chain = format!("y = 1{}\n", "+1".repeat(10_000));
    crate::common::Sdist::new("deep", "1.0")
        .file(
            "setup.py",
            format!("{nested}{chain}from setuptools import setup\nsetup()\n"),
        )
        .pkg_info("2.1", &[])
        .write(world.path());
    let r = resolve(&world, "deep==1.0");
    assert_ne!(r.code, 134, "aborted: {}", r.stderr);
    assert!(
        r.stderr.contains("setup.py could not be parsed"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn compare_of_files_leaves_the_store_alone_and_names_renamed_twins() {
    let world = World::new();
    let a = crate::common::write_wheel(world.path(), "twin", "1.0", &[]);
    let b = world.path().join("copy-1.0-py3-none-any.whl");
    std::fs::copy(&a, &b).unwrap();
    let store = world.path().join("never-made");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["compare"])
        .arg(&a)
        .arg(&b)
        .arg("--store")
        .arg(&store);
    let r = run(command);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("different names"), "{}", r.stdout);
    assert!(
        r.stdout.contains("their bytes are identical"),
        "{}",
        r.stdout
    );
    assert!(!store.exists(), "compare of files created the store");
}

#[test]
fn a_relative_build_path_and_hostile_cell_ids() {
    let world = World::new();
    package("rel", "1.0", &[], &[]).write(world.path());
    let (python, version) = crate::common::host_python();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .current_dir(world.path())
        .args([
            "build",
            "rel==1.0",
            "--python",
            &version,
            "--backend",
            "local",
        ])
        .args(["--no-index", "--find-links", ".", "--cache-dir", ".cache"])
        .args([
            "--store",
            ".store",
            "--out",
            "wh",
            "--build-path",
            "relative/build",
        ])
        .arg("--python-path")
        .arg(python);
    let r = run(command);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);

    let matrix = world.path().join("m.toml");
    std::fs::write(&matrix, "[cells.\"../../escaped\"]\npython = \"3.11\"\n").unwrap();
    let r = crate::common::rewheel(
        world.path(),
        &["build", "rel==1.0", "--matrix", matrix.to_str().unwrap()],
    );
    assert_refused(&r, ExitCode::Input, "cell id `../../escaped`");
    assert!(!world.path().join("../escaped").exists());
}

#[test]
fn endless_input_files_and_failed_runs_are_bounded_and_recorded() {
    let world = World::new();
    let r = crate::common::rewheel(
        world.path(),
        &["resolve", "-r", "/dev/zero", "--python", "3.11"],
    );
    assert_refused(&r, ExitCode::Input, "not a requirements file");
    // A run that fails while resolving is not left running, nor kept as a "failed 0/0" run.
    let r = world.build(&["nothing-here==1.0"]);
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    let verify = runs_verify(&world);
    assert_eq!(
        verify.code,
        ExitCode::Success,
        "{}{}",
        verify.stdout,
        verify.stderr
    );
    let mut list = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    list.args(["runs", "list", "--store"])
        .arg(world.path().join(".store"));
    let listed = run(list);
    assert!(
        !listed.stdout.contains("failed") && !listed.stdout.contains("running"),
        "{}",
        listed.stdout
    );
}

/// Build environments are hard links into one unpacked tree per wheel (the site cache): a
/// build that writes its environment would change every later job's. It sees it read-only.
#[test]
fn a_build_cannot_change_the_build_environment_later_jobs_share() {
    if !have_bwrap() {
        skip("bubblewrap (bwrap) is not installed; .ci/run installs it");
        return;
    }
    let world = World::new();
    package("tool", "1.0", &[], &[]).write(world.path());
    // Top-level statements only: exec'd code in a function has no closures over its names.
    let hook = r#"
import os, tool
seen = []
target = tool.__file__
for what in ["append", "chmod", "unlink", "create"]:
    try:
        if what == "append":
            open(target, "a").write("POISON = 1\n")
        elif what == "chmod":
            os.chmod(target, 0o666)
        elif what == "unlink":
            os.unlink(target)
        else:
            open(os.path.join(os.path.dirname(target), "extra.py"), "w").write("POISON = 1\n")
        seen.append(what + " done")
    except OSError:
        seen.append(what + " denied")
open("module.py", "a").write("SEEN = %r\n" % seen)
"#;
    for name in ["poisoner", "victim"] {
        package(name, "1.0", &["tool"], &[])
            .file("hook.py", hook)
            .write(world.path());
    }
    // One job at a time: the victim builds after the poisoner, from the same tree.
    let r = world.build(&["poisoner==1.0", "victim==1.0", "--jobs", "1"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    for name in ["poisoner", "victim"] {
        let wheel = world
            .wheels()
            .into_iter()
            .find(|w| w.starts_with(&format!("{name}-")))
            .unwrap();
        let path = std::fs::read_dir(world.path().join("wheelhouse"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join(wheel);
        let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut seen = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name(&format!("{name}/__init__.py")).unwrap(),
            &mut seen,
        )
        .unwrap();
        for what in ["append", "chmod", "unlink", "create"] {
            assert!(seen.contains(&format!("{what} denied")), "{name}: {seen}");
        }
    }
    // The shared tree is as unpacked.
    let sites = world.path().join(".build/.sites");
    let mut trees = 0;
    for tree in std::fs::read_dir(&sites).unwrap() {
        let tool = tree.unwrap().path().join("tool/__init__.py");
        if tool.is_file() {
            trees += 1;
            assert_eq!(std::fs::read_to_string(&tool).unwrap(), "NAME = \"tool\"\n");
            assert!(!tool.with_file_name("extra.py").exists());
        }
    }
    assert!(trees > 0, "no tree of tool's wheel in {}", sites.display());
}

/// A matrix whose supplied image's interpreter or repair step carries shell words: refused
/// when the matrix is read, before any engine or container, with the key and the fix.
#[test]
fn a_supplied_images_interpreter_or_repair_step_cannot_carry_shell_words() {
    let world = World::new();
    package("app", "1.0", &[], &[]).write(world.path());
    let sentinel = Sentinel::new();
    let touch = sentinel.path().join("pwned");
    for (key, value) in [
        (
            "interpreter",
            format!("/usr/bin/python3; touch {}", touch.display()),
        ),
        ("repair", format!("auditwheel && touch {}", touch.display())),
    ] {
        let matrix = world.path().join(format!("{key}.toml"));
        std::fs::write(
            &matrix,
            format!(
                "[cells.cp311-evil]\npython = \"3.11\"\nsupplied-image = \"any:1\"\n{key} = {}\n",
                toml_string(&value)
            ),
        )
        .unwrap();
        let r = run(world.command("build", &["app==1.0", "--matrix", matrix.to_str().unwrap()]));
        assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(&format!("cells.cp311-evil.{key}"))
                && r.stderr.contains("plain characters"),
            "{}",
            r.stderr
        );
    }
    sentinel.assert_untouched();
}

fn toml_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}
