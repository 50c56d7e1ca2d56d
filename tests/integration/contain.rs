//! Containment, round 2: what a job can reach through what rewheel hands it (inherited
//! descriptors), and what rewheel reads back from a job's folder (links at any depth, wheels
//! whose entries leave the folder they are installed into, folders too deep to remove).

use crate::common::{Run, World, package, run};
use crate::hostile::{Sentinel, assert_refused, have_bwrap};
use rewheel::exit::ExitCode;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where an attack runs: a folder of sdists, and how `rewheel build` is made there (the local
/// backend's `World`, or the docker backend: `docker::build`).
pub(crate) struct Target<'a> {
    pub dir: &'a Path,
    pub command: &'a dyn Fn(&[&str]) -> Command,
}

impl Target<'_> {
    fn build(&self, specs: &[&str]) -> Run {
        run((self.command)(specs))
    }

    fn wheels(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.join("wheelhouse"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|cell| std::fs::read_dir(cell.path()).unwrap().flatten())
            .map(|e| e.path())
            .collect()
    }
}

fn local<T>(attack: impl Fn(&Target) -> T) -> T {
    let world = World::new();
    let command = |specs: &[&str]| world.command("build", specs);
    attack(&Target {
        dir: world.path(),
        command: &command,
    })
}

/// A package whose `build_wheel` is `body` (with `os`, `shutil` and `zipfile` imported).
fn backend(dir: &Path, name: &str, body: &str) {
    let backend = format!(
        "import os, shutil, zipfile\n\ndef get_requires_for_build_wheel(config_settings=None):\n    return []\n\n\
         def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n{body}\n"
    );
    package(name, "1.0", &[], &[])
        .file("tinybuild.py", backend)
        .write(dir);
}

/// The lines of a backend that writes `name`'s wheel with `entries` (path, text) and returns it.
fn wheel_with(name: &str, entries: &[(&str, &str)]) -> String {
    let mut body = format!(
        "    whl = '{name}-1.0-py3-none-any.whl'\n    z = zipfile.ZipFile(os.path.join(wheel_directory, whl), 'w')\n"
    );
    for (path, text) in entries {
        body.push_str(&format!("    z.writestr({path:?}, {text:?})\n"));
    }
    body.push_str(&format!(
        "    z.writestr('{name}-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: {name}\\nVersion: 1.0\\n')\n    z.close()\n    return whl\n"
    ));
    body
}

#[test]
fn an_inherited_descriptor_does_not_reach_the_build() {
    local(inherited_descriptors);
}

/// `nohup rewheel build 3>>CANARY 4<SENTINEL` (and SIGTERM ignored): the build writes to every
/// descriptor above 2 it finds and creates a file through every one that is a folder; nothing
/// reaches the sentinel, and the build's signals are at their defaults.
pub(crate) fn inherited_descriptors(target: &Target) {
    let sentinel = Sentinel::new();
    package("doors", "1.0", &[], &[])
        .file(
            "hook.py",
            r#"
found = []
for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
    if fd <= 2:
        continue
    try:
        found.append(os.readlink("/proc/self/fd/%d" % fd))
    except OSError:
        continue
    try:
        os.write(fd, b"escaped through an inherited descriptor\n")
    except OSError:
        pass
    try:
        os.close(os.open("pwned", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    except OSError:
        pass
ignored = [l for l in open("/proc/self/status") if l.startswith("SigIgn:")][0].split()[1]
open("module.py", "w").write("FOUND = %r\nIGNORED = 0x%s\n" % (found, ignored))
"#,
        )
        .write(target.dir);
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(sentinel.path().join("canary"))
        .unwrap();
    let folder = std::fs::File::open(sentinel.path()).unwrap();
    use std::os::fd::AsRawFd;
    let (file_fd, dir_fd) = (file.as_raw_fd(), folder.as_raw_fd());
    let mut command = (target.command)(&["doors==1.0"]);
    // SAFETY: dup2 onto 3 and 4 in the child, without close-on-exec, as a shell's `3>>FILE
    // 4<DIR` would leave them.
    unsafe {
        command.pre_exec(move || {
            // As `nohup` leaves it, and a shell's `trap '' TERM`.
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            // dup2 onto the same number keeps close-on-exec: clear it either way.
            for (from, to) in [(file_fd, 3), (dir_fd, 4)] {
                if libc::dup2(from, to) < 0 || libc::fcntl(to, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let r = run(command);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    sentinel.assert_untouched();
    let wheels = target.wheels();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheels[0]).unwrap()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("doors/__init__.py").unwrap(), &mut text)
        .unwrap();
    assert!(text.starts_with("FOUND = ["), "{text}");
    let ignored = text
        .lines()
        .find_map(|l| l.strip_prefix("IGNORED = 0x"))
        .map(|hex| u64::from_str_radix(hex, 16).unwrap())
        .unwrap();
    let bit = |signal: i32| 1u64 << (signal - 1);
    assert_eq!(
        ignored & (bit(libc::SIGHUP) | bit(libc::SIGTERM)),
        0,
        "the build inherited ignored signals: {text}"
    );
    assert!(
        !text.contains(&sentinel.path().display().to_string()),
        "the build saw a descriptor into the sentinel: {text}"
    );
}

#[test]
fn a_job_that_swaps_its_out_folder_for_a_link_hands_back_nothing() {
    local(swapped_out_folder);
}

/// The build replaces its `out/` with a link to a host folder holding a wheel with exactly
/// the name the job claims. The job cannot write there, but rewheel would take that wheel if
/// it followed the link on the host.
pub(crate) fn swapped_out_folder(target: &Target) {
    let decoy = Sentinel::new();
    let planted = decoy.path().join("swap-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&planted).unwrap());
    zip.start_file("swap/__init__.py", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.finish().unwrap();
    let before = std::fs::read(&planted).unwrap();
    backend(
        target.dir,
        "swap",
        &format!(
            "    shutil.rmtree(wheel_directory)\n    os.symlink({:?}, wheel_directory)\n    return 'swap-1.0-py3-none-any.whl'",
            decoy.path().display().to_string()
        ),
    );
    let r = target.build(&["swap==1.0"]);
    assert_refused(
        &r,
        ExitCode::BuildFailed,
        "it is a link, or lies behind one",
    );
    assert!(target.wheels().is_empty(), "{:?}", target.wheels());
    assert_eq!(std::fs::read(&planted).unwrap(), before);
}

#[test]
fn a_wheel_whose_entries_leave_the_folder_or_repeat_is_not_an_output() {
    local(wheels_that_leave_or_repeat);
}

pub(crate) fn wheels_that_leave_or_repeat(target: &Target) {
    let sentinel = Sentinel::new();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        (
            "dotdot",
            vec![("../escaped.py", "X = 1")],
            "the entry `../escaped.py` would land outside",
        ),
        (
            "inner",
            vec![("inner/../../escaped.py", "X = 1")],
            "would land outside",
        ),
        (
            "absolute",
            vec![("/tmp/escaped.py", "X = 1")],
            "the entry `/tmp/escaped.py` would land outside",
        ),
        (
            "twice",
            vec![("twice/w.py", "GOOD = 1"), ("twice/w.py", "import os")],
            "the entry `twice/w.py` appears more than once",
        ),
    ];
    for (name, entries, message) in cases {
        backend(target.dir, name, &wheel_with(name, &entries));
        let r = target.build(&[&format!("{name}==1.0")]);
        assert_refused(&r, ExitCode::BuildFailed, message);
        assert!(target.wheels().is_empty(), "{name}: {:?}", target.wheels());
    }
    sentinel.assert_untouched();
}

#[test]
fn a_job_folder_of_any_depth_is_removed_and_a_killed_runs_folders_are_swept() {
    if !have_bwrap() {
        crate::common::skip("bubblewrap (bwrap) is not installed; .ci/run installs it");
        return;
    }
    let world = World::new();
    // 30,000 nested folders: far past PATH_MAX, and past what a removal holding one
    // descriptor per level could open.
    package("deep", "1.0", &[], &[])
        .file(
            "hook.py",
            "here = os.open('.', os.O_RDONLY)\nfor _ in range(30000):\n    os.mkdir('d', dir_fd=here)\n    down = os.open('d', os.O_RDONLY, dir_fd=here)\n    os.close(here)\n    here = down\nos.close(here)\n",
        )
        .write(world.path());
    let jobs = world.path().join(".build/.jobs");
    let r = world.build(&["deep==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let left: Vec<_> = std::fs::read_dir(&jobs).unwrap().flatten().collect();
    assert!(left.is_empty(), "job folders left: {left:?}");

    // A run killed with SIGKILL leaves its job's folder; the next run on the build path
    // removes it, and leaves a live process's folder alone.
    package("slow", "1.0", &[], &[])
        .file("hook.py", "import time\ntime.sleep(120)\n")
        .write(world.path());
    let mut child = world
        .command("build", &["slow==1.0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::fs::read_dir(&jobs).unwrap().count() == 0 {
        assert!(start.elapsed().as_secs() < 60, "the slow job never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let orphan: Vec<_> = std::fs::read_dir(&jobs).unwrap().flatten().collect();
    assert_eq!(orphan.len(), 1, "{orphan:?}");
    let live = jobs.join(format!("{}-0-live-job", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    package("after", "1.0", &[], &[]).write(world.path());
    let r = world.build(&["after==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(!orphan[0].path().exists(), "the killed run's folder stays");
    assert!(
        Path::new(&live).is_dir(),
        "a live process's folder was removed"
    );
}

#[test]
fn endless_matrix_settings_and_patch_files_are_refused_not_read_to_the_end() {
    let world = World::new();
    for (flag, what) in [("--matrix", "matrix file"), ("--settings", "settings file")] {
        let r = crate::common::rewheel(
            world.path(),
            &["resolve", "a==1", "--python", "3.11", flag, "/dev/zero"],
        );
        assert_refused(&r, ExitCode::Input, &format!("not a {what}"));
    }
    let settings = world.path().join("settings.toml");
    std::fs::write(&settings, "[packages.a]\npatches = [\"/dev/zero\"]\n").unwrap();
    let r = crate::common::rewheel(
        world.path(),
        &[
            "resolve",
            "a==1",
            "--python",
            "3.11",
            "--settings",
            settings.to_str().unwrap(),
        ],
    );
    assert_refused(&r, ExitCode::Input, "not a patch");
}

#[test]
fn a_build_path_someone_else_made_first_is_refused() {
    let world = World::new();
    package("early", "1.0", &[], &[]).write(world.path());
    // The default build path lives in /tmp, where another user can make it first: as a link
    // to a folder of theirs, or as a folder others may write.
    let theirs = Sentinel::new();
    let root = world.path().join(".build");
    std::os::unix::fs::symlink(theirs.path(), &root).unwrap();
    let r = world.build(&["early==1.0"]);
    assert_refused(&r, ExitCode::Environment, "cannot be used: it is a link");
    theirs.assert_untouched();
    std::fs::remove_file(&root).unwrap();
    std::fs::create_dir(&root).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = world.build(&["early==1.0"]);
    assert_refused(&r, ExitCode::Environment, "others can write it (mode 777)");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = world.build(&["early==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
}

/// Escapes a red-team pass found in the round-2 code, each kept as a test.
mod found_by_attacking {
    use super::*;

    /// A build that prints bubblewrap's own "setup raced" message, after swapping its source
    /// folder for a link to `/` and rewriting its frontend, got a second attempt that bound the
    /// host's root read-write. Now a retry is prepared anew, and a bind source must be a folder.
    #[test]
    fn a_build_faking_the_sandbox_race_gets_a_fresh_folder_not_the_hosts_root() {
        if !have_bwrap() {
            crate::common::skip("bubblewrap (bwrap) is not installed; .ci/run installs it");
            return;
        }
        let world = World::new();
        let sentinel = Sentinel::new();
        let hook = format!(
            r#"
job = os.path.dirname(wheel_directory)
top = os.path.join(job, "src", "retry-1.0")
seen = os.getcwd()
if os.path.isdir(top) and not os.path.islink(top):
    os.rename(top, top + ".orig")
    os.symlink("/", top)
    open(os.path.join(job, "frontend", "frontend.py"), "w").write(
        "import os\nopen(%r + %r, 'w').write('escaped')\n" % (seen, {canary:?}))
    os.ftruncate(1, 0); os.lseek(1, 0, 0)
    os.write(1, b"bwrap: Can't bind mount /oldroot/ on /newroot/: Unable to apply mount flags\n")
    os._exit(1)
"#,
            canary = sentinel.path().join("escaped").display().to_string()
        );
        package("retry", "1.0", &[], &[])
            .file("hook.py", hook)
            .write(world.path());
        let r = world.build(&["retry==1.0"]);
        assert_ne!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
        sentinel.assert_untouched();
    }

    /// A plan's `path` chose which `bwrap` the host ran, and its `LD_PRELOAD` was loaded into the
    /// host-side bwrap, as root. The job's environment now goes into the sandbox only.
    #[test]
    fn a_plans_path_and_preload_reach_nothing_on_the_host() {
        if !have_bwrap() {
            crate::common::skip("bubblewrap (bwrap) is not installed; .ci/run installs it");
            return;
        }
        let world = World::new();
        let dir = world.path();
        let sentinel = Sentinel::new();
        package("okpkg", "1.0", &[], &[]).write(dir);
        let evil = dir.join("evilbin");
        std::fs::create_dir_all(&evil).unwrap();
        for tool in ["bwrap", "unshare", "env"] {
            let path = evil.join(tool);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho ran > {}/{tool}-ran\nexit 1\n",
                    sentinel.path().display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let plan = dir.join("plan.json");
        let r = run(world.command("plan", &["okpkg==1.0", "-o", plan.to_str().unwrap()]));
        assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
        let settings = &mut doc["jobs"][0]["settings"];
        settings["path"] = format!("{}:/usr/local/bin:/usr/bin:/bin", evil.display()).into();
        // A library that does not exist: loaded on the host, it would fail bwrap itself.
        settings["extra_env"] = serde_json::json!([[
            "LD_PRELOAD",
            sentinel.path().join("x.so").display().to_string()
        ]]);
        std::fs::write(&plan, doc.to_string()).unwrap();
        let id = doc["jobs"][0]["id"].as_str().unwrap().to_string();
        let (python, _) = crate::common::host_python();
        let mut c = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        c.args(["build", "--plan"])
            .arg(&plan)
            .args(["--job", &id, "--inputs"])
            .arg(dir.join("none"))
            .arg("--out")
            .arg(dir.join("results"))
            .args(["--backend", "local", "--python-path"])
            .arg(&python)
            .arg("--build-path")
            .arg(dir.join(".build"));
        let r = run(c);
        sentinel.assert_untouched();
        // Inside, the preload names no library: the frontend's interpreter says so, or runs.
        assert!(
            r.code == ExitCode::Success || r.code == ExitCode::BuildFailed,
            "{}{}",
            r.stdout,
            r.stderr
        );
    }

    /// A backend that keeps answering "needs" after its requirements were installed made the
    /// job run again for ever, a folder kept each time.
    #[test]
    fn a_backend_that_asks_again_after_proceeding_fails_once() {
        let world = World::new();
        backend(
            world.path(),
            "needy",
            "    import json\n    job = os.path.dirname(wheel_directory)\n    json.dump({'phase': 'needs', 'missing': ['needy'], 'requires': ['needy']}, open(os.path.join(job, 'result.json'), 'w'))\n    os._exit(0)",
        );
        let start = std::time::Instant::now();
        let r = world.build(&["needy==1.0", "--timeout", "60"]);
        assert_refused(&r, ExitCode::BuildFailed, "asked again");
        assert!(start.elapsed().as_secs() < 60, "looped");
        let jobs = world.path().join(".build/.jobs");
        let left = std::fs::read_dir(&jobs).map(|d| d.count()).unwrap_or(0);
        assert!(left <= 1, "{left} job folders kept");
    }

    /// `merge` took a CI job's wheel without the checks a job's own output gets: a `../` entry
    /// and another package's metadata were certified.
    #[test]
    fn merge_checks_a_ci_wheel_as_a_jobs_own_output() {
        let world = World::new();
        let dir = world.path();
        package("lib", "2.0", &[], &[]).write(dir);
        let plan = dir.join("plan.json");
        let r = run(world.command("plan", &["lib==2.0", "-o", plan.to_str().unwrap()]));
        assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
        let id = doc["jobs"][0]["id"].as_str().unwrap().to_string();
        let cell = id.split('/').next().unwrap().to_string();
        let results = dir.join("results");
        std::fs::create_dir_all(&results).unwrap();
        let wheel = "lib-2.0-py3-none-any.whl";
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, text) in [
            ("../../evil.pth", "import os"),
            ("lib-2.0.dist-info/METADATA", "Name: lib\nVersion: 2.0\n"),
        ] {
            zip.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut zip, text.as_bytes()).unwrap();
        }
        let bytes = zip.finish().unwrap().into_inner();
        std::fs::write(results.join(wheel), &bytes).unwrap();
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        let result = serde_json::json!({
            "schema_version": 1, "job": id, "cell": cell, "name": "lib", "version": "2.0",
            "stage": 0, "status": "built", "wheel_filename": wheel, "wheel_sha256": sha,
            "fingerprint": "f", "seconds": 1.0, "error": null, "log_file": null,
        });
        std::fs::write(
            results.join(format!("{}.result.json", id.replace('/', "__"))),
            result.to_string(),
        )
        .unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        c.arg("merge")
            .arg(&results)
            .arg("--store")
            .arg(dir.join("merged"));
        let r = run(c);
        assert_refused(
            &r,
            ExitCode::Input,
            "the entry `../../evil.pth` would land outside",
        );
        assert!(!dir.join("merged").exists(), "a refused merge made a store");
    }
}
